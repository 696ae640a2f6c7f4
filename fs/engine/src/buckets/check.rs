//! fsck passes over buckets: which buckets the trees use, learnt before any
//! repair so that repairs never allocate into them, and each bucket's alloc
//! key compared at the end with what the extents and b-tree nodes say.

use super::{alloc_pos, gen_ahead, Bucket};
use crate::btree::check::NodeCounts;
use crate::error::Result;
use crate::format::alloc_info::{AllocInfo, DataType};
use crate::format::extent::Extent;
use crate::format::node::BtreePtr;
use crate::format::{BtreeId, KeyType, Pos};
use crate::fs::Fs;
use crate::fsck::{ProblemKind, Reporter};
use crate::sys::{BlockDevice, TryVec};

/// Bytes charged by live extents per bucket, per member.
pub type Usage = TryVec<TryVec<u64>>;

/// The trees whose nodes decide which buckets hold nodes.
const NODE_TREES: [BtreeId; 6] = BtreeId::ALL;

impl<D: BlockDevice> Fs<D> {
    /// An all-zero usage table shaped like the bucket tables.
    pub(crate) fn usage_table(&self) -> Result<Usage> {
        let mut u: Usage = TryVec::new();
        for t in self.alloc.tables.iter() {
            let mut c = TryVec::new();
            c.try_resize(t.len(), 0u64)?;
            u.try_push(c)?;
        }
        Ok(u)
    }

    /// Call `f` with every extent key, canonical or not. A tree that cannot
    /// be walked to its end is marked lost (without a report: the node pass
    /// reported why).
    fn each_extent(
        &mut self,
        r: &mut Reporter<'_>,
        f: &mut dyn FnMut(&mut Self, &Extent) -> Result<()>,
    ) -> Result<()> {
        let mut val = TryVec::new();
        let mut from = Pos::MIN;
        loop {
            match self.peek_raw(BtreeId::Extents, from, Pos::MAX, &mut val) {
                Ok(Some((pos, kind))) => {
                    if kind == KeyType::Extent {
                        if let Ok(e) = Extent::decode(&val) {
                            f(self, &e)?;
                        }
                    }
                    match pos.successor() {
                        Some(p) => from = p,
                        None => return Ok(()),
                    }
                }
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
    /// them damaged: they take the newest generation pointed
    /// at and hold user data, in memory, before anything else looks at
    /// extent pointers. A bucket holding live nodes never does: its nodes
    /// decide, and extents into it are bad.
    pub(crate) fn survey_generations(&mut self, r: &mut Reporter<'_>) -> Result<()> {
        // Buckets whose generation this survey set: later pointers may raise it.
        let mut adopted: TryVec<TryVec<bool>> = TryVec::new();
        for t in self.alloc.tables.iter() {
            let mut a = TryVec::new();
            a.try_resize(t.len(), false)?;
            adopted.try_push(a)?;
        }
        self.each_extent(r, &mut |fs, e| {
            for p in e.ptrs() {
                let Some((b, _)) = fs.bucket_of(p.dev, p.offset) else { continue };
                let Some(mark) = adopted.get_mut(usize::from(p.dev)).and_then(|t| t.get_mut(b as usize))
                else {
                    continue;
                };
                let Ok(bk) = fs.bucket_mut(p.dev, b) else { continue };
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
            Ok(())
        })?;
        self.alloc_recount_free();
        Ok(())
    }

    /// Live nodes and extent usage per bucket, from the trees as they are
    /// now. An extent pointer counts when its bucket holds user data of its
    /// generation.
    pub(crate) fn survey_in_use(&mut self, r: &mut Reporter<'_>) -> Result<(NodeCounts, Usage)> {
        let mut counts = self.node_count_table()?;
        for id in BtreeId::ALL {
            let mut ptrs: TryVec<BtreePtr> = TryVec::new();
            if self.walk_tree_ptrs(id, &mut |p, _, _, _| ptrs.try_push(*p)).is_err() {
                r.walked.lost(id);
            }
            for p in ptrs.iter() {
                self.count_node(&mut counts, p);
            }
        }
        for p in self.pending_release.iter() {
            self.count_node(&mut counts, p);
        }
        let mut usage = self.usage_table()?;
        let block = u64::from(self.sb.block_size);
        self.each_extent(r, &mut |fs, e| {
            let c = e.charge(block);
            for p in e.ptrs() {
                let Some((b, _)) = fs.bucket_of(p.dev, p.offset) else { continue };
                let live =
                    fs.bucket(p.dev, b).is_some_and(|bk| bk.data_type == DataType::User && bk.gen == p.gen);
                if let (true, Some(u)) =
                    (live, usage.get_mut(usize::from(p.dev)).and_then(|t| t.get_mut(b as usize)))
                {
                    *u = u.saturating_add(c);
                }
            }
            Ok(())
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
                let Ok(bk) = self.bucket_mut(dev as u8, b as u64) else { continue };
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
        self.alloc_recount_free();
        Ok(())
    }

    /// Compare each bucket's alloc key with the usage the trees show.
    pub(crate) fn check_buckets(
        &mut self,
        r: &mut Reporter<'_>,
        usage: &Usage,
        nodes: &NodeCounts,
    ) -> Result<()> {
        let mut val = TryVec::new();
        let mut next_key = self.peek(BtreeId::Alloc, Pos::MIN, Pos::MAX, &mut val)?;
        let mut key_val = AllocInfo::decode(&val).ok();
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
                // position pass; skip past them.
                while next_key.is_some_and(|(p, _)| p < here) {
                    next_key = match next_key.and_then(|(p, _)| p.successor()) {
                        Some(from) => self.peek(BtreeId::Alloc, from, Pos::MAX, &mut val)?,
                        None => None,
                    };
                    key_val = AllocInfo::decode(&val).ok();
                }
                let key = match next_key {
                    Some((p, _)) if p == here => key_val,
                    _ => None,
                };
                let bk = self.alloc.tables.get(dev).and_then(|t| t.get(b)).copied().unwrap_or_default();
                let used = usage.get(dev).and_then(|t| t.get(b)).copied().unwrap_or(0);
                let live = nodes.get(dev).and_then(|t| t.get(b)).copied().unwrap_or(0);
                self.check_bucket(r, dev as u8, b as u64, bk, key, used, live)?;
            }
        }
        (r.progress)("buckets", total, total);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn check_bucket(
        &mut self,
        r: &mut Reporter<'_>,
        dev: u8,
        b: u64,
        bk: Bucket,
        key: Option<AllocInfo>,
        used: u64,
        live: u32,
    ) -> Result<()> {
        if matches!(bk.data_type, DataType::Superblock | DataType::Journal) {
            if used > 0 || live > 0 {
                // The extent and node passes already reported these pointers.
                r.unfixable(ProblemKind::BucketType, u64::from(dev), b, bk.data_type as u64);
            }
            return Ok(());
        }
        if live > 0 && used > 0 {
            r.unfixable(ProblemKind::BucketType, u64::from(dev), b, DataType::User as u64);
            return Ok(());
        }
        let key_type = key.map_or(DataType::Free, |k| k.data_type);
        if bk.open {
            // Filled by this run; its key was written when it was opened.
            return Ok(());
        }
        if live > 0 {
            if key_type != DataType::Btree || key.is_some_and(|k| k.gen != bk.gen) {
                let fix = r.fixing();
                if fix {
                    self.bucket_repair(dev, b, DataType::Btree, bk.gen, 0)?;
                }
                r.problem(ProblemKind::BucketNodes, u64::from(dev), b, u64::from(live), fix);
            }
            return Ok(());
        }
        if used > 0 {
            let good =
                key.is_some_and(|k| k.data_type == DataType::User && k.gen == bk.gen && k.used == used);
            if !good {
                let fix = r.may_fix(&[BtreeId::Extents]);
                if fix {
                    self.bucket_repair(dev, b, DataType::User, bk.gen, used)?;
                }
                let kind = if key_type == DataType::User {
                    ProblemKind::BucketUsage
                } else {
                    ProblemKind::BucketType
                };
                r.problem(
                    kind,
                    u64::from(dev),
                    b,
                    if kind == ProblemKind::BucketUsage { used } else { 1 },
                    fix,
                );
            }
            return Ok(());
        }
        // Nothing lives here.
        let needs: &[BtreeId] = match key_type {
            DataType::Free => return Ok(()),
            DataType::Btree => &NODE_TREES,
            _ => &[BtreeId::Extents],
        };
        // What a crash between a checkpoint and the alloc update that frees
        // a bucket leaves (`format.md` invariant 5): an open frees these.
        let leftover = key_type == DataType::Btree || key.is_some_and(|k| k.used == 0);
        let fix = r.may_fix(needs);
        if fix {
            self.in_txn(|fs| fs.free_bucket(dev, b))?;
        }
        if !leftover {
            r.problem(ProblemKind::BucketUsage, u64::from(dev), b, 0, fix);
        }
        Ok(())
    }

    fn bucket_repair(&mut self, dev: u8, b: u64, t: DataType, gen: u32, used: u64) -> Result<()> {
        self.in_txn(|fs| {
            let bk = fs.bucket_mut(dev, b)?;
            bk.data_type = t;
            bk.gen = gen;
            bk.used = used;
            bk.pending = false;
            fs.persist_bucket_now(dev, b)?;
            fs.alloc_recount_free();
            Ok(())
        })
    }
}
