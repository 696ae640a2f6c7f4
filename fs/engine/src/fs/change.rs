//! Changes of one transaction (create, link, unlink, rename, attributes,
//! extended attributes), made one of two ways from one body:
//! - exclusively ([`Fs::change`]): begin, body, commit, the file system
//!   held `&mut` throughout;
//! - optimistically ([`Fs::prepare_change`] then [`Fs::commit_prepared`]):
//!   the body runs with the file system held shared, beside readers and
//!   other changes' bodies, over cached nodes only, recording what it
//!   reads; the commit, held exclusively, applies it unless a commit made
//!   since changed a key it read ([`crate::error::Error::Conflict`]: the
//!   caller makes the body again). See `crate::txn` for the read sets and
//!   the change log.
//!
//! A body takes its effects only through its transaction (the restart
//! rule of `crate::txn`): it may run several times before one commits.

use super::Fs;
use crate::btree::NodeMiss;
use crate::error::Result;
use crate::sys::BlockDevice;
use crate::txn::{Access, Prepared, Txn};

/// A change made by one transaction, exclusively or optimistically.
pub trait Change<D: BlockDevice> {
    /// What the change returns once committed.
    type Out;
    /// Whether it may use the node room held back for operations that
    /// free space (deleting must work on a file system full of metadata).
    const FREES: bool = false;
    /// Read what it needs and buffer its updates in `t`.
    fn body<A: Access<D>>(&mut self, t: &mut Txn<'_, D, A>) -> Result<Self::Out>;
}

impl<D: BlockDevice> Fs<D> {
    /// Make `c` holding the file system exclusively.
    pub fn change<C: Change<D>>(&mut self, c: &mut C) -> Result<C::Out> {
        self.check_user_writable()?;
        if C::FREES {
            self.with_reserve(|fs| fs.write_txn(|t| c.body(t)))
        } else {
            self.write_txn(|t| c.body(t))
        }
    }

    /// Make the body of `c` holding the file system shared: its result
    /// and the change to commit with [`Fs::commit_prepared`]. Where the
    /// body needs a node that is on disk only it fails with
    /// [`crate::error::Error::NotCached`] and names the node in `miss`
    /// (none: make the change exclusively).
    pub fn prepare_change<C: Change<D>>(
        &self,
        c: &mut C,
        miss: &mut Option<NodeMiss>,
    ) -> Result<(C::Out, Prepared)> {
        self.check_user_writable()?;
        let mut t = Txn::optimistic(self, C::FREES);
        let r = c.body(&mut t);
        *miss = t.miss();
        let out = r?;
        Ok((out, t.prepare()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::format::inode::S_IFREG;
    use crate::format::{FIRST_FREE_INO, ROOT_INO};
    use crate::fs::inode::Create;
    use crate::fs::FormatOptions;
    use crate::sys::{MemDevice, TryVec};

    fn create(name: &[u8]) -> Create<'_> {
        Create { dir: ROOT_INO, name, mode: S_IFREG | 0o644, uid: 0, gid: 0, rdev: 0 }
    }

    /// Optimistic bodies that took the last numbers leave the gaps to the
    /// exclusive search, which must not start from the numbers they took.
    #[test]
    fn numbers_go_to_the_gaps_after_bodies_took_the_last() {
        let mut devs = TryVec::new();
        devs.try_push(MemDevice::new(32 << 20)).unwrap();
        let mut fs = Fs::format(devs, &FormatOptions { uuid: [3; 16], ..Default::default() }).unwrap();
        fs.next_ino = u64::MAX - 2;
        let (a, pa) = fs.prepare_change(&mut create(b"a"), &mut None).unwrap();
        fs.commit_prepared(pa).unwrap();
        let (b, pb) = fs.prepare_change(&mut create(b"b"), &mut None).unwrap();
        fs.commit_prepared(pb).unwrap();
        assert_eq!((a.ino, b.ino), (u64::MAX - 2, u64::MAX - 1));
        assert_eq!(fs.create(ROOT_INO, b"c", S_IFREG | 0o644, 0, 0, 0).unwrap().ino, u64::MAX);
        // Every number above is taken: from here on, the gaps.
        let d = fs.create(ROOT_INO, b"d", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
        let e = fs.create(ROOT_INO, b"e", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
        assert!(d >= FIRST_FREE_INO && e > d && e < a.ino, "{d} {e}");
        // A body does not search the gaps: the exclusive call does.
        assert_eq!(
            fs.prepare_change(&mut create(b"f"), &mut None).err(),
            Some(crate::error::Error::NotCached)
        );
    }
}
