//! The arborfs on-disk format: every structure's byte layout, its bounds-checked
//! encode and decode, and the checksums that guard it.
//!
//! This crate is `no_std`, allocates nothing and depends on nothing, so the kernel
//! module and the userspace tools share it unchanged. Modules refer to each other
//! only through `super::`, which lets the kernel build include this file as a
//! module (`#[path]`) instead of a crate. `Documentation/format.md` describes the
//! same layouts byte by byte.
#![cfg_attr(not(arborfs_kernel), no_std)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod alloc_info;
pub mod bytes;
pub mod checksum;
pub mod dirent;
pub mod error;
pub mod extent;
pub mod inode;
pub mod journal;
pub mod key;
pub mod node;
pub mod superblock;
pub mod xattr;

pub use error::{FormatError, Result};
pub use key::{BtreeId, KeyType, Pos};

/// The arborfs release this source is (the tools, the module and this
/// crate come from one tree: `arborfs version` compares them).
pub const RELEASE: &str = "0.1.0";

/// The format version this code writes. See "Versions" in `Documentation/format.md`.
pub const FORMAT_VERSION: u32 = 1;

/// Smallest and largest supported block size (data I/O granularity).
pub const MIN_BLOCK_SIZE: u32 = 512;
/// Largest supported block size.
pub const MAX_BLOCK_SIZE: u32 = 65536;
/// Smallest and largest supported b-tree node size.
pub const MIN_NODE_SIZE: u32 = 4096;
/// Largest supported b-tree node size.
pub const MAX_NODE_SIZE: u32 = 1 << 20;
/// Smallest and largest supported bucket size.
pub const MIN_BUCKET_SIZE: u32 = 64 * 1024;
/// Largest supported bucket size.
pub const MAX_BUCKET_SIZE: u32 = 64 << 20;
/// A bucket holds at least this many b-tree nodes.
pub const MIN_NODES_PER_BUCKET: u32 = 4;

/// Inode number of the root directory.
pub const ROOT_INO: u64 = 4096;
/// The first inode number handed to new files.
pub const FIRST_FREE_INO: u64 = ROOT_INO + 1;

/// Snapshot id of the original (root) snapshot. Snapshot ids are allocated
/// downwards, so an ancestor always has a larger id than its descendants.
pub const SNAPSHOT_ROOT: u32 = u32::MAX;

/// Longest file name, in bytes.
pub const NAME_MAX: usize = 255;
/// Longest symlink target, in bytes.
pub const SYMLINK_MAX: usize = 4095;
/// Longest extended attribute name, in bytes (without namespace prefix).
pub const XATTR_NAME_MAX: usize = 255;
/// Largest extended attribute value, in bytes.
pub const XATTR_VALUE_MAX: usize = 16384;

/// Round `v` up to a multiple of `align` (a power of two); `None` on
/// overflow or a zero `align`.
pub const fn round_up(v: u64, align: u64) -> Option<u64> {
    let Some(mask) = align.checked_sub(1) else { return None };
    match v.checked_add(mask) {
        Some(x) => Some(x & !mask),
        None => None,
    }
}
