//! Checkpoints: write every dirty node and a superblock that points at the
//! new roots and says where replay starts; then the journal ring before it
//! is free (journal reclaim) and the buckets freed before it reusable.
//!
//! This is the one place that drives all three components together:
//! changed buckets' alloc keys go into the alloc tree; node buckets with
//! room for every dirty node are opened (their keys go in too, which may
//! dirty a few more nodes: another round); then the trees are written into
//! that room, which changes no bucket's key. A round opens at least one
//! bucket of at least four nodes while dirtying at most the alloc tree's
//! depth in nodes, so a few rounds suffice; the bound is a safety net.

use super::Fs;
use crate::alloc::alloc_pos;
use crate::error::{Error, Result};
use crate::format::alloc_info::ALLOC_BYTES;
use crate::format::superblock::{SB_BYTES, SB_OFFSETS};
use crate::format::{BtreeId, KeyType};
use crate::sys::{BlockDevice, TryVec};

/// Rounds of alloc-key persistence and tree writing before giving up.
const MAX_ROUNDS: usize = 16;

impl<D: BlockDevice> Fs<D> {
    /// Write all dirty state and a new superblock; frees the journal ring.
    /// May run inside a transaction (the allocator needs freed buckets):
    /// the transaction's updates are buffered, not in the trees yet.
    pub fn checkpoint(&mut self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        self.check_writable()?;
        let res = self.checkpoint_inner();
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
        for _ in 0..MAX_ROUNDS {
            self.persist_buckets()?;
            // Room for every dirty node first: a bucket opened now has its
            // key written in the next round, before anything is written.
            let need = self.btrees.dirty_nodes as u64;
            if self.alloc.node_room() < need {
                self.alloc.reserve_node_room(need)?;
                continue;
            }
            for id in BtreeId::ALL {
                let (trees, mut store) = self.parts();
                trees.write_tree(&mut store, id, seq)?;
            }
            if self.alloc.dirty_count() == 0 {
                clean = true;
                break;
            }
        }
        if !clean {
            return Err(Error::Internal("checkpoint did not converge"));
        }
        self.flush_all()?;
        for id in BtreeId::ALL {
            let root = self.btrees.disk_root(id)?.unwrap_or_default();
            if let Some(r) = self.sb.roots.get_mut(id.index()) {
                *r = root;
            }
        }
        self.sb.checkpoint_seq = self.journal.seq;
        self.sb.journal_resume = self.journal.cursor;
        self.sb.inodes = self.counters.inodes;
        self.sb.data_bytes = self.counters.data_bytes;
        self.write_super()?;
        self.journal.after_checkpoint();
        self.checkpoints += 1;
        self.alloc.after_checkpoint()?;
        self.discard_freed();
        Ok(())
    }

    /// Discard buckets the checkpoint just made reusable (the `discard`
    /// mount option). A hint to the device: a failure changes nothing.
    fn discard_freed(&mut self) {
        if !self.alloc.discard {
            return;
        }
        let ranges = self.alloc.take_discards();
        self.discard_ranges(&ranges);
    }

    /// Discard each (member, offset, length); returns the bytes the devices
    /// took (a member that cannot discard counts nothing).
    fn discard_ranges(&mut self, ranges: &[(u8, u64, u64)]) -> u64 {
        let mut done = 0u64;
        for &(dev, offset, len) in ranges {
            if let Some(d) = self.devs.get_mut(usize::from(dev)) {
                if d.discard(offset, len).is_ok() {
                    done = done.saturating_add(len);
                }
            }
        }
        done
    }

    /// Discard every free bucket inside the byte range `[start, start +
    /// len)` of each member, in runs of at least `min_len` bytes (FITRIM).
    /// Buckets freed since the last checkpoint are reusable only after the
    /// next one, so a checkpoint comes first when there are any. Returns
    /// the bytes discarded; a member that cannot discard counts nothing.
    /// As ext4 and xfs: a length under a block, or a start or minimum past
    /// the end of the largest member, is invalid.
    pub fn trim(&mut self, start: u64, len: u64, min_len: u64) -> Result<u64> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let largest = self.devs.iter().map(|d| d.size()).max().unwrap_or(0);
        if len < u64::from(self.sb.block_size) || start >= largest || min_len > largest {
            return Err(Error::Invalid);
        }
        self.check_writable()?;
        if self.alloc.pending > 0 {
            self.checkpoint()?;
        }
        let ranges = self.alloc.trim_ranges(start, start.saturating_add(len), min_len)?;
        Ok(self.discard_ranges(&ranges))
    }

    /// Write the alloc keys of changed buckets straight into the alloc tree
    /// (not journalled: the checkpoint being written makes them durable).
    fn persist_buckets(&mut self) -> Result<()> {
        let dirty = self.alloc.take_dirty();
        for &(dev, b) in dirty.iter() {
            let pos = alloc_pos(dev, b);
            let key = self.alloc.key_of(dev, b)?;
            let (trees, mut store) = self.parts();
            match key {
                Some(info) => {
                    let mut buf = [0u8; ALLOC_BYTES];
                    info.encode(&mut buf).map_err(|_| Error::Internal("alloc encode"))?;
                    trees.set(&mut store, BtreeId::Alloc, pos, KeyType::Alloc, &buf)?;
                }
                None => {
                    trees.delete(&mut store, BtreeId::Alloc, pos)?;
                }
            }
        }
        Ok(())
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
