//! In-memory b-tree nodes: sorted key references over a value arena, and the
//! conversion to and from the on-disk node image.

use crate::error::{Error, Result};
use crate::format::node::{
    BtreePtr, NodeBuilder, NodeHeader, BTREE_PTR_BYTES, ENTRY_HEADER_BYTES, NODE_HEADER_BYTES,
};
use crate::format::{checksum::ChecksumType, BtreeId, KeyType, Pos};
use crate::sys::TryVec;
use core::sync::atomic::AtomicU64;

/// Device index that marks a child reference as "in memory, not yet written";
/// its `offset` is then a cache slot. Never written to disk.
pub const MEM_DEV: u8 = 0xFF;

/// Where a child node (or a root) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildRef {
    /// Written on disk at this pointer (possibly also cached).
    Disk(BtreePtr),
    /// Only in memory, in this cache slot (dirty).
    Mem(u32),
}

impl ChildRef {
    /// Decode an interior node value.
    pub fn decode(val: &[u8]) -> Result<Self> {
        let p = BtreePtr::decode(val).map_err(|_| Error::Internal("bad child pointer in memory"))?;
        Ok(if p.dev == MEM_DEV {
            ChildRef::Mem(u32::try_from(p.offset).map_err(|_| Error::Internal("bad slot"))?)
        } else {
            ChildRef::Disk(p)
        })
    }

    /// Encode as an interior node value.
    pub fn encode(&self) -> [u8; BTREE_PTR_BYTES] {
        let p = match *self {
            ChildRef::Disk(p) => p,
            ChildRef::Mem(slot) => {
                BtreePtr { dev: MEM_DEV, level: 0, gen: 0, offset: u64::from(slot), seq: 0 }
            }
        };
        let mut buf = [0u8; BTREE_PTR_BYTES];
        // A 24-byte buffer always holds a pointer.
        let _ = p.encode(&mut buf);
        buf
    }
}

/// A key in a node: position, type and where its value sits in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef {
    /// Position.
    pub pos: Pos,
    /// Type.
    pub kind: KeyType,
    off: u32,
    len: u32,
}

/// A node held in the cache.
pub struct Node {
    /// Which b-tree.
    pub btree: BtreeId,
    /// Height above the leaves.
    pub level: u8,
    /// Smallest position this node covers.
    pub min: Pos,
    /// Largest position this node covers.
    pub max: Pos,
    /// Keys in ascending order.
    pub keys: TryVec<KeyRef>,
    vals: TryVec<u8>,
    garbage: usize,
    /// Encoded size of the node image.
    pub bytes: usize,
    /// Where the node is on disk while it is clean.
    pub disk: Option<BtreePtr>,
    /// Changed since written (or never written).
    pub dirty: bool,
    /// Last use, for eviction (shared readers mark it too).
    pub lru: AtomicU64,
}

impl Node {
    /// An empty node.
    pub fn new(btree: BtreeId, level: u8, min: Pos, max: Pos) -> Self {
        Node {
            btree,
            level,
            min,
            max,
            keys: TryVec::new(),
            vals: TryVec::new(),
            garbage: 0,
            bytes: NODE_HEADER_BYTES,
            disk: None,
            dirty: true,
            lru: AtomicU64::new(0),
        }
    }

    /// Memory this node holds, for the cache budget.
    pub fn mem_bytes(&self) -> usize {
        self.keys.len() * core::mem::size_of::<KeyRef>() + self.vals.len() + 128
    }

    /// Value of key `i`.
    pub fn value(&self, i: usize) -> Result<&[u8]> {
        let k = self.keys.get(i).ok_or(Error::Internal("key index out of range"))?;
        let start = k.off as usize;
        self.vals.get(start..start + k.len as usize).ok_or(Error::Internal("value out of arena"))
    }

    /// Index of the first key `>= pos`.
    pub fn lower_bound(&self, pos: Pos) -> usize {
        self.keys.partition_point(|k| k.pos < pos)
    }

    /// For interior nodes: index of the child covering `pos`.
    pub fn child_index(&self, pos: Pos) -> usize {
        self.keys.partition_point(|k| k.pos <= pos).saturating_sub(1)
    }

    /// Range covered by child `i` of this interior node, whose own range
    /// is `[min, max]` (a child's range comes from its parent: from its key,
    /// or `min` for the first child, to the next key minus one, or `max`).
    pub fn child_range(&self, i: usize, min: Pos, max: Pos) -> (Pos, Pos) {
        let cmin = if i == 0 { min } else { self.keys.get(i).map_or(min, |k| k.pos) };
        let cmax = match self.keys.get(i + 1) {
            Some(next) => next.pos.predecessor().unwrap_or(Pos::MIN),
            None => max,
        };
        (cmin, cmax)
    }

    fn push_value(&mut self, val: &[u8]) -> Result<(u32, u32)> {
        let off = u32::try_from(self.vals.len()).map_err(|_| Error::NoMem)?;
        let len = u32::try_from(val.len()).map_err(|_| Error::Invalid)?;
        self.vals.try_extend_from_slice(val)?;
        Ok((off, len))
    }

    /// Set `pos` to (`kind`, `val`), inserting or replacing.
    pub fn set(&mut self, pos: Pos, kind: KeyType, val: &[u8]) -> Result<()> {
        let i = self.lower_bound(pos);
        match self.keys.get(i).copied() {
            Some(k) if k.pos == pos => {
                let (off, len) = if k.len as usize == val.len() {
                    let start = k.off as usize;
                    self.vals
                        .get_mut(start..start + val.len())
                        .ok_or(Error::Internal("value out of arena"))?
                        .copy_from_slice(val);
                    (k.off, k.len)
                } else {
                    let r = self.push_value(val)?;
                    self.garbage += k.len as usize;
                    r
                };
                self.bytes = self.bytes + val.len() - k.len as usize;
                if let Some(slot) = self.keys.get_mut(i) {
                    *slot = KeyRef { pos, kind, off, len };
                }
            }
            _ => {
                let (off, len) = self.push_value(val)?;
                self.keys.try_insert(i, KeyRef { pos, kind, off, len })?;
                self.bytes += ENTRY_HEADER_BYTES + val.len();
            }
        }
        self.maybe_compact()
    }

    /// Remove `pos`; returns whether it was there.
    pub fn delete(&mut self, pos: Pos) -> bool {
        let i = self.lower_bound(pos);
        match self.keys.get(i) {
            Some(k) if k.pos == pos => {
                let len = k.len as usize;
                self.keys.remove(i);
                self.garbage += len;
                self.bytes -= ENTRY_HEADER_BYTES + len;
                true
            }
            _ => false,
        }
    }

    /// Remove key `i` (interior nodes removing a child).
    pub fn delete_index(&mut self, i: usize) {
        if let Some(k) = self.keys.remove(i) {
            self.garbage += k.len as usize;
            self.bytes -= ENTRY_HEADER_BYTES + k.len as usize;
        }
    }

    /// Change the position of key `i` (keeps order: callers only lower the
    /// first key of an interior node to the node's min).
    pub fn set_pos(&mut self, i: usize, pos: Pos) {
        if let Some(k) = self.keys.get_mut(i) {
            k.pos = pos;
        }
    }

    /// Rewrite the value arena without garbage when garbage dominates.
    fn maybe_compact(&mut self) -> Result<()> {
        if self.garbage < 4096 || self.garbage * 2 < self.vals.len() {
            return Ok(());
        }
        self.compact()
    }

    fn compact(&mut self) -> Result<()> {
        let mut vals = TryVec::new();
        vals.try_reserve(self.vals.len().saturating_sub(self.garbage))?;
        for k in self.keys.iter_mut() {
            let start = k.off as usize;
            let v =
                self.vals.get(start..start + k.len as usize).ok_or(Error::Internal("value out of arena"))?;
            k.off = u32::try_from(vals.len()).map_err(|_| Error::NoMem)?;
            vals.try_extend_from_slice(v)?;
        }
        self.vals = vals;
        self.garbage = 0;
        Ok(())
    }

    /// Move keys `[at..]` into a new node covering `[keys[at].pos, self.max]`.
    pub fn split_off(&mut self, at: usize) -> Result<Node> {
        let first = self.keys.get(at).ok_or(Error::Internal("split point out of range"))?.pos;
        let mut right = Node::new(self.btree, self.level, first, self.max);
        for i in at..self.keys.len() {
            let k = *self.keys.get(i).ok_or(Error::Internal("split"))?;
            let v = self.value(i)?;
            let (off, len) = right.push_value(v)?;
            right.keys.try_push(KeyRef { off, len, ..k })?;
            right.bytes += ENTRY_HEADER_BYTES + len as usize;
        }
        let moved = right.bytes - NODE_HEADER_BYTES;
        self.keys.truncate(at);
        self.bytes -= moved;
        // The moved values stay in our arena until the compaction below.
        self.garbage += right.vals.len();
        self.max = first.predecessor().ok_or(Error::Internal("split at MIN"))?;
        self.compact()?;
        Ok(right)
    }

    /// Append every key of `right` (which covers the range after ours).
    pub fn absorb(&mut self, right: &Node) -> Result<()> {
        for i in 0..right.keys.len() {
            let k = *right.keys.get(i).ok_or(Error::Internal("merge"))?;
            let (off, len) = self.push_value(right.value(i)?)?;
            self.keys.try_push(KeyRef { off, len, ..k })?;
            self.bytes += ENTRY_HEADER_BYTES + len as usize;
        }
        self.max = right.max;
        Ok(())
    }

    /// Index at which to split so both halves hold about half the bytes.
    pub fn split_point(&self) -> usize {
        let half = (self.bytes - NODE_HEADER_BYTES) / 2;
        let mut acc = 0;
        for (i, k) in self.keys.iter().enumerate() {
            acc += ENTRY_HEADER_BYTES + k.len as usize;
            if acc >= half {
                return (i + 1).clamp(1, self.keys.len().saturating_sub(1).max(1));
            }
        }
        self.keys.len() / 2
    }

    /// Encode into `buf` (node size); returns the used length.
    pub fn encode(&self, buf: &mut [u8], seq: u64, csum: ChecksumType) -> Result<usize> {
        let mut b = NodeBuilder::new(buf).map_err(|_| Error::Internal("node buffer"))?;
        for i in 0..self.keys.len() {
            let k = self.keys.get(i).ok_or(Error::Internal("encode"))?;
            b.push(k.pos, k.kind, self.value(i)?).map_err(|_| Error::Internal("node overflow on write"))?;
        }
        b.finish(self.btree, self.level, seq, self.min, self.max, csum)
            .map_err(|_| Error::Internal("node overflow on write"))
    }

    /// Decode a node image whose header decoded as `h`, checking key order,
    /// bounds and key types. Values are validated by [`crate::btree::validate_value`].
    pub fn decode(h: &NodeHeader, buf: &[u8]) -> core::result::Result<Node, &'static str> {
        let mut n = Node::new(h.btree, h.level, h.min_key, h.max_key);
        n.dirty = false;
        let mut prev: Option<Pos> = None;
        for e in h.entries(buf) {
            let e = e.map_err(|_| "malformed entry")?;
            let kind = KeyType::from_u8(e.kind).map_err(|_| "unknown key type")?;
            if prev.is_some_and(|p| p >= e.pos) {
                return Err("keys out of order");
            }
            if e.pos < h.min_key || e.pos > h.max_key {
                return Err("key outside node range");
            }
            if h.level > 0 {
                if kind != KeyType::BtreePtr {
                    return Err("interior node holds a non-pointer key");
                }
                let p = BtreePtr::decode(e.value).map_err(|_| "malformed child pointer")?;
                if p.dev == MEM_DEV || p.level.checked_add(1) != Some(h.level) {
                    return Err("child pointer with bad device or level");
                }
            } else {
                if !h.btree.allows(kind) {
                    return Err("key type not allowed in this b-tree");
                }
                super::validate_value(h.btree, kind, e.value)?;
            }
            prev = Some(e.pos);
            let (off, len) = n.push_value(e.value).map_err(|_| "out of memory")?;
            n.keys.try_push(KeyRef { pos: e.pos, kind, off, len }).map_err(|_| "out of memory")?;
            n.bytes += ENTRY_HEADER_BYTES + e.value.len();
        }
        if h.level > 0 && n.keys.first().is_none_or(|k| k.pos != h.min_key) {
            return Err("interior node's first key is not its min");
        }
        Ok(n)
    }
}
