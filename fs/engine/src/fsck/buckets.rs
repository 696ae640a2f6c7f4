//! The bucket passes: which buckets the trees use, learnt before any
//! repair so that repairs never allocate into them, and each bucket's alloc
//! key compared at the end with what the extents and b-tree nodes say
//! ([`crate::alloc::check::verdict`]).

use super::{ProblemKind, Reporter};
use crate::alloc::check::{verdict, Verdict};
use crate::alloc::{alloc_pos, gen_ahead, Allocator};
use crate::btree::cursor::{Cursor, View};
use crate::error::Result;
use crate::format::alloc_info::{AllocInfo, DataType};
use crate::format::extent::Extent;
use crate::format::node::BtreePtr;
use crate::format::{BtreeId, KeyType, Pos};
use crate::fs::Fs;
use crate::sys::{BlockDevice, TryVec};

/// Bytes charged by live extents per bucket, per member.
pub type Usage = TryVec<TryVec<u64>>;

/// Live b-tree nodes per bucket, per member.
pub type NodeCounts = TryVec<TryVec<u32>>;

/// A table with one zero entry per bucket, shaped like the allocator's.
pub(crate) fn bucket_table<T: Clone + Default>(alloc: &Allocator) -> Result<TryVec<TryVec<T>>> {
    let mut u = TryVec::new();
    for t in alloc.tables.iter() {
        let mut c = TryVec::new();
        c.try_resize(t.len(), T::default())?;
        u.try_push(c)?;
    }
    Ok(u)
}

/// Count one node at `p` in `counts` (`sizes`: bucket size per member).
pub(crate) fn count_node(sizes: &[u64], counts: &mut NodeCounts, p: &BtreePtr) {
    let Some(b) = sizes.get(usize::from(p.dev)).and_then(|&bs| p.offset.checked_div(bs)) else { return };
    if let Some(c) = counts.get_mut(usize::from(p.dev)).and_then(|t| t.get_mut(b as usize)) {
        *c = c.saturating_add(1);
    }
}

/// The trees whose nodes decide which buckets hold nodes.
const NODE_TREES: [BtreeId; 6] = BtreeId::ALL;

impl<D: BlockDevice> Fs<D> {
    /// Call `f` with every extent key, canonical or not. A tree that cannot
    /// be walked to its end is marked lost (without a report: the node pass
    /// reported why).
    fn each_extent(
        &mut self,
        r: &mut Reporter<'_>,
        f: &mut dyn FnMut(&mut Allocator, &Extent),
    ) -> Result<()> {
        let mut c = Cursor::new(BtreeId::Extents, Pos::MIN, Pos::MAX, View::Raw);
        loop {
            match self.next_key(&mut c) {
                Ok(Some((_, KeyType::Extent))) => {
                    if let Ok(e) = Extent::decode(c.value()) {
                        f(&mut self.alloc, &e);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                Err(_) => {
                    r.walked.lost(BtreeId::Extents);
                    return Ok(());
                }
            }
        }
    }

    /// Buckets the alloc keys call free (or b-tree buckets, but no node
    /// lives there) while extents point into them lost their keys or had
    /// them damaged: they take the newest generation pointed at and hold
    /// user data, in memory, before anything else looks at extent pointers.
    /// A bucket holding live nodes never does: its nodes decide, and
    /// extents into it are bad.
    pub(crate) fn survey_generations(&mut self, r: &mut Reporter<'_>) -> Result<()> {
        // Buckets whose generation this survey set: later pointers may raise it.
        let mut adopted: TryVec<TryVec<bool>> = bucket_table(&self.alloc)?;
        self.each_extent(r, &mut |alloc, e| {
            for p in e.ptrs() {
                let Some((b, _)) = alloc.bucket_of(p.dev, p.offset) else { continue };
                let Some(mark) = adopted.get_mut(usize::from(p.dev)).and_then(|t| t.get_mut(b as usize))
                else {
                    continue;
                };
                let Ok(bk) = alloc.bucket_mut(p.dev, b) else { continue };
                if bk.live_nodes > 0 || bk.open {
                    continue;
                }
                // (A b-tree bucket holding no live node is as free as a
                // free one: its key is wrong.)
                let take = match bk.data_type {
                    DataType::Free | DataType::Btree => !gen_ahead(bk.gen, p.gen),
                    DataType::User => *mark && gen_ahead(p.gen, bk.gen),
                    _ => false,
                };
                if take {
                    bk.gen = p.gen;
                    bk.data_type = DataType::User;
                    *mark = true;
                }
            }
        })?;
        self.alloc.recount_free();
        Ok(())
    }

    /// Live nodes and extent usage per bucket, from the trees as they are
    /// now. An extent pointer counts when its bucket holds user data of its
    /// generation.
    pub(crate) fn survey_in_use(&mut self, r: &mut Reporter<'_>) -> Result<(NodeCounts, Usage)> {
        let mut counts: NodeCounts = bucket_table(&self.alloc)?;
        let mut sizes = TryVec::new();
        sizes.try_extend_from_slice(&self.alloc.bucket_size)?;
        for id in BtreeId::ALL {
            let (trees, mut store) = self.parts();
            if trees
                .walk_ptrs(&mut store, id, false, &mut |p, _, _| {
                    count_node(&sizes, &mut counts, p);
                    Ok(())
                })
                .is_err()
            {
                r.walked.lost(id);
            }
        }
        for p in self.alloc.released.iter() {
            count_node(&sizes, &mut counts, p);
        }
        let mut usage: Usage = bucket_table(&self.alloc)?;
        let block = u64::from(self.sb.block_size);
        self.each_extent(r, &mut |alloc, e| {
            let c = e.charge(block);
            for p in e.ptrs() {
                let Some((b, _)) = alloc.bucket_of(p.dev, p.offset) else { continue };
                let live = alloc
                    .bucket(p.dev, b)
                    .is_some_and(|bk| bk.data_type == DataType::User && bk.gen == p.gen);
                if let (true, Some(u)) =
                    (live, usage.get_mut(usize::from(p.dev)).and_then(|t| t.get_mut(b as usize)))
                {
                    *u = u.saturating_add(c);
                }
            }
        })?;
        Ok((counts, usage))
    }

    /// Before the first repair: every bucket the trees use is held in memory
    /// as what it holds, with the usage its extents charge, so that repairs
    /// allocate only from buckets proven free and account correctly.
    pub(crate) fn protect_in_use(&mut self, r: &mut Reporter<'_>) -> Result<()> {
        let (counts, usage) = self.survey_in_use(r)?;
        for dev in 0..self.alloc.tables.len() {
            let n = self.alloc.tables.get(dev).map_or(0, |t| t.len());
            for b in 0..n {
                let live = counts.get(dev).and_then(|t| t.get(b)).copied().unwrap_or(0);
                let used = usage.get(dev).and_then(|t| t.get(b)).copied().unwrap_or(0);
                let Ok(bk) = self.alloc.bucket_mut(dev as u8, b as u64) else { continue };
                if matches!(bk.data_type, DataType::Superblock | DataType::Journal) {
                    continue;
                }
                if live > 0 {
                    bk.data_type = DataType::Btree;
                    bk.live_nodes = bk.live_nodes.max(live);
                } else if used > 0 && bk.data_type == DataType::User {
                    bk.used = used;
                }
            }
        }
        self.alloc.recount_free();
        Ok(())
    }

    /// Compare each bucket's alloc key with the usage the trees show.
    pub(crate) fn check_buckets(
        &mut self,
        r: &mut Reporter<'_>,
        usage: &Usage,
        nodes: &NodeCounts,
    ) -> Result<()> {
        let mut c = Cursor::new(BtreeId::Alloc, Pos::MIN, Pos::MAX, View::LIVE);
        let mut next_key = self.next_key(&mut c)?;
        let mut key_val = AllocInfo::decode(c.value()).ok();
        let total: u64 = self.alloc.tables.iter().map(|t| t.len() as u64).sum();
        let mut done = 0u64;
        for dev in 0..self.alloc.tables.len() {
            let n = self.alloc.tables.get(dev).map_or(0, |t| t.len());
            for b in 0..n {
                if done.is_multiple_of(1024) {
                    (r.progress)("buckets", done, total);
                }
                done += 1;
                let here = alloc_pos(dev as u8, b as u64);
                // Keys of buckets that cannot have one were handled by the
                // position pass; skip past them. Repairs below change keys
                // at or before `here` only, behind the cursor.
                while next_key.is_some_and(|(p, _)| p < here) {
                    next_key = self.next_key(&mut c)?;
                    key_val = AllocInfo::decode(c.value()).ok();
                }
                let key = match next_key {
                    Some((p, _)) if p == here => key_val,
                    _ => None,
                };
                let bk = self.alloc.tables.get(dev).and_then(|t| t.get(b)).copied().unwrap_or_default();
                let used = usage.get(dev).and_then(|t| t.get(b)).copied().unwrap_or(0);
                let live = nodes.get(dev).and_then(|t| t.get(b)).copied().unwrap_or(0);
                self.check_bucket(r, dev as u8, b as u64, verdict(&bk, key, used, live))?;
            }
        }
        (r.progress)("buckets", total, total);
        Ok(())
    }

    fn check_bucket(&mut self, r: &mut Reporter<'_>, dev: u8, b: u64, v: Verdict) -> Result<()> {
        let d = u64::from(dev);
        match v {
            Verdict::Good => {}
            // The extent and node passes already reported these pointers.
            Verdict::Conflict(t) => r.unfixable(ProblemKind::BucketType, d, b, t as u64),
            Verdict::Nodes { gen, live } => {
                let fix = r.fixing();
                if fix {
                    self.bucket_repair(dev, b, DataType::Btree, gen, 0)?;
                }
                r.problem(ProblemKind::BucketNodes, d, b, u64::from(live), fix);
            }
            Verdict::Data { gen, used, key_was_user } => {
                let fix = r.may_fix(&[BtreeId::Extents]);
                if fix {
                    self.bucket_repair(dev, b, DataType::User, gen, used)?;
                }
                if key_was_user {
                    r.problem(ProblemKind::BucketUsage, d, b, used, fix);
                } else {
                    r.problem(ProblemKind::BucketType, d, b, 1, fix);
                }
            }
            Verdict::Free { leftover, needs_nodes } => {
                let needs: &[BtreeId] = if needs_nodes { &NODE_TREES } else { &[BtreeId::Extents] };
                let fix = r.may_fix(needs);
                if fix {
                    self.alloc.free_bucket(dev, b)?;
                    self.write_txn(|_| Ok(()))?;
                }
                // What a crash between a checkpoint and the alloc update that
                // frees a bucket leaves (`format.md` invariant 5) is freed
                // silently, as an open would.
                if !leftover {
                    r.problem(ProblemKind::BucketUsage, d, b, 0, fix);
                }
            }
        }
        Ok(())
    }

    /// Set a bucket's state and write its key (in a transaction of its own).
    fn bucket_repair(&mut self, dev: u8, b: u64, t: DataType, gen: u32, used: u64) -> Result<()> {
        let bk = self.alloc.bucket_mut(dev, b)?;
        bk.data_type = t;
        bk.gen = gen;
        bk.used = used;
        bk.pending = false;
        self.alloc.mark_dirty(dev, b)?;
        self.alloc.recount_free();
        self.write_txn(|_| Ok(()))
    }
}
