// SPDX-License-Identifier: GPL-2.0
//! arborfs kernel module: the crate root.
//!
//! It declares the shared format and engine sources as top-level modules
//! (the same paths the userspace crates use, so `crate::btree` and
//! `crate::format` resolve alike in both builds), selects the kernel platform
//! (`--cfg arborfs_kernel`, set in Kbuild), and registers the file system type
//! that lives in the C glue.

use kernel::prelude::*;

#[path = "format/src/lib.rs"]
pub mod format;

#[path = "engine/src/alloc/mod.rs"]
pub mod alloc;
#[path = "engine/src/btree/mod.rs"]
pub mod btree;
#[path = "engine/src/error.rs"]
pub mod error;
#[path = "engine/src/fs/mod.rs"]
pub mod fs;
#[path = "engine/src/fsck/mod.rs"]
pub mod fsck;
#[path = "engine/src/journal/mod.rs"]
pub mod journal;
#[path = "engine/src/sys/mod.rs"]
pub mod sys;
#[path = "engine/src/txn.rs"]
pub mod txn;

#[path = "kernel/vfs.rs"]
mod vfs;

module! {
    type: ArborFsModule,
    name: "arborfs",
    author: "arborfs developers",
    description: "arborfs: a copy-on-write b-tree file system",
    license: "GPL",
}

extern "C" {
    fn arborfs_glue_register() -> core::ffi::c_int;
    fn arborfs_glue_unregister();
}

struct ArborFsModule;

impl kernel::Module for ArborFsModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: registers the static file_system_type of the C glue once.
        let err = unsafe { arborfs_glue_register() };
        if err != 0 {
            return Err(Error::from_errno(err));
        }
        pr_info!("registered\n");
        Ok(ArborFsModule)
    }
}

impl Drop for ArborFsModule {
    fn drop(&mut self) {
        // SAFETY: undoes the registration made in `init`.
        unsafe { arborfs_glue_unregister() };
    }
}
