//! The kernel platform: the engine's `sys` seam on top of the `kernel` crate
//! (fallible `KVVec` allocation) and the C glue (block I/O with bios, the
//! clock, the kernel's crc32c, lz4 and zstd).
//!
//! This file is compiled only into the module (`--cfg arborfs_kernel`).

use crate::error::{Error, Result};
use core::ffi::c_void;
use kernel::alloc::{flags::GFP_KERNEL, KBox, KVVec};

extern "C" {
    fn arborfs_glue_now_ns() -> i64;
    fn arborfs_glue_bdev_read(bdev: *mut c_void, buf: *mut u8, len: usize, off: u64) -> i32;
    fn arborfs_glue_bdev_write(bdev: *mut c_void, buf: *const u8, len: usize, off: u64) -> i32;
    fn arborfs_glue_bdev_write_many(bdev: *mut c_void, writes: *const GlueWrite, n: usize) -> i32;
    fn arborfs_glue_bdev_flush(bdev: *mut c_void) -> i32;
    fn arborfs_glue_bdev_write_durable(bdev: *mut c_void, buf: *const u8, len: usize, off: u64) -> i32;
    fn arborfs_glue_bdev_write_fua(bdev: *mut c_void, buf: *const u8, len: usize, off: u64) -> i32;
    fn arborfs_glue_bdev_fua_flushes_all(bdev: *mut c_void) -> bool;
    fn arborfs_glue_bdev_discard(bdev: *mut c_void, off: u64, len: u64) -> i32;
    fn arborfs_glue_crc32c(data: *const u8, len: usize) -> u32;
    fn arborfs_glue_lz4_decompress(src: *const u8, srclen: usize, dst: *mut u8, dstlen: usize) -> i32;
    fn arborfs_glue_zstd_decompress(src: *const u8, srclen: usize, dst: *mut u8, dstlen: usize) -> i32;
    fn arborfs_glue_lz4_compress(src: *const u8, srclen: usize, dst: *mut u8, dstlen: usize) -> isize;
    fn arborfs_glue_zstd_compress(
        src: *const u8,
        srclen: usize,
        dst: *mut u8,
        dstlen: usize,
        level: i32,
    ) -> isize;
}

/// A vector whose every allocation can fail; memory comes from kvmalloc, so
/// large buffers (b-tree nodes) do not need contiguous pages.
pub struct TryVec<T>(KVVec<T>);

impl<T> Default for TryVec<T> {
    fn default() -> Self {
        TryVec::new()
    }
}

impl<T> TryVec<T> {
    /// An empty vector.
    pub const fn new() -> Self {
        TryVec(KVVec::new())
    }

    /// Reserve room for `n` more elements.
    pub fn try_reserve(&mut self, n: usize) -> Result<()> {
        self.0.reserve(n, GFP_KERNEL).map_err(|_| Error::NoMem)
    }

    /// Append `v`.
    pub fn try_push(&mut self, v: T) -> Result<()> {
        self.0.push(v, GFP_KERNEL).map_err(|_| Error::NoMem)
    }

    /// Insert `v` at `idx` (`idx <= len`).
    pub fn try_insert(&mut self, idx: usize, v: T) -> Result<()> {
        if idx > self.0.len() {
            return Err(Error::Internal("insert index out of range"));
        }
        self.try_push(v)?;
        if let Some(tail) = self.0.as_mut_slice().get_mut(idx..) {
            tail.rotate_right(1);
        }
        Ok(())
    }

    /// Remove and return the element at `idx`.
    pub fn remove(&mut self, idx: usize) -> Option<T> {
        self.0.as_mut_slice().get_mut(idx..)?.rotate_left(1);
        self.pop()
    }

    /// Remove the last element.
    pub fn pop(&mut self) -> Option<T> {
        let len = self.0.len();
        if len == 0 {
            return None;
        }
        // SAFETY: `len - 1 < len`, so the element is initialised; lowering the
        // length right after reading it hands ownership to the caller, and the
        // vector never reads or drops that slot again.
        unsafe {
            let v = core::ptr::read(self.0.as_ptr().add(len - 1));
            self.0.set_len(len - 1);
            Some(v)
        }
    }

    /// Keep the first `n` elements.
    pub fn truncate(&mut self, n: usize) {
        let len = self.0.len();
        if n >= len {
            return;
        }
        // SAFETY: elements `n..len` are initialised and owned by the vector.
        // The length is lowered first, so the vector never touches them
        // again, and then each is dropped exactly once in place (for plain
        // data nothing runs: a cleared buffer costs nothing per byte).
        unsafe {
            let tail = core::ptr::slice_from_raw_parts_mut(self.0.as_mut_ptr().add(n), len - n);
            self.0.set_len(n);
            core::ptr::drop_in_place(tail);
        }
    }

    /// Remove everything.
    pub fn clear(&mut self) {
        self.truncate(0);
    }
}

impl<T: Copy> TryVec<T> {
    /// Append a copy of `s`, as one memory copy (the kernel vector's own
    /// copies element by element).
    pub fn try_extend_from_slice(&mut self, s: &[T]) -> Result<()> {
        self.try_reserve(s.len())?;
        let len = self.0.len();
        // SAFETY: the reserve above left room for `s.len()` more elements
        // after `len`; `s` cannot overlap the vector's spare room (it is
        // borrowed while the vector is borrowed mutably); `T: Copy`, so the
        // copied bits are valid elements, and the length covers them only
        // once they are written.
        unsafe {
            core::ptr::copy_nonoverlapping(s.as_ptr(), self.0.as_mut_ptr().add(len), s.len());
            self.0.set_len(len + s.len());
        }
        Ok(())
    }
}

impl<T: Clone> TryVec<T> {
    /// Resize to `n`, filling with `v`.
    pub fn try_resize(&mut self, n: usize, v: T) -> Result<()> {
        let len = self.0.len();
        if n > len {
            self.0.extend_with(n - len, v, GFP_KERNEL).map_err(|_| Error::NoMem)
        } else {
            self.truncate(n);
            Ok(())
        }
    }
}

impl<T> core::ops::Deref for TryVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.0.as_slice()
    }
}

impl<T> core::ops::DerefMut for TryVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.0.as_mut_slice()
    }
}

/// A heap value: large structures live here rather than on the kernel stack.
pub struct TryBox<T>(KBox<T>);

impl<T> TryBox<T> {
    /// Move `v` to the heap.
    pub fn try_new(v: T) -> Result<Self> {
        KBox::new(v, GFP_KERNEL).map(TryBox).map_err(|_| Error::NoMem)
    }
}

impl<T> core::ops::Deref for TryBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> core::ops::DerefMut for TryBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// Nanoseconds since the epoch: the coarse wall clock the VFS stamps inodes with.
pub fn now_ns() -> i64 {
    // SAFETY: a plain call without arguments; it reads the kernel's clock.
    unsafe { arborfs_glue_now_ns() }
}

/// CRC-32C with the kernel's `crc32c()` (accelerated where the CPU allows).
pub fn crc32c(data: &[u8]) -> u32 {
    // SAFETY: the pointer and length come from a live slice.
    unsafe { arborfs_glue_crc32c(data.as_ptr(), data.len()) }
}

/// LZ4 block compression with the kernel's lz4.
pub fn lz4_compress(src: &[u8], dst: &mut [u8]) -> Option<usize> {
    // SAFETY: both pointers and lengths come from live slices.
    let n = unsafe { arborfs_glue_lz4_compress(src.as_ptr(), src.len(), dst.as_mut_ptr(), dst.len()) };
    usize::try_from(n).ok().filter(|&n| n > 0)
}

/// LZ4 block decompression into exactly `dst.len()` bytes.
pub fn lz4_decompress(src: &[u8], dst: &mut [u8]) -> Result<()> {
    // SAFETY: both pointers and lengths come from live slices.
    match unsafe { arborfs_glue_lz4_decompress(src.as_ptr(), src.len(), dst.as_mut_ptr(), dst.len()) } {
        0 => Ok(()),
        _ => Err(Error::Corrupt("lz4 payload does not decompress")),
    }
}

/// Zstd compression with the kernel's zstd.
pub fn zstd_compress(src: &[u8], dst: &mut [u8], level: u8) -> Option<usize> {
    let level = i32::from(level);
    // SAFETY: both pointers and lengths come from live slices.
    let n =
        unsafe { arborfs_glue_zstd_compress(src.as_ptr(), src.len(), dst.as_mut_ptr(), dst.len(), level) };
    usize::try_from(n).ok().filter(|&n| n > 0)
}

/// Zstd decompression into exactly `dst.len()` bytes.
pub fn zstd_decompress(src: &[u8], dst: &mut [u8]) -> Result<()> {
    // SAFETY: both pointers and lengths come from live slices.
    match unsafe { arborfs_glue_zstd_decompress(src.as_ptr(), src.len(), dst.as_mut_ptr(), dst.len()) } {
        0 => Ok(()),
        _ => Err(Error::Corrupt("zstd payload does not decompress")),
    }
}

/// One write of [`arborfs_glue_bdev_write_many`], as the glue's
/// `struct arborfs_glue_write`.
#[repr(C)]
struct GlueWrite {
    buf: *const u8,
    len: usize,
    off: u64,
}

// As `struct arborfs_glue_write` asserts on the C side.
const _: () = assert!(core::mem::size_of::<GlueWrite>() == 24);

/// A member block device the VFS opened for the mount, as the glue's
/// `struct arborfs_member *` (the device and its I/O counters); I/O goes
/// through bios in the glue.
pub struct KernelDevice {
    bdev: *mut c_void,
    size: u64,
    index: u8,
}

impl KernelDevice {
    /// Wrap an open block device.
    ///
    /// # Safety
    ///
    /// `bdev` must be the glue's member of a block device that stays open
    /// for as long as the returned value exists.
    pub unsafe fn new(bdev: *mut c_void, size: u64, index: u8) -> Self {
        KernelDevice { bdev, size, index }
    }
}

impl KernelDevice {
    /// A glue call's status (0 or a negative errno) as the engine's result.
    fn status(&self, r: i32, offset: u64) -> Result<()> {
        if r == 0 {
            Ok(())
        } else {
            Err(Error::Io { dev: self.index, offset })
        }
    }
}

impl super::BlockDevice for KernelDevice {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        // SAFETY: `bdev` is open (contract of `new`); `buf` is a live slice.
        self.status(unsafe { arborfs_glue_bdev_read(self.bdev, buf.as_mut_ptr(), buf.len(), offset) }, offset)
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        // SAFETY: as in `read_at`.
        self.status(unsafe { arborfs_glue_bdev_write(self.bdev, buf.as_ptr(), buf.len(), offset) }, offset)
    }

    fn write_many(&mut self, writes: &[(u64, &[u8])]) -> Result<()> {
        let mut v: TryVec<GlueWrite> = TryVec::new();
        v.try_reserve(writes.len())?;
        for &(off, buf) in writes {
            v.try_push(GlueWrite { buf: buf.as_ptr(), len: buf.len(), off })?;
        }
        let first = writes.first().map_or(0, |w| w.0);
        // SAFETY: `bdev` is open (contract of `new`); `v` holds `v.len()`
        // writes whose buffers live (borrowed from `writes`) until the
        // call returns, which it does once every bio has ended.
        self.status(unsafe { arborfs_glue_bdev_write_many(self.bdev, v.as_ptr(), v.len()) }, first)
    }

    fn flush(&mut self) -> Result<()> {
        // SAFETY: `bdev` is open (contract of `new`).
        self.status(unsafe { arborfs_glue_bdev_flush(self.bdev) }, 0)
    }

    fn write_durable(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        self.status(
            // SAFETY: as in `read_at`.
            unsafe { arborfs_glue_bdev_write_durable(self.bdev, buf.as_ptr(), buf.len(), offset) },
            offset,
        )
    }

    fn write_fua(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        self.status(
            // SAFETY: as in `read_at`.
            unsafe { arborfs_glue_bdev_write_fua(self.bdev, buf.as_ptr(), buf.len(), offset) },
            offset,
        )
    }

    /// Asked at each sync: the queue's write cache can be switched on
    /// while mounted (sysfs `queue/write_cache`).
    fn fua_flushes_all(&self) -> bool {
        // SAFETY: `bdev` is open (contract of `new`).
        unsafe { arborfs_glue_bdev_fua_flushes_all(self.bdev) }
    }

    fn discard(&mut self, offset: u64, len: u64) -> Result<()> {
        // SAFETY: `bdev` is open (contract of `new`).
        self.status(unsafe { arborfs_glue_bdev_discard(self.bdev, offset, len) }, offset)
    }
}
