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

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::error::{Error, Result};
use crate::format::checksum::ChecksumType;
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
    pub descents: AtomicU64,
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
            descents: AtomicU64::new(0),
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
        // The store refuses pointers that cannot be right (outside the
        // layout, stale) as corrupt; those are this node's fault.
        let buf = self.read_image(store, p).map_err(|e| match e {
            Error::Corrupt(why) => Error::BadNode { btree, why, dev: p.dev, offset: p.offset },
            e => e,
        })?;
        decode_node(buf, store.checksum(), p, btree, min, max)
    }

    /// The image of the node at `p`, read into the trees' node buffer.
    pub(crate) fn read_image(&mut self, store: &mut dyn NodeStore, p: BtreePtr) -> Result<&mut [u8]> {
        let node_size = self.node_size;
        if self.buf.len() < node_size {
            self.buf.try_resize(node_size, 0)?;
        }
        let buf = self.buf.get_mut(..node_size).ok_or(Error::Internal("node buffer"))?;
        store.read(&p, buf)?;
        Ok(buf)
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

    /// The leaf covering `pos` and the range it covers, reading nodes
    /// from `store` as needed.
    pub(crate) fn find_leaf(
        &mut self,
        store: &mut dyn NodeStore,
        btree: BtreeId,
        pos: Pos,
    ) -> Result<Option<(u32, Pos, Pos)>> {
        find_leaf(&mut Loading { trees: self, store }, btree, pos)
    }

    /// A view of the trees that reads no node: [`Error::NotCached`] where
    /// a descent needs one that is on disk only, recorded in `miss` (the
    /// trees' nodes carry checksums of type `csum`). What shared readers use.
    pub fn cached<'a>(&'a self, csum: ChecksumType, miss: &'a mut Option<NodeMiss>) -> Cached<'a> {
        Cached { trees: self, miss, csum }
    }

    /// Take in a node a shared reader found missing ([`NodeMiss`]) and
    /// its caller read and decoded without the lock: it is cached if the
    /// live tree still points at it (same place and sequence, from a
    /// parent in memory, over a range that holds it) and nothing caches
    /// it yet. Returns whether it was; a node refused is only dropped.
    pub fn adopt(&mut self, miss: &NodeMiss, node: Node) -> Result<bool> {
        if node.disk != Some(miss.ptr) || self.cache.lookup(&miss.ptr).is_some() {
            return Ok(false);
        }
        let want = ChildRef::Disk(miss.ptr);
        let Some(mut r) = self.root(miss.btree) else { return Ok(false) };
        let (mut min, mut max) = (Pos::MIN, Pos::MAX);
        for _ in 0..=MAX_DEPTH {
            if r == want {
                if node.min < min || node.max > max {
                    return Ok(false);
                }
                self.cache.insert(node)?;
                return Ok(true);
            }
            let slot = match r {
                ChildRef::Mem(s) => s,
                ChildRef::Disk(p) => match self.cache.lookup(&p) {
                    Some(s) => s,
                    None => return Ok(false),
                },
            };
            let n = self.cache.get(slot)?;
            if n.level <= miss.ptr.level {
                return Ok(false);
            }
            let i = n.child_index(node.min);
            (min, max) = n.child_range(i, min, max);
            r = ChildRef::decode(n.value(i)?)?;
        }
        Ok(false)
    }
}

/// A node a shared reader needed and did not find in memory: where it is
/// and what it must be, all that reading and checking it takes without
/// the file system ([`NodeMiss::decode`]), before [`Btrees::adopt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeMiss {
    /// Where the node is, as its parent points at it.
    pub ptr: BtreePtr,
    /// Its b-tree.
    pub btree: BtreeId,
    /// The range its parent gives it: first position...
    pub min: Pos,
    /// ...and last.
    pub max: Pos,
    /// Bytes to read at `ptr.offset`.
    pub node_size: u32,
    /// The checksum its image carries.
    pub csum: ChecksumType,
}

impl NodeMiss {
    /// Verify and decode the node image read at `ptr` (`node_size` bytes).
    pub fn decode(&self, image: &[u8]) -> Result<Node> {
        decode_node(image, self.csum, self.ptr, self.btree, self.min, self.max)
    }
}

/// Verify and decode a node image read at `p`, expected to be of `btree`
/// at `p.level` and to cover no more than `[min, max]`.
pub fn decode_node(
    buf: &[u8],
    csum: ChecksumType,
    p: BtreePtr,
    btree: BtreeId,
    min: Pos,
    max: Pos,
) -> Result<Node> {
    let bad = |why| Error::BadNode { btree, why, dev: p.dev, offset: p.offset };
    let h = NodeHeader::decode(buf, csum).map_err(|err| Error::BadMetadata {
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

/// How a descent reaches the nodes it passes: [`Loading`] reads those not
/// in memory; [`Cached`] (the trees shared by several readers, so
/// unchanged) refuses them. Cursors step through either.
pub trait Nodes {
    /// The trees.
    fn trees(&self) -> &Btrees;
    /// The cache slot of the node `r` names (of `btree`, covering no more
    /// than `[min, max]`).
    fn slot(&mut self, r: ChildRef, btree: BtreeId, min: Pos, max: Pos) -> Result<u32>;
    /// Between cursor steps, when no slot is held: keep the cache in budget.
    fn settle(&mut self) -> Result<()>;
    /// The node in `slot`, marked used, as a descent passes through it.
    fn visit(&mut self, slot: u32) -> Result<&Node>;
    /// Count a descent from a root.
    fn count_descent(&mut self);
}

/// The trees held exclusively, over the store their nodes are read from.
pub struct Loading<'a> {
    /// The trees.
    pub trees: &'a mut Btrees,
    /// Where missing nodes are read from.
    pub store: &'a mut dyn NodeStore,
}

impl Nodes for Loading<'_> {
    fn trees(&self) -> &Btrees {
        self.trees
    }

    fn slot(&mut self, r: ChildRef, btree: BtreeId, min: Pos, max: Pos) -> Result<u32> {
        self.trees.child_slot(self.store, r, btree, min, max)
    }

    fn settle(&mut self) -> Result<()> {
        self.trees.trim()
    }

    fn visit(&mut self, slot: u32) -> Result<&Node> {
        Ok(self.trees.cache.get_mut(slot)?)
    }

    fn count_descent(&mut self) {
        *self.trees.descents.get_mut() += 1;
    }
}

/// The trees shared with other readers: cached nodes only ([`Btrees::cached`]).
pub struct Cached<'a> {
    trees: &'a Btrees,
    /// Where the first node found missing is recorded.
    miss: &'a mut Option<NodeMiss>,
    csum: ChecksumType,
}

impl Nodes for Cached<'_> {
    fn trees(&self) -> &Btrees {
        self.trees
    }

    fn slot(&mut self, r: ChildRef, btree: BtreeId, min: Pos, max: Pos) -> Result<u32> {
        match r {
            ChildRef::Mem(s) => Ok(s),
            ChildRef::Disk(p) => self.trees.cache.lookup(&p).ok_or_else(|| {
                let node_size = self.trees.node_size as u32;
                *self.miss = Some(NodeMiss { ptr: p, btree, min, max, node_size, csum: self.csum });
                Error::NotCached
            }),
        }
    }

    fn settle(&mut self) -> Result<()> {
        Ok(())
    }

    fn visit(&mut self, slot: u32) -> Result<&Node> {
        self.trees.cache.touch(slot)
    }

    fn count_descent(&mut self) {
        self.trees.descents.fetch_add(1, Relaxed);
    }
}

/// The leaf covering `pos` and the range it covers.
pub(crate) fn find_leaf<N: Nodes>(
    nodes: &mut N,
    btree: BtreeId,
    pos: Pos,
) -> Result<Option<(u32, Pos, Pos)>> {
    let Some(root) = nodes.trees().root(btree) else { return Ok(None) };
    nodes.count_descent();
    let (mut min, mut max) = (Pos::MIN, Pos::MAX);
    let mut slot = nodes.slot(root, btree, min, max)?;
    for _ in 0..MAX_DEPTH {
        let n = nodes.visit(slot)?;
        if n.level == 0 {
            return Ok(Some((slot, min, max)));
        }
        let i = n.child_index(pos);
        let (cmin, cmax) = n.child_range(i, min, max);
        let child = ChildRef::decode(n.value(i)?)?;
        slot = nodes.slot(child, btree, cmin, cmax)?;
        (min, max) = (cmin, cmax);
    }
    Err(Error::Corrupt("b-tree deeper than the maximum depth"))
}
