//! B-tree nodes: a fixed header followed by keys in ascending order.
//!
//! ```text
//! 0   magic     u32   "ABTN" (0x4E544241)
//! 4   used_len  u32   bytes in use, header included (<= node size)
//! 8   csum      u64   metadata checksum of bytes [16, used_len)
//! 16  btree_id  u8
//! 17  level     u8    0 = leaf
//! 18  reserved  u16   zero
//! 20  nr_keys   u32
//! 24  seq       u64   sequence of the superblock written by the checkpoint
//!                   that wrote the node (unique per checkpoint)
//! 32  min_key   Pos   smallest position this node covers (inclusive)
//! 52  max_key   Pos   largest position this node covers (inclusive)
//! 72  entries:  { pos: Pos, type: u8, val_len: u16, value: [u8; val_len] } * nr_keys
//! ```
//! Interior nodes hold [`BtreePtr`] values; an entry's position is the smallest
//! position its child covers, and the child covers up to the next entry's
//! position minus one (or the parent's `max_key`).

use super::bytes::{Reader, Writer};
use super::checksum::ChecksumType;
use super::error::{FormatError, Result};
use super::key::{BtreeId, KeyType, Pos, POS_BYTES};

/// Node magic, "ABTN" in little-endian byte order.
pub const NODE_MAGIC: u32 = 0x4E54_4241;
/// Size of the node header.
pub const NODE_HEADER_BYTES: usize = 72;
/// Size of an entry header (position, type, value length).
pub const ENTRY_HEADER_BYTES: usize = POS_BYTES + 3;
/// Largest value an entry can hold.
pub const MAX_VALUE_BYTES: usize = u16::MAX as usize;
/// Deepest tree: loops driven by on-disk levels stop here.
pub const MAX_DEPTH: u8 = 8;
/// Largest value a key may carry in nodes of `node_size` bytes: a node
/// must hold at least four keys, so a split always succeeds.
pub const fn max_value_bytes(node_size: u32) -> usize {
    let per_key = (node_size as usize).saturating_sub(NODE_HEADER_BYTES) / 4;
    let v = per_key.saturating_sub(ENTRY_HEADER_BYTES);
    if v < MAX_VALUE_BYTES {
        v
    } else {
        MAX_VALUE_BYTES
    }
}

/// Encoded size of a [`BtreePtr`].
pub const BTREE_PTR_BYTES: usize = 24;

/// The header of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeHeader {
    /// Bytes in use.
    pub used_len: u32,
    /// Stored checksum.
    pub csum: u64,
    /// Which b-tree.
    pub btree: BtreeId,
    /// Height above the leaves.
    pub level: u8,
    /// Number of entries.
    pub nr_keys: u32,
    /// Checkpoint sequence that wrote this node.
    pub seq: u64,
    /// Smallest covered position.
    pub min_key: Pos,
    /// Largest covered position.
    pub max_key: Pos,
}

impl NodeHeader {
    /// Decode and validate a node image: magic, length, checksum, bounds.
    pub fn decode(buf: &[u8], csum_type: ChecksumType) -> Result<Self> {
        let mut r = Reader::new(buf);
        if r.u32()? != NODE_MAGIC {
            return Err(FormatError::BadMagic);
        }
        let used_len = r.u32()?;
        let csum = r.u64()?;
        let btree = BtreeId::from_u8(r.u8()?)?;
        let level = r.u8()?;
        r.skip(2)?;
        let nr_keys = r.u32()?;
        let seq = r.u64()?;
        let min_key = Pos::decode(&mut r)?;
        let max_key = Pos::decode(&mut r)?;
        let used = usize::try_from(used_len).map_err(|_| FormatError::Truncated)?;
        if used < NODE_HEADER_BYTES || used > buf.len() {
            return Err(FormatError::BadField("node length"));
        }
        let body = buf.get(16..used).ok_or(FormatError::Truncated)?;
        if csum_type != ChecksumType::None && csum_type.compute(body) != csum {
            return Err(FormatError::BadChecksum);
        }
        if level >= MAX_DEPTH {
            return Err(FormatError::BadField("node level"));
        }
        if min_key > max_key {
            return Err(FormatError::BadField("node key range"));
        }
        Ok(NodeHeader { used_len, csum, btree, level, nr_keys, seq, min_key, max_key })
    }

    /// The entries of a node image whose header decoded as `self`.
    pub fn entries<'a>(&self, buf: &'a [u8]) -> Entries<'a> {
        let used = usize::try_from(self.used_len).unwrap_or(0);
        Entries { r: Reader::new(buf.get(NODE_HEADER_BYTES..used).unwrap_or(&[])), left: self.nr_keys }
    }
}

/// One entry of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Position.
    pub pos: Pos,
    /// Raw key type (decode with [`KeyType::from_u8`]).
    pub kind: u8,
    /// Value bytes.
    pub value: &'a [u8],
}

/// Iterator over a node's entries; yields an error and stops on malformed input.
pub struct Entries<'a> {
    r: Reader<'a>,
    left: u32,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let res = (|| {
            let pos = Pos::decode(&mut self.r)?;
            let kind = self.r.u8()?;
            let len = usize::from(self.r.u16()?);
            let value = self.r.bytes(len)?;
            Ok(Entry { pos, kind, value })
        })();
        if res.is_err() {
            self.left = 0;
        }
        Some(res)
    }
}

/// Builds a node image in a caller-provided buffer of the node size.
pub struct NodeBuilder<'a> {
    buf: &'a mut [u8],
    used: usize,
    nr_keys: u32,
}

impl<'a> NodeBuilder<'a> {
    /// Start a node in `buf` (the whole node; it is zeroed).
    pub fn new(buf: &'a mut [u8]) -> Result<Self> {
        if buf.len() < NODE_HEADER_BYTES {
            return Err(FormatError::NoSpace);
        }
        buf.fill(0);
        Ok(NodeBuilder { buf, used: NODE_HEADER_BYTES, nr_keys: 0 })
    }

    /// Append an entry; entries must come in ascending order.
    pub fn push(&mut self, pos: Pos, kind: KeyType, value: &[u8]) -> Result<()> {
        let len = u16::try_from(value.len()).map_err(|_| FormatError::NoSpace)?;
        let mut w = Writer::new(self.buf.get_mut(self.used..).ok_or(FormatError::NoSpace)?);
        pos.encode(&mut w)?;
        w.u8(kind as u8)?;
        w.u16(len)?;
        w.bytes(value)?;
        self.used += w.position();
        self.nr_keys += 1;
        Ok(())
    }

    /// Write the header and checksum; returns the used length.
    pub fn finish(
        self,
        btree: BtreeId,
        level: u8,
        seq: u64,
        min_key: Pos,
        max_key: Pos,
        csum_type: ChecksumType,
    ) -> Result<usize> {
        let used = u32::try_from(self.used).map_err(|_| FormatError::NoSpace)?;
        {
            let mut w = Writer::new(self.buf.get_mut(16..NODE_HEADER_BYTES).ok_or(FormatError::NoSpace)?);
            w.u8(btree as u8)?;
            w.u8(level)?;
            w.u16(0)?;
            w.u32(self.nr_keys)?;
            w.u64(seq)?;
            min_key.encode(&mut w)?;
            max_key.encode(&mut w)?;
        }
        let csum = csum_type.compute(self.buf.get(16..self.used).ok_or(FormatError::NoSpace)?);
        let mut w = Writer::new(self.buf);
        w.u32(NODE_MAGIC)?;
        w.u32(used)?;
        w.u64(csum)?;
        Ok(self.used)
    }
}

/// Pointer from a parent (or the superblock) to a child node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BtreePtr {
    /// Member device index.
    pub dev: u8,
    /// Level of the node pointed to.
    pub level: u8,
    /// Generation of the bucket when the node was written.
    pub gen: u32,
    /// Byte offset of the node on the device.
    pub offset: u64,
    /// Sequence number the node's header must carry.
    pub seq: u64,
}

impl BtreePtr {
    /// Decode a value.
    pub fn decode(val: &[u8]) -> Result<Self> {
        let mut r = Reader::new(val);
        let dev = r.u8()?;
        let level = r.u8()?;
        r.skip(2)?;
        Ok(BtreePtr { dev, level, gen: r.u32()?, offset: r.u64()?, seq: r.u64()? })
    }

    /// Encode into `buf`; returns the length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf);
        w.u8(self.dev)?;
        w.u8(self.level)?;
        w.u16(0)?;
        w.u32(self.gen)?;
        w.u64(self.offset)?;
        w.u64(self.seq)?;
        Ok(w.position())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn build_and_read_back() {
        let mut buf = [0u8; 4096];
        let mut b = NodeBuilder::new(&mut buf).unwrap();
        b.push(Pos::new(1, 2, 3), KeyType::Inode, b"abc").unwrap();
        b.push(Pos::new(1, 3, 3), KeyType::Orphan, b"").unwrap();
        let used = b.finish(BtreeId::Inodes, 0, 9, Pos::MIN, Pos::MAX, ChecksumType::Crc32c).unwrap();
        let h = NodeHeader::decode(&buf, ChecksumType::Crc32c).unwrap();
        assert_eq!(h.used_len as usize, used);
        assert_eq!((h.nr_keys, h.seq, h.level), (2, 9, 0));
        let e: Vec<_> = h.entries(&buf).collect::<Result<_>>().unwrap();
        assert_eq!(e[0].value, b"abc");
        assert_eq!(e[1].pos, Pos::new(1, 3, 3));

        buf[100] ^= 1;
        assert_eq!(NodeHeader::decode(&buf, ChecksumType::Crc32c), Err(FormatError::BadChecksum));
    }

    #[test]
    fn lying_key_count_is_an_error_not_a_panic() {
        let mut buf = [0u8; 4096];
        let b = NodeBuilder::new(&mut buf).unwrap();
        b.finish(BtreeId::Inodes, 0, 1, Pos::MIN, Pos::MAX, ChecksumType::None).unwrap();
        buf[20] = 5; // nr_keys = 5 with no entries
        let h = NodeHeader::decode(&buf, ChecksumType::None).unwrap();
        let r: Vec<_> = h.entries(&buf).collect();
        assert_eq!(r.len(), 1);
        assert!(r[0].is_err());
    }

    #[test]
    fn ptr_round_trip() {
        let p = BtreePtr { dev: 1, level: 2, gen: 3, offset: 4, seq: 5 };
        let mut buf = [0u8; BTREE_PTR_BYTES];
        p.encode(&mut buf).unwrap();
        assert_eq!(BtreePtr::decode(&buf), Ok(p));
    }
}
