//! fsck passes over the file system's logical structure: inodes, directory
//! entries, extents, xattrs, orphans, link counts, reachability and counters.
//! Memory grows with the number of inodes (one small record each), not with
//! the amount of data.

use super::inode::orphan_pos;
use super::Fs;
use crate::buckets::check::Usage;
use crate::error::{Error, Result};
use crate::format::alloc_info::DataType;
use crate::format::dirent::{name_slot, Dirent, HASH_PROBE};
use crate::format::extent::{Compression, Extent};
use crate::format::inode::{dirent_type, Inode};
use crate::format::{round_up, BtreeId, KeyType, Pos, ROOT_INO};
use crate::fsck::{ProblemKind, Reporter};
use crate::sys::{BlockDevice, TryVec};

/// What the passes learn about one inode.
#[derive(Debug, Clone, Copy, Default)]
struct InoInfo {
    ino: u64,
    nlink: u32,
    dtype: u8,
    links: u32,
    subdirs: u32,
    alloc_found: u64,
    parent: u64,
    parent_found: u64,
    orphan: bool,
}

fn find(infos: &[InoInfo], ino: u64) -> Option<usize> {
    infos.binary_search_by_key(&ino, |i| i.ino).ok()
}

/// Iterate every key of a b-tree: `peek` from a position, step past it.
macro_rules! each_key {
    ($fs:expr, $r:expr, $id:expr, $val:ident, |$pos:ident, $kind:ident| $body:block) => {{
        let mut from = Pos::MIN;
        loop {
            let next = match $fs.peek($id, from, Pos::MAX, &mut $val) {
                Ok(n) => n,
                Err(e) => {
                    $r.error(ProblemKind::PassAborted, $id as u64, e);
                    break;
                }
            };
            let Some(($pos, $kind)) = next else { break };
            let _ = $kind;
            $body
            match $pos.successor() {
                Some(p) => from = p,
                None => break,
            }
        }
    }};
}

fn ino_name(ino: u64, buf: &mut [u8; 24]) -> &[u8] {
    let mut digits = [0u8; 20];
    let mut n = ino;
    let mut len = 0;
    loop {
        if let Some(d) = digits.get_mut(len) {
            *d = b'0' + (n % 10) as u8;
        }
        len += 1;
        n /= 10;
        if n == 0 || len == 20 {
            break;
        }
    }
    buf[0] = b'#';
    for i in 0..len {
        if let (Some(dst), Some(src)) = (buf.get_mut(1 + i), digits.get(len - 1 - i)) {
            *dst = *src;
        }
    }
    buf.get(..1 + len).unwrap_or(b"#")
}

impl<D: BlockDevice> Fs<D> {
    /// Run the logical passes; returns per-bucket usage for the bucket pass.
    pub(crate) fn check_fs(&mut self, r: &mut Reporter<'_>) -> Result<Usage> {
        let mut usage = self.usage_table()?;
        let mut infos: TryVec<InoInfo> = TryVec::new();
        let mut val = TryVec::new();
        let fix = r.fixing();

        // Inodes.
        each_key!(self, r, BtreeId::Inodes, val, |pos, kind| {
            let inode = Inode::decode(&val).map_err(|_| Error::Corrupt("malformed inode"))?;
            infos.try_push(InoInfo {
                ino: pos.inode,
                nlink: inode.nlink,
                dtype: dirent_type(inode.mode).unwrap_or(0),
                parent: inode.parent,
                ..Default::default()
            })?;
            r.report.inodes += 1;
        });
        (r.progress)("inodes", 1, 6);
        match find(&infos, ROOT_INO) {
            Some(i) if infos.get(i).is_some_and(|x| x.dtype == 4) => {}
            _ => {
                r.problem(ProblemKind::RootMissing, ROOT_INO, 0, 0, false);
                return Ok(usage);
            }
        }

        // Directory entries.
        each_key!(self, r, BtreeId::Dirents, val, |pos, kind| {
            let d = Dirent::decode(&val).map_err(|_| Error::Corrupt("malformed dirent"))?;
            let (target, dtype) = (d.target, d.dtype);
            let mut name = [0u8; crate::format::NAME_MAX];
            let nlen = d.name.len();
            name.get_mut(..nlen).ok_or(Error::Internal("name"))?.copy_from_slice(d.name);
            let name = name.get(..nlen).unwrap_or(&[]);
            let dir_ok = find(&infos, pos.inode).and_then(|i| infos.get(i)).is_some_and(|x| x.dtype == 4);
            if !dir_ok {
                if fix {
                    self.in_txn(|fs| fs.btree_delete(BtreeId::Dirents, pos).map(|_| ()))?;
                }
                r.problem(ProblemKind::DirentParent, pos.inode, pos.offset, 0, fix);
            } else if let Some(ti) = find(&infos, target) {
                let slot = name_slot(self.sb.hash_seed, name);
                let mut pos = pos;
                if pos.offset < slot || pos.offset >= slot + HASH_PROBE {
                    if fix {
                        pos = self.in_txn(|fs| {
                            fs.btree_delete(BtreeId::Dirents, pos)?;
                            fs.dirent_insert(pos.inode, name, target, dtype)
                        })?;
                    }
                    r.problem(ProblemKind::DirentSlot, pos.inode, pos.offset, slot, fix);
                }
                let t = infos.get(ti).copied().unwrap_or_default();
                if t.dtype != dtype {
                    if fix {
                        self.in_txn(|fs| fs.dirent_set_target(pos, name, target, t.dtype))?;
                    }
                    r.problem(ProblemKind::DirentType, pos.inode, target, u64::from(dtype), fix);
                }
                if let Some(x) = infos.get_mut(ti) {
                    x.links += 1;
                    x.parent_found = pos.inode;
                }
                if t.dtype == 4 {
                    if let Some(x) = find(&infos, pos.inode).and_then(|i| infos.get_mut(i)) {
                        x.subdirs += 1;
                    }
                }
            } else {
                if fix {
                    self.in_txn(|fs| fs.btree_delete(BtreeId::Dirents, pos).map(|_| ()))?;
                }
                r.problem(ProblemKind::DirentDangling, pos.inode, pos.offset, target, fix);
            }
        });
        (r.progress)("dirents", 2, 6);

        // Extents.
        let block = u64::from(self.sb.block_size);
        let mut data_total = 0u64;
        let mut prev: (u64, u64) = (0, 0);
        each_key!(self, r, BtreeId::Extents, val, |pos, kind| {
            let owner = find(&infos, pos.inode).and_then(|i| infos.get(i)).map(|x| x.dtype);
            let (len, ext) = match kind {
                KeyType::Extent => {
                    let e = Extent::decode(&val).map_err(|_| Error::Corrupt("malformed extent"))?;
                    (u64::from(e.live_len), Some(e))
                }
                _ => (val.len() as u64, None),
            };
            let start = pos.offset.saturating_sub(len);
            let mut bad = None;
            if !matches!(owner, Some(8) | Some(10)) {
                bad = Some((ProblemKind::ExtentOrphan, 0));
            } else if pos.inode == prev.0 && start < prev.1 {
                bad = Some((ProblemKind::ExtentOverlap, prev.1));
            } else if let Some(e) = &ext {
                for p in e.ptrs() {
                    let ok = self
                        .bucket_of(p.dev, p.offset)
                        .and_then(|(b, _)| self.bucket(p.dev, b))
                        .is_some_and(|bk| {
                            bk.gen == p.gen
                                && !matches!(bk.data_type, DataType::Superblock | DataType::Journal)
                        });
                    if !ok {
                        bad = Some((ProblemKind::ExtentBadPtr, 0));
                    }
                }
            }
            if let Some((k, other)) = bad {
                if fix {
                    self.in_txn(|fs| fs.btree_delete(BtreeId::Extents, pos).map(|_| ()))?;
                }
                r.problem(k, pos.inode, pos.offset, other, fix);
            } else {
                prev = (pos.inode, pos.offset);
                if let Some(e) = &ext {
                    let c = match e.compression {
                        Compression::None => u64::from(e.live_len),
                        _ => round_up(u64::from(e.stored_len), block).unwrap_or(0),
                    };
                    for p in e.ptrs() {
                        if let Some((b, _)) = self.bucket_of(p.dev, p.offset) {
                            if let Some(u) =
                                usage.get_mut(usize::from(p.dev)).and_then(|t| t.get_mut(b as usize))
                            {
                                *u += c;
                            }
                        }
                    }
                    data_total += c;
                    if let Some(x) = find(&infos, pos.inode).and_then(|i| infos.get_mut(i)) {
                        x.alloc_found += c;
                    }
                }
            }
        });
        (r.progress)("extents", 3, 6);

        // Xattrs and orphans.
        each_key!(self, r, BtreeId::Xattrs, val, |pos, kind| {
            if find(&infos, pos.inode).is_none() {
                if fix {
                    self.in_txn(|fs| fs.btree_delete(BtreeId::Xattrs, pos).map(|_| ()))?;
                }
                r.problem(ProblemKind::XattrOrphan, pos.inode, 0, 0, fix);
            }
        });
        each_key!(self, r, BtreeId::Orphans, val, |pos, kind| {
            let ino = pos.offset;
            match find(&infos, ino).and_then(|i| infos.get_mut(i)) {
                Some(x) if x.nlink == 0 => x.orphan = true,
                _ => {
                    if fix {
                        self.in_txn(|fs| fs.btree_delete(BtreeId::Orphans, pos).map(|_| ()))?;
                    }
                    r.problem(ProblemKind::OrphanStale, ino, 0, 0, fix);
                }
            }
        });
        (r.progress)("xattrs and orphans", 4, 6);

        self.check_links(r, &mut infos)?;
        (r.progress)("link counts", 5, 6);

        // Counters.
        let counted = infos.len() as u64;
        let c = self.counters;
        if c.inodes != counted || c.data_bytes != data_total {
            if fix {
                self.in_txn(|fs| {
                    fs.journal_accounting(
                        counted.wrapping_sub(c.inodes) as i64,
                        data_total.wrapping_sub(c.data_bytes) as i64,
                    )
                })?;
            }
            if c.inodes != counted {
                r.problem(ProblemKind::InodeCounter, 0, c.inodes, counted, fix);
            }
            if c.data_bytes != data_total {
                r.problem(ProblemKind::DataCounter, 0, c.data_bytes, data_total, fix);
            }
        }
        (r.progress)("counters", 6, 6);
        Ok(usage)
    }

    /// Reachability, link counts, parents and allocated bytes.
    fn check_links(&mut self, r: &mut Reporter<'_>, infos: &mut TryVec<InoInfo>) -> Result<()> {
        let fix = r.fixing();
        // Reconnect what no entry names (directories first need lost+found).
        for i in 0..infos.len() {
            let x = infos.get(i).copied().unwrap_or_default();
            let unreachable =
                x.ino != ROOT_INO && x.links == 0 && (x.dtype == 4 || (x.nlink > 0 && !x.orphan));
            if !unreachable {
                continue;
            }
            let mut fixed = false;
            if fix {
                let lf = self.lost_found()?;
                let mut nb = [0u8; 24];
                let name = ino_name(x.ino, &mut nb);
                let mut name_buf = [0u8; 24];
                let nlen = name.len();
                name_buf.get_mut(..nlen).ok_or(Error::Internal("name"))?.copy_from_slice(name);
                let name = name_buf.get(..nlen).unwrap_or(&[]);
                self.in_txn(|fs| {
                    fs.dirent_insert(lf, name, x.ino, x.dtype)?;
                    let mut inode = fs.inode_read(x.ino)?;
                    if x.dtype == 4 {
                        inode.parent = lf;
                        let mut l = fs.inode_read(lf)?;
                        l.nlink = l.nlink.saturating_add(1);
                        fs.inode_write(lf, &l)?;
                    } else if inode.nlink == 0 {
                        inode.nlink = 1;
                    }
                    fs.inode_write(x.ino, &inode)
                })?;
                if let Some(y) = infos.get_mut(i) {
                    y.links = 1;
                    y.parent_found = lf;
                    y.parent = lf;
                    if y.dtype != 4 {
                        y.nlink = y.nlink.max(1);
                    }
                }
                fixed = true;
            }
            r.problem(ProblemKind::Unreachable, x.ino, u64::from(x.nlink), 0, fixed);
        }
        // lost+found may have been created, or gained subdirectories: recount it.
        if fix {
            if let Ok(lf) = self.lookup(ROOT_INO, b"lost+found") {
                if find(infos, lf.ino).is_none() {
                    let pos = infos.partition_point(|y| y.ino < lf.ino);
                    infos.try_insert(
                        pos,
                        InoInfo {
                            ino: lf.ino,
                            nlink: lf.inode.nlink,
                            dtype: 4,
                            links: 1,
                            parent: ROOT_INO,
                            parent_found: ROOT_INO,
                            ..Default::default()
                        },
                    )?;
                    if let Some(root) = find(infos, ROOT_INO).and_then(|i| infos.get_mut(i)) {
                        root.subdirs += 1;
                    }
                }
                let subdirs =
                    infos.iter().filter(|y| y.dtype == 4 && y.parent_found == lf.ino && y.links > 0).count();
                if let Some(l) = find(infos, lf.ino).and_then(|i| infos.get_mut(i)) {
                    l.subdirs = subdirs as u32;
                    l.nlink = self.inode_read(lf.ino)?.nlink;
                }
            }
        }
        for i in 0..infos.len() {
            let x = infos.get(i).copied().unwrap_or_default();
            let mut inode = match self.inode_read(x.ino) {
                Ok(v) => v,
                Err(e) => {
                    r.error(ProblemKind::PassAborted, x.ino, e);
                    continue;
                }
            };
            let mut changed = false;
            if x.dtype == 4 {
                let want = 2 + x.subdirs;
                if x.links > 1 {
                    r.problem(ProblemKind::DirMultiplyLinked, x.ino, u64::from(x.links), 1, false);
                }
                if inode.nlink != want {
                    r.problem(ProblemKind::DirLinkCount, x.ino, u64::from(inode.nlink), u64::from(want), fix);
                    inode.nlink = want;
                    changed = true;
                }
                let parent = if x.ino == ROOT_INO { ROOT_INO } else { x.parent_found };
                if x.links > 0 && inode.parent != parent {
                    r.problem(ProblemKind::DirParent, x.ino, inode.parent, parent, fix);
                    inode.parent = parent;
                    changed = true;
                }
            } else if x.nlink == 0 && x.links == 0 {
                if !x.orphan {
                    if fix {
                        self.in_txn(|fs| fs.orphan_add(x.ino))?;
                    }
                    r.problem(ProblemKind::OrphanMissing, x.ino, 0, 0, fix);
                }
            } else if x.links > 0 && inode.nlink != x.links {
                // (links == 0 with nlink > 0 was reported as unreachable above.)
                r.problem(ProblemKind::LinkCount, x.ino, u64::from(inode.nlink), u64::from(x.links), fix);
                inode.nlink = x.links;
                changed = true;
                if x.orphan && fix {
                    self.in_txn(|fs| fs.btree_delete(BtreeId::Orphans, orphan_pos(x.ino)).map(|_| ()))?;
                }
            }
            if inode.alloc_bytes != x.alloc_found {
                r.problem(ProblemKind::AllocBytes, x.ino, inode.alloc_bytes, x.alloc_found, fix);
                inode.alloc_bytes = x.alloc_found;
                changed = true;
            }
            if changed && fix {
                self.in_txn(|fs| fs.inode_write(x.ino, &inode))?;
            }
        }
        if fix {
            self.process_orphans()?;
        }
        Ok(())
    }

    /// The lost+found directory, created if missing.
    fn lost_found(&mut self) -> Result<u64> {
        match self.lookup(ROOT_INO, b"lost+found") {
            Ok(a) if a.inode.is_dir() => Ok(a.ino),
            Ok(_) => Err(Error::Exists),
            Err(Error::NotFound) => Ok(self.mkdir(ROOT_INO, b"lost+found", 0o700, 0, 0)?.ino),
            Err(e) => Err(e),
        }
    }
}
