//! Free space: charging buckets for the extents that point into them,
//! freeing emptied buckets (reusable after the next checkpoint), and the
//! bytes new data can still take.

use super::Allocator;
use crate::error::{Error, Result};
use crate::format::alloc_info::DataType;
use crate::sys::TryVec;

impl Allocator {
    /// Mark a bucket free (generation bumped); reusable after the next checkpoint.
    pub fn free_bucket(&mut self, dev: u8, b: u64) -> Result<()> {
        let bk = self.bucket_mut(dev, b)?;
        if bk.open || bk.pins > 0 {
            return Ok(());
        }
        bk.data_type = DataType::Free;
        bk.gen = bk.gen.wrapping_add(1);
        bk.used = 0;
        bk.live_nodes = 0;
        bk.pending = true;
        self.pending += 1;
        self.mark_dirty(dev, b)
    }

    /// Keep a bucket from being freed while a planned write into it is in
    /// flight (`fs::write_plan`).
    pub fn pin(&mut self, dev: u8, b: u64) -> Result<()> {
        let bk = self.bucket_mut(dev, b)?;
        bk.pins = bk.pins.checked_add(1).ok_or(Error::Internal("bucket pins"))?;
        Ok(())
    }

    /// Drop a pin; a user bucket it leaves empty and closed is freed now
    /// (its freeing was held back, or its planned write never committed).
    pub fn unpin(&mut self, dev: u8, b: u64) -> Result<()> {
        let bk = self.bucket_mut(dev, b)?;
        bk.pins = bk.pins.saturating_sub(1);
        if bk.pins == 0 && !bk.open && bk.data_type == DataType::User && bk.used == 0 {
            self.free_bucket(dev, b)?;
        }
        Ok(())
    }

    /// Whether charging `delta` bytes to the user bucket holding `offset`
    /// on `dev` is possible (a transaction checks before it commits).
    pub fn check_charge(&self, dev: u8, offset: u64, delta: i64) -> Result<()> {
        let (b, _) = self.bucket_of(dev, offset).ok_or(Error::Corrupt("extent on a missing device"))?;
        let bk = self.bucket(dev, b).ok_or(Error::Corrupt("bucket number out of range"))?;
        if bk.data_type != DataType::User {
            return Err(Error::Corrupt("extent points into a bucket that holds no user data"));
        }
        bk.used.checked_add_signed(delta).ok_or(Error::Corrupt("bucket usage would go negative"))?;
        Ok(())
    }

    /// Change the bytes charged to the user bucket holding `offset` on
    /// `dev`; a bucket left with none is freed.
    pub fn charge(&mut self, dev: u8, offset: u64, delta: i64) -> Result<()> {
        self.check_charge(dev, offset, delta)?;
        let (b, _) = self.bucket_of(dev, offset).ok_or(Error::Corrupt("extent on a missing device"))?;
        let bk = self.bucket_mut(dev, b)?;
        bk.used =
            bk.used.checked_add_signed(delta).ok_or(Error::Corrupt("bucket usage would go negative"))?;
        if bk.used == 0 && !bk.open {
            self.free_bucket(dev, b)
        } else {
            self.mark_dirty(dev, b)
        }
    }

    /// After a durable checkpoint: pending buckets become allocatable, and
    /// the node places released before it are dropped (freeing b-tree
    /// buckets left with no live node).
    pub fn after_checkpoint(&mut self) -> Result<()> {
        for (dev, t) in self.tables.iter_mut().enumerate() {
            for (b, bk) in t.iter_mut().enumerate().filter(|(_, b)| b.pending) {
                bk.pending = false;
                // A hint: without memory for it, the bucket is not discarded.
                if self.discard && bk.data_type == DataType::Free {
                    let _ = self.discards.try_push((dev as u8, b as u64));
                }
            }
        }
        self.pending = 0;
        let released = core::mem::take(&mut self.released);
        for p in released.iter() {
            // Only places [`Allocator::note_node`] counted (fsck cuts out
            // nodes whose pointers may lead anywhere).
            let Some((b, _)) = self.bucket_of(p.dev, p.offset) else { continue };
            let Ok(bk) = self.bucket_mut(p.dev, b) else { continue };
            if matches!(bk.data_type, DataType::Superblock | DataType::Journal) {
                continue;
            }
            bk.live_nodes = bk.live_nodes.saturating_sub(1);
            if bk.live_nodes == 0 && bk.data_type == DataType::Btree && !bk.open {
                self.free_bucket(p.dev, b)?;
            }
        }
        self.recount_free();
        Ok(())
    }

    /// The buckets to discard, as (member, byte offset, length): free, and
    /// free in the durable checkpoint too, so nothing refers to what they
    /// hold.
    pub fn take_discards(&mut self) -> TryVec<(u8, u64, u64)> {
        let mut out = TryVec::new();
        for &(dev, b) in self.discards.iter() {
            let size = self.bucket_size.get(usize::from(dev)).copied().unwrap_or(0);
            let still_free = self.bucket(dev, b).is_some_and(|bk| bk.data_type == DataType::Free && !bk.open);
            if size > 0 && still_free && out.try_push((dev, b.saturating_mul(size), size)).is_err() {
                break;
            }
        }
        self.discards.clear();
        out
    }

    /// Free buckets nothing lives in: b-tree buckets left by a crash between
    /// a checkpoint and the alloc update that would have freed them, and user
    /// buckets opened just before a crash that never got data. Runs at open,
    /// when no bucket is open. Never a bucket holding live nodes.
    pub fn free_unused(&mut self) -> Result<u64> {
        let mut freed = 0;
        for dev in 0..self.tables.len() {
            let n = self.tables.get(dev).map_or(0, |t| t.len());
            for b in 0..n as u64 {
                let bk = self.bucket_mut(dev as u8, b)?;
                let unused = match bk.data_type {
                    DataType::Btree => bk.live_nodes == 0,
                    DataType::User => bk.used == 0,
                    _ => false,
                };
                if unused && bk.live_nodes == 0 && !bk.open {
                    self.free_bucket(dev as u8, b)?;
                    freed += 1;
                }
            }
        }
        Ok(freed)
    }

    /// Bytes a new file write can still get.
    pub fn free_data_bytes(&self) -> u64 {
        let mut bytes = 0u64;
        // Buckets emptied since the last checkpoint count as free: the
        // allocator checkpoints to reuse them when it runs short.
        let mut avail = (self.free + self.pending).saturating_sub(self.reserve);
        for (dev, t) in self.tables.iter().enumerate() {
            let bs = self.bucket_size.get(dev).copied().unwrap_or(0);
            let n = (t.iter().filter(|b| b.data_type == DataType::Free && !b.open).count() as u64).min(avail);
            avail -= n;
            bytes = bytes.saturating_add(n.saturating_mul(bs));
        }
        bytes.saturating_add(self.data_room())
    }

    /// Nodes a checkpoint can still write: the room left in the node
    /// buckets being filled and in every allocatable bucket, the reserve
    /// included.
    pub fn node_slots(&self) -> u64 {
        self.node_room().saturating_add(self.free.saturating_mul(self.nodes_per_bucket()))
    }

    /// Node slots that changes adding metadata leave free: half the
    /// reserve, so that deleting and repairing go on working on a full file
    /// system; and while writers hold `promised` bytes of dirty data that
    /// the data bucket being filled cannot take, what data leaves (the
    /// reserve) and the buckets that data will need, so that writing it
    /// back cannot fail for want of space.
    pub fn held_back_slots(&self, promised: u64) -> u64 {
        let mut buckets = self.reserve / 2;
        let beyond = promised.saturating_sub(self.data_room());
        if beyond > 0 {
            let data = beyond.div_ceil(self.min_bucket_size().max(1));
            buckets = buckets.max(self.reserve.saturating_add(data));
        }
        buckets.saturating_mul(self.nodes_per_bucket())
    }

    fn nodes_per_bucket(&self) -> u64 {
        self.min_bucket_size() / self.node_size.max(1)
    }

    /// Bytes of all buckets that can hold data or nodes (statfs).
    pub fn usable_bytes(&self) -> u64 {
        let mut total = 0u64;
        for (dev, t) in self.tables.iter().enumerate() {
            let bsz = self.bucket_size.get(dev).copied().unwrap_or(0);
            let usable =
                t.iter().filter(|b| !matches!(b.data_type, DataType::Superblock | DataType::Journal)).count()
                    as u64;
            total = total.saturating_add(usable.saturating_mul(bsz));
        }
        total
    }
}
