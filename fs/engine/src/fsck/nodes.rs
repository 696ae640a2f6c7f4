//! The node pass: every node reachable from a root is read from disk and
//! verified ([`crate::btree::check`]), and live nodes are counted per
//! bucket for the bucket pass. A tree that cannot be read completely is
//! marked lost, holding back the repairs that need it.

use super::buckets::{bucket_table, count_node, NodeCounts};
use super::salvage::Salvage;
use super::{ProblemKind, Reporter};
use crate::btree::check::NodeEvent;
use crate::error::{Error, Result};
use crate::format::node::BtreePtr;
use crate::format::BtreeId;
use crate::format::Pos;
use crate::fs::Fs;
use crate::sys::{BlockDevice, TryVec};

impl<D: BlockDevice> Fs<D> {
    /// Verify every node; returns live node counts per bucket. With
    /// repairs, a node that cannot be read for damage (not for an I/O
    /// error) is cut out of its tree ([`crate::btree::Btrees::prune`]), so
    /// that the passes after this one see a whole tree; unless every tree's
    /// root fails, which says the superblock is wrong, not the trees. What
    /// the leaves cut out still hold is returned, for
    /// [`Fs::salvage_put_back`] once the survey is done.
    pub(crate) fn check_btrees(&mut self, r: &mut Reporter<'_>) -> Result<(NodeCounts, Salvage)> {
        let mut counts: NodeCounts = bucket_table(&self.alloc)?;
        // (Copied: the store holds the allocator while the trees are walked.)
        let mut sizes = TryVec::new();
        sizes.try_extend_from_slice(&self.alloc.bucket_size)?;
        let nr = BtreeId::ALL.len() as u64;
        let mut bad: TryVec<(BtreeId, BtreePtr, (Pos, Pos), Error)> = TryVec::new();
        let mut wrong_gen: TryVec<(BtreeId, BtreePtr, BtreePtr, Pos)> = TryVec::new();
        let (mut trees_with_root, mut roots_bad) = (0u64, 0u64);
        for (i, id) in BtreeId::ALL.into_iter().enumerate() {
            (r.progress)("b-tree nodes", i as u64, nr);
            let root = self.btrees.disk_root(id).ok().flatten();
            trees_with_root += u64::from(root.is_some());
            let mut pushed = Ok(());
            let (trees, mut store) = self.parts();
            trees.verify_tree(&mut store, id, &mut |ev| match ev {
                NodeEvent::Pointer(p) => count_node(&sizes, &mut counts, p),
                NodeEvent::Good { level, keys } => {
                    r.report.nodes += 1;
                    if level == 0 {
                        r.report.keys += keys as u64;
                    }
                }
                NodeEvent::Bad { ptr, min, max, err } => {
                    if Some(ptr) == root {
                        roots_bad += 1;
                    }
                    if pushed.is_ok() {
                        pushed = bad.try_push((id, ptr, (min, max), err));
                    }
                }
                NodeEvent::WrongGen { ptr, now, min } => {
                    if pushed.is_ok() {
                        pushed = wrong_gen.try_push((id, ptr, now, min));
                    }
                }
                NodeEvent::Stopped(e) => {
                    r.walked.lost(id);
                    r.error(ProblemKind::BadNode, i as u64, e);
                }
            })?;
            pushed?;
        }
        let superblock_wrong = trees_with_root > 1 && roots_bad == trees_with_root;
        if superblock_wrong {
            r.unfixable(ProblemKind::RootsUnreadable, 0, roots_bad, 0);
        }
        // An intact node behind a pointer with the wrong generation keeps
        // its place: the pointer takes the bucket's generation.
        for &(id, ptr, now, min) in wrong_gen.iter() {
            let mut fixed = false;
            if r.fixing() {
                let (trees, mut store) = self.parts();
                fixed = trees.repoint(&mut store, id, ptr, now, min)?;
            }
            if !fixed {
                r.walked.lost(id);
            }
            r.problem(ProblemKind::NodeGen, id as u64, u64::from(ptr.gen), u64::from(now.gen), fixed);
        }
        // What the leaves cut out still hold goes back once they are gone.
        let mut salvage = Salvage::new();
        for &(id, ptr, range, err) in bad.iter() {
            let mut fixed = false;
            let mut kept = Salvage::new();
            if err.is_damage() && !superblock_wrong && !salvage.full() {
                self.salvage_leaf(&mut kept, id, ptr, range)?;
            }
            if r.fixing() && err.is_damage() && !superblock_wrong {
                let (trees, mut store) = self.parts();
                fixed = trees.prune(&mut store, id, ptr, range.0)?;
            }
            if !fixed {
                r.walked.lost(id);
            }
            if fixed || !r.fixing() {
                salvage.append(kept)?;
            }
            r.damage(ProblemKind::BadNode, id as u64, err, fixed);
        }
        // Nodes released since the last checkpoint are still live on disk.
        for p in self.alloc.released.iter() {
            count_node(&sizes, &mut counts, p);
        }
        (r.progress)("b-tree nodes", nr, nr);
        Ok((counts, salvage))
    }
}
