//! File data: read, write (copy-on-write into buckets, checksummed and
//! optionally compressed), truncate, fallocate, hole punching and SEEK_DATA /
//! SEEK_HOLE.
//!
//! Extents are keyed by their END offset and always cover whole blocks. A
//! write replaces the extents under the blocks it touches in the same
//! transaction that inserts the new extent and updates bucket usage, inode
//! size and counters.

use super::Fs;
use crate::error::{Error, Result};
use crate::format::checksum::ChecksumType;
use crate::format::extent::{
    Compression, Extent, ExtentPtr, EXTENT_CHUNKED, EXTENT_UNWRITTEN, MAX_CSUM_CHUNKS, MAX_ENCODED_PAYLOAD,
};
use crate::format::inode::{Inode, FLAG_COMPR};
use crate::format::superblock::INCOMPAT_CHUNKED_CSUMS;
use crate::format::{round_up, BtreeId, KeyType, Pos, SNAPSHOT_ROOT};
use crate::sys::{self, now_ns, BlockDevice, TryVec};
use crate::txn::{Access, Txn, TxnCursor};

/// fallocate(2): keep the file size.
pub const FALLOC_KEEP_SIZE: u32 = 0x01;
/// fallocate(2): deallocate the range.
pub const FALLOC_PUNCH_HOLE: u32 = 0x02;
/// fallocate(2): remove the range, moving what follows down.
pub const FALLOC_COLLAPSE_RANGE: u32 = 0x08;
/// fallocate(2): zero the range.
pub const FALLOC_ZERO_RANGE: u32 = 0x10;
/// fallocate(2): open a hole, moving what follows up.
pub const FALLOC_INSERT_RANGE: u32 = 0x20;

/// One mapped range of a file ([`Fs::map_extents`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Member and byte offset of `start`'s data (of the stored payload when
    /// it is compressed); none for inline data.
    pub physical: Option<(u8, u64)>,
    /// Preallocated, reads as zeros.
    pub unwritten: bool,
    /// Stored compressed.
    pub encoded: bool,
    /// Stored in the key (symlink targets).
    pub inline: bool,
}

/// Largest uncompressed extent a write makes (unchecksummed, or checksummed
/// per chunk).
pub(super) const MAX_PLAIN_EXTENT: u64 = 1 << 20;
/// Checksum chunk of new extents, as a power of two (at least the block):
/// what a small read of a checksummed file reads and verifies.
const CHUNK_SHIFT: u8 = 15;
/// Extents cut per transaction when deleting or truncating large files.
pub(crate) const CUT_BATCH: usize = 128;

/// The most recently decoded payload (or verified run of chunks), so that
/// sequential reads of a checksummed or compressed extent decode it once.
/// Keyed by device, byte offset of the cached bytes, bucket generation and
/// the checksum of their first chunk or whole payload.
pub struct PayloadCache {
    key: Option<(u8, u64, u32, u64)>,
    data: TryVec<u8>,
}

impl Default for PayloadCache {
    fn default() -> Self {
        Self::new()
    }
}

impl PayloadCache {
    /// Empty.
    pub const fn new() -> Self {
        PayloadCache { key: None, data: TryVec::new() }
    }
}

/// Key of the extent ending at `end`.
pub const fn extent_pos(ino: u64, end: u64) -> Pos {
    Pos::new(ino, end, SNAPSHOT_ROOT)
}

/// One extent key as read from the b-tree.
// An extent with its chunk checksums is a few hundred bytes; it lives on
// the stack for one step of a walk, where boxing it would allocate per key.
#[allow(clippy::large_enum_variant)]
pub(super) enum Piece {
    Extent(Extent),
    Inline(TryVec<u8>),
}

pub(super) struct FileExtent {
    pub(super) pos: Pos,
    pub(super) start: u64,
    pub(super) piece: Piece,
}

/// An extent and where it ends (its key's offset).
type KeyedExtent = (u64, Extent);

/// What [`Txn::extents_cut`] did: the change in charged bytes, whether
/// the range is now free of extents, and the pieces it kept of extents
/// reaching across its ends: `Some(None)` for inline data, `None` when it
/// kept none (a neighbour may still end or start right there).
pub(crate) struct Cut {
    pub(crate) delta: i64,
    done: bool,
    /// Now ending at the range's start.
    front: Option<Option<Extent>>,
    /// Now starting at the range's end, with where it ends.
    back: Option<Option<KeyedExtent>>,
}

/// Where the new extents of a write come from and what they do to the inode.
#[derive(Clone, Copy)]
pub(super) struct Placement {
    /// The file grows to at least this unless `keep_size`.
    pub(super) size_end: u64,
    pub(super) keep_size: bool,
    /// Set mtime and ctime to now.
    pub(super) stamp: bool,
    pub(super) compression: (Compression, u8),
}

impl<D: BlockDevice> Txn<'_, D> {
    /// The first extent of `ino` ending after `off`.
    fn extent_after(&mut self, ino: u64, off: u64) -> Result<Option<FileExtent>> {
        match self.extents_after(ino, off) {
            Some(mut c) => self.next_extent(&mut c),
            None => Ok(None),
        }
    }

    /// Fill `out` with the file's bytes at `off` (holes read as zeros),
    /// ignoring the file size.
    pub(super) fn read_range(&mut self, ino: u64, off: u64, out: &mut [u8]) -> Result<()> {
        let end = off + out.len() as u64;
        let mut pos = off;
        let Some(mut c) = self.extents_after(ino, off) else {
            out.fill(0);
            return Ok(());
        };
        while pos < end {
            let Some(fe) = self.next_extent(&mut c)? else {
                zero(out, pos - off, end - off);
                break;
            };
            if fe.start >= end {
                zero(out, pos - off, end - off);
                break;
            }
            if fe.start > pos {
                zero(out, pos - off, fe.start - off);
                pos = fe.start;
            }
            let upto = fe.pos.offset.min(end);
            let dst = out
                .get_mut((pos - off) as usize..(upto - off) as usize)
                .ok_or(Error::Internal("read range"))?;
            match &fe.piece {
                Piece::Inline(data) => {
                    let s = (pos - fe.start) as usize;
                    dst.copy_from_slice(data.get(s..s + dst.len()).ok_or(Error::Corrupt("inline data"))?);
                }
                Piece::Extent(e) => self.extent_read(ino, fe.start, e, pos - fe.start, dst)?,
            }
            pos = upto;
        }
        Ok(())
    }

    /// Copy bytes `[at, at + dst.len())` of an extent's live range into `dst`.
    fn extent_read(&mut self, ino: u64, start: u64, e: &Extent, at: u64, dst: &mut [u8]) -> Result<()> {
        if e.is_unwritten() {
            dst.fill(0);
            return Ok(());
        }
        let mut last_err = Error::Corrupt("extent without pointers");
        for p in e.ptrs() {
            match self.ptr_read(ino, start, e, p, at, dst) {
                Ok(()) => return Ok(()),
                Err(err) => last_err = err,
            }
        }
        Err(last_err)
    }

    fn ptr_read(
        &mut self,
        ino: u64,
        start: u64,
        e: &Extent,
        p: &ExtentPtr,
        at: u64,
        dst: &mut [u8],
    ) -> Result<()> {
        if !self.fs.alloc.extent_ptr_current(p) {
            return Err(Error::Corrupt("extent pointer is stale or misaligned"));
        }
        let block = self.block();
        let window = u64::from(e.offset_into) + at;
        if e.compression == Compression::None && e.csum_type == ChecksumType::None {
            // Plain data: read just the blocks needed, straight into `dst`
            // when they are whole blocks.
            if window.is_multiple_of(block) && (dst.len() as u64).is_multiple_of(block) {
                return self.fs.read_data(p.dev, p.offset + window, dst);
            }
            let a = window & !(block - 1);
            let b = round_up(window + dst.len() as u64, block).ok_or(Error::Invalid)?;
            let mut tmp = TryVec::new();
            tmp.try_resize((b - a) as usize, 0)?;
            self.fs.read_data(p.dev, p.offset + a, &mut tmp)?;
            let s = (window - a) as usize;
            dst.copy_from_slice(tmp.get(s..s + dst.len()).ok_or(Error::Internal("plain read"))?);
            return Ok(());
        }
        if e.is_chunked() {
            return self.chunks_read(ino, start, e, p, window, dst);
        }
        let key = (p.dev, p.offset, p.gen, e.csum);
        if self.fs.payload.key != Some(key) {
            self.fs.payload.key = None;
            let stored = round_up(u64::from(e.stored_len), block).ok_or(Error::Invalid)? as usize;
            let mut raw = TryVec::new();
            raw.try_resize(stored, 0)?;
            self.fs.read_data(p.dev, p.offset, &mut raw)?;
            decode_payload(e, &raw, &mut self.fs.payload.data, ino, start)?;
            self.fs.payload.key = Some(key);
        }
        let s = window as usize;
        dst.copy_from_slice(
            self.fs.payload.data.get(s..s + dst.len()).ok_or(Error::Corrupt("extent window"))?,
        );
        Ok(())
    }

    /// Copy payload bytes `[window, window + dst.len())` of a chunk-checksummed
    /// extent into `dst`, reading and verifying only the chunks they touch.
    fn chunks_read(
        &mut self,
        ino: u64,
        start: u64,
        e: &Extent,
        p: &ExtentPtr,
        window: u64,
        dst: &mut [u8],
    ) -> Result<()> {
        let shift = u32::from(e.chunk_shift);
        let chunk = u64::from(e.chunk_bytes());
        let payload = u64::from(e.payload_len);
        let end = window + dst.len() as u64;
        if dst.is_empty() || end > payload {
            return Err(Error::Corrupt("extent window"));
        }
        let first = (window >> shift) as usize;
        let last = ((end - 1) >> shift) as usize;
        // Device reads start on a block boundary; chunks written here are at
        // least a block, but a chunk smaller than the block reads its block.
        let block = self.block();
        let run_start = ((first as u64) << shift) & !(block - 1);
        let run_end = (((last + 1) as u64) << shift).min(payload);
        // (`run_start == window` puts the window on a chunk boundary.)
        let whole_chunks = run_start == window
            && (end == payload || end.is_multiple_of(chunk))
            && (dst.len() as u64).is_multiple_of(block);
        if whole_chunks {
            // Whole chunks: read and verified in the caller's buffer.
            self.fs.read_data(p.dev, p.offset + window, dst)?;
            return chunks_verify(e, first, dst, ino, start);
        }
        let first_csum = *e.chunk_csums().get(first).ok_or(Error::Corrupt("extent chunk"))?;
        let key = (p.dev, p.offset + run_start, p.gen, first_csum);
        let cached = self.fs.payload.key == Some(key) && self.fs.payload.data.len() as u64 >= end - run_start;
        if !cached {
            self.fs.payload.key = None;
            // Reuse the cache's buffer; it is only put back once verified.
            let mut data = core::mem::take(&mut self.fs.payload.data);
            data.clear();
            data.try_resize(round_up(run_end - run_start, block).ok_or(Error::Invalid)? as usize, 0)?;
            self.fs.read_data(p.dev, p.offset + run_start, &mut data)?;
            data.truncate((run_end - run_start) as usize);
            let chunks = data.get((((first as u64) << shift) - run_start) as usize..).unwrap_or(&[]);
            chunks_verify(e, first, chunks, ino, start)?;
            self.fs.payload.data = data;
            // Cached bytes must all be verified: not so when the run starts
            // in front of its first chunk.
            if run_start == (first as u64) << shift {
                self.fs.payload.key = Some(key);
            }
        }
        let s = (window - run_start) as usize;
        dst.copy_from_slice(
            self.fs.payload.data.get(s..s + dst.len()).ok_or(Error::Corrupt("extent window"))?,
        );
        Ok(())
    }

    /// Whether new uncompressed checksummed extents carry chunk checksums.
    fn chunked_csums(&self) -> bool {
        self.fs.chunked_csums()
    }

    /// Write one extent's worth of `data` (written at file offset `off`)
    /// starting at the block holding `pos`; returns where the next chunk
    /// starts. Partial first and last blocks are read and merged here, in
    /// the same transaction.
    fn write_chunk(
        &mut self,
        ino: u64,
        pos: u64,
        off: u64,
        data: &[u8],
        stamp: bool,
        comp: (Compression, u8),
    ) -> Result<u64> {
        let block = self.block();
        let end = off + data.len() as u64;
        let (_, max) = self.fs.new_extent_shape(comp);
        let a = pos & !(block - 1);
        let b = round_up(end, block).ok_or(Error::TooBig)?.min(a + max);
        let place = Placement { size_end: b.min(end), keep_size: false, stamp, compression: comp };
        if a >= off && b <= end {
            // Whole blocks of the caller's data: written from where they are.
            let whole = data.get((a - off) as usize..(b - off) as usize).ok_or(Error::Internal("chunk"))?;
            return self.write_extent(ino, a, whole, place);
        }
        let mut buf = TryVec::new();
        buf.try_resize((b - a) as usize, 0)?;
        if a < off {
            let first = buf.get_mut(..block as usize).ok_or(Error::Internal("chunk"))?;
            self.read_range(ino, a, first)?;
        }
        if b > end && b - block >= a && !(a < off && b - block == a) {
            let last = buf.get_mut((b - block - a) as usize..).ok_or(Error::Internal("chunk"))?;
            self.read_range(ino, b - block, last)?;
        }
        let cs = a.max(off);
        let ce = b.min(end);
        buf.get_mut((cs - a) as usize..(ce - a) as usize).ok_or(Error::Internal("chunk"))?.copy_from_slice(
            data.get((cs - off) as usize..(ce - off) as usize).ok_or(Error::Internal("chunk"))?,
        );
        self.write_extent(ino, a, &buf, place)
    }

    /// Encode and write `buf` (block aligned, at file offset `a`) as a new
    /// extent replacing what was there. Returns the file offset after the
    /// last byte placed (a plain extent may get less room than asked).
    fn write_extent(&mut self, ino: u64, a: u64, buf: &[u8], place: Placement) -> Result<u64> {
        let block = self.block();
        let mut compressed = TryVec::new();
        let (comp, n) = encode_payload(place.compression, block, buf, &mut compressed)?;
        let stored = if comp == Compression::None {
            buf
        } else {
            compressed.get(..n).ok_or(Error::Internal("compress"))?
        };
        let csum_type = self.fs.sb.data_csum;
        let chunked = comp == Compression::None && self.chunked_csums();
        // Whether stored whole, for the compression actually used.
        let (whole, _) = self.fs.new_extent_shape((comp, 0));
        let stored_round = round_up(stored.len() as u64, block).ok_or(Error::TooBig)?;
        let (dev, offset, got, gen) = if whole {
            self.allocate_data(stored_round, stored_round)?
        } else {
            self.allocate_data(block, buf.len() as u64)?
        };
        let placed = if whole { buf.len() as u64 } else { got };
        let payload =
            if whole { stored } else { stored.get(..got as usize).ok_or(Error::Internal("alloc"))? };
        let sums = PayloadSums::of(csum_type, chunked.then(|| self.fs.chunk_shift()), payload)?;
        if (payload.len() as u64).is_multiple_of(block) {
            self.fs.write_data(dev, offset, payload)?;
        } else {
            let mut padded = TryVec::new();
            padded.try_resize(stored_round as usize, 0)?;
            padded.get_mut(..payload.len()).ok_or(Error::Internal("pad"))?.copy_from_slice(payload);
            self.fs.write_data(dev, offset, &padded)?;
        }
        let len = u32::try_from(placed).map_err(|_| Error::Internal("extent size"))?;
        let e = sums.apply(Extent {
            compression: comp,
            csum_type,
            stored_len: u32::try_from(payload.len()).map_err(|_| Error::Internal("extent size"))?,
            ..Extent::one_copy(ExtentPtr { dev, gen, offset }, len)
        });
        let new_end = a + placed;
        let place = Placement { size_end: place.size_end.min(new_end), ..place };
        self.replace_range(ino, a, new_end, Some(e), place)?;
        Ok(new_end)
    }

    /// Cut every extent in `[start, end)`, insert `new` (covering exactly
    /// that range) if given, and update bucket usage, the inode's size,
    /// allocated bytes and times (as `place` says) and the counters.
    pub(super) fn replace_range(
        &mut self,
        ino: u64,
        start: u64,
        end: u64,
        new: Option<Extent>,
        place: Placement,
    ) -> Result<()> {
        let mut inode = self.inode_read(ino)?;
        self.replace_extents(ino, &mut inode, start, end, new, place)?;
        self.inode_write(ino, &inode)
    }

    /// Zero `[from, to)` within one block by rewriting that block (if it holds data).
    fn zero_partial(&mut self, ino: u64, from: u64, to: u64) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        let block = self.block();
        let a = from & !(block - 1);
        match self.extent_after(ino, a)? {
            Some(fe) if fe.start < a + block => {}
            _ => return Ok(()),
        }
        let mut buf = TryVec::new();
        buf.try_resize(block as usize, 0)?;
        self.read_range(ino, a, &mut buf)?;
        zero(&mut buf, from - a, to - a);
        let inode = self.inode_read(ino)?;
        let compression = self.fs.compression_for(&inode);
        self.write_extent(
            ino,
            a,
            &buf,
            Placement { size_end: 0, keep_size: true, stamp: true, compression },
        )?;
        Ok(())
    }

    /// Set the inode's size (at least its size with `grow_only`), and its
    /// times to now when `stamp`.
    fn set_size(&mut self, ino: u64, size: u64, grow_only: bool, stamp: bool) -> Result<()> {
        let mut i = self.inode_read(ino)?;
        i.size = if grow_only { i.size.max(size) } else { size };
        if stamp {
            stamp_times(&mut i);
        }
        self.inode_write(ino, &i)
    }

    /// Set the inode's modification and change times to now.
    fn touch(&mut self, ino: u64) -> Result<()> {
        let mut i = self.inode_read(ino)?;
        stamp_times(&mut i);
        self.inode_write(ino, &i)
    }

    /// Re-key extent `fe` so that it ends at `to`.
    fn extent_move(&mut self, ino: u64, fe: &FileExtent, to: u64) -> Result<()> {
        self.delete(BtreeId::Extents, fe.pos)?;
        match &fe.piece {
            Piece::Extent(e) => {
                self.extent_set(ino, to, e)?;
                // A collapse brings pieces of one extent back together.
                self.merge_at(ino, to - u64::from(e.live_len))
            }
            Piece::Inline(d) => self.set(BtreeId::Extents, extent_pos(ino, to), KeyType::InlineData, d),
        }
    }

    /// Join the extent ending at `at` and the one starting there into one
    /// key when they continue each other ([`merged`]), so that files keep
    /// few extents through writes, collapses and inserts.
    fn merge_at(&mut self, ino: u64, at: u64) -> Result<()> {
        let (Some(a), Some((b_end, b))) = self.neighbours(ino, at, at)? else { return Ok(()) };
        let Some(m) = merged(&a, &b, self.fs.alloc.min_bucket_size()) else { return Ok(()) };
        // (Uncompressed: the charge is the live bytes, the same joined.)
        self.delete(BtreeId::Extents, extent_pos(ino, at))?;
        self.extent_set(ino, b_end, &m)
    }

    /// Split the extent across `at` (if any) into the piece before and the
    /// piece after it; returns the charge delta.
    fn extent_split_at(&mut self, ino: u64, at: u64) -> Result<i64> {
        let block = self.block();
        let Some(fe) = self.extent_after(ino, at)? else { return Ok(0) };
        let Piece::Extent(e) = fe.piece else { return Ok(0) };
        if fe.start >= at {
            return Ok(0);
        }
        let e_end = fe.pos.offset;
        self.delete(BtreeId::Extents, fe.pos)?;
        let front = Extent { live_len: (at - fe.start) as u32, ..e };
        let back = Extent {
            live_len: (e_end - at) as u32,
            offset_into: e.offset_into + (at - fe.start) as u32,
            ..e
        };
        self.extent_set(ino, at, &front)?;
        self.extent_set(ino, e_end, &back)?;
        let c = front.charge(block) as i64 + back.charge(block) as i64 - e.charge(block) as i64;
        if c != 0 {
            for p in e.ptrs() {
                self.charge(p.dev, p.offset, c)?;
            }
        }
        Ok(c)
    }
}

impl<D: BlockDevice, A: Access<D>> Txn<'_, D, A> {
    /// [`Txn::replace_range`] on an inode the caller read and writes back
    /// (so that several ranges of one file cost one inode update).
    pub(super) fn replace_extents(
        &mut self,
        ino: u64,
        inode: &mut Inode,
        start: u64,
        end: u64,
        new: Option<Extent>,
        place: Placement,
    ) -> Result<()> {
        let cut = self.extents_cut(ino, start, end, usize::MAX)?;
        let mut delta = cut.delta;
        if let Some(e) = new {
            let c = e.charge(self.block());
            for p in e.ptrs() {
                self.charge(p.dev, p.offset, c as i64)?;
            }
            delta += c as i64;
            self.extent_set_merged(ino, start, end, e, cut.front, cut.back)?;
        }
        inode.alloc_bytes = inode.alloc_bytes.saturating_add_signed(delta);
        if !place.keep_size && place.size_end > inode.size {
            inode.size = place.size_end;
        }
        if place.stamp {
            stamp_times(inode);
        }
        self.account(0, delta);
        Ok(())
    }

    /// Cut at most `max` extents overlapping `[start, end)`.
    pub(crate) fn extents_cut(&mut self, ino: u64, start: u64, end: u64, max: usize) -> Result<Cut> {
        let block = self.block();
        let mut cut = Cut { delta: 0, done: true, front: None, back: None };
        let mut done = 0;
        let Some(mut c) = self.extents_after(ino, start) else { return Ok(cut) };
        // The pieces kept end at `start` (behind the cursor) or where the
        // cut extent ended (its own position, which the cursor has passed).
        while let Some(fe) = self.next_extent(&mut c)? {
            if fe.start >= end {
                return Ok(cut);
            }
            if done == max {
                cut.done = false;
                return Ok(cut);
            }
            done += 1;
            self.delete(BtreeId::Extents, fe.pos)?;
            let e_end = fe.pos.offset;
            match fe.piece {
                Piece::Inline(data) => {
                    if fe.start < start {
                        let keep =
                            data.get(..(start - fe.start) as usize).ok_or(Error::Internal("inline"))?;
                        self.set(BtreeId::Extents, extent_pos(ino, start), KeyType::InlineData, keep)?;
                        cut.front = Some(None);
                    }
                    if e_end > end {
                        let keep = data.get((end - fe.start) as usize..).ok_or(Error::Internal("inline"))?;
                        self.set(BtreeId::Extents, extent_pos(ino, e_end), KeyType::InlineData, keep)?;
                        cut.back = Some(None);
                    }
                }
                Piece::Extent(e) => {
                    let mut ch = -(e.charge(block) as i64);
                    if fe.start < start {
                        let front = Extent { live_len: (start - fe.start) as u32, ..e };
                        self.extent_set(ino, start, &front)?;
                        ch += front.charge(block) as i64;
                        cut.front = Some(Some(front));
                    }
                    if e_end > end {
                        let back = Extent {
                            live_len: (e_end - end) as u32,
                            offset_into: e.offset_into + (end - fe.start) as u32,
                            ..e
                        };
                        self.extent_set(ino, e_end, &back)?;
                        ch += back.charge(block) as i64;
                        cut.back = Some(Some((e_end, back)));
                    }
                    if ch != 0 {
                        for p in e.ptrs() {
                            self.charge(p.dev, p.offset, ch)?;
                        }
                    }
                    cut.delta += ch;
                }
            }
        }
        Ok(cut)
    }

    /// Store extent `e` ending at file offset `end`.
    pub(crate) fn extent_set(&mut self, ino: u64, end: u64, e: &Extent) -> Result<()> {
        let mut buf = [0u8; crate::format::extent::MAX_EXTENT_BYTES];
        let n = e.encode(&mut buf).map_err(|_| Error::Internal("extent encode"))?;
        self.set(BtreeId::Extents, extent_pos(ino, end), KeyType::Extent, buf.get(..n).unwrap_or(&[]))
    }

    /// Store extent `e` of fresh data over `[start, end)` (which holds no
    /// extent), joined with its neighbours where they continue it, as
    /// [`Txn::merge_at`] at both ends would. `front` and `back` are the
    /// neighbours when the caller knows them (the pieces a cut kept: an
    /// inline one cannot join); they are looked up when `None`.
    fn extent_set_merged(
        &mut self,
        ino: u64,
        start: u64,
        end: u64,
        e: Extent,
        front: Option<Option<Extent>>,
        back: Option<Option<KeyedExtent>>,
    ) -> Result<()> {
        // Checksummed or compressed pieces join only pieces of their own
        // payload ([`merged`]), which fresh data has none of.
        if e.csum_type != ChecksumType::None || e.compression != Compression::None {
            return self.extent_set(ino, end, &e);
        }
        let (front, back) = match (front, back) {
            (Some(f), Some(b)) => (f, b),
            (f, b) => {
                let (found_front, found_back) = self.neighbours(ino, start, end)?;
                (f.unwrap_or(found_front), b.unwrap_or(found_back))
            }
        };
        let bucket = self.fs().alloc.min_bucket_size();
        let mut joined = e;
        if let Some(m) = front.and_then(|f| merged(&f, &joined, bucket)) {
            self.delete(BtreeId::Extents, extent_pos(ino, start))?;
            joined = m;
        }
        match back.and_then(|(b_end, b)| Some((b_end, merged(&joined, &b, bucket)?))) {
            // The joined extent takes the back one's key.
            Some((b_end, m)) => self.extent_set(ino, b_end, &m),
            None => self.extent_set(ino, end, &joined),
        }
    }

    /// The extents (not inline data) ending exactly at `start` and starting
    /// exactly at `end` (with where it ends), `[start, end)` holding none:
    /// one cursor finds both.
    fn neighbours(
        &mut self,
        ino: u64,
        start: u64,
        end: u64,
    ) -> Result<(Option<Extent>, Option<KeyedExtent>)> {
        let Some(mut c) = self.extents_after(ino, start.saturating_sub(1)) else { return Ok((None, None)) };
        let mut next = self.next_extent(&mut c)?;
        let mut front = None;
        if let Some(fe) = next.as_ref().filter(|fe| start > 0 && fe.pos.offset == start) {
            if let Piece::Extent(e) = &fe.piece {
                front = Some(*e);
            }
            next = self.next_extent(&mut c)?;
        }
        let back = match next {
            Some(FileExtent { pos, start: s, piece: Piece::Extent(e) }) if s == end => Some((pos.offset, e)),
            _ => None,
        };
        Ok((front, back))
    }
}

impl<D: BlockDevice> Fs<D> {
    pub(super) fn block(&self) -> u64 {
        u64::from(self.sb.block_size)
    }

    /// Read file data from a member.
    pub(crate) fn read_data(&mut self, dev: u8, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.devs
            .get_mut(usize::from(dev))
            .ok_or(Error::Corrupt("extent on a missing device"))?
            .read_at(offset, buf)
    }

    /// Write file data to a member (durable before the next journal entry).
    pub(crate) fn write_data(&mut self, dev: u8, offset: u64, buf: &[u8]) -> Result<()> {
        self.devs.get_mut(usize::from(dev)).ok_or(Error::Internal("device"))?.write_at(offset, buf)?;
        self.note_data_written();
        Ok(())
    }

    /// Whether new uncompressed checksummed extents carry chunk checksums.
    pub(super) fn chunked_csums(&self) -> bool {
        self.sb.incompat & INCOMPAT_CHUNKED_CSUMS != 0 && self.sb.data_csum != ChecksumType::None
    }

    /// How new data compressed as `comp` is stored: whether whole
    /// (compressed, or one checksum over the payload: at most one encoded
    /// payload), and the largest extent a write makes.
    pub(super) fn new_extent_shape(&self, comp: (Compression, u8)) -> (bool, u64) {
        let whole =
            comp.0 != Compression::None || (self.sb.data_csum != ChecksumType::None && !self.chunked_csums());
        let max = if whole {
            u64::from(MAX_ENCODED_PAYLOAD)
        } else if self.sb.data_csum != ChecksumType::None {
            // An extent carries at most MAX_CSUM_CHUNKS chunk checksums.
            MAX_PLAIN_EXTENT.min((MAX_CSUM_CHUNKS as u64) << self.chunk_shift())
        } else {
            MAX_PLAIN_EXTENT
        };
        (whole, max.min(self.alloc.min_bucket_size()))
    }

    /// Bytes a small read of new file data reads and verifies whole: the
    /// checksum chunk of chunked extents (0 when new extents are not
    /// chunked). The kernel reads the page cache around a small read in
    /// these units, since the device read and the checksum cover them
    /// anyway.
    pub fn read_unit(&self) -> u32 {
        if self.chunked_csums() {
            1u32.checked_shl(u32::from(self.chunk_shift())).unwrap_or(0)
        } else {
            0
        }
    }

    /// Chunk of new chunk-checksummed extents, as a power of two: at least a block.
    pub(super) fn chunk_shift(&self) -> u8 {
        CHUNK_SHIFT.max(self.sb.block_size.trailing_zeros() as u8)
    }

    /// Read up to `buf.len()` bytes at `off`; returns the bytes read (short at EOF).
    pub fn read(&mut self, ino: u64, off: u64, buf: &mut [u8]) -> Result<usize> {
        self.read_txn(|t| {
            let len = t.readable_len(ino, off, buf.len() as u64)? as usize;
            if len == 0 {
                return Ok(0);
            }
            let out = buf.get_mut(..len).ok_or(Error::Internal("read buffer"))?;
            t.read_range(ino, off, out)?;
            Ok(len)
        })
    }

    /// Write `data` at `off`, setting mtime and ctime to now; returns the
    /// bytes written.
    pub fn write(&mut self, ino: u64, off: u64, data: &[u8]) -> Result<usize> {
        self.write_stamped(ino, off, data, true)
    }

    /// Write data whose times the caller keeps: the kernel's page-cache
    /// writeback and O_DIRECT. The VFS stamps mtime and ctime when write(2)
    /// or an mmap store happens and hands them over through `write_inode`;
    /// writeback can come after a later utimes(2), so it must not stamp them
    /// again.
    pub fn write_back(&mut self, ino: u64, off: u64, data: &[u8]) -> Result<usize> {
        self.write_stamped(ino, off, data, false)
    }

    fn write_stamped(&mut self, ino: u64, off: u64, data: &[u8], stamp: bool) -> Result<usize> {
        self.check_user_writable()?;
        let inode = self.getattr(ino)?.inode;
        if inode.is_dir() {
            return Err(Error::IsDir);
        }
        if !inode.is_reg() {
            return Err(Error::Invalid);
        }
        let end =
            off.checked_add(data.len() as u64).filter(|&e| e <= i64::MAX as u64).ok_or(Error::TooBig)?;
        let comp = self.compression_for(&inode);
        let mut pos = off;
        while pos < end {
            // Writeback of data the writer reserved room for must not fail
            // for the metadata room that creating files leaves.
            pos =
                self.with_reserve(|fs| fs.write_txn(|t| t.write_chunk(ino, pos, off, data, stamp, comp)))?;
        }
        Ok(data.len())
    }

    /// How new data of `inode` is compressed: the mount's choice, or zstd
    /// for a file marked [`FLAG_COMPR`] where the mount compresses nothing.
    pub(super) fn compression_for(&self, inode: &Inode) -> (Compression, u8) {
        match self.compression {
            (Compression::None, _) if inode.flags & FLAG_COMPR != 0 => (Compression::Zstd, 0),
            c => c,
        }
    }

    /// Remove all extents in `[start, end)` in bounded transactions.
    pub(crate) fn punch_extents(&mut self, ino: u64, start: u64, end: u64) -> Result<()> {
        self.with_reserve(|fs| fs.punch_extents_inner(ino, start, end))
    }

    fn punch_extents_inner(&mut self, ino: u64, start: u64, end: u64) -> Result<()> {
        loop {
            let done = self.write_txn(|t| {
                let Cut { delta, done, .. } = t.extents_cut(ino, start, end, CUT_BATCH)?;
                if delta != 0 {
                    let mut inode = t.inode_read(ino)?;
                    inode.alloc_bytes = inode.alloc_bytes.saturating_add_signed(delta);
                    t.inode_write(ino, &inode)?;
                    t.account(0, delta);
                }
                Ok(done)
            })?;
            if done {
                return Ok(());
            }
        }
    }

    /// Zero `[from, to)` within one block (see [`Txn::zero_partial`]).
    fn zero_partial(&mut self, ino: u64, from: u64, to: u64) -> Result<()> {
        self.write_txn(|t| t.zero_partial(ino, from, to))
    }

    /// Set the file size. Shrinking (or setting the same size) frees what
    /// lies past it, preallocation too; growing leaves a hole and keeps
    /// space preallocated past the old end (as ext4 and xfs do).
    pub(crate) fn truncate(&mut self, ino: u64, size: u64) -> Result<()> {
        let block = self.block();
        let inode = self.getattr(ino)?.inode;
        let shrink = size < inode.size;
        if size <= inode.size && inode.alloc_bytes > 0 {
            let cut_from = round_up(size, block).ok_or(Error::TooBig)?;
            self.punch_extents(ino, cut_from, u64::MAX)?;
        }
        self.write_txn(|t| {
            if shrink && !size.is_multiple_of(block) {
                t.zero_partial(ino, size, round_up(size, block).ok_or(Error::TooBig)?)?;
            }
            t.set_size(ino, size, false, true)
        })
    }

    /// fallocate(2) with `FALLOC_*` flags.
    pub fn fallocate(&mut self, ino: u64, mode: u32, off: u64, len: u64) -> Result<()> {
        self.check_user_writable()?;
        let inode = self.getattr(ino)?.inode;
        if inode.is_dir() {
            return Err(Error::IsDir);
        }
        if !inode.is_reg() {
            return Err(Error::NotPermitted);
        }
        let end = off.checked_add(len).filter(|&e| e <= i64::MAX as u64).ok_or(Error::TooBig)?;
        if len == 0 {
            return Err(Error::Invalid);
        }
        let keep = mode & FALLOC_KEEP_SIZE != 0;
        let block = self.block();
        match mode & !FALLOC_KEEP_SIZE {
            0 => self.preallocate(ino, &inode, off, end, keep),
            FALLOC_PUNCH_HOLE if keep => self.punch_hole(ino, off, end),
            FALLOC_COLLAPSE_RANGE if !keep => self.collapse_range(ino, &inode, off, len),
            FALLOC_INSERT_RANGE if !keep => self.insert_range(ino, &inode, off, len),
            FALLOC_COLLAPSE_RANGE | FALLOC_INSERT_RANGE => Err(Error::Invalid),
            FALLOC_ZERO_RANGE => {
                let end_in = end.min(if keep { inode.size } else { end });
                self.punch_hole(ino, off, end_in.max(off))?;
                let a = round_up(off, block).ok_or(Error::TooBig)?;
                let b = end & !(block - 1);
                if a < b {
                    let now = self.getattr(ino)?.inode;
                    self.preallocate(ino, &now, a, b, true)?;
                }
                if !keep && end > inode.size {
                    self.write_txn(|t| t.set_size(ino, end, true, false))?;
                }
                Ok(())
            }
            _ => Err(Error::Unsupported),
        }
    }

    fn punch_hole(&mut self, ino: u64, off: u64, end: u64) -> Result<()> {
        let block = self.block();
        let a = round_up(off, block).ok_or(Error::TooBig)?;
        let b = end & !(block - 1);
        if end <= a {
            self.zero_partial(ino, off, end)?;
        } else {
            self.zero_partial(ino, off, a)?;
            if b >= a {
                self.zero_partial(ino, b, end)?;
            }
            if a < b {
                self.punch_extents(ino, a, b)?;
            }
        }
        self.write_txn(|t| t.touch(ino))
    }

    /// Reserve space for every hole in `[off, end)` as unwritten extents.
    fn preallocate(&mut self, ino: u64, inode: &Inode, off: u64, end: u64, keep: bool) -> Result<()> {
        let block = self.block();
        let mut pos = off & !(block - 1);
        let stop = round_up(end, block).ok_or(Error::TooBig)?;
        while pos < stop {
            pos = self.write_txn(|t| {
                let hole_end = match t.extent_after(ino, pos)? {
                    Some(fe) if fe.start <= pos => return Ok(fe.pos.offset),
                    Some(fe) => fe.start.min(stop),
                    None => stop,
                };
                let want = (hole_end - pos).min(MAX_PLAIN_EXTENT);
                let size_end = if keep { 0 } else { (pos + want).min(end) };
                let (dev, offset, got, gen) = t.allocate_data(block, want)?;
                let len = u32::try_from(got).map_err(|_| Error::Internal("extent size"))?;
                let e = Extent {
                    flags: EXTENT_UNWRITTEN,
                    ..Extent::one_copy(ExtentPtr { dev, gen, offset }, len)
                };
                let place = Placement {
                    size_end: size_end.min(pos + got),
                    keep_size: keep,
                    stamp: true,
                    compression: (Compression::None, 0),
                };
                t.replace_range(ino, pos, pos + got, Some(e), place)?;
                Ok(pos + got)
            })?;
        }
        if !keep && end > inode.size {
            self.write_txn(|t| t.set_size(ino, end, true, false))?;
        }
        Ok(())
    }

    /// Make the first `len` bytes of `ino` usable as swap space (swapon),
    /// which the kernel then reads and writes in place, past the file
    /// system. Every byte must be in an extent that is neither inline nor
    /// compressed and has one copy, on the first device; anything else is
    /// `Invalid`. The checksums of those extents are dropped, since swap
    /// writes make them wrong, and that is durable on return: after a power
    /// cut nothing finds a stale checksum over swapped-out pages.
    pub fn swap_prepare(&mut self, ino: u64, len: u64) -> Result<()> {
        self.check_user_writable()?;
        if !self.getattr(ino)?.inode.is_reg() {
            return Err(Error::Invalid);
        }
        self.read_txn(|t| {
            let mut pos = 0;
            let Some(mut c) = t.extents_after(ino, 0) else { return Err(Error::Invalid) };
            while pos < len {
                let fe = t.next_extent(&mut c)?.ok_or(Error::Invalid)?;
                let plain = matches!(&fe.piece, Piece::Extent(e)
                    if e.compression == Compression::None && e.ptrs().len() == 1
                        && e.ptrs().first().is_some_and(|p| p.dev == 0));
                if fe.start > pos || !plain {
                    return Err(Error::Invalid);
                }
                pos = fe.pos.offset;
            }
            Ok(())
        })?;
        let mut from = 0;
        while from < len {
            from = self.write_txn(|t| {
                let Some(mut c) = t.extents_after(ino, from) else { return Ok(len) };
                let mut at = from;
                for _ in 0..CUT_BATCH {
                    let Some(fe) = t.next_extent(&mut c)? else { return Ok(len) };
                    if fe.start >= len {
                        return Ok(len);
                    }
                    at = fe.pos.offset;
                    if let Piece::Extent(mut e) = fe.piece {
                        if e.csum_type != ChecksumType::None {
                            e = Extent {
                                flags: e.flags & !EXTENT_CHUNKED,
                                csum_type: ChecksumType::None,
                                csum: 0,
                                chunk_shift: 0,
                                chunk_csums: [0; MAX_CSUM_CHUNKS],
                                ..e
                            };
                            t.extent_set(ino, at, &e)?;
                        }
                    }
                }
                Ok(at)
            })?;
        }
        self.fsync(ino)
    }

    /// lseek(2) SEEK_DATA (`hole == false`) or SEEK_HOLE (`hole == true`).
    pub fn seek(&mut self, ino: u64, off: u64, hole: bool) -> Result<u64> {
        self.read_txn(|t| t.seek(ino, off, hole))
    }

    /// Call `f` with each mapped range of `ino` that ends after `off`, in
    /// order, until it returns false (restore, FIEMAP).
    pub fn map_extents(&mut self, ino: u64, off: u64, f: &mut dyn FnMut(&Mapping) -> bool) -> Result<()> {
        self.read_txn(|t| {
            let Some(mut c) = t.extents_after(ino, off) else { return Ok(()) };
            while let Some(fe) = t.next_extent(&mut c)? {
                let m = match &fe.piece {
                    Piece::Extent(e) => Mapping {
                        start: fe.start,
                        end: fe.pos.offset,
                        physical: e.ptrs().first().map(|p| {
                            // Compressed data has no byte of the file at a fixed place.
                            let at = if e.compression == Compression::None {
                                p.offset.saturating_add(u64::from(e.offset_into))
                            } else {
                                p.offset
                            };
                            (p.dev, at)
                        }),
                        unwritten: e.is_unwritten(),
                        encoded: e.compression != Compression::None,
                        inline: false,
                    },
                    Piece::Inline(_) => Mapping {
                        start: fe.start,
                        end: fe.pos.offset,
                        physical: None,
                        unwritten: false,
                        encoded: false,
                        inline: true,
                    },
                };
                if !f(&m) {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Remove `[off, off + len)` and move the rest of the file down by
    /// `len` (`FALLOC_FL_COLLAPSE_RANGE`): both block aligned, and the range
    /// ends before end of file.
    fn collapse_range(&mut self, ino: u64, inode: &Inode, off: u64, len: u64) -> Result<()> {
        let block = self.block();
        let end = off.checked_add(len).ok_or(Error::TooBig)?;
        if !off.is_multiple_of(block) || !len.is_multiple_of(block) || end >= inode.size {
            return Err(Error::Invalid);
        }
        self.punch_extents(ino, off, end)?;
        // Upwards: every key moves below its old place, and the punched
        // range leaves room, so no key meets another.
        // Once moving, the file is only whole again at the end: the moves
        // may use the room held back, as deleting does.
        self.with_reserve(|fs| {
            let mut from = end;
            loop {
                let more = fs.write_txn(|t| {
                    let Some(mut c) = t.extents_after(ino, from) else { return Ok(false) };
                    for _ in 0..CUT_BATCH {
                        let Some(fe) = t.next_extent(&mut c)? else { return Ok(false) };
                        from = fe.pos.offset;
                        t.extent_move(ino, &fe, fe.pos.offset - len)?;
                    }
                    Ok(true)
                })?;
                if !more {
                    break;
                }
            }
            // The moves left the size alone; it is larger than `end`.
            fs.write_txn(|t| t.set_size(ino, inode.size - len, false, true))
        })
    }

    /// Open a hole `[off, off + len)` and move the file from `off` up by
    /// `len` (`FALLOC_FL_INSERT_RANGE`): both block aligned, `off` inside
    /// the file.
    fn insert_range(&mut self, ino: u64, inode: &Inode, off: u64, len: u64) -> Result<()> {
        let block = self.block();
        if !off.is_multiple_of(block) || !len.is_multiple_of(block) || off >= inode.size {
            return Err(Error::Invalid);
        }
        let size = inode.size.checked_add(len).filter(|&s| s <= i64::MAX as u64).ok_or(Error::TooBig)?;
        // An extent across `off` becomes two, then the size grows, so that
        // everything moved stays inside the file.
        self.write_txn(|t| {
            let delta = t.extent_split_at(ino, off)?;
            let mut i = t.inode_read(ino)?;
            i.alloc_bytes = i.alloc_bytes.saturating_add_signed(delta);
            i.size = size;
            t.inode_write(ino, &i)?;
            t.account(0, delta);
            Ok(())
        })?;
        // Downwards from the end: every key moves above its old place, onto
        // room the keys after it left. Once moving, the file is only whole
        // again at the end: the moves may use the room held back.
        let start = Pos::new(ino, off.saturating_add(1), 0);
        let mut below = Pos::new(ino, u64::MAX, u32::MAX);
        self.with_reserve(|fs| fs.insert_moves(ino, start, &mut below, len))?;
        self.write_txn(|t| t.touch(ino))
    }

    /// The moves of [`Fs::insert_range`], from `below` down to `start`.
    fn insert_moves(&mut self, ino: u64, start: Pos, below: &mut Pos, len: u64) -> Result<()> {
        loop {
            let more = self.write_txn(|t| {
                let mut c = t.cursor(BtreeId::Extents, start, *below);
                let mut val = TryVec::new();
                for _ in 0..CUT_BATCH {
                    let Some((pos, _)) = t.prev(&mut c, &mut val)? else { return Ok(false) };
                    let fe =
                        t.extent_after(ino, pos.offset - 1)?.ok_or(Error::Internal("extent vanished"))?;
                    let to = pos.offset.checked_add(len).ok_or(Error::TooBig)?;
                    t.extent_move(ino, &fe, to)?;
                    match pos.predecessor() {
                        Some(p) => *below = p,
                        None => return Ok(false),
                    }
                }
                Ok(true)
            })?;
            if !more {
                return Ok(());
            }
        }
    }

    /// Make a file's data and metadata durable (fsync, fdatasync).
    pub fn fsync(&mut self, _ino: u64) -> Result<()> {
        self.sync()
    }
}

/// Modification and change time: now.
fn stamp_times(i: &mut Inode) {
    let now = now_ns();
    i.mtime = now;
    i.ctime = now;
}

/// The extent `a` followed by `b` make, when they continue each other:
/// uncompressed, with the same flags and checksum type, and either plain
/// data contiguous on disk within one bucket, or two adjacent windows of
/// one checksummed payload.
fn merged(a: &Extent, b: &Extent, bucket: u64) -> Option<Extent> {
    if a.compression != Compression::None
        || b.compression != Compression::None
        || a.flags != b.flags
        || a.csum_type != b.csum_type
        || a.nr_ptrs != b.nr_ptrs
    {
        return None;
    }
    let live = a.live_len.checked_add(b.live_len)?;
    if a.csum_type == ChecksumType::None {
        for (pa, pb) in a.ptrs().iter().zip(b.ptrs()) {
            let a_end =
                pa.offset.checked_add(u64::from(a.offset_into))?.checked_add(u64::from(a.live_len))?;
            let b_start = pb.offset.checked_add(u64::from(b.offset_into))?;
            let b_end = b_start.checked_add(u64::from(b.live_len))?;
            let same_bucket = pa.offset.checked_div(bucket)? == (b_end - 1) / bucket;
            if pa.dev != pb.dev || pa.gen != pb.gen || a_end != b_start || !same_bucket {
                return None;
            }
        }
        let payload = a.offset_into.checked_add(live)?;
        return Some(Extent { live_len: live, payload_len: payload, stored_len: payload, ..*a });
    }
    let one_payload = a.ptrs() == b.ptrs()
        && a.csum == b.csum
        && a.chunk_shift == b.chunk_shift
        && a.chunk_csums() == b.chunk_csums()
        && a.payload_len == b.payload_len
        && a.stored_len == b.stored_len
        && a.offset_into.checked_add(a.live_len) == Some(b.offset_into);
    one_payload.then_some(Extent { live_len: live, ..*a })
}

/// Compress `buf` as `comp` asks into `out`: the compression used and the
/// stored length. `Compression::None` (asked for, failed, or saving less
/// than a block) means `buf` is stored as it is and `out` is not used.
/// Touches no engine state: the kernel calls it without the engine lock.
pub(super) fn encode_payload(
    comp: (Compression, u8),
    block: u64,
    buf: &[u8],
    out: &mut TryVec<u8>,
) -> Result<(Compression, usize)> {
    let n = match comp.0 {
        Compression::None => None,
        c => {
            out.try_resize(buf.len(), 0)?;
            match c {
                Compression::Lz4 => sys::lz4_compress(buf, out),
                Compression::Zstd => sys::zstd_compress(buf, out, super::options::zstd_level(comp.1)),
                Compression::None => None,
            }
        }
    };
    match n {
        Some(n) if n <= out.len() && round_up(n as u64, block).unwrap_or(u64::MAX) < buf.len() as u64 => {
            Ok((comp.0, n))
        }
        _ => Ok((Compression::None, buf.len())),
    }
}

/// The checksums of a new extent's stored bytes: one per chunk (an
/// uncompressed extent on an image with chunk checksums), or one over
/// them all.
#[derive(Clone, Copy)]
pub(super) struct PayloadSums {
    flags: u8,
    chunk_shift: u8,
    csum: u64,
    chunk_csums: [u64; MAX_CSUM_CHUNKS],
}

impl PayloadSums {
    pub(super) const fn new() -> Self {
        PayloadSums { flags: 0, chunk_shift: 0, csum: 0, chunk_csums: [0; MAX_CSUM_CHUNKS] }
    }

    /// The `csum_type` checksums of `stored`: per chunk of `1 << shift`
    /// bytes when `chunk_shift` is given, else one over all of it.
    pub(super) fn of(csum_type: ChecksumType, chunk_shift: Option<u8>, stored: &[u8]) -> Result<Self> {
        let mut s = Self::new();
        match chunk_shift {
            Some(shift) => {
                chunk_checksums(csum_type, shift, stored, &mut s.chunk_csums)?;
                s.flags = EXTENT_CHUNKED;
                s.chunk_shift = shift;
            }
            None => s.csum = sys::data_checksum(csum_type, stored),
        }
        Ok(s)
    }

    /// `e` carrying these checksums.
    pub(super) fn apply(&self, e: Extent) -> Extent {
        Extent {
            flags: e.flags | self.flags,
            chunk_shift: self.chunk_shift,
            csum: self.csum,
            chunk_csums: self.chunk_csums,
            ..e
        }
    }
}

/// Check and decode the stored bytes `raw` (whole blocks, as read) of an
/// extent stored whole (compressed, or one checksum over it) into `data`,
/// its whole payload. The error names the extent starting at file offset
/// `start` of `ino`. Touches no engine state: the kernel calls it without
/// the engine lock.
pub(super) fn decode_payload(
    e: &Extent,
    raw: &[u8],
    data: &mut TryVec<u8>,
    ino: u64,
    start: u64,
) -> Result<()> {
    let body = raw.get(..e.stored_len as usize).ok_or(Error::Corrupt("extent stored length"))?;
    if sys::data_checksum(e.csum_type, body) != e.csum {
        return Err(Error::DataChecksum { ino, offset: start });
    }
    data.clear();
    data.try_resize(e.payload_len as usize, 0)?;
    match e.compression {
        Compression::None => {
            data.copy_from_slice(raw.get(..e.payload_len as usize).ok_or(Error::Corrupt("extent payload"))?)
        }
        Compression::Lz4 => sys::lz4_decompress(body, data)?,
        Compression::Zstd => sys::zstd_decompress(body, data)?,
    }
    Ok(())
}

/// The checksums (`csum_type`) of `payload` per chunk of `1 << shift`
/// bytes, the last one perhaps short, into `out`.
fn chunk_checksums(
    csum_type: ChecksumType,
    shift: u8,
    payload: &[u8],
    out: &mut [u64; MAX_CSUM_CHUNKS],
) -> Result<()> {
    let chunk = 1usize.checked_shl(u32::from(shift)).ok_or(Error::Internal("chunk size"))?;
    let pieces = payload.chunks(chunk);
    if pieces.len() > MAX_CSUM_CHUNKS {
        return Err(Error::Internal("chunked extent too large"));
    }
    for (c, piece) in out.iter_mut().zip(pieces) {
        *c = sys::data_checksum(csum_type, piece);
    }
    Ok(())
}

/// Check `bytes`, which start at chunk `first` of chunked extent `e` (the
/// last chunk may be short), against the extent's chunk checksums; the
/// error names the extent starting at file offset `start` of `ino`.
pub(super) fn chunks_verify(e: &Extent, first: usize, bytes: &[u8], ino: u64, start: u64) -> Result<()> {
    let wants = e.chunk_csums().get(first..).unwrap_or(&[]);
    let pieces = bytes.chunks(e.chunk_bytes() as usize);
    if pieces.len() > wants.len() {
        return Err(Error::Corrupt("extent chunk"));
    }
    for (piece, want) in pieces.zip(wants) {
        if sys::data_checksum(e.csum_type, piece) != *want {
            return Err(Error::DataChecksum { ino, offset: start });
        }
    }
    Ok(())
}

fn zero(buf: &mut [u8], from: u64, to: u64) {
    if let Some(s) = buf.get_mut(from as usize..to as usize) {
        s.fill(0);
    }
}

impl<D: BlockDevice, A: Access<D>> Txn<'_, D, A> {
    /// lseek(2) SEEK_DATA (`hole == false`) or SEEK_HOLE (`hole == true`) ([`Fs::seek`]).
    pub fn seek(&mut self, ino: u64, off: u64, hole: bool) -> Result<u64> {
        let inode = self.inode_read(ino)?;
        if off >= inode.size {
            return Err(Error::NoSuchOffset);
        }
        let mut pos = off;
        let Some(mut c) = self.extents_after(ino, off) else {
            return if hole { Ok(pos) } else { Err(Error::NoSuchOffset) };
        };
        loop {
            match self.next_extent(&mut c)? {
                Some(fe) if fe.start <= pos => {
                    if !hole {
                        return Ok(pos);
                    }
                    pos = fe.pos.offset;
                    if pos >= inode.size {
                        return Ok(inode.size);
                    }
                }
                Some(fe) => {
                    return if hole {
                        Ok(pos)
                    } else if fe.start < inode.size {
                        Ok(fe.start)
                    } else {
                        Err(Error::NoSuchOffset)
                    };
                }
                None => return if hole { Ok(pos) } else { Err(Error::NoSuchOffset) },
            }
        }
    }

    pub(super) fn block(&self) -> u64 {
        u64::from(self.fs().sb.block_size)
    }

    /// A cursor over the extents of `ino` that end after `off`.
    pub(super) fn extents_after(&self, ino: u64, off: u64) -> Option<TxnCursor> {
        let from = off.checked_add(1)?;
        Some(self.inode_cursor(BtreeId::Extents, ino, from))
    }

    /// The next extent of cursor `c`.
    pub(super) fn next_extent(&mut self, c: &mut TxnCursor) -> Result<Option<FileExtent>> {
        self.next_with(c, |pos, kind, val| {
            let (len, piece) = match kind {
                KeyType::Extent => {
                    let e = Extent::decode(val).map_err(|_| Error::Corrupt("malformed extent"))?;
                    (u64::from(e.live_len), Piece::Extent(e))
                }
                KeyType::InlineData => {
                    let mut data = TryVec::new();
                    data.try_extend_from_slice(val)?;
                    (val.len() as u64, Piece::Inline(data))
                }
                _ => return Err(Error::Corrupt("unexpected key in the extents b-tree")),
            };
            let start = pos.offset.checked_sub(len).ok_or(Error::Corrupt("extent starts before offset 0"))?;
            Ok(FileExtent { pos, start, piece })
        })
    }

    /// Bytes of `ino` a read of `len` at `off` returns: short at the file
    /// size, 0 at or past it; directories are refused.
    pub(super) fn readable_len(&mut self, ino: u64, off: u64, len: u64) -> Result<u64> {
        let inode = self.inode_read(ino)?;
        if inode.is_dir() {
            return Err(Error::IsDir);
        }
        Ok(if off >= inode.size { 0 } else { len.min(inode.size - off) })
    }
}
