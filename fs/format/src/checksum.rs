//! Checksum algorithms and the checksum-type tag stored on disk.
//!
//! CRC-32C is the standard Castagnoli CRC (reflected polynomial 0x82F63B78,
//! initial value and final xor 0xFFFFFFFF; `crc32c(b"123456789") == 0xE3069283`).
//! XXH64 is xxHash64 with seed 0. Both are implemented here, portable and
//! table-driven, so that the kernel module and the tools compute the same values
//! from one source.

use super::error::{FormatError, Result};

/// Which algorithm guards a structure or an extent. Persistent numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum ChecksumType {
    /// No checksum: the stored field is zero and never checked.
    #[default]
    None = 0,
    /// CRC-32C, stored zero-extended in a 64-bit field.
    Crc32c = 1,
    /// XXH64 with seed 0.
    Xxhash64 = 2,
}

impl ChecksumType {
    /// Decode the on-disk tag.
    pub fn from_u8(v: u8) -> Result<Self> {
        match v {
            0 => Ok(ChecksumType::None),
            1 => Ok(ChecksumType::Crc32c),
            2 => Ok(ChecksumType::Xxhash64),
            _ => Err(FormatError::UnknownType("checksum")),
        }
    }

    /// Bytes a chunk checksum of this type takes in an extent value.
    pub const fn width(self) -> usize {
        match self {
            ChecksumType::Crc32c => 4,
            ChecksumType::None | ChecksumType::Xxhash64 => 8,
        }
    }

    /// The name used on the command line and in messages.
    pub const fn name(self) -> &'static str {
        match self {
            ChecksumType::None => "none",
            ChecksumType::Crc32c => "crc32c",
            ChecksumType::Xxhash64 => "xxhash64",
        }
    }

    /// Parse a command-line name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "none" => Some(ChecksumType::None),
            "crc32c" => Some(ChecksumType::Crc32c),
            "xxhash64" | "xxhash" => Some(ChecksumType::Xxhash64),
            _ => None,
        }
    }

    /// The checksum of `data` under this algorithm, as stored on disk.
    pub fn compute(self, data: &[u8]) -> u64 {
        match self {
            ChecksumType::None => 0,
            ChecksumType::Crc32c => u64::from(crc32c(data)),
            ChecksumType::Xxhash64 => xxh64(data, 0),
        }
    }

    /// The checksum of the concatenation of `parts`.
    pub fn compute_parts(self, parts: &[&[u8]]) -> u64 {
        match self {
            ChecksumType::None => 0,
            ChecksumType::Crc32c => {
                let mut c = !0u32;
                for p in parts {
                    c = crc32c_update(c, p);
                }
                u64::from(!c)
            }
            ChecksumType::Xxhash64 => {
                let mut h = Xxh64::new(0);
                for p in parts {
                    h.update(p);
                }
                h.finish()
            }
        }
    }
}

const CRC32C_POLY: u32 = 0x82F6_3B78;

#[expect(clippy::indexing_slicing, reason = "const evaluation; every index is below its constant bound")]
const fn crc32c_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ CRC32C_POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

static CRC32C_TABLES: [[u32; 256]; 8] = crc32c_tables();

/// Table lookup; `idx` is masked to 8 bits so it can never be out of range.
#[inline(always)]
fn tab(slice: usize, idx: u32) -> u32 {
    // Both indexes are in range by construction: slice < 8, idx & 0xff < 256.
    CRC32C_TABLES.get(slice & 7).and_then(|t| t.get((idx & 0xff) as usize)).copied().unwrap_or(0)
}

/// Feed `data` into a running (pre-inverted) CRC-32C state.
pub fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let lo = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) ^ crc;
        let hi = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        crc = tab(7, lo)
            ^ tab(6, lo >> 8)
            ^ tab(5, lo >> 16)
            ^ tab(4, lo >> 24)
            ^ tab(3, hi)
            ^ tab(2, hi >> 8)
            ^ tab(1, hi >> 16)
            ^ tab(0, hi >> 24);
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ tab(0, crc ^ u32::from(b));
    }
    crc
}

/// The standard CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    !crc32c_update(!0, data)
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

// Loads through fixed-size arrays: one machine load each, where
// `copy_from_slice` can stay an out-of-line call (it did in the kernel).
fn read_u64(b: &[u8]) -> u64 {
    b.first_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w))
}

fn read_u32(b: &[u8]) -> u32 {
    b.first_chunk::<4>().map_or(0, |w| u32::from_le_bytes(*w))
}

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2)).rotate_left(31).wrapping_mul(P1)
}

fn merge_round(acc: u64, val: u64) -> u64 {
    (acc ^ round(0, val)).wrapping_mul(P1).wrapping_add(P4)
}

/// Streaming XXH64.
pub struct Xxh64 {
    v: [u64; 4],
    seed: u64,
    total: u64,
    buf: [u8; 32],
    buf_len: usize,
}

impl Xxh64 {
    /// A hasher with the given seed.
    pub const fn new(seed: u64) -> Self {
        Xxh64 {
            v: [seed.wrapping_add(P1).wrapping_add(P2), seed.wrapping_add(P2), seed, seed.wrapping_sub(P1)],
            seed,
            total: 0,
            buf: [0; 32],
            buf_len: 0,
        }
    }

    #[inline]
    fn stripe(&mut self, s: &[u8; 32]) {
        let [v0, v1, v2, v3] = &mut self.v;
        *v0 = round(*v0, read_u64(s));
        *v1 = round(*v1, read_u64(s.get(8..).unwrap_or(&[])));
        *v2 = round(*v2, read_u64(s.get(16..).unwrap_or(&[])));
        *v3 = round(*v3, read_u64(s.get(24..).unwrap_or(&[])));
    }

    /// Feed bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.buf_len > 0 {
            let take = (32 - self.buf_len).min(data.len());
            let (head, rest) = data.split_at(take);
            if let Some(dst) = self.buf.get_mut(self.buf_len..self.buf_len + take) {
                dst.copy_from_slice(head);
            }
            self.buf_len += take;
            data = rest;
            if self.buf_len < 32 {
                return;
            }
            let b = self.buf;
            self.stripe(&b);
            self.buf_len = 0;
        }
        let mut chunks = data.chunks_exact(32);
        for c in &mut chunks {
            if let Some(c) = c.first_chunk::<32>() {
                self.stripe(c);
            }
        }
        let rem = chunks.remainder();
        if let Some(dst) = self.buf.get_mut(..rem.len()) {
            dst.copy_from_slice(rem);
        }
        self.buf_len = rem.len();
    }

    /// The digest of everything fed so far.
    pub fn finish(&self) -> u64 {
        let mut h = if self.total >= 32 {
            let [v1, v2, v3, v4] = self.v;
            let mut h = v1
                .rotate_left(1)
                .wrapping_add(v2.rotate_left(7))
                .wrapping_add(v3.rotate_left(12))
                .wrapping_add(v4.rotate_left(18));
            h = merge_round(h, v1);
            h = merge_round(h, v2);
            h = merge_round(h, v3);
            merge_round(h, v4)
        } else {
            self.seed.wrapping_add(P5)
        };
        h = h.wrapping_add(self.total);
        let mut rest = self.buf.get(..self.buf_len).unwrap_or(&[]);
        while rest.len() >= 8 {
            h ^= round(0, read_u64(rest));
            h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
            rest = rest.get(8..).unwrap_or(&[]);
        }
        if rest.len() >= 4 {
            h ^= u64::from(read_u32(rest)).wrapping_mul(P1);
            h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
            rest = rest.get(4..).unwrap_or(&[]);
        }
        for &b in rest {
            h ^= u64::from(b).wrapping_mul(P5);
            h = h.rotate_left(11).wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^ (h >> 32)
    }
}

/// XXH64 of `data` with `seed`.
pub fn xxh64(data: &[u8], seed: u64) -> u64 {
    let mut h = Xxh64::new(seed);
    h.update(data);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_answers() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        // RFC 3720 B.4: 32 bytes of zeros.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
    }

    #[test]
    fn xxh64_known_answers() {
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        assert_eq!(xxh64(b"Nobody inspects the spammish repetition", 0), 0xFBCE_A83C_8A37_8BF1);
    }

    #[test]
    fn streaming_matches_one_shot() {
        let data: [u8; 200] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for split in [0, 1, 7, 31, 32, 33, 100, 200] {
            let (a, b) = data.split_at(split);
            assert_eq!(ChecksumType::Xxhash64.compute_parts(&[a, b]), xxh64(&data, 0));
            assert_eq!(ChecksumType::Crc32c.compute_parts(&[a, b]), u64::from(crc32c(&data)));
        }
    }
}
