//! fsck passes over b-tree structure: every node reachable from the roots is
//! read from disk and verified (checksum, level, sequence, key order, ranges,
//! value formats), and live nodes are counted per bucket for the bucket
//! pass; then every key is checked to sit at a position its b-tree allows.

use crate::error::Result;
use crate::format::node::BtreePtr;
use crate::format::{BtreeId, KeyType, Pos, ROOT_INO, SNAPSHOT_ROOT};
use crate::fs::Fs;
use crate::fsck::{ProblemKind, Reporter};
use crate::sys::{BlockDevice, TryVec};

/// Live b-tree nodes per bucket, per member.
pub type NodeCounts = TryVec<TryVec<u32>>;

/// Where a key found at the non-canonical `pos` belongs, if anywhere: the
/// fixed fields set to their fixed values, when what is left is a valid
/// position.
fn canonical_of(btree: BtreeId, pos: Pos) -> Option<Pos> {
    let p = match btree {
        BtreeId::Extents | BtreeId::Dirents | BtreeId::Xattrs => Pos { snapshot: SNAPSHOT_ROOT, ..pos },
        BtreeId::Inodes => Pos::new(pos.inode, 0, SNAPSHOT_ROOT),
        BtreeId::Alloc => Pos { snapshot: 0, ..pos },
        BtreeId::Orphans if pos.inode == 0 || pos.offset >= ROOT_INO => Pos::new(0, pos.offset, 0),
        BtreeId::Orphans => Pos::new(0, pos.inode, 0),
    };
    btree.canonical(p).then_some(p)
}

impl<D: BlockDevice> Fs<D> {
    /// An all-zero count table shaped like the bucket tables.
    pub(crate) fn node_count_table(&self) -> Result<NodeCounts> {
        let mut counts: NodeCounts = TryVec::new();
        for t in self.alloc.tables.iter() {
            let mut c = TryVec::new();
            c.try_resize(t.len(), 0u32)?;
            counts.try_push(c)?;
        }
        Ok(counts)
    }

    /// Count one node at `p` in `counts`.
    pub(crate) fn count_node(&self, counts: &mut NodeCounts, p: &BtreePtr) {
        if let Some((b, _)) = self.bucket_of(p.dev, p.offset) {
            if let Some(c) = counts.get_mut(usize::from(p.dev)).and_then(|t| t.get_mut(b as usize)) {
                *c += 1;
            }
        }
    }

    /// Verify every node; returns live node counts per bucket. A tree that
    /// cannot be walked or read completely is marked lost in the reporter.
    pub(crate) fn check_btrees(&mut self, r: &mut Reporter<'_>) -> Result<NodeCounts> {
        let mut counts = self.node_count_table()?;
        for (i, id) in BtreeId::ALL.into_iter().enumerate() {
            let mut ptrs: TryVec<(BtreePtr, Pos, Pos)> = TryVec::new();
            let walked = self.walk_tree_ptrs(id, &mut |p, _, min, max| ptrs.try_push((*p, min, max)));
            if let Err(e) = walked {
                r.walked.lost(id);
                r.error(ProblemKind::BadNode, i as u64, e);
            }
            (r.progress)("b-tree nodes", i as u64, BtreeId::ALL.len() as u64);
            for &(p, min, max) in ptrs.iter() {
                self.count_node(&mut counts, &p);
                match self.read_node(p, id, min, max) {
                    Ok(n) => {
                        r.report.nodes += 1;
                        if n.level == 0 {
                            r.report.keys += n.keys.len() as u64;
                        }
                    }
                    Err(e) => {
                        r.walked.lost(id);
                        r.error(ProblemKind::BadNode, i as u64, e);
                    }
                }
            }
        }
        // Nodes released since the last checkpoint are still live on disk.
        for p in self.pending_release.iter() {
            self.count_node(&mut counts, p);
        }
        (r.progress)("b-tree nodes", BtreeId::ALL.len() as u64, BtreeId::ALL.len() as u64);
        Ok(counts)
    }

    /// Every key must sit at a position its b-tree allows (`format.md`
    /// invariant 12); lookups never see the others. A misplaced key moves
    /// to its canonical position when that is free, else it goes.
    pub(crate) fn check_positions(&mut self, r: &mut Reporter<'_>) -> Result<()> {
        let mut val = TryVec::new();
        for (i, id) in BtreeId::ALL.into_iter().enumerate() {
            (r.progress)("key positions", i as u64, BtreeId::ALL.len() as u64);
            let mut from = Pos::MIN;
            loop {
                let (pos, kind) = match self.peek_raw(id, from, Pos::MAX, &mut val) {
                    Ok(Some(k)) => k,
                    Ok(None) => break,
                    Err(e) => {
                        r.tree_lost(id, e);
                        break;
                    }
                };
                let alloc_ok = id != BtreeId::Alloc || self.alloc_key_possible(pos);
                if !id.canonical(pos) {
                    let fix = r.fixing();
                    if fix {
                        self.move_key(id, pos, kind, &val, canonical_of(id, pos))?;
                    }
                    r.problem(ProblemKind::KeyPosition, pos.inode, pos.offset, u64::from(pos.snapshot), fix);
                } else if !alloc_ok {
                    let fix = r.fixing();
                    if fix {
                        self.in_txn(|fs| fs.btree_delete(id, pos).map(|_| ()))?;
                    }
                    r.problem(ProblemKind::AllocKeyInvalid, pos.inode, pos.offset, 0, fix);
                }
                match pos.successor() {
                    Some(p) => from = p,
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Move the key at `from` to `to` if that is free (else drop it).
    fn move_key(&mut self, id: BtreeId, from: Pos, kind: KeyType, val: &[u8], to: Option<Pos>) -> Result<()> {
        let mut scratch = TryVec::new();
        let to = match to {
            Some(p) if self.peek_raw(id, p, p, &mut scratch)?.is_none() => Some(p),
            _ => None,
        };
        self.in_txn(|fs| {
            fs.btree_delete(id, from)?;
            if let Some(p) = to {
                fs.btree_set(id, p, kind, val)?;
            }
            Ok(())
        })
    }
}
