//! The arborfs storage engine: copy-on-write b-trees, the journal, the bucket
//! allocator, transactions over them, the file system operations and fsck.
//!
//! Who calls whom (no cycle): [`fs`] (POSIX operations, open, checkpoint,
//! replay) -> [`txn`] -> {[`btree`], [`journal`], [`alloc`]} -> [`format`];
//! [`fsck`] drives the per-subsystem checks from above.
//!
//! The engine is `no_std` and sees its host only through [`sys`]. The
//! userspace build (feature `std`) links the tools; the kernel module declares
//! these same top-level modules in its crate root (so `crate::btree` and
//! `crate::format` resolve identically) with its own `sys`.
#![no_std]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

/// The on-disk format crate, under the path the kernel build also uses.
pub use arborfs_format as format;

pub mod alloc;
pub mod btree;
pub mod error;
pub mod fs;
pub mod fsck;
pub mod journal;
pub mod sys;
pub mod txn;

pub use error::{Error, Result};
pub use fs::{Fs, OpenOptions};
