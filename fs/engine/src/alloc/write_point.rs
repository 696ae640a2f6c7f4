//! Write points: the buckets being filled, for b-tree nodes and for file
//! data, each written front to back; new ones are opened round robin over
//! the members.

use super::Allocator;
use crate::error::{Error, Result};
use crate::format::alloc_info::DataType;
use crate::format::node::BtreePtr;

/// A bucket being filled sequentially.
#[derive(Debug, Clone, Copy)]
pub struct OpenBucket {
    /// Member.
    pub dev: u8,
    /// Bucket number.
    pub bucket: u64,
    /// Bytes written so far.
    pub fill: u64,
}

impl Allocator {
    /// Find an allocatable bucket on `dev`, scanning from its cursor.
    fn find_free(&mut self, dev: u8) -> Option<u64> {
        let t = self.tables.get(usize::from(dev))?;
        let n = t.len() as u64;
        let start = self.cursor.get(usize::from(dev)).copied().unwrap_or(0) % n.max(1);
        for k in 0..n {
            let b = (start + k) % n;
            if t.get(b as usize).is_some_and(|x| x.allocatable()) {
                if let Some(c) = self.cursor.get_mut(usize::from(dev)) {
                    *c = b + 1;
                }
                return Some(b);
            }
        }
        None
    }

    /// Open a fresh bucket for `data_type`, round robin over active members.
    fn open_bucket(&mut self, data_type: DataType) -> Result<OpenBucket> {
        let nr = self.tables.len();
        for k in 0..nr {
            let dev = ((self.next_dev + k) % nr) as u8;
            if !self.active.get(usize::from(dev)).copied().unwrap_or(false) {
                continue;
            }
            if let Some(b) = self.find_free(dev) {
                self.next_dev = (usize::from(dev) + 1) % nr;
                self.free = self.free.saturating_sub(1);
                let bk = self.bucket_mut(dev, b)?;
                bk.data_type = data_type;
                bk.open = true;
                bk.used = 0;
                bk.live_nodes = 0;
                self.mark_dirty(dev, b)?;
                return Ok(OpenBucket { dev, bucket: b, fill: 0 });
            }
        }
        Err(Error::NoSpace)
    }

    /// Stop filling a bucket; one left empty is freed.
    fn close_bucket(&mut self, ob: OpenBucket) -> Result<()> {
        let bk = self.bucket_mut(ob.dev, ob.bucket)?;
        bk.open = false;
        let empty = match bk.data_type {
            DataType::User => bk.used == 0,
            DataType::Btree => bk.live_nodes == 0,
            _ => false,
        };
        if empty {
            self.free_bucket(ob.dev, ob.bucket)?;
        }
        Ok(())
    }

    /// Space for a b-tree node (checkpoints only; may use the reserve).
    pub fn allocate_node(&mut self) -> Result<BtreePtr> {
        let node = self.node_size;
        // Full buckets at the front are done with.
        while let Some(&ob) = self.nodes.first() {
            if ob.fill + node <= self.bucket_of(ob.dev, 0).map_or(0, |x| x.1) {
                break;
            }
            self.nodes.remove(0);
            self.close_bucket(ob)?;
        }
        let ob = match self.nodes.first() {
            Some(&ob) => ob,
            None => {
                let ob = self.open_bucket(DataType::Btree)?;
                self.nodes.try_push(ob)?;
                ob
            }
        };
        let bs = self.bucket_of(ob.dev, 0).map_or(0, |x| x.1);
        let gen = self.bucket(ob.dev, ob.bucket).map_or(0, |b| b.gen);
        let offset = ob.bucket * bs + ob.fill;
        if let Some(first) = self.nodes.first_mut() {
            first.fill += node;
        }
        let bk = self.bucket_mut(ob.dev, ob.bucket)?;
        bk.live_nodes = bk.live_nodes.saturating_add(1);
        Ok(BtreePtr { dev: ob.dev, level: 0, gen, offset, seq: 0 })
    }

    /// Nodes the open node buckets still take.
    pub fn node_room(&self) -> u64 {
        let node = self.node_size.max(1);
        self.nodes
            .iter()
            .map(|ob| self.bucket_of(ob.dev, 0).map_or(0, |x| x.1).saturating_sub(ob.fill) / node)
            .sum()
    }

    /// Open node buckets until `nodes` nodes fit. A checkpoint does this
    /// before it writes, so that writing opens no bucket whose alloc key
    /// would need yet another round.
    pub fn reserve_node_room(&mut self, nodes: u64) -> Result<()> {
        // Each round adds a bucket of at least four nodes (the superblock
        // says so); a bucket too small for any would never end it.
        while self.node_room() < nodes {
            let ob = self.open_bucket(DataType::Btree)?;
            self.nodes.try_push(ob)?;
            if self.bucket_of(ob.dev, 0).map_or(0, |x| x.1) < self.node_size {
                return Err(Error::Corrupt("bucket smaller than a b-tree node"));
            }
        }
        Ok(())
    }

    /// Whether data of `min` bytes needs a new bucket while free buckets
    /// run short and some only await a checkpoint: the caller checkpoints
    /// first, so that they become reusable.
    pub fn wants_checkpoint_for(&self, min: u64) -> bool {
        let fits = self
            .data
            .is_some_and(|ob| self.bucket_of(ob.dev, 0).map_or(0, |x| x.1).saturating_sub(ob.fill) >= min);
        !fits && self.free <= self.reserve && self.pending > 0
    }

    /// Contiguous space for file data: at least `min` and at most `want`
    /// bytes (multiples of the block size). Returns (member, offset,
    /// length, generation). ENOSPC leaves everything as it was.
    pub fn allocate_data(&mut self, min: u64, want: u64) -> Result<(u8, u64, u64, u32)> {
        if min > self.min_bucket_size() {
            return Err(Error::Internal("extent larger than a bucket"));
        }
        if let Some(ob) = self.data {
            let bs = self.bucket_of(ob.dev, 0).map_or(0, |x| x.1);
            if bs.saturating_sub(ob.fill) >= min {
                return self.take_data(ob, want);
            }
        }
        if self.free <= self.reserve {
            return Err(Error::NoSpace);
        }
        if let Some(old) = self.data.take() {
            self.close_bucket(old)?;
        }
        let ob = self.open_bucket(DataType::User)?;
        self.data = Some(ob);
        self.take_data(ob, want)
    }

    fn take_data(&mut self, ob: OpenBucket, want: u64) -> Result<(u8, u64, u64, u32)> {
        let bs = self.bucket_of(ob.dev, 0).map_or(0, |x| x.1);
        let len = bs.saturating_sub(ob.fill).min(want);
        let gen = self.bucket(ob.dev, ob.bucket).map_or(0, |b| b.gen);
        self.data = Some(OpenBucket { fill: ob.fill + len, ..ob });
        Ok((ob.dev, ob.bucket * bs + ob.fill, len, gen))
    }

    /// The smallest bucket of any member: an encoded extent must fit in one.
    pub fn min_bucket_size(&self) -> u64 {
        self.bucket_size.iter().copied().min().unwrap_or(0)
    }

    /// Bytes left in the data bucket being filled.
    pub(crate) fn data_room(&self) -> u64 {
        self.data.map_or(0, |ob| self.bucket_of(ob.dev, 0).map_or(0, |x| x.1).saturating_sub(ob.fill))
    }
}
