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
    Compression, Extent, ExtentPtr, EXTENT_UNWRITTEN, MAX_ENCODED_PAYLOAD, MAX_PTRS,
};
use crate::format::inode::{Inode, FLAG_COMPR};
use crate::format::{round_up, BtreeId, KeyType, Pos, SNAPSHOT_ROOT};
use crate::sys::{self, now_ns, BlockDevice, TryVec};

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

/// Largest uncompressed, unchecksummed extent a write makes.
const MAX_PLAIN_EXTENT: u64 = 1 << 20;
/// Extents cut per transaction when deleting or truncating large files.
const CUT_BATCH: usize = 128;

/// The most recently decoded payload, so that sequential reads of a
/// checksummed or compressed extent decode it once.
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
enum Piece {
    Extent(Extent),
    Inline(TryVec<u8>),
}

struct FileExtent {
    pos: Pos,
    start: u64,
    piece: Piece,
}

impl<D: BlockDevice> Fs<D> {
    fn block(&self) -> u64 {
        u64::from(self.sb.block_size)
    }

    /// The first extent of `ino` ending after `off`.
    fn extent_after(&mut self, ino: u64, off: u64) -> Result<Option<FileExtent>> {
        let mut val = TryVec::new();
        let Some(from) = off.checked_add(1) else { return Ok(None) };
        let Some((pos, kind)) =
            self.peek(BtreeId::Extents, Pos::new(ino, from, 0), Pos::new(ino, u64::MAX, u32::MAX), &mut val)?
        else {
            return Ok(None);
        };
        let (len, piece) = match kind {
            KeyType::Extent => {
                let e = Extent::decode(&val).map_err(|_| Error::Corrupt("malformed extent"))?;
                (u64::from(e.live_len), Piece::Extent(e))
            }
            KeyType::InlineData => (val.len() as u64, Piece::Inline(val)),
            _ => return Err(Error::Corrupt("unexpected key in the extents b-tree")),
        };
        let start = pos.offset.checked_sub(len).ok_or(Error::Corrupt("extent starts before offset 0"))?;
        Ok(Some(FileExtent { pos, start, piece }))
    }

    /// Read up to `buf.len()` bytes at `off`; returns the bytes read (short at EOF).
    pub fn read(&mut self, ino: u64, off: u64, buf: &mut [u8]) -> Result<usize> {
        let inode = self.inode_read(ino)?;
        if inode.is_dir() {
            return Err(Error::IsDir);
        }
        if off >= inode.size {
            return Ok(0);
        }
        let len = (buf.len() as u64).min(inode.size - off) as usize;
        let out = buf.get_mut(..len).ok_or(Error::Internal("read buffer"))?;
        self.read_range(ino, off, out)?;
        Ok(len)
    }

    /// Fill `out` with the file's bytes at `off` (holes read as zeros),
    /// ignoring the file size.
    fn read_range(&mut self, ino: u64, off: u64, out: &mut [u8]) -> Result<()> {
        let end = off + out.len() as u64;
        let mut pos = off;
        while pos < end {
            let Some(fe) = self.extent_after(ino, pos)? else {
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
        let (b, _) = self.bucket_of(p.dev, p.offset).ok_or(Error::Corrupt("extent on a missing device"))?;
        if self.bucket(p.dev, b).is_none_or(|bk| bk.gen != p.gen) {
            return Err(Error::Corrupt("extent pointer is stale (bucket generation differs)"));
        }
        let block = self.block();
        let window = u64::from(e.offset_into) + at;
        if e.compression == Compression::None && e.csum_type == ChecksumType::None {
            // Plain data: read just the blocks needed.
            let a = window & !(block - 1);
            let b = round_up(window + dst.len() as u64, block).ok_or(Error::Invalid)?;
            let mut tmp = TryVec::new();
            tmp.try_resize((b - a) as usize, 0)?;
            self.devs
                .get_mut(usize::from(p.dev))
                .ok_or(Error::Corrupt("device"))?
                .read_at(p.offset + a, &mut tmp)?;
            let s = (window - a) as usize;
            dst.copy_from_slice(tmp.get(s..s + dst.len()).ok_or(Error::Internal("plain read"))?);
            return Ok(());
        }
        let key = (p.dev, p.offset, p.gen, e.csum);
        if self.payload.key != Some(key) {
            self.payload.key = None;
            let stored = round_up(u64::from(e.stored_len), block).ok_or(Error::Invalid)? as usize;
            let mut raw = TryVec::new();
            raw.try_resize(stored, 0)?;
            self.devs
                .get_mut(usize::from(p.dev))
                .ok_or(Error::Corrupt("device"))?
                .read_at(p.offset, &mut raw)?;
            let body = raw.get(..e.stored_len as usize).ok_or(Error::Internal("payload"))?;
            if sys::data_checksum(e.csum_type, body) != e.csum {
                return Err(Error::DataChecksum { ino, offset: start });
            }
            let data = &mut self.payload.data;
            data.clear();
            data.try_resize(e.payload_len as usize, 0)?;
            match e.compression {
                Compression::None => {
                    data.copy_from_slice(raw.get(..e.payload_len as usize).ok_or(Error::Internal("payload"))?)
                }
                Compression::Lz4 => sys::lz4_decompress(body, data)?,
                Compression::Zstd => sys::zstd_decompress(body, data)?,
            }
            self.payload.key = Some(key);
        }
        let s = window as usize;
        dst.copy_from_slice(self.payload.data.get(s..s + dst.len()).ok_or(Error::Corrupt("extent window"))?);
        Ok(())
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
        let inode = self.inode_read(ino)?;
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
            pos = self.write_chunk(ino, pos, off, data, stamp, comp)?;
        }
        Ok(data.len())
    }

    /// How new data of `inode` is compressed: the mount's choice, or zstd
    /// for a file marked [`FLAG_COMPR`] where the mount compresses nothing.
    fn compression_for(&self, inode: &Inode) -> (Compression, u8) {
        match self.compression {
            (Compression::None, _) if inode.flags & FLAG_COMPR != 0 => (Compression::Zstd, 0),
            c => c,
        }
    }

    /// Write one extent's worth starting at the block holding `pos`; returns
    /// where the next chunk starts.
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
        let bucket = self.min_bucket_size();
        let encoded = self.sb.data_csum != ChecksumType::None || comp.0 != Compression::None;
        let max =
            if encoded { u64::from(MAX_ENCODED_PAYLOAD).min(bucket) } else { MAX_PLAIN_EXTENT.min(bucket) };
        let a = pos & !(block - 1);
        let b = round_up(end, block).ok_or(Error::TooBig)?.min(a + max);
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
        let inode_size_end = ce;
        self.write_extent(ino, a, &buf, inode_size_end, false, stamp, comp)
    }

    /// Encode and write `buf` (block aligned, at file offset `a`) as new
    /// extents replacing what was there; the file grows to at least `size_end`
    /// unless `keep_size`; `stamp` sets mtime and ctime to now. Returns the
    /// file offset after the last byte placed.
    #[allow(clippy::too_many_arguments)]
    fn write_extent(
        &mut self,
        ino: u64,
        a: u64,
        buf: &[u8],
        size_end: u64,
        keep_size: bool,
        stamp: bool,
        compression: (Compression, u8),
    ) -> Result<u64> {
        let block = self.block();
        let mut compressed = TryVec::new();
        let (comp, stored): (Compression, &[u8]) = match compression.0 {
            Compression::None => (Compression::None, buf),
            c => {
                compressed.try_resize(buf.len(), 0)?;
                let level = compression.1;
                let n = match c {
                    Compression::Lz4 => sys::lz4_compress(buf, &mut compressed),
                    Compression::Zstd => sys::zstd_compress(buf, &mut compressed, level),
                    Compression::None => None,
                };
                match n {
                    Some(n) if round_up(n as u64, block).unwrap_or(u64::MAX) < buf.len() as u64 => {
                        (c, compressed.get(..n).ok_or(Error::Internal("compress"))?)
                    }
                    _ => (Compression::None, buf),
                }
            }
        };
        let csum_type = self.sb.data_csum;
        let whole = comp != Compression::None || csum_type != ChecksumType::None;
        let stored_round = round_up(stored.len() as u64, block).ok_or(Error::TooBig)?;
        self.in_txn(|fs| {
            let (dev, offset, got, gen) = if whole {
                fs.alloc_data(stored_round, stored_round)?
            } else {
                fs.alloc_data(block, buf.len() as u64)?
            };
            let placed = if whole { buf.len() as u64 } else { got };
            let payload =
                if whole { stored } else { stored.get(..got as usize).ok_or(Error::Internal("alloc"))? };
            let csum = sys::data_checksum(csum_type, payload);
            let dst = fs.devs.get_mut(usize::from(dev)).ok_or(Error::Internal("device"))?;
            if (payload.len() as u64).is_multiple_of(block) {
                dst.write_at(offset, payload)?;
            } else {
                let mut padded = TryVec::new();
                padded.try_resize(stored_round as usize, 0)?;
                padded.get_mut(..payload.len()).ok_or(Error::Internal("pad"))?.copy_from_slice(payload);
                dst.write_at(offset, &padded)?;
            }
            fs.data_unflushed = true;
            let mut ptrs = [ExtentPtr::default(); MAX_PTRS];
            ptrs[0] = ExtentPtr { dev, gen, offset };
            let e = Extent {
                flags: 0,
                compression: comp,
                csum_type,
                live_len: u32::try_from(placed).map_err(|_| Error::Internal("extent size"))?,
                payload_len: u32::try_from(placed).map_err(|_| Error::Internal("extent size"))?,
                stored_len: u32::try_from(payload.len()).map_err(|_| Error::Internal("extent size"))?,
                offset_into: 0,
                csum,
                nr_ptrs: 1,
                ptrs,
            };
            let new_end = a + placed;
            let size_end = size_end.min(new_end);
            fs.replace_range(ino, a, new_end, Some(e), size_end, keep_size, stamp)?;
            Ok(new_end)
        })
    }

    /// Inside a transaction: cut every extent in `[start, end)`, insert `new`
    /// (covering exactly that range) if given, and update bucket usage, the
    /// inode's size (to at least `size_end` unless `keep_size`), allocated
    /// bytes, the times (if `stamp`) and the counters.
    #[allow(clippy::too_many_arguments)]
    fn replace_range(
        &mut self,
        ino: u64,
        start: u64,
        end: u64,
        new: Option<Extent>,
        size_end: u64,
        keep_size: bool,
        stamp: bool,
    ) -> Result<()> {
        let mut inode = self.inode_read(ino)?;
        let (mut delta, _) = self.extents_cut(ino, start, end, usize::MAX)?;
        if let Some(e) = new {
            self.extent_set(ino, end, &e)?;
            let c = e.charge(self.block());
            for p in e.ptrs() {
                self.bucket_charge(p.dev, p.offset, c as i64)?;
            }
            delta += c as i64;
        }
        inode.alloc_bytes = inode.alloc_bytes.saturating_add_signed(delta);
        if !keep_size && size_end > inode.size {
            inode.size = size_end;
        }
        if stamp {
            let now = now_ns();
            inode.mtime = now;
            inode.ctime = now;
        }
        self.inode_write(ino, &inode)?;
        self.journal_accounting(0, delta)
    }

    /// Inside a transaction: store extent `e` ending at file offset `end`.
    pub(crate) fn extent_set(&mut self, ino: u64, end: u64, e: &Extent) -> Result<()> {
        let mut buf =
            [0u8; crate::format::extent::EXTENT_HEADER_BYTES + crate::format::extent::PTR_BYTES * MAX_PTRS];
        let n = e.encode(&mut buf).map_err(|_| Error::Internal("extent encode"))?;
        self.btree_set(BtreeId::Extents, extent_pos(ino, end), KeyType::Extent, buf.get(..n).unwrap_or(&[]))
    }

    /// Inside a transaction: cut at most `max` extents overlapping
    /// `[start, end)`. Returns the change in charged bytes and whether the
    /// range is now free of extents.
    fn extents_cut(&mut self, ino: u64, start: u64, end: u64, max: usize) -> Result<(i64, bool)> {
        let block = self.block();
        let mut delta = 0i64;
        let mut done = 0;
        while let Some(fe) = self.extent_after(ino, start)? {
            if fe.start >= end {
                return Ok((delta, true));
            }
            if done == max {
                return Ok((delta, false));
            }
            done += 1;
            self.btree_delete(BtreeId::Extents, fe.pos)?;
            let e_end = fe.pos.offset;
            match fe.piece {
                Piece::Inline(data) => {
                    if fe.start < start {
                        let keep =
                            data.get(..(start - fe.start) as usize).ok_or(Error::Internal("inline"))?;
                        self.btree_set(BtreeId::Extents, extent_pos(ino, start), KeyType::InlineData, keep)?;
                    }
                    if e_end > end {
                        let keep = data.get((end - fe.start) as usize..).ok_or(Error::Internal("inline"))?;
                        self.btree_set(BtreeId::Extents, extent_pos(ino, e_end), KeyType::InlineData, keep)?;
                    }
                }
                Piece::Extent(e) => {
                    let mut c = -(e.charge(block) as i64);
                    if fe.start < start {
                        let front = Extent { live_len: (start - fe.start) as u32, ..e };
                        self.extent_set(ino, start, &front)?;
                        c += front.charge(block) as i64;
                    }
                    if e_end > end {
                        let back = Extent {
                            live_len: (e_end - end) as u32,
                            offset_into: e.offset_into + (end - fe.start) as u32,
                            ..e
                        };
                        self.extent_set(ino, e_end, &back)?;
                        c += back.charge(block) as i64;
                    }
                    if c != 0 {
                        for p in e.ptrs() {
                            self.bucket_charge(p.dev, p.offset, c)?;
                        }
                    }
                    delta += c;
                }
            }
        }
        Ok((delta, true))
    }

    /// Remove all extents in `[start, end)` in bounded transactions.
    pub(crate) fn punch_extents(&mut self, ino: u64, start: u64, end: u64) -> Result<()> {
        loop {
            let done = self.in_txn(|fs| {
                let mut inode = fs.inode_read(ino)?;
                let (delta, done) = fs.extents_cut(ino, start, end, CUT_BATCH)?;
                if delta != 0 {
                    inode.alloc_bytes = inode.alloc_bytes.saturating_add_signed(delta);
                    fs.inode_write(ino, &inode)?;
                    fs.journal_accounting(0, delta)?;
                }
                Ok(done)
            })?;
            if done {
                return Ok(());
            }
        }
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
        let comp = self.compression_for(&inode);
        self.write_extent(ino, a, &buf, 0, true, true, comp)?;
        Ok(())
    }

    /// Set the file size, freeing data past it or leaving a hole before it.
    pub(crate) fn truncate(&mut self, ino: u64, size: u64) -> Result<()> {
        let block = self.block();
        let inode = self.inode_read(ino)?;
        if size < inode.size || inode.alloc_bytes > 0 {
            let cut_from = round_up(size, block).ok_or(Error::TooBig)?;
            self.punch_extents(ino, cut_from, u64::MAX)?;
            if !size.is_multiple_of(block) && size < inode.size {
                self.zero_partial(ino, size, cut_from)?;
            }
        }
        self.in_txn(|fs| {
            let mut inode = fs.inode_read(ino)?;
            inode.size = size;
            let now = now_ns();
            inode.mtime = now;
            inode.ctime = now;
            fs.inode_write(ino, &inode)
        })
    }

    /// fallocate(2) with `FALLOC_*` flags.
    pub fn fallocate(&mut self, ino: u64, mode: u32, off: u64, len: u64) -> Result<()> {
        self.check_user_writable()?;
        let inode = self.inode_read(ino)?;
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
            FALLOC_PUNCH_HOLE if keep => self.punch_hole(ino, &inode, off, end),
            FALLOC_COLLAPSE_RANGE if !keep => self.collapse_range(ino, &inode, off, len),
            FALLOC_INSERT_RANGE if !keep => self.insert_range(ino, &inode, off, len),
            FALLOC_COLLAPSE_RANGE | FALLOC_INSERT_RANGE => Err(Error::Invalid),
            FALLOC_ZERO_RANGE => {
                let end_in = end.min(if keep { inode.size } else { end });
                self.punch_hole(ino, &inode, off, end_in.max(off))?;
                let a = round_up(off, block).ok_or(Error::TooBig)?;
                let b = end & !(block - 1);
                if a < b {
                    let now = self.inode_read(ino)?;
                    self.preallocate(ino, &now, a, b, true)?;
                }
                if !keep && end > inode.size {
                    self.in_txn(|fs| {
                        let mut i = fs.inode_read(ino)?;
                        i.size = i.size.max(end);
                        fs.inode_write(ino, &i)
                    })?;
                }
                Ok(())
            }
            _ => Err(Error::Unsupported),
        }
    }

    fn punch_hole(&mut self, ino: u64, _inode: &Inode, off: u64, end: u64) -> Result<()> {
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
        self.in_txn(|fs| {
            let mut i = fs.inode_read(ino)?;
            let now = now_ns();
            i.mtime = now;
            i.ctime = now;
            fs.inode_write(ino, &i)
        })
    }

    /// Reserve space for every hole in `[off, end)` as unwritten extents.
    fn preallocate(&mut self, ino: u64, inode: &Inode, off: u64, end: u64, keep: bool) -> Result<()> {
        let block = self.block();
        let mut pos = off & !(block - 1);
        let stop = round_up(end, block).ok_or(Error::TooBig)?;
        while pos < stop {
            let hole_end = match self.extent_after(ino, pos)? {
                Some(fe) if fe.start <= pos => {
                    pos = fe.pos.offset;
                    continue;
                }
                Some(fe) => fe.start.min(stop),
                None => stop,
            };
            let want = (hole_end - pos).min(MAX_PLAIN_EXTENT);
            let size_end = if keep { 0 } else { (pos + want).min(end) };
            pos = self.in_txn(|fs| {
                let (dev, offset, got, gen) = fs.alloc_data(block, want)?;
                let mut ptrs = [ExtentPtr::default(); MAX_PTRS];
                ptrs[0] = ExtentPtr { dev, gen, offset };
                let len = u32::try_from(got).map_err(|_| Error::Internal("extent size"))?;
                let e = Extent {
                    flags: EXTENT_UNWRITTEN,
                    compression: Compression::None,
                    csum_type: ChecksumType::None,
                    live_len: len,
                    payload_len: len,
                    stored_len: len,
                    offset_into: 0,
                    csum: 0,
                    nr_ptrs: 1,
                    ptrs,
                };
                fs.replace_range(ino, pos, pos + got, Some(e), size_end.min(pos + got), keep, true)?;
                Ok(pos + got)
            })?;
        }
        if !keep && end > inode.size {
            self.in_txn(|fs| {
                let mut i = fs.inode_read(ino)?;
                i.size = i.size.max(end);
                fs.inode_write(ino, &i)
            })?;
        }
        Ok(())
    }

    /// lseek(2) SEEK_DATA (`hole == false`) or SEEK_HOLE (`hole == true`).
    pub fn seek(&mut self, ino: u64, off: u64, hole: bool) -> Result<u64> {
        let inode = self.inode_read(ino)?;
        if off >= inode.size {
            return Err(Error::NoSuchOffset);
        }
        let mut pos = off;
        loop {
            match self.extent_after(ino, pos)? {
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

    /// Call `f` with each mapped range of `ino` that ends after `off`, in
    /// order, until it returns false (restore, FIEMAP).
    pub fn map_extents(&mut self, ino: u64, off: u64, f: &mut dyn FnMut(&Mapping) -> bool) -> Result<()> {
        let mut pos = off;
        while let Some(fe) = self.extent_after(ino, pos)? {
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
            pos = fe.pos.offset;
        }
        Ok(())
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
        let mut from = end;
        loop {
            let more = self.in_txn(|fs| {
                for _ in 0..CUT_BATCH {
                    let Some(fe) = fs.extent_after(ino, from)? else { return Ok(false) };
                    from = fe.pos.offset;
                    fs.extent_move(ino, &fe, fe.pos.offset - len)?;
                }
                Ok(true)
            })?;
            if !more {
                break;
            }
        }
        self.in_txn(|fs| {
            let mut i = fs.inode_read(ino)?;
            i.size = i.size.saturating_sub(len);
            let now = now_ns();
            i.mtime = now;
            i.ctime = now;
            fs.inode_write(ino, &i)
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
        self.in_txn(|fs| {
            let delta = fs.extent_split_at(ino, off)?;
            let mut i = fs.inode_read(ino)?;
            i.alloc_bytes = i.alloc_bytes.saturating_add_signed(delta);
            i.size = size;
            fs.inode_write(ino, &i)?;
            fs.journal_accounting(0, delta)
        })?;
        // Downwards from the end: every key moves above its old place, onto
        // room the keys after it left.
        let start = Pos::new(ino, off.saturating_add(1), 0);
        let mut below = Pos::new(ino, u64::MAX, u32::MAX);
        loop {
            let more = self.in_txn(|fs| {
                let mut val = TryVec::new();
                for _ in 0..CUT_BATCH {
                    let Some((pos, _)) = fs.peek_back(BtreeId::Extents, start, below, &mut val)? else {
                        return Ok(false);
                    };
                    let fe =
                        fs.extent_after(ino, pos.offset - 1)?.ok_or(Error::Internal("extent vanished"))?;
                    let to = pos.offset.checked_add(len).ok_or(Error::TooBig)?;
                    fs.extent_move(ino, &fe, to)?;
                    match pos.predecessor() {
                        Some(p) => below = p,
                        None => return Ok(false),
                    }
                }
                Ok(true)
            })?;
            if !more {
                break;
            }
        }
        self.in_txn(|fs| {
            let mut i = fs.inode_read(ino)?;
            let now = now_ns();
            i.mtime = now;
            i.ctime = now;
            fs.inode_write(ino, &i)
        })
    }

    /// Inside a transaction: re-key extent `fe` so that it ends at `to`.
    fn extent_move(&mut self, ino: u64, fe: &FileExtent, to: u64) -> Result<()> {
        self.btree_delete(BtreeId::Extents, fe.pos)?;
        match &fe.piece {
            Piece::Extent(e) => self.extent_set(ino, to, e),
            Piece::Inline(d) => self.btree_set(BtreeId::Extents, extent_pos(ino, to), KeyType::InlineData, d),
        }
    }

    /// Inside a transaction: split the extent across `at` (if any) into the
    /// piece before and the piece after it; returns the charge delta.
    fn extent_split_at(&mut self, ino: u64, at: u64) -> Result<i64> {
        let block = self.block();
        let Some(fe) = self.extent_after(ino, at)? else { return Ok(0) };
        let Piece::Extent(e) = fe.piece else { return Ok(0) };
        if fe.start >= at {
            return Ok(0);
        }
        let e_end = fe.pos.offset;
        self.btree_delete(BtreeId::Extents, fe.pos)?;
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
                self.bucket_charge(p.dev, p.offset, c)?;
            }
        }
        Ok(c)
    }

    /// Make a file's data and metadata durable (fsync, fdatasync).
    pub fn fsync(&mut self, _ino: u64) -> Result<()> {
        self.journal_flush()
    }
}

fn zero(buf: &mut [u8], from: u64, to: u64) {
    if let Some(s) = buf.get_mut(from as usize..to as usize) {
        s.fill(0);
    }
}
