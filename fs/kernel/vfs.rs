// SPDX-License-Identifier: GPL-2.0
//! Entry points the C glue calls (`arborfs_rs_*`): each turns a VFS request
//! into an engine call and the result into plain C data or a negative errno.
//! The glue holds the engine lock (in a NOFS scope) around every call:
//! exclusively for the entry points of [`entry_points!`], which have the
//! engine to themselves (`&mut`); shared, first, for those of
//! [`read_entry_points!`], which only read it (`&`, beside other readers)
//! and are called again exclusively where they need a node read in.
//!
//! Every entry point on a mounted engine is declared through one of the
//! two macros, which do the pointer-to-engine step and state the safety
//! contract once; a new VFS operation is its signature and body.
//! The structs shared with C are checked against `fs/glue/arborfs.h` by
//! size and field offset on both sides (here const asserts, there
//! `_Static_assert`), and errnos come by name from
//! [`crate::error::errno`], checked against the kernel's at build time.

use core::ffi::{c_int, c_void};
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use kernel::ffi::c_char;

use kernel::alloc::{flags::GFP_KERNEL, KBox};
use kernel::bindings;
use kernel::prelude::*;

use crate::btree::node::Node;
use crate::btree::NodeMiss;
use crate::error::errno::{EINVAL, ENOMEM, ERANGE};
use crate::error::Error as FsError;
use crate::format::checksum::ChecksumType;
use crate::format::node::BtreePtr;
use crate::format::{BtreeId, Pos};
use crate::fs::change::Change;
use crate::fs::dirent::{Link, Remove, Rename};
use crate::fs::inode::{Create, SetAttrs, Symlink, Tmpfile};
use crate::fs::read_plan::{ReadPlan, SpanSource};
use crate::fs::sync::SyncStep;
use crate::fs::write_plan::{PreparedWrites, WritePlan, WriteRequest};
use crate::fs::xattr::{RemoveXattr, SetXattr};
use crate::fs::{Attr, Fs, OpenOptions, SetAttr};
use crate::sys::{BlockDevice, KernelDevice, TryVec};
use crate::txn::{Access, Held, Prepared, Shared, Txn};

type KFs = Fs<KernelDevice>;

/// The engine's errno numbers are the kernel's.
const _: () = {
    use crate::error::errno::*;
    let pairs = [
        (EPERM, bindings::EPERM),
        (ENOENT, bindings::ENOENT),
        (EIO, bindings::EIO),
        (ENXIO, bindings::ENXIO),
        (E2BIG, bindings::E2BIG),
        (ECHILD, bindings::ECHILD),
        (EAGAIN, bindings::EAGAIN),
        (ENOMEM, bindings::ENOMEM),
        (EEXIST, bindings::EEXIST),
        (ENOTDIR, bindings::ENOTDIR),
        (EISDIR, bindings::EISDIR),
        (EINVAL, bindings::EINVAL),
        (EFBIG, bindings::EFBIG),
        (ENOSPC, bindings::ENOSPC),
        (EROFS, bindings::EROFS),
        (EMLINK, bindings::EMLINK),
        (ERANGE, bindings::ERANGE),
        (ENAMETOOLONG, bindings::ENAMETOOLONG),
        (ENOTEMPTY, bindings::ENOTEMPTY),
        (ENODATA, bindings::ENODATA),
        (EOPNOTSUPP, bindings::EOPNOTSUPP),
        (EUCLEAN, bindings::EUCLEAN),
    ];
    let mut i = 0;
    while i < pairs.len() {
        assert!(pairs[i].0 as u32 == pairs[i].1);
        i += 1;
    }
};

/// Check a `#[repr(C)]` struct against the layout `arborfs.h` asserts for
/// its C twin: total size, then each field's offset.
macro_rules! c_layout {
    ($t:ty, $size:expr, { $($field:ident: $off:expr),* $(,)? }) => {
        const _: () = {
            assert!(size_of::<$t>() == $size);
            $(assert!(offset_of!($t, $field) == $off);)*
        };
    };
}

/// Inode attributes: `struct arborfs_attr`.
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
c_layout!(ArborfsAttr, 96, {
    ino: 0, size: 8, alloc_bytes: 16, atime: 24, mtime: 32, ctime: 40, btime: 48, rdev: 56,
    mode: 64, uid: 68, gid: 72, nlink: 76, generation: 80, flags: 84, projid: 88,
});

/// One directory entry: `struct arborfs_dirent`.
#[repr(C)]
pub(crate) struct ArborfsDirent {
    ino: u64,
    next: u64,
    dtype: u8,
    len: u8,
    name: [u8; 256],
}
c_layout!(ArborfsDirent, 280, { ino: 0, next: 8, dtype: 16, len: 17, name: 18 });

/// statfs numbers: `struct arborfs_statfs`.
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
c_layout!(ArborfsStatfs, 48, { blocks: 0, bfree: 8, bavail: 16, files: 24, ffree: 32, bsize: 40, namelen: 44 });

/// Attribute changes from the VFS: `struct arborfs_setattr`.
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
c_layout!(ArborfsSetattr, 56, {
    valid: 0, mode: 4, uid: 8, gid: 12, flags: 16, projid: 20, size: 24, atime: 32, mtime: 40, ctime: 48,
});

/// One extent for FIEMAP: `struct arborfs_extent`.
#[repr(C)]
pub(crate) struct ArborfsExtent {
    logical: u64,
    physical: u64,
    length: u64,
    flags: u32,
    pad: u32,
}
c_layout!(ArborfsExtent, 32, { logical: 0, physical: 8, length: 16, flags: 24, pad: 28 });

/// One span of a planned read: `struct arborfs_read_span`.
#[repr(C)]
pub(crate) struct ArborfsReadSpan {
    start: u64,
    len: u64,
    offset: u64,
    dev_len: u64,
    skip: u64,
    kind: u32,
    dev: u32,
}
c_layout!(ArborfsReadSpan, 48, { start: 0, len: 8, offset: 16, dev_len: 24, skip: 32, kind: 40, dev: 44 });

/// A node a shared read found missing: `struct arborfs_node_miss`
/// ([`NodeMiss`] for C, which reads it without the engine lock).
#[repr(C)]
pub(crate) struct ArborfsNodeMiss {
    valid: u32,
    node_size: u32,
    dev: u8,
    level: u8,
    btree: u8,
    csum: u8,
    gen: u32,
    offset: u64,
    seq: u64,
    min_inode: u64,
    min_offset: u64,
    min_snapshot: u32,
    max_snapshot: u32,
    max_inode: u64,
    max_offset: u64,
}
c_layout!(ArborfsNodeMiss, 72, {
    valid: 0, node_size: 4, dev: 8, level: 9, btree: 10, csum: 11, gen: 12, offset: 16, seq: 24,
    min_inode: 32, min_offset: 40, min_snapshot: 48, max_snapshot: 52, max_inode: 56, max_offset: 64,
});

impl ArborfsNodeMiss {
    fn from_miss(m: &NodeMiss) -> Self {
        ArborfsNodeMiss {
            valid: 1,
            node_size: m.node_size,
            dev: m.ptr.dev,
            level: m.ptr.level,
            btree: m.btree as u8,
            csum: m.csum as u8,
            gen: m.ptr.gen,
            offset: m.ptr.offset,
            seq: m.ptr.seq,
            min_inode: m.min.inode,
            min_offset: m.min.offset,
            min_snapshot: m.min.snapshot,
            max_snapshot: m.max.snapshot,
            max_inode: m.max.inode,
            max_offset: m.max.offset,
        }
    }

    /// The miss, if the glue handed back what [`Self::from_miss`] wrote.
    fn to_miss(&self) -> Option<NodeMiss> {
        if self.valid != 1 {
            return None;
        }
        Some(NodeMiss {
            ptr: BtreePtr {
                dev: self.dev,
                level: self.level,
                gen: self.gen,
                offset: self.offset,
                seq: self.seq,
            },
            btree: BtreeId::from_u8(self.btree).ok()?,
            min: Pos { inode: self.min_inode, offset: self.min_offset, snapshot: self.min_snapshot },
            max: Pos { inode: self.max_inode, offset: self.max_offset, snapshot: self.max_snapshot },
            node_size: self.node_size,
            csum: ChecksumType::from_u8(self.csum).ok()?,
        })
    }
}

/// One writeback of a batch to plan: `struct arborfs_wreq`.
#[repr(C)]
pub(crate) struct ArborfsWreq {
    off: u64,
    len: u64,
    data_end: u64,
    plan: *mut c_void,
    offset: u64,
    dev: u32,
    placed: c_int,
    n: i64,
}
c_layout!(ArborfsWreq, 56, { off: 0, len: 8, data_end: 16, plan: 24, offset: 32, dev: 40, placed: 44, n: 48 });

/// A journal write the glue issues for a sync: `struct arborfs_journal_write`.
#[repr(C)]
pub(crate) struct ArborfsJournalWrite {
    buf: *const u8,
    len: u64,
    offset: u64,
    dev: u32,
    preflush: u32,
}
c_layout!(ArborfsJournalWrite, 32, { buf: 0, len: 8, offset: 16, dev: 24, preflush: 28 });

/// `arborfs_rs_sync_step`: wait for the journal write in flight.
const SYNC_WAIT: c_int = 1;
/// `arborfs_rs_sync_step`: issue the journal write given.
const SYNC_WRITE: c_int = 2;
/// `arborfs_rs_sync_done`: the target is not durable yet; step again.
const SYNC_AGAIN: c_int = 3;

/// `arborfs_read_span.kind`: zeros.
const SPAN_ZERO: u32 = 0;
/// `arborfs_read_span.kind`: member blocks the glue reads.
const SPAN_DEVICE: u32 = 1;
/// `arborfs_read_span.kind`: read by the engine when the plan is finished.
const SPAN_ENGINE: u32 = 2;
/// `arborfs_read_span.kind`: an extent stored whole, read whole by the glue
/// and decoded with [`arborfs_rs_plan_decode`].
const SPAN_ENCODED: u32 = 3;

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

/// 0, or the errno of a failed operation (see [`failed`]).
fn status(r: Result<(), FsError>, op: &str, ino: u64) -> c_int {
    match r {
        Ok(()) => 0,
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

/// # Safety
///
/// `p` points to `len` writable `T`s (or `len` is 0), not aliased.
unsafe fn slice_mut<'a, T>(p: *mut T, len: usize) -> &'a mut [T] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: per the contract.
    unsafe { core::slice::from_raw_parts_mut(p, len) }
}

/// # Safety
///
/// `p` is writable.
unsafe fn put<T>(p: *mut T, v: T) {
    // SAFETY: per the contract.
    unsafe { p.write(v) }
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

/// The `n` write plans at `plans` as a slice.
///
/// # Safety
///
/// `plans` points to `n` pointers to live plans from
/// `arborfs_rs_plan_write` or `arborfs_rs_plan_writes`, not freed while
/// the slice lives.
unsafe fn write_plans<'a>(plans: *const *const c_void, n: usize) -> &'a [&'a WritePlan] {
    if n == 0 || plans.is_null() {
        return &[];
    }
    // SAFETY: per the contract; a non-null `*const WritePlan` has the
    // layout of a `&WritePlan`.
    unsafe { core::slice::from_raw_parts(plans.cast::<&WritePlan>(), n) }
}

/// The errno for a failed data write of `ino` at `off`, logged unless the
/// file system is full or read-only (what a writer expects to meet).
fn write_failed(e: FsError, ino: u64, off: u64) -> c_int {
    // (NotCached: refused, and made again: ENGINE_WRITE; Conflict: a
    // prepared commit, made again whole.)
    if !matches!(e, FsError::NoSpace | FsError::ReadOnly | FsError::NotCached | FsError::Conflict)
        && log_allowed()
    {
        pr_err!("write of inode {} at {} failed: {}\n", ino, off, e);
    }
    errno(e)
}

/// The answer of a write commit of file `ino` at `off`: 0 with the bytes
/// the file now holds into `alloc_bytes`, or the errno.
///
/// # Safety
///
/// `alloc_bytes` is writable.
unsafe fn write_committed(r: Result<u64, FsError>, alloc_bytes: *mut u64, ino: u64, off: u64) -> c_int {
    match r {
        Ok(bytes) => {
            // SAFETY: `alloc_bytes` is writable (contract).
            unsafe { put(alloc_bytes, bytes) };
            0
        }
        Err(e) => write_failed(e, ino, off),
    }
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

/// Declare the entry points the glue calls on a mounted engine. Each takes
/// the engine pointer (`fs`) first; the body sees it as `&mut KFs`. Each
/// doc says what the other pointer arguments must be.
macro_rules! entry_points {
    ($(
        $(#[doc = $doc:literal])*
        fn $name:ident($fs:ident $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty $body:block
    )*) => {$(
        $(#[doc = $doc])*
        ///
        /// # Safety
        ///
        /// `fs` comes from [`arborfs_rs_mount`], is still mounted and the
        /// caller holds the engine lock; the other pointers are as above.
        #[no_mangle]
        pub(crate) unsafe extern "C" fn $name(fs: *mut c_void $(, $arg: $ty)*) -> $ret {
            // SAFETY: a live engine, held exclusively (the glue's engine lock).
            let $fs: &mut KFs = unsafe { &mut *fs.cast::<KFs>() };
            $body
        }
    )*};
}

/// Declare the entry points of reads, which the glue calls twice over:
/// first with the mount's lock shared (`shared`), beside other such calls,
/// where the engine answers from nodes in memory or fails with ECHILD
/// ([`FsError::NotCached`]); then, on ECHILD only, with the lock held
/// exclusively. The body sees the engine as a [`Held`] either way.
macro_rules! read_entry_points {
    ($(
        $(#[doc = $doc:literal])*
        fn $name:ident($t:ident $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty $body:block
    )*) => {$(
        $(#[doc = $doc])*
        ///
        /// A shared call that fails for a node not in memory describes it
        /// in `*miss` (when not null) for [`arborfs_rs_node_fetch`].
        ///
        /// # Safety
        ///
        /// `fs` comes from [`arborfs_rs_mount`] and is still mounted; the
        /// caller holds the mount's lock, shared if `shared`, else
        /// exclusively; `miss` is null or writable; the other pointers are
        /// as above.
        #[no_mangle]
        pub(crate) unsafe extern "C" fn $name(
            fs: *mut c_void,
            shared: bool,
            miss: *mut ArborfsNodeMiss
            $(, $arg: $ty)*
        ) -> $ret {
            let held: Held<'_, KernelDevice> = if shared {
                // SAFETY: a live engine; every holder of the shared lock
                // only reads it, and nobody holds it exclusively.
                Held::Shared(Shared::new(unsafe { &*fs.cast::<KFs>() }))
            } else {
                // SAFETY: a live engine, held exclusively (the glue's lock).
                Held::Exclusive(unsafe { &mut *fs.cast::<KFs>() })
            };
            // (Some bodies only look at the file system: statfs.)
            #[allow(unused_mut)]
            let mut $t: Txn<'_, KernelDevice, Held<'_, KernelDevice>> = Txn::reading(held);
            let r: $ret = (|| $body)();
            if let (Some(m), false) = ($t.miss(), miss.is_null()) {
                // SAFETY: `miss` is writable (contract).
                unsafe { put(miss, ArborfsNodeMiss::from_miss(&m)) };
            }
            r
        }
    )*};
}

/// How a change entry point holds the engine: exclusively, or shared for
/// an optimistic body whose change the glue then commits exclusively
/// ([`arborfs_rs_commit_prepared`]).
pub(crate) enum ChangeCall<'a> {
    /// Held exclusively: the change is made and committed.
    Exclusive(&'a mut KFs),
    /// Held shared: the body is made and its change handed out.
    Optimistic {
        /// The engine, shared.
        fs: &'a KFs,
        /// Null, or where to describe a node the body found on disk only.
        miss: *mut ArborfsNodeMiss,
        /// Where the prepared change goes (a `KBox<Prepared>`).
        prepared: *mut *mut c_void,
    },
}

impl ChangeCall<'_> {
    /// Make `c` as held: its result, and when held shared, its prepared
    /// change into `*prepared` (on success only).
    fn make<C: Change<KernelDevice>>(&mut self, c: &mut C) -> Result<C::Out, FsError> {
        match self {
            ChangeCall::Exclusive(fs) => fs.change(c),
            ChangeCall::Optimistic { fs, miss, prepared } => {
                let mut missed = None;
                let r = fs.prepare_change(c, &mut missed);
                if let (Some(m), false) = (missed, miss.is_null()) {
                    // SAFETY: `miss` is writable (the entry point's contract).
                    unsafe { put(*miss, ArborfsNodeMiss::from_miss(&m)) };
                }
                let (out, p) = r?;
                let b = KBox::new(p, GFP_KERNEL).map_err(|_| FsError::NoMem)?;
                // SAFETY: `prepared` is writable (the entry point's contract).
                unsafe { put(*prepared, KBox::into_raw(b).cast::<c_void>()) };
                Ok(out)
            }
        }
    }
}

/// Declare the entry points of changes of one transaction, which the glue
/// makes optimistically first (`ENGINE_CHANGE`): with the mount's lock
/// shared (`shared`), beside readers and other bodies, the body runs over
/// cached nodes and hands its change out in `*prepared`, or fails with
/// ECHILD for a node on disk only (described in `*miss`); the glue then
/// commits it holding the lock exclusively ([`arborfs_rs_commit_prepared`]),
/// and makes the body again on a conflict. Called with `shared` false (the
/// lock held exclusively, `miss` and `prepared` null), the change is made
/// and committed at once. The body sees a [`ChangeCall`].
macro_rules! change_entry_points {
    ($(
        $(#[doc = $doc:literal])*
        fn $name:ident($c:ident $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty $body:block
    )*) => {$(
        $(#[doc = $doc])*
        ///
        /// # Safety
        ///
        /// `fs` comes from [`arborfs_rs_mount`] and is still mounted; the
        /// caller holds the mount's lock, shared if `shared`, else
        /// exclusively; with `shared`, `prepared` is writable and `miss`
        /// null or writable; the other pointers are as above.
        #[no_mangle]
        pub(crate) unsafe extern "C" fn $name(
            fs: *mut c_void,
            shared: bool,
            miss: *mut ArborfsNodeMiss,
            prepared: *mut *mut c_void
            $(, $arg: $ty)*
        ) -> $ret {
            #[allow(unused_mut)]
            let mut $c = if shared {
                // SAFETY: a live engine; every holder of the shared lock
                // only reads it, and nobody holds it exclusively.
                ChangeCall::Optimistic { fs: unsafe { &*fs.cast::<KFs>() }, miss, prepared }
            } else {
                // SAFETY: a live engine, held exclusively (the glue's lock).
                ChangeCall::Exclusive(unsafe { &mut *fs.cast::<KFs>() })
            };
            $body
        }
    )*};
}

/// Read and check the node a shared read found missing, without the
/// engine lock: from `member` (the glue's member of `size` bytes, member
/// 0), as `miss` describes it, into `*node` for [`arborfs_rs_node_adopt`],
/// which takes it over. A node that does not read or check
/// (rewritten since, damaged) is not reported here: the exclusive call
/// made instead reads it again and reports it.
///
/// # Safety
///
/// `member` is the glue's member of an open block device of `size` bytes;
/// `miss` is readable; `node` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_node_fetch(
    member: *mut c_void,
    size: u64,
    miss: *const ArborfsNodeMiss,
    node: *mut *mut c_void,
) -> c_int {
    // SAFETY: readable (contract).
    let Some(m) = (unsafe { &*miss }).to_miss() else { return -EINVAL };
    if m.ptr.dev != 0 {
        return -EINVAL;
    }
    let mut image = TryVec::new();
    if image.try_resize(m.node_size as usize, 0u8).is_err() {
        return -ENOMEM;
    }
    // SAFETY: the member stays open while mounted (contract).
    let mut dev = unsafe { KernelDevice::new(member, size, 0) };
    let n = match dev.read_at(m.ptr.offset, &mut image).and_then(|()| m.decode(&image)) {
        Ok(n) => n,
        Err(e) => return errno(e),
    };
    match KBox::new(n, GFP_KERNEL) {
        Ok(b) => {
            // SAFETY: `node` is writable (contract).
            unsafe { put(node, KBox::into_raw(b).cast::<c_void>()) };
            0
        }
        Err(_) => -ENOMEM,
    }
}

/// A read plan from [`arborfs_rs_plan_read`]: its span `i` into `out`;
/// returns 1, or 0 past the last span. Touches only the plan, so the glue
/// calls it without the engine lock.
///
/// # Safety
///
/// `plan` comes from [`arborfs_rs_plan_read`] and is not yet freed; `out`
/// is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_plan_span(
    plan: *const c_void,
    i: usize,
    out: *mut ArborfsReadSpan,
) -> c_int {
    // SAFETY: a live plan (contract); the caller's own, not shared.
    let plan = unsafe { &*plan.cast::<ReadPlan>() };
    let Some(s) = plan.spans.get(i) else { return 0 };
    let (kind, dev, offset, dev_len, skip) = match s.source {
        SpanSource::Zero => (SPAN_ZERO, 0, 0, 0, 0),
        SpanSource::Device { dev, offset, dev_len, skip, .. } => {
            (SPAN_DEVICE, u32::from(dev), offset, dev_len, skip)
        }
        SpanSource::Encoded { dev, offset, dev_len, window, .. } => {
            (SPAN_ENCODED, u32::from(dev), offset, dev_len, window)
        }
        SpanSource::Engine => (SPAN_ENGINE, 0, 0, 0, 0),
    };
    // SAFETY: `out` is writable.
    unsafe { put(out, ArborfsReadSpan { start: s.start, len: s.len, offset, dev_len, skip, kind, dev }) };
    1
}

/// Verify span `i` of `plan` as the glue read it from the member: the
/// span's `dev_len` bytes at `buf` (`len` readable). 0 or a negative errno;
/// no lock needed.
///
/// # Safety
///
/// As [`arborfs_rs_plan_span`]; `buf` points to `len` readable bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_plan_verify(
    plan: *const c_void,
    i: usize,
    buf: *const u8,
    len: usize,
) -> c_int {
    // SAFETY: a live plan (contract).
    let plan = unsafe { &*plan.cast::<ReadPlan>() };
    // SAFETY: `buf` points to `len` readable bytes.
    let buf = unsafe { bytes(buf, len) };
    // Damage is reported by the engine's read, which the glue falls back to.
    match plan.verify_span(i, buf) {
        Ok(()) => 0,
        Err(e) => errno(e),
    }
}

/// Check and decode encoded span `i` of `plan` from its stored bytes as
/// the glue read them (`raw_len` bytes at `raw`, the span's `dev_len`) into
/// `out` (`out_len` writable bytes, the span's length). 0 or a negative
/// errno; no lock needed.
///
/// # Safety
///
/// As [`arborfs_rs_plan_span`]; `raw` points to `raw_len` readable bytes
/// and `out` to `out_len` writable ones, not overlapping.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_plan_decode(
    plan: *const c_void,
    i: usize,
    raw: *const u8,
    raw_len: usize,
    out: *mut u8,
    out_len: usize,
) -> c_int {
    // SAFETY: a live plan (contract).
    let plan = unsafe { &*plan.cast::<ReadPlan>() };
    // SAFETY: `raw` points to `raw_len` readable bytes, `out` to `out_len`
    // writable ones, and they do not overlap (contract).
    let (raw, out) = unsafe { (bytes(raw, raw_len), slice_mut(out, out_len)) };
    // Damage is reported by the engine's read, which the glue falls back to.
    match plan.decode_span(i, raw, out) {
        Ok(()) => 0,
        Err(e) => errno(e),
    }
}

/// Free a plan from [`arborfs_rs_plan_read`] (null is ignored).
///
/// # Safety
///
/// `plan` is null or a plan not yet freed.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_plan_free(plan: *mut c_void) {
    if !plan.is_null() {
        // SAFETY: made by `KBox::into_raw` in `arborfs_rs_plan_read`.
        drop(unsafe { KBox::from_raw(plan.cast::<ReadPlan>()) });
    }
}

/// Encode the `len` bytes at `buf` a write plan covers (compression for
/// an encoded plan, and checksums); `*out` and `*out_len` (writable) get
/// the bytes to write at the plan's room: the plan's own compressed
/// payload (valid until the plan is freed) or `buf` itself. 0 or a
/// negative errno; no lock needed.
///
/// # Safety
///
/// `plan` comes from [`arborfs_rs_plan_write`] and is not yet freed; `buf`
/// points to `len` readable bytes that outlive the plan's use of them.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_wplan_encode(
    plan: *mut c_void,
    buf: *const u8,
    len: usize,
    out: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    // SAFETY: a live plan (contract); the caller's own, not shared.
    let plan = unsafe { &mut *plan.cast::<WritePlan>() };
    // SAFETY: `buf` points to `len` readable bytes.
    let data = unsafe { bytes(buf, len) };
    match plan.encode(data) {
        Ok(()) => {
            let stored = plan.stored(data);
            // SAFETY: both out pointers are writable.
            unsafe {
                put(out, stored.as_ptr());
                put(out_len, stored.len());
            }
            0
        }
        Err(e) => errno(e),
    }
}

/// Have the commit of a plan from [`arborfs_rs_plan_write`] give its file
/// these access, modification and change times (ns;
/// [`WritePlan::set_times`]).
///
/// # Safety
///
/// `plan` is a write plan not yet freed, and nobody else uses it
/// meanwhile.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_wplan_set_times(
    plan: *mut c_void,
    atime: i64,
    mtime: i64,
    ctime: i64,
) {
    // SAFETY: made by `KBox::into_raw` in `arborfs_rs_plan_write`, alive,
    // and used by nobody else (contract).
    if let Some(p) = unsafe { plan.cast::<WritePlan>().as_mut() } {
        p.set_times(atime, mtime, ctime);
    }
}

/// Free a plan from [`arborfs_rs_plan_write`] (null is ignored).
///
/// # Safety
///
/// `plan` is null or a write plan not yet freed.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_wplan_free(plan: *mut c_void) {
    if !plan.is_null() {
        // SAFETY: made by `KBox::into_raw` in `arborfs_rs_plan_write`.
        drop(unsafe { KBox::from_raw(plan.cast::<WritePlan>()) });
    }
}

/// Make the commit of the `n` write plans at `plans` while their blocks
/// are being written, with the mount's lock held shared, beside reads and
/// other such calls, from nodes in memory ([`Fs::prepare_writes`]): 0 and
/// the commit in `*prepared`, for [`arborfs_rs_write_commit_prepared`]
/// (or [`arborfs_rs_prepared_free`]) once the blocks are written; else an
/// errno, and the plans are committed with [`arborfs_rs_write_commit`].
///
/// # Safety
///
/// `fs` comes from [`arborfs_rs_mount`] and is still mounted, and the
/// caller holds the mount's lock shared; `plans` as for
/// [`arborfs_rs_write_commit`]; `prepared` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_write_prepare(
    fs: *mut c_void,
    plans: *const *const c_void,
    n: usize,
    prepared: *mut *mut c_void,
) -> c_int {
    // SAFETY: a live engine; every holder of the shared lock only reads
    // it, and nobody holds it exclusively.
    let fs: &KFs = unsafe { &*fs.cast::<KFs>() };
    // SAFETY: forwarded contract.
    let p = unsafe { write_plans(plans, n) };
    let r = fs.prepare_writes(p).and_then(|c| KBox::new(c, GFP_KERNEL).map_err(|_| FsError::NoMem));
    match r {
        Ok(b) => {
            // SAFETY: `prepared` is writable (contract).
            unsafe { put(prepared, KBox::into_raw(b).cast::<c_void>()) };
            0
        }
        Err(e) => errno(e),
    }
}

/// Free a commit from [`arborfs_rs_write_prepare`] that is not to be made
/// (null is ignored).
///
/// # Safety
///
/// `prepared` is null or a prepared commit not yet committed or freed.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_prepared_free(prepared: *mut c_void) {
    if !prepared.is_null() {
        // SAFETY: made by `KBox::into_raw` in `arborfs_rs_write_prepare`.
        drop(unsafe { KBox::from_raw(prepared.cast::<PreparedWrites>()) });
    }
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
/// `id` is a NUL-terminated device name; `bdev` the glue's member of the
/// mount's block device (`struct arborfs_member *`), open until [`arborfs_rs_unmount`]; `out` and `ro` are writable.
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
            // mount(2) says EINVAL for "not a valid file system here".
            return if e.is_damage() { -EINVAL } else { errno(e) };
        }
    };
    let read_only = fs.is_read_only();
    if let Some(stop) = fs.journal_stop() {
        pr_warn!("{}: {}; run fsck.arborfs\n", name, stop);
    }
    if let Some(seq) = fs.journal_left_out() {
        pr_info!("{}: journal entry {} left out: the data it points at did not reach the disk before the power went (its sync had not returned)\n", name, seq);
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
                put(out, KBox::into_raw(b).cast());
                put(ro, c_int::from(read_only));
            }
            pr_info!("{}: mounted {}\n", name, if read_only { "read-only" } else { "read-write" });
            0
        }
        Err(_) => -ENOMEM,
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
/// `*fs` is mounted and replaced in place; `bdev` is the mount's device;
/// `ro` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_remount(
    fs: *mut *mut c_void,
    bdev: *mut c_void,
    size: u64,
    read_only: c_int,
    ro: *mut c_int,
) -> c_int {
    // SAFETY: `*fs` is a mounted engine, held exclusively.
    let cur = unsafe { &mut *(*fs).cast::<KFs>() };
    if read_only != 0 {
        // SAFETY: `ro` is writable.
        unsafe { put(ro, 1) };
        return cur.make_read_only().map_or_else(errno, |()| 0);
    }
    if !cur.is_read_only() {
        return 0;
    }
    // The glue is writing from the old engine's memory (it waits for that
    // first; this is for a sync that started since).
    if cur.sync_in_flight() {
        return -(bindings::EBUSY as c_int);
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
    let Ok(b) = KBox::new(new, GFP_KERNEL) else { return -ENOMEM };
    // SAFETY: the old pointer came from `KBox::into_raw`; nobody else uses it
    // (the glue's engine lock is held exclusively), and it is replaced before the lock drops.
    unsafe {
        drop(KBox::from_raw((*fs).cast::<KFs>()));
        put(fs, KBox::into_raw(b).cast());
        put(ro, c_int::from(new_ro));
    }
    0
}

/// The `compress=` mount option's value, parsed as the tools parse it:
/// `kind` gets 0 none, 1 lz4 or 2 zstd, `level` the zstd level (0: the
/// default). On a bad value, `msg` gets why (NUL-terminated) and the
/// result is -EINVAL.
///
/// # Safety
///
/// `v` points to `len` bytes; `kind` and `level` are writable; `msg` points
/// to `msglen` writable bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn arborfs_rs_parse_compress(
    v: *const u8,
    len: usize,
    kind: *mut u8,
    level: *mut u8,
    msg: *mut u8,
    msglen: usize,
) -> c_int {
    // SAFETY: `v` points to `len` bytes.
    let v = unsafe { bytes(v, len) };
    let r = core::str::from_utf8(v).map_err(|_| "not text").and_then(crate::fs::options::parse_compression);
    match r {
        Ok((c, l)) => {
            // SAFETY: `kind` and `level` are writable.
            unsafe {
                put(kind, c as u8);
                put(level, l);
            }
            0
        }
        Err(why) => {
            // SAFETY: `msg` points to `msglen` writable bytes.
            let out = unsafe { slice_mut(msg, msglen) };
            let n = why.len().min(msglen.saturating_sub(1));
            if let (Some(dst), Some(src)) = (out.get_mut(..n), why.as_bytes().get(..n)) {
                dst.copy_from_slice(src);
            }
            if let Some(z) = out.get_mut(n) {
                *z = 0;
            }
            -EINVAL
        }
    }
}

/// `ArborfsSetattr::valid` bits.
const SET_MODE: u32 = 1;
const SET_UID: u32 = 2;
const SET_GID: u32 = 4;
const SET_SIZE: u32 = 8;
const SET_ATIME: u32 = 16;
const SET_MTIME: u32 = 32;
const SET_CTIME: u32 = 64;
const SET_FLAGS: u32 = 128;
const SET_PROJID: u32 = 256;

/// `ArborfsExtent::flags`: stored compressed.
const EXTENT_ENCODED: u32 = 1;
/// Preallocated (reads as zeros).
const EXTENT_UNWRITTEN: u32 = 2;
/// Data inside the metadata (symlink targets).
const EXTENT_INLINE: u32 = 4;
/// The file's last extent.
const EXTENT_LAST: u32 = 8;

read_entry_points! {
    /// statfs numbers into `out` (writable).
    fn arborfs_rs_statfs(t, out: *mut ArborfsStatfs) -> c_int {
        let s = t.fs().statfs();
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
        unsafe { put(out, v) };
        0
    }

    /// SEEK_DATA (`hole == 0`) or SEEK_HOLE from `off`; the answer into
    /// `res` (writable).
    fn arborfs_rs_seek(t, ino: u64, off: u64, hole: c_int, res: *mut u64) -> c_int {
        match t.seek(ino, off, hole != 0) {
            // SAFETY: `res` is writable.
            Ok(p) => unsafe { put(res, p); 0 },
            Err(e) => failed(e, "seek", ino),
        }
    }

    /// Attributes of `ino` into `out` (writable).
    fn arborfs_rs_getattr(t, ino: u64, out: *mut ArborfsAttr) -> c_int {
        // SAFETY: `out` is writable.
        unsafe { attr_out(t.getattr(ino), out, "getattr", ino) }
    }

    /// Look `name` (`len` bytes) up in `dir`; the inode number into `ino`
    /// (writable).
    fn arborfs_rs_lookup(t, dir: u64, name: *const u8, len: usize, ino: *mut u64) -> c_int {
        // SAFETY: `name` points to `len` bytes.
        match t.lookup(dir, unsafe { bytes(name, len) }) {
            // SAFETY: `ino` is writable.
            Ok(a) => unsafe { put(ino, a.ino); 0 },
            Err(e) => failed(e, "lookup in directory", dir),
        }
    }

    /// Up to `max` entries of `dir` from cursor `pos` into `out` (room for
    /// `max`); their number into `n` (writable).
    fn arborfs_rs_readdir(t, dir: u64, pos: u64, out: *mut ArborfsDirent, max: usize, n: *mut usize) -> c_int {
        // SAFETY: `out` has room for `max` entries, which we only write.
        let out = unsafe { slice_mut(out, max) };
        let mut count = 0usize;
        let r = t.readdir(dir, pos, &mut |name, ino, dtype, next| {
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
        unsafe { put(n, count) };
        status(r, "readdir", dir)
    }

    /// Map up to `len` bytes of `ino` at `off` for a read the glue carries
    /// out without the lock: the plan into `*plan` (freed with
    /// [`arborfs_rs_plan_free`]); returns the bytes planned (short at the
    /// file size) or a negative errno.
    fn arborfs_rs_plan_read(t, ino: u64, off: u64, len: usize, plan: *mut *mut c_void) -> isize {
        let Ok(mut p) = KBox::new(ReadPlan::new(), GFP_KERNEL) else { return (-ENOMEM) as isize };
        match t.plan_read(ino, off, len as u64, &mut p) {
            Ok(n) => {
                // SAFETY: `plan` is writable.
                unsafe { put(plan, KBox::into_raw(p).cast::<c_void>()) };
                n as isize
            }
            Err(e) => failed(e, "read", ino) as isize,
        }
    }

    /// Finish a plan whose member blocks the glue read into `buf` (`len`
    /// bytes, the plan's): 0 with the engine's spans filled in, 1 if a
    /// bucket read was freed since (read again), or a negative errno.
    /// Shared, only a plan with no engine spans is finished (else ECHILD).
    fn arborfs_rs_plan_finish(t, plan: *const c_void, buf: *mut u8, len: usize) -> c_int {
        // SAFETY: a live plan from `arborfs_rs_plan_read` (the glue's contract).
        let p = unsafe { &*plan.cast::<ReadPlan>() };
        let fs = match &mut t.fs {
            Held::Shared(s) if !s.fs().plan_current(p) => return 1,
            Held::Shared(_) if p.needs_engine() => return errno(FsError::NotCached),
            Held::Shared(_) => return 0,
            Held::Exclusive(fs) => fs,
        };
        // SAFETY: `buf` points to `len` writable bytes.
        match fs.finish_read(p, unsafe { slice_mut(buf, len) }) {
            Ok(true) => 0,
            Ok(false) => 1,
            // Not logged: the glue reads again with `arborfs_rs_read`, which logs damage.
            Err(e) => errno(e),
        }
    }

    /// The symlink target into `buf` (`len` writable bytes); returns its length.
    fn arborfs_rs_readlink(t, ino: u64, buf: *mut u8, len: usize) -> isize {
        let mut target = TryVec::new();
        if let Err(e) = t.readlink(ino, &mut target) {
            return failed(e, "readlink", ino) as isize;
        }
        // SAFETY: forwarded contract.
        unsafe { copy_out(&target, buf, len, false) }
    }

    /// getxattr with the full name ("user.foo", `namelen` bytes) into
    /// `buf` (`size` writable bytes; size 0 asks for the length).
    fn arborfs_rs_getxattr(t, ino: u64, name: *const u8, namelen: usize, buf: *mut u8, size: usize) -> isize {
        let mut v = TryVec::new();
        // SAFETY: `name` points to `namelen` bytes.
        match t.getxattr(ino, unsafe { bytes(name, namelen) }, &mut v) {
            // SAFETY: forwarded contract.
            Ok(()) => unsafe { copy_out(&v, buf, size, true) },
            Err(e) => failed(e, "getxattr", ino) as isize,
        }
    }

    /// listxattr: NUL-terminated names into `buf` (`size` writable bytes;
    /// size 0 asks for the length).
    fn arborfs_rs_listxattr(t, ino: u64, buf: *mut u8, size: usize) -> isize {
        let mut v = TryVec::new();
        match t.listxattr(ino, &mut v) {
            // SAFETY: forwarded contract.
            Ok(()) => unsafe { copy_out(&v, buf, size, true) },
            Err(e) => failed(e, "listxattr", ino) as isize,
        }
    }
}

entry_points! {
    /// Cache a node from [`arborfs_rs_node_fetch`] (which this takes over
    /// and frees) if the tree still points at it as `miss` (readable)
    /// says: 1 if it was, 0 if not (the tree moved on, or it is cached).
    fn arborfs_rs_node_adopt(fs, miss: *const ArborfsNodeMiss, node: *mut c_void) -> c_int {
        // SAFETY: a node from `arborfs_rs_node_fetch`, handed over (contract).
        let node = KBox::into_inner(unsafe { KBox::from_raw(node.cast::<Node>()) });
        // SAFETY: readable (contract).
        let Some(m) = (unsafe { &*miss }).to_miss() else { return -EINVAL };
        match fs.adopt_node(&m, node) {
            Ok(taken) => c_int::from(taken),
            Err(e) => errno(e),
        }
    }

    /// For the next call (ENGINE_WRITE): refuse to read nodes
    /// ([`KFs::refuse_reads`]), so that it fails with -ECHILD, having
    /// changed nothing, where it needs a node that is on disk only.
    fn arborfs_rs_refuse_reads(fs) -> c_int {
        fs.refuse_reads();
        0
    }

    /// End [`arborfs_rs_refuse_reads`]: the node the call needed into
    /// `miss` (writable; `valid` 0 if none).
    fn arborfs_rs_take_refused(fs, miss: *mut ArborfsNodeMiss) -> c_int {
        let m = fs.take_refused();
        // SAFETY: writable (contract).
        let out = unsafe { &mut *miss };
        match m {
            Some(m) => *out = ArborfsNodeMiss::from_miss(&m),
            None => out.valid = 0,
        }
        0
    }

    /// Commit a change a change entry point prepared (`prepared`, which
    /// this takes over): 0, -EAGAIN when a commit since changed what its
    /// body read (make it again), -ECHILD when a leaf it changes is on disk
    /// only (with reads refused), or the commit's error.
    fn arborfs_rs_commit_prepared(fs, prepared: *mut c_void) -> c_int {
        // SAFETY: made by `KBox::into_raw` in `ChangeCall::make`, and
        // handed here once.
        let p = unsafe { KBox::from_raw(prepared.cast::<Prepared>()) };
        status(fs.commit_prepared(KBox::into_inner(p)), "commit", 0)
    }

    /// The shutdown ioctl: optionally flush the journal, then write nothing more.
    fn arborfs_rs_shutdown(fs, flush_journal: c_int) -> c_int {
        fs.shutdown(flush_journal != 0).map_or_else(errno, |()| 0)
    }

    /// The parent of directory `dir` (its "..") into `parent` (writable):
    /// what an NFS file handle of a disconnected directory reconnects by.
    fn arborfs_rs_parent(fs, dir: u64, parent: *mut u64) -> c_int {
        match fs.getattr(dir) {
            Ok(a) if a.inode.is_dir() => {
                // SAFETY: `parent` is writable.
                unsafe { put(parent, a.inode.parent) };
                0
            }
            Ok(_) => errno(FsError::NotDir),
            Err(e) => failed(e, "parent lookup", dir),
        }
    }

    /// Read file data into `buf` (`len` writable bytes); returns the bytes
    /// read or a negative errno.
    fn arborfs_rs_read(fs, ino: u64, off: u64, buf: *mut u8, len: usize) -> isize {
        // SAFETY: `buf` points to `len` writable bytes.
        match fs.read(ino, off, unsafe { slice_mut(buf, len) }) {
            Ok(n) => n as isize,
            Err(e) => {
                if log_allowed() {
                    pr_err!("read of inode {} at {} failed: {}\n", ino, off, e);
                }
                errno(e) as isize
            }
        }
    }

    /// Room for the whole blocks at the front of a write of `len` bytes at
    /// `off` of `ino`, whose data ends at `data_end` (the bytes past it are
    /// zeros the glue padded the file's last block with), which the glue
    /// writes without the engine lock: the plan
    /// into `*plan` (freed with [`arborfs_rs_wplan_free`]), the member and
    /// byte offset to write to into `*dev` and `*offset`. Returns the bytes
    /// planned, 0 when the engine must write them itself (`*plan` stays
    /// null), or a negative errno.
    fn arborfs_rs_plan_write(
        fs,
        ino: u64,
        off: u64,
        len: usize,
        data_end: u64,
        plan: *mut *mut c_void,
        dev: *mut u32,
        offset: *mut u64,
        placed: *mut c_int,
    ) -> isize {
        let Ok(mut p) = KBox::new(WritePlan::new(), GFP_KERNEL) else { return (-ENOMEM) as isize };
        match fs.plan_write(ino, off, len as u64, data_end, &mut p) {
            Ok(false) => 0,
            Ok(true) => {
                let n = p.len as isize;
                // SAFETY: the four out pointers are writable.
                unsafe {
                    put(dev, u32::from(p.dev));
                    put(offset, p.offset);
                    put(placed, c_int::from(p.is_placed()));
                    put(plan, KBox::into_raw(p).cast::<c_void>());
                }
                n
            }
            Err(e) => write_failed(e, ino, off) as isize
        }
    }

    /// [`arborfs_rs_plan_write`] for each of the `nr` requests at `reqs`
    /// (writable), all of file `ino`, in one call: each gets its plan
    /// (null when not planned), member, offset, whether placed, and `n`,
    /// the bytes planned (0 when the engine must write them). Returns 0
    /// or the errno of the first that failed; the ones before it keep
    /// their plans (the glue aborts them), the rest have none. Refused
    /// (ECHILD), none has a plan.
    fn arborfs_rs_plan_writes(fs, ino: u64, reqs: *mut ArborfsWreq, nr: usize) -> c_int {
        if nr == 0 || reqs.is_null() {
            return 0;
        }
        // SAFETY: `nr` writable requests (the glue's contract).
        let reqs = unsafe { core::slice::from_raw_parts_mut(reqs, nr) };
        let mut batch = KVec::new();
        for r in reqs.iter() {
            if batch.push(WriteRequest::new(r.off, r.len, r.data_end), GFP_KERNEL).is_err() {
                return -ENOMEM;
            }
        }
        let res = fs.plan_writes(ino, &mut batch);
        if let Err(e @ FsError::NotCached) = res {
            // Refused (ENGINE_WRITE makes the call again): nothing is handed
            // out, or the plans made before the refusal would be made twice.
            for w in batch.iter().filter(|w| w.planned) {
                let _ = fs.abort_write(&w.plan);
            }
            reqs.iter_mut().for_each(|r| r.plan = core::ptr::null_mut());
            return errno(e);
        }
        let mut failed = None;
        for (r, w) in reqs.iter_mut().zip(batch) {
            r.plan = core::ptr::null_mut();
            r.n = 0;
            if !w.planned {
                continue;
            }
            match KBox::new(WritePlan::new(), GFP_KERNEL) {
                Ok(mut p) => {
                    *p = w.plan;
                    r.n = p.len as i64;
                    r.dev = u32::from(p.dev);
                    r.offset = p.offset;
                    r.placed = c_int::from(p.is_placed());
                    r.plan = KBox::into_raw(p).cast::<c_void>();
                }
                Err(_) => {
                    // No box to hand it out in: its room is given up here.
                    let _ = fs.abort_write(&w.plan);
                    failed = Some(-ENOMEM);
                }
            }
        }
        if let Some(e) = failed {
            return e;
        }
        match res {
            Ok(()) => 0,
            Err(e) => write_failed(e, ino, reqs.first().map_or(0, |r| r.off)),
        }
    }

    /// Place an encoded write plan (after [`arborfs_rs_wplan_encode`]):
    /// the member and byte offset to write its stored bytes to into `*dev`
    /// and `*offset` (writable).
    fn arborfs_rs_write_place(fs, plan: *mut c_void, dev: *mut u32, offset: *mut u64) -> c_int {
        // SAFETY: a live plan from `arborfs_rs_plan_write` (the glue's contract).
        let p = unsafe { &mut *plan.cast::<WritePlan>() };
        match fs.place_write(p) {
            Ok(()) => {
                // SAFETY: both out pointers are writable.
                unsafe {
                    put(dev, u32::from(p.dev));
                    put(offset, p.offset);
                }
                0
            }
            Err(e) => write_failed(e, p.ino, p.start)
        }
    }

    /// Commit the `n` write plans at `plans` (all of file `ino`), whose
    /// blocks the glue wrote and checksummed, in as few transactions as
    /// the journal allows; `*alloc_bytes` (writable) gets the bytes the
    /// file now holds. Plans not committed are given up.
    fn arborfs_rs_write_commit(
        fs,
        ino: u64,
        plans: *const *const c_void,
        n: usize,
        alloc_bytes: *mut u64,
    ) -> c_int {
        // SAFETY: forwarded contract.
        let p = unsafe { write_plans(plans, n) };
        let start = p.first().map_or(0, |p| p.start);
        // SAFETY: `alloc_bytes` is writable.
        unsafe { write_committed(fs.commit_writes(p), alloc_bytes, ino, start) }
    }

    /// Commit the `n` write plans at `plans` (of file `ino`) as
    /// [`arborfs_rs_write_commit`], applying what
    /// [`arborfs_rs_write_prepare`] made of them (`prepared`, which this
    /// takes over). -EAGAIN, or -ECHILD with reads refused, changes
    /// nothing and keeps the plans: then commit them with
    /// [`arborfs_rs_write_commit`].
    fn arborfs_rs_write_commit_prepared(
        fs,
        ino: u64,
        prepared: *mut c_void,
        plans: *const *const c_void,
        n: usize,
        alloc_bytes: *mut u64,
    ) -> c_int {
        // SAFETY: made by `KBox::into_raw` in `arborfs_rs_write_prepare`,
        // and handed here once.
        let prepared = KBox::into_inner(unsafe { KBox::from_raw(prepared.cast::<PreparedWrites>()) });
        // SAFETY: forwarded contract.
        let p = unsafe { write_plans(plans, n) };
        let start = p.first().map_or(0, |p| p.start);
        // SAFETY: `alloc_bytes` is writable.
        unsafe { write_committed(fs.commit_prepared_writes(prepared, p), alloc_bytes, ino, start) }
    }

    /// Give up the `n` write plans at `plans` (of file `ino`), whose
    /// blocks were not written.
    fn arborfs_rs_write_abort(fs, ino: u64, plans: *const *const c_void, n: usize) -> c_int {
        // SAFETY: forwarded contract.
        let p = unsafe { write_plans(plans, n) };
        status(fs.abort_writes(p), "write", ino)
    }


    /// Write file data (writeback and O_DIRECT; `buf` points to `len`
    /// bytes) without touching its times, which the VFS keeps; returns the
    /// bytes written and puts the bytes the file now occupies (for
    /// st_blocks) in `alloc_bytes` (writable).
    fn arborfs_rs_write(fs, ino: u64, off: u64, buf: *const u8, len: usize, alloc_bytes: *mut u64) -> isize {
        // SAFETY: `buf` points to `len` bytes.
        let data = unsafe { bytes(buf, len) };
        match fs.write_back(ino, off, data).and_then(|n| Ok((n, fs.getattr(ino)?))) {
            Ok((n, a)) => {
                // SAFETY: `alloc_bytes` is writable.
                unsafe { put(alloc_bytes, a.inode.alloc_bytes) };
                n as isize
            }
            Err(e) => write_failed(e, ino, off) as isize
        }
    }

    /// fallocate(2); `out` (writable) gets the new attributes.
    fn arborfs_rs_fallocate(fs, ino: u64, mode: u32, off: u64, len: u64, out: *mut ArborfsAttr) -> c_int {
        let r = fs.fallocate(ino, mode, off, len).and_then(|()| fs.getattr(ino));
        // SAFETY: `out` is writable.
        unsafe { attr_out(r, out, "fallocate", ino) }
    }

    /// Up to `max` extents of `ino` that end after `start` and begin before
    /// `end` into `out` (room for `max`), their number into `n` (writable);
    /// the last one of the file carries `EXTENT_LAST`.
    fn arborfs_rs_fiemap(fs, ino: u64, start: u64, end: u64, out: *mut ArborfsExtent, max: usize, n: *mut usize) -> c_int {
        // SAFETY: `out` has room for `max` entries, which we only write.
        let out = unsafe { slice_mut(out, max) };
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
        unsafe { put(n, count) };
        status(r, "fiemap", ino)
    }

    /// Make the first `len` bytes of `ino` swap space (swapon): every byte
    /// in a plain extent, their checksums dropped, durably.
    fn arborfs_rs_swap_prepare(fs, ino: u64, len: u64) -> c_int {
        status(fs.swap_prepare(ino, len), "swapon", ino)
    }

    /// A sync's next step (group commit: `crate::fs::sync`). `*target` is
    /// `u64::MAX` on the first step, which sets it. Returns 0 when the
    /// target is durable, SYNC_WAIT when another caller's journal write is
    /// in flight, SYNC_WRITE when `out` holds a write for the glue to issue
    /// without the engine lock and report with [`arborfs_rs_sync_done`]; or a
    /// negative errno.
    fn arborfs_rs_sync_step(fs, target: *mut u64, out: *mut ArborfsJournalWrite) -> c_int {
        // SAFETY: `target` is readable and writable.
        let t = unsafe { &mut *target };
        if *t == u64::MAX {
            *t = fs.sync_target();
        }
        match fs.sync_step(*t) {
            Ok(SyncStep::Durable) => 0,
            Ok(SyncStep::Wait) => SYNC_WAIT,
            Ok(SyncStep::Write { dev, offset, preflush }) => {
                let bytes = fs.sync_write_bytes();
                let w = ArborfsJournalWrite {
                    buf: bytes.as_ptr(),
                    len: bytes.len() as u64,
                    offset,
                    dev: u32::from(dev),
                    preflush: u32::from(preflush),
                };
                // SAFETY: `out` is writable.
                unsafe { out.write(w) };
                SYNC_WRITE
            }
            Err(e) => {
                pr_err!("journal write failed: {}\n", e);
                errno(e)
            }
        }
    }

    /// The journal write of a SYNC_WRITE step finished with `err` (0 or a
    /// negative errno); a failure stops the file system. 0 when the
    /// sync's `target` (from its first step) is durable now, SYNC_AGAIN
    /// when it is to step again: a write usually covers its caller's
    /// target, and the step that would only find that costs another call.
    fn arborfs_rs_sync_done(fs, err: c_int, target: u64) -> c_int {
        let res = if err == 0 { Ok(()) } else { Err(FsError::Io { dev: 0, offset: 0 }) };
        fs.sync_done(res).map_or_else(
            |e| {
                pr_err!("journal write failed ({}); the file system stops\n", err);
                errno(e)
            },
            |()| if fs.sync_durable(target) { 0 } else { SYNC_AGAIN },
        )
    }

    /// The last reference to `ino` is gone: delete it if it has no links.
    fn arborfs_rs_evict(fs, ino: u64) -> c_int {
        fs.evict(ino).map_or_else(
            |e| {
                if matches!(e, FsError::NotCached) {
                    // Refused: ENGINE_WRITE makes it again.
                    return errno(e);
                }
                // The orphan entry stays: the next mount finishes the deletion.
                pr_warn!("deleting unlinked inode {} failed ({}); the next mount finishes it\n", ino, e);
                errno(e)
            },
            |()| 0,
        )
    }

    /// The bytes writers hold reserved for dirty data (see
    /// `arborfs_reserve`); ENGINE_CALL passes them before every call.
    fn arborfs_rs_note_reserved(fs, bytes: u64) -> c_int {
        fs.note_data_promised(bytes);
        0
    }

    /// Bytes writers may reserve for dirty data (the engine keeps its
    /// margin for metadata).
    fn arborfs_rs_available(fs) -> u64 {
        fs.reservable_bytes()
    }

    /// Memory pressure: drop clean cached b-tree nodes down to `target`
    /// bytes; returns the bytes the cache holds afterwards.
    fn arborfs_rs_shrink(fs, target: usize) -> usize {
        let _ = fs.shrink_cache(target);
        fs.stats().cache_bytes
    }

    /// The file system's UUID into `out` (room for 16 bytes).
    fn arborfs_rs_uuid(fs, out: *mut u8) -> c_int {
        // SAFETY: `out` has room for the 16 bytes of a UUID.
        unsafe { core::ptr::copy_nonoverlapping(fs.sb.uuid.as_ptr(), out, fs.sb.uuid.len()) };
        0
    }

    /// Bytes a small read reads and verifies whole ([`Fs::read_unit`]; 0:
    /// none).
    fn arborfs_rs_read_unit(fs) -> u32 {
        fs.read_unit()
    }

    /// Compress new data with `kind` (0 none, 1 lz4, 2 zstd at `level`, 0:
    /// the default), as `arborfs_rs_parse_compress` gave them.
    fn arborfs_rs_set_compression(fs, kind: u8, level: u8) -> c_int {
        match crate::format::extent::Compression::from_u8(kind) {
            Ok(c) if level <= crate::fs::options::ZSTD_LEVEL_MAX => {
                fs.set_compression(c, level);
                0
            }
            _ => -EINVAL,
        }
    }

    /// Discard buckets once a checkpoint has freed them (`on` non-zero),
    /// or stop (the `discard` / `nodiscard` mount options).
    fn arborfs_rs_set_discard(fs, on: c_int) -> c_int {
        fs.set_discard(on != 0);
        0
    }

    /// FITRIM: discard the free buckets in `[start, start + len)` of the
    /// device, runs of at least `min_len` bytes; the bytes discarded into
    /// `trimmed` (writable).
    fn arborfs_rs_trim(fs, start: u64, len: u64, min_len: u64, trimmed: *mut u64) -> c_int {
        match fs.trim(start, len, min_len) {
            // SAFETY: `trimmed` is writable.
            Ok(n) => unsafe { put(trimmed, n); 0 },
            Err(e) => {
                if e.is_damage() {
                    pr_err!("trim failed: {}\n", e);
                }
                errno(e)
            }
        }
    }
}

/// Copy `data` out: into `buf` (`size` writable bytes), or with
/// `size_query` and `size` 0 just its length (the xattr convention).
/// -ERANGE when it does not fit.
///
/// # Safety
///
/// `buf` points to `size` writable bytes (or size is 0).
unsafe fn copy_out(data: &[u8], buf: *mut u8, size: usize, size_query: bool) -> isize {
    if size_query && size == 0 {
        return data.len() as isize;
    }
    if data.len() > size {
        return -ERANGE as isize;
    }
    // SAFETY: `buf` has room for `size >= data.len()` bytes.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len()) };
    data.len() as isize
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
        Err(_) => -ERANGE as isize,
    }
}

change_entry_points! {
    /// setxattr with the full name (`namelen` bytes); a NULL `value`
    /// removes the attribute, else it points to `size` bytes.
    fn arborfs_rs_setxattr(c, ino: u64, name: *const u8, namelen: usize, value: *const u8, size: usize, flags: u32) -> c_int {
        // SAFETY: `name` points to `namelen` bytes.
        let name = unsafe { bytes(name, namelen) };
        let r = if value.is_null() {
            c.make(&mut RemoveXattr { ino, full_name: name })
        } else {
            // SAFETY: `value` points to `size` bytes.
            c.make(&mut SetXattr { ino, full_name: name, value: unsafe { bytes(value, size) }, flags })
        };
        status(r.map(|_| ()), "setxattr", ino)
    }

    /// Create a regular file, directory, device node, fifo or socket named
    /// `name` (`len` bytes) in `dir`; attributes into `out` (writable).
    fn arborfs_rs_create(c, dir: u64, name: *const u8, len: usize, mode: u32, uid: u32, gid: u32, rdev: u64, out: *mut ArborfsAttr) -> c_int {
        // SAFETY: `name` points to `len` bytes.
        let r = c.make(&mut Create { dir, name: unsafe { bytes(name, len) }, mode, uid, gid, rdev });
        // SAFETY: `out` is writable.
        unsafe { attr_out(r, out, "create in directory", dir) }
    }

    /// Create an unnamed regular file (`O_TMPFILE`) with no links, on the
    /// orphan list; attributes into `out` (writable).
    fn arborfs_rs_tmpfile(c, dir: u64, mode: u32, uid: u32, gid: u32, out: *mut ArborfsAttr) -> c_int {
        let r = c.make(&mut Tmpfile { dir, mode, uid, gid });
        // SAFETY: `out` is writable.
        unsafe { attr_out(r, out, "O_TMPFILE in directory", dir) }
    }

    /// Create a symbolic link `name` (`len` bytes) to `target` (`tlen`
    /// bytes); attributes into `out` (writable).
    fn arborfs_rs_symlink(c, dir: u64, name: *const u8, len: usize, target: *const u8, tlen: usize, uid: u32, gid: u32, out: *mut ArborfsAttr) -> c_int {
        // SAFETY: `name` and `target` point to their lengths.
        let (name, target) = unsafe { (bytes(name, len), bytes(target, tlen)) };
        let r = c.make(&mut Symlink { dir, name, target, uid, gid });
        // SAFETY: `out` is writable.
        unsafe { attr_out(r, out, "symlink in directory", dir) }
    }

    /// Add a hard link to `ino` named `name` (`len` bytes) in `dir`;
    /// attributes into `out` (writable).
    fn arborfs_rs_link(c, ino: u64, dir: u64, name: *const u8, len: usize, out: *mut ArborfsAttr) -> c_int {
        // SAFETY: `name` points to `len` bytes.
        let r = c.make(&mut Link { ino, dir, name: unsafe { bytes(name, len) } });
        // SAFETY: `out` is writable.
        unsafe { attr_out(r, out, "link", ino) }
    }

    /// Remove an entry `name` (`len` bytes; `rmdir` for directories); `out`
    /// (writable) gets the inode's new attributes (nlink 0: it is deleted
    /// at eviction).
    fn arborfs_rs_unlink(c, dir: u64, name: *const u8, len: usize, rmdir: c_int, out: *mut ArborfsAttr) -> c_int {
        // SAFETY: `name` points to `len` bytes.
        let name = unsafe { bytes(name, len) };
        let r = c.make(&mut Remove { dir, name, want_dir: rmdir != 0 });
        // SAFETY: `out` is writable.
        unsafe { attr_out(r, out, "unlink in directory", dir) }
    }

    /// rename(2) with RENAME_NOREPLACE, RENAME_EXCHANGE or RENAME_WHITEOUT
    /// (the whiteout belongs to `uid`/`gid`); the names point to their
    /// lengths in bytes.
    fn arborfs_rs_rename(c, olddir: u64, oldname: *const u8, oldlen: usize, newdir: u64, newname: *const u8, newlen: usize, flags: u32, uid: u32, gid: u32) -> c_int {
        // SAFETY: the names point to their lengths in bytes.
        let (oldname, newname) = unsafe { (bytes(oldname, oldlen), bytes(newname, newlen)) };
        let r = c.make(&mut Rename { olddir, oldname, newdir, newname, flags, owner: (uid, gid) });
        status(r.map(|_| ()), "rename in directory", olddir)
    }

    /// Change attributes (chmod, chown, utimes, truncate, flags,
    /// write_inode) as `set` (readable) says; attributes into `out` (writable).
    fn arborfs_rs_setattr(c, ino: u64, set: *const ArborfsSetattr, out: *mut ArborfsAttr) -> c_int {
        // SAFETY: `set` is readable.
        let s = unsafe { &*set };
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
        let r = match &mut c {
            // A truncate takes several transactions, the first project id
            // a checkpoint: made exclusively.
            ChangeCall::Exclusive(fs) => fs.setattr(ino, &sa),
            ChangeCall::Optimistic { fs, .. } if fs.setattr_is_complex(&sa) => Err(FsError::NotCached),
            c => c.make(&mut SetAttrs { ino, set: sa }),
        };
        // SAFETY: `out` is writable.
        unsafe { attr_out(r, out, "setattr", ino) }
    }
}
