//! Changing keys: descend to the leaf, copying every node on the way
//! (copy-on-write: a node made dirty releases its disk location and takes
//! the range its parent gives it), change the leaf, then rebalance upwards
//! ([`super::interior`]).

use super::node::{ChildRef, Node};
use super::{Btrees, NodeStore};
use crate::error::{Error, Result};
use crate::format::node::{BtreePtr, MAX_DEPTH};
use crate::format::{BtreeId, KeyType, Pos};

/// The nodes from a root down to a leaf.
pub(crate) struct Path {
    pub(crate) slots: [u32; MAX_DEPTH as usize],
    /// `idx[d]`: index within `slots[d]` of the child `slots[d + 1]`.
    pub(crate) idx: [usize; MAX_DEPTH as usize],
    pub(crate) depth: usize,
}

impl Btrees {
    /// Mark a node dirty: its old location is released, and it takes the
    /// range its parent gives it.
    pub(crate) fn make_dirty(
        &mut self,
        store: &mut dyn NodeStore,
        slot: u32,
        min: Pos,
        max: Pos,
    ) -> Result<()> {
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
            store.release(&p)?;
        }
        Ok(())
    }

    /// Descend to the leaf for `pos`, making every node on the way dirty.
    fn descend_mut(&mut self, store: &mut dyn NodeStore, btree: BtreeId, pos: Pos) -> Result<Path> {
        self.descend_mut_to(store, btree, pos, None)
    }

    /// [`Btrees::descend_mut`], stopping at the node whose child for `pos`
    /// is `stop` (not read: it is a node fsck cuts out).
    pub(crate) fn descend_mut_to(
        &mut self,
        store: &mut dyn NodeStore,
        btree: BtreeId,
        pos: Pos,
        stop: Option<BtreePtr>,
    ) -> Result<Path> {
        let root = match self.root(btree) {
            Some(ChildRef::Mem(s)) => s,
            Some(ChildRef::Disk(p)) => {
                let s = self.load(store, p, btree, Pos::MIN, Pos::MAX)?;
                self.make_dirty(store, s, Pos::MIN, Pos::MAX)?;
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
            let (cmin, cmax) = n.child_range(i, min, max);
            let key_pos = n.keys.get(i).ok_or(Error::Internal("empty interior node"))?.pos;
            let child = ChildRef::decode(n.value(i)?)?;
            if stop.is_some_and(|p| child == ChildRef::Disk(p)) {
                return Ok(path);
            }
            let child = self.child_slot(store, child, btree, cmin, cmax)?;
            self.make_dirty(store, child, cmin, cmax)?;
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

    /// Set a key (insert or replace).
    pub fn set(
        &mut self,
        store: &mut dyn NodeStore,
        btree: BtreeId,
        pos: Pos,
        kind: KeyType,
        val: &[u8],
    ) -> Result<()> {
        if val.len() > self.max_value_bytes() || !btree.allows(kind) {
            return Err(Error::Internal("value too large or wrong type for b-tree"));
        }
        let path = self.descend_mut(store, btree, pos)?;
        let leaf = path.slots.get(path.depth - 1).copied().ok_or(Error::Internal("path"))?;
        let n = self.cache.get_mut(leaf)?;
        let before = n.mem_bytes();
        n.set(pos, kind, val)?;
        let after = n.mem_bytes();
        self.cache.resize(before, after);
        self.changed();
        self.rebalance(store, btree, &path)
    }

    /// Delete a key, wherever it sits (non-canonical positions too);
    /// returns whether it existed.
    pub fn delete(&mut self, store: &mut dyn NodeStore, btree: BtreeId, pos: Pos) -> Result<bool> {
        // Look first: a delete of a missing key copies no node.
        let exists = match self.find_leaf(store, btree, pos)? {
            Some((slot, _, _)) => {
                let n = self.cache.get(slot)?;
                n.keys.get(n.lower_bound(pos)).is_some_and(|k| k.pos == pos)
            }
            None => false,
        };
        if !exists {
            return Ok(false);
        }
        let path = self.descend_mut(store, btree, pos)?;
        let leaf = path.slots.get(path.depth - 1).copied().ok_or(Error::Internal("path"))?;
        let n = self.cache.get_mut(leaf)?;
        let before = n.mem_bytes();
        let found = n.delete(pos);
        let after = n.mem_bytes();
        self.cache.resize(before, after);
        self.changed();
        self.rebalance(store, btree, &path)?;
        Ok(found)
    }

    /// A key changed: cursors must look again.
    pub(crate) fn changed(&mut self) {
        self.cache.epoch = self.cache.epoch.wrapping_add(1);
    }
}
