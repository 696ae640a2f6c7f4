//! Journal replay: apply the entries written after the last checkpoint.

use crate::error::{Error, Result};
use crate::format::journal::{JournalHeader, Record};
use crate::fs::Fs;
use crate::sys::{BlockDevice, TryVec};

impl<D: BlockDevice> Fs<D> {
    /// Read the entry at ring offset `at` if it is valid and has sequence `seq`.
    /// Returns its padded length; the entry is left in `buf`.
    fn journal_read_entry(&mut self, at: u64, seq: u64, buf: &mut TryVec<u8>) -> Result<Option<u64>> {
        let j = &self.journal;
        let (dev_i, off, size, block, max) = (j.dev, j.offset, j.size, j.block, j.max_entry as u64);
        if at + block > size {
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

    fn journal_apply(&mut self, buf: &[u8]) -> Result<()> {
        let h = JournalHeader::decode(buf, self.sb.meta_csum)
            .map_err(|_| Error::Internal("journal entry vanished"))?;
        for rec in h.records(buf) {
            let rec = rec.map_err(|_| Error::Corrupt("malformed record in a checksummed journal entry"))?;
            match rec {
                Record::BtreeUpdate { btree, pos, kind: Some(kind), value } => {
                    crate::btree::validate_value(btree, kind, value)
                        .map_err(|_| Error::Corrupt("malformed key in a journal entry"))?;
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
        let mut seq = self.sb.checkpoint_seq + 1;
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
            self.journal_apply(&buf)?;
            applied += 1;
            seq += 1;
            at = if at + padded >= self.journal.size { 0 } else { at + padded };
        }
        self.journal.seq = seq - 1;
        self.journal.cursor = at;
        self.journal.start = self.sb.journal_resume;
        Ok(applied)
    }
}
