//! Inodes: attributes, creation of every file type, setattr, and deletion of
//! unlinked inodes (immediately, or through the orphan list while open).

use core::sync::atomic::Ordering;

use super::change::Change;
use super::extent::CUT_BATCH;
use super::xattr::XATTR_CUT_BATCH;
use super::Fs;
use crate::error::{Error, Result};
use crate::format::inode::{
    dirent_type, Inode, FLAGS_KNOWN, FLAG_PROJINHERIT, INODE_BYTES, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
};
use crate::format::{BtreeId, KeyType, Pos, FIRST_FREE_INO, ROOT_INO, SNAPSHOT_ROOT, SYMLINK_MAX};
use crate::sys::{now_ns, BlockDevice, TryVec};
use crate::txn::{Access, Txn};

/// An inode number with its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// The inode.
    pub inode: Inode,
}

/// Attribute changes for [`Fs::setattr`]; `None` leaves a field alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    /// New permission bits (the file type bits are ignored).
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate or extend).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<i64>,
    /// New modification time.
    pub mtime: Option<i64>,
    /// New change time (default: now, when anything changes).
    pub ctime: Option<i64>,
    /// New `FLAG_*` bits.
    pub flags: Option<u32>,
    /// New project id.
    pub projid: Option<u32>,
}

/// Key of an inode.
pub const fn inode_pos(ino: u64) -> Pos {
    Pos::new(ino, 0, SNAPSHOT_ROOT)
}

/// What a new inode is made of ([`Txn::new_inode`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewInode {
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) rdev: u64,
}

impl<D: BlockDevice, A: Access<D>> Txn<'_, D, A> {
    /// Write an inode.
    pub(crate) fn inode_write(&mut self, ino: u64, inode: &Inode) -> Result<()> {
        let mut buf = [0u8; INODE_BYTES];
        inode.encode(&mut buf).map_err(|_| Error::Internal("inode encode"))?;
        self.set(BtreeId::Inodes, inode_pos(ino), KeyType::Inode, &buf)
    }

    /// The next inode number and a fresh inode for it in `dir`: one link
    /// (two for a directory), all times now. A `parent` with
    /// [`FLAG_PROJINHERIT`] hands on its project id, and to subdirectories
    /// the flag too. Stored with [`Txn::inode_create`].
    pub(crate) fn new_inode(
        &mut self,
        dir: u64,
        parent: Option<&Inode>,
        n: NewInode,
    ) -> Result<(u64, Inode)> {
        let now = now_ns();
        let ino = self.free_ino()?;
        let mut inode = Inode {
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            nlink: if n.mode & S_IFMT == S_IFDIR { 2 } else { 1 },
            atime: now,
            mtime: now,
            ctime: now,
            btime: now,
            generation: (now as u32) ^ (ino as u32),
            rdev: n.rdev,
            parent: dir,
            ..Default::default()
        };
        if let Some(p) = parent.filter(|p| p.flags & FLAG_PROJINHERIT != 0) {
            inode.projid = p.projid;
            if n.mode & S_IFMT == S_IFDIR {
                inode.flags |= FLAG_PROJINHERIT;
            }
        }
        Ok((ino, inode))
    }

    /// A number no inode has. Numbers are given out upwards; once the
    /// largest is in use (only a crafted image gets there), the gaps below
    /// it are searched, from the first free number on. An optimistic
    /// change takes its number at once (changes beside it take others),
    /// and notes it as read: a change that took the same number first
    /// makes it conflict. Searching the gaps changes the file system: an
    /// optimistic change leaves that to the call made exclusively.
    fn free_ino(&mut self) -> Result<u64> {
        let fs = self.fs();
        let taken = fs.ino_taken.load(Ordering::Relaxed);
        if self.is_optimistic() {
            if fs.ino_gaps || fs.next_ino == 0 || self.next_ino.is_some() {
                return Err(Error::NotCached);
            }
            let mut seen = taken;
            let ino = loop {
                let ino = seen.max(fs.next_ino);
                let after = ino.checked_add(1).ok_or(Error::NotCached)?;
                match fs.ino_taken.compare_exchange(seen, after, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => break ino,
                    Err(now) => seen = now,
                }
            };
            self.note_read(BtreeId::Inodes, inode_pos(ino), inode_pos(ino));
            return Ok(ino);
        }
        let next = self.next_ino.unwrap_or(self.fs().next_ino);
        if next == 0 {
            self.fs_mut()?.ino_gaps = true;
        }
        // Past the numbers optimistic changes hold, unless searching the
        // gaps (where `taken` may be the largest number: the key noted as
        // read by the body that holds a number catches a clash).
        let mut ino = match next {
            0 => FIRST_FREE_INO,
            n if self.fs().ino_gaps => n,
            n => n.max(taken),
        };
        if !self.fs().ino_gaps {
            return Ok(ino);
        }
        // Each step passes one inode key: bounded by the inodes there are.
        let mut c = self.cursor(BtreeId::Inodes, inode_pos(ino), Pos::MAX);
        let mut val = TryVec::new();
        while let Some((p, _)) = self.next(&mut c, &mut val)? {
            if p.inode != ino {
                break;
            }
            ino = ino.checked_add(1).ok_or(Error::NoSpace)?;
        }
        // Where the search ended is free: the next search starts there.
        self.fs_mut()?.next_ino = ino;
        Ok(ino)
    }

    /// Store an inode made by [`Txn::new_inode`], taking its number and
    /// counting it. The number is taken when the transaction commits: one
    /// dropped (or refused and made again) leaves it to the next.
    pub(crate) fn inode_create(&mut self, ino: u64, inode: &Inode) -> Result<()> {
        // One past u64::MAX (0) sends the next search to the gaps.
        self.next_ino = Some(ino.wrapping_add(1));
        self.inode_write(ino, inode)?;
        self.account(1, 0);
        Ok(())
    }

    /// Create `name` in `dir` with the given type and attributes.
    fn create_entry(
        &mut self,
        dir: u64,
        name: &[u8],
        n: NewInode,
        dtype: u8,
        symlink: Option<&[u8]>,
    ) -> Result<Attr> {
        check_name(name)?;
        let mut parent = self.dir_read(dir)?;
        if self.dirent_find(dir, name)?.is_some() {
            return Err(Error::Exists);
        }
        let slot = self.dirent_free_slot(dir, name)?;
        let is_dir = n.mode & S_IFMT == S_IFDIR;
        if is_dir && parent.nlink >= u32::MAX - 1 {
            return Err(Error::TooManyLinks);
        }
        let (ino, mut inode) = self.new_inode(dir, Some(&parent), n)?;
        let now = inode.ctime;
        if let Some(t) = symlink {
            inode.size = t.len() as u64;
            inode.alloc_bytes = 0;
        }
        self.inode_create(ino, &inode)?;
        if let Some(t) = symlink {
            self.set(BtreeId::Extents, Pos::new(ino, t.len() as u64, SNAPSHOT_ROOT), KeyType::InlineData, t)?;
        }
        self.dirent_set_target(slot, name, ino, dtype)?;
        if is_dir {
            parent.nlink += 1;
        }
        parent.mtime = now;
        parent.ctime = now;
        self.inode_write(dir, &parent)?;
        Ok(Attr { ino, inode })
    }
}

/// Create `name` in `dir` ([`Fs::create`]).
pub struct Create<'a> {
    /// The directory.
    pub dir: u64,
    /// The new entry's name.
    pub name: &'a [u8],
    /// File type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number (device nodes).
    pub rdev: u64,
}

impl<D: BlockDevice> Change<D> for Create<'_> {
    type Out = Attr;

    fn body<A: Access<D>>(&mut self, t: &mut Txn<'_, D, A>) -> Result<Attr> {
        let dtype = dirent_type(self.mode).ok_or(Error::Invalid)?;
        if self.mode & S_IFMT == S_IFLNK {
            return Err(Error::Invalid);
        }
        let n = NewInode { mode: self.mode, uid: self.uid, gid: self.gid, rdev: self.rdev };
        t.create_entry(self.dir, self.name, n, dtype, None)
    }
}

/// Create a symbolic link `name` in `dir` to `target` ([`Fs::symlink`]).
pub struct Symlink<'a> {
    /// The directory.
    pub dir: u64,
    /// The link's name.
    pub name: &'a [u8],
    /// What it points to.
    pub target: &'a [u8],
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl<D: BlockDevice> Change<D> for Symlink<'_> {
    type Out = Attr;

    fn body<A: Access<D>>(&mut self, t: &mut Txn<'_, D, A>) -> Result<Attr> {
        let target = self.target;
        if target.is_empty()
            || target.len() > SYMLINK_MAX.min(t.fs().max_value_bytes())
            || target.contains(&0)
        {
            return Err(Error::NameTooLong);
        }
        let n = NewInode { mode: S_IFLNK | 0o777, uid: self.uid, gid: self.gid, rdev: 0 };
        t.create_entry(self.dir, self.name, n, 10, Some(target))
    }
}

/// Create an unnamed regular file on the orphan list ([`Fs::create_tmpfile`]).
pub struct Tmpfile {
    /// The directory it is made in (its parent, for a later link).
    pub dir: u64,
    /// File type (regular) and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl<D: BlockDevice> Change<D> for Tmpfile {
    type Out = Attr;

    fn body<A: Access<D>>(&mut self, t: &mut Txn<'_, D, A>) -> Result<Attr> {
        if self.mode & S_IFMT != S_IFREG {
            return Err(Error::Invalid);
        }
        let parent = t.dir_read(self.dir)?;
        let n = NewInode { mode: self.mode, uid: self.uid, gid: self.gid, rdev: 0 };
        let (ino, mut inode) = t.new_inode(self.dir, Some(&parent), n)?;
        inode.nlink = 0;
        t.inode_create(ino, &inode)?;
        t.orphan_add(ino)?;
        Ok(Attr { ino, inode })
    }
}

/// Change an inode's attributes, its size apart ([`Fs::setattr`], which
/// truncates first).
pub struct SetAttrs {
    /// The inode.
    pub ino: u64,
    /// What to change (`size` is ignored here).
    pub set: SetAttr,
}

impl<D: BlockDevice> Change<D> for SetAttrs {
    type Out = Attr;

    fn body<A: Access<D>>(&mut self, t: &mut Txn<'_, D, A>) -> Result<Attr> {
        let (ino, set) = (self.ino, &self.set);
        if set.flags.is_some_and(|f| f & !FLAGS_KNOWN != 0) {
            return Err(Error::Unsupported);
        }
        let mut inode = t.inode_read(ino)?;
        if let Some(m) = set.mode {
            inode.mode = (inode.mode & S_IFMT) | (m & 0o7777);
        }
        if let Some(u) = set.uid {
            inode.uid = u;
        }
        if let Some(g) = set.gid {
            inode.gid = g;
        }
        if let Some(t) = set.atime {
            inode.atime = t;
        }
        if let Some(t) = set.mtime {
            inode.mtime = t;
        }
        if let Some(f) = set.flags {
            if f & FLAG_PROJINHERIT != 0 && !inode.is_dir() {
                return Err(Error::Invalid);
            }
            inode.flags = f;
        }
        if let Some(p) = set.projid {
            inode.projid = p;
        }
        inode.ctime = set.ctime.unwrap_or_else(now_ns);
        t.inode_write(ino, &inode)?;
        Ok(Attr { ino, inode })
    }
}

/// A new, empty root directory with permission bits `perm`, owned by
/// `uid`:`gid` (mkfs makes one, fsck another when the root is lost).
pub(crate) fn root_dir_inode(perm: u32, uid: u32, gid: u32) -> Inode {
    let now = now_ns();
    Inode {
        mode: S_IFDIR | (perm & 0o7777),
        uid,
        gid,
        nlink: 2,
        atime: now,
        mtime: now,
        ctime: now,
        btime: now,
        generation: 1,
        parent: ROOT_INO,
        ..Default::default()
    }
}

/// Refuse names the format cannot store.
pub(crate) fn check_name(name: &[u8]) -> Result<()> {
    if name.len() > crate::format::NAME_MAX {
        return Err(Error::NameTooLong);
    }
    if !crate::format::dirent::valid_name(name) {
        return Err(Error::Invalid);
    }
    Ok(())
}

impl<D: BlockDevice> Fs<D> {
    /// Attributes of an inode.
    pub fn getattr(&mut self, ino: u64) -> Result<Attr> {
        self.read_txn(|t| t.getattr(ino))
    }

    /// Create a file, directory, device node, fifo or socket named `name` in
    /// `dir`. `mode` carries the file type; `rdev` is for device nodes.
    pub fn create(
        &mut self,
        dir: u64,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
        rdev: u64,
    ) -> Result<Attr> {
        self.change(&mut Create { dir, name, mode, uid, gid, rdev })
    }

    /// Create a directory.
    pub fn mkdir(&mut self, dir: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> Result<Attr> {
        self.create(dir, name, S_IFDIR | (mode & 0o7777), uid, gid, 0)
    }

    /// Create a symbolic link to `target`.
    pub fn symlink(&mut self, dir: u64, name: &[u8], target: &[u8], uid: u32, gid: u32) -> Result<Attr> {
        self.change(&mut Symlink { dir, name, target, uid, gid })
    }

    /// Create an unnamed regular file for `O_TMPFILE`: no entry, link count
    /// zero, on the orphan list, so it is deleted at its last close or at
    /// the next open after a crash, unless [`Fs::link`] gives it a name first.
    pub fn create_tmpfile(&mut self, dir: u64, mode: u32, uid: u32, gid: u32) -> Result<Attr> {
        self.change(&mut Tmpfile { dir, mode, uid, gid })
    }

    /// The target of a symlink.
    pub fn readlink(&mut self, ino: u64, out: &mut TryVec<u8>) -> Result<()> {
        self.read_txn(|t| t.readlink(ino, out))
    }

    /// Change attributes. A size change truncates or extends the file.
    pub fn setattr(&mut self, ino: u64, set: &SetAttr) -> Result<Attr> {
        self.check_user_writable()?;
        if set.flags.is_some_and(|f| f & !FLAGS_KNOWN != 0) {
            return Err(Error::Unsupported);
        }
        if let Some(size) = set.size {
            let inode = self.getattr(ino)?.inode;
            if inode.is_dir() {
                return Err(Error::IsDir);
            }
            if !inode.is_reg() {
                return Err(Error::Invalid);
            }
            if size > i64::MAX as u64 {
                return Err(Error::TooBig);
            }
            // (The same size too: that frees preallocation past the end.)
            self.truncate(ino, size)?;
        }
        if set.projid.is_some_and(|p| p != 0) {
            self.note_feature_project_id()?;
        }
        self.change(&mut SetAttrs { ino, set: *set })
    }

    /// Whether `set` needs more than one transaction (a size change) or a
    /// change of the superblock (the first project id): [`Fs::setattr`]
    /// then, not [`SetAttrs`] alone.
    pub fn setattr_is_complex(&self, set: &SetAttr) -> bool {
        use crate::format::superblock::RO_COMPAT_PROJECT_ID;
        set.size.is_some()
            || (set.projid.is_some_and(|p| p != 0) && self.sb.ro_compat & RO_COMPAT_PROJECT_ID == 0)
    }

    /// Before the first project id is stored: mark the file system as holding
    /// them (a read-only-compatible feature: writers that do not know it
    /// would zero them), durably, before the inode that carries one.
    fn note_feature_project_id(&mut self) -> Result<()> {
        use crate::format::superblock::RO_COMPAT_PROJECT_ID;
        if self.sb.ro_compat & RO_COMPAT_PROJECT_ID != 0 {
            return Ok(());
        }
        self.sb.ro_compat |= RO_COMPAT_PROJECT_ID;
        self.checkpoint()
    }

    /// Called when the last reference to an inode goes away (VFS evict, or a
    /// tool done with a file): an unlinked inode is deleted now.
    pub fn evict(&mut self, ino: u64) -> Result<()> {
        if self.is_read_only() {
            return Ok(());
        }
        let inode = match self.getattr(ino) {
            Ok(a) => a.inode,
            Err(Error::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        if inode.nlink == 0 {
            self.inode_delete(ino, &inode)?;
        }
        Ok(())
    }

    /// Delete an inode with nlink 0 and everything it owns. Data goes in
    /// bounded transactions; the orphan key (kept until the end) makes an
    /// interrupted deletion resume at the next open.
    pub(crate) fn inode_delete(&mut self, ino: u64, inode: &Inode) -> Result<()> {
        self.with_reserve(|fs| fs.inode_delete_inner(ino, inode))
    }

    fn inode_delete_inner(&mut self, ino: u64, inode: &Inode) -> Result<()> {
        // Most files go in one transaction; larger ones in bounded steps.
        if self.write_txn(|t| t.inode_delete_small(ino, inode))? {
            return Ok(());
        }
        if inode.is_reg() || inode.is_symlink() {
            self.punch_extents(ino, 0, u64::MAX)?;
        }
        self.xattrs_delete_all(ino)?;
        self.write_txn(|t| {
            t.delete(BtreeId::Inodes, inode_pos(ino))?;
            t.delete(BtreeId::Orphans, super::orphan::orphan_pos(ino))?;
            t.account(-1, 0);
            Ok(())
        })
    }
}

impl<D: BlockDevice> Txn<'_, D> {
    /// Delete `ino` (unlinked) whole, extents, attributes, inode and
    /// orphan key, when it has no more extents and attributes than one
    /// transaction cuts; false, having changed nothing, when it has more.
    fn inode_delete_small(&mut self, ino: u64, inode: &Inode) -> Result<bool> {
        let data = inode.is_reg() || inode.is_symlink();
        if (data && self.keys_of(BtreeId::Extents, ino, CUT_BATCH)? > CUT_BATCH)
            || self.keys_of(BtreeId::Xattrs, ino, XATTR_CUT_BATCH)? > XATTR_CUT_BATCH
        {
            return Ok(false);
        }
        if data {
            let cut = self.extents_cut(ino, 0, u64::MAX, CUT_BATCH)?;
            self.account(0, cut.delta);
        }
        self.xattrs_cut(ino)?;
        self.delete(BtreeId::Inodes, inode_pos(ino))?;
        self.delete(BtreeId::Orphans, super::orphan::orphan_pos(ino))?;
        self.account(-1, 0);
        Ok(true)
    }
}

impl<D: BlockDevice, A: Access<D>> Txn<'_, D, A> {
    /// Attributes of `ino` ([`Fs::getattr`]).
    pub fn getattr(&mut self, ino: u64) -> Result<Attr> {
        Ok(Attr { ino, inode: self.inode_read(ino)? })
    }

    /// A symlink's target into `out` ([`Fs::readlink`]).
    pub fn readlink(&mut self, ino: u64, out: &mut TryVec<u8>) -> Result<()> {
        let inode = self.inode_read(ino)?;
        if !inode.is_symlink() {
            return Err(Error::Invalid);
        }
        let mut c = self.inode_cursor(BtreeId::Extents, ino, 1);
        match self.next(&mut c, out)? {
            Some((_, KeyType::InlineData)) => Ok(()),
            _ => Err(Error::Corrupt("symlink without a target")),
        }
    }

    /// Read an inode.
    pub(crate) fn inode_read(&mut self, ino: u64) -> Result<Inode> {
        let mut val = TryVec::new();
        match self.get(BtreeId::Inodes, inode_pos(ino), &mut val)? {
            Some(KeyType::Inode) => Inode::decode(&val).map_err(|_| Error::Corrupt("malformed inode")),
            _ => Err(Error::NotFound),
        }
    }

    /// A directory that still exists (not removed while open).
    pub(crate) fn dir_read(&mut self, dir: u64) -> Result<Inode> {
        let d = self.inode_read(dir)?;
        if !d.is_dir() {
            return Err(Error::NotDir);
        }
        if d.nlink == 0 {
            return Err(Error::NotFound);
        }
        Ok(d)
    }
}
