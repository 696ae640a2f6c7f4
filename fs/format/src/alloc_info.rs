//! Per-bucket allocation info, the values of the alloc b-tree.
//!
//! Key `(device index, bucket number, 0)`. A bucket with no key is free with
//! generation 0.

use super::bytes::{Reader, Writer};
use super::error::{FormatError, Result};

/// Encoded size of [`AllocInfo`].
pub const ALLOC_BYTES: usize = 16;

/// What a bucket holds. Persistent numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum DataType {
    /// Nothing: may be allocated.
    #[default]
    Free = 0,
    /// Superblock copies and the reserved area at the start of a device.
    Superblock = 1,
    /// The journal ring.
    Journal = 2,
    /// B-tree nodes.
    Btree = 3,
    /// File data.
    User = 4,
}

impl DataType {
    /// Decode.
    pub fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            0 => DataType::Free,
            1 => DataType::Superblock,
            2 => DataType::Journal,
            3 => DataType::Btree,
            4 => DataType::User,
            _ => return Err(FormatError::UnknownType("bucket data")),
        })
    }

    /// Name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            DataType::Free => "free",
            DataType::Superblock => "superblock",
            DataType::Journal => "journal",
            DataType::Btree => "btree",
            DataType::User => "user",
        }
    }
}

/// Allocation state of one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllocInfo {
    /// Generation: bumped each time the bucket is freed, so pointers made
    /// before that are recognisably stale.
    pub gen: u32,
    /// What the bucket holds.
    pub data_type: DataType,
    /// For user buckets: bytes of live extents charged to the bucket (see
    /// "Bucket accounting" in the format documentation). Zero otherwise.
    pub used: u64,
}

impl AllocInfo {
    /// Decode a value.
    pub fn decode(val: &[u8]) -> Result<Self> {
        let mut r = Reader::new(val);
        let gen = r.u32()?;
        let data_type = DataType::from_u8(r.u8()?)?;
        r.skip(3)?;
        let used = r.u64()?;
        Ok(AllocInfo { gen, data_type, used })
    }

    /// Encode into `buf`; returns the length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf);
        w.u32(self.gen)?;
        w.u8(self.data_type as u8)?;
        w.zeros(3)?;
        w.u64(self.used)?;
        Ok(w.position())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let a = AllocInfo { gen: 5, data_type: DataType::User, used: 12345 };
        let mut buf = [0u8; ALLOC_BYTES];
        assert_eq!(a.encode(&mut buf), Ok(ALLOC_BYTES));
        assert_eq!(AllocInfo::decode(&buf), Ok(a));
        buf[4] = 99;
        assert!(AllocInfo::decode(&buf).is_err());
    }
}
