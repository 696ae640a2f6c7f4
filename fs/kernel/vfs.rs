// SPDX-License-Identifier: GPL-2.0
//! Entry points the C glue calls (`arborfs_rs_*`): each turns a VFS request
//! into an engine call and the result into plain C data or a negative errno.
//! The glue holds the mount's mutex (in a NOFS scope) around every call, so
//! each function has the engine to itself.

use core::ffi::{c_int, c_void};
use kernel::ffi::c_char;

use kernel::alloc::{flags::GFP_KERNEL, KBox};
use kernel::prelude::*;

use crate::error::Error as FsError;
use crate::fs::{Fs, OpenOptions};
use crate::sys::{KernelDevice, TryVec};

type KFs = Fs<KernelDevice>;

/// Inode attributes, laid out as `struct arborfs_attr` in glue.c.
#[repr(C)]
pub(crate) struct ArborfsAttr {
    size: u64,
    alloc_bytes: u64,
    atime: i64,
    mtime: i64,
    ctime: i64,
    btime: i64,
    rdev: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    generation: u32,
    flags: u32,
}

/// One directory entry, laid out as `struct arborfs_dirent` in glue.c.
#[repr(C)]
pub(crate) struct ArborfsDirent {
    ino: u64,
    next: u64,
    dtype: u8,
    len: u8,
    name: [u8; 256],
}

/// statfs numbers, laid out as `struct arborfs_statfs` in glue.c.
#[repr(C)]
pub(crate) struct ArborfsStatfs {
    blocks: u64,
    bfree: u64,
    bavail: u64,
    files: u64,
    ffree: u64,
    bsize: u32,
    namelen: u32,
}

fn errno(e: FsError) -> c_int {
    -e.errno()
}

/// The errno for a failed operation; damage (bad checksums, bad nodes) is
/// also logged, naming the operation and inode, since the caller only sees
/// EUCLEAN or EIO.
fn failed(e: FsError, op: &str, ino: u64) -> c_int {
    if e.is_damage() {
        pr_err!("{} of inode {} failed: {}\n", op, ino, e);
    }
    errno(e)
}

/// # Safety
///
/// `fs` must be a pointer returned by [`arborfs_rs_mount`] and not yet unmounted.
unsafe fn engine<'a>(fs: *mut c_void) -> &'a mut KFs {
    // SAFETY: per the function's contract the pointer is a live, exclusively
    // held `KFs` (the glue's mutex serialises calls).
    unsafe { &mut *fs.cast::<KFs>() }
}

/// Open the file system on the mount's block device.
///
/// # Safety
///
/// `id` is a NUL-terminated device name; `bdev` the mount's block device,
/// open until [`arborfs_rs_unmount`]; `out` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_mount(
    id: *const c_char,
    bdev: *mut c_void,
    size: u64,
    silent: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: `id` is the super block's NUL-terminated s_id.
    let name = unsafe { kernel::str::CStr::from_char_ptr(id) };
    // SAFETY: the VFS keeps `bdev` open while the file system is mounted.
    let dev = unsafe { KernelDevice::new(bdev, size, 0) };
    let mut devs = TryVec::new();
    if devs.try_push(dev).is_err() {
        return -12;
    }
    let opts = OpenOptions { read_only: true, cache_bytes: 32 << 20 };
    match Fs::open(devs, &opts) {
        Ok(fs) => match KBox::new(fs, GFP_KERNEL) {
            Ok(b) => {
                // SAFETY: `out` is writable per the contract.
                unsafe { *out = KBox::into_raw(b).cast() };
                pr_info!("{}: mounted read-only\n", name);
                0
            }
            Err(_) => -12,
        },
        Err(e) => {
            if silent == 0 {
                pr_err!("{}: cannot mount: {}\n", name, e);
            }
            match e {
                FsError::BadMetadata { .. } | FsError::BadNode { .. } | FsError::Corrupt(_) => -22,
                e => errno(e),
            }
        }
    }
}

/// Release the engine.
///
/// # Safety
///
/// `fs` comes from [`arborfs_rs_mount`]; it is not used afterwards.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_unmount(fs: *mut c_void) {
    // SAFETY: the pointer came from `KBox::into_raw` in `arborfs_rs_mount`.
    let b = unsafe { KBox::from_raw(fs.cast::<KFs>()) };
    drop(b);
}

/// Attributes of `ino`.
///
/// # Safety
///
/// `fs` is mounted; `out` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_getattr(fs: *mut c_void, ino: u64, out: *mut ArborfsAttr) -> c_int {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    match fs.getattr(ino) {
        Ok(a) => {
            let i = a.inode;
            let attr = ArborfsAttr {
                size: i.size,
                alloc_bytes: i.alloc_bytes,
                atime: i.atime,
                mtime: i.mtime,
                ctime: i.ctime,
                btime: i.btime,
                rdev: i.rdev,
                mode: i.mode,
                uid: i.uid,
                gid: i.gid,
                nlink: i.nlink,
                generation: i.generation,
                flags: i.flags,
            };
            // SAFETY: `out` is writable.
            unsafe { out.write(attr) };
            0
        }
        Err(e) => failed(e, "getattr", ino),
    }
}

/// Look `name` up in `dir`.
///
/// # Safety
///
/// `fs` is mounted; `name` points to `len` bytes; `ino` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_lookup(fs: *mut c_void, dir: u64, name: *const u8, len: usize, ino: *mut u64) -> c_int {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    // SAFETY: `name` points to `len` readable bytes.
    let name = unsafe { core::slice::from_raw_parts(name, len) };
    match fs.lookup(dir, name) {
        Ok(a) => {
            // SAFETY: `ino` is writable.
            unsafe { *ino = a.ino };
            0
        }
        Err(e) => failed(e, "lookup in directory", dir),
    }
}

/// Up to `max` entries of `dir` from cursor `pos`.
///
/// # Safety
///
/// `fs` is mounted; `out` has room for `max` entries; `n` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_readdir(
    fs: *mut c_void,
    dir: u64,
    pos: u64,
    out: *mut ArborfsDirent,
    max: usize,
    n: *mut usize,
) -> c_int {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    // SAFETY: `out` has room for `max` entries, which we only write.
    let out = unsafe { core::slice::from_raw_parts_mut(out, max) };
    let mut count = 0usize;
    let r = fs.readdir(dir, pos, &mut |name, ino, dtype, next| {
        let Some(slot) = out.get_mut(count) else { return false };
        let len = name.len().min(255);
        slot.ino = ino;
        slot.next = next;
        slot.dtype = dtype;
        slot.len = len as u8;
        if let (Some(dst), Some(src)) = (slot.name.get_mut(..len), name.get(..len)) {
            dst.copy_from_slice(src);
        }
        count += 1;
        count < max
    });
    // SAFETY: `n` is writable.
    unsafe { *n = count };
    match r {
        Ok(()) => 0,
        Err(e) => failed(e, "readdir", dir),
    }
}

/// Read file data; returns bytes read or a negative errno.
///
/// # Safety
///
/// `fs` is mounted; `buf` points to `len` writable bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_read(fs: *mut c_void, ino: u64, off: u64, buf: *mut u8, len: usize) -> isize {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    // SAFETY: `buf` points to `len` writable bytes.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf, len) };
    match fs.read(ino, off, buf) {
        Ok(n) => n as isize,
        Err(e) => {
            pr_err!("read of inode {} at {} failed: {}\n", ino, off, e);
            errno(e) as isize
        }
    }
}

/// Symlink target into `buf`; returns its length.
///
/// # Safety
///
/// `fs` is mounted; `buf` points to `len` writable bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_readlink(fs: *mut c_void, ino: u64, buf: *mut u8, len: usize) -> isize {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    let mut t = TryVec::new();
    if let Err(e) = fs.readlink(ino, &mut t) {
        return failed(e, "readlink", ino) as isize;
    }
    if t.len() > len {
        return -34;
    }
    // SAFETY: `buf` has room for `len >= t.len()` bytes.
    unsafe { core::ptr::copy_nonoverlapping(t.as_ptr(), buf, t.len()) };
    t.len() as isize
}

/// statfs numbers.
///
/// # Safety
///
/// `fs` is mounted; `out` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_statfs(fs: *mut c_void, out: *mut ArborfsStatfs) -> c_int {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    let s = fs.statfs();
    let v = ArborfsStatfs {
        blocks: s.blocks,
        bfree: s.blocks_free,
        bavail: s.blocks_avail,
        files: s.files,
        ffree: s.files_free,
        bsize: s.block_size,
        namelen: s.name_max,
    };
    // SAFETY: `out` is writable.
    unsafe { out.write(v) };
    0
}

/// Copy `data` out under the xattr calling convention: size 0 asks for the length.
///
/// # Safety
///
/// `buf` points to `size` writable bytes (or size is 0).
unsafe fn copy_out(data: &[u8], buf: *mut u8, size: usize) -> isize {
    if size == 0 {
        return data.len() as isize;
    }
    if data.len() > size {
        return -34;
    }
    // SAFETY: `buf` has room for `size >= data.len()` bytes.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len()) };
    data.len() as isize
}

/// getxattr with the full name ("user.foo").
///
/// # Safety
///
/// `fs` is mounted; `name` points to `namelen` bytes; `buf` to `size` bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_getxattr(
    fs: *mut c_void,
    ino: u64,
    name: *const u8,
    namelen: usize,
    buf: *mut u8,
    size: usize,
) -> isize {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    // SAFETY: `name` points to `namelen` readable bytes.
    let name = unsafe { core::slice::from_raw_parts(name, namelen) };
    let mut v = TryVec::new();
    match fs.getxattr(ino, name, &mut v) {
        // SAFETY: forwarded contract.
        Ok(()) => unsafe { copy_out(&v, buf, size) },
        Err(e) => failed(e, "getxattr", ino) as isize,
    }
}

/// listxattr: NUL-terminated names.
///
/// # Safety
///
/// `fs` is mounted; `buf` points to `size` writable bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_listxattr(fs: *mut c_void, ino: u64, buf: *mut u8, size: usize) -> isize {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    let mut v = TryVec::new();
    match fs.listxattr(ino, &mut v) {
        // SAFETY: forwarded contract.
        Ok(()) => unsafe { copy_out(&v, buf, size) },
        Err(e) => failed(e, "listxattr", ino) as isize,
    }
}
