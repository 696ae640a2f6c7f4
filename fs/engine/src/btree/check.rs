//! fsck pass over b-tree structure: every node reachable from the roots is
//! read from disk and verified (checksum, level, sequence, key order, ranges,
//! value formats); live nodes are counted per bucket for the bucket pass.

use crate::error::Result;
use crate::format::node::BtreePtr;
use crate::format::{BtreeId, Pos};
use crate::fs::Fs;
use crate::fsck::{ProblemKind, Reporter};
use crate::sys::{BlockDevice, TryVec};

/// Live b-tree nodes per bucket, per member.
pub type NodeCounts = TryVec<TryVec<u32>>;

impl<D: BlockDevice> Fs<D> {
    /// Verify every node; returns live node counts per bucket.
    pub(crate) fn check_btrees(&mut self, r: &mut Reporter<'_>) -> Result<NodeCounts> {
        let mut counts: NodeCounts = TryVec::new();
        for t in self.alloc.tables.iter() {
            let mut c = TryVec::new();
            c.try_resize(t.len(), 0u32)?;
            counts.try_push(c)?;
        }
        for (i, id) in BtreeId::ALL.into_iter().enumerate() {
            let mut ptrs: TryVec<(BtreePtr, Pos, Pos)> = TryVec::new();
            let walked = self.walk_tree_ptrs(id, &mut |p, _, min, max| ptrs.try_push((*p, min, max)));
            if let Err(e) = walked {
                r.error(ProblemKind::BadNode, i as u64, e);
            }
            (r.progress)(id.name(), i as u64, BtreeId::ALL.len() as u64);
            for &(p, min, max) in ptrs.iter() {
                if let Some((b, _)) = self.bucket_of(p.dev, p.offset) {
                    if let Some(c) = counts.get_mut(usize::from(p.dev)).and_then(|t| t.get_mut(b as usize)) {
                        *c += 1;
                    }
                }
                match self.read_node(p, id, min, max) {
                    Ok(n) => {
                        r.report.nodes += 1;
                        if n.level == 0 {
                            r.report.keys += n.keys.len() as u64;
                        }
                    }
                    Err(e) => r.error(ProblemKind::BadNode, i as u64, e),
                }
            }
        }
        // Nodes released since the last checkpoint are still live on disk.
        for p in self.pending_release.iter() {
            if let Some((b, _)) = self.bucket_of(p.dev, p.offset) {
                if let Some(c) = counts.get_mut(usize::from(p.dev)).and_then(|t| t.get_mut(b as usize)) {
                    *c += 1;
                }
            }
        }
        Ok(counts)
    }
}
