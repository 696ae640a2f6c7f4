//! Journal replay at open: each entry after the checkpoint is checked whole
//! against the format's rules, then its records are applied to the b-trees
//! and counters directly (replay is not journalled again). An entry that
//! breaks a rule ends the replay before it ([`crate::journal::JournalStop`]).
//!
//! A record must parse, name a key the format allows where it is (type,
//! value, canonical position, an alloc key of a real bucket) and keep the
//! counters in range.

use super::{Counters, Fs};
use crate::error::{Error, Result};
use crate::format::alloc_info::AllocInfo;
use crate::format::journal::{JournalHeader, Record};
use crate::format::{BtreeId, KeyType};
use crate::journal::JournalStop;
use crate::sys::{BlockDevice, TryVec};

impl<D: BlockDevice> Fs<D> {
    /// Replay every entry after the checkpoint; returns how many were
    /// applied. For fsck (`tolerant`), an entry that would change an
    /// unreadable node ends the replay before it, as a refused one does,
    /// instead of failing the open.
    pub(crate) fn replay(&mut self, tolerant: bool) -> Result<u64> {
        let mut r = self.journal.replay_begin();
        let mut buf = TryVec::new();
        let mut stop = None;
        loop {
            let dev =
                self.devs.get_mut(usize::from(self.journal.dev)).ok_or(Error::Internal("journal device"))?;
            if !self.journal.replay_next(dev, &mut r, &mut buf)? {
                break;
            }
            let checked = match self.replay_check(&buf) {
                Ok(()) if tolerant => self.replay_reachable(&buf)?,
                c => c,
            };
            if let Err(why) = checked {
                stop = Some(JournalStop { seq: r.seq(), why });
                break;
            }
            self.replay_apply(&buf)?;
            self.journal.replay_applied(&mut r);
        }
        Ok(self.journal.replay_end(r, stop))
    }

    /// Check every record of an entry without applying anything.
    fn replay_check(&self, buf: &[u8]) -> core::result::Result<(), &'static str> {
        let h = JournalHeader::decode(buf, self.sb.meta_csum).map_err(|_| "entry does not decode")?;
        let mut counters = self.counters;
        for rec in h.records(buf) {
            match rec.map_err(|_| "malformed record")? {
                Record::BtreeUpdate { btree, pos, kind, value } => {
                    if !btree.canonical(pos) {
                        return Err("key at a position the format does not allow");
                    }
                    if let Some(kind) = kind {
                        if kind == KeyType::BtreePtr || value.len() > self.btrees.max_value_bytes() {
                            return Err("key too large or of a type the b-tree does not hold");
                        }
                        crate::btree::validate_value(btree, kind, value)?;
                    }
                    if btree == BtreeId::Alloc {
                        let ok = match kind {
                            Some(_) => AllocInfo::decode(value).is_ok_and(|i| self.alloc.key_valid(pos, &i)),
                            None => self.alloc.key_possible(pos),
                        };
                        if !ok {
                            return Err("alloc key for a bucket that cannot hold data");
                        }
                    }
                }
                Record::Accounting { inodes, data_bytes } => {
                    counters = Counters {
                        inodes: counters.inodes.checked_add_signed(inodes).ok_or("counter out of range")?,
                        data_bytes: counters
                            .data_bytes
                            .checked_add_signed(data_bytes)
                            .ok_or("counter out of range")?,
                    };
                    if !self.counters_plausible(counters) {
                        return Err("counter out of range");
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether every leaf the entry changes can be read.
    fn replay_reachable(&mut self, buf: &[u8]) -> Result<core::result::Result<(), &'static str>> {
        let h = JournalHeader::decode(buf, self.sb.meta_csum)
            .map_err(|_| Error::Internal("journal entry vanished"))?;
        for rec in h.records(buf) {
            if let Ok(Record::BtreeUpdate { btree, pos, .. }) = rec {
                let (trees, mut store) = self.parts();
                match trees.find_leaf(&mut store, btree, pos) {
                    Ok(_) => {}
                    Err(e) if e.is_damage() => return Ok(Err("entry changes an unreadable b-tree node")),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Ok(()))
    }

    fn replay_apply(&mut self, buf: &[u8]) -> Result<()> {
        let h = JournalHeader::decode(buf, self.sb.meta_csum)
            .map_err(|_| Error::Internal("journal entry vanished"))?;
        for rec in h.records(buf) {
            let rec = rec.map_err(|_| Error::Internal("journal record changed after its check"))?;
            let (trees, mut store) = self.parts();
            match rec {
                Record::BtreeUpdate { btree, pos, kind: Some(kind), value } => {
                    trees.set(&mut store, btree, pos, kind, value)?;
                }
                Record::BtreeUpdate { btree, pos, kind: None, .. } => {
                    trees.delete(&mut store, btree, pos)?;
                }
                Record::Accounting { inodes, data_bytes } => {
                    self.counters.inodes = self.counters.inodes.wrapping_add_signed(inodes);
                    self.counters.data_bytes = self.counters.data_bytes.wrapping_add_signed(data_bytes);
                }
            }
        }
        Ok(())
    }
}
