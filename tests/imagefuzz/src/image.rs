//! Reading and rewriting the structures of an arborfs image in place, with
//! their checksums recomputed, so that a changed field reaches the engine
//! instead of being stopped by a checksum.

use arborfs_engine::format::bytes::Writer;
use arborfs_engine::format::checksum::ChecksumType;
use arborfs_engine::format::journal::{finish_entry, JournalHeader, Record, JOURNAL_HEADER_BYTES};
use arborfs_engine::format::node::{BtreePtr, NodeBuilder, NodeHeader};
use arborfs_engine::format::superblock::{Superblock, SB_BYTES, SB_OFFSETS};
use arborfs_engine::format::{round_up, BtreeId, KeyType, Pos};

/// An image in memory.
#[derive(Clone)]
pub struct Image {
    /// The device's bytes.
    pub bytes: Vec<u8>,
}

/// A node found by walking the trees.
#[derive(Debug, Clone, Copy)]
pub struct NodeRef {
    /// Which tree.
    pub btree: BtreeId,
    /// Byte offset on the device.
    pub offset: u64,
    /// Height above the leaves.
    pub level: u8,
}

/// A decoded node that can be changed and written back.
#[derive(Debug, Clone)]
pub struct NodeImage {
    /// Which tree.
    pub btree: BtreeId,
    /// Level.
    pub level: u8,
    /// Sequence.
    pub seq: u64,
    /// Smallest position covered.
    pub min: Pos,
    /// Largest position covered.
    pub max: Pos,
    /// Entries in order.
    pub entries: Vec<(Pos, KeyType, Vec<u8>)>,
}

/// A journal record with its value owned.
#[derive(Debug, Clone)]
pub enum OwnedRecord {
    /// A key set or deleted.
    Update {
        /// Tree.
        btree: BtreeId,
        /// Position.
        pos: Pos,
        /// Type, or delete.
        kind: Option<KeyType>,
        /// Value.
        value: Vec<u8>,
    },
    /// Counter deltas.
    Accounting {
        /// Inode delta.
        inodes: i64,
        /// Data delta.
        data_bytes: i64,
    },
    /// The entry was written without a flush before it.
    Unordered,
}

/// A journal entry found by following the replay rules.
#[derive(Debug, Clone)]
pub struct EntryImage {
    /// Absolute byte offset on the device.
    pub at: u64,
    /// Padded length.
    pub padded: u64,
    /// Sequence.
    pub seq: u64,
    /// File system tag.
    pub fs_tag: u32,
    /// Records.
    pub records: Vec<OwnedRecord>,
}

impl Image {
    /// The newest valid superblock copy.
    pub fn sb(&self) -> Option<Superblock> {
        SB_OFFSETS
            .iter()
            .filter_map(|&o| self.bytes.get(o as usize..).and_then(|b| Superblock::decode(b).ok()))
            .max_by_key(|s| s.seq)
    }

    /// Write `sb` to every copy.
    pub fn write_super(&mut self, sb: &Superblock) {
        let mut buf = vec![0u8; SB_BYTES];
        if sb.encode(&mut buf).is_err() {
            return;
        }
        for o in SB_OFFSETS {
            if let Some(dst) = self.bytes.get_mut(o as usize..o as usize + SB_BYTES) {
                dst.copy_from_slice(&buf);
            }
        }
    }

    /// Decode the node at `offset`.
    pub fn read_node(&self, offset: u64, node_size: usize, csum: ChecksumType) -> Option<NodeImage> {
        let buf = self.bytes.get(offset as usize..(offset as usize).checked_add(node_size)?)?;
        let h = NodeHeader::decode(buf, csum).ok()?;
        let mut entries = Vec::new();
        for e in h.entries(buf) {
            let e = e.ok()?;
            entries.push((e.pos, KeyType::from_u8(e.kind).ok()?, e.value.to_vec()));
        }
        Some(NodeImage {
            btree: h.btree,
            level: h.level,
            seq: h.seq,
            min: h.min_key,
            max: h.max_key,
            entries,
        })
    }

    /// Encode `n` at `offset` with a valid checksum. False if it does not fit.
    pub fn write_node(&mut self, offset: u64, node_size: usize, csum: ChecksumType, n: &NodeImage) -> bool {
        let mut buf = vec![0u8; node_size];
        let Ok(mut b) = NodeBuilder::new(&mut buf) else { return false };
        for (pos, kind, v) in &n.entries {
            if b.push(*pos, *kind, v).is_err() {
                return false;
            }
        }
        if b.finish(n.btree, n.level, n.seq, n.min, n.max, csum).is_err() {
            return false;
        }
        match self.bytes.get_mut(offset as usize..offset as usize + node_size) {
            Some(dst) => {
                dst.copy_from_slice(&buf);
                true
            }
            None => false,
        }
    }

    /// Every node reachable from the superblock's roots (bounded).
    pub fn nodes(&self) -> Vec<NodeRef> {
        let Some(sb) = self.sb() else { return Vec::new() };
        let ns = sb.node_size as usize;
        let mut out = Vec::new();
        let mut stack: Vec<(BtreeId, BtreePtr)> = Vec::new();
        for id in BtreeId::ALL {
            let r = sb.roots[id.index()];
            if r.offset != 0 {
                stack.push((id, r));
            }
        }
        while let Some((id, p)) = stack.pop() {
            if out.len() > 100_000 {
                break;
            }
            let Some(n) = self.read_node(p.offset, ns, sb.meta_csum) else { continue };
            out.push(NodeRef { btree: id, offset: p.offset, level: n.level });
            if n.level > 0 {
                for (_, _, v) in &n.entries {
                    if let Ok(c) = BtreePtr::decode(v) {
                        if c.dev == 0 && c.level + 1 == n.level {
                            stack.push((id, c));
                        }
                    }
                }
            }
        }
        out
    }

    /// Journal entries after the checkpoint, as replay finds them.
    pub fn journal_entries(&self) -> Vec<EntryImage> {
        let Some(sb) = self.sb() else { return Vec::new() };
        let mut at = sb.journal_resume;
        let mut out = Vec::new();
        for seq in (sb.checkpoint_seq + 1..).take(10_000) {
            let found =
                self.entry_at(&sb, at, seq)
                    .or_else(|| if at != 0 { self.entry_at(&sb, 0, seq) } else { None });
            let Some(e) = found else { break };
            at = e.at - sb.journal_offset + e.padded;
            if at >= sb.journal_size {
                at = 0;
            }
            out.push(e);
        }
        out
    }

    fn entry_at(&self, sb: &Superblock, ring_at: u64, seq: u64) -> Option<EntryImage> {
        let abs = sb.journal_offset + ring_at;
        let block = u64::from(sb.block_size);
        let head = self.bytes.get(abs as usize..(abs + block) as usize)?;
        let len = JournalHeader::peek_len(head).ok()?;
        let padded = round_up(u64::from(len), block)?;
        if ring_at + padded > sb.journal_size || padded == 0 {
            return None;
        }
        let buf = self.bytes.get(abs as usize..(abs + padded) as usize)?;
        let h = JournalHeader::decode(buf, sb.meta_csum).ok()?;
        if h.seq != seq {
            return None;
        }
        let mut records = Vec::new();
        for r in h.records(buf) {
            records.push(match r.ok()? {
                Record::BtreeUpdate { btree, pos, kind, value } => {
                    OwnedRecord::Update { btree, pos, kind, value: value.to_vec() }
                }
                Record::Accounting { inodes, data_bytes } => OwnedRecord::Accounting { inodes, data_bytes },
                Record::Unordered => OwnedRecord::Unordered,
            });
        }
        Some(EntryImage { at: abs, padded, seq, fs_tag: h.fs_tag, records })
    }

    /// Encode `e` in place with a valid checksum, if it fits its old length.
    pub fn write_entry(&mut self, e: &EntryImage, csum: ChecksumType) -> bool {
        let mut buf = vec![0u8; e.padded as usize];
        let mut len = JOURNAL_HEADER_BYTES;
        for r in &e.records {
            let rec = match r {
                OwnedRecord::Update { btree, pos, kind, value } => {
                    Record::BtreeUpdate { btree: *btree, pos: *pos, kind: *kind, value }
                }
                OwnedRecord::Accounting { inodes, data_bytes } => {
                    Record::Accounting { inodes: *inodes, data_bytes: *data_bytes }
                }
                OwnedRecord::Unordered => Record::Unordered,
            };
            let Some(dst) = buf.get_mut(len..) else { return false };
            if dst.len() < rec.encoded_len() {
                return false;
            }
            let mut w = Writer::new(dst);
            if rec.encode(&mut w).is_err() {
                return false;
            }
            len += w.position();
        }
        if finish_entry(&mut buf, len, e.seq, e.records.len() as u32, e.fs_tag, csum).is_err() {
            return false;
        }
        match self.bytes.get_mut(e.at as usize..(e.at + e.padded) as usize) {
            Some(dst) => {
                dst.copy_from_slice(&buf);
                true
            }
            None => false,
        }
    }

    /// The leaf of `btree` whose range holds `pos` (descending from the root).
    pub fn leaf_for(&self, btree: BtreeId, pos: Pos) -> Option<u64> {
        let sb = self.sb()?;
        let ns = sb.node_size as usize;
        let mut p = sb.roots[btree.index()];
        for _ in 0..8 {
            let n = self.read_node(p.offset, ns, sb.meta_csum)?;
            if n.level == 0 {
                return Some(p.offset);
            }
            let i = n.entries.iter().rposition(|e| e.0 <= pos).unwrap_or(0);
            p = BtreePtr::decode(&n.entries.get(i)?.2).ok()?;
        }
        None
    }

    /// Change the leaf holding `pos` in `btree` through `f` (which gets the
    /// entries and the index where `pos` is or would go), then write it
    /// back with a valid checksum.
    pub fn edit_leaf(
        &mut self,
        btree: BtreeId,
        pos: Pos,
        f: impl FnOnce(&mut Vec<(Pos, KeyType, Vec<u8>)>, usize),
    ) -> bool {
        let Some(sb) = self.sb() else { return false };
        let ns = sb.node_size as usize;
        let Some(at) = self.leaf_for(btree, pos) else { return false };
        let Some(mut n) = self.read_node(at, ns, sb.meta_csum) else { return false };
        let i = n.entries.partition_point(|e| e.0 < pos);
        f(&mut n.entries, i);
        self.write_node(at, ns, sb.meta_csum, &n)
    }

    /// The value of the key at `pos`, if the leaf holds it.
    pub fn get(&self, btree: BtreeId, pos: Pos) -> Option<Vec<u8>> {
        let sb = self.sb()?;
        let n = self.read_node(self.leaf_for(btree, pos)?, sb.node_size as usize, sb.meta_csum)?;
        n.entries.into_iter().find(|e| e.0 == pos).map(|e| e.2)
    }
}
