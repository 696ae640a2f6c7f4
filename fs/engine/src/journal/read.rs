//! Journal replay: apply the entries written after the last checkpoint.
//!
//! An entry is checked whole before any of its records is applied: every
//! record must parse, name a key the format allows where it is (type, value,
//! canonical position, an alloc key of a real bucket) and keep the counters
//! in range. An entry that fails ends the replay there, as a torn one does,
//! so the file system opens in the state of the last good entry; the reason
//! is kept for the kernel log and fsck ([`JournalStop`]).

use crate::error::{Error, Result};
use crate::format::journal::{JournalHeader, Record};
use crate::format::{BtreeId, KeyType};
use crate::fs::{Counters, Fs};
use crate::sys::{BlockDevice, TryVec};

/// Why replay ended before the end of the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalStop {
    /// Sequence number of the entry that was not applied.
    pub seq: u64,
    /// What is wrong with it.
    pub why: &'static str,
}

impl core::fmt::Display for JournalStop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "journal entry {} is invalid ({}): replay stopped before it", self.seq, self.why)
    }
}

impl<D: BlockDevice> Fs<D> {
    /// Read the entry at ring offset `at` if it is valid and has sequence `seq`.
    /// Returns its padded length; the entry is left in `buf`.
    fn journal_read_entry(&mut self, at: u64, seq: u64, buf: &mut TryVec<u8>) -> Result<Option<u64>> {
        let j = &self.journal;
        let (dev_i, off, size, block, max) = (j.dev, j.offset, j.size, j.block, j.max_entry as u64);
        if at.saturating_add(block) > size {
            return Ok(None);
        }
        let dev = self.devs.get_mut(usize::from(dev_i)).ok_or(Error::Internal("journal device"))?;
        buf.try_resize(block as usize, 0)?;
        dev.read_at(off + at, buf)?;
        let Ok(len) = JournalHeader::peek_len(buf) else { return Ok(None) };
        let Some(padded) = crate::format::round_up(u64::from(len), block) else { return Ok(None) };
        if padded > max || at + padded > size || padded == 0 {
            return Ok(None);
        }
        buf.try_resize(padded as usize, 0)?;
        dev.read_at(off + at, buf)?;
        match JournalHeader::decode(buf, self.sb.meta_csum) {
            Ok(h) if h.seq == seq && h.fs_tag == self.journal.fs_tag => Ok(Some(padded)),
            _ => Ok(None),
        }
    }

    /// Check every record of an entry against the format's rules without
    /// applying anything.
    fn journal_check(&self, buf: &[u8]) -> core::result::Result<(), &'static str> {
        let h = JournalHeader::decode(buf, self.sb.meta_csum).map_err(|_| "entry does not decode")?;
        let mut counters = self.counters;
        for rec in h.records(buf) {
            match rec.map_err(|_| "malformed record")? {
                Record::BtreeUpdate { btree, pos, kind, value } => {
                    if !btree.canonical(pos) {
                        return Err("key at a position the format does not allow");
                    }
                    if let Some(kind) = kind {
                        if kind == KeyType::BtreePtr || value.len() > self.max_value_bytes() {
                            return Err("key too large or of a type the b-tree does not hold");
                        }
                        crate::btree::validate_value(btree, kind, value)?;
                    }
                    if btree == BtreeId::Alloc && !self.alloc_key_possible(pos) {
                        return Err("alloc key for a bucket that cannot hold data");
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

    fn journal_apply(&mut self, buf: &[u8]) -> Result<()> {
        let h = JournalHeader::decode(buf, self.sb.meta_csum)
            .map_err(|_| Error::Internal("journal entry vanished"))?;
        for rec in h.records(buf) {
            match rec.map_err(|_| Error::Internal("journal record changed after its check"))? {
                Record::BtreeUpdate { btree, pos, kind: Some(kind), value } => {
                    self.btree_set(btree, pos, kind, value)?;
                }
                Record::BtreeUpdate { btree, pos, kind: None, .. } => {
                    self.btree_delete(btree, pos)?;
                }
                Record::Accounting { inodes, data_bytes } => {
                    self.journal_accounting(inodes, data_bytes)?;
                }
            }
        }
        Ok(())
    }

    /// Replay every entry after the checkpoint; returns how many were applied.
    pub(crate) fn journal_replay(&mut self) -> Result<u64> {
        let mut at = self.sb.journal_resume;
        let mut seq = self.sb.checkpoint_seq.wrapping_add(1);
        let mut buf = TryVec::new();
        let mut applied = 0;
        // Bounded: each entry takes at least one block of the ring.
        let limit = self.journal.size.checked_div(self.journal.block).unwrap_or(0).saturating_add(1);
        while applied < limit {
            let mut found = self.journal_read_entry(at, seq, &mut buf)?;
            if found.is_none() && at != 0 {
                // The writer wraps to the start when an entry does not fit at the end.
                found = self.journal_read_entry(0, seq, &mut buf)?;
                if found.is_some() {
                    at = 0;
                }
            }
            let Some(padded) = found else { break };
            if let Err(why) = self.journal_check(&buf) {
                self.journal.stop = Some(JournalStop { seq, why });
                break;
            }
            self.journal_apply(&buf)?;
            applied += 1;
            seq = seq.wrapping_add(1);
            at = if at + padded >= self.journal.size { 0 } else { at + padded };
        }
        self.journal.seq = seq.wrapping_sub(1);
        self.journal.cursor = at;
        self.journal.start = self.sb.journal_resume;
        Ok(applied)
    }

    /// Before a read-write open writes its first entry: move the sequence
    /// past every number an entry in the ring could carry (at most one entry
    /// per block follows the checkpoint), so that no entry left behind the
    /// end of replay (torn, refused, or written out of order before a power
    /// cut) can ever be taken for a new one. Sequence numbers only grow.
    pub(crate) fn journal_skip_stale(&mut self) {
        let ring_blocks = self.journal.size.checked_div(self.journal.block).unwrap_or(0);
        self.journal.seq = self.journal.seq.wrapping_add(ring_blocks).wrapping_add(1);
        self.journal.skip_unrecorded = true;
    }

    /// Why replay stopped early at open, if it did.
    pub fn journal_stop(&self) -> Option<JournalStop> {
        self.journal.stop
    }
}
