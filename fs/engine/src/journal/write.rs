//! Appending records and writing entries into the ring.

use super::{Flight, Journal};
use crate::error::{Error, Result};
use crate::format::bytes::Writer;
use crate::format::journal::{finish_entry, Record, JOURNAL_HEADER_BYTES};
use crate::sys::BlockDevice;

/// What [`Journal::write_entry`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Nothing was buffered.
    Empty,
    /// The entry is in the ring (not yet durable: see
    /// [`Journal::start_durable`]).
    Done,
    /// The ring has no room, or a sequence skip is not recorded yet: the
    /// caller checkpoints instead, which makes the records durable through
    /// the b-trees.
    NoRoom,
}

/// What [`Journal::start_durable`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// Everything appended is durable already.
    Nothing,
    /// A write is in flight ([`Journal::in_flight`]); the caller issues it
    /// and reports with [`Journal::finish_durable`].
    Write(Flight),
    /// As [`Written::NoRoom`].
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
        self.appended += 1;
        Ok(())
    }

    /// Where an entry of `len` bytes can go in the ring, if there is room.
    fn slot(&self, len: u64) -> Option<u64> {
        // Keep one block between the newest entry and the oldest live one so a
        // full ring is never mistaken for an empty one.
        let at = if self.cursor >= self.start {
            if self.cursor + len <= self.size && (self.start > 0 || self.cursor + len < self.size) {
                self.cursor
            } else if len < self.start {
                0
            } else {
                return None;
            }
        } else if self.cursor + len < self.start {
            self.cursor
        } else {
            return None;
        };
        // A checkpoint frees the ring behind it even while a durable write
        // is in flight there; that room is reused only after it completes.
        match self.in_flight {
            Some(f) if f.len > 0 && at < f.at + f.len && f.at < at + len => None,
            _ => Some(at),
        }
    }

    /// Finish the buffered records as the next entry and give it a place in
    /// the ring: its offset and padded length, or `None` without room.
    fn seal(&mut self) -> Result<Option<(u64, u64)>> {
        let len = self.buf.len();
        let padded = crate::format::round_up(len as u64, self.block).ok_or(Error::Internal("entry size"))?;
        // Entries of the new sequence may follow only a superblock that says
        // where it starts.
        let Some(at) = self.slot(padded).filter(|_| !self.skip_unrecorded) else {
            return Ok(None);
        };
        let seq = self.seq.wrapping_add(1);
        self.buf.try_resize(padded as usize, 0)?;
        finish_entry(&mut self.buf, len, seq, self.nr_records, self.fs_tag, self.metadata)
            .map_err(|_| Error::Internal("journal entry encode"))?;
        self.seq = seq;
        self.cursor = if at + padded >= self.size { 0 } else { at + padded };
        self.nr_records = 0;
        self.written = self.appended;
        Ok(Some((at, padded)))
    }

    /// Write the buffered records as one entry on `dev`, the journal member,
    /// not yet durable. The caller makes sure data they refer to was
    /// flushed before.
    pub fn write_entry<D: BlockDevice>(&mut self, dev: &mut D) -> Result<Written> {
        if self.nr_records == 0 {
            self.buf.clear();
            return Ok(Written::Empty);
        }
        let Some((at, _)) = self.seal()? else { return Ok(Written::NoRoom) };
        let r = dev.write_at(self.offset + at, &self.buf);
        self.buf.clear();
        r.map(|()| Written::Done)
    }

    /// Start making every record appended so far durable: the buffered
    /// records become an entry in [`Journal::flight`], to be written with
    /// one FUA request, after a flush when `preflush` (which makes the
    /// entries and data written before it durable first); with none
    /// buffered but entries written since the last flush, the journal
    /// member is to be flushed (a flight of length 0). Records appended
    /// meanwhile go into a new entry. One durable write is in flight at a
    /// time: the next one's preflush must find this one complete, or replay
    /// could find a later entry without this one, and an unordered entry
    /// is known durable with its data once the next one has started. The
    /// caller makes sure the data the records refer to was written, and
    /// flushed on other members, and says whether it marked the entry
    /// `unordered`.
    pub fn start_durable(&mut self, preflush: bool, unordered: bool) -> Result<Started> {
        if self.in_flight.is_some() {
            return Err(Error::Internal("second durable journal write"));
        }
        let flight = if self.nr_records > 0 {
            let Some((at, len)) = self.seal()? else { return Ok(Started::NoRoom) };
            core::mem::swap(&mut self.buf, &mut self.flight);
            self.buf.clear();
            Flight { at, len, covers: self.written, preflush, unordered }
        } else if self.unflushed() {
            self.buf.clear();
            Flight { at: 0, len: 0, covers: self.written, preflush: false, unordered: false }
        } else {
            return Ok(Started::Nothing);
        };
        self.in_flight = Some(flight);
        Ok(Started::Write(flight))
    }

    /// The bytes of the write in flight, at ring offset `at` (empty for a
    /// flush).
    pub fn flight_bytes(&self) -> &[u8] {
        match self.in_flight {
            Some(f) => self.flight.get(..f.len as usize).unwrap_or(&[]),
            None => &[],
        }
    }

    /// The write in flight completed (`ok`) or failed: what it covers is
    /// durable, or stays as it was (the caller stops the file system).
    pub fn finish_durable(&mut self, ok: bool) {
        if let Some(f) = self.in_flight.take() {
            if ok {
                self.durable = self.durable.max(f.covers);
            }
        }
    }

    /// Drop the records appended after byte `len` of the entry being built
    /// (a commit that failed before applying anything), and `records` of
    /// them from the count.
    pub fn truncate(&mut self, len: usize, records: u32) {
        self.buf.truncate(len);
        let dropped = records.min(self.nr_records);
        self.nr_records -= dropped;
        self.appended = self.appended.saturating_sub(u64::from(dropped));
        if self.nr_records == 0 {
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::format::superblock::Superblock;
    use crate::format::{BtreeId, Pos, SNAPSHOT_ROOT};
    use crate::sys::MemDevice;

    fn journal() -> Journal {
        let sb = Superblock { block_size: 4096, journal_size: 64 << 10, ..Default::default() };
        Journal::new(&sb)
    }

    fn record(j: &mut Journal) {
        let pos = Pos::new(1, 2, SNAPSHOT_ROOT);
        j.append(&Record::BtreeUpdate { btree: BtreeId::Inodes, pos, kind: None, value: &[] }).unwrap();
    }

    /// A checkpoint frees the ring behind it while a durable write is still
    /// in flight there: entries written meanwhile go around the ring, but
    /// never over the write in flight, until it completes.
    #[test]
    fn the_ring_keeps_a_write_in_flight() {
        let mut j = journal();
        let mut dev = MemDevice::new(64 << 10);
        record(&mut j);
        let Ok(Started::Write(f)) = j.start_durable(true, false) else { panic!("no write started") };
        assert_eq!((f.at, f.len, f.covers), (0, 4096, 1));
        assert_eq!(j.flight_bytes().len(), 4096);
        j.after_checkpoint();
        // Entries fill the ring to its end and wrap to its start, which
        // holds the write in flight.
        let mut written = 0;
        loop {
            record(&mut j);
            match j.write_entry(&mut dev).unwrap() {
                Written::Done => written += 1,
                Written::NoRoom => break,
                Written::Empty => panic!("records were buffered"),
            }
        }
        assert_eq!((written, j.cursor), (15, 0));
        // Another checkpoint frees the whole ring: all of it but the write in
        // flight, which the next entry would go over.
        j.after_checkpoint();
        record(&mut j);
        assert_eq!(j.write_entry(&mut dev).unwrap(), Written::NoRoom);
        assert!(j.durable == j.written && j.in_flight.is_some());
        j.finish_durable(true);
        assert_eq!(j.in_flight, None);
        assert_eq!(j.write_entry(&mut dev).unwrap(), Written::Done);
        assert!(j.unflushed());
        // A durable write of nothing buffered is a flush of what was written.
        let Ok(Started::Write(f)) = j.start_durable(true, false) else { panic!("no flush started") };
        assert_eq!((f.len, f.covers), (0, j.written));
        assert!(j.flight_bytes().is_empty());
        assert!(j.start_durable(true, false).is_err(), "two durable writes in flight");
        j.finish_durable(true);
        assert!(!j.unflushed());
        assert_eq!(j.start_durable(true, false).unwrap(), Started::Nothing);
    }
}
