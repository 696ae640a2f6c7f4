//! The bucket allocator: per member, a table of buckets (generation, data
//! type, usage), the buckets being filled (write points), and the free
//! space that reservations and ENOSPC decisions work from.
//!
//! The allocator persists nothing itself: a bucket whose state changes is
//! marked dirty, and whoever changes the trees next writes its alloc key (a
//! committing transaction, or the checkpoint). It knows nothing of b-trees
//! or transactions; they know it through this interface.
//!
//! A bucket emptied by an update is reused only after the next checkpoint
//! is durable, because until then the previous checkpoint may still point
//! into it; freeing bumps its generation so stale pointers are recognisable.

pub mod buckets;
pub mod check;
pub mod reserve;
pub mod trim;
pub mod write_point;

use crate::error::{Error, Result};
use crate::format::alloc_info::{AllocInfo, DataType};
use crate::format::node::BtreePtr;
use crate::format::superblock::{MemberState, Superblock};
use crate::format::Pos;
use crate::sys::TryVec;
pub use buckets::{gen_ahead, sb_buckets, Bucket};
pub use write_point::OpenBucket;

/// Node slots the reserve holds at the least.
const RESERVE_NODES: u64 = 64;

/// Bucket tables of every member and the buckets being filled.
pub struct Allocator {
    /// Per member: its buckets.
    pub tables: TryVec<TryVec<Bucket>>,
    /// Per member: bucket size.
    pub bucket_size: TryVec<u64>,
    /// Per member: whether new data may go there.
    active: TryVec<bool>,
    cursor: TryVec<u64>,
    /// Allocatable buckets over all members.
    pub free: u64,
    /// Buckets held back for b-tree nodes (checkpoints must always succeed).
    pub reserve: u64,
    /// Buckets waiting for a checkpoint before they can be reused.
    pub pending: u64,
    data: Option<OpenBucket>,
    /// Node buckets being filled, the first one first; checkpoints open
    /// the next ones ahead ([`Allocator::reserve_node_room`]).
    nodes: TryVec<OpenBucket>,
    next_dev: usize,
    node_size: u64,
    /// Extents start on block boundaries.
    block_size: u64,
    /// Whether generations were loaded (node pointers are checked against them).
    pub loaded: bool,
    /// Alloc keys found wrong at load and corrected in memory from the
    /// trees ([`Allocator::note_node`]); fsck repairs them on disk.
    pub distrusted: u64,
    /// Node places the trees released since the last checkpoint: still live
    /// on disk, since the durable checkpoint may point at them.
    pub released: TryVec<BtreePtr>,
    /// Buckets whose state changed since their alloc key was written.
    dirty: TryVec<(u8, u64)>,
    /// Collect buckets that a checkpoint made reusable, to be discarded
    /// (the `discard` mount option).
    pub discard: bool,
    /// Buckets to discard: their contents are referenced by nothing
    /// durable any more ([`Allocator::take_discards`]).
    discards: TryVec<(u8, u64)>,
}

/// Key of a bucket's alloc info.
pub const fn alloc_pos(dev: u8, bucket: u64) -> Pos {
    Pos::new(dev as u64, bucket, 0)
}

impl Allocator {
    /// Empty tables from the member list, superblock and journal buckets marked.
    pub fn new(sb: &Superblock) -> Result<Self> {
        let mut a = Allocator {
            tables: TryVec::new(),
            bucket_size: TryVec::new(),
            active: TryVec::new(),
            cursor: TryVec::new(),
            free: 0,
            reserve: 0,
            pending: 0,
            data: None,
            nodes: TryVec::new(),
            next_dev: 0,
            node_size: u64::from(sb.node_size),
            block_size: u64::from(sb.block_size).max(1),
            loaded: false,
            distrusted: 0,
            released: TryVec::new(),
            discard: false,
            discards: TryVec::new(),
            dirty: TryVec::new(),
        };
        let mut total = 0u64;
        for (i, m) in sb.members().iter().enumerate() {
            let mut t = TryVec::new();
            t.try_resize(usize::try_from(m.nbuckets).map_err(|_| Error::NoMem)?, Bucket::default())?;
            let bs = u64::from(m.bucket_size);
            for b in 0..sb_buckets(bs).min(m.nbuckets) {
                if let Some(x) = t.get_mut(b as usize) {
                    x.data_type = DataType::Superblock;
                }
            }
            if i == usize::from(sb.journal_dev) {
                if bs == 0 {
                    return Err(Error::Corrupt("zero bucket size"));
                }
                let end = sb.journal_offset.checked_add(sb.journal_size);
                let end = end.ok_or(Error::Corrupt("journal past the end of the address space"))?;
                let first = sb.journal_offset / bs;
                let last = end.div_ceil(bs);
                for b in first..last.min(m.nbuckets) {
                    if let Some(x) = t.get_mut(b as usize) {
                        x.data_type = DataType::Journal;
                    }
                }
            }
            total = total.saturating_add(m.nbuckets);
            a.tables.try_push(t)?;
            a.bucket_size.try_push(bs)?;
            a.active.try_push(m.state == MemberState::Active)?;
            a.cursor.try_push(0)?;
        }
        // At least 64 nodes: half for creating files once data filled the
        // rest, half for deleting and repairing (see `freeing_slots`).
        let per_bucket = (a.min_bucket_size() / a.node_size.max(1)).max(1);
        a.reserve = (total / 64).max(RESERVE_NODES.div_ceil(per_bucket));
        a.recount_free();
        Ok(a)
    }

    /// The bucket `b` of member `dev`.
    pub fn bucket(&self, dev: u8, b: u64) -> Option<&Bucket> {
        self.tables.get(usize::from(dev))?.get(usize::try_from(b).ok()?)
    }

    /// The bucket `b` of member `dev`, mutably.
    pub fn bucket_mut(&mut self, dev: u8, b: u64) -> Result<&mut Bucket> {
        self.tables
            .get_mut(usize::from(dev))
            .and_then(|t| t.get_mut(usize::try_from(b).ok()?))
            .ok_or(Error::Corrupt("bucket number out of range"))
    }

    /// Bucket number and size for a byte offset on a member.
    pub fn bucket_of(&self, dev: u8, offset: u64) -> Option<(u64, u64)> {
        let bs = *self.bucket_size.get(usize::from(dev))?;
        Some((offset.checked_div(bs)?, bs))
    }

    /// Recompute the allocatable-bucket count from the tables.
    pub fn recount_free(&mut self) {
        self.free = self.tables.iter().map(|t| t.iter().filter(|b| b.allocatable()).count() as u64).sum();
    }

    /// Note that bucket `b` of `dev` changed: its alloc key is written by
    /// the next change of the trees.
    pub fn mark_dirty(&mut self, dev: u8, b: u64) -> Result<()> {
        let bk = self.bucket_mut(dev, b)?;
        if !bk.dirty {
            self.dirty.try_reserve(1)?;
            self.bucket_mut(dev, b)?.dirty = true;
            self.dirty.try_push((dev, b))?;
        }
        Ok(())
    }

    /// How many buckets' alloc keys are waiting to be written.
    pub fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    /// The buckets whose alloc keys must be written.
    pub fn dirty_buckets(&self) -> &[(u8, u64)] {
        &self.dirty
    }

    /// The buckets whose alloc keys must be written, forgetting them.
    pub fn take_dirty(&mut self) -> TryVec<(u8, u64)> {
        let dirty = core::mem::take(&mut self.dirty);
        for &(dev, b) in dirty.iter() {
            if let Ok(bk) = self.bucket_mut(dev, b) {
                bk.dirty = false;
            }
        }
        dirty
    }

    /// The alloc key bucket `b` of `dev` should have now: none for a free
    /// bucket of generation 0 (`format.md` invariant 5).
    pub fn key_of(&self, dev: u8, b: u64) -> Result<Option<AllocInfo>> {
        let bk = self.bucket(dev, b).ok_or(Error::Internal("bucket out of range"))?;
        if bk.data_type == DataType::Free && bk.gen == 0 {
            return Ok(None);
        }
        Ok(Some(AllocInfo { gen: bk.gen, data_type: bk.data_type, used: bk.used }))
    }
}
