//! Journal replay at open: each entry after the checkpoint is checked whole
//! against the format's rules, then its records are applied to the b-trees
//! and counters directly (replay is not journalled again). An entry that
//! breaks a rule ends the replay before it ([`crate::journal::JournalStop`]).
//!
//! A record must parse, name a key the format allows where it is (type,
//! value, canonical position, an alloc key of a real bucket) and keep the
//! counters in range.
//!
//! An entry written without a flush before it (marked unordered) may have
//! reached the medium before the data its extents point at. Unless the next
//! entry was started after it, which the writer does only once that data is
//! durable, replay reads the data back and checks it against the extents'
//! checksums; data that does not match ends the replay before the entry,
//! whose sync never returned ([`Fs::journal_left_out`]).

use super::extent::chunks_verify;
use super::{Counters, Fs};
use crate::error::{Error, Result};
use crate::format::alloc_info::AllocInfo;
use crate::format::checksum::ChecksumType;
use crate::format::extent::{Extent, ExtentPtr};
use crate::format::journal::{JournalHeader, Record, UNORDERED_CHECK_MAX_BYTES};
use crate::format::superblock::INCOMPAT_UNORDERED_ENTRIES;
use crate::format::{round_up, BtreeId, KeyType};
use crate::journal::JournalStop;
use crate::sys::{BlockDevice, TryVec};

impl<D: BlockDevice> Fs<D> {
    /// Replay every entry after the checkpoint; returns how many were
    /// applied. For fsck (`tolerant`), an entry that would change an
    /// unreadable node ends the replay before it, as a refused one does,
    /// instead of failing the open.
    pub(crate) fn replay(&mut self, tolerant: bool) -> Result<u64> {
        let mut r = self.journal.replay_begin();
        let (mut buf, mut peek) = (TryVec::new(), TryVec::new());
        let (mut stop, mut left_out) = (None, false);
        loop {
            let dev = dev_of(&mut self.devs, self.journal.dev)?;
            if !self.journal.replay_next(dev, &mut r, &mut buf)? {
                break;
            }
            let checked = match self.replay_check(&buf) {
                Ok(true)
                    if !self.journal.replay_followed(
                        dev_of(&mut self.devs, self.journal.dev)?,
                        &r,
                        &mut peek,
                    )? =>
                {
                    self.replay_data_check(&buf)?
                }
                c => c.map(|_| true),
            };
            // Its data missing, the entry is as good as torn: a power cut
            // before its sync returned, not damage.
            if checked == Ok(false) {
                left_out = true;
                break;
            }
            let checked = match checked {
                Ok(_) if tolerant => self.replay_reachable(&buf)?,
                c => c.map(|_| ()),
            };
            if let Err(why) = checked {
                stop = Some(JournalStop { seq: r.seq(), why });
                break;
            }
            self.replay_apply(&buf)?;
            self.journal.replay_applied(&mut r);
        }
        Ok(self.journal.replay_end(r, stop, left_out))
    }

    /// Check every record of an entry without applying anything; returns
    /// whether the entry is unordered.
    fn replay_check(&self, buf: &[u8]) -> core::result::Result<bool, &'static str> {
        let h = JournalHeader::decode(buf, self.sb.meta_csum).map_err(|_| "entry does not decode")?;
        let mut counters = self.counters;
        let mut unordered = false;
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
                Record::Unordered if self.sb.incompat & INCOMPAT_UNORDERED_ENTRIES == 0 => {
                    return Err("unordered entry on a file system that does not allow them");
                }
                Record::Unordered => unordered = true,
            }
        }
        Ok(unordered)
    }

    /// Read back the data the extents of an unordered entry point at and
    /// check it (see the module docs): whether all of it is there, or why
    /// the entry is refused (data that cannot be read is reported as such,
    /// not taken for a power cut).
    fn replay_data_check(&mut self, buf: &[u8]) -> Result<core::result::Result<bool, &'static str>> {
        let h = JournalHeader::decode(buf, self.sb.meta_csum)
            .map_err(|_| Error::Internal("journal entry vanished"))?;
        let block = self.journal.block;
        let mut total = 0u64;
        let mut data = TryVec::new();
        for rec in h.records(buf) {
            let Ok(Record::BtreeUpdate {
                btree: BtreeId::Extents, kind: Some(KeyType::Extent), value, ..
            }) = rec
            else {
                continue;
            };
            let Ok(e) = Extent::decode(value) else { return Ok(Err("extent does not decode")) };
            let Some(n) = data_check_bytes(&e, block) else {
                return Ok(Err("unordered entry points at data without checksums"));
            };
            total = total.saturating_add(n);
            if total > UNORDERED_CHECK_MAX_BYTES {
                return Ok(Err("unordered entry points at more data than replay checks"));
            }
            for p in e.ptrs() {
                match self.replay_ptr_check(&e, p, &mut data)? {
                    Ok(true) => {}
                    other => return Ok(other),
                }
            }
        }
        Ok(Ok(true))
    }

    /// Check the data of one copy of an extent (its live chunks when it has
    /// chunk checksums, else all its stored bytes), reading into `data`:
    /// whether it matches, or why the extent is invalid.
    fn replay_ptr_check(
        &mut self,
        e: &Extent,
        p: &ExtentPtr,
        data: &mut TryVec<u8>,
    ) -> Result<core::result::Result<bool, &'static str>> {
        let block = self.journal.block;
        let (first, run_start, run_end) = match data_check_run(e, block) {
            Some(Some(run)) => run,
            Some(None) => return Ok(Ok(true)),
            None => return Ok(Err("unordered entry points at data without checksums")),
        };
        let Some(len) = round_up(run_end - run_start, block) else { return Ok(Err("extent too large")) };
        let Some(dev) = self.devs.get_mut(usize::from(p.dev)) else {
            return Ok(Err("extent on a member that does not exist"));
        };
        let at = p
            .offset
            .checked_add(run_start)
            .filter(|at| at.checked_add(len).is_some_and(|end| end <= dev.size()));
        let Some(at) = at else { return Ok(Err("extent outside its member")) };
        if !p.offset.is_multiple_of(block) {
            return Ok(Err("extent pointer not block aligned"));
        }
        data.clear();
        data.try_resize(len as usize, 0)?;
        match dev.read_at(at, data) {
            Ok(()) => {}
            Err(Error::Io { .. }) => return Ok(Err("the data of an unordered entry cannot be read")),
            Err(e) => return Err(e),
        }
        let ok = if e.is_chunked() {
            // `first` chunk starts at or after `run_start` (rounded down).
            let from = (first as u64).checked_shl(u32::from(e.chunk_shift)).unwrap_or(u64::MAX) - run_start;
            match data.get(from as usize..(run_end - run_start) as usize) {
                Some(chunks) => chunks_verify(e, first, chunks, 0, 0).is_ok(),
                None => false,
            }
        } else {
            let stored = data.get(..e.stored_len as usize).unwrap_or(&[]);
            crate::sys::data_checksum(e.csum_type, stored) == e.csum
        };
        Ok(Ok(ok))
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
                Record::Unordered => {}
            }
        }
        Ok(())
    }
}

fn dev_of<D>(devs: &mut [D], dev: u8) -> Result<&mut D> {
    devs.get_mut(usize::from(dev)).ok_or(Error::Internal("journal device"))
}

/// The part of a written extent's stored bytes replay checks:
/// `Some(None)` when there is nothing to check (unwritten, or empty),
/// `Some(Some((first chunk, start, end)))` in bytes of the payload, the
/// start rounded down to a block, and `None` when it cannot be checked.
/// Chunk-checksummed extents need only the chunks of their live window;
/// others their stored bytes whole.
#[allow(clippy::option_option)]
fn data_check_run(e: &Extent, block: u64) -> Option<Option<(usize, u64, u64)>> {
    if e.is_unwritten() || e.live_len == 0 {
        return Some(None);
    }
    if e.csum_type == ChecksumType::None {
        return None;
    }
    if !e.is_chunked() {
        return Some(Some((0, 0, u64::from(e.stored_len))));
    }
    let shift = u32::from(e.chunk_shift);
    let start = u64::from(e.offset_into);
    let end = start.checked_add(u64::from(e.live_len))?;
    let first = start.checked_shr(shift)?;
    let run_start = first.checked_shl(shift)? & !(block.max(1) - 1);
    let run_end = ((end - 1).checked_shr(shift)? + 1).checked_shl(shift)?.min(u64::from(e.payload_len));
    (run_start < run_end).then_some(Some((usize::try_from(first).ok()?, run_start, run_end)))
}

/// Bytes replay reads to check extent `e` ([`data_check_run`], each copy),
/// or `None` if it cannot check it.
pub(super) fn data_check_bytes(e: &Extent, block: u64) -> Option<u64> {
    let Some((_, start, end)) = data_check_run(e, block)? else { return Some(0) };
    round_up(end - start, block)?.checked_mul(e.ptrs().len() as u64)
}
