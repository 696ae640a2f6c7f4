//! Reads planned under the engine lock and carried out without it.
//!
//! The kernel's page-cache reads map a range here ([`Fs::plan_read`]: no
//! device I/O unless a b-tree node is not cached), read the member blocks
//! themselves with the lock released (whole blocks, and for checksummed
//! data whole chunks, into a bounce buffer where they reach past the
//! span), verify them against the extents' chunk checksums
//! ([`ReadPlan::verify_span`], a pure function), and then ask,
//! under the lock again, whether every bucket read still has the
//! generation it had ([`Fs::finish_read`]). Space is only reused after its
//! bucket is freed, and freeing bumps the generation, so an unchanged
//! generation means the blocks read are the blocks mapped. Extents stored
//! whole (compressed, or one checksum over the payload) are read whole by
//! the caller too and checked and decoded with the plan alone
//! ([`ReadPlan::decode_span`]). What cannot be read from the device (inline
//! data, stale pointers) is left to the engine, which reads those spans in
//! `finish_read`.

use super::extent::{chunks_verify, decode_payload, Piece};
use super::Fs;
use crate::error::{Error, Result};
use crate::format::alloc_info::DataType;
use crate::format::checksum::ChecksumType;
use crate::format::extent::{Compression, Extent, MAX_ENCODED_PAYLOAD};
use crate::format::round_up;
use crate::sys::{BlockDevice, TryVec};
use crate::txn::{Access, Txn};

/// Where the bytes of one span of a planned read come from.
#[derive(Clone, Copy)]
pub enum SpanSource {
    /// Zeros: a hole or preallocated space.
    Zero,
    /// Member blocks: `dev_len` bytes (whole blocks) of member `dev` at
    /// byte `offset`, of which the span's bytes start `skip` bytes in;
    /// valid while bucket `bucket` keeps generation `gen`. When `dev_len`
    /// is the span's length and `skip` 0 they can be read in place.
    Device {
        /// Member index.
        dev: u8,
        /// Byte offset on the member of the first byte to read.
        offset: u64,
        /// Bytes to read.
        dev_len: u64,
        /// Bytes read in front of the span's first.
        skip: u64,
        /// Bucket holding the blocks.
        bucket: u64,
        /// Its generation when mapped.
        gen: u32,
        /// For a chunk-checksummed extent: the chunk the bytes read start
        /// at, how many of them the checksums cover (the rest is block
        /// padding), and the file offset the extent starts at (for the
        /// error); none for unchecksummed data.
        check: Option<(usize, u64, u64)>,
    },
    /// An extent stored whole: its `dev_len` stored bytes (whole blocks) of
    /// member `dev` at byte `offset`, valid while bucket `bucket` keeps
    /// generation `gen`, to be checked and decoded with
    /// [`ReadPlan::decode_span`]; the span's bytes start `window` bytes
    /// into the decoded payload of the extent starting at file offset
    /// `extent_start`.
    Encoded {
        /// Member index.
        dev: u8,
        /// Byte offset on the member of the stored bytes.
        offset: u64,
        /// Bytes to read.
        dev_len: u64,
        /// Offset of the span's first byte in the decoded payload.
        window: u64,
        /// Bucket holding the blocks.
        bucket: u64,
        /// Its generation when mapped.
        gen: u32,
        /// File offset the extent starts at (for the error).
        extent_start: u64,
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
    /// The extent, for `Device` spans with a check and `Encoded` spans.
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

    /// Whether some span is the engine's to read ([`SpanSource::Engine`]).
    pub fn needs_engine(&self) -> bool {
        self.spans.iter().any(|s| matches!(s.source, SpanSource::Engine))
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

    /// Check span `i`'s bytes as read from the member (all `dev_len` of
    /// them) against its extent's chunk checksums; a span without them
    /// passes. Touches nothing but the plan and `read`: callable without
    /// the engine lock.
    pub fn verify_span(&self, i: usize, read: &[u8]) -> Result<()> {
        let s = self.spans.get(i).ok_or(Error::Internal("read plan span"))?;
        let (SpanSource::Device { check: Some((first, covered, extent_start)), .. }, Some(e)) =
            (&s.source, &s.extent)
        else {
            return Ok(());
        };
        let bytes = read.get(..*covered as usize).ok_or(Error::Internal("read plan buffer"))?;
        chunks_verify(e, *first, bytes, self.ino, *extent_start)
    }

    /// Check and decode `Encoded` span `i` from its stored bytes as read
    /// (all `dev_len` of them) into `out`, the span's bytes. Touches
    /// nothing but the plan, `raw` and `out`: callable without the engine
    /// lock.
    pub fn decode_span(&self, i: usize, raw: &[u8], out: &mut [u8]) -> Result<()> {
        let s = self.spans.get(i).ok_or(Error::Internal("read plan span"))?;
        let (SpanSource::Encoded { window, extent_start, .. }, Some(e)) = (&s.source, &s.extent) else {
            return Err(Error::Internal("read plan span is not encoded"));
        };
        if out.len() as u64 != s.len {
            return Err(Error::Internal("read plan buffer"));
        }
        let mut data = TryVec::new();
        decode_payload(e, raw, &mut data, self.ino, *extent_start)?;
        let from = *window as usize;
        out.copy_from_slice(data.get(from..from + out.len()).ok_or(Error::Corrupt("extent window"))?);
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
        self.read_txn(|t| t.plan_read(ino, off, len, plan))
    }

    /// Finish a plan whose `Device` and `Encoded` spans the caller read into `buf` (the
    /// plan's bytes from its start): false if a bucket read has changed
    /// since (the caller reads again), else the `Engine` spans are read
    /// into `buf` and true returned.
    pub fn finish_read(&mut self, plan: &ReadPlan, buf: &mut [u8]) -> Result<bool> {
        if !self.plan_current(plan) {
            return Ok(false);
        }
        if !plan.needs_engine() {
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

    /// Whether every bucket the plan reads still holds what it held when
    /// planned: same generation, still file data. Space is reused only
    /// after its bucket is freed, and freeing bumps the generation.
    pub fn plan_current(&self, plan: &ReadPlan) -> bool {
        plan.spans.iter().all(|s| match s.source {
            SpanSource::Device { dev, bucket, gen, .. } | SpanSource::Encoded { dev, bucket, gen, .. } => {
                self.alloc.bucket(dev, bucket).is_some_and(|b| b.gen == gen && b.data_type == DataType::User)
            }
            _ => true,
        })
    }
}

impl<D: BlockDevice, A: Access<D>> Txn<'_, D, A> {
    /// Map `len` bytes at `off` of `ino` into `plan` ([`Fs::plan_read`]).
    pub fn plan_read(&mut self, ino: u64, off: u64, len: u64, plan: &mut ReadPlan) -> Result<u64> {
        plan.spans.clear();
        plan.ino = ino;
        plan.start = off;
        plan.len = 0;
        let n = self.readable_len(ino, off, len)?;
        if n == 0 {
            return Ok(0);
        }
        let end = off + n;
        self.plan_range(ino, off, end, plan)?;
        plan.len = end - off;
        Ok(plan.len)
    }

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
        let Some(p) = e.ptrs().iter().find(|p| self.fs().alloc.extent_ptr_current(p)) else {
            // Stale or missing pointers: the engine's read reports it.
            return plan.push(pos, upto - pos, SpanSource::Engine, None);
        };
        let Some((bucket, _)) = self.fs().alloc.bucket_of(p.dev, p.offset) else {
            return plan.push(pos, upto - pos, SpanSource::Engine, None);
        };
        let gen = p.gen;
        // Payload offset of `pos`.
        let window = u64::from(e.offset_into) + (pos - start);
        let len = upto - pos;
        let end = window + len;
        let payload = u64::from(e.payload_len);
        if end > payload {
            return plan.push(pos, len, SpanSource::Engine, None);
        }
        if e.compression != Compression::None || (e.csum_type != ChecksumType::None && !e.is_chunked()) {
            // Stored whole: read whole, checked and decoded by the caller.
            if e.stored_len == 0 || e.stored_len > MAX_ENCODED_PAYLOAD || e.payload_len > MAX_ENCODED_PAYLOAD
            {
                return plan.push(pos, len, SpanSource::Engine, None);
            }
            let dev_len = round_up(u64::from(e.stored_len), block).ok_or(Error::Invalid)?;
            let source = SpanSource::Encoded {
                dev: p.dev,
                offset: p.offset,
                dev_len,
                window,
                bucket,
                gen,
                extent_start: start,
            };
            return plan.push(pos, len, source, Some(*e));
        }
        // The blocks (and for checksummed data the chunks) around the span.
        let (from, to, check, extent) = if e.csum_type == ChecksumType::None {
            (window & !(block - 1), end, None, None)
        } else {
            let chunk = u64::from(e.chunk_bytes());
            if chunk == 0 || !chunk.is_multiple_of(block) {
                return plan.push(pos, len, SpanSource::Engine, None);
            }
            let first = window / chunk;
            let to = ((end - 1) / chunk + 1).saturating_mul(chunk).min(payload);
            let from = first * chunk;
            (from, to, Some((first as usize, to - from, start)), Some(*e))
        };
        let dev_len = round_up(to, block).ok_or(Error::Invalid)? - from;
        let source = SpanSource::Device {
            dev: p.dev,
            offset: p.offset + from,
            dev_len,
            skip: window - from,
            bucket,
            gen,
            check,
        };
        plan.push(pos, len, source, extent)
    }
}
