//! Buckets: their state in memory, how alloc keys load into it, and the
//! checks that pointers into buckets must pass.

use super::Allocator;
use crate::error::Result;
use crate::format::alloc_info::{AllocInfo, DataType};
use crate::format::extent::{Extent, ExtentPtr};
use crate::format::node::BtreePtr;
use crate::format::superblock::SB_RESERVED_BYTES;
use crate::format::Pos;

/// One bucket's state in memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Generation.
    pub gen: u32,
    /// What it holds.
    pub data_type: DataType,
    /// User buckets: bytes charged by live extents.
    pub used: u64,
    /// B-tree buckets: live nodes in it (rebuilt at open).
    pub live_nodes: u32,
    /// Freed, but the durable checkpoint may still point here.
    pub pending: bool,
    /// Currently being filled.
    pub open: bool,
    /// Planned writes in flight into it (in memory only): not freed until
    /// they are committed or given up.
    pub pins: u32,
    /// Changed since its alloc key was last written.
    pub dirty: bool,
}

impl Bucket {
    /// Free, not waiting for a checkpoint, not being filled, no live node.
    pub fn allocatable(&self) -> bool {
        self.data_type == DataType::Free && !self.pending && !self.open && self.live_nodes == 0
    }
}

/// Whether generation `a` is newer than `b`: generations count up and wrap,
/// so "newer" is a positive distance in serial-number arithmetic.
pub const fn gen_ahead(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Buckets at the start of a member reserved for superblocks.
pub fn sb_buckets(bucket_size: u64) -> u64 {
    // Zero only on a superblock that failed validation; no division panic.
    if bucket_size == 0 {
        return 0;
    }
    SB_RESERVED_BYTES.div_ceil(bucket_size)
}

impl Allocator {
    /// Take the alloc key at `pos` into the tables. Keys that cannot be
    /// right ([`Allocator::key_valid`]) are left out and counted as
    /// distrusted.
    pub fn load_key(&mut self, pos: Pos, info: &AllocInfo) -> Result<()> {
        let valid = self.key_valid(pos, info);
        let bk = u8::try_from(pos.inode).ok().and_then(|dev| self.bucket_mut(dev, pos.offset).ok());
        match bk {
            Some(bk) if valid => {
                *bk =
                    Bucket { gen: info.gen, data_type: info.data_type, used: info.used, ..Bucket::default() };
            }
            _ => self.distrusted += 1,
        }
        Ok(())
    }

    /// Count a live node at `p` (a pointer from the trees, or a place
    /// released since the checkpoint). The trees win over the alloc keys
    /// where they disagree in the unsafe direction: a bucket holding live
    /// nodes is a b-tree bucket whatever its key says, and a bucket whose
    /// generation is behind the pointer's takes it (its key was lost or
    /// damaged: generations only grow).
    pub fn note_node(&mut self, p: &BtreePtr) {
        let Some((b, _)) = self.bucket_of(p.dev, p.offset) else { return };
        // A pointer outside the layout is reported when its node is read.
        let Ok(bk) = self.bucket_mut(p.dev, b) else { return };
        if matches!(bk.data_type, DataType::Superblock | DataType::Journal) {
            return;
        }
        bk.live_nodes = bk.live_nodes.saturating_add(1);
        let mut distrust = 0;
        if gen_ahead(p.gen, bk.gen) {
            bk.gen = p.gen;
            distrust += 1;
        }
        if bk.data_type != DataType::Btree {
            bk.data_type = DataType::Btree;
            distrust += 1;
        }
        self.distrusted += distrust;
    }

    /// Every alloc key and node pointer is in: generations are checked from
    /// now on.
    pub fn finish_load(&mut self) {
        self.loaded = true;
        self.recount_free();
    }

    /// Whether an alloc key may exist at `pos`: a bucket of a member that is
    /// neither a superblock nor a journal bucket.
    pub fn key_possible(&self, pos: Pos) -> bool {
        u8::try_from(pos.inode)
            .ok()
            .and_then(|dev| self.bucket(dev, pos.offset))
            .is_some_and(|b| !matches!(b.data_type, DataType::Superblock | DataType::Journal))
    }

    /// Whether `info` may be the alloc key at `pos`: a possible key that
    /// does not claim a superblock or journal bucket (those come from the
    /// layout, never from a key).
    pub fn key_valid(&self, pos: Pos, info: &AllocInfo) -> bool {
        self.key_possible(pos) && !matches!(info.data_type, DataType::Superblock | DataType::Journal)
    }

    /// Check a node pointer against the layout and bucket generations.
    pub fn check_node_ptr(&self, p: &BtreePtr) -> core::result::Result<(), &'static str> {
        let (b, _) = self.bucket_of(p.dev, p.offset).ok_or("pointer to a device that is not a member")?;
        if !p.offset.is_multiple_of(self.node_size.max(1)) {
            return Err("pointer not aligned to the node size");
        }
        let bucket = self.bucket(p.dev, b).ok_or("pointer past the end of the device")?;
        if matches!(bucket.data_type, DataType::Superblock | DataType::Journal) {
            return Err("pointer into the superblock or journal area");
        }
        if self.loaded && bucket.gen != p.gen {
            return Err("pointer generation differs from its bucket's (stale pointer)");
        }
        Ok(())
    }

    /// The generation of the bucket a node pointer names, once the bucket
    /// table is loaded.
    pub fn node_bucket_gen(&self, p: &BtreePtr) -> Option<u32> {
        let (b, _) = self.bucket_of(p.dev, p.offset)?;
        self.bucket(p.dev, b).filter(|_| self.loaded).map(|bk| bk.gen)
    }

    /// Whether an extent pointer is live: its stored bytes start on a block
    /// boundary and lie in one user bucket that has the pointer's generation.
    pub fn extent_ptr_live(&self, p: &ExtentPtr, e: &Extent) -> bool {
        if !p.offset.is_multiple_of(self.block_size) {
            return false;
        }
        let Some((b, bs)) = self.bucket_of(p.dev, p.offset) else { return false };
        // What is on disk is the stored payload (the live window lies
        // inside the payload; the decoder checked that).
        let fits = (p.offset % bs.max(1)).checked_add(u64::from(e.stored_len)).is_some_and(|end| end <= bs);
        fits && self.bucket(p.dev, b).is_some_and(|bk| bk.gen == p.gen && bk.data_type == DataType::User)
    }

    /// Whether an extent pointer may be read: it starts on a block boundary
    /// and its bucket exists and has the pointer's generation.
    pub fn extent_ptr_current(&self, p: &ExtentPtr) -> bool {
        p.offset.is_multiple_of(self.block_size)
            && self
                .bucket_of(p.dev, p.offset)
                .and_then(|(b, _)| self.bucket(p.dev, b))
                .is_some_and(|bk| bk.gen == p.gen)
    }
}
