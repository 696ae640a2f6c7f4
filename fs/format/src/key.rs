//! Key positions, b-tree ids and key types.
//!
//! A key's position is `(inode, offset, snapshot)`, compared in that order. The
//! snapshot field versions keys: a key written in snapshot `s` is seen by `s`
//! and its descendants unless a descendant has its own version.

use super::bytes::{Reader, Writer};
use super::error::{FormatError, Result};

/// Encoded size of a [`Pos`].
pub const POS_BYTES: usize = 20;

/// A key position. Ordering is lexicographic on (inode, offset, snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Inode number (or device index in the alloc b-tree).
    pub inode: u64,
    /// Offset within the inode: a byte offset for extents (the END of the
    /// extent), a name hash for dirents and xattrs, a bucket number for alloc.
    pub offset: u64,
    /// Snapshot id.
    pub snapshot: u32,
}

impl Pos {
    /// The smallest position.
    pub const MIN: Pos = Pos { inode: 0, offset: 0, snapshot: 0 };
    /// The largest position.
    pub const MAX: Pos = Pos { inode: u64::MAX, offset: u64::MAX, snapshot: u32::MAX };

    /// A position.
    pub const fn new(inode: u64, offset: u64, snapshot: u32) -> Self {
        Pos { inode, offset, snapshot }
    }

    /// The next position, or `None` after [`Pos::MAX`].
    pub const fn successor(self) -> Option<Pos> {
        if self.snapshot < u32::MAX {
            return Some(Pos { snapshot: self.snapshot + 1, ..self });
        }
        if self.offset < u64::MAX {
            return Some(Pos { inode: self.inode, offset: self.offset + 1, snapshot: 0 });
        }
        if self.inode < u64::MAX {
            return Some(Pos { inode: self.inode + 1, offset: 0, snapshot: 0 });
        }
        None
    }

    /// The previous position, or `None` before [`Pos::MIN`].
    pub const fn predecessor(self) -> Option<Pos> {
        if self.snapshot > 0 {
            return Some(Pos { snapshot: self.snapshot - 1, ..self });
        }
        if self.offset > 0 {
            return Some(Pos { inode: self.inode, offset: self.offset - 1, snapshot: u32::MAX });
        }
        if self.inode > 0 {
            return Some(Pos { inode: self.inode - 1, offset: u64::MAX, snapshot: u32::MAX });
        }
        None
    }

    /// Decode from 20 bytes.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Pos { inode: r.u64()?, offset: r.u64()?, snapshot: r.u32()? })
    }

    /// Encode as 20 bytes.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u64(self.inode)?;
        w.u64(self.offset)?;
        w.u32(self.snapshot)
    }
}

/// The b-trees. Persistent numbers, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum BtreeId {
    /// File data: extents and inline data, keyed (inode, end offset, snapshot).
    Extents = 0,
    /// Inodes, keyed (inode, 0, snapshot).
    Inodes = 1,
    /// Directory entries, keyed (dir inode, name hash slot, snapshot).
    Dirents = 2,
    /// Extended attributes, keyed (inode, name hash slot, snapshot).
    Xattrs = 3,
    /// Per-bucket allocation info, keyed (device, bucket, 0).
    Alloc = 4,
    /// Unlinked inodes still to be deleted, keyed (0, inode, 0).
    Orphans = 5,
}

/// Number of b-tree ids; root tables have this many slots.
pub const BTREE_ID_NR: usize = 6;

impl BtreeId {
    /// Every b-tree, in id order.
    pub const ALL: [BtreeId; BTREE_ID_NR] = [
        BtreeId::Extents,
        BtreeId::Inodes,
        BtreeId::Dirents,
        BtreeId::Xattrs,
        BtreeId::Alloc,
        BtreeId::Orphans,
    ];

    /// Decode the on-disk id.
    pub fn from_u8(v: u8) -> Result<Self> {
        BtreeId::ALL.get(usize::from(v)).copied().ok_or(FormatError::UnknownType("btree id"))
    }

    /// Index into root tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            BtreeId::Extents => "extents",
            BtreeId::Inodes => "inodes",
            BtreeId::Dirents => "dirents",
            BtreeId::Xattrs => "xattrs",
            BtreeId::Alloc => "alloc",
            BtreeId::Orphans => "orphans",
        }
    }

    /// Whether a key of this b-tree may sit at `pos` (`format.md` §5.3 and
    /// invariant 12): the fixed fields hold their fixed values, inode numbers
    /// are real ones (at least [`super::ROOT_INO`]) and name slots lie in the
    /// slot range. The alloc tree's device and bucket ranges depend on the
    /// superblock; the engine checks those.
    pub const fn canonical(self, pos: Pos) -> bool {
        use super::dirent::{FIRST_SLOT, SLOT_END};
        use super::{ROOT_INO, SNAPSHOT_ROOT};
        let ino = pos.inode >= ROOT_INO;
        match self {
            BtreeId::Extents => ino && pos.offset > 0 && pos.snapshot == SNAPSHOT_ROOT,
            BtreeId::Inodes => ino && pos.offset == 0 && pos.snapshot == SNAPSHOT_ROOT,
            BtreeId::Dirents | BtreeId::Xattrs => {
                ino && pos.offset >= FIRST_SLOT && pos.offset < SLOT_END && pos.snapshot == SNAPSHOT_ROOT
            }
            BtreeId::Alloc => pos.snapshot == 0,
            BtreeId::Orphans => pos.inode == 0 && pos.offset >= ROOT_INO && pos.snapshot == 0,
        }
    }

    /// Whether keys of this b-tree are versioned by snapshot (the others
    /// hold the file system's own state: allocation, the orphan list).
    pub const fn snapshotted(self) -> bool {
        matches!(self, BtreeId::Extents | BtreeId::Inodes | BtreeId::Dirents | BtreeId::Xattrs)
    }

    /// Whether `kind` may appear in a leaf of this b-tree.
    pub const fn allows(self, kind: KeyType) -> bool {
        matches!(
            (self, kind),
            (BtreeId::Extents, KeyType::Extent)
                | (BtreeId::Extents, KeyType::InlineData)
                | (BtreeId::Inodes, KeyType::Inode)
                | (BtreeId::Dirents, KeyType::Dirent)
                | (BtreeId::Xattrs, KeyType::Xattr)
                | (BtreeId::Alloc, KeyType::Alloc)
                | (BtreeId::Orphans, KeyType::Orphan)
        )
    }
}

/// Key (value) types. Persistent numbers, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum KeyType {
    /// An inode ([`super::inode::Inode`]).
    Inode = 1,
    /// A directory entry ([`super::dirent::Dirent`]).
    Dirent = 2,
    /// A data extent ([`super::extent::Extent`]).
    Extent = 3,
    /// File data stored in the key itself (symlink targets).
    InlineData = 4,
    /// An extended attribute ([`super::xattr::Xattr`]).
    Xattr = 5,
    /// Per-bucket allocation info ([`super::alloc_info::AllocInfo`]).
    Alloc = 6,
    /// A pointer to a child node ([`super::node::BtreePtr`]), in interior nodes.
    BtreePtr = 7,
    /// An orphan marker (empty value).
    Orphan = 8,
}

impl KeyType {
    /// Decode the on-disk type.
    pub fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            1 => KeyType::Inode,
            2 => KeyType::Dirent,
            3 => KeyType::Extent,
            4 => KeyType::InlineData,
            5 => KeyType::Xattr,
            6 => KeyType::Alloc,
            7 => KeyType::BtreePtr,
            8 => KeyType::Orphan,
            _ => return Err(FormatError::UnknownType("key")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_and_predecessor_invert() {
        for p in
            [Pos::new(1, 2, 3), Pos::new(1, 2, u32::MAX), Pos::new(1, u64::MAX, u32::MAX), Pos::new(0, 0, 1)]
        {
            let s = p.successor().unwrap();
            assert!(s > p);
            assert_eq!(s.predecessor(), Some(p));
        }
        assert_eq!(Pos::MAX.successor(), None);
        assert_eq!(Pos::MIN.predecessor(), None);
    }

    #[test]
    fn canonical_positions() {
        use crate::{ROOT_INO, SNAPSHOT_ROOT};
        assert!(BtreeId::Inodes.canonical(Pos::new(ROOT_INO, 0, SNAPSHOT_ROOT)));
        assert!(!BtreeId::Inodes.canonical(Pos::new(ROOT_INO, 1, SNAPSHOT_ROOT)));
        assert!(!BtreeId::Inodes.canonical(Pos::new(ROOT_INO - 1, 0, SNAPSHOT_ROOT)));
        assert!(!BtreeId::Extents.canonical(Pos::new(ROOT_INO, 0, SNAPSHOT_ROOT)));
        assert!(BtreeId::Dirents.canonical(Pos::new(ROOT_INO, 16, SNAPSHOT_ROOT)));
        assert!(!BtreeId::Dirents.canonical(Pos::new(ROOT_INO, 15, SNAPSHOT_ROOT)));
        assert!(!BtreeId::Xattrs.canonical(Pos::new(ROOT_INO, 1 << 62, SNAPSHOT_ROOT)));
        assert!(BtreeId::Alloc.canonical(Pos::new(0, 7, 0)));
        assert!(!BtreeId::Alloc.canonical(Pos::new(0, 7, 1)));
        assert!(BtreeId::Orphans.canonical(Pos::new(0, ROOT_INO + 1, 0)));
        assert!(!BtreeId::Orphans.canonical(Pos::new(1, ROOT_INO + 1, 0)));
    }

    #[test]
    fn btree_ids_round_trip() {
        for id in BtreeId::ALL {
            assert_eq!(BtreeId::from_u8(id as u8), Ok(id));
        }
        assert!(BtreeId::from_u8(BTREE_ID_NR as u8).is_err());
    }
}
