//! Journal replay: read the entries written after the last checkpoint, in
//! sequence order, one at a time. What an entry's records mean and whether
//! they may be applied is the caller's business (the file system checks
//! each entry whole first); an entry it refuses ends the replay there, as a
//! torn one does, so the file system opens in the state of the last good
//! entry, and the reason is kept for the kernel log and fsck
//! ([`JournalStop`]).

use super::Journal;
use crate::error::Result;
use crate::format::journal::JournalHeader;
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

/// Where a replay stands: the ring offset and sequence of the next entry.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    at: u64,
    seq: u64,
    /// Padded length of the entry last read.
    padded: u64,
    applied: u64,
    /// Bound on entries: each takes at least one block of the ring.
    limit: u64,
}

impl Replay {
    /// Sequence number of the entry last read.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Entries applied so far.
    pub fn applied(&self) -> u64 {
        self.applied
    }
}

impl Journal {
    /// Read the entry at ring offset `at` if it is valid and has sequence `seq`.
    /// Returns its padded length; the entry is left in `buf`.
    fn read_entry<D: BlockDevice>(
        &self,
        dev: &mut D,
        at: u64,
        seq: u64,
        buf: &mut TryVec<u8>,
    ) -> Result<Option<u64>> {
        let (off, size, block, max) = (self.offset, self.size, self.block, self.max_entry as u64);
        if at.saturating_add(block) > size {
            return Ok(None);
        }
        buf.try_resize(block as usize, 0)?;
        dev.read_at(off + at, buf)?;
        let Ok(len) = JournalHeader::peek_len(buf) else { return Ok(None) };
        let Some(padded) = crate::format::round_up(u64::from(len), block) else { return Ok(None) };
        if padded > max || at + padded > size || padded == 0 {
            return Ok(None);
        }
        buf.try_resize(padded as usize, 0)?;
        dev.read_at(off + at, buf)?;
        match JournalHeader::decode(buf, self.metadata) {
            Ok(h) if h.seq == seq && h.fs_tag == self.fs_tag => Ok(Some(padded)),
            _ => Ok(None),
        }
    }

    /// A replay from the checkpoint.
    pub fn replay_begin(&self) -> Replay {
        Replay {
            at: self.start,
            seq: self.seq.wrapping_add(1),
            padded: 0,
            applied: 0,
            limit: self.size.checked_div(self.block).unwrap_or(0).saturating_add(1),
        }
    }

    /// Read the next entry into `buf` (a whole, verified entry with the
    /// expected sequence); false at the end of the journal.
    pub fn replay_next<D: BlockDevice>(
        &self,
        dev: &mut D,
        r: &mut Replay,
        buf: &mut TryVec<u8>,
    ) -> Result<bool> {
        if r.applied >= r.limit {
            return Ok(false);
        }
        let mut found = self.read_entry(dev, r.at, r.seq, buf)?;
        if found.is_none() && r.at != 0 {
            // The writer wraps to the start when an entry does not fit at the end.
            found = self.read_entry(dev, 0, r.seq, buf)?;
            if found.is_some() {
                r.at = 0;
            }
        }
        match found {
            Some(padded) => {
                r.padded = padded;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether the entry after the one last read was started in the ring:
    /// a header with its sequence number at either place the writer puts
    /// it, whole or torn. Sequence numbers are never reused in one ring
    /// ([`Journal::skip_stale`]), so such a header was written, and the
    /// writer starts an entry only once the entry before it, and the data
    /// it points at, are durable (or after a flush).
    pub fn replay_followed<D: BlockDevice>(
        &self,
        dev: &mut D,
        r: &Replay,
        buf: &mut TryVec<u8>,
    ) -> Result<bool> {
        let next = self.after(r);
        let want = (r.seq.wrapping_add(1), self.fs_tag);
        buf.try_resize(self.block as usize, 0)?;
        for at in [Some(next), (next != 0).then_some(0)].into_iter().flatten() {
            if at.saturating_add(self.block) > self.size {
                continue;
            }
            dev.read_at(self.offset + at, buf)?;
            if JournalHeader::peek_seq(buf) == Ok(want) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The entry last read was applied: go on after it.
    pub fn replay_applied(&self, r: &mut Replay) {
        r.applied += 1;
        r.seq = r.seq.wrapping_add(1);
        r.at = self.after(r);
    }

    /// The ring offset right after the entry last read, where the writer
    /// put the next one unless it wrapped to the start.
    fn after(&self, r: &Replay) -> u64 {
        if r.at + r.padded >= self.size {
            0
        } else {
            r.at + r.padded
        }
    }

    /// The replay is over (`stop`: why it ended before the end;
    /// `left_out`: the entry last read was left out, its data missing); new
    /// entries follow the last one applied. Returns the entries applied.
    pub fn replay_end(&mut self, r: Replay, stop: Option<JournalStop>, left_out: bool) -> u64 {
        self.seq = r.seq.wrapping_sub(1);
        self.cursor = r.at;
        self.stop = stop;
        self.left_out = left_out.then_some(r.seq);
        r.applied
    }
}
