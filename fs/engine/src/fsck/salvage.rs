//! What the node pass keeps of a leaf it cuts out: a leaf fails
//! verification for a single value that does not decode, and it holds
//! thousands of keys. Before the leaf goes ([`crate::btree::Btrees::prune`]),
//! every key of it that can still be read, whole and in the leaf's range, is
//! taken out ([`crate::btree::Btrees::salvage_leaf`]); once it is gone they
//! are put back through transactions. A value that does not decode is
//! dropped (reported as `key_dropped`), except an inode's: a file's
//! attributes are rebuilt from what of them reads, its directory entries
//! and its extents (`inode_rebuilt`), so that its name and data stay. The
//! logical passes then find whatever else the loss leaves wrong (link
//! counts, bucket usage, an entry whose target was dropped).
//!
//! Alloc leaves are not salvaged: the bucket pass rebuilds their keys.

use super::{ProblemKind, Reporter};
use crate::btree::check::SalvagedKey;
use crate::error::{Error, Result};
use crate::format::inode::{dirent_type, Inode, INODE_BYTES, S_IFDIR, S_IFMT, S_IFREG};
use crate::format::node::BtreePtr;
use crate::format::{BtreeId, KeyType, Pos};
use crate::fs::inode::inode_pos;
use crate::fs::Fs;
use crate::sys::{now_ns, BlockDevice, TryVec};

/// Values put back per transaction, in bytes: well inside a journal entry.
const BATCH_BYTES: usize = 32 << 10;

/// Values held for putting back at most: fsck's memory stays bounded
/// however many leaves are cut; the leaves past it lose what they held.
const SALVAGE_MAX_BYTES: usize = 64 << 20;

/// One key taken out of a leaf.
#[derive(Clone, Copy)]
struct Kept {
    btree: BtreeId,
    pos: Pos,
    /// `None`: an inode value to rebuild.
    kind: Option<KeyType>,
    off: usize,
    len: usize,
}

/// The keys taken out of leaves, their values in one arena, and the keys
/// whose values are dropped.
#[derive(Default)]
pub(crate) struct Salvage {
    kept: TryVec<Kept>,
    vals: TryVec<u8>,
    dropped: TryVec<(BtreeId, Pos)>,
}

impl Salvage {
    /// An empty salvage.
    pub(crate) fn new() -> Self {
        Salvage::default()
    }

    /// Whether it holds as much as fsck keeps in memory.
    pub(crate) fn full(&self) -> bool {
        self.vals.len() >= SALVAGE_MAX_BYTES
    }

    /// Add what `other` took out.
    pub(crate) fn append(&mut self, other: Salvage) -> Result<()> {
        let base = self.vals.len();
        self.vals.try_extend_from_slice(&other.vals)?;
        for k in other.kept.iter() {
            self.kept.try_push(Kept { off: k.off + base, ..*k })?;
        }
        self.dropped.try_extend_from_slice(&other.dropped)
    }

    fn value(&self, k: &Kept) -> &[u8] {
        self.vals.get(k.off..k.off + k.len).unwrap_or(&[])
    }
}

impl<D: BlockDevice> Fs<D> {
    /// Take out into `s` what the bad leaf at `ptr` (of `btree`, `[min,
    /// max]`) still holds, before it is cut out.
    pub(crate) fn salvage_leaf(
        &mut self,
        s: &mut Salvage,
        btree: BtreeId,
        ptr: BtreePtr,
        (min, max): (Pos, Pos),
    ) -> Result<()> {
        if btree == BtreeId::Alloc || ptr.level != 0 {
            return Ok(());
        }
        let (trees, mut store) = self.parts();
        trees.salvage_leaf(&mut store, ptr, btree, min, max, &mut |k: SalvagedKey<'_>| {
            let kind = match k.kind {
                Some(kind) if k.valid => Some(kind),
                Some(KeyType::Inode) => None,
                _ => return s.dropped.try_push((btree, k.pos)),
            };
            let off = s.vals.len();
            s.vals.try_extend_from_slice(k.value)?;
            s.kept.try_push(Kept { btree, pos: k.pos, kind, off, len: k.value.len() })
        })?;
        Ok(())
    }

    /// Put back what [`Fs::salvage_leaf`] took out of the leaves that were
    /// cut (with `fix`), rebuilding the inodes among them; without, only
    /// report the inodes that would be rebuilt.
    pub(crate) fn salvage_put_back(&mut self, r: &mut Reporter<'_>, s: &Salvage, fix: bool) -> Result<()> {
        let mut i = 0;
        while fix && i < s.kept.len() {
            let (mut j, mut bytes) = (i, 0);
            while let Some(k) = s.kept.get(j) {
                if j > i && bytes + k.len > BATCH_BYTES {
                    break;
                }
                bytes += k.len;
                j += 1;
            }
            let batch = s.kept.get(i..j).unwrap_or(&[]);
            self.write_txn(|t| {
                for k in batch.iter() {
                    if let Some(kind) = k.kind {
                        t.set(k.btree, k.pos, kind, s.value(k))?;
                    }
                }
                Ok(())
            })?;
            i = j;
        }
        for &(btree, pos) in s.dropped.iter() {
            r.problem(ProblemKind::KeyDropped, pos.inode, pos.offset, btree.index() as u64, fix);
        }
        for k in s.kept.iter().filter(|k| k.kind.is_none()) {
            let old = Inode::decode_fields(s.value(k)).ok();
            let inode = self.rebuilt_inode(k.pos.inode, old);
            if fix {
                let mut buf = [0u8; INODE_BYTES];
                let n = inode.encode(&mut buf).map_err(|_| Error::Internal("inode encode"))?;
                let val = buf.get(..n).unwrap_or(&[]);
                self.write_txn(|t| t.set(BtreeId::Inodes, inode_pos(k.pos.inode), KeyType::Inode, val))?;
            }
            let was = old.map_or(0, |o| o.mode);
            r.problem(ProblemKind::InodeRebuilt, k.pos.inode, u64::from(was), u64::from(inode.mode), fix);
        }
        Ok(())
    }

    /// Attributes for `ino`, whose value did not decode: its fields as they
    /// read (`old`), with a file type from what the file holds (entries:
    /// a directory; else a regular file) where its own names none, and a
    /// size from its data where its own is out of range. Link counts,
    /// allocated bytes and the parent are the logical passes' to correct.
    fn rebuilt_inode(&mut self, ino: u64, old: Option<Inode>) -> Inode {
        let now = now_ns();
        let mut inode = old.unwrap_or(Inode {
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 1,
            size: 0,
            atime: now,
            mtime: now,
            ctime: now,
            btime: now,
            flags: 0,
            generation: 0,
            rdev: 0,
            alloc_bytes: 0,
            compression: 0,
            data_checksum: self.sb.data_csum as u8,
            projid: 0,
            parent: 0,
        });
        if dirent_type(inode.mode).is_none() {
            let dir = self.has_keys(BtreeId::Dirents, ino);
            let ty = if dir { S_IFDIR } else { S_IFREG };
            let mut perm = inode.mode & !S_IFMT;
            if perm == 0 {
                perm = if dir { 0o755 } else { 0o644 };
            }
            inode.mode = ty | perm;
        }
        if inode.size > i64::MAX as u64 || (old.is_none() && !inode.is_dir()) {
            inode.size = if inode.is_dir() { 0 } else { self.data_end(ino) };
        }
        inode
    }

    /// Whether `btree` holds a key of `ino` (false where it cannot be read).
    fn has_keys(&mut self, btree: BtreeId, ino: u64) -> bool {
        let mut val = TryVec::new();
        matches!(self.read_txn(|t| t.next(&mut t.inode_cursor(btree, ino, 0), &mut val)), Ok(Some(_)))
    }

    /// Where `ino`'s last extent ends (0 without extents or where they
    /// cannot be read): extent keys sit at the end of what they hold.
    fn data_end(&mut self, ino: u64) -> u64 {
        let mut val = TryVec::new();
        let last = self.read_txn(|t| {
            let mut c = t.inode_cursor(BtreeId::Extents, ino, 0);
            t.prev(&mut c, &mut val)
        });
        last.ok().flatten().map_or(0, |(pos, _)| pos.offset.min(i64::MAX as u64))
    }
}
