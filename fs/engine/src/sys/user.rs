//! The userspace platform: std allocation, files and block devices, lz4_flex
//! and zstd, the system clock.

extern crate std;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

use super::BlockDevice;
use crate::error::{Error, Result};

/// A vector whose every allocation can fail instead of aborting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryVec<T>(std::vec::Vec<T>);

impl<T> TryVec<T> {
    /// An empty vector.
    pub const fn new() -> Self {
        TryVec(std::vec::Vec::new())
    }

    /// Reserve room for `n` more elements.
    pub fn try_reserve(&mut self, n: usize) -> Result<()> {
        self.0.try_reserve(n).map_err(|_| Error::NoMem)
    }

    /// Append `v`.
    pub fn try_push(&mut self, v: T) -> Result<()> {
        self.try_reserve(1)?;
        self.0.push(v);
        Ok(())
    }

    /// Insert `v` at `idx` (`idx <= len`).
    pub fn try_insert(&mut self, idx: usize, v: T) -> Result<()> {
        if idx > self.0.len() {
            return Err(Error::Internal("insert index out of range"));
        }
        self.try_reserve(1)?;
        self.0.insert(idx, v);
        Ok(())
    }

    /// Remove and return the element at `idx`.
    pub fn remove(&mut self, idx: usize) -> Option<T> {
        if idx < self.0.len() {
            Some(self.0.remove(idx))
        } else {
            None
        }
    }

    /// Remove the last element.
    pub fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }

    /// Keep the first `n` elements.
    pub fn truncate(&mut self, n: usize) {
        self.0.truncate(n);
    }

    /// Remove everything.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl<T: Copy> TryVec<T> {
    /// Append a copy of `s`.
    pub fn try_extend_from_slice(&mut self, s: &[T]) -> Result<()> {
        self.try_reserve(s.len())?;
        self.0.extend_from_slice(s);
        Ok(())
    }
}

impl<T: Clone> TryVec<T> {
    /// Resize to `n`, filling with `v`.
    pub fn try_resize(&mut self, n: usize, v: T) -> Result<()> {
        if n > self.0.len() {
            self.try_reserve(n - self.0.len())?;
        }
        self.0.resize(n, v);
        Ok(())
    }
}

impl<T> Default for TryVec<T> {
    fn default() -> Self {
        TryVec::new()
    }
}

impl<T> core::ops::Deref for TryVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T> core::ops::DerefMut for TryVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

/// A heap value: large structures live here rather than on (kernel) stacks.
#[derive(Debug)]
pub struct TryBox<T>(std::boxed::Box<T>);

impl<T> TryBox<T> {
    /// Move `v` to the heap.
    pub fn try_new(v: T) -> Result<Self> {
        Ok(TryBox(std::boxed::Box::new(v)))
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

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// CRC-32C (Castagnoli) of `data`, with the SSE 4.2 or ARMv8 instruction
/// when the CPU has it.
pub fn crc32c(data: &[u8]) -> u32 {
    ::crc32c::crc32c(data)
}

/// LZ4-compress `src` into `dst` (block format); `None` if it does not fit.
pub fn lz4_compress(src: &[u8], dst: &mut [u8]) -> Option<usize> {
    // lz4_flex wants room for the worst case up front; the caller's buffer is
    // only as large as a worthwhile result, so compress into scratch space.
    let bound = lz4_flex::block::get_maximum_output_size(src.len());
    if dst.len() >= bound {
        return lz4_flex::block::compress_into(src, dst).ok();
    }
    let mut scratch = std::vec![0u8; bound];
    let n = lz4_flex::block::compress_into(src, &mut scratch).ok()?;
    dst.get_mut(..n)?.copy_from_slice(scratch.get(..n)?);
    Some(n)
}

/// LZ4-decompress `src` into exactly `dst.len()` bytes.
pub fn lz4_decompress(src: &[u8], dst: &mut [u8]) -> Result<()> {
    match lz4_flex::block::decompress_into(src, dst) {
        Ok(n) if n == dst.len() => Ok(()),
        _ => Err(Error::Corrupt("lz4 payload does not decompress")),
    }
}

/// Zstd-compress `src` into `dst` at `level`; `None` if it does not fit.
pub fn zstd_compress(src: &[u8], dst: &mut [u8], level: u8) -> Option<usize> {
    let level = i32::from(level);
    zstd::bulk::compress_to_buffer(src, dst, level).ok()
}

/// Zstd-decompress `src` into exactly `dst.len()` bytes.
pub fn zstd_decompress(src: &[u8], dst: &mut [u8]) -> Result<()> {
    match zstd::bulk::decompress_to_buffer(src, dst) {
        Ok(n) if n == dst.len() => Ok(()),
        _ => Err(Error::Corrupt("zstd payload does not decompress")),
    }
}

/// A member device backed by a regular file or a block device.
pub struct FileDevice {
    file: File,
    size: u64,
    dev_index: u8,
    is_block: bool,
}

impl FileDevice {
    /// Open `path` read-write (or read-only). Block devices are opened with
    /// `O_EXCL`, so a mounted device is refused.
    pub fn open(path: &Path, writable: bool) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        let is_blk = meta.file_type().is_block_device();
        let mut opts = OpenOptions::new();
        opts.read(true).write(writable);
        if is_blk {
            opts.custom_flags(nix::libc::O_EXCL);
        }
        let file = opts.open(path)?;
        let size = if is_blk { block_device_size(&file)? } else { meta.len() };
        Ok(FileDevice { file, size, dev_index: 0, is_block: is_blk })
    }

    /// Open `path` read-only without `O_EXCL`: reading a superblock of a
    /// device that is mounted (show-super) needs no exclusive access.
    pub fn open_shared(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        let file = File::open(path)?;
        let is_block = meta.file_type().is_block_device();
        let size = if is_block { block_device_size(&file)? } else { meta.len() };
        Ok(FileDevice { file, size, dev_index: 0, is_block })
    }

    /// Use only the first `size` bytes (mkfs with a size on a larger device).
    pub fn limit_size(&mut self, size: u64) {
        self.size = self.size.min(size);
    }

    /// Wrap an open file (tests).
    pub fn from_file(file: File) -> std::io::Result<Self> {
        let size = file.metadata()?.len();
        Ok(FileDevice { file, size, dev_index: 0, is_block: false })
    }

    /// Set the member index used in error messages.
    pub fn set_index(&mut self, i: u8) {
        self.dev_index = i;
    }
}

fn block_device_size(file: &File) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = file;
    f.seek(SeekFrom::End(0))
}

impl BlockDevice for FileDevice {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.size) {
            return Err(Error::Io { dev: self.dev_index, offset });
        }
        self.file.read_exact_at(buf, offset).map_err(|_| Error::Io { dev: self.dev_index, offset })
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.size) {
            return Err(Error::Io { dev: self.dev_index, offset });
        }
        self.file.write_all_at(buf, offset).map_err(|_| Error::Io { dev: self.dev_index, offset })
    }

    fn flush(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|_| Error::Io { dev: self.dev_index, offset: 0 })
    }

    /// BLKDISCARD on a block device, a punched hole in an image file. A
    /// device or file system that cannot do either is left as it is (a
    /// discard is a hint), and so is a range past the end.
    fn discard(&mut self, offset: u64, len: u64) -> Result<()> {
        use std::os::fd::AsRawFd;
        let Some(len) = offset.checked_add(len).map(|end| end.min(self.size).saturating_sub(offset)) else {
            return Ok(());
        };
        if len == 0 {
            return Ok(());
        }
        if self.is_block {
            nix::ioctl_write_ptr_bad!(blkdiscard, 0x1277, [u64; 2]);
            let range = [offset, len];
            // SAFETY: BLKDISCARD reads two u64s (start, length) from the
            // pointer, which points at `range`, alive for the call; the fd
            // is ours and open.
            let _ = unsafe { blkdiscard(self.file.as_raw_fd(), &range) };
        } else {
            use nix::fcntl::{fallocate, FallocateFlags};
            let (Ok(off), Ok(l)) = (i64::try_from(offset), i64::try_from(len)) else { return Ok(()) };
            let mode = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
            let _ = fallocate(self.file.as_raw_fd(), mode, off, l);
        }
        Ok(())
    }
}

/// A device held in memory (tests and fuzzing).
#[derive(Debug, Clone, Default)]
pub struct MemDevice {
    /// The bytes.
    pub data: std::vec::Vec<u8>,
}

impl MemDevice {
    /// A zeroed device of `size` bytes.
    pub fn new(size: usize) -> Self {
        MemDevice { data: std::vec![0; size] }
    }
}

impl BlockDevice for MemDevice {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let start = usize::try_from(offset).map_err(|_| Error::Io { dev: 0, offset })?;
        let src =
            self.data.get(start..start.saturating_add(buf.len())).ok_or(Error::Io { dev: 0, offset })?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        let start = usize::try_from(offset).map_err(|_| Error::Io { dev: 0, offset })?;
        let dst =
            self.data.get_mut(start..start.saturating_add(buf.len())).ok_or(Error::Io { dev: 0, offset })?;
        dst.copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}
