//! Copy-on-write b-trees: lookup, iteration and update of keys, with nodes
//! loaded through the cache and made dirty (copied) along the update path.
//!
//! A node's range comes from its parent: child `i` covers from its key (the
//! parent's `min` for `i == 0`) up to the next key minus one (the parent's `max`
//! for the last child). A node's own header range may be narrower than what its
//! parent assigns (after an empty sibling was dropped); it is widened when the
//! node is next made dirty. Dirty nodes are written by [`crate::journal`]'s
//! checkpoint, children first.

pub mod cache;
pub mod check;
pub mod node;
pub mod write;

use crate::error::{Error, Result};
use crate::format::node::{BtreePtr, NodeHeader, MAX_DEPTH, NODE_HEADER_BYTES};
use crate::format::{
    alloc_info::AllocInfo, dirent::Dirent, extent::Extent, inode::Inode, xattr::Xattr, BtreeId, KeyType, Pos,
};
use crate::fs::Fs;
use crate::sys::{BlockDevice, TryVec};
use node::{ChildRef, Node};

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

/// The nodes from a root down to a leaf, for updates.
struct Path {
    slots: [u32; MAX_DEPTH as usize],
    /// `idx[d]`: index within `slots[d]` of the child `slots[d + 1]`.
    idx: [usize; MAX_DEPTH as usize],
    depth: usize,
}

/// Range of child `i` of an interior node whose own range is `[min, max]`.
pub(crate) fn child_range(node: &Node, i: usize, min: Pos, max: Pos) -> (Pos, Pos) {
    let cmin = if i == 0 { min } else { node.keys.get(i).map_or(min, |k| k.pos) };
    let cmax = match node.keys.get(i + 1) {
        Some(next) => next.pos.predecessor().unwrap_or(Pos::MIN),
        None => max,
    };
    (cmin, cmax)
}

impl<D: BlockDevice> Fs<D> {
    /// Largest value a key may carry: a node must hold at least four keys.
    pub fn max_value_bytes(&self) -> usize {
        crate::format::node::max_value_bytes(self.sb.node_size)
    }

    /// Read and verify the node at `p`, expected to be of `btree` at `p.level`
    /// and to cover no more than `[min, max]`.
    pub(crate) fn read_node(&mut self, p: BtreePtr, btree: BtreeId, min: Pos, max: Pos) -> Result<Node> {
        let bad = |why| Error::BadNode { btree, why, dev: p.dev, offset: p.offset };
        let node_size = self.sb.node_size as usize;
        if self.io_buf.len() < node_size {
            self.io_buf.try_resize(node_size, 0)?;
        }
        self.check_node_ptr(&p).map_err(bad)?;
        let dev = self.devs.get_mut(usize::from(p.dev)).ok_or(bad("no such device"))?;
        let buf = self.io_buf.get_mut(..node_size).ok_or(Error::Internal("io buffer"))?;
        dev.read_at(p.offset, buf)?;
        let h = NodeHeader::decode(buf, self.sb.meta_csum).map_err(|err| Error::BadMetadata {
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

    /// The slot of the node at `p`, loading it if needed.
    fn load_child(&mut self, p: BtreePtr, btree: BtreeId, min: Pos, max: Pos) -> Result<u32> {
        if let Some(slot) = self.cache.lookup(&p) {
            return Ok(slot);
        }
        let n = self.read_node(p, btree, min, max)?;
        self.cache.insert(n)
    }

    fn root_slot(&mut self, btree: BtreeId) -> Result<Option<u32>> {
        match self.roots.get(btree.index()).copied().flatten() {
            None => Ok(None),
            Some(ChildRef::Mem(s)) => Ok(Some(s)),
            Some(ChildRef::Disk(p)) => self.load_child(p, btree, Pos::MIN, Pos::MAX).map(Some),
        }
    }

    /// The leaf covering `pos` and the range it covers.
    fn find_leaf(&mut self, btree: BtreeId, pos: Pos) -> Result<Option<(u32, Pos, Pos)>> {
        let Some(mut slot) = self.root_slot(btree)? else { return Ok(None) };
        let (mut min, mut max) = (Pos::MIN, Pos::MAX);
        for _ in 0..MAX_DEPTH {
            let n = self.cache.get_mut(slot)?;
            if n.level == 0 {
                return Ok(Some((slot, min, max)));
            }
            let i = n.child_index(pos);
            let (cmin, cmax) = child_range(n, i, min, max);
            slot = match ChildRef::decode(n.value(i)?)? {
                ChildRef::Mem(s) => s,
                ChildRef::Disk(p) => self.load_child(p, btree, cmin, cmax)?,
            };
            (min, max) = (cmin, cmax);
        }
        Err(Error::Corrupt("b-tree deeper than the maximum depth"))
    }

    /// The first key in `[from, to]`; its value is copied into `val`.
    /// Keys at positions the format does not allow for this b-tree
    /// ([`BtreeId::canonical`]: damage, or a hostile image) are skipped, so
    /// no caller ever meets two versions of one key; fsck finds them with
    /// [`Fs::peek_raw`].
    pub fn peek(
        &mut self,
        btree: BtreeId,
        from: Pos,
        to: Pos,
        val: &mut TryVec<u8>,
    ) -> Result<Option<(Pos, KeyType)>> {
        self.peek_filtered(btree, from, to, val, true)
    }

    /// [`Fs::peek`] without skipping non-canonical keys (fsck).
    pub(crate) fn peek_raw(
        &mut self,
        btree: BtreeId,
        from: Pos,
        to: Pos,
        val: &mut TryVec<u8>,
    ) -> Result<Option<(Pos, KeyType)>> {
        self.peek_filtered(btree, from, to, val, false)
    }

    fn peek_filtered(
        &mut self,
        btree: BtreeId,
        from: Pos,
        to: Pos,
        val: &mut TryVec<u8>,
        canonical_only: bool,
    ) -> Result<Option<(Pos, KeyType)>> {
        // No caller holds a cache slot across a lookup, so this is a safe point
        // to trim clean nodes: read-only work (fsck -n, restore) stays bounded.
        if self.cache.bytes > self.cache.budget {
            self.cache.shrink(self.cache.budget * 3 / 4)?;
        }
        let mut from = from;
        // Each round moves `from` past one leaf; the leaves of a tree are
        // finite and each round takes a new one.
        loop {
            if from > to {
                return Ok(None);
            }
            let Some((slot, _, leaf_max)) = self.find_leaf(btree, from)? else { return Ok(None) };
            let n = self.cache.get(slot)?;
            let mut i = n.lower_bound(from);
            while let Some(k) = n.keys.get(i) {
                if k.pos > to {
                    return Ok(None);
                }
                if !canonical_only || btree.canonical(k.pos) {
                    let (pos, kind) = (k.pos, k.kind);
                    val.clear();
                    val.try_extend_from_slice(n.value(i)?)?;
                    return Ok(Some((pos, kind)));
                }
                i += 1;
            }
            if leaf_max >= to {
                return Ok(None);
            }
            match leaf_max.successor() {
                Some(next) => from = next,
                None => return Ok(None),
            }
        }
    }

    /// The last key in `[from, to]` (canonical positions only, as
    /// [`Fs::peek`]); its value is copied into `val`.
    pub fn peek_back(
        &mut self,
        btree: BtreeId,
        from: Pos,
        to: Pos,
        val: &mut TryVec<u8>,
    ) -> Result<Option<(Pos, KeyType)>> {
        let mut to = to;
        // Each round moves `to` before one leaf.
        loop {
            if to < from {
                return Ok(None);
            }
            let Some((slot, leaf_min, _)) = self.find_leaf(btree, to)? else { return Ok(None) };
            let n = self.cache.get(slot)?;
            let mut i = n.keys.partition_point(|k| k.pos <= to);
            while i > 0 {
                i -= 1;
                let Some(k) = n.keys.get(i) else { break };
                if k.pos < from {
                    return Ok(None);
                }
                if btree.canonical(k.pos) {
                    let (pos, kind) = (k.pos, k.kind);
                    val.clear();
                    val.try_extend_from_slice(n.value(i)?)?;
                    return Ok(Some((pos, kind)));
                }
            }
            if leaf_min <= from {
                return Ok(None);
            }
            match leaf_min.predecessor() {
                Some(p) => to = p,
                None => return Ok(None),
            }
        }
    }

    /// The key exactly at `pos`.
    pub fn get(&mut self, btree: BtreeId, pos: Pos, val: &mut TryVec<u8>) -> Result<Option<KeyType>> {
        Ok(self.peek(btree, pos, pos, val)?.map(|(_, k)| k))
    }

    /// Mark a node dirty (copy-on-write): its old location is released at the
    /// next checkpoint, and it takes the range its parent gives it.
    fn make_dirty(&mut self, slot: u32, min: Pos, max: Pos) -> Result<()> {
        let n = self.cache.get_mut(slot)?;
        n.min = min;
        n.max = max;
        if n.level > 0 {
            n.set_pos(0, min);
        }
        if n.dirty {
            return Ok(());
        }
        n.dirty = true;
        let old = n.disk.take();
        self.dirty_nodes += 1;
        if let Some(p) = old {
            self.cache.index_del(p);
            self.pending_release.try_push(p)?;
        }
        Ok(())
    }

    /// Descend to the leaf for `pos`, making every node on the way dirty.
    fn descend_mut(&mut self, btree: BtreeId, pos: Pos) -> Result<Path> {
        let root = match self.roots.get(btree.index()).copied().flatten() {
            Some(ChildRef::Mem(s)) => s,
            Some(ChildRef::Disk(p)) => {
                let s = self.load_child(p, btree, Pos::MIN, Pos::MAX)?;
                self.make_dirty(s, Pos::MIN, Pos::MAX)?;
                s
            }
            None => {
                let s = self.cache.insert(Node::new(btree, 0, Pos::MIN, Pos::MAX))?;
                self.dirty_nodes += 1;
                s
            }
        };
        self.set_root(btree, Some(ChildRef::Mem(root)))?;
        let mut path = Path { slots: [0; MAX_DEPTH as usize], idx: [0; MAX_DEPTH as usize], depth: 1 };
        path.slots[0] = root;
        let (mut min, mut max) = (Pos::MIN, Pos::MAX);
        let mut slot = root;
        loop {
            let n = self.cache.get_mut(slot)?;
            if n.level == 0 {
                return Ok(path);
            }
            if path.depth >= MAX_DEPTH as usize {
                return Err(Error::Corrupt("b-tree deeper than the maximum depth"));
            }
            let i = n.child_index(pos);
            let (cmin, cmax) = child_range(n, i, min, max);
            let key_pos = n.keys.get(i).ok_or(Error::Internal("empty interior node"))?.pos;
            let child = match ChildRef::decode(n.value(i)?)? {
                ChildRef::Mem(s) => s,
                ChildRef::Disk(p) => self.load_child(p, btree, cmin, cmax)?,
            };
            self.make_dirty(child, cmin, cmax)?;
            self.cache.get_mut(slot)?.set(key_pos, KeyType::BtreePtr, &ChildRef::Mem(child).encode())?;
            if let (Some(s), Some(x)) = (path.slots.get_mut(path.depth), path.idx.get_mut(path.depth - 1)) {
                *s = child;
                *x = i;
            }
            path.depth += 1;
            slot = child;
            (min, max) = (cmin, cmax);
        }
    }

    fn set_root(&mut self, btree: BtreeId, r: Option<ChildRef>) -> Result<()> {
        *self.roots.get_mut(btree.index()).ok_or(Error::Internal("btree id"))? = r;
        Ok(())
    }

    /// Set a key. Inside a transaction the update is also journalled.
    pub(crate) fn btree_set(&mut self, btree: BtreeId, pos: Pos, kind: KeyType, val: &[u8]) -> Result<()> {
        self.check_writable()?;
        if val.len() > self.max_value_bytes() || !btree.allows(kind) {
            return Err(Error::Internal("value too large or wrong type for b-tree"));
        }
        self.journal_update(btree, pos, Some(kind), val)?;
        let path = self.descend_mut(btree, pos)?;
        let leaf = path.slots.get(path.depth - 1).copied().ok_or(Error::Internal("path"))?;
        let n = self.cache.get_mut(leaf)?;
        let before = n.mem_bytes();
        n.set(pos, kind, val)?;
        let after = n.mem_bytes();
        self.cache.resize(before, after);
        self.rebalance(btree, &path)
    }

    /// Delete a key; returns whether it existed. Journalled inside a transaction.
    pub(crate) fn btree_delete(&mut self, btree: BtreeId, pos: Pos) -> Result<bool> {
        self.check_writable()?;
        let mut scratch = TryVec::new();
        // Raw: fsck deletes keys at non-canonical positions too.
        if self.peek_raw(btree, pos, pos, &mut scratch)?.is_none() {
            return Ok(false);
        }
        self.journal_update(btree, pos, None, &[])?;
        let path = self.descend_mut(btree, pos)?;
        let leaf = path.slots.get(path.depth - 1).copied().ok_or(Error::Internal("path"))?;
        let n = self.cache.get_mut(leaf)?;
        let before = n.mem_bytes();
        let found = n.delete(pos);
        let after = n.mem_bytes();
        self.cache.resize(before, after);
        self.rebalance(btree, &path)?;
        Ok(found)
    }

    /// Split overfull nodes and merge underfull ones, from the leaf up.
    fn rebalance(&mut self, btree: BtreeId, path: &Path) -> Result<()> {
        let node_size = self.sb.node_size as usize;
        for d in (0..path.depth).rev() {
            let slot = *path.slots.get(d).ok_or(Error::Internal("path"))?;
            let bytes = self.cache.get(slot)?.bytes;
            if bytes > node_size {
                self.split(btree, path, d)?;
            } else if d > 0 && bytes < node_size / 4 {
                self.merge(btree, path, d)?;
            }
        }
        self.collapse_root(btree)
    }

    fn split(&mut self, btree: BtreeId, path: &Path, d: usize) -> Result<()> {
        let slot = *path.slots.get(d).ok_or(Error::Internal("path"))?;
        let n = self.cache.get_mut(slot)?;
        let at = n.split_point();
        let before = n.mem_bytes();
        let right = n.split_off(at)?;
        let (level, right_min) = (n.level, right.min);
        let after = n.mem_bytes();
        self.cache.resize(before, after);
        let rslot = self.cache.insert(right)?;
        self.dirty_nodes += 1;
        if d == 0 {
            let mut root = Node::new(btree, level + 1, Pos::MIN, Pos::MAX);
            root.set(Pos::MIN, KeyType::BtreePtr, &ChildRef::Mem(slot).encode())?;
            root.set(right_min, KeyType::BtreePtr, &ChildRef::Mem(rslot).encode())?;
            let s = self.cache.insert(root)?;
            self.dirty_nodes += 1;
            self.set_root(btree, Some(ChildRef::Mem(s)))
        } else {
            let parent = *path.slots.get(d - 1).ok_or(Error::Internal("path"))?;
            let p = self.cache.get_mut(parent)?;
            let before = p.mem_bytes();
            p.set(right_min, KeyType::BtreePtr, &ChildRef::Mem(rslot).encode())?;
            let after = p.mem_bytes();
            self.cache.resize(before, after);
            Ok(())
        }
    }

    fn merge(&mut self, btree: BtreeId, path: &Path, d: usize) -> Result<()> {
        let slot = *path.slots.get(d).ok_or(Error::Internal("path"))?;
        let parent = *path.slots.get(d - 1).ok_or(Error::Internal("path"))?;
        let i = *path.idx.get(d - 1).ok_or(Error::Internal("path"))?;
        let p = self.cache.get(parent)?;
        let nkeys = p.keys.len();
        // The path may be stale after a split above us; find our entry again.
        let i = if p.value(i).ok().and_then(|v| ChildRef::decode(v).ok()) == Some(ChildRef::Mem(slot)) {
            i
        } else {
            match (0..nkeys).find(|&j| {
                p.value(j).ok().and_then(|v| ChildRef::decode(v).ok()) == Some(ChildRef::Mem(slot))
            }) {
                Some(j) => j,
                None => return Ok(()),
            }
        };
        if self.cache.get(slot)?.keys.is_empty() && nkeys > 1 {
            return self.drop_child(parent, i, slot);
        }
        let j = if i + 1 < nkeys {
            i + 1
        } else if i > 0 {
            i - 1
        } else {
            return Ok(());
        };
        let (li, ri) = if j > i { (i, j) } else { (j, i) };
        let (pmin, pmax) = {
            let p = self.cache.get(parent)?;
            (p.min, p.max)
        };
        let mut slots = [0u32; 2];
        for (k, ci) in [li, ri].into_iter().enumerate() {
            let p = self.cache.get(parent)?;
            let (cmin, cmax) = child_range(p, ci, pmin, pmax);
            let key_pos = p.keys.get(ci).ok_or(Error::Internal("merge"))?.pos;
            let s = match ChildRef::decode(p.value(ci)?)? {
                ChildRef::Mem(s) => s,
                ChildRef::Disk(ptr) => self.load_child(ptr, btree, cmin, cmax)?,
            };
            self.make_dirty(s, cmin, cmax)?;
            self.cache.get_mut(parent)?.set(key_pos, KeyType::BtreePtr, &ChildRef::Mem(s).encode())?;
            if let Some(x) = slots.get_mut(k) {
                *x = s;
            }
        }
        let [ls, rs] = slots;
        let combined = self.cache.get(ls)?.bytes + self.cache.get(rs)?.bytes - NODE_HEADER_BYTES;
        if combined > self.sb.node_size as usize * 3 / 4 {
            return Ok(());
        }
        let right = self.cache.remove(rs)?;
        self.dirty_nodes = self.dirty_nodes.saturating_sub(1);
        let l = self.cache.get_mut(ls)?;
        let before = l.mem_bytes();
        l.absorb(&right)?;
        let after = l.mem_bytes();
        self.cache.resize(before, after);
        self.cache.get_mut(parent)?.delete_index(ri);
        Ok(())
    }

    /// Remove empty child `i` (in `slot`) from `parent`; its range goes to a neighbour.
    fn drop_child(&mut self, parent: u32, i: usize, slot: u32) -> Result<()> {
        self.cache.remove(slot)?;
        self.dirty_nodes = self.dirty_nodes.saturating_sub(1);
        let p = self.cache.get_mut(parent)?;
        p.delete_index(i);
        if i == 0 {
            let min = p.min;
            p.set_pos(0, min);
        }
        Ok(())
    }

    /// Replace an interior root with a single child by that child.
    fn collapse_root(&mut self, btree: BtreeId) -> Result<()> {
        for _ in 0..MAX_DEPTH {
            let Some(ChildRef::Mem(s)) = self.roots.get(btree.index()).copied().flatten() else {
                return Ok(());
            };
            let n = self.cache.get(s)?;
            if n.level == 0 || n.keys.len() != 1 {
                return Ok(());
            }
            let child = ChildRef::decode(n.value(0)?)?;
            self.cache.remove(s)?;
            self.dirty_nodes = self.dirty_nodes.saturating_sub(1);
            if let ChildRef::Mem(c) = child {
                let cn = self.cache.get_mut(c)?;
                cn.min = Pos::MIN;
                cn.max = Pos::MAX;
                if cn.level > 0 {
                    cn.set_pos(0, Pos::MIN);
                }
            }
            self.set_root(btree, Some(child))?;
        }
        Ok(())
    }
}
