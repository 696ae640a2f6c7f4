//! Keeping nodes between a quarter and all of their size: split overfull
//! nodes at half their bytes, merge underfull ones with a neighbour, drop
//! empty ones (their range goes to a neighbour), and replace an interior
//! root with a single child by that child.

use super::node::{ChildRef, Node};
use super::update::Path;
use super::{Btrees, NodeStore};
use crate::error::{Error, Result};
use crate::format::node::{MAX_DEPTH, NODE_HEADER_BYTES};
use crate::format::{BtreeId, KeyType, Pos};

impl Btrees {
    /// Split overfull nodes and merge underfull ones, from the leaf up.
    pub(crate) fn rebalance(&mut self, store: &mut dyn NodeStore, btree: BtreeId, path: &Path) -> Result<()> {
        let node_size = self.node_size;
        for d in (0..path.depth).rev() {
            let slot = *path.slots.get(d).ok_or(Error::Internal("path"))?;
            let bytes = self.cache.get(slot)?.bytes;
            if bytes > node_size {
                self.split(btree, path, d)?;
            } else if d > 0 && bytes < node_size / 4 {
                self.merge(store, btree, path, d)?;
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

    fn merge(&mut self, store: &mut dyn NodeStore, btree: BtreeId, path: &Path, d: usize) -> Result<()> {
        let slot = *path.slots.get(d).ok_or(Error::Internal("path"))?;
        let parent = *path.slots.get(d - 1).ok_or(Error::Internal("path"))?;
        let i = *path.idx.get(d - 1).ok_or(Error::Internal("path"))?;
        let p = self.cache.get(parent)?;
        let nkeys = p.keys.len();
        // The path may be stale after a split above us; find our entry again.
        let names_us =
            |j: usize| p.value(j).ok().and_then(|v| ChildRef::decode(v).ok()) == Some(ChildRef::Mem(slot));
        let i = if names_us(i) {
            i
        } else {
            match (0..nkeys).find(|&j| names_us(j)) {
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
            let (cmin, cmax) = p.child_range(ci, pmin, pmax);
            let key_pos = p.keys.get(ci).ok_or(Error::Internal("merge"))?.pos;
            let child = ChildRef::decode(p.value(ci)?)?;
            let s = self.child_slot(store, child, btree, cmin, cmax)?;
            self.make_dirty(store, s, cmin, cmax)?;
            self.cache.get_mut(parent)?.set(key_pos, KeyType::BtreePtr, &ChildRef::Mem(s).encode())?;
            if let Some(x) = slots.get_mut(k) {
                *x = s;
            }
        }
        let [ls, rs] = slots;
        let combined = self.cache.get(ls)?.bytes + self.cache.get(rs)?.bytes - NODE_HEADER_BYTES;
        if combined > self.node_size * 3 / 4 {
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
            let Some(ChildRef::Mem(s)) = self.root(btree) else {
                return Ok(());
            };
            let n = self.cache.get(s)?;
            if n.level > 0 && n.keys.is_empty() {
                // (Only after fsck cut out every child.)
                self.cache.remove(s)?;
                self.dirty_nodes = self.dirty_nodes.saturating_sub(1);
                return self.set_root(btree, None);
            }
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
