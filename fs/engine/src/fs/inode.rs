//! Inodes: attributes, creation of every file type, setattr, and deletion of
//! unlinked inodes (immediately, or through the orphan list while open).

use super::Fs;
use crate::error::{Error, Result};
use crate::format::inode::{
    dirent_type, Inode, FLAGS_KNOWN, FLAG_PROJINHERIT, INODE_BYTES, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
};
use crate::format::{BtreeId, KeyType, Pos, SNAPSHOT_ROOT, SYMLINK_MAX};
use crate::sys::{now_ns, BlockDevice, TryVec};

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

/// Key of an orphan marker.
pub const fn orphan_pos(ino: u64) -> Pos {
    Pos::new(0, ino, 0)
}

impl<D: BlockDevice> Fs<D> {
    /// Read an inode.
    pub(crate) fn inode_read(&mut self, ino: u64) -> Result<Inode> {
        let mut val = TryVec::new();
        match self.get(BtreeId::Inodes, inode_pos(ino), &mut val)? {
            Some(KeyType::Inode) => Inode::decode(&val).map_err(|_| Error::Corrupt("malformed inode")),
            _ => Err(Error::NotFound),
        }
    }

    /// Write an inode (inside a transaction).
    pub(crate) fn inode_write(&mut self, ino: u64, inode: &Inode) -> Result<()> {
        let mut buf = [0u8; INODE_BYTES];
        inode.encode(&mut buf).map_err(|_| Error::Internal("inode encode"))?;
        self.btree_set(BtreeId::Inodes, inode_pos(ino), KeyType::Inode, &buf)
    }

    /// Attributes of an inode.
    pub fn getattr(&mut self, ino: u64) -> Result<Attr> {
        Ok(Attr { ino, inode: self.inode_read(ino)? })
    }

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
        self.check_user_writable()?;
        let dtype = dirent_type(mode).ok_or(Error::Invalid)?;
        if mode & S_IFMT == S_IFLNK {
            return Err(Error::Invalid);
        }
        self.create_inner(dir, name, mode, uid, gid, rdev, dtype, None)
    }

    /// Create a directory.
    pub fn mkdir(&mut self, dir: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> Result<Attr> {
        self.create(dir, name, S_IFDIR | (mode & 0o7777), uid, gid, 0)
    }

    /// Create a symbolic link to `target`.
    pub fn symlink(&mut self, dir: u64, name: &[u8], target: &[u8], uid: u32, gid: u32) -> Result<Attr> {
        self.check_user_writable()?;
        if target.is_empty() || target.len() > SYMLINK_MAX.min(self.max_value_bytes()) || target.contains(&0)
        {
            return Err(Error::NameTooLong);
        }
        self.create_inner(dir, name, S_IFLNK | 0o777, uid, gid, 0, 10, Some(target))
    }

    #[allow(clippy::too_many_arguments)]
    fn create_inner(
        &mut self,
        dir: u64,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
        rdev: u64,
        dtype: u8,
        symlink: Option<&[u8]>,
    ) -> Result<Attr> {
        self.check_name(name)?;
        let mut parent = self.dir_read(dir)?;
        if self.dirent_find(dir, name)?.is_some() {
            return Err(Error::Exists);
        }
        let slot = self.dirent_free_slot(dir, name)?;
        let is_dir = mode & S_IFMT == S_IFDIR;
        if is_dir && parent.nlink >= u32::MAX - 1 {
            return Err(Error::TooManyLinks);
        }
        let (ino, mut inode) = self.new_inode_in(dir, Some(&parent), mode, uid, gid, rdev)?;
        let now = inode.ctime;
        if let Some(t) = symlink {
            inode.size = t.len() as u64;
            inode.alloc_bytes = 0;
        }
        self.in_txn(|fs| {
            fs.inode_create(ino, &inode)?;
            if let Some(t) = symlink {
                fs.btree_set(
                    BtreeId::Extents,
                    Pos::new(ino, t.len() as u64, SNAPSHOT_ROOT),
                    KeyType::InlineData,
                    t,
                )?;
            }
            fs.dirent_set_target(slot, name, ino, dtype)?;
            if is_dir {
                parent.nlink += 1;
            }
            parent.mtime = now;
            parent.ctime = now;
            fs.inode_write(dir, &parent)
        })?;
        Ok(Attr { ino, inode })
    }

    /// The next inode number and a fresh inode for it in `dir`: one link
    /// (two for a directory), all times now. The caller's transaction stores
    /// it with [`Fs::inode_create`].
    pub(crate) fn new_inode(
        &self,
        dir: u64,
        mode: u32,
        uid: u32,
        gid: u32,
        rdev: u64,
    ) -> Result<(u64, Inode)> {
        self.new_inode_in(dir, None, mode, uid, gid, rdev)
    }

    /// [`Fs::new_inode`] in `parent` (the directory's inode, when the caller
    /// has it): a directory with [`FLAG_PROJINHERIT`] hands on its project
    /// id, and to subdirectories the flag too.
    pub(crate) fn new_inode_in(
        &self,
        dir: u64,
        parent: Option<&Inode>,
        mode: u32,
        uid: u32,
        gid: u32,
        rdev: u64,
    ) -> Result<(u64, Inode)> {
        let now = now_ns();
        let ino = self.next_ino;
        if ino == 0 {
            return Err(Error::NoSpace);
        }
        let inode = Inode {
            mode,
            uid,
            gid,
            nlink: if mode & S_IFMT == S_IFDIR { 2 } else { 1 },
            atime: now,
            mtime: now,
            ctime: now,
            btime: now,
            generation: (now as u32) ^ (ino as u32),
            rdev,
            parent: dir,
            ..Default::default()
        };
        let mut inode = inode;
        if let Some(p) = parent.filter(|p| p.flags & FLAG_PROJINHERIT != 0) {
            inode.projid = p.projid;
            if mode & S_IFMT == S_IFDIR {
                inode.flags |= FLAG_PROJINHERIT;
            }
        }
        Ok((ino, inode))
    }

    /// Inside a transaction: store an inode made by [`Fs::new_inode`],
    /// taking its number and counting it.
    pub(crate) fn inode_create(&mut self, ino: u64, inode: &Inode) -> Result<()> {
        // One past u64::MAX is "none left" (0).
        self.next_ino = ino.wrapping_add(1);
        self.inode_write(ino, inode)?;
        self.journal_accounting(1, 0)
    }

    /// Create an unnamed regular file for `O_TMPFILE`: no entry, link count
    /// zero, on the orphan list, so it is deleted at its last close or at
    /// the next open after a crash, unless [`Fs::link`] gives it a name first.
    pub fn create_tmpfile(&mut self, dir: u64, mode: u32, uid: u32, gid: u32) -> Result<Attr> {
        self.check_user_writable()?;
        if mode & S_IFMT != S_IFREG {
            return Err(Error::Invalid);
        }
        let parent = self.dir_read(dir)?;
        let (ino, mut inode) = self.new_inode_in(dir, Some(&parent), mode, uid, gid, 0)?;
        inode.nlink = 0;
        self.in_txn(|fs| {
            fs.inode_create(ino, &inode)?;
            fs.orphan_add(ino)
        })?;
        Ok(Attr { ino, inode })
    }

    /// Whether `ino` is on the orphan list.
    pub(crate) fn is_orphan(&mut self, ino: u64) -> Result<bool> {
        let mut val = TryVec::new();
        Ok(self.get(BtreeId::Orphans, orphan_pos(ino), &mut val)?.is_some())
    }

    /// The target of a symlink.
    pub fn readlink(&mut self, ino: u64, out: &mut TryVec<u8>) -> Result<()> {
        let inode = self.inode_read(ino)?;
        if !inode.is_symlink() {
            return Err(Error::Invalid);
        }
        let mut val = TryVec::new();
        match self.peek(BtreeId::Extents, Pos::new(ino, 1, 0), Pos::new(ino, u64::MAX, u32::MAX), &mut val)? {
            Some((_, KeyType::InlineData)) => {
                out.clear();
                out.try_extend_from_slice(&val)
            }
            _ => Err(Error::Corrupt("symlink without a target")),
        }
    }

    /// Change attributes. A size change truncates or extends the file.
    pub fn setattr(&mut self, ino: u64, set: &SetAttr) -> Result<Attr> {
        self.check_user_writable()?;
        let mut inode = self.inode_read(ino)?;
        if let Some(flags) = set.flags {
            if flags & !FLAGS_KNOWN != 0 {
                return Err(Error::Unsupported);
            }
        }
        if let Some(size) = set.size {
            if inode.is_dir() {
                return Err(Error::IsDir);
            }
            if !inode.is_reg() {
                return Err(Error::Invalid);
            }
            if size > i64::MAX as u64 {
                return Err(Error::TooBig);
            }
            if size != inode.size {
                self.truncate(ino, size)?;
                inode = self.inode_read(ino)?;
            }
        }
        let now = now_ns();
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
            if p != 0 {
                self.note_feature_project_id()?;
            }
            inode.projid = p;
        }
        inode.ctime = set.ctime.unwrap_or(now);
        self.in_txn(|fs| fs.inode_write(ino, &inode))?;
        Ok(Attr { ino, inode })
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
        let inode = match self.inode_read(ino) {
            Ok(i) => i,
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
        if inode.is_reg() || inode.is_symlink() {
            self.punch_extents(ino, 0, u64::MAX)?;
        }
        self.xattrs_delete_all(ino)?;
        self.in_txn(|fs| {
            fs.btree_delete(BtreeId::Inodes, inode_pos(ino))?;
            fs.btree_delete(BtreeId::Orphans, orphan_pos(ino))?;
            fs.journal_accounting(-1, 0)
        })
    }

    /// Put an inode on the orphan list (inside a transaction).
    pub(crate) fn orphan_add(&mut self, ino: u64) -> Result<()> {
        self.btree_set(BtreeId::Orphans, orphan_pos(ino), KeyType::Orphan, &[])
    }

    /// Delete every inode left on the orphan list (unlinked while open when
    /// the system went down). Runs at open.
    pub(crate) fn process_orphans(&mut self) -> Result<u64> {
        let mut val = TryVec::new();
        let mut done = 0;
        let limit = self.counters.inodes.saturating_add(1);
        while let Some((pos, _)) = self.peek(BtreeId::Orphans, Pos::MIN, Pos::MAX, &mut val)? {
            let ino = pos.offset;
            match self.inode_read(ino) {
                Ok(inode) if inode.nlink == 0 => self.inode_delete(ino, &inode)?,
                _ => self.in_txn(|fs| fs.btree_delete(BtreeId::Orphans, pos).map(|_| ()))?,
            }
            done += 1;
            if done > limit {
                return Err(Error::Corrupt("orphan list does not shrink"));
            }
        }
        Ok(done)
    }
}
