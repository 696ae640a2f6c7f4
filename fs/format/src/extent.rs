//! Extent values: where a range of file data lives and how it is encoded.
//!
//! An extent key is `(inode, END offset, snapshot)`: the live range is
//! `[end - live_len, end)`. The stored payload (`stored_len` bytes at each
//! pointer, compressed or not) decodes to `payload_len` bytes; the live range is
//! the window `[offset_into, offset_into + live_len)` of that payload. Cutting an
//! extent (partial overwrite, truncate, hole punch) only narrows the window, so
//! the payload checksum stays valid.
//!
//! An uncompressed checksummed extent may instead carry one checksum per
//! fixed-size chunk of its payload ([`EXTENT_CHUNKED`]): it can then be as
//! large as a plain one while a small read verifies only the chunks it
//! touches.

use super::bytes::{Reader, Writer};
use super::checksum::ChecksumType;
use super::error::{FormatError, Result};

/// Most pointers (replicas) one extent may carry.
pub const MAX_PTRS: usize = 4;
/// Fixed part of an extent value before the pointers.
pub const EXTENT_HEADER_BYTES: usize = 28;
/// Encoded size of one pointer.
pub const PTR_BYTES: usize = 16;
/// Largest payload of a compressed extent, or of a checksummed one with a
/// single checksum: reading any part of such an extent reads and verifies
/// the whole payload, so it is kept small.
pub const MAX_ENCODED_PAYLOAD: u32 = 128 * 1024;
/// Most chunk checksums one [`EXTENT_CHUNKED`] extent carries.
pub const MAX_CSUM_CHUNKS: usize = 32;
/// Largest encoded extent value: every pointer and every chunk checksum at
/// their widest.
pub const MAX_EXTENT_BYTES: usize = EXTENT_HEADER_BYTES + PTR_BYTES * MAX_PTRS + 4 + 8 * MAX_CSUM_CHUNKS;
/// Smallest and largest chunk of a chunk-checksummed extent, as powers of two.
pub const MIN_CHUNK_SHIFT: u8 = 12;
/// See [`MIN_CHUNK_SHIFT`].
pub const MAX_CHUNK_SHIFT: u8 = 20;

/// Extent flag: allocated but never written (reads as zeros; from fallocate).
pub const EXTENT_UNWRITTEN: u8 = 1;
/// Extent flag: the payload is checksummed per `1 << chunk_shift` bytes,
/// the checksums following the pointers; `csum` is 0. Needs
/// `INCOMPAT_CHUNKED_CSUMS` in the superblock.
pub const EXTENT_CHUNKED: u8 = 2;
/// Every extent flag this code knows.
const EXTENT_FLAGS_KNOWN: u8 = EXTENT_UNWRITTEN | EXTENT_CHUNKED;

/// Compression algorithms. Persistent numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Compression {
    /// Stored as is.
    #[default]
    None = 0,
    /// LZ4 block format (no frame, no size prefix).
    Lz4 = 1,
    /// A zstd frame.
    Zstd = 2,
}

impl Compression {
    /// Decode.
    pub fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            0 => Compression::None,
            1 => Compression::Lz4,
            2 => Compression::Zstd,
            _ => return Err(FormatError::UnknownType("compression")),
        })
    }

    /// Name on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Parse a command-line name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Compression::None),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Where one copy of the payload lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtentPtr {
    /// Member device index.
    pub dev: u8,
    /// Generation the bucket had when this was written.
    pub gen: u32,
    /// Byte offset on the device.
    pub offset: u64,
}

/// A data extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extent {
    /// `EXTENT_*` flags.
    pub flags: u8,
    /// How the payload is compressed.
    pub compression: Compression,
    /// Which algorithm `csum` uses (over the stored bytes).
    pub csum_type: ChecksumType,
    /// Bytes of the file this extent covers.
    pub live_len: u32,
    /// Decoded payload size.
    pub payload_len: u32,
    /// Stored (possibly compressed) payload size; the space used on disk is this
    /// rounded up to the block size.
    pub stored_len: u32,
    /// Start of the live window within the decoded payload.
    pub offset_into: u32,
    /// Checksum of the stored bytes (0 when [`EXTENT_CHUNKED`]).
    pub csum: u64,
    /// Number of valid entries in `ptrs`.
    pub nr_ptrs: u8,
    /// Copies.
    pub ptrs: [ExtentPtr; MAX_PTRS],
    /// Log2 of the checksum chunk when [`EXTENT_CHUNKED`], else 0.
    pub chunk_shift: u8,
    /// Checksum of payload chunk `i` (the last one may be short): the first
    /// [`Extent::nr_chunks`] entries are valid.
    pub chunk_csums: [u64; MAX_CSUM_CHUNKS],
}

impl Extent {
    /// Bytes this extent charges to each bucket it points into, to its
    /// inode's `alloc_bytes` and to the `data_bytes` counter (`format.md`
    /// §8.1): its live bytes, or for a compressed extent its whole stored
    /// payload in blocks, whatever part of it is live.
    pub const fn charge(&self, block_size: u64) -> u64 {
        match self.compression {
            Compression::None => self.live_len as u64,
            _ => match super::round_up(self.stored_len as u64, block_size) {
                Some(v) => v,
                None => u64::MAX,
            },
        }
    }

    /// A new extent with one copy at `ptr`, covering `len` bytes of the file
    /// from the start of its payload: uncompressed, without checksums, no
    /// flags. Writers set what differs with struct update syntax.
    pub fn one_copy(ptr: ExtentPtr, len: u32) -> Self {
        let mut ptrs = [ExtentPtr::default(); MAX_PTRS];
        ptrs[0] = ptr;
        Extent { live_len: len, payload_len: len, stored_len: len, nr_ptrs: 1, ptrs, ..Extent::default() }
    }

    /// The valid pointers.
    pub fn ptrs(&self) -> &[ExtentPtr] {
        self.ptrs.get(..usize::from(self.nr_ptrs)).unwrap_or(&[])
    }

    /// Whether the payload is unwritten preallocation.
    pub const fn is_unwritten(&self) -> bool {
        self.flags & EXTENT_UNWRITTEN != 0
    }

    /// Whether the payload carries one checksum per chunk.
    pub const fn is_chunked(&self) -> bool {
        self.flags & EXTENT_CHUNKED != 0
    }

    /// Bytes per checksum chunk (when chunked).
    pub const fn chunk_bytes(&self) -> u32 {
        1u32 << (self.chunk_shift & 31)
    }

    /// Number of chunk checksums: the payload in chunks, rounded up; 0 when
    /// not chunked.
    pub const fn nr_chunks(&self) -> usize {
        if !self.is_chunked() {
            return 0;
        }
        let chunk = self.chunk_bytes() as u64;
        (self.payload_len as u64).div_ceil(chunk) as usize
    }

    /// The valid chunk checksums.
    pub fn chunk_csums(&self) -> &[u64] {
        self.chunk_csums.get(..self.nr_chunks()).unwrap_or(&[])
    }

    /// Decode a value.
    pub fn decode(val: &[u8]) -> Result<Self> {
        let mut r = Reader::new(val);
        let flags = r.u8()?;
        let compression = Compression::from_u8(r.u8()?)?;
        let csum_type = ChecksumType::from_u8(r.u8()?)?;
        let nr_ptrs = r.u8()?;
        let mut e = Extent {
            flags,
            compression,
            csum_type,
            nr_ptrs,
            live_len: r.u32()?,
            payload_len: r.u32()?,
            stored_len: r.u32()?,
            offset_into: r.u32()?,
            csum: r.u64()?,
            ptrs: [ExtentPtr::default(); MAX_PTRS],
            chunk_shift: 0,
            chunk_csums: [0; MAX_CSUM_CHUNKS],
        };
        if flags & !EXTENT_FLAGS_KNOWN != 0 {
            return Err(FormatError::BadField("extent flags"));
        }
        if nr_ptrs == 0 || usize::from(nr_ptrs) > MAX_PTRS {
            return Err(FormatError::BadField("extent pointer count"));
        }
        for p in e.ptrs.iter_mut().take(usize::from(nr_ptrs)) {
            let dev = r.u8()?;
            r.skip(3)?;
            *p = ExtentPtr { dev, gen: r.u32()?, offset: r.u64()? };
        }
        if e.is_chunked() {
            e.chunk_shift = r.u8()?;
            r.skip(3)?;
            if !(MIN_CHUNK_SHIFT..=MAX_CHUNK_SHIFT).contains(&e.chunk_shift) {
                return Err(FormatError::BadField("extent chunk size"));
            }
            if e.csum_type == ChecksumType::None
                || e.compression != Compression::None
                || e.is_unwritten()
                || e.csum != 0
            {
                return Err(FormatError::BadField("chunked extent encoding"));
            }
            if e.payload_len == 0 || e.nr_chunks() > MAX_CSUM_CHUNKS {
                return Err(FormatError::BadField("chunked extent too large"));
            }
            let n = e.nr_chunks();
            for c in e.chunk_csums.iter_mut().take(n) {
                *c = match e.csum_type.width() {
                    4 => u64::from(r.u32()?),
                    _ => r.u64()?,
                };
            }
        }
        let window_end = u64::from(e.offset_into) + u64::from(e.live_len);
        if e.live_len == 0 || window_end > u64::from(e.payload_len) {
            return Err(FormatError::BadField("extent window"));
        }
        if e.is_unwritten() && (e.compression != Compression::None || e.csum_type != ChecksumType::None) {
            return Err(FormatError::BadField("unwritten extent with encoding"));
        }
        if e.csum_type != ChecksumType::None && !e.is_chunked() && e.payload_len > MAX_ENCODED_PAYLOAD {
            return Err(FormatError::BadField("checksummed extent too large"));
        }
        match e.compression {
            Compression::None if e.stored_len != e.payload_len => {
                return Err(FormatError::BadField("extent stored length"))
            }
            Compression::Lz4 | Compression::Zstd
                if e.payload_len > MAX_ENCODED_PAYLOAD || e.stored_len == 0 =>
            {
                return Err(FormatError::BadField("compressed extent length"))
            }
            _ => {}
        }
        Ok(e)
    }

    /// Encoded length.
    pub fn encoded_len(&self) -> usize {
        let chunks = if self.is_chunked() { 4 + self.nr_chunks() * self.csum_type.width() } else { 0 };
        EXTENT_HEADER_BYTES + PTR_BYTES * usize::from(self.nr_ptrs) + chunks
    }

    /// Encode into `buf`; returns the length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        if self.nr_ptrs == 0 || usize::from(self.nr_ptrs) > MAX_PTRS {
            return Err(FormatError::BadField("extent pointer count"));
        }
        let mut w = Writer::new(buf);
        w.u8(self.flags)?;
        w.u8(self.compression as u8)?;
        w.u8(self.csum_type as u8)?;
        w.u8(self.nr_ptrs)?;
        w.u32(self.live_len)?;
        w.u32(self.payload_len)?;
        w.u32(self.stored_len)?;
        w.u32(self.offset_into)?;
        w.u64(self.csum)?;
        for p in self.ptrs() {
            w.u8(p.dev)?;
            w.zeros(3)?;
            w.u32(p.gen)?;
            w.u64(p.offset)?;
        }
        if self.is_chunked() {
            if self.nr_chunks() > MAX_CSUM_CHUNKS {
                return Err(FormatError::BadField("chunked extent too large"));
            }
            w.u8(self.chunk_shift)?;
            w.zeros(3)?;
            for &c in self.chunk_csums() {
                match self.csum_type.width() {
                    // A CRC-32C is 32 bits wide (`checksum.rs`).
                    4 => w.u32(c as u32)?,
                    _ => w.u64(c)?,
                }
            }
        }
        Ok(w.position())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Extent {
        let mut e = Extent {
            flags: 0,
            compression: Compression::Lz4,
            csum_type: ChecksumType::Crc32c,
            live_len: 4096,
            payload_len: 8192,
            stored_len: 1000,
            offset_into: 4096,
            csum: 0xdead_beef,
            nr_ptrs: 2,
            ..Default::default()
        };
        e.ptrs[0] = ExtentPtr { dev: 0, gen: 3, offset: 1 << 20 };
        e.ptrs[1] = ExtentPtr { dev: 1, gen: 9, offset: 2 << 20 };
        e
    }

    #[test]
    fn round_trip() {
        let e = sample();
        let mut buf = [0u8; 128];
        let n = e.encode(&mut buf).unwrap();
        assert_eq!(n, e.encoded_len());
        assert_eq!(Extent::decode(&buf[..n]), Ok(e));
        assert!(Extent::decode(&buf[..n - 1]).is_err());
    }

    fn chunked() -> Extent {
        let mut e = Extent {
            flags: EXTENT_CHUNKED,
            csum_type: ChecksumType::Crc32c,
            live_len: 12288,
            payload_len: 100_000,
            stored_len: 100_000,
            offset_into: 4096,
            nr_ptrs: 1,
            chunk_shift: 15,
            ..Default::default()
        };
        e.ptrs[0] = ExtentPtr { dev: 0, gen: 1, offset: 1 << 20 };
        e.chunk_csums[..4].copy_from_slice(&[1, 0xffff_ffff, 3, 4]);
        e
    }

    #[test]
    fn chunked_round_trip() {
        for csum_type in [ChecksumType::Crc32c, ChecksumType::Xxhash64] {
            let mut e = chunked();
            e.csum_type = csum_type;
            if csum_type == ChecksumType::Xxhash64 {
                e.chunk_csums[1] = u64::MAX;
            }
            assert_eq!(e.nr_chunks(), 4);
            let mut buf = [0u8; 256];
            let n = e.encode(&mut buf).unwrap();
            assert_eq!(n, 28 + 16 + 4 + 4 * csum_type.width());
            assert_eq!(n, e.encoded_len());
            assert_eq!(Extent::decode(&buf[..n]), Ok(e));
            assert!(Extent::decode(&buf[..n - 1]).is_err());
        }
    }

    #[test]
    fn chunked_rejects_bad_encodings() {
        // (byte offset, new byte, expected error) patched into a good value.
        let cases: [(usize, u8, FormatError); 6] = [
            (44, 11, FormatError::BadField("extent chunk size")),
            (44, 21, FormatError::BadField("extent chunk size")),
            (2, ChecksumType::None as u8, FormatError::BadField("chunked extent encoding")),
            (1, Compression::Zstd as u8, FormatError::BadField("chunked extent encoding")),
            (20, 7, FormatError::BadField("chunked extent encoding")),
            // In 4 KiB chunks 100000 bytes make 25; payload_len 0x0286a0 makes 41.
            (10, 2, FormatError::BadField("chunked extent too large")),
        ];
        for (at, byte, want) in cases {
            let mut buf = [0u8; 256];
            let n = chunked().encode(&mut buf).unwrap();
            buf[at] = byte;
            if at == 10 {
                buf[44] = 12;
                buf[14] = 2;
            }
            assert_eq!(Extent::decode(&buf[..n]), Err(want), "byte {at} = {byte}");
        }
    }

    #[test]
    fn rejects_bad_window() {
        let mut e = sample();
        e.offset_into = 8000;
        let mut buf = [0u8; 128];
        let n = e.encode(&mut buf).unwrap();
        assert!(Extent::decode(&buf[..n]).is_err());
    }
}
