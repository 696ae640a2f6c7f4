//! Writes planned under the engine lock and carried out without it.
//!
//! The kernel's writeback asks for room for the whole blocks of a run
//! ([`Fs::plan_write`]: an allocation, no device I/O unless a checkpoint is
//! due), writes them and computes their chunk checksums
//! ([`WritePlan::checksum`], a pure function) with the lock released, and
//! then commits the extent under the lock again ([`Fs::commit_write`]) or
//! gives the room up ([`Fs::abort_write`]). The bucket written stays
//! pinned in between: it is not freed, so not reused, whatever else is
//! written, cut or deleted meanwhile. The commit marks data unflushed, so
//! the journal entry that makes the extent durable flushes the blocks
//! first, as for the engine's own writes. Compressed data, images with one
//! checksum per extent, and partial blocks are written by the engine
//! itself ([`Fs::write_back`]).

use super::extent::{chunk_checksums, Placement, MAX_PLAIN_EXTENT};
use super::Fs;
use crate::error::{Error, Result};
use crate::format::checksum::ChecksumType;
use crate::format::extent::{Compression, Extent, ExtentPtr, EXTENT_CHUNKED, MAX_CSUM_CHUNKS};
use crate::sys::BlockDevice;

/// Room for a write of whole blocks, from [`Fs::plan_write`].
pub struct WritePlan {
    /// The inode.
    pub ino: u64,
    /// File offset of the first block.
    pub start: u64,
    /// Bytes placed: whole blocks, perhaps fewer than asked for.
    pub len: u64,
    /// Member to write them to.
    pub dev: u8,
    /// Byte offset on the member.
    pub offset: u64,
    bucket: u64,
    gen: u32,
    csum_type: ChecksumType,
    chunk_shift: u8,
    chunk_csums: [u64; MAX_CSUM_CHUNKS],
    summed: bool,
}

impl WritePlan {
    /// An empty plan.
    pub const fn new() -> Self {
        WritePlan {
            ino: 0,
            start: 0,
            len: 0,
            dev: 0,
            offset: 0,
            bucket: 0,
            gen: 0,
            csum_type: ChecksumType::None,
            chunk_shift: 0,
            chunk_csums: [0; MAX_CSUM_CHUNKS],
            summed: false,
        }
    }

    /// Compute the checksums of `data`, the plan's `len` bytes as written.
    /// Touches nothing but the plan: callable without the engine lock.
    pub fn checksum(&mut self, data: &[u8]) -> Result<()> {
        if data.len() as u64 != self.len {
            return Err(Error::Internal("write plan length"));
        }
        if self.csum_type != ChecksumType::None {
            chunk_checksums(self.csum_type, self.chunk_shift, data, &mut self.chunk_csums)?;
        }
        self.summed = true;
        Ok(())
    }
}

impl Default for WritePlan {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: BlockDevice> Fs<D> {
    /// Room for the whole blocks at the front of a writeback of `len`
    /// bytes at `off` of `ino` into `plan`. False (and nothing allocated)
    /// when the engine must write these bytes itself: compression, one
    /// checksum per extent, an unaligned `off` or less than a block.
    pub fn plan_write(&mut self, ino: u64, off: u64, len: u64, plan: &mut WritePlan) -> Result<bool> {
        self.check_user_writable()?;
        let block = self.block();
        let inode = self.getattr(ino)?.inode;
        if inode.is_dir() {
            return Err(Error::IsDir);
        }
        if !inode.is_reg() {
            return Err(Error::Invalid);
        }
        off.checked_add(len).filter(|&e| e <= i64::MAX as u64).ok_or(Error::TooBig)?;
        let csum_type = self.sb.data_csum;
        if self.compression_for(&inode).0 != Compression::None
            || (csum_type != ChecksumType::None && !self.chunked_csums())
            || !off.is_multiple_of(block)
            || len < block
        {
            return Ok(false);
        }
        let whole = len - len.checked_rem(block).ok_or(Error::Corrupt("block size 0"))?;
        let want = whole.min(MAX_PLAIN_EXTENT).min(self.alloc.min_bucket_size());
        // As `Txn::allocate_data`: data the writer reserved room for may
        // use the reserve, and a checkpoint first frees what awaits one.
        let (dev, offset, got, gen) = self.with_reserve(|fs| {
            if fs.alloc.wants_checkpoint_for(block) {
                fs.checkpoint()?;
            }
            fs.alloc.allocate_data(block, want)
        })?;
        let (bucket, _) =
            self.alloc.bucket_of(dev, offset).ok_or(Error::Internal("allocation outside the buckets"))?;
        self.alloc.pin(dev, bucket)?;
        *plan = WritePlan {
            ino,
            start: off,
            len: got,
            dev,
            offset,
            bucket,
            gen,
            csum_type,
            chunk_shift: self.chunk_shift(),
            chunk_csums: [0; MAX_CSUM_CHUNKS],
            summed: false,
        };
        Ok(true)
    }

    /// Commit a planned write whose blocks the caller wrote and
    /// checksummed: its extent replaces what the range held, and the file
    /// grows to its end. The bucket is unpinned whatever happens.
    pub fn commit_write(&mut self, plan: &WritePlan) -> Result<()> {
        let r = self.commit_planned(plan);
        self.alloc.unpin(plan.dev, plan.bucket)?;
        r
    }

    /// Give up a planned write (its blocks were not written): the room
    /// stays unused and the bucket is unpinned.
    pub fn abort_write(&mut self, plan: &WritePlan) -> Result<()> {
        self.alloc.unpin(plan.dev, plan.bucket)
    }

    fn commit_planned(&mut self, plan: &WritePlan) -> Result<()> {
        if !plan.summed {
            return Err(Error::Internal("write plan committed before its checksums"));
        }
        self.check_user_writable()?;
        // Written outside the engine: the next journal entry flushes it.
        self.data_unflushed = true;
        let len = u32::try_from(plan.len).map_err(|_| Error::Internal("extent size"))?;
        let summed = plan.csum_type != ChecksumType::None;
        let e = Extent {
            flags: if summed { EXTENT_CHUNKED } else { 0 },
            csum_type: plan.csum_type,
            chunk_shift: if summed { plan.chunk_shift } else { 0 },
            chunk_csums: plan.chunk_csums,
            ..Extent::one_copy(ExtentPtr { dev: plan.dev, gen: plan.gen, offset: plan.offset }, len)
        };
        let end = plan.start.checked_add(plan.len).ok_or(Error::TooBig)?;
        let place =
            Placement { size_end: end, keep_size: false, stamp: false, compression: (Compression::None, 0) };
        self.with_reserve(|fs| fs.write_txn(|t| t.replace_range(plan.ino, plan.start, end, Some(e), place)))
    }
}
