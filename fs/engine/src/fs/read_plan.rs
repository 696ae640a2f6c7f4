//! Reads planned under the engine lock and carried out without it.
//!
//! The kernel's page-cache reads map a range here ([`Fs::plan_read`]: no
//! device I/O unless a b-tree node is not cached), read the member blocks
//! themselves with the lock released, verify them against the extents'
//! chunk checksums ([`ReadPlan::verify`], a pure function), and then ask,
//! under the lock again, whether every bucket read still has the
//! generation it had ([`Fs::finish_read`]). Space is only reused after its
//! bucket is freed, and freeing bumps the generation, so an unchanged
//! generation means the blocks read are the blocks mapped. What cannot be
//! read as whole blocks (inline data, compressed or whole-extent
//! checksummed payloads, partial chunks) is left to the engine, which
//! reads those spans in `finish_read`.

use super::extent::{chunks_verify, Piece};
use super::Fs;
use crate::error::{Error, Result};
use crate::format::alloc_info::DataType;
use crate::format::checksum::ChecksumType;
use crate::format::extent::{Compression, Extent};
use crate::sys::{BlockDevice, TryVec};
use crate::txn::Txn;

/// Where the bytes of one span of a planned read come from.
#[derive(Clone, Copy)]
pub enum SpanSource {
    /// Zeros: a hole or preallocated space.
    Zero,
    /// Whole blocks of member `dev` at byte `offset`, valid while bucket
    /// `bucket` keeps generation `gen`.
    Device {
        /// Member index.
        dev: u8,
        /// Byte offset on the member.
        offset: u64,
        /// Bucket holding the blocks.
        bucket: u64,
        /// Its generation when mapped.
        gen: u32,
        /// The chunk-checksummed extent the blocks belong to, with the index
        /// of the chunk they start at and the file offset the extent starts
        /// at (for the error); none for unchecksummed data.
        check: Option<(usize, u64)>,
    },
    /// Read by the engine in [`Fs::finish_read`].
    Engine,
}

/// One span of a planned read: bytes `[start, start + len)` of the file.
#[derive(Clone, Copy)]
pub struct ReadSpan {
    /// First byte (file offset).
    pub start: u64,
    /// Bytes.
    pub len: u64,
    /// Where they come from.
    pub source: SpanSource,
    /// The extent, for `Device` spans with a check.
    extent: Option<Extent>,
}

/// A read of `[start, start + len)` of inode `ino`, as spans in file order.
pub struct ReadPlan {
    /// The inode.
    pub ino: u64,
    /// First byte.
    pub start: u64,
    /// Bytes (within the file size when planned).
    pub len: u64,
    /// The spans, covering `[start, start + len)` without gaps.
    pub spans: TryVec<ReadSpan>,
}

impl ReadPlan {
    /// An empty plan.
    pub const fn new() -> Self {
        ReadPlan { ino: 0, start: 0, len: 0, spans: TryVec::new() }
    }

    /// Append a span, merging it into the previous one when both are zeros
    /// or both are the engine's.
    fn push(&mut self, start: u64, len: u64, source: SpanSource, extent: Option<Extent>) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        if let Some(last) = self.spans.last_mut() {
            let same = matches!(
                (&last.source, &source),
                (SpanSource::Zero, SpanSource::Zero) | (SpanSource::Engine, SpanSource::Engine)
            );
            if same && last.start + last.len == start {
                last.len += len;
                return Ok(());
            }
        }
        self.spans.try_push(ReadSpan { start, len, source, extent })
    }

    /// Check the chunk checksums of the `Device` spans read into `buf`,
    /// which holds the plan's bytes from its start. Touches nothing but
    /// the plan and `buf`: callable without the engine lock.
    pub fn verify(&self, buf: &[u8]) -> Result<()> {
        for s in self.spans.iter() {
            let (SpanSource::Device { check: Some((first, extent_start)), .. }, Some(e)) =
                (&s.source, &s.extent)
            else {
                continue;
            };
            let from = (s.start - self.start) as usize;
            let bytes = buf.get(from..from + s.len as usize).ok_or(Error::Internal("read plan buffer"))?;
            chunks_verify(e, *first, bytes, self.ino, *extent_start)?;
        }
        Ok(())
    }
}

impl Default for ReadPlan {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: BlockDevice> Fs<D> {
    /// Map up to `len` bytes of `ino` at `off` into `plan`; returns the
    /// bytes planned (short at the file size, 0 at or past it).
    pub fn plan_read(&mut self, ino: u64, off: u64, len: u64, plan: &mut ReadPlan) -> Result<u64> {
        plan.spans.clear();
        plan.ino = ino;
        plan.start = off;
        plan.len = 0;
        self.read_txn(|t| {
            let inode = t.inode_read(ino)?;
            if inode.is_dir() {
                return Err(Error::IsDir);
            }
            if off >= inode.size {
                return Ok(0);
            }
            let end = off + len.min(inode.size - off);
            t.plan_range(ino, off, end, plan)?;
            plan.len = end - off;
            Ok(plan.len)
        })
    }

    /// Finish a plan whose `Device` spans the caller read into `buf` (the
    /// plan's bytes from its start): false if a bucket read has changed
    /// since (the caller reads again), else the `Engine` spans are read
    /// into `buf` and true returned.
    pub fn finish_read(&mut self, plan: &ReadPlan, buf: &mut [u8]) -> Result<bool> {
        for s in plan.spans.iter() {
            if let SpanSource::Device { dev, bucket, gen, .. } = s.source {
                let same = self
                    .alloc
                    .bucket(dev, bucket)
                    .is_some_and(|b| b.gen == gen && b.data_type == DataType::User);
                if !same {
                    return Ok(false);
                }
            }
        }
        if !plan.spans.iter().any(|s| matches!(s.source, SpanSource::Engine)) {
            return Ok(true);
        }
        self.read_txn(|t| {
            for s in plan.spans.iter().filter(|s| matches!(s.source, SpanSource::Engine)) {
                let from = (s.start - plan.start) as usize;
                let dst =
                    buf.get_mut(from..from + s.len as usize).ok_or(Error::Internal("read plan buffer"))?;
                t.read_range(plan.ino, s.start, dst)?;
            }
            Ok(true)
        })
    }
}

impl<D: BlockDevice> Txn<'_, D> {
    /// Plan `[off, end)` of `ino`, extent by extent.
    fn plan_range(&mut self, ino: u64, off: u64, end: u64, plan: &mut ReadPlan) -> Result<()> {
        let mut pos = off;
        let Some(mut c) = self.extents_after(ino, off) else {
            return plan.push(off, end - off, SpanSource::Zero, None);
        };
        while pos < end {
            let Some(fe) = self.next_extent(&mut c)? else { break };
            if fe.start >= end {
                break;
            }
            if fe.start > pos {
                plan.push(pos, fe.start - pos, SpanSource::Zero, None)?;
                pos = fe.start;
            }
            let upto = fe.pos.offset.min(end);
            match &fe.piece {
                Piece::Inline(_) => plan.push(pos, upto - pos, SpanSource::Engine, None)?,
                Piece::Extent(e) => self.plan_extent(fe.start, e, pos, upto, plan)?,
            }
            pos = upto;
        }
        plan.push(pos, end - pos, SpanSource::Zero, None)
    }

    /// Plan bytes `[pos, upto)` of the file from extent `e` (which starts
    /// at file offset `start`): device blocks where they can be read as
    /// they are, the engine's for the rest.
    fn plan_extent(
        &mut self,
        start: u64,
        e: &Extent,
        pos: u64,
        upto: u64,
        plan: &mut ReadPlan,
    ) -> Result<()> {
        if e.is_unwritten() {
            return plan.push(pos, upto - pos, SpanSource::Zero, None);
        }
        let block = self.block();
        let Some(p) = e.ptrs().iter().find(|p| self.fs.alloc.extent_ptr_current(p)) else {
            // Stale or missing pointers: the engine's read reports it.
            return plan.push(pos, upto - pos, SpanSource::Engine, None);
        };
        let Some((bucket, _)) = self.fs.alloc.bucket_of(p.dev, p.offset) else {
            return plan.push(pos, upto - pos, SpanSource::Engine, None);
        };
        let gen = p.gen;
        // Payload offset of `pos`.
        let window = u64::from(e.offset_into) + (pos - start);
        let len = upto - pos;
        let device =
            |w: u64, check| SpanSource::Device { dev: p.dev, offset: p.offset + w, bucket, gen, check };
        if e.compression != Compression::None {
            return plan.push(pos, len, SpanSource::Engine, None);
        }
        if e.csum_type == ChecksumType::None {
            if window.is_multiple_of(block) && len.is_multiple_of(block) {
                return plan.push(pos, len, device(window, None), None);
            }
            return plan.push(pos, len, SpanSource::Engine, None);
        }
        if !e.is_chunked() {
            return plan.push(pos, len, SpanSource::Engine, None);
        }
        // Whole chunks straight from the device, partial ones at either
        // end by the engine (which reads and verifies the whole chunk).
        let chunk = u64::from(e.chunk_bytes());
        let payload = u64::from(e.payload_len);
        let end = window + len;
        if end > payload || chunk == 0 || !chunk.is_multiple_of(block) {
            return plan.push(pos, len, SpanSource::Engine, None);
        }
        let mut whole_from = window.next_multiple_of(chunk);
        let mut whole_to = if end == payload { end } else { end - end % chunk };
        // A short last chunk must still end on a block boundary.
        if !whole_to.is_multiple_of(block) {
            whole_to -= whole_to % chunk;
        }
        if whole_from >= whole_to {
            whole_from = end;
            whole_to = end;
        }
        let at = |w: u64| pos + (w - window);
        plan.push(pos, whole_from - window, SpanSource::Engine, None)?;
        plan.push(
            at(whole_from),
            whole_to - whole_from,
            device(whole_from, Some(((whole_from / chunk) as usize, start))),
            Some(*e),
        )?;
        plan.push(at(whole_to), end - whole_to, SpanSource::Engine, None)
    }
}
