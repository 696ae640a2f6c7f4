//! Appending records and writing entries.

use crate::error::{Error, Result};
use crate::format::bytes::Writer;
use crate::format::journal::{finish_entry, Record, JOURNAL_HEADER_BYTES};
use crate::format::{BtreeId, KeyType, Pos};
use crate::fs::Fs;
use crate::sys::BlockDevice;

impl<D: BlockDevice> Fs<D> {
    fn journal_append(&mut self, rec: &Record<'_>) -> Result<()> {
        let j = &mut self.journal;
        if j.buf.is_empty() {
            j.buf.try_resize(JOURNAL_HEADER_BYTES, 0)?;
        }
        let at = j.buf.len();
        j.buf.try_resize(at + rec.encoded_len(), 0)?;
        let dst = j.buf.get_mut(at..).ok_or(Error::Internal("journal buffer"))?;
        rec.encode(&mut Writer::new(dst)).map_err(|_| Error::Internal("journal record encode"))?;
        self.txn.records += 1;
        Ok(())
    }

    /// Journal a b-tree update made inside a transaction (no-op outside one:
    /// replay and checkpoints change the tree without journalling).
    pub(crate) fn journal_update(
        &mut self,
        btree: BtreeId,
        pos: Pos,
        kind: Option<KeyType>,
        val: &[u8],
    ) -> Result<()> {
        if !self.txn.active {
            return Ok(());
        }
        self.txn.dirty = true;
        self.journal_append(&Record::BtreeUpdate { btree, pos, kind, value: val })
    }

    /// Journal counter changes made inside a transaction.
    pub(crate) fn journal_accounting(&mut self, inodes: i64, data_bytes: i64) -> Result<()> {
        if inodes == 0 && data_bytes == 0 {
            return Ok(());
        }
        self.counters.inodes = self.counters.inodes.wrapping_add_signed(inodes);
        self.counters.data_bytes = self.counters.data_bytes.wrapping_add_signed(data_bytes);
        if !self.txn.active {
            return Ok(());
        }
        self.txn.dirty = true;
        self.journal_append(&Record::Accounting { inodes, data_bytes })
    }

    /// Where an entry of `len` bytes can go in the ring, if there is room.
    fn journal_slot(&self, len: u64) -> Option<u64> {
        let j = &self.journal;
        // Keep one block between the newest entry and the oldest live one so a
        // full ring is never mistaken for an empty one.
        if j.cursor >= j.start {
            if j.cursor + len <= j.size && (j.start > 0 || j.cursor + len < j.size) {
                return Some(j.cursor);
            }
            if len < j.start {
                return Some(0);
            }
            None
        } else if j.cursor + len < j.start {
            Some(j.cursor)
        } else {
            None
        }
    }

    /// Write the buffered records as one entry (without waiting for it to be
    /// durable). With no room in the ring, checkpoint instead: the checkpoint
    /// makes the buffered records durable through the b-trees.
    pub(crate) fn journal_write_entry(&mut self) -> Result<()> {
        let nr = self.journal.nr_records;
        if nr == 0 {
            self.journal.buf.clear();
            return Ok(());
        }
        let len = self.journal.buf.len();
        let padded =
            crate::format::round_up(len as u64, self.journal.block).ok_or(Error::Internal("entry size"))?;
        // Entries of the new sequence may follow only a superblock that says
        // where it starts; until one is written, the checkpoint carries them.
        let Some(at) = self.journal_slot(padded).filter(|_| !self.journal.skip_unrecorded) else {
            return self.checkpoint();
        };
        if self.data_unflushed {
            self.flush_all()?;
        }
        let seq = self.journal.seq.wrapping_add(1);
        let csum = self.sb.meta_csum;
        self.journal.buf.try_resize(padded as usize, 0)?;
        finish_entry(&mut self.journal.buf, len, seq, nr, self.journal.fs_tag, csum)
            .map_err(|_| Error::Internal("journal entry encode"))?;
        let j = &self.journal;
        let dev = self.devs.get_mut(usize::from(j.dev)).ok_or(Error::Internal("journal device"))?;
        dev.write_at(j.offset + at, &j.buf)?;
        let j = &mut self.journal;
        j.seq = seq;
        j.cursor = if at + padded >= j.size { 0 } else { at + padded };
        j.buf.clear();
        j.nr_records = 0;
        j.unflushed = true;
        Ok(())
    }

    /// Make every committed transaction durable (fsync, sync).
    pub fn journal_flush(&mut self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.check_writable()?;
        self.journal_write_entry()?;
        if self.journal.unflushed {
            let dev =
                self.devs.get_mut(usize::from(self.journal.dev)).ok_or(Error::Internal("journal device"))?;
            dev.flush()?;
            self.journal.unflushed = false;
        }
        Ok(())
    }

    /// Flush every member.
    pub(crate) fn flush_all(&mut self) -> Result<()> {
        for d in self.devs.iter_mut() {
            d.flush()?;
        }
        self.data_unflushed = false;
        Ok(())
    }
}
