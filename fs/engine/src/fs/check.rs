//! fsck passes over the file system's logical structure: inodes, directory
//! entries, extents, xattrs, orphans, the directory tree (one name per
//! directory, no cycles), link counts, reachability and counters.
//!
//! Memory grows with the number of inodes (one small record each, plus one
//! per entry naming a directory), not with the amount of data. Every repair
//! that needs a complete tree is made only when the tree was read
//! completely ([`Reporter::may_fix`]); the others are local to one key.

use super::orphan::orphan_pos;
use super::Fs;
use crate::btree::cursor::{Cursor, View};
use crate::error::{Error, Result};
use crate::format::dirent::{name_slot, Dirent, HASH_PROBE};
use crate::format::extent::Extent;
use crate::format::inode::{dirent_type, Inode};
use crate::format::{BtreeId, KeyType, Pos, NAME_MAX, ROOT_INO};
use crate::fsck::buckets::{bucket_table, Usage};
use crate::fsck::{ProblemKind, Reporter};
use crate::sys::{BlockDevice, TryVec};

/// `DT_DIR`.
const DT_DIR: u8 = 4;

/// What the passes learn about one inode.
#[derive(Debug, Clone, Copy, Default)]
struct InoInfo {
    ino: u64,
    nlink: u32,
    dtype: u8,
    size: u64,
    /// Entries naming it (directories: the one kept).
    links: u32,
    /// Directories: subdirectories whose kept entry is in it.
    subdirs: u32,
    alloc_found: u64,
    /// The inode's own parent field.
    parent: u64,
    /// Directories: the directory holding the entry kept for it.
    parent_found: u64,
    orphan: bool,
    /// Directory tree walk: 0 not seen, 1 on the current path, 2 reaches the root.
    state: u8,
}

/// An entry that names a directory. A directory has exactly one; the
/// passes collect them all and keep one per directory.
#[derive(Debug, Clone, Copy)]
struct DirEdge {
    child: u64,
    parent: u64,
    pos: Pos,
}

/// An entry found outside its name's hash slots; it is put back in them
/// after the walk, so that the walk never meets it twice.
struct Misplaced {
    pos: Pos,
    target: u64,
    len: usize,
    name: [u8; NAME_MAX],
}

impl Misplaced {
    fn name(&self) -> &[u8] {
        self.name.get(..self.len).unwrap_or(&[])
    }
}

fn find(infos: &[InoInfo], ino: u64) -> Option<usize> {
    infos.binary_search_by_key(&ino, |i| i.ino).ok()
}

fn info_mut(infos: &mut [InoInfo], ino: u64) -> Option<&mut InoInfo> {
    find(infos, ino).and_then(|i| infos.get_mut(i))
}

fn info(infos: &[InoInfo], ino: u64) -> Option<InoInfo> {
    find(infos, ino).and_then(|i| infos.get(i)).copied()
}

/// Iterate every key of a b-tree (canonical positions only) with a cursor;
/// `continue` in the body moves on to the next key. A key that cannot be
/// read ends the walk and marks the tree lost. The body may change the
/// file system: the cursor finds its place again.
macro_rules! each_key {
    ($fs:expr, $r:expr, $id:expr, $val:ident, |$pos:ident, $kind:ident| $body:block) => {{
        let mut cursor = Cursor::new($id, Pos::MIN, Pos::MAX, View::LIVE);
        loop {
            let next = match $fs.next_key(&mut cursor) {
                Ok(n) => n,
                Err(e) => {
                    $r.tree_lost($id, e);
                    break;
                }
            };
            let Some(($pos, $kind)) = next else { break };
            $val.clear();
            $val.try_extend_from_slice(cursor.value())?;
            let _ = $kind;
            $body
        }
    }};
}

/// `#INO`, then `#INO.N` for the `n`-th try: names for lost+found.
fn ino_name(ino: u64, n: u32) -> TryVec<u8> {
    let mut out = TryVec::new();
    let _ = out.try_push(b'#');
    push_decimal(&mut out, ino);
    if n > 0 {
        let _ = out.try_push(b'.');
        push_decimal(&mut out, u64::from(n));
    }
    out
}

fn push_decimal(out: &mut TryVec<u8>, v: u64) {
    let mut digits = [0u8; 20];
    let mut n = v;
    let mut len = 0;
    while len < digits.len() {
        if let Some(d) = digits.get_mut(len) {
            *d = b'0' + (n % 10) as u8;
        }
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in (0..len).rev() {
        if let Some(&d) = digits.get(i) {
            let _ = out.try_push(d);
        }
    }
}

/// The trees link counts and reachability are computed from.
const NAMESPACE: [BtreeId; 3] = [BtreeId::Inodes, BtreeId::Dirents, BtreeId::Orphans];

impl<D: BlockDevice> Fs<D> {
    /// Run the logical passes; returns per-bucket usage for the bucket pass.
    pub(crate) fn check_fs(&mut self, r: &mut Reporter<'_>) -> Result<Usage> {
        let mut usage: Usage = bucket_table(&self.alloc)?;
        let mut infos: TryVec<InoInfo> = TryVec::new();
        let mut val = TryVec::new();

        each_key!(self, r, BtreeId::Inodes, val, |pos, kind| {
            let Ok(inode) = Inode::decode(&val) else { continue };
            infos.try_push(InoInfo {
                ino: pos.inode,
                nlink: inode.nlink,
                dtype: dirent_type(inode.mode).unwrap_or(0),
                size: inode.size,
                parent: inode.parent,
                ..Default::default()
            })?;
            r.report.inodes += 1;
        });
        (r.progress)("files", 1, 6);
        let mut root_ok = info(&infos, ROOT_INO).is_some_and(|x| x.dtype == DT_DIR);
        if !root_ok {
            // A new, empty root; what was there (a file's data, entries
            // naming it) is cleaned up by the passes below.
            let fix = r.may_fix(&[BtreeId::Inodes]);
            if fix {
                self.make_root(&mut infos)?;
                root_ok = true;
            }
            r.problem(ProblemKind::RootMissing, ROOT_INO, 0, 0, fix);
        }

        let mut edges: TryVec<DirEdge> = TryVec::new();
        self.check_dirents(r, &mut infos, &mut edges)?;
        (r.progress)("files", 2, 6);

        let data_total = self.check_extents(r, &mut infos, &mut usage)?;
        (r.progress)("files", 3, 6);

        each_key!(self, r, BtreeId::Xattrs, val, |pos, kind| {
            if find(&infos, pos.inode).is_none() {
                let fix = r.may_fix(&[BtreeId::Inodes]);
                if fix {
                    self.write_txn(|t| t.delete(BtreeId::Xattrs, pos))?;
                }
                r.problem(ProblemKind::XattrOrphan, pos.inode, 0, 0, fix);
            }
        });
        each_key!(self, r, BtreeId::Orphans, val, |pos, kind| {
            let ino = pos.offset;
            match info_mut(&mut infos, ino) {
                Some(x) if x.nlink == 0 => x.orphan = true,
                _ => {
                    let fix = r.may_fix(&[BtreeId::Inodes]);
                    if fix {
                        self.write_txn(|t| t.delete(BtreeId::Orphans, pos))?;
                    }
                    r.problem(ProblemKind::OrphanStale, ino, 0, 0, fix);
                }
            }
        });
        (r.progress)("files", 4, 6);

        self.check_dir_tree(r, &mut infos, &mut edges)?;
        if root_ok {
            self.check_links(r, &mut infos)?;
        }
        (r.progress)("files", 5, 6);

        // Counters.
        let counted = infos.len() as u64;
        let c = self.counters;
        if c.inodes != counted {
            let fix = r.may_fix(&[BtreeId::Inodes]);
            if fix {
                let now = self.counters.inodes;
                self.write_txn(|t| {
                    t.account(counted.wrapping_sub(now) as i64, 0);
                    Ok(())
                })?;
            }
            r.problem(ProblemKind::InodeCounter, 0, c.inodes, counted, fix);
        }
        if c.data_bytes != data_total {
            let fix = r.may_fix(&[BtreeId::Extents]);
            if fix {
                let now = self.counters.data_bytes;
                self.write_txn(|t| {
                    t.account(0, data_total.wrapping_sub(now) as i64);
                    Ok(())
                })?;
            }
            r.problem(ProblemKind::DataCounter, 0, c.data_bytes, data_total, fix);
        }
        // Deletions an open would finish, with the counters right first;
        // they touch every tree an inode has keys in.
        if root_ok && r.may_fix(&BtreeId::ALL) {
            self.process_orphans()?;
        }
        (r.progress)("files", 6, 6);
        Ok(usage)
    }

    /// Write a new root directory (replacing whatever inode is there) and
    /// enter it in `infos`.
    fn make_root(&mut self, infos: &mut TryVec<InoInfo>) -> Result<()> {
        let root = super::inode::root_dir_inode(0o755, 0, 0);
        let existed = find(infos, ROOT_INO).is_some();
        self.write_txn(|t| {
            t.inode_write(ROOT_INO, &root)?;
            if !existed {
                t.account(1, 0);
            }
            Ok(())
        })?;
        let x = InoInfo { ino: ROOT_INO, nlink: 2, dtype: DT_DIR, parent: ROOT_INO, ..Default::default() };
        match find(infos, ROOT_INO) {
            Some(i) => {
                if let Some(y) = infos.get_mut(i) {
                    *y = x;
                }
            }
            None => infos.try_insert(infos.partition_point(|y| y.ino < ROOT_INO), x)?,
        }
        Ok(())
    }

    /// Directory entries: each must sit in a directory, name an inode that
    /// exists (never the root), carry its type, lie in its name's slots and
    /// be the only entry of that name. Links are counted; entries naming
    /// directories are collected for [`Fs::check_dir_tree`].
    fn check_dirents(
        &mut self,
        r: &mut Reporter<'_>,
        infos: &mut TryVec<InoInfo>,
        edges: &mut TryVec<DirEdge>,
    ) -> Result<()> {
        let mut val = TryVec::new();
        let mut misplaced: TryVec<Misplaced> = TryVec::new();
        each_key!(self, r, BtreeId::Dirents, val, |pos, kind| {
            let Ok(d) = Dirent::decode(&val) else { continue };
            let (target, dtype) = (d.target, d.dtype);
            let mut m = Misplaced { pos, target, len: d.name.len(), name: [0; NAME_MAX] };
            m.name.get_mut(..m.len).ok_or(Error::Internal("name"))?.copy_from_slice(d.name);
            let name = m.name();
            if info(infos, pos.inode).is_none_or(|x| x.dtype != DT_DIR) {
                let fix = r.may_fix(&[BtreeId::Inodes]);
                if fix {
                    self.write_txn(|t| t.delete(BtreeId::Dirents, pos))?;
                }
                r.problem(ProblemKind::DirentParent, pos.inode, pos.offset, 0, fix);
                continue;
            }
            if target == ROOT_INO {
                // The root is named by no entry: its ".." is itself.
                let fix = r.fixing();
                if fix {
                    self.write_txn(|t| t.delete(BtreeId::Dirents, pos))?;
                }
                r.problem(ProblemKind::DirentRoot, pos.inode, pos.offset, 0, fix);
                continue;
            }
            let Some(t) = info(infos, target) else {
                let fix = r.may_fix(&[BtreeId::Inodes]);
                if fix {
                    self.write_txn(|t| t.delete(BtreeId::Dirents, pos))?;
                }
                r.problem(ProblemKind::DirentDangling, pos.inode, pos.offset, target, fix);
                continue;
            };
            let slot = name_slot(self.sb.hash_seed, name);
            if pos.offset < slot || pos.offset >= slot + HASH_PROBE {
                misplaced.try_push(m)?;
                continue;
            }
            let earlier = match self.read_txn(|t| t.dirent_find_in(pos.inode, name, slot, pos.offset)) {
                Ok(f) => f,
                Err(e) if e.is_damage() => {
                    r.tree_lost(BtreeId::Dirents, e);
                    None
                }
                Err(e) => return Err(e),
            };
            if let Some(first) = earlier {
                let fix = r.fixing();
                if fix {
                    self.write_txn(|t| t.delete(BtreeId::Dirents, pos))?;
                }
                r.problem(ProblemKind::DirentDuplicate, pos.inode, pos.offset, first.pos.offset, fix);
                continue;
            }
            if t.dtype != dtype {
                let fix = r.fixing();
                if fix {
                    self.write_txn(|tx| tx.dirent_set_target(pos, name, target, t.dtype))?;
                }
                r.problem(ProblemKind::DirentType, pos.inode, target, u64::from(dtype), fix);
            }
            count_entry(infos, edges, pos, target, t.dtype)?;
        });
        // Misplaced entries go back into their slots now, each met once;
        // finding a free slot needs every node of the tree readable.
        let fix = r.may_fix(&[BtreeId::Dirents]);
        for m in misplaced.iter() {
            let t = info(infos, m.target).unwrap_or_default();
            let dir = m.pos.inode;
            let name = m.name();
            let want = name_slot(self.sb.hash_seed, name);
            if !fix {
                r.problem(ProblemKind::DirentSlot, dir, m.pos.offset, want, false);
                count_entry(infos, edges, m.pos, m.target, t.dtype)?;
                continue;
            }
            let (slot, existing) = self.write_txn(|tx| {
                let existing = tx.dirent_find(dir, name)?;
                let slot = match existing {
                    Some(_) => None,
                    None => match tx.dirent_free_slot(dir, name) {
                        Ok(p) => Some(p),
                        Err(Error::NoSpace) => None,
                        Err(e) => return Err(e),
                    },
                };
                tx.delete(BtreeId::Dirents, m.pos)?;
                if let Some(p) = slot {
                    tx.dirent_set_target(p, name, m.target, t.dtype)?;
                }
                Ok((slot, existing))
            })?;
            r.problem(ProblemKind::DirentSlot, dir, m.pos.offset, want, true);
            match (slot, existing) {
                (Some(p), _) => count_entry(infos, edges, p, m.target, t.dtype)?,
                // The name is taken in its slots: this entry was a duplicate.
                (None, Some(first)) => {
                    r.problem(ProblemKind::DirentDuplicate, dir, m.pos.offset, first.pos.offset, true)
                }
                // All eight slots taken: the entry went; its target is
                // reconnected if it has no other name.
                (None, None) => {}
            }
        }
        Ok(())
    }

    /// Extents: each must belong to a regular file or symlink, point into
    /// user buckets of its generation, and not overlap the one before it.
    /// Returns the data counter's true value; fills per-bucket usage.
    fn check_extents(
        &mut self,
        r: &mut Reporter<'_>,
        infos: &mut TryVec<InoInfo>,
        usage: &mut Usage,
    ) -> Result<u64> {
        let block = u64::from(self.sb.block_size);
        let mut data_total = 0u64;
        let mut prev: (u64, u64) = (0, 0);
        let mut val = TryVec::new();
        each_key!(self, r, BtreeId::Extents, val, |pos, kind| {
            let owner = info(infos, pos.inode).map(|x| x.dtype);
            let ext = match kind {
                KeyType::Extent => match Extent::decode(&val) {
                    Ok(e) => Some(e),
                    Err(_) => continue,
                },
                _ => None,
            };
            let len = ext.map_or(val.len() as u64, |e| u64::from(e.live_len));
            let start = pos.offset.checked_sub(len);
            let bad_ptr = ext.is_some_and(|e| e.ptrs().iter().any(|p| !self.alloc.extent_ptr_live(p, &e)));
            let problem = if !matches!(owner, Some(8) | Some(10)) {
                Some((ProblemKind::ExtentOrphan, 0, r.may_fix(&[BtreeId::Inodes])))
            } else if start.is_none() || bad_ptr {
                Some((ProblemKind::ExtentBadPtr, 0, r.may_fix(&[BtreeId::Alloc])))
            } else {
                None
            };
            if let Some((k, other, fix)) = problem {
                if fix {
                    self.write_txn(|t| t.delete(BtreeId::Extents, pos))?;
                }
                r.problem(k, pos.inode, pos.offset, other, fix);
                if fix {
                    continue;
                }
            }
            let start = start.unwrap_or(0);
            let mut ext = ext;
            if problem.is_none() && pos.inode == prev.0 && start < prev.1 {
                // Keep what does not overlap: the part after the previous end.
                let fix = r.fixing();
                if fix {
                    ext = self.extent_trim_front(pos, kind, &val, ext, prev.1 - start)?;
                }
                r.problem(ProblemKind::ExtentOverlap, pos.inode, pos.offset, prev.1, fix);
                if fix && ext.is_none() && kind == KeyType::Extent {
                    continue;
                }
            }
            if problem.is_none() {
                prev = (pos.inode, pos.offset);
            }
            // What stays is charged, as the survey charges it: the counter
            // for every extent, buckets for live pointers.
            if let Some(e) = &ext {
                let c = e.charge(block);
                for p in e.ptrs().iter().filter(|p| self.alloc.extent_ptr_live(p, e)) {
                    if let Some((b, _)) = self.alloc.bucket_of(p.dev, p.offset) {
                        if let Some(u) = usage.get_mut(usize::from(p.dev)).and_then(|t| t.get_mut(b as usize))
                        {
                            *u = u.saturating_add(c);
                        }
                    }
                }
                data_total = data_total.saturating_add(c);
                if let Some(x) = info_mut(infos, pos.inode) {
                    x.alloc_found = x.alloc_found.saturating_add(c);
                }
            }
        });
        Ok(data_total)
    }

    /// Cut `cut` bytes off the front of the extent at `pos` (an overlap
    /// repair); returns the extent left, if any.
    fn extent_trim_front(
        &mut self,
        pos: Pos,
        kind: KeyType,
        val: &[u8],
        ext: Option<Extent>,
        cut: u64,
    ) -> Result<Option<Extent>> {
        let block = u64::from(self.sb.block_size);
        self.write_txn(|t| match ext {
            Some(e) => {
                let live = u64::from(e.live_len);
                t.delete(BtreeId::Extents, pos)?;
                let old = e.charge(block);
                let left = if cut < live {
                    let mut l = e;
                    l.live_len = (live - cut) as u32;
                    l.offset_into = e.offset_into.saturating_add(cut as u32);
                    Some(l)
                } else {
                    None
                };
                let new = left.map_or(0, |l| l.charge(block));
                if let Some(l) = &left {
                    t.extent_set(pos.inode, pos.offset, l)?;
                }
                let delta = new as i64 - old as i64;
                if delta != 0 {
                    for p in e.ptrs() {
                        t.charge(p.dev, p.offset, delta)?;
                    }
                }
                Ok(left)
            }
            None => {
                // Inline data: keep its tail.
                let keep = val.get(cut as usize..).unwrap_or(&[]);
                t.delete(BtreeId::Extents, pos)?;
                if !keep.is_empty() && kind == KeyType::InlineData {
                    t.set(BtreeId::Extents, pos, KeyType::InlineData, keep)?;
                }
                Ok(None)
            }
        })
    }

    /// The directory tree: every directory but the root has exactly one
    /// name, and following names upwards from any directory reaches the
    /// root. Extra names go; a cycle cut off from the root is broken at one
    /// directory, which then has no name and is reconnected to lost+found.
    fn check_dir_tree(
        &mut self,
        r: &mut Reporter<'_>,
        infos: &mut TryVec<InoInfo>,
        edges: &mut TryVec<DirEdge>,
    ) -> Result<()> {
        edges.sort_unstable_by_key(|e| (e.child, e.pos));
        let mut i = 0;
        while let Some(first) = edges.get(i).copied() {
            let n =
                edges.get(i..).map_or(0, |rest| rest.iter().take_while(|e| e.child == first.child).count());
            let group = edges.get(i..i + n).ok_or(Error::Internal("edges"))?;
            let own_parent = info(infos, first.child).map_or(0, |x| x.parent);
            let keep = group
                .iter()
                .position(|e| e.parent == own_parent && e.parent != e.child)
                .or_else(|| group.iter().position(|e| e.parent != e.child));
            let extra = n - usize::from(keep.is_some());
            if extra > 0 {
                let fix = r.may_fix(&NAMESPACE);
                if fix {
                    for (j, e) in group.iter().enumerate() {
                        if Some(j) != keep {
                            let pos = e.pos;
                            self.write_txn(|t| t.delete(BtreeId::Dirents, pos))?;
                        }
                    }
                }
                r.problem(ProblemKind::DirMultiplyLinked, first.child, n as u64, 1, fix);
            }
            if let Some(k) = keep.and_then(|k| group.get(k)).copied() {
                if let Some(x) = info_mut(infos, k.child) {
                    x.links = 1;
                    x.parent_found = k.parent;
                }
                if let Some(p) = info_mut(infos, k.parent) {
                    p.subdirs += 1;
                }
            }
            i += n;
        }
        // Follow kept names upwards; a path that comes back to itself is a
        // cycle, broken where it closed.
        if let Some(x) = info_mut(infos, ROOT_INO) {
            x.state = 2;
        }
        let mut path: TryVec<usize> = TryVec::new();
        for start in 0..infos.len() {
            path.clear();
            let mut at = start;
            // Bounded: every step marks a new inode as on the path.
            while let Some(x) = infos.get(at).copied() {
                if x.dtype != DT_DIR || x.state == 2 || x.links == 0 {
                    break;
                }
                if x.state == 1 {
                    self.cut_cycle(r, infos, edges, at)?;
                    break;
                }
                if let Some(y) = infos.get_mut(at) {
                    y.state = 1;
                }
                path.try_push(at)?;
                match find(infos, x.parent_found) {
                    Some(p) => at = p,
                    None => break,
                }
            }
            // Whatever the path met, its directories now reach the root or
            // a directory about to be reconnected.
            for &p in path.iter() {
                if let Some(y) = infos.get_mut(p) {
                    y.state = 2;
                }
            }
        }
        Ok(())
    }

    /// Break a cycle of directories at `infos[at]`: its kept name goes.
    fn cut_cycle(
        &mut self,
        r: &mut Reporter<'_>,
        infos: &mut TryVec<InoInfo>,
        edges: &[DirEdge],
        at: usize,
    ) -> Result<()> {
        let Some(x) = infos.get(at).copied() else { return Ok(()) };
        let fix = r.may_fix(&NAMESPACE);
        let edge = edges.iter().find(|e| e.child == x.ino && e.parent == x.parent_found).copied();
        if fix {
            if let Some(e) = edge {
                self.write_txn(|t| t.delete(BtreeId::Dirents, e.pos))?;
            }
        }
        r.problem(ProblemKind::DirCycle, x.ino, x.parent_found, 0, fix);
        // As if cut in either case, so that the link pass reports the rest once.
        if let Some(p) = info_mut(infos, x.parent_found) {
            p.subdirs = p.subdirs.saturating_sub(1);
        }
        if let Some(y) = infos.get_mut(at) {
            y.links = 0;
            y.parent_found = 0;
        }
        Ok(())
    }

    /// Reachability, link counts, parents and allocated bytes.
    fn check_links(&mut self, r: &mut Reporter<'_>, infos: &mut TryVec<InoInfo>) -> Result<()> {
        let fix = r.may_fix(&NAMESPACE);
        // Reconnect what no entry names: directories, and files that still
        // have links or data (an unlinked, empty file not on the orphan list
        // is put on it instead, below).
        // (Listed first: making lost+found enters it in `infos`.)
        let mut unreachable: TryVec<InoInfo> = TryVec::new();
        for x in infos.iter() {
            if x.ino != ROOT_INO
                && x.links == 0
                && (x.dtype == DT_DIR || (!x.orphan && (x.nlink > 0 || x.size > 0)))
            {
                unreachable.try_push(*x)?;
            }
        }
        let mut lost_found: Option<u64> = None;
        for x in unreachable.iter().copied() {
            if fix {
                let lf = match lost_found {
                    Some(lf) => lf,
                    None => {
                        let lf = self.lost_found(infos)?;
                        lost_found = Some(lf);
                        lf
                    }
                };
                self.reconnect(lf, &x)?;
                if let Some(y) = info_mut(infos, x.ino) {
                    y.links = 1;
                    y.parent_found = lf;
                    y.parent = lf;
                    if y.dtype != DT_DIR {
                        y.nlink = y.nlink.max(1);
                    }
                }
                if x.dtype == DT_DIR {
                    if let Some(l) = info_mut(infos, lf) {
                        l.subdirs += 1;
                    }
                }
            }
            r.problem(ProblemKind::Unreachable, x.ino, u64::from(x.nlink), 0, fix);
        }
        let fix_data = r.may_fix(&[BtreeId::Extents]);
        for i in 0..infos.len() {
            let x = infos.get(i).copied().unwrap_or_default();
            let mut inode = match self.getattr(x.ino) {
                Ok(a) => a.inode,
                Err(e) => {
                    r.error(ProblemKind::PassAborted, x.ino, e);
                    continue;
                }
            };
            let mut changed = false;
            if x.dtype == DT_DIR {
                let want = 2u32.saturating_add(x.subdirs);
                if inode.nlink != want {
                    r.problem(ProblemKind::DirLinkCount, x.ino, u64::from(inode.nlink), u64::from(want), fix);
                    inode.nlink = want;
                    changed |= fix;
                }
                let parent = if x.ino == ROOT_INO { ROOT_INO } else { x.parent_found };
                if x.links > 0 && inode.parent != parent {
                    r.problem(ProblemKind::DirParent, x.ino, inode.parent, parent, fix);
                    inode.parent = parent;
                    changed |= fix;
                }
            } else if x.nlink == 0 && x.links == 0 {
                if !x.orphan {
                    if fix {
                        self.write_txn(|t| t.orphan_add(x.ino))?;
                    }
                    r.problem(ProblemKind::OrphanMissing, x.ino, 0, 0, fix);
                }
            } else if x.links > 0 && inode.nlink != x.links {
                // (links == 0 with nlink > 0 was reported as unreachable above.)
                r.problem(ProblemKind::LinkCount, x.ino, u64::from(inode.nlink), u64::from(x.links), fix);
                inode.nlink = x.links;
                changed |= fix;
                if x.orphan && fix {
                    self.write_txn(|t| t.delete(BtreeId::Orphans, orphan_pos(x.ino)))?;
                }
            }
            if inode.alloc_bytes != x.alloc_found {
                r.problem(ProblemKind::AllocBytes, x.ino, inode.alloc_bytes, x.alloc_found, fix_data);
                inode.alloc_bytes = x.alloc_found;
                changed |= fix_data;
            }
            if changed {
                self.write_txn(|t| t.inode_write(x.ino, &inode))?;
            }
        }
        Ok(())
    }

    /// Give `x` a name in lost+found: `#INO`, or `#INO.N` if taken.
    fn reconnect(&mut self, lf: u64, x: &InoInfo) -> Result<()> {
        self.write_txn(|t| {
            let mut name = ino_name(x.ino, 0);
            let mut n = 0;
            while t.dirent_find(lf, &name)?.is_some() {
                n += 1;
                if n > 1000 {
                    return Err(Error::NoSpace);
                }
                name = ino_name(x.ino, n);
            }
            let slot = t.dirent_free_slot(lf, &name)?;
            t.dirent_set_target(slot, &name, x.ino, x.dtype)?;
            let mut inode = t.inode_read(x.ino)?;
            if x.dtype == DT_DIR {
                inode.parent = lf;
            } else if inode.nlink == 0 {
                inode.nlink = 1;
            }
            t.inode_write(x.ino, &inode)
        })
    }

    /// The lost+found directory in the root, created if missing (under
    /// another name if something else holds that one); entered in `infos`.
    fn lost_found(&mut self, infos: &mut TryVec<InoInfo>) -> Result<u64> {
        let mut name = [0u8; 16];
        name.get_mut(..10).ok_or(Error::Internal("name"))?.copy_from_slice(b"lost+found");
        for n in 0..10u8 {
            let len = if n == 0 {
                10
            } else {
                if let Some(tail) = name.get_mut(10..12) {
                    tail.copy_from_slice(&[b'.', b'0' + n]);
                }
                12
            };
            let nm = name.get(..len).ok_or(Error::Internal("name"))?;
            match self.lookup(ROOT_INO, nm) {
                Ok(a) if a.inode.is_dir() => return Ok(a.ino),
                Ok(_) => continue,
                Err(Error::NotFound) => {
                    let a = self.mkdir(ROOT_INO, nm, 0o700, 0, 0)?;
                    let pos = infos.partition_point(|y| y.ino < a.ino);
                    infos.try_insert(
                        pos,
                        InoInfo {
                            ino: a.ino,
                            nlink: 2,
                            dtype: DT_DIR,
                            links: 1,
                            parent: ROOT_INO,
                            parent_found: ROOT_INO,
                            state: 2,
                            ..Default::default()
                        },
                    )?;
                    if let Some(root) = info_mut(infos, ROOT_INO) {
                        root.subdirs += 1;
                    }
                    return Ok(a.ino);
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Exists)
    }
}

/// Count one entry naming `target` (of type `dtype`) at `pos`.
fn count_entry(
    infos: &mut [InoInfo],
    edges: &mut TryVec<DirEdge>,
    pos: Pos,
    target: u64,
    dtype: u8,
) -> Result<()> {
    if dtype == DT_DIR {
        edges.try_push(DirEdge { child: target, parent: pos.inode, pos })
    } else {
        if let Some(x) = info_mut(infos, target) {
            x.links = x.links.saturating_add(1);
        }
        Ok(())
    }
}
