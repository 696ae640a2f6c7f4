//! The platform seam: everything the engine needs from its host.
//!
//! The engine never names `std` or the kernel; it uses only what this module
//! exports: a fallible vector ([`TryVec`]), the [`BlockDevice`] trait, a clock,
//! CRC-32C and the compression libraries. Each item has exactly two real
//! implementations, `user` (std) and the kernel's, plus `stub`, a no-alloc
//! stand-in used to prove the engine builds without the `alloc` crate.

#[cfg(feature = "std")]
mod user;
#[cfg(feature = "std")]
pub use user::*;

#[cfg(arborfs_kernel)]
#[path = "../../../kernel/sys.rs"]
mod kernel;
#[cfg(arborfs_kernel)]
pub use kernel::*;

#[cfg(all(not(feature = "std"), not(arborfs_kernel)))]
mod stub;
#[cfg(all(not(feature = "std"), not(arborfs_kernel)))]
pub use stub::*;

use crate::error::Result;
use crate::format::checksum::ChecksumType;

/// Checksum of file data under `t`. CRC-32C comes from the platform (the
/// hardware instruction where the host has one); the other types from the
/// format crate. All give the values the format documents.
pub fn data_checksum(t: ChecksumType, data: &[u8]) -> u64 {
    match t {
        ChecksumType::Crc32c => u64::from(crc32c(data)),
        other => other.compute(data),
    }
}

/// A block device (or image file) addressed in bytes.
///
/// Reads and writes are at least block aligned by the engine. A write is
/// durable only after a later [`BlockDevice::flush`] returns.
pub trait BlockDevice {
    /// Size in bytes.
    fn size(&self) -> u64;
    /// Read exactly `buf.len()` bytes at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// Write all of `buf` at `offset`.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()>;
    /// Write each `(offset, bytes)` of `writes`, in any order: a block
    /// device has them all in flight together and waits once. Returns when
    /// every one completed (or with the first error; the others may or may
    /// not have reached the device).
    fn write_many(&mut self, writes: &[(u64, &[u8])]) -> Result<()> {
        writes.iter().try_for_each(|&(offset, buf)| self.write_at(offset, buf))
    }
    /// Make every completed write durable.
    fn flush(&mut self) -> Result<()>;
    /// Write all of `buf` at `offset` so that it, and every write completed
    /// before it, is durable when this returns. Block devices do it in one
    /// request (a preflush and a FUA write); the default is flush, write,
    /// flush.
    fn write_durable(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        self.flush()?;
        self.write_at(offset, buf)?;
        self.flush()
    }
    /// Write all of `buf` at `offset`, durable when this returns, without
    /// a flush before it (a FUA write). The default is write, flush.
    fn write_fua(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        self.write_at(offset, buf)?;
        self.flush()
    }
    /// Whether [`BlockDevice::write_fua`] also makes every write completed
    /// before it durable: so on a device without a volatile cache, on one
    /// that emulates FUA with a flush after the write, and for the default.
    /// Not so on a device that honours FUA itself.
    fn fua_flushes_all(&self) -> bool {
        true
    }
    /// Tell the device that `len` bytes at `offset` hold nothing anyone will
    /// read (a hint: devices that cannot discard ignore it).
    fn discard(&mut self, _offset: u64, _len: u64) -> Result<()> {
        Ok(())
    }
}
