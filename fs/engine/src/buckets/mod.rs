//! The bucket allocator.
//!
//! Every member is cut into buckets. The in-memory table holds each bucket's
//! generation, data type and usage; the alloc b-tree persists it (a bucket with
//! no key is free with generation 0). Data and b-tree nodes are written
//! sequentially into "open" buckets. A bucket emptied by an update is reused
//! only after the next checkpoint is durable, because until then the previous
//! checkpoint may still point into it; freeing bumps its generation so stale
//! pointers are recognisable.

pub mod check;

use crate::error::{Error, Result};
use crate::format::alloc_info::{AllocInfo, DataType, ALLOC_BYTES};
use crate::format::node::BtreePtr;
use crate::format::superblock::SB_RESERVED_BYTES;
use crate::format::{BtreeId, KeyType, Pos};
use crate::fs::Fs;
use crate::sys::{BlockDevice, TryVec};

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
}

impl Bucket {
    /// Free, not waiting for a checkpoint, and not being filled.
    pub fn allocatable(&self) -> bool {
        self.data_type == DataType::Free && !self.pending && !self.open && self.live_nodes == 0
    }
}

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

/// Bucket tables of every member and the open buckets.
pub struct Allocator {
    /// Per member: its buckets.
    pub tables: TryVec<TryVec<Bucket>>,
    /// Per member: bucket size.
    pub bucket_size: TryVec<u64>,
    cursor: TryVec<u64>,
    /// Allocatable buckets over all members.
    pub free: u64,
    /// Buckets held back for b-tree nodes (checkpoints must always succeed).
    pub reserve: u64,
    /// Buckets waiting for a checkpoint before they can be reused.
    pub pending: u64,
    data: Option<OpenBucket>,
    nodes: Option<OpenBucket>,
    next_dev: usize,
    /// Whether generations were loaded (node pointers are checked against them).
    pub loaded: bool,
    /// Alloc keys found wrong at load and corrected in memory from the
    /// trees (see [`Fs::alloc_load`]); fsck repairs them on disk.
    pub distrusted: u64,
}

impl Default for Allocator {
    fn default() -> Self {
        Self::new()
    }
}

impl Allocator {
    /// An empty allocator.
    pub const fn new() -> Self {
        Allocator {
            tables: TryVec::new(),
            bucket_size: TryVec::new(),
            cursor: TryVec::new(),
            free: 0,
            reserve: 0,
            pending: 0,
            data: None,
            nodes: None,
            next_dev: 0,
            loaded: false,
            distrusted: 0,
        }
    }
}

/// Whether generation `a` is newer than `b`: generations count up and wrap,
/// so "newer" is a positive distance in serial-number arithmetic.
pub const fn gen_ahead(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Key of a bucket's alloc info.
pub const fn alloc_pos(dev: u8, bucket: u64) -> Pos {
    Pos::new(dev as u64, bucket, 0)
}

/// Buckets at the start of a member reserved for superblocks.
pub fn sb_buckets(bucket_size: u64) -> u64 {
    // Zero only on a superblock that failed validation; no division panic.
    if bucket_size == 0 {
        return 0;
    }
    SB_RESERVED_BYTES.div_ceil(bucket_size)
}

impl<D: BlockDevice> Fs<D> {
    /// Build empty tables from the member list; mark superblock and journal buckets.
    pub(crate) fn alloc_init(&mut self) -> Result<()> {
        let mut a = Allocator::new();
        let mut total = 0;
        for (i, m) in self.sb.members().iter().enumerate() {
            let mut t = TryVec::new();
            t.try_resize(usize::try_from(m.nbuckets).map_err(|_| Error::NoMem)?, Bucket::default())?;
            let bs = u64::from(m.bucket_size);
            for b in 0..sb_buckets(bs).min(m.nbuckets) {
                if let Some(x) = t.get_mut(b as usize) {
                    x.data_type = DataType::Superblock;
                }
            }
            if i == usize::from(self.sb.journal_dev) {
                if bs == 0 {
                    return Err(Error::Corrupt("zero bucket size"));
                }
                let end = self.sb.journal_offset.checked_add(self.sb.journal_size);
                let end = end.ok_or(Error::Corrupt("journal past the end of the address space"))?;
                let first = self.sb.journal_offset / bs;
                let last = end.div_ceil(bs);
                for b in first..last.min(m.nbuckets) {
                    if let Some(x) = t.get_mut(b as usize) {
                        x.data_type = DataType::Journal;
                    }
                }
            }
            total += m.nbuckets;
            a.free += t.iter().filter(|b| b.allocatable()).count() as u64;
            a.tables.try_push(t)?;
            a.bucket_size.try_push(bs)?;
            a.cursor.try_push(0)?;
        }
        a.reserve = (total / 64).max(4);
        self.alloc = a;
        Ok(())
    }

    /// The bucket `b` of member `dev`.
    pub(crate) fn bucket(&self, dev: u8, b: u64) -> Option<&Bucket> {
        self.alloc.tables.get(usize::from(dev))?.get(usize::try_from(b).ok()?)
    }

    /// The bucket `b` of member `dev`, mutably.
    pub(crate) fn bucket_mut(&mut self, dev: u8, b: u64) -> Result<&mut Bucket> {
        self.alloc
            .tables
            .get_mut(usize::from(dev))
            .and_then(|t| t.get_mut(usize::try_from(b).ok()?))
            .ok_or(Error::Corrupt("bucket number out of range"))
    }

    /// Bucket number and size for a byte offset on a member.
    pub(crate) fn bucket_of(&self, dev: u8, offset: u64) -> Option<(u64, u64)> {
        let bs = *self.alloc.bucket_size.get(usize::from(dev))?;
        Some((offset.checked_div(bs)?, bs))
    }

    /// Whether an alloc key may exist at `pos`: a bucket of a member that is
    /// neither a superblock nor a journal bucket.
    pub(crate) fn alloc_key_possible(&self, pos: Pos) -> bool {
        u8::try_from(pos.inode)
            .ok()
            .and_then(|dev| self.bucket(dev, pos.offset))
            .is_some_and(|b| !matches!(b.data_type, DataType::Superblock | DataType::Journal))
    }

    /// Whether an extent pointer is live: its stored bytes lie in one user
    /// bucket that has the pointer's generation.
    pub(crate) fn extent_ptr_live(
        &self,
        p: &crate::format::extent::ExtentPtr,
        e: &crate::format::extent::Extent,
    ) -> bool {
        let Some((b, bs)) = self.bucket_of(p.dev, p.offset) else { return false };
        // What is on disk is the stored payload (the live window lies
        // inside the payload; the decoder checked that).
        let fits = (p.offset % bs.max(1)).checked_add(u64::from(e.stored_len)).is_some_and(|end| end <= bs);
        fits && self.bucket(p.dev, b).is_some_and(|bk| bk.gen == p.gen && bk.data_type == DataType::User)
    }

    /// Check a node pointer against the layout and bucket generations.
    pub(crate) fn check_node_ptr(&self, p: &BtreePtr) -> core::result::Result<(), &'static str> {
        let (b, _) = self.bucket_of(p.dev, p.offset).ok_or("pointer to a device that is not a member")?;
        if !p.offset.is_multiple_of(u64::from(self.sb.node_size)) {
            return Err("pointer not aligned to the node size");
        }
        let bucket = self.bucket(p.dev, b).ok_or("pointer past the end of the device")?;
        if matches!(bucket.data_type, DataType::Superblock | DataType::Journal) {
            return Err("pointer into the superblock or journal area");
        }
        if self.alloc.loaded && bucket.gen != p.gen {
            return Err("pointer generation differs from its bucket's (stale pointer)");
        }
        Ok(())
    }

    /// Write a bucket's state to the alloc b-tree (journalled inside a
    /// transaction). While a checkpoint writes nodes, the update waits: changing
    /// a b-tree while it is being written is not allowed.
    fn persist_bucket(&mut self, dev: u8, b: u64) -> Result<()> {
        if self.defer_alloc {
            return self.deferred.try_push((dev, b));
        }
        self.persist_bucket_now(dev, b)
    }

    /// Write a bucket's state to the alloc b-tree now.
    pub(crate) fn persist_bucket_now(&mut self, dev: u8, b: u64) -> Result<()> {
        let bk = *self.bucket_mut(dev, b)?;
        let pos = alloc_pos(dev, b);
        if bk.data_type == DataType::Free && bk.gen == 0 {
            self.btree_delete(BtreeId::Alloc, pos)?;
            return Ok(());
        }
        let info = AllocInfo { gen: bk.gen, data_type: bk.data_type, used: bk.used };
        let mut buf = [0u8; ALLOC_BYTES];
        info.encode(&mut buf).map_err(|_| Error::Internal("alloc encode"))?;
        self.btree_set(BtreeId::Alloc, pos, KeyType::Alloc, &buf)
    }

    /// Find an allocatable bucket on `dev`, scanning from its cursor.
    fn find_free(&mut self, dev: u8) -> Option<u64> {
        let t = self.alloc.tables.get(usize::from(dev))?;
        let n = t.len() as u64;
        let start = self.alloc.cursor.get(usize::from(dev)).copied().unwrap_or(0) % n.max(1);
        for k in 0..n {
            let b = (start + k) % n;
            if t.get(b as usize).is_some_and(|x| x.allocatable()) {
                if let Some(c) = self.alloc.cursor.get_mut(usize::from(dev)) {
                    *c = b + 1;
                }
                return Some(b);
            }
        }
        None
    }

    /// Open a fresh bucket for `data_type`, round robin over members.
    fn open_bucket(&mut self, data_type: DataType) -> Result<OpenBucket> {
        let nr = self.alloc.tables.len();
        for k in 0..nr {
            let dev = ((self.alloc.next_dev + k) % nr) as u8;
            if let Some(m) = self.sb.members().get(usize::from(dev)) {
                if m.state != crate::format::superblock::MemberState::Active {
                    continue;
                }
            }
            if let Some(b) = self.find_free(dev) {
                self.alloc.next_dev = (usize::from(dev) + 1) % nr;
                self.alloc.free -= 1;
                let bk = self.bucket_mut(dev, b)?;
                bk.data_type = data_type;
                bk.open = true;
                bk.used = 0;
                bk.live_nodes = 0;
                self.persist_bucket(dev, b)?;
                return Ok(OpenBucket { dev, bucket: b, fill: 0 });
            }
        }
        Err(Error::NoSpace)
    }

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

    /// Mark a bucket free (generation bumped); reusable after the next checkpoint.
    fn free_bucket(&mut self, dev: u8, b: u64) -> Result<()> {
        let bk = self.bucket_mut(dev, b)?;
        if bk.open {
            return Ok(());
        }
        bk.data_type = DataType::Free;
        bk.gen = bk.gen.wrapping_add(1);
        bk.used = 0;
        bk.live_nodes = 0;
        bk.pending = true;
        self.alloc.pending += 1;
        self.persist_bucket(dev, b)
    }

    /// Space for a b-tree node. Used by checkpoints only; may use the reserve.
    pub(crate) fn alloc_node(&mut self) -> Result<BtreePtr> {
        let node = u64::from(self.sb.node_size);
        let ob = match self.alloc.nodes {
            Some(ob) if ob.fill + node <= self.bucket_of(ob.dev, 0).map_or(0, |x| x.1) => ob,
            other => {
                if let Some(old) = other {
                    self.close_bucket(old)?;
                }
                self.open_bucket(DataType::Btree)?
            }
        };
        let bs = self.bucket_of(ob.dev, 0).map_or(0, |x| x.1);
        let gen = self.bucket(ob.dev, ob.bucket).map_or(0, |b| b.gen);
        let offset = ob.bucket * bs + ob.fill;
        self.alloc.nodes = Some(OpenBucket { fill: ob.fill + node, ..ob });
        self.bucket_mut(ob.dev, ob.bucket)?.live_nodes += 1;
        Ok(BtreePtr { dev: ob.dev, level: 0, gen, offset, seq: 0 })
    }

    /// Contiguous space for file data: at least `min` and at most `want` bytes
    /// (multiples of the block size). Returns (member, offset, length, generation).
    pub(crate) fn alloc_data(&mut self, min: u64, want: u64) -> Result<(u8, u64, u64, u32)> {
        if min > self.min_bucket_size() {
            return Err(Error::Internal("extent larger than a bucket"));
        }
        if let Some(ob) = self.alloc.data {
            let bs = self.bucket_of(ob.dev, 0).map_or(0, |x| x.1);
            if bs.saturating_sub(ob.fill) >= min {
                return self.take_data(ob, want);
            }
        }
        // A new bucket is needed. Decide whether one can be had before
        // changing anything, so ENOSPC leaves the transaction untouched.
        if self.alloc.free <= self.alloc.reserve && self.alloc.pending > 0 && !self.txn.dirty {
            // Emptied buckets become reusable once a checkpoint no longer
            // points into them; nothing of this transaction is applied yet.
            self.checkpoint()?;
        }
        if self.alloc.free <= self.alloc.reserve {
            return Err(Error::NoSpace);
        }
        if let Some(old) = self.alloc.data.take() {
            self.close_bucket(old)?;
        }
        let ob = self.open_bucket(DataType::User)?;
        self.alloc.data = Some(ob);
        self.take_data(ob, want)
    }

    fn take_data(&mut self, ob: OpenBucket, want: u64) -> Result<(u8, u64, u64, u32)> {
        let bs = self.bucket_of(ob.dev, 0).map_or(0, |x| x.1);
        let len = bs.saturating_sub(ob.fill).min(want);
        let gen = self.bucket(ob.dev, ob.bucket).map_or(0, |b| b.gen);
        self.alloc.data = Some(OpenBucket { fill: ob.fill + len, ..ob });
        Ok((ob.dev, ob.bucket * bs + ob.fill, len, gen))
    }

    /// The smallest bucket of any member: an encoded extent must fit in one.
    pub(crate) fn min_bucket_size(&self) -> u64 {
        self.alloc.bucket_size.iter().copied().min().unwrap_or(0)
    }

    /// Change the bytes charged to the user bucket holding `offset` on `dev`.
    pub(crate) fn bucket_charge(&mut self, dev: u8, offset: u64, delta: i64) -> Result<()> {
        let (b, _) = self.bucket_of(dev, offset).ok_or(Error::Corrupt("extent on a missing device"))?;
        let bk = self.bucket_mut(dev, b)?;
        if bk.data_type != DataType::User {
            return Err(Error::Corrupt("extent points into a bucket that holds no user data"));
        }
        bk.used =
            bk.used.checked_add_signed(delta).ok_or(Error::Corrupt("bucket usage would go negative"))?;
        if bk.used == 0 && !bk.open {
            self.free_bucket(dev, b)
        } else {
            self.persist_bucket(dev, b)
        }
    }

    /// After a durable checkpoint: drop the released node locations (freeing
    /// buckets left with no live node) and make pending buckets allocatable.
    pub(crate) fn alloc_after_checkpoint(&mut self) -> Result<()> {
        for t in self.alloc.tables.iter_mut() {
            for bk in t.iter_mut().filter(|b| b.pending) {
                bk.pending = false;
                self.alloc.free += 1;
            }
        }
        self.alloc.pending = 0;
        let released = core::mem::take(&mut self.pending_release);
        for p in released.iter() {
            let Some((b, _)) = self.bucket_of(p.dev, p.offset) else { continue };
            let bk = self.bucket_mut(p.dev, b)?;
            bk.live_nodes = bk.live_nodes.saturating_sub(1);
            if bk.live_nodes == 0 && bk.data_type == DataType::Btree && !bk.open {
                self.free_bucket(p.dev, b)?;
            }
        }
        Ok(())
    }

    /// Load the alloc b-tree into the tables, then count the live nodes of
    /// every bucket from the interior nodes (and the node locations released
    /// since the checkpoint, which it still references).
    ///
    /// Where the alloc keys disagree with the trees in the unsafe direction,
    /// the trees win: a bucket holding live nodes is a b-tree bucket whatever
    /// its key says (so it is never allocated or freed), and a bucket whose
    /// generation is behind a node pointer into it takes the pointer's (its
    /// key was lost or damaged: generations only grow). Keys that cannot be
    /// right (a missing member or bucket, a superblock or journal bucket) are
    /// left out. Both are counted in [`Allocator::distrusted`] for fsck.
    pub(crate) fn alloc_load(&mut self) -> Result<()> {
        let mut val = TryVec::new();
        let mut from = Pos::MIN;
        let mut distrusted = 0u64;
        while let Some((pos, _)) = self.peek(BtreeId::Alloc, from, Pos::MAX, &mut val)? {
            let info = AllocInfo::decode(&val).map_err(|_| Error::Corrupt("malformed alloc key"))?;
            let bk = u8::try_from(pos.inode).ok().and_then(|dev| self.bucket_mut(dev, pos.offset).ok());
            match bk {
                Some(bk) if !matches!(bk.data_type, DataType::Superblock | DataType::Journal) => {
                    *bk = Bucket {
                        gen: info.gen,
                        data_type: info.data_type,
                        used: info.used,
                        ..Bucket::default()
                    };
                }
                _ => distrusted += 1,
            }
            match pos.successor() {
                Some(n) => from = n,
                None => break,
            }
        }
        // Node pointers are read before generation checks begin: their
        // generations are what the checks are corrected by.
        let mut ptrs: TryVec<(u8, u64, u32)> = TryVec::new();
        self.walk_node_ptrs(&mut |p: &BtreePtr, _, _, _| ptrs.try_push((p.dev, p.offset, p.gen)))?;
        for p in self.pending_release.iter() {
            ptrs.try_push((p.dev, p.offset, p.gen))?;
        }
        for &(dev, off, gen) in ptrs.iter() {
            let Some((b, _)) = self.bucket_of(dev, off) else { continue };
            // A pointer outside the layout is reported when its node is read.
            let Ok(bk) = self.bucket_mut(dev, b) else { continue };
            if matches!(bk.data_type, DataType::Superblock | DataType::Journal) {
                continue;
            }
            bk.live_nodes += 1;
            if gen_ahead(gen, bk.gen) {
                bk.gen = gen;
                distrusted += 1;
            }
            if bk.data_type != DataType::Btree {
                bk.data_type = DataType::Btree;
                distrusted += 1;
            }
        }
        self.alloc.distrusted = distrusted;
        self.alloc.loaded = true;
        self.alloc_recount_free();
        Ok(())
    }

    /// Recompute the allocatable-bucket count from the tables.
    pub(crate) fn alloc_recount_free(&mut self) {
        self.alloc.free =
            self.alloc.tables.iter().map(|t| t.iter().filter(|b| b.allocatable()).count() as u64).sum();
    }

    /// Free buckets nothing lives in: b-tree buckets left by a crash between
    /// a checkpoint and the alloc update that would have freed them, and user
    /// buckets opened just before a crash that never got data. Runs at open,
    /// when no bucket is open.
    pub(crate) fn alloc_free_unused(&mut self) -> Result<u64> {
        let mut freed = 0;
        for dev in 0..self.alloc.tables.len() {
            let n = self.alloc.tables.get(dev).map_or(0, |t| t.len());
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
    pub(crate) fn free_data_bytes(&self) -> u64 {
        let mut bytes = 0u64;
        // Buckets emptied since the last checkpoint count as free: the
        // allocator checkpoints to reuse them when it runs short.
        let mut avail = (self.alloc.free + self.alloc.pending).saturating_sub(self.alloc.reserve);
        for (dev, t) in self.alloc.tables.iter().enumerate() {
            let bs = self.alloc.bucket_size.get(dev).copied().unwrap_or(0);
            let n = (t.iter().filter(|b| b.data_type == DataType::Free && !b.open).count() as u64).min(avail);
            avail -= n;
            bytes += n * bs;
        }
        if let Some(ob) = self.alloc.data {
            let bs = self.bucket_of(ob.dev, 0).map_or(0, |x| x.1);
            bytes += bs.saturating_sub(ob.fill);
        }
        bytes
    }
}
