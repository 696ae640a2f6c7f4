//! Copy-on-write b-trees: the roots of every tree and the node cache, over
//! a [`NodeStore`] that holds the nodes. Reads go through cursors
//! ([`cursor`]); changes (from a committing transaction, journal replay or
//! a checkpoint) through [`Btrees::set`] and [`Btrees::delete`], which copy
//! nodes on the way down ([`update`]) and split, merge and collapse them on
//! the way up ([`interior`]); [`write`] writes the dirty nodes at a
//! checkpoint, children first.
//!
//! A node's range comes from its parent: child `i` covers from its key (the
//! parent's `min` for `i == 0`) up to the next key minus one (the parent's
//! `max` for the last child). A node's own header range may be narrower
//! than what its parent assigns (after an empty sibling was dropped); it is
//! widened when the node is next made dirty.
//!
//! The b-tree knows nothing of buckets, devices or the journal: node places
//! come from the store, and it is the store that checks pointers against
//! bucket generations.

pub mod cache;
pub mod check;
pub mod cursor;
pub mod interior;
pub mod node;
pub mod store;
pub mod update;
pub mod write;

#[cfg(test)]
pub(crate) mod tests;

use crate::error::{Error, Result};
use crate::format::key::BTREE_ID_NR;
use crate::format::node::{BtreePtr, NodeHeader, MAX_DEPTH};
use crate::format::{
    alloc_info::AllocInfo, dirent::Dirent, extent::Extent, inode::Inode, xattr::Xattr, BtreeId, KeyType, Pos,
};
use crate::sys::TryVec;
use cache::NodeCache;
use node::{ChildRef, Node};
pub use store::NodeStore;

/// Check that a leaf value decodes as its type says.
pub fn validate_value(btree: BtreeId, kind: KeyType, val: &[u8]) -> core::result::Result<(), &'static str> {
    let ok = match kind {
        KeyType::Inode => Inode::decode(val).is_ok(),
        KeyType::Dirent => Dirent::decode(val).is_ok(),
        KeyType::Extent => Extent::decode(val).is_ok(),
        KeyType::InlineData => !val.is_empty(),
        KeyType::Xattr => Xattr::decode(val).is_ok(),
        KeyType::Alloc => AllocInfo::decode(val).is_ok(),
        KeyType::Orphan => val.is_empty(),
        KeyType::BtreePtr => false,
    };
    if ok && btree.allows(kind) {
        Ok(())
    } else {
        Err("malformed value")
    }
}

/// Every b-tree of one file system: roots and the node cache.
pub struct Btrees {
    roots: [Option<ChildRef>; BTREE_ID_NR],
    /// Nodes in memory.
    pub cache: NodeCache,
    /// Nodes changed since they were last written.
    pub dirty_nodes: usize,
    node_size: usize,
    /// Node images are read into and encoded in this buffer.
    buf: TryVec<u8>,
    /// Nodes written since the trees were opened.
    pub nodes_written: u64,
    /// Descents from a root to a leaf (cursors make one per leaf).
    pub descents: u64,
}

impl Btrees {
    /// Trees with the given on-disk roots (offset 0: empty tree), nodes of
    /// `node_size` bytes, and a cache budget.
    pub fn new(roots: &[BtreePtr], node_size: usize, cache_budget: usize) -> Self {
        let mut r = [None; BTREE_ID_NR];
        for (i, slot) in r.iter_mut().enumerate() {
            *slot = roots.get(i).filter(|p| p.offset != 0).map(|p| ChildRef::Disk(*p));
        }
        Btrees {
            roots: r,
            cache: NodeCache::new(cache_budget),
            dirty_nodes: 0,
            node_size,
            buf: TryVec::new(),
            nodes_written: 0,
            descents: 0,
        }
    }

    /// Largest value a key may carry: a node must hold at least four keys.
    pub fn max_value_bytes(&self) -> usize {
        crate::format::node::max_value_bytes(self.node_size as u32)
    }

    /// The root of `btree` as the superblock records it: its disk location
    /// once written, none for an empty tree. `Err` while it is dirty.
    pub fn disk_root(&self, btree: BtreeId) -> Result<Option<BtreePtr>> {
        match self.roots.get(btree.index()).copied().flatten() {
            None => Ok(None),
            Some(ChildRef::Disk(p)) => Ok(Some(p)),
            Some(ChildRef::Mem(_)) => Err(Error::Internal("dirty root after writing")),
        }
    }

    /// Levels of `btree` (0: empty): a change dirties at most this many
    /// nodes on its path.
    pub fn depth(&self, btree: BtreeId) -> u64 {
        match self.root(btree) {
            None => 0,
            Some(ChildRef::Disk(p)) => u64::from(p.level) + 1,
            Some(ChildRef::Mem(slot)) => self.cache.get(slot).map_or(1, |n| u64::from(n.level) + 1),
        }
    }

    pub(crate) fn root(&self, btree: BtreeId) -> Option<ChildRef> {
        self.roots.get(btree.index()).copied().flatten()
    }

    pub(crate) fn set_root(&mut self, btree: BtreeId, r: Option<ChildRef>) -> Result<()> {
        *self.roots.get_mut(btree.index()).ok_or(Error::Internal("btree id"))? = r;
        Ok(())
    }

    /// Drop clean cached nodes down to `target` bytes. Only between
    /// operations: no caller holds a cache slot then.
    pub fn shrink(&mut self, target: usize) -> Result<usize> {
        self.cache.shrink(target)
    }

    /// Trim the cache when it is over its budget.
    pub fn trim(&mut self) -> Result<()> {
        if self.cache.bytes > self.cache.budget {
            self.cache.shrink(self.cache.budget * 3 / 4)?;
        }
        Ok(())
    }

    /// Read and verify the node at `p`, expected to be of `btree` at
    /// `p.level` and to cover no more than `[min, max]`.
    pub fn read_node(
        &mut self,
        store: &mut dyn NodeStore,
        p: BtreePtr,
        btree: BtreeId,
        min: Pos,
        max: Pos,
    ) -> Result<Node> {
        let bad = |why| Error::BadNode { btree, why, dev: p.dev, offset: p.offset };
        let node_size = self.node_size;
        if self.buf.len() < node_size {
            self.buf.try_resize(node_size, 0)?;
        }
        let buf = self.buf.get_mut(..node_size).ok_or(Error::Internal("node buffer"))?;
        // The store refuses pointers that cannot be right (outside the
        // layout, stale) as corrupt; those are this node's fault.
        store.read(&p, buf).map_err(|e| match e {
            Error::Corrupt(why) => bad(why),
            e => e,
        })?;
        let h = NodeHeader::decode(buf, store.checksum()).map_err(|err| Error::BadMetadata {
            what: "b-tree node",
            err,
            dev: p.dev,
            offset: p.offset,
        })?;
        if h.btree != btree {
            return Err(bad("node belongs to another b-tree"));
        }
        if h.level != p.level {
            return Err(bad("node level differs from its pointer"));
        }
        if h.seq != p.seq {
            return Err(bad("node sequence differs from its pointer (stale or misdirected write)"));
        }
        if h.min_key < min || h.max_key > max {
            return Err(bad("node range outside the range its parent gives"));
        }
        let mut n = Node::decode(&h, buf).map_err(bad)?;
        n.disk = Some(p);
        Ok(n)
    }

    /// The cache slot of the node at `p`, reading it if needed.
    pub(crate) fn load(
        &mut self,
        store: &mut dyn NodeStore,
        p: BtreePtr,
        btree: BtreeId,
        min: Pos,
        max: Pos,
    ) -> Result<u32> {
        if let Some(slot) = self.cache.lookup(&p) {
            return Ok(slot);
        }
        let n = self.read_node(store, p, btree, min, max)?;
        self.cache.insert(n)
    }

    /// The slot of the node a child reference names.
    pub(crate) fn child_slot(
        &mut self,
        store: &mut dyn NodeStore,
        r: ChildRef,
        btree: BtreeId,
        min: Pos,
        max: Pos,
    ) -> Result<u32> {
        match r {
            ChildRef::Mem(s) => Ok(s),
            ChildRef::Disk(p) => self.load(store, p, btree, min, max),
        }
    }

    /// The leaf covering `pos` and the range it covers.
    pub(crate) fn find_leaf(
        &mut self,
        store: &mut dyn NodeStore,
        btree: BtreeId,
        pos: Pos,
    ) -> Result<Option<(u32, Pos, Pos)>> {
        let Some(root) = self.root(btree) else { return Ok(None) };
        self.descents += 1;
        let (mut min, mut max) = (Pos::MIN, Pos::MAX);
        let mut slot = self.child_slot(store, root, btree, min, max)?;
        for _ in 0..MAX_DEPTH {
            let n = self.cache.get_mut(slot)?;
            if n.level == 0 {
                return Ok(Some((slot, min, max)));
            }
            let i = n.child_index(pos);
            let (cmin, cmax) = n.child_range(i, min, max);
            let child = ChildRef::decode(n.value(i)?)?;
            slot = self.child_slot(store, child, btree, cmin, cmax)?;
            (min, max) = (cmin, cmax);
        }
        Err(Error::Corrupt("b-tree deeper than the maximum depth"))
    }
}
