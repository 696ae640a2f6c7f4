//! Checkpoints (journal reclaim): write every dirty node, then a superblock
//! that points at the new roots and says where replay starts.

use crate::btree::node::ChildRef;
use crate::error::{Error, Result};
use crate::format::superblock::{SB_BYTES, SB_OFFSETS};
use crate::format::BtreeId;
use crate::fs::Fs;
use crate::sys::{BlockDevice, TryVec};

impl<D: BlockDevice> Fs<D> {
    /// Write all dirty state and a new superblock; frees the journal ring.
    pub fn checkpoint(&mut self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        self.check_writable()?;
        if self.txn.dirty {
            return Err(Error::Internal("checkpoint inside a transaction"));
        }
        // A checkpoint may run at the start of a transaction (the allocator
        // needs space); what it changes belongs to the checkpoint, not to the
        // transaction, so nothing it does is journalled into it.
        let active = core::mem::replace(&mut self.txn.active, false);
        let res = self.checkpoint_inner();
        self.txn.active = active;
        if let Err(e) = res {
            self.fail(e);
        }
        res
    }

    fn checkpoint_inner(&mut self) -> Result<()> {
        // Nodes carry the sequence of the superblock this checkpoint writes:
        // unique per checkpoint, even when no journal entry came between two.
        let seq = self.sb.seq.wrapping_add(1);
        let mut clean = false;
        for _ in 0..16 {
            self.defer_alloc = true;
            for id in BtreeId::ALL {
                let r = self.write_tree(id, seq);
                if r.is_err() {
                    self.defer_alloc = false;
                }
                r?;
            }
            self.defer_alloc = false;
            if self.deferred.is_empty() {
                clean = true;
                break;
            }
            let list = core::mem::take(&mut self.deferred);
            for &(dev, b) in list.iter() {
                self.persist_bucket_now(dev, b)?;
            }
        }
        if !clean {
            return Err(Error::Internal("checkpoint did not converge"));
        }
        self.flush_all()?;
        for id in BtreeId::ALL {
            let root = match self.roots.get(id.index()).copied().flatten() {
                Some(ChildRef::Disk(p)) => p,
                None => Default::default(),
                Some(ChildRef::Mem(_)) => return Err(Error::Internal("dirty root after checkpoint")),
            };
            if let Some(r) = self.sb.roots.get_mut(id.index()) {
                *r = root;
            }
        }
        self.sb.checkpoint_seq = self.journal.seq;
        self.sb.journal_resume = self.journal.cursor;
        self.sb.inodes = self.counters.inodes;
        self.sb.data_bytes = self.counters.data_bytes;
        self.write_super()?;
        self.journal.start = self.journal.cursor;
        self.journal.buf.clear();
        self.journal.nr_records = 0;
        self.journal.unflushed = false;
        self.journal.skip_unrecorded = false;
        // A checkpoint taken at the start of a transaction (allocator) leaves
        // that transaction an empty buffer to roll back to.
        self.txn.buf_start = 0;
        self.checkpoints += 1;
        self.alloc_after_checkpoint()
    }

    /// Write a new superblock to every copy on every member, then flush.
    pub(crate) fn write_super(&mut self) -> Result<()> {
        self.sb.seq = self.sb.seq.wrapping_add(1);
        let mut buf: TryVec<u8> = TryVec::new();
        buf.try_resize(SB_BYTES, 0)?;
        for i in 0..self.devs.len() {
            self.sb.this_member = i as u8;
            self.sb.encode(&mut buf).map_err(|_| Error::Internal("superblock encode"))?;
            let dev = self.devs.get_mut(i).ok_or(Error::Internal("device"))?;
            for off in SB_OFFSETS {
                dev.write_at(off, &buf)?;
            }
        }
        self.sb.this_member = 0;
        self.flush_all()
    }
}
