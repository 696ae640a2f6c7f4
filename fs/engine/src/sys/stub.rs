//! A platform with no allocator and no devices. It exists so that
//! `cargo check --no-default-features` proves the engine uses nothing beyond
//! `core` and this seam, as the kernel build requires. Every allocation fails.

use crate::error::{Error, Result};
use core::marker::PhantomData;

/// A vector that can never hold anything: every allocation fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryVec<T>(PhantomData<T>);

impl<T> TryVec<T> {
    /// An empty vector.
    pub const fn new() -> Self {
        TryVec(PhantomData)
    }
    /// Always fails.
    pub fn try_reserve(&mut self, _n: usize) -> Result<()> {
        Err(Error::NoMem)
    }
    /// Always fails.
    pub fn try_push(&mut self, _v: T) -> Result<()> {
        Err(Error::NoMem)
    }
    /// Always fails.
    pub fn try_insert(&mut self, _idx: usize, _v: T) -> Result<()> {
        Err(Error::NoMem)
    }
    /// Nothing to remove.
    pub fn remove(&mut self, _idx: usize) -> Option<T> {
        None
    }
    /// Nothing to pop.
    pub fn pop(&mut self) -> Option<T> {
        None
    }
    /// No-op.
    pub fn truncate(&mut self, _n: usize) {}
    /// No-op.
    pub fn clear(&mut self) {}
}

impl<T: Copy> TryVec<T> {
    /// Always fails.
    pub fn try_extend_from_slice(&mut self, _s: &[T]) -> Result<()> {
        Err(Error::NoMem)
    }
}

impl<T: Clone> TryVec<T> {
    /// Always fails.
    pub fn try_resize(&mut self, _n: usize, _v: T) -> Result<()> {
        Err(Error::NoMem)
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
        &[]
    }
}

impl<T> core::ops::DerefMut for TryVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut []
    }
}

/// A value that would live on the heap; the stub cannot allocate, so
/// `try_new` always fails (the value is kept inline only to type-check).
pub struct TryBox<T>(T);

impl<T> TryBox<T> {
    /// Always fails.
    pub fn try_new(_v: T) -> Result<Self> {
        Err(Error::NoMem)
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

/// Always the epoch.
pub fn now_ns() -> i64 {
    0
}
/// The format crate's portable CRC-32C.
pub fn crc32c(data: &[u8]) -> u32 {
    crate::format::checksum::crc32c(data)
}
/// Never compresses.
pub fn lz4_compress(_src: &[u8], _dst: &mut [u8]) -> Option<usize> {
    None
}
/// Always fails.
pub fn lz4_decompress(_src: &[u8], _dst: &mut [u8]) -> Result<()> {
    Err(Error::Unsupported)
}
/// Never compresses.
pub fn zstd_compress(_src: &[u8], _dst: &mut [u8], _level: u8) -> Option<usize> {
    None
}
/// Always fails.
pub fn zstd_decompress(_src: &[u8], _dst: &mut [u8]) -> Result<()> {
    Err(Error::Unsupported)
}
