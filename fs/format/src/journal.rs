//! Journal entries: sequence-numbered, checksummed batches of b-tree updates.
//!
//! The journal is a ring of bytes on member `journal_dev` of the superblock. Each entry starts on a block
//! boundary:
//! ```text
//! 0   magic       u32  "ABJE" (0x454A4241)
//! 4   len         u32  bytes of the entry, header included (unpadded)
//! 8   csum        u64  metadata checksum of bytes [16, len)
//! 16  seq         u64  entry sequence number, +1 per entry
//! 24  nr_records  u32
//! 28  fs_tag      u32  CRC-32C of the file system UUID: entries left by an
//!                      earlier file system on the same device never match
//! 32  records:    { type: u8, reserved: [u8; 3], len: u32, body: [u8; len] } * nr_records
//! ```
//! Record bodies:
//! - `BTREE_UPDATE` (1): `btree_id u8, key_type u8 (0 = delete), reserved u16,
//!   pos Pos, value`.
//! - `ACCOUNTING` (2): `inodes_delta i64, data_bytes_delta i64`.
//! - `UNORDERED` (3): empty. The entry was written without a flush before
//!   it (needs `INCOMPAT_UNORDERED_ENTRIES`), so the data its extents point
//!   at may not have reached the medium when it did. Replay checks that data
//!   against the extents' checksums unless the next entry of the sequence
//!   has started in the ring (the writer starts none before the unordered
//!   entry, and the data before it, are durable).

use super::bytes::{Reader, Writer};
use super::checksum::ChecksumType;
use super::error::{FormatError, Result};
use super::key::{BtreeId, KeyType, Pos, POS_BYTES};

/// Entry magic, "ABJE" in little-endian byte order.
pub const JOURNAL_MAGIC: u32 = 0x454A_4241;
/// Size of the entry header.
pub const JOURNAL_HEADER_BYTES: usize = 32;
/// Size of a record header.
pub const RECORD_HEADER_BYTES: usize = 8;
/// Record type: a b-tree key set or deleted.
pub const REC_BTREE_UPDATE: u8 = 1;
/// Record type: changes to the file system counters.
pub const REC_ACCOUNTING: u8 = 2;
/// Record type: the entry was written without a flush before it.
pub const REC_UNORDERED: u8 = 3;
/// Most bytes of extent data replay reads to check one unordered entry;
/// writers mark an entry unordered only below it, and replay refuses an
/// entry that asks for more.
pub const UNORDERED_CHECK_MAX_BYTES: u64 = 64 << 20;
/// Body bytes of a b-tree update before the value.
pub const UPDATE_HEADER_BYTES: usize = 4 + POS_BYTES;

/// A decoded journal record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// Set (`kind` is `Some`) or delete a key.
    BtreeUpdate {
        /// Which b-tree.
        btree: BtreeId,
        /// Where.
        pos: Pos,
        /// New key type, or `None` to delete.
        kind: Option<KeyType>,
        /// New value (empty for deletes).
        value: &'a [u8],
    },
    /// Counter deltas.
    Accounting {
        /// Change in the number of inodes.
        inodes: i64,
        /// Change in bytes of stored file data.
        data_bytes: i64,
    },
    /// The entry was written without a flush before it ([`REC_UNORDERED`]).
    Unordered,
}

impl Record<'_> {
    /// Encoded size, header included.
    pub fn encoded_len(&self) -> usize {
        RECORD_HEADER_BYTES
            + match self {
                Record::BtreeUpdate { value, .. } => UPDATE_HEADER_BYTES + value.len(),
                Record::Accounting { .. } => 16,
                Record::Unordered => 0,
            }
    }

    /// Append to `w`.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        let body =
            u32::try_from(self.encoded_len() - RECORD_HEADER_BYTES).map_err(|_| FormatError::NoSpace)?;
        match self {
            Record::BtreeUpdate { btree, pos, kind, value } => {
                w.u8(REC_BTREE_UPDATE)?;
                w.zeros(3)?;
                w.u32(body)?;
                w.u8(*btree as u8)?;
                w.u8(kind.map_or(0, |k| k as u8))?;
                w.u16(0)?;
                pos.encode(w)?;
                w.bytes(value)
            }
            Record::Accounting { inodes, data_bytes } => {
                w.u8(REC_ACCOUNTING)?;
                w.zeros(3)?;
                w.u32(body)?;
                w.i64(*inodes)?;
                w.i64(*data_bytes)
            }
            Record::Unordered => {
                w.u8(REC_UNORDERED)?;
                w.zeros(3)?;
                w.u32(body)
            }
        }
    }
}

/// A validated entry header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalHeader {
    /// Entry length, header included.
    pub len: u32,
    /// Sequence number.
    pub seq: u64,
    /// Number of records.
    pub nr_records: u32,
    /// Tag of the file system that wrote the entry.
    pub fs_tag: u32,
}

impl JournalHeader {
    /// Decode the header at the start of `buf` and verify the entry's checksum.
    /// `buf` must hold the whole entry.
    pub fn decode(buf: &[u8], csum_type: ChecksumType) -> Result<Self> {
        let mut r = Reader::new(buf);
        if r.u32()? != JOURNAL_MAGIC {
            return Err(FormatError::BadMagic);
        }
        let len = r.u32()?;
        let csum = r.u64()?;
        let seq = r.u64()?;
        let nr_records = r.u32()?;
        let fs_tag = r.u32()?;
        let l = usize::try_from(len).map_err(|_| FormatError::Truncated)?;
        if l < JOURNAL_HEADER_BYTES {
            return Err(FormatError::BadField("journal entry length"));
        }
        let body = buf.get(16..l).ok_or(FormatError::Truncated)?;
        if csum_type != ChecksumType::None && csum_type.compute(body) != csum {
            return Err(FormatError::BadChecksum);
        }
        Ok(JournalHeader { len, seq, nr_records, fs_tag })
    }

    /// Peek the length field of an entry whose first bytes are in `buf`.
    pub fn peek_len(buf: &[u8]) -> Result<u32> {
        let mut r = Reader::new(buf);
        if r.u32()? != JOURNAL_MAGIC {
            return Err(FormatError::BadMagic);
        }
        r.u32()
    }

    /// The sequence number and file system tag in the header at the start
    /// of `buf`, unverified: whether an entry was started there, not
    /// whether it is whole.
    pub fn peek_seq(buf: &[u8]) -> Result<(u64, u32)> {
        let mut r = Reader::new(buf);
        if r.u32()? != JOURNAL_MAGIC {
            return Err(FormatError::BadMagic);
        }
        r.skip(12)?;
        let seq = r.u64()?;
        r.skip(4)?;
        Ok((seq, r.u32()?))
    }

    /// The records of an entry whose header decoded as `self`.
    pub fn records<'a>(&self, buf: &'a [u8]) -> Records<'a> {
        let len = usize::try_from(self.len).unwrap_or(0);
        Records::new(buf.get(JOURNAL_HEADER_BYTES..len).unwrap_or(&[]), self.nr_records)
    }
}

/// Iterator over an entry's records; yields an error and stops on malformed input.
pub struct Records<'a> {
    r: Reader<'a>,
    left: u32,
}

impl<'a> Records<'a> {
    /// The `nr` records encoded in `body` (an entry's bytes after its
    /// header, such as one still being built).
    pub fn new(body: &'a [u8], nr: u32) -> Self {
        Records { r: Reader::new(body), left: nr }
    }

    fn decode_one(&mut self) -> Result<Record<'a>> {
        let ty = self.r.u8()?;
        self.r.skip(3)?;
        let len = usize::try_from(self.r.u32()?).map_err(|_| FormatError::Truncated)?;
        let mut body = Reader::new(self.r.bytes(len)?);
        match ty {
            REC_BTREE_UPDATE => {
                let btree = BtreeId::from_u8(body.u8()?)?;
                let kind = match body.u8()? {
                    0 => None,
                    k => Some(KeyType::from_u8(k)?),
                };
                body.skip(2)?;
                let pos = Pos::decode(&mut body)?;
                let value = body.bytes(body.remaining())?;
                Ok(Record::BtreeUpdate { btree, pos, kind, value })
            }
            REC_ACCOUNTING => Ok(Record::Accounting { inodes: body.i64()?, data_bytes: body.i64()? }),
            REC_UNORDERED if body.remaining() == 0 => Ok(Record::Unordered),
            REC_UNORDERED => Err(FormatError::BadField("unordered record with a body")),
            _ => Err(FormatError::UnknownType("journal record")),
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let res = self.decode_one();
        if res.is_err() {
            self.left = 0;
        }
        Some(res)
    }
}

/// The tag that marks a file system's journal entries.
pub fn fs_tag(uuid: &[u8; 16]) -> u32 {
    super::checksum::crc32c(uuid)
}

/// Write an entry header over the first [`JOURNAL_HEADER_BYTES`] of `buf`,
/// whose records are already in place after it, and checksum it.
pub fn finish_entry(
    buf: &mut [u8],
    len: usize,
    seq: u64,
    nr_records: u32,
    fs_tag: u32,
    csum_type: ChecksumType,
) -> Result<()> {
    let len32 = u32::try_from(len).map_err(|_| FormatError::NoSpace)?;
    {
        let mut w = Writer::new(buf.get_mut(16..JOURNAL_HEADER_BYTES).ok_or(FormatError::NoSpace)?);
        w.u64(seq)?;
        w.u32(nr_records)?;
        w.u32(fs_tag)?;
    }
    let csum = csum_type.compute(buf.get(16..len).ok_or(FormatError::NoSpace)?);
    let mut w = Writer::new(buf);
    w.u32(JOURNAL_MAGIC)?;
    w.u32(len32)?;
    w.u64(csum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn entry_round_trip() {
        let recs = [
            Record::BtreeUpdate {
                btree: BtreeId::Dirents,
                pos: Pos::new(4096, 64, u32::MAX),
                kind: Some(KeyType::Dirent),
                value: b"hello",
            },
            Record::BtreeUpdate { btree: BtreeId::Inodes, pos: Pos::new(5000, 0, 1), kind: None, value: b"" },
            Record::Accounting { inodes: -1, data_bytes: 4096 },
            Record::Unordered,
        ];
        let mut buf = [0u8; 512];
        let mut len = JOURNAL_HEADER_BYTES;
        for r in &recs {
            let mut w = Writer::new(&mut buf[len..]);
            r.encode(&mut w).unwrap();
            assert_eq!(w.position(), r.encoded_len());
            len += w.position();
        }
        finish_entry(&mut buf, len, 77, 4, 0xabcd, ChecksumType::Xxhash64).unwrap();
        let h = JournalHeader::decode(&buf, ChecksumType::Xxhash64).unwrap();
        assert_eq!((h.seq, h.nr_records, h.len as usize, h.fs_tag), (77, 4, len, 0xabcd));
        assert_eq!(JournalHeader::peek_seq(&buf[..JOURNAL_HEADER_BYTES]), Ok((77, 0xabcd)));
        let got: Vec<_> = h.records(&buf).collect::<Result<_>>().unwrap();
        assert_eq!(got, recs);
        buf[40] ^= 0x80;
        assert_eq!(JournalHeader::decode(&buf, ChecksumType::Xxhash64), Err(FormatError::BadChecksum));
    }

    /// An unordered record has no body: one with a body does not decode.
    #[test]
    fn unordered_record_is_empty() {
        let body = [REC_UNORDERED, 0, 0, 0, 1, 0, 0, 0, 9];
        assert!(matches!(Records::new(&body, 1).next(), Some(Err(FormatError::BadField(_)))));
        let empty = [REC_UNORDERED, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Records::new(&empty, 1).next(), Some(Ok(Record::Unordered)));
    }
}
