//! The position pass: every key must sit at a position its b-tree allows
//! (`format.md` invariant 12), since lookups never see the others. A
//! misplaced key moves to its canonical position when that is free, else it
//! goes; an alloc key of a bucket that cannot have one goes.

use super::{ProblemKind, Reporter};
use crate::btree::cursor::{Cursor, View};
use crate::error::Result;
use crate::format::alloc_info::AllocInfo;
use crate::format::{BtreeId, KeyType, Pos, ROOT_INO, SNAPSHOT_ROOT};
use crate::fs::Fs;
use crate::sys::{BlockDevice, TryVec};

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
    /// Check (and with repairs, fix) the position of every key.
    pub(crate) fn check_positions(&mut self, r: &mut Reporter<'_>) -> Result<()> {
        let mut val = TryVec::new();
        let nr = BtreeId::ALL.len() as u64;
        for (i, id) in BtreeId::ALL.into_iter().enumerate() {
            (r.progress)("key positions", i as u64, nr);
            let mut c = Cursor::new(id, Pos::MIN, Pos::MAX, View::Raw);
            loop {
                let (pos, kind) = match self.next_key(&mut c) {
                    Ok(Some(k)) => k,
                    Ok(None) => break,
                    Err(e) => {
                        r.tree_lost(id, e);
                        break;
                    }
                };
                if !id.canonical(pos) {
                    let fix = r.fixing();
                    if fix {
                        val.clear();
                        val.try_extend_from_slice(c.value())?;
                        self.move_key(id, pos, kind, &val, canonical_of(id, pos))?;
                    }
                    r.problem(ProblemKind::KeyPosition, pos.inode, pos.offset, u64::from(pos.snapshot), fix);
                } else if id == BtreeId::Alloc
                    && !AllocInfo::decode(c.value()).is_ok_and(|i| self.alloc.key_valid(pos, &i))
                {
                    let fix = r.fixing();
                    if fix {
                        self.write_txn(|t| t.delete(id, pos))?;
                    }
                    r.problem(ProblemKind::AllocKeyInvalid, pos.inode, pos.offset, 0, fix);
                }
            }
        }
        Ok(())
    }

    /// Move the key at `from` to `to` if that is free (else drop it).
    fn move_key(&mut self, id: BtreeId, from: Pos, kind: KeyType, val: &[u8], to: Option<Pos>) -> Result<()> {
        self.write_txn(|t| {
            let to = match to {
                Some(p) if !t.occupied(id, p)? => Some(p),
                _ => None,
            };
            t.delete(id, from)?;
            if let Some(p) = to {
                t.set(id, p, kind, val)?;
            }
            Ok(())
        })
    }
}
