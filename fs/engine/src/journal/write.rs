//! Appending records and writing entries into the ring.

use super::Journal;
use crate::error::{Error, Result};
use crate::format::bytes::Writer;
use crate::format::journal::{finish_entry, Record, JOURNAL_HEADER_BYTES};
use crate::sys::BlockDevice;

/// What [`Journal::write_entry`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Nothing was buffered.
    Empty,
    /// The entry is in the ring (not yet durable: see [`Journal::flush`]).
    Done,
    /// The ring has no room, or a sequence skip is not recorded yet: the
    /// caller checkpoints instead, which makes the records durable through
    /// the b-trees.
    NoRoom,
}

impl Journal {
    /// Bytes the entry being built would take, padded, with `extra` more.
    pub fn padded_with(&self, extra: usize) -> u64 {
        let len = self.buf.len().max(JOURNAL_HEADER_BYTES).saturating_add(extra);
        crate::format::round_up(len as u64, self.block).unwrap_or(u64::MAX)
    }

    /// Append a record to the entry being built.
    pub fn append(&mut self, rec: &Record<'_>) -> Result<()> {
        if self.buf.is_empty() {
            self.buf.try_resize(JOURNAL_HEADER_BYTES, 0)?;
        }
        let at = self.buf.len();
        self.buf.try_resize(at + rec.encoded_len(), 0)?;
        let dst = self.buf.get_mut(at..).ok_or(Error::Internal("journal buffer"))?;
        rec.encode(&mut Writer::new(dst)).map_err(|_| Error::Internal("journal record encode"))?;
        self.nr_records += 1;
        Ok(())
    }

    /// Where an entry of `len` bytes can go in the ring, if there is room.
    fn slot(&self, len: u64) -> Option<u64> {
        // Keep one block between the newest entry and the oldest live one so a
        // full ring is never mistaken for an empty one.
        if self.cursor >= self.start {
            if self.cursor + len <= self.size && (self.start > 0 || self.cursor + len < self.size) {
                return Some(self.cursor);
            }
            if len < self.start {
                return Some(0);
            }
            None
        } else if self.cursor + len < self.start {
            Some(self.cursor)
        } else {
            None
        }
    }

    /// Write the buffered records as one entry on `dev`, the journal member.
    /// The caller makes sure data they refer to was flushed before.
    /// With `durable`, the entry and every write completed before it are
    /// durable when this returns (one preflush + FUA request where the
    /// device allows), so no flush is needed after it.
    pub fn write_entry<D: BlockDevice>(&mut self, dev: &mut D, durable: bool) -> Result<Written> {
        if self.nr_records == 0 {
            self.buf.clear();
            return Ok(Written::Empty);
        }
        let len = self.buf.len();
        let padded = crate::format::round_up(len as u64, self.block).ok_or(Error::Internal("entry size"))?;
        // Entries of the new sequence may follow only a superblock that says
        // where it starts.
        let Some(at) = self.slot(padded).filter(|_| !self.skip_unrecorded) else {
            return Ok(Written::NoRoom);
        };
        let seq = self.seq.wrapping_add(1);
        self.buf.try_resize(padded as usize, 0)?;
        finish_entry(&mut self.buf, len, seq, self.nr_records, self.fs_tag, self.metadata)
            .map_err(|_| Error::Internal("journal entry encode"))?;
        if durable {
            dev.write_durable(self.offset + at, &self.buf)?;
        } else {
            dev.write_at(self.offset + at, &self.buf)?;
        }
        self.seq = seq;
        self.cursor = if at + padded >= self.size { 0 } else { at + padded };
        self.buf.clear();
        self.nr_records = 0;
        self.unflushed = !durable;
        Ok(Written::Done)
    }

    /// Make the entries written durable (one flush of the journal member).
    pub fn flush<D: BlockDevice>(&mut self, dev: &mut D) -> Result<()> {
        if self.unflushed {
            dev.flush()?;
            self.unflushed = false;
        }
        Ok(())
    }

    /// Drop the records appended after byte `len` of the entry being built
    /// (a commit that failed before applying anything), and `records` of
    /// them from the count.
    pub fn truncate(&mut self, len: usize, records: u32) {
        self.buf.truncate(len);
        self.nr_records = self.nr_records.saturating_sub(records);
        if self.nr_records == 0 {
            self.buf.clear();
        }
    }
}
