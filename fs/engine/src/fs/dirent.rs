//! Directory entries: lookup, link, unlink, rmdir, rename and readdir.
//!
//! An entry lives at `(dir, slot, snapshot)`, where `slot` is one of the
//! `HASH_PROBE` slots starting at the name's hash slot; lookups compare names
//! across those slots. The readdir cursor is a slot, so it stays valid while
//! other entries come and go.

use super::change::Change;
use super::inode::{check_name, inode_pos, Attr, NewInode};
use super::orphan::orphan_pos;
use super::Fs;
use crate::error::{Error, Result};
use crate::format::dirent::{name_slot, Dirent, HASH_PROBE};
use crate::format::inode::{dirent_type, Inode, S_IFCHR};
use crate::format::{BtreeId, KeyType, Pos, NAME_MAX, ROOT_INO, SNAPSHOT_ROOT};
use crate::sys::{now_ns, BlockDevice, TryVec};
use crate::txn::{Access, Txn};

/// rename(2) flag: fail if the target exists.
pub const RENAME_NOREPLACE: u32 = 1;
/// rename(2) flag: swap source and target.
pub const RENAME_EXCHANGE: u32 = 2;
/// rename(2) flag: leave a whiteout (character device 0:0) at the source
/// name, for overlayfs upper directories.
pub const RENAME_WHITEOUT: u32 = 4;

/// Readdir callback: `(name, inode, dtype, next_cursor) -> keep going`.
pub type ReaddirFn<'a> = dyn FnMut(&[u8], u64, u8, u64) -> bool + 'a;

/// A directory entry found by lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Key of the entry.
    pub pos: Pos,
    /// Inode it names.
    pub ino: u64,
    /// `DT_*` type.
    pub dtype: u8,
}

impl<D: BlockDevice, A: Access<D>> Txn<'_, D, A> {
    /// The first free slot of the probe window of `name` in `dir` (free of
    /// any key, misplaced ones too). Eight names with one hash slot leave
    /// none: only a deliberate collision does that, and it gets ENOSPC.
    pub(crate) fn dirent_free_slot(&mut self, dir: u64, name: &[u8]) -> Result<Pos> {
        let slot = name_slot(self.fs().sb.hash_seed, name);
        for s in slot..slot + HASH_PROBE {
            let pos = Pos::new(dir, s, SNAPSHOT_ROOT);
            if !self.occupied(BtreeId::Dirents, pos)? {
                return Ok(pos);
            }
        }
        Err(Error::NoSpace)
    }

    /// Whether a directory has no entries.
    pub(crate) fn dir_empty(&mut self, dir: u64) -> Result<bool> {
        let mut c = self.inode_cursor(BtreeId::Dirents, dir, 0);
        Ok(self.next(&mut c, &mut TryVec::new())?.is_none())
    }

    /// Store the entry `name` -> `target` at `pos`.
    pub(crate) fn dirent_set_target(&mut self, pos: Pos, name: &[u8], target: u64, dtype: u8) -> Result<()> {
        let d = Dirent { target, dtype, name };
        let mut buf = [0u8; crate::format::dirent::DIRENT_HEADER_BYTES + NAME_MAX];
        let n = d.encode(&mut buf).map_err(|_| Error::NameTooLong)?;
        self.set(BtreeId::Dirents, pos, KeyType::Dirent, buf.get(..n).unwrap_or(&[]))
    }

    /// Whether `ancestor` is `dir` or one of its ancestors.
    fn is_ancestor(&mut self, ancestor: u64, mut dir: u64) -> Result<bool> {
        // Bounded by the number of inodes; a loop means corruption.
        let limit = self.fs().counters.inodes.saturating_add(2);
        for _ in 0..limit {
            if dir == ancestor {
                return Ok(true);
            }
            if dir == ROOT_INO {
                return Ok(false);
            }
            dir = self.inode_read(dir)?.parent;
        }
        Err(Error::Corrupt("directory parent chain loops"))
    }

    fn remove_entry(&mut self, dir: u64, name: &[u8], want_dir: bool) -> Result<Attr> {
        let mut parent = self.dir_read(dir)?;
        let f = self.dirent_find(dir, name)?.ok_or(Error::NotFound)?;
        let mut inode = self.inode_read(f.ino)?;
        if want_dir {
            if !inode.is_dir() {
                return Err(Error::NotDir);
            }
            if !self.dir_empty(f.ino)? {
                return Err(Error::NotEmpty);
            }
        } else if inode.is_dir() {
            return Err(Error::IsDir);
        }
        let now = now_ns();
        if want_dir {
            inode.nlink = 0;
            parent.nlink = parent.nlink.saturating_sub(1);
        } else {
            inode.nlink = inode.nlink.saturating_sub(1);
        }
        inode.ctime = now;
        parent.mtime = now;
        parent.ctime = now;
        self.delete(BtreeId::Dirents, f.pos)?;
        self.inode_write(f.ino, &inode)?;
        self.inode_write(dir, &parent)?;
        if inode.nlink == 0 {
            self.orphan_add(f.ino)?;
        }
        Ok(Attr { ino: f.ino, inode })
    }

    #[allow(clippy::too_many_arguments)]
    fn rename(
        &mut self,
        olddir: u64,
        oldname: &[u8],
        newdir: u64,
        newname: &[u8],
        flags: u32,
        owner: (u32, u32),
    ) -> Result<Option<u64>> {
        let mut op = self.dir_read(olddir)?;
        let src = self.dirent_find(olddir, oldname)?.ok_or(Error::NotFound)?;
        let mut np = if newdir == olddir { op } else { self.dir_read(newdir)? };
        let dst = self.dirent_find(newdir, newname)?;
        let mut si = self.inode_read(src.ino)?;
        if flags & RENAME_EXCHANGE != 0 && dst.is_none() {
            return Err(Error::NotFound);
        }
        if flags & RENAME_NOREPLACE != 0 && dst.is_some() {
            return Err(Error::Exists);
        }
        if dst.is_some_and(|d| d.ino == src.ino) {
            return Ok(None); // same inode: POSIX says do nothing
        }
        if si.is_dir() && newdir != olddir && self.is_ancestor(src.ino, newdir)? {
            return Err(Error::Invalid);
        }
        let mut di: Option<Inode> = match dst {
            Some(d) => Some(self.inode_read(d.ino)?),
            None => None,
        };
        if flags & RENAME_EXCHANGE != 0 {
            if let (Some(d), Some(dn)) = (dst, di) {
                if dn.is_dir() && newdir != olddir && self.is_ancestor(d.ino, olddir)? {
                    return Err(Error::Invalid);
                }
            }
        } else if let (Some(d), Some(dn)) = (dst, di) {
            match (si.is_dir(), dn.is_dir()) {
                (true, false) => return Err(Error::NotDir),
                (false, true) => return Err(Error::IsDir),
                (true, true) if !self.dir_empty(d.ino)? => return Err(Error::NotEmpty),
                _ => {}
            }
        }
        let now = now_ns();
        let same_dir = olddir == newdir;
        let orig_nlink = op.nlink;
        let mut orphan = None;
        // Link count bookkeeping for directories changing parent.
        if flags & RENAME_EXCHANGE != 0 {
            let Some(dn) = di.as_mut() else { return Err(Error::Internal("exchange")) };
            if !same_dir {
                if si.is_dir() && !dn.is_dir() {
                    op.nlink = op.nlink.saturating_sub(1);
                    np.nlink = np.nlink.saturating_add(1);
                } else if !si.is_dir() && dn.is_dir() {
                    op.nlink = op.nlink.saturating_add(1);
                    np.nlink = np.nlink.saturating_sub(1);
                }
                if si.is_dir() {
                    si.parent = newdir;
                }
                if dn.is_dir() {
                    dn.parent = olddir;
                }
            }
            dn.ctime = now;
        } else {
            if let Some(dn) = di.as_mut() {
                if dn.is_dir() {
                    dn.nlink = 0;
                    np.nlink = np.nlink.saturating_sub(1);
                } else {
                    dn.nlink = dn.nlink.saturating_sub(1);
                }
                dn.ctime = now;
                if dn.nlink == 0 {
                    orphan = dst.map(|d| d.ino);
                }
            }
            if si.is_dir() && !same_dir {
                op.nlink = op.nlink.saturating_sub(1);
                np.nlink = np.nlink.saturating_add(1);
                si.parent = newdir;
            }
        }
        si.ctime = now;
        op.mtime = now;
        op.ctime = now;
        np.mtime = now;
        np.ctime = now;
        if flags & RENAME_EXCHANGE != 0 {
            let d = dst.ok_or(Error::Internal("exchange"))?;
            self.dirent_set_target(src.pos, oldname, d.ino, d.dtype)?;
            self.dirent_set_target(d.pos, newname, src.ino, src.dtype)?;
        } else {
            // The target slot is chosen while the old name still holds its
            // own: a rename within one probe window never lands on it.
            let new_slot = match dst {
                Some(d) => d.pos,
                None => self.dirent_free_slot(newdir, newname)?,
            };
            // The old name goes, or names the whiteout from now on.
            if flags & RENAME_WHITEOUT != 0 {
                let n = NewInode { mode: S_IFCHR, uid: owner.0, gid: owner.1, rdev: 0 };
                let (wino, w) = self.new_inode(olddir, None, n)?;
                self.inode_create(wino, &w)?;
                let dtype = dirent_type(w.mode).ok_or(Error::Internal("whiteout type"))?;
                self.dirent_set_target(src.pos, oldname, wino, dtype)?;
            } else {
                self.delete(BtreeId::Dirents, src.pos)?;
            }
            self.dirent_set_target(new_slot, newname, src.ino, src.dtype)?;
        }
        self.inode_write(src.ino, &si)?;
        if let (Some(d), Some(dn)) = (dst, di) {
            self.inode_write(d.ino, &dn)?;
        }
        if let Some(o) = orphan {
            self.orphan_add(o)?;
        }
        if same_dir {
            // `op` and `np` are two views of one directory: add up their changes.
            op.nlink = (u64::from(op.nlink) + u64::from(np.nlink))
                .saturating_sub(u64::from(orig_nlink))
                .min(u64::from(u32::MAX)) as u32;
            self.inode_write(olddir, &op)?;
        } else {
            self.inode_write(olddir, &op)?;
            self.inode_write(newdir, &np)?;
        }
        Ok(orphan)
    }
}

/// Add a hard link ([`Fs::link`]).
pub struct Link<'a> {
    /// The inode linked to.
    pub ino: u64,
    /// The directory of the new name.
    pub dir: u64,
    /// The new name.
    pub name: &'a [u8],
}

impl<D: BlockDevice> Change<D> for Link<'_> {
    type Out = Attr;

    fn body<A: Access<D>>(&mut self, t: &mut Txn<'_, D, A>) -> Result<Attr> {
        let (ino, dir, name) = (self.ino, self.dir, self.name);
        check_name(name)?;
        let mut inode = t.inode_read(ino)?;
        if inode.is_dir() {
            return Err(Error::NotPermitted);
        }
        let revive = inode.nlink == 0;
        if revive && !t.is_orphan(ino)? {
            return Err(Error::NotFound);
        }
        if inode.nlink >= u32::MAX - 1 {
            return Err(Error::TooManyLinks);
        }
        let mut parent = t.dir_read(dir)?;
        if t.dirent_find(dir, name)?.is_some() {
            return Err(Error::Exists);
        }
        let slot = t.dirent_free_slot(dir, name)?;
        let dtype = dirent_type(inode.mode).ok_or(Error::Corrupt("inode with bad mode"))?;
        let now = now_ns();
        inode.nlink += 1;
        inode.ctime = now;
        parent.mtime = now;
        parent.ctime = now;
        t.dirent_set_target(slot, name, ino, dtype)?;
        t.inode_write(ino, &inode)?;
        if revive {
            t.delete(BtreeId::Orphans, orphan_pos(ino))?;
        }
        t.inode_write(dir, &parent)?;
        Ok(Attr { ino, inode })
    }
}

/// Remove an entry ([`Fs::unlink`], [`Fs::rmdir`]).
pub struct Remove<'a> {
    /// The directory.
    pub dir: u64,
    /// The name.
    pub name: &'a [u8],
    /// rmdir: the entry must be an empty directory (else must not be one).
    pub want_dir: bool,
}

impl<D: BlockDevice> Change<D> for Remove<'_> {
    type Out = Attr;
    const FREES: bool = true;

    fn body<A: Access<D>>(&mut self, t: &mut Txn<'_, D, A>) -> Result<Attr> {
        if self.name == b"." {
            return Err(Error::Invalid);
        }
        if self.name == b".." {
            return Err(Error::NotEmpty);
        }
        check_name(self.name)?;
        t.remove_entry(self.dir, self.name, self.want_dir)
    }
}

/// rename(2) ([`Fs::rename`]).
pub struct Rename<'a> {
    /// The source's directory.
    pub olddir: u64,
    /// The source's name.
    pub oldname: &'a [u8],
    /// The target's directory.
    pub newdir: u64,
    /// The target's name.
    pub newname: &'a [u8],
    /// `RENAME_*` flags.
    pub flags: u32,
    /// Owner of a whiteout, `(uid, gid)`.
    pub owner: (u32, u32),
}

impl<D: BlockDevice> Change<D> for Rename<'_> {
    type Out = Option<u64>;

    fn body<A: Access<D>>(&mut self, t: &mut Txn<'_, D, A>) -> Result<Option<u64>> {
        let flags = self.flags;
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) != 0
            || (flags & RENAME_EXCHANGE != 0 && flags != RENAME_EXCHANGE)
        {
            return Err(Error::Invalid);
        }
        check_name(self.oldname)?;
        check_name(self.newname)?;
        t.rename(self.olddir, self.oldname, self.newdir, self.newname, flags, self.owner)
    }
}

impl<D: BlockDevice> Fs<D> {
    /// Look `name` up in `dir`.
    pub fn lookup(&mut self, dir: u64, name: &[u8]) -> Result<Attr> {
        self.read_txn(|t| t.lookup(dir, name))
    }

    /// Call `f(name, ino, dtype, next_cursor)` for each entry from `cursor` on,
    /// until it returns false. Cursors 0 and 1 are left to the caller for "."
    /// and ".."; entries start at a higher cursor.
    pub fn readdir(&mut self, dir: u64, cursor: u64, f: &mut ReaddirFn<'_>) -> Result<()> {
        self.read_txn(|t| t.readdir(dir, cursor, f))
    }

    /// Add a hard link to `ino` named `name` in `dir`. An inode with no
    /// links left gets its name back only while on the orphan list (an
    /// `O_TMPFILE` file; the VFS refuses this for other unlinked files), and
    /// leaves the list.
    pub fn link(&mut self, ino: u64, dir: u64, name: &[u8]) -> Result<Attr> {
        self.change(&mut Link { ino, dir, name })
    }

    /// Remove the entry `name` (not a directory) from `dir`. Returns the
    /// inode; when its link count reaches zero it is put on the orphan list
    /// and deleted by [`Fs::evict`].
    pub fn unlink(&mut self, dir: u64, name: &[u8]) -> Result<Attr> {
        self.change(&mut Remove { dir, name, want_dir: false })
    }

    /// Remove the empty directory `name` from `dir`.
    pub fn rmdir(&mut self, dir: u64, name: &[u8]) -> Result<Attr> {
        self.change(&mut Remove { dir, name, want_dir: true })
    }

    /// Rename `oldname` in `olddir` to `newname` in `newdir`, with
    /// [`RENAME_NOREPLACE`], [`RENAME_EXCHANGE`] or [`RENAME_WHITEOUT`] (the
    /// whiteout belongs to `owner`, `(uid, gid)`). Returns the inode that lost
    /// its last link when a target was replaced, for the caller to evict.
    pub fn rename(
        &mut self,
        olddir: u64,
        oldname: &[u8],
        newdir: u64,
        newname: &[u8],
        flags: u32,
        owner: (u32, u32),
    ) -> Result<Option<u64>> {
        self.change(&mut Rename { olddir, oldname, newdir, newname, flags, owner })
    }

    /// The parent directory of directory `dir` (for "..").
    pub fn parent_of(&mut self, dir: u64) -> Result<u64> {
        self.read_txn(|t| {
            let d = t.dir_read(dir)?;
            Ok(if dir == ROOT_INO { ROOT_INO } else { d.parent })
        })
    }

    /// Whether `ino` exists.
    pub fn exists(&mut self, ino: u64) -> Result<bool> {
        let mut val = TryVec::new();
        self.read_txn(|t| Ok(t.get(BtreeId::Inodes, inode_pos(ino), &mut val)?.is_some()))
    }
}

impl<D: BlockDevice, A: Access<D>> Txn<'_, D, A> {
    /// Look `name` up in `dir` ([`Fs::lookup`]).
    pub fn lookup(&mut self, dir: u64, name: &[u8]) -> Result<Attr> {
        if name.len() > NAME_MAX {
            return Err(Error::NameTooLong);
        }
        self.dir_read(dir)?;
        let f = self.dirent_find(dir, name)?.ok_or(Error::NotFound)?;
        let inode = self.inode_read(f.ino).map_err(|e| match e {
            Error::NotFound => Error::Corrupt("directory entry names a missing inode"),
            e => e,
        })?;
        Ok(Attr { ino: f.ino, inode })
    }

    /// The entries of `dir` from `cursor` on ([`Fs::readdir`]).
    pub fn readdir(&mut self, dir: u64, cursor: u64, f: &mut ReaddirFn<'_>) -> Result<()> {
        self.dir_read(dir)?;
        let mut c = self.inode_cursor(BtreeId::Dirents, dir, cursor);
        let mut val = TryVec::new();
        while let Some((pos, kind)) = self.next(&mut c, &mut val)? {
            if kind == KeyType::Dirent {
                let d = Dirent::decode(&val).map_err(|_| Error::Corrupt("malformed dirent"))?;
                if !f(d.name, d.target, d.dtype, pos.offset + 1) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Find `name` in `dir`.
    pub(crate) fn dirent_find(&mut self, dir: u64, name: &[u8]) -> Result<Option<Found>> {
        let slot = name_slot(self.fs().sb.hash_seed, name);
        self.dirent_find_in(dir, name, slot, slot + HASH_PROBE)
    }

    /// Find `name` in `dir` among the slots `[lo, hi)`.
    pub(crate) fn dirent_find_in(
        &mut self,
        dir: u64,
        name: &[u8],
        lo: u64,
        hi: u64,
    ) -> Result<Option<Found>> {
        if lo >= hi {
            return Ok(None);
        }
        let mut c = self.cursor(BtreeId::Dirents, Pos::new(dir, lo, 0), Pos::new(dir, hi - 1, u32::MAX));
        let mut val = TryVec::new();
        while let Some((pos, kind)) = self.next(&mut c, &mut val)? {
            if kind == KeyType::Dirent {
                let d = Dirent::decode(&val).map_err(|_| Error::Corrupt("malformed dirent"))?;
                if d.name == name {
                    return Ok(Some(Found { pos, ino: d.target, dtype: d.dtype }));
                }
            }
        }
        Ok(None)
    }
}
