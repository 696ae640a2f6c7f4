//! Directory entry values and the name hash that places them.
//!
//! A directory entry's key is `(dir inode, slot, snapshot)`. The slot is the
//! name's hash rounded down to a multiple of [`HASH_PROBE`]; a name whose slot is
//! taken goes to the next free one of the `HASH_PROBE` slots after it, so a
//! lookup reads at most that many keys. Slots start at [`FIRST_SLOT`] so that
//! readdir positions 0 and 1 stay free for "." and "..", and stay below 2^62 so
//! a slot plus one is a valid `loff_t`.

use super::bytes::{Reader, Writer};
use super::checksum::xxh64;
use super::error::{FormatError, Result};
use super::NAME_MAX;

/// Slots a name may probe, starting at its hash slot.
pub const HASH_PROBE: u64 = 8;
/// The lowest slot.
pub const FIRST_SLOT: u64 = 16;
/// One past the highest slot.
pub const SLOT_END: u64 = 1 << 62;

/// Fixed part of a dirent value before the name.
pub const DIRENT_HEADER_BYTES: usize = 10;

/// The first slot for `name` under the file system's hash seed.
pub fn name_slot(seed: u64, name: &[u8]) -> u64 {
    let h = xxh64(name, seed) & (SLOT_END - 1) & !(HASH_PROBE - 1);
    if h < FIRST_SLOT {
        FIRST_SLOT
    } else {
        h
    }
}

/// A directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dirent<'a> {
    /// Inode the entry names.
    pub target: u64,
    /// `DT_*` type of the target.
    pub dtype: u8,
    /// The name: 1 to 255 bytes, no `/` and no NUL.
    pub name: &'a [u8],
}

/// Whether `name` is a valid single path component.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name != b"."
        && name != b".."
        && !name.iter().any(|&b| b == b'/' || b == 0)
}

impl<'a> Dirent<'a> {
    /// Decode a value.
    pub fn decode(val: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(val);
        let target = r.u64()?;
        let dtype = r.u8()?;
        let len = usize::from(r.u8()?);
        let name = r.bytes(len)?;
        if !valid_name(name) {
            return Err(FormatError::BadField("dirent name"));
        }
        if !matches!(dtype, 1 | 2 | 4 | 6 | 8 | 10 | 12) {
            return Err(FormatError::BadField("dirent type"));
        }
        Ok(Dirent { target, dtype, name })
    }

    /// Encoded length.
    pub fn encoded_len(&self) -> usize {
        DIRENT_HEADER_BYTES + self.name.len()
    }

    /// Encode into `buf`; returns the length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        let len = u8::try_from(self.name.len()).map_err(|_| FormatError::BadField("dirent name"))?;
        let mut w = Writer::new(buf);
        w.u64(self.target)?;
        w.u8(self.dtype)?;
        w.u8(len)?;
        w.bytes(self.name)?;
        Ok(w.position())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let d = Dirent { target: 77, dtype: 8, name: "zażółć".as_bytes() };
        let mut buf = [0u8; 300];
        let n = d.encode(&mut buf).unwrap();
        assert_eq!(Dirent::decode(&buf[..n]), Ok(d));
        assert!(Dirent::decode(&buf[..n - 1]).is_err());
        buf[DIRENT_HEADER_BYTES] = b'/';
        assert!(Dirent::decode(&buf[..n]).is_err());
        assert!(!valid_name(b".."));
        assert!(!valid_name(&[b'a'; 256]));
        assert!(valid_name(&[b'a'; 255]));
    }

    #[test]
    fn slots_are_aligned_and_in_range() {
        for name in [&b"a"[..], b"b", b"lost+found", &[0xff; 255]] {
            let s = name_slot(42, name);
            assert!((FIRST_SLOT..SLOT_END).contains(&s) && s.is_multiple_of(HASH_PROBE));
        }
        assert_ne!(name_slot(1, b"x"), name_slot(2, b"x"));
    }
}
