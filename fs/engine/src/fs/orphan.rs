//! The orphan list: inodes with no name left that are still open (or were,
//! when the system went down). Each has a key in the orphans b-tree from
//! its last unlink until its deletion finishes, so that a deletion cut
//! short by a crash resumes at the next open.

use super::Fs;
use crate::btree::cursor::{Cursor, View};
use crate::error::{Error, Result};
use crate::format::{BtreeId, KeyType, Pos};
use crate::sys::{BlockDevice, TryVec};
use crate::txn::{Access, Txn};

/// Key of an orphan marker.
pub const fn orphan_pos(ino: u64) -> Pos {
    Pos::new(0, ino, 0)
}

impl<D: BlockDevice, A: Access<D>> Txn<'_, D, A> {
    /// Put an inode on the orphan list.
    pub(crate) fn orphan_add(&mut self, ino: u64) -> Result<()> {
        self.set(BtreeId::Orphans, orphan_pos(ino), KeyType::Orphan, &[])
    }

    /// Whether `ino` is on the orphan list.
    pub(crate) fn is_orphan(&mut self, ino: u64) -> Result<bool> {
        let mut val = TryVec::new();
        Ok(self.get(BtreeId::Orphans, orphan_pos(ino), &mut val)?.is_some())
    }
}

impl<D: BlockDevice> Fs<D> {
    /// Delete every inode left on the orphan list (unlinked while open when
    /// the system went down). Runs at open, and in fsck.
    pub(crate) fn process_orphans(&mut self) -> Result<u64> {
        self.with_reserve(|fs| fs.process_orphans_inner())
    }

    fn process_orphans_inner(&mut self) -> Result<u64> {
        let mut done = 0;
        let limit = self.counters.inodes.saturating_add(1);
        let mut c = Cursor::new(BtreeId::Orphans, Pos::MIN, Pos::MAX, View::LIVE);
        while let Some((pos, _)) = self.next_key(&mut c)? {
            let ino = pos.offset;
            match self.getattr(ino) {
                Ok(a) if a.inode.nlink == 0 => self.inode_delete(ino, &a.inode)?,
                Ok(_) | Err(Error::NotFound | Error::Corrupt(_)) => {
                    self.write_txn(|t| t.delete(BtreeId::Orphans, pos))?
                }
                Err(e) => return Err(e),
            }
            done += 1;
            if done > limit {
                return Err(Error::Corrupt("orphan list does not shrink"));
            }
        }
        Ok(done)
    }
}
