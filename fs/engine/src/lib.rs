//! The arborfs storage engine: copy-on-write b-trees, the journal, the bucket
//! allocator, the file system operations and fsck.
//!
//! The engine is `no_std` and sees its host only through [`sys`]. The
//! userspace build (feature `std`) links the tools; the kernel module declares
//! these same top-level modules in its crate root (so `crate::btree` and
//! `crate::format` resolve identically) with its own `sys`.
#![no_std]

#[cfg(feature = "std")]
extern crate std;

/// The on-disk format crate, under the path the kernel build also uses.
pub use arborfs_format as format;

pub mod btree;
pub mod buckets;
pub mod error;
pub mod fs;
pub mod fsck;
pub mod journal;
pub mod sys;

pub use error::{Error, Result};
pub use fs::{Fs, OpenOptions};
