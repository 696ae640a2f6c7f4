// SPDX-License-Identifier: GPL-2.0
//! Entry points the C glue calls (`arborfs_rs_*`): each turns a VFS request
//! into an engine call and the result into plain C data or a negative errno.
//! The glue holds the mount's mutex (in a NOFS scope) around every call, so
//! each function has the engine to itself.

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use kernel::ffi::c_char;

use kernel::alloc::{flags::GFP_KERNEL, KBox};
use kernel::prelude::*;

use crate::error::Error as FsError;
use crate::fs::{Attr, Fs, OpenOptions, SetAttr};
use crate::sys::{KernelDevice, TryVec};

type KFs = Fs<KernelDevice>;

/// Inode attributes, laid out as `struct arborfs_attr` in glue.c.
#[repr(C)]
pub(crate) struct ArborfsAttr {
    ino: u64,
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
    projid: u32,
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

fn c_attr(a: &Attr) -> ArborfsAttr {
    let i = &a.inode;
    ArborfsAttr {
        ino: a.ino,
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
        projid: i.projid,
    }
}

/// Report an engine result that carries attributes: write them to `out`.
///
/// # Safety
///
/// `out` is writable.
unsafe fn attr_out(r: Result<Attr, FsError>, out: *mut ArborfsAttr, op: &str, ino: u64) -> c_int {
    match r {
        Ok(a) => {
            // SAFETY: `out` is writable per the contract.
            unsafe { out.write(c_attr(&a)) };
            0
        }
        Err(e) => failed(e, op, ino),
    }
}

/// # Safety
///
/// `p` points to `len` readable bytes (or `len` is 0).
unsafe fn bytes<'a>(p: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: per the contract.
    unsafe { core::slice::from_raw_parts(p, len) }
}

/// Damage makes every read of a file fail the same way: at most
/// `LOG_BURST` error lines per `LOG_WINDOW_NS`, then a count of the rest.
const LOG_BURST: u32 = 10;
const LOG_WINDOW_NS: i64 = 5_000_000_000;
static LOG_WINDOW_START: AtomicI64 = AtomicI64::new(i64::MIN);
static LOG_COUNT: AtomicU32 = AtomicU32::new(0);

/// Whether an error line may be printed now (a cheap ratelimit shared by
/// all mounts; races between CPUs only blur the count).
fn log_allowed() -> bool {
    let now = crate::sys::now_ns();
    let start = LOG_WINDOW_START.load(Ordering::Relaxed);
    if now.saturating_sub(start) > LOG_WINDOW_NS {
        LOG_WINDOW_START.store(now, Ordering::Relaxed);
        let dropped = LOG_COUNT.swap(1, Ordering::Relaxed).saturating_sub(LOG_BURST);
        if dropped > 0 {
            pr_err!("{} similar error lines suppressed\n", dropped);
        }
        return true;
    }
    LOG_COUNT.fetch_add(1, Ordering::Relaxed) < LOG_BURST
}

fn errno(e: FsError) -> c_int {
    -e.errno()
}

/// The errno for a failed operation; damage (bad checksums, bad nodes) is
/// also logged, naming the operation and inode, since the caller only sees
/// EUCLEAN or EIO.
fn failed(e: FsError, op: &str, ino: u64) -> c_int {
    if e.is_damage() && log_allowed() {
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

/// `arborfs_rs_mount` flag: do not log why a mount failed.
const MOUNT_SILENT: c_int = 1;
/// `arborfs_rs_mount` flag: open read-only.
const MOUNT_READ_ONLY: c_int = 2;
/// `arborfs_rs_mount` flag: do not replay the journal (`norecovery`).
const MOUNT_NO_REPLAY: c_int = 4;

/// Open the file system on the mount's block device. `*ro` tells whether it
/// ended up read-only (asked for, or forced by unknown format features).
///
/// # Safety
///
/// `id` is a NUL-terminated device name; `bdev` the mount's block device,
/// open until [`arborfs_rs_unmount`]; `out` and `ro` are writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_mount(
    id: *const c_char,
    bdev: *mut c_void,
    size: u64,
    flags: c_int,
    out: *mut *mut c_void,
    ro: *mut c_int,
) -> c_int {
    // SAFETY: `id` is the super block's NUL-terminated s_id.
    let name = unsafe { kernel::str::CStr::from_char_ptr(id) };
    // SAFETY: forwarded contract.
    let fs = match unsafe { open(bdev, size, flags & MOUNT_READ_ONLY != 0, flags & MOUNT_NO_REPLAY != 0) } {
        Ok(fs) => fs,
        Err(e) => {
            if flags & MOUNT_SILENT == 0 {
                pr_err!("{}: cannot mount: {}\n", name, e);
            }
            return match e {
                FsError::BadMetadata { .. } | FsError::BadNode { .. } | FsError::Corrupt(_) => -22,
                e => errno(e),
            };
        }
    };
    let read_only = fs.is_read_only();
    if let Some(stop) = fs.journal_stop() {
        pr_warn!("{}: {}; run fsck.arborfs\n", name, stop);
    }
    if fs.alloc_distrusted() > 0 {
        pr_warn!(
            "{}: {} bucket records disagree with the b-trees (corrected in memory); run fsck.arborfs\n",
            name,
            fs.alloc_distrusted()
        );
    }
    match KBox::new(fs, GFP_KERNEL) {
        Ok(b) => {
            // SAFETY: `out` and `ro` are writable per the contract.
            unsafe {
                *out = KBox::into_raw(b).cast();
                *ro = c_int::from(read_only);
            }
            pr_info!("{}: mounted {}\n", name, if read_only { "read-only" } else { "read-write" });
            0
        }
        Err(_) => -12,
    }
}

/// Open the engine on one block device.
///
/// # Safety
///
/// `bdev` stays open while the returned engine lives.
unsafe fn open(bdev: *mut c_void, size: u64, read_only: bool, no_replay: bool) -> Result<KFs, FsError> {
    // SAFETY: per the contract.
    let dev = unsafe { KernelDevice::new(bdev, size, 0) };
    let mut devs = TryVec::new();
    devs.try_push(dev)?;
    Fs::open(devs, &OpenOptions { read_only, cache_bytes: 32 << 20, no_replay, ..OpenOptions::default() })
}

/// Write everything (unless read-only) and release the engine.
///
/// # Safety
///
/// `fs` comes from [`arborfs_rs_mount`]; it is not used afterwards.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_unmount(fs: *mut c_void) -> c_int {
    // SAFETY: the pointer came from `KBox::into_raw` in `arborfs_rs_mount`.
    let b = unsafe { KBox::from_raw(fs.cast::<KFs>()) };
    match KBox::into_inner(b).close() {
        Ok(_) => 0,
        Err(e) => {
            pr_err!("unmount could not write the file system: {}\n", e);
            errno(e)
        }
    }
}

/// Switch between read-only and read-write. Going read-only writes
/// everything with the clean flag; going read-write opens the file system
/// afresh on the same device (replaying the journal for real) and only then
/// drops the read-only engine, so a failure leaves the mount as it was.
///
/// # Safety
///
/// `*fs` is mounted and replaced in place; `bdev` is the mount's device.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_remount(
    fs: *mut *mut c_void,
    bdev: *mut c_void,
    size: u64,
    read_only: c_int,
    ro: *mut c_int,
) -> c_int {
    // SAFETY: `*fs` is mounted.
    let cur = unsafe { engine(*fs) };
    if read_only != 0 {
        // SAFETY: `ro` is writable.
        unsafe { *ro = 1 };
        return match cur.make_read_only() {
            Ok(()) => 0,
            Err(e) => errno(e),
        };
    }
    if !cur.is_read_only() {
        return 0;
    }
    // SAFETY: `bdev` is the mount's open device.
    let new = match unsafe { open(bdev, size, false, false) } {
        Ok(f) => f,
        Err(e) => {
            pr_err!("cannot remount read-write: {}\n", e);
            return errno(e);
        }
    };
    let new_ro = new.is_read_only();
    let Ok(b) = KBox::new(new, GFP_KERNEL) else { return -12 };
    // SAFETY: the old pointer came from `KBox::into_raw`; nobody else uses it
    // (the glue's mutex is held), and it is replaced before the lock drops.
    unsafe {
        drop(KBox::from_raw((*fs).cast::<KFs>()));
        *fs = KBox::into_raw(b).cast();
        *ro = c_int::from(new_ro);
    }
    0
}

/// The shutdown ioctl: optionally flush the journal, then write nothing more.
///
/// # Safety
///
/// `fs` is mounted.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_shutdown(fs: *mut c_void, flush_journal: c_int) -> c_int {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    match fs.shutdown(flush_journal != 0) {
        Ok(()) => 0,
        Err(e) => errno(e),
    }
}

/// Attributes of `ino`.
///
/// # Safety
///
/// `fs` is mounted; `out` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_getattr(
    fs: *mut c_void,
    ino: u64,
    out: *mut ArborfsAttr,
) -> c_int {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    match fs.getattr(ino) {
        Ok(a) => {
            // SAFETY: `out` is writable.
            unsafe { out.write(c_attr(&a)) };
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
pub(crate) unsafe extern "C" fn arborfs_rs_lookup(
    fs: *mut c_void,
    dir: u64,
    name: *const u8,
    len: usize,
    ino: *mut u64,
) -> c_int {
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
pub(crate) unsafe extern "C" fn arborfs_rs_read(
    fs: *mut c_void,
    ino: u64,
    off: u64,
    buf: *mut u8,
    len: usize,
) -> isize {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    // SAFETY: `buf` points to `len` writable bytes.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf, len) };
    match fs.read(ino, off, buf) {
        Ok(n) => n as isize,
        Err(e) => {
            if log_allowed() {
                pr_err!("read of inode {} at {} failed: {}\n", ino, off, e);
            }
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
pub(crate) unsafe extern "C" fn arborfs_rs_readlink(
    fs: *mut c_void,
    ino: u64,
    buf: *mut u8,
    len: usize,
) -> isize {
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
pub(crate) unsafe extern "C" fn arborfs_rs_listxattr(
    fs: *mut c_void,
    ino: u64,
    buf: *mut u8,
    size: usize,
) -> isize {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    let mut v = TryVec::new();
    match fs.listxattr(ino, &mut v) {
        // SAFETY: forwarded contract.
        Ok(()) => unsafe { copy_out(&v, buf, size) },
        Err(e) => failed(e, "listxattr", ino) as isize,
    }
}

/// Create a regular file, directory, device node, fifo or socket.
///
/// # Safety
///
/// `fs` is mounted; `name` points to `len` bytes; `out` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_create(
    fs: *mut c_void,
    dir: u64,
    name: *const u8,
    len: usize,
    mode: u32,
    uid: u32,
    gid: u32,
    rdev: u64,
    out: *mut ArborfsAttr,
) -> c_int {
    // SAFETY: `fs` is mounted; `name` points to `len` bytes.
    let (fs, name) = unsafe { (engine(fs), bytes(name, len)) };
    // SAFETY: `out` is writable.
    unsafe { attr_out(fs.create(dir, name, mode, uid, gid, rdev), out, "create in directory", dir) }
}

/// Create an unnamed regular file (`O_TMPFILE`) with no links, on the
/// orphan list.
///
/// # Safety
///
/// `fs` is mounted; `out` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_tmpfile(
    fs: *mut c_void,
    dir: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    out: *mut ArborfsAttr,
) -> c_int {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    // SAFETY: `out` is writable.
    unsafe { attr_out(fs.create_tmpfile(dir, mode, uid, gid), out, "O_TMPFILE in directory", dir) }
}

/// Create a symbolic link.
///
/// # Safety
///
/// `fs` is mounted; `name` and `target` point to `len` and `tlen` bytes;
/// `out` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_symlink(
    fs: *mut c_void,
    dir: u64,
    name: *const u8,
    len: usize,
    target: *const u8,
    tlen: usize,
    uid: u32,
    gid: u32,
    out: *mut ArborfsAttr,
) -> c_int {
    // SAFETY: per the contract.
    let (fs, name, target) = unsafe { (engine(fs), bytes(name, len), bytes(target, tlen)) };
    // SAFETY: `out` is writable.
    unsafe { attr_out(fs.symlink(dir, name, target, uid, gid), out, "symlink in directory", dir) }
}

/// Add a hard link to `ino`.
///
/// # Safety
///
/// `fs` is mounted; `name` points to `len` bytes; `out` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_link(
    fs: *mut c_void,
    ino: u64,
    dir: u64,
    name: *const u8,
    len: usize,
    out: *mut ArborfsAttr,
) -> c_int {
    // SAFETY: per the contract.
    let (fs, name) = unsafe { (engine(fs), bytes(name, len)) };
    // SAFETY: `out` is writable.
    unsafe { attr_out(fs.link(ino, dir, name), out, "link", ino) }
}

/// Remove an entry (`rmdir` for directories); `out` gets the inode's new
/// attributes (nlink 0 means it is deleted at eviction).
///
/// # Safety
///
/// `fs` is mounted; `name` points to `len` bytes; `out` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_unlink(
    fs: *mut c_void,
    dir: u64,
    name: *const u8,
    len: usize,
    rmdir: c_int,
    out: *mut ArborfsAttr,
) -> c_int {
    // SAFETY: per the contract.
    let (fs, name) = unsafe { (engine(fs), bytes(name, len)) };
    let r = if rmdir != 0 { fs.rmdir(dir, name) } else { fs.unlink(dir, name) };
    // SAFETY: `out` is writable.
    unsafe { attr_out(r, out, "unlink in directory", dir) }
}

/// rename(2) with RENAME_NOREPLACE, RENAME_EXCHANGE or RENAME_WHITEOUT (the
/// whiteout belongs to `uid`/`gid`).
///
/// # Safety
///
/// `fs` is mounted; the names point to their lengths in bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_rename(
    fs: *mut c_void,
    olddir: u64,
    oldname: *const u8,
    oldlen: usize,
    newdir: u64,
    newname: *const u8,
    newlen: usize,
    flags: u32,
    uid: u32,
    gid: u32,
) -> c_int {
    // SAFETY: per the contract.
    let (fs, old, new) = unsafe { (engine(fs), bytes(oldname, oldlen), bytes(newname, newlen)) };
    match fs.rename(olddir, old, newdir, new, flags, (uid, gid)) {
        Ok(_) => 0,
        Err(e) => failed(e, "rename in directory", olddir),
    }
}

/// Attribute changes from the VFS, laid out as `struct arborfs_setattr`.
#[repr(C)]
pub(crate) struct ArborfsSetattr {
    valid: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    flags: u32,
    projid: u32,
    size: u64,
    atime: i64,
    mtime: i64,
    ctime: i64,
}

const SET_MODE: u32 = 1;
const SET_UID: u32 = 2;
const SET_GID: u32 = 4;
const SET_SIZE: u32 = 8;
const SET_ATIME: u32 = 16;
const SET_MTIME: u32 = 32;
const SET_CTIME: u32 = 64;
const SET_FLAGS: u32 = 128;
const SET_PROJID: u32 = 256;

/// Change attributes (chmod, chown, utimes, truncate, flags, write_inode).
///
/// # Safety
///
/// `fs` is mounted; `set` is readable; `out` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_setattr(
    fs: *mut c_void,
    ino: u64,
    set: *const ArborfsSetattr,
    out: *mut ArborfsAttr,
) -> c_int {
    // SAFETY: per the contract.
    let (fs, s) = unsafe { (engine(fs), &*set) };
    let pick = |bit: u32| s.valid & bit != 0;
    let sa = SetAttr {
        mode: pick(SET_MODE).then_some(s.mode),
        uid: pick(SET_UID).then_some(s.uid),
        gid: pick(SET_GID).then_some(s.gid),
        size: pick(SET_SIZE).then_some(s.size),
        atime: pick(SET_ATIME).then_some(s.atime),
        mtime: pick(SET_MTIME).then_some(s.mtime),
        ctime: pick(SET_CTIME).then_some(s.ctime),
        flags: pick(SET_FLAGS).then_some(s.flags),
        projid: pick(SET_PROJID).then_some(s.projid),
    };
    // SAFETY: `out` is writable.
    unsafe { attr_out(fs.setattr(ino, &sa), out, "setattr", ino) }
}

/// Write file data (writeback and O_DIRECT) without touching its times,
/// which the VFS keeps; returns bytes written and puts the bytes the file
/// now occupies (for st_blocks) in `alloc_bytes`.
///
/// # Safety
///
/// `fs` is mounted; `buf` points to `len` readable bytes; `alloc_bytes` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_write(
    fs: *mut c_void,
    ino: u64,
    off: u64,
    buf: *const u8,
    len: usize,
    alloc_bytes: *mut u64,
) -> isize {
    // SAFETY: per the contract.
    let (fs, data) = unsafe { (engine(fs), bytes(buf, len)) };
    match fs.write_back(ino, off, data).and_then(|n| Ok((n, fs.getattr(ino)?))) {
        Ok((n, a)) => {
            // SAFETY: `alloc_bytes` is writable.
            unsafe { *alloc_bytes = a.inode.alloc_bytes };
            n as isize
        }
        Err(e) => {
            if !matches!(e, FsError::NoSpace | FsError::ReadOnly) && log_allowed() {
                pr_err!("write of inode {} at {} failed: {}\n", ino, off, e);
            }
            errno(e) as isize
        }
    }
}

/// fallocate(2); `out` gets the new attributes.
///
/// # Safety
///
/// `fs` is mounted; `out` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_fallocate(
    fs: *mut c_void,
    ino: u64,
    mode: u32,
    off: u64,
    len: u64,
    out: *mut ArborfsAttr,
) -> c_int {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    let r = fs.fallocate(ino, mode, off, len).and_then(|()| fs.getattr(ino));
    // SAFETY: `out` is writable.
    unsafe { attr_out(r, out, "fallocate", ino) }
}

/// One extent for FIEMAP, laid out as `struct arborfs_extent` in arborfs.h.
#[repr(C)]
pub(crate) struct ArborfsExtent {
    logical: u64,
    physical: u64,
    length: u64,
    flags: u32,
    pad: u32,
}

/// `ArborfsExtent::flags`: stored compressed.
const EXTENT_ENCODED: u32 = 1;
/// Preallocated (reads as zeros).
const EXTENT_UNWRITTEN: u32 = 2;
/// Data inside the metadata (symlink targets).
const EXTENT_INLINE: u32 = 4;
/// The file's last extent.
const EXTENT_LAST: u32 = 8;

/// Up to `max` extents of `ino` that end after `start` and begin before
/// `end`; the last one of the file carries `EXTENT_LAST`.
///
/// # Safety
///
/// `fs` is mounted; `out` has room for `max` entries; `n` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_fiemap(
    fs: *mut c_void,
    ino: u64,
    start: u64,
    end: u64,
    out: *mut ArborfsExtent,
    max: usize,
    n: *mut usize,
) -> c_int {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    // SAFETY: `out` has room for `max` entries, which we only write.
    let out = unsafe { core::slice::from_raw_parts_mut(out, max) };
    let mut count = 0usize;
    // One past what fits: whether another extent follows decides LAST.
    let mut more = false;
    let r = fs.map_extents(ino, start, &mut |m| {
        if m.start >= end {
            more = true;
            return false;
        }
        let Some(slot) = out.get_mut(count) else {
            more = true;
            return false;
        };
        let mut flags = 0;
        if m.encoded {
            flags |= EXTENT_ENCODED;
        }
        if m.unwritten {
            flags |= EXTENT_UNWRITTEN;
        }
        if m.inline {
            flags |= EXTENT_INLINE;
        }
        *slot = ArborfsExtent {
            logical: m.start,
            physical: m.physical.map_or(0, |(_, at)| at),
            length: m.end.saturating_sub(m.start),
            flags,
            pad: 0,
        };
        count += 1;
        true
    });
    if !more && count > 0 {
        if let Some(last) = out.get_mut(count - 1) {
            last.flags |= EXTENT_LAST;
        }
    }
    // SAFETY: `n` is writable.
    unsafe { *n = count };
    match r {
        Ok(()) => 0,
        Err(e) => failed(e, "fiemap", ino),
    }
}

/// SEEK_DATA (`hole == 0`) or SEEK_HOLE from `off`; writes the answer to `res`.
///
/// # Safety
///
/// `fs` is mounted; `res` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_seek(
    fs: *mut c_void,
    ino: u64,
    off: u64,
    hole: c_int,
    res: *mut u64,
) -> c_int {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    match fs.seek(ino, off, hole != 0) {
        Ok(p) => {
            // SAFETY: `res` is writable.
            unsafe { *res = p };
            0
        }
        Err(e) => failed(e, "seek", ino),
    }
}

/// Make everything committed durable (fsync, syncfs, freeze).
///
/// # Safety
///
/// `fs` is mounted.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_sync(fs: *mut c_void) -> c_int {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    match fs.sync() {
        Ok(()) => 0,
        Err(e) => {
            pr_err!("journal flush failed: {}\n", e);
            errno(e)
        }
    }
}

/// The last reference to `ino` is gone: delete it if it has no links.
///
/// # Safety
///
/// `fs` is mounted.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_evict(fs: *mut c_void, ino: u64) -> c_int {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    match fs.evict(ino) {
        Ok(()) => 0,
        Err(e) => {
            // The orphan entry stays: the next mount finishes the deletion.
            pr_warn!("deleting unlinked inode {} failed ({}); the next mount finishes it\n", ino, e);
            errno(e)
        }
    }
}

/// setxattr with the full name; a NULL value removes the attribute.
///
/// # Safety
///
/// `fs` is mounted; `name` points to `namelen` bytes; `value` to `size`
/// bytes unless NULL.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_setxattr(
    fs: *mut c_void,
    ino: u64,
    name: *const u8,
    namelen: usize,
    value: *const u8,
    size: usize,
    flags: u32,
) -> c_int {
    // SAFETY: per the contract.
    let (fs, name) = unsafe { (engine(fs), bytes(name, namelen)) };
    let r = if value.is_null() {
        fs.removexattr(ino, name)
    } else {
        // SAFETY: `value` points to `size` bytes.
        fs.setxattr(ino, name, unsafe { bytes(value, size) }, flags).map(|_| ())
    };
    match r {
        Ok(()) => 0,
        Err(e) => failed(e, "setxattr", ino),
    }
}

/// Bytes new data can still take.
///
/// # Safety
///
/// `fs` is mounted.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_available(fs: *mut c_void) -> u64 {
    // SAFETY: `fs` is mounted.
    unsafe { engine(fs) }.available_bytes()
}

/// Memory pressure: drop clean cached b-tree nodes down to `target` bytes;
/// returns the bytes the cache holds afterwards.
///
/// # Safety
///
/// `fs` is mounted.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_shrink(fs: *mut c_void, target: usize) -> usize {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    let _ = fs.shrink_cache(target);
    fs.stats().cache_bytes
}

/// The file system's UUID, into `out` (16 bytes).
///
/// # Safety
///
/// `fs` is mounted; `out` has room for 16 bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_uuid(fs: *mut c_void, out: *mut u8) -> c_int {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    // SAFETY: `out` has room for the 16 bytes of a UUID.
    unsafe { core::ptr::copy_nonoverlapping(fs.sb.uuid.as_ptr(), out, fs.sb.uuid.len()) };
    0
}

/// The `compress=` mount option: 0 none, 1 lz4, 2 zstd (at `level`).
///
/// # Safety
///
/// `fs` is mounted.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_set_compression(fs: *mut c_void, kind: u8, level: u8) -> c_int {
    // SAFETY: `fs` is mounted.
    let fs = unsafe { engine(fs) };
    match crate::format::extent::Compression::from_u8(kind) {
        Ok(c) => {
            fs.set_compression(c, level);
            0
        }
        Err(_) => -22,
    }
}

/// Write what /sys/fs/arborfs/features shows into `buf`: the release, the
/// format version and the feature bits this module knows, one per line.
/// Returns the length, or a negative errno if `len` is too small.
///
/// # Safety
///
/// `buf` points to `len` writable bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_features(buf: *mut u8, len: usize) -> isize {
    use crate::format::superblock::{COMPAT_KNOWN, INCOMPAT_KNOWN, RO_COMPAT_KNOWN};
    struct Out<'a> {
        buf: &'a mut [u8],
        at: usize,
    }
    impl core::fmt::Write for Out<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.at.checked_add(s.len()).ok_or(core::fmt::Error)?;
            self.buf.get_mut(self.at..end).ok_or(core::fmt::Error)?.copy_from_slice(s.as_bytes());
            self.at = end;
            Ok(())
        }
    }
    // SAFETY: `buf` points to `len` writable bytes.
    let mut out = Out { buf: unsafe { core::slice::from_raw_parts_mut(buf, len) }, at: 0 };
    let r = core::fmt::write(
        &mut out,
        format_args!(
            "version {}\nformat {}\ncompat {:#x}\nro_compat {:#x}\nincompat {:#x}\n",
            crate::format::RELEASE,
            crate::format::FORMAT_VERSION,
            COMPAT_KNOWN,
            RO_COMPAT_KNOWN,
            INCOMPAT_KNOWN
        ),
    );
    match r {
        Ok(()) => out.at as isize,
        Err(_) => -34,
    }
}
