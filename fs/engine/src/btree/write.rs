//! Writing dirty nodes at a checkpoint, children before parents, each to a
//! new place the store gives; and walking the node pointers of a tree.

use super::node::ChildRef;
use super::{Btrees, NodeStore};
use crate::error::{Error, Result};
use crate::format::node::{BtreePtr, MAX_DEPTH};
use crate::format::{BtreeId, KeyType, Pos};
use crate::sys::TryVec;

impl Btrees {
    /// Write every dirty node of `btree`, with sequence `seq`.
    pub fn write_tree(&mut self, store: &mut dyn NodeStore, btree: BtreeId, seq: u64) -> Result<()> {
        if let Some(ChildRef::Mem(slot)) = self.root(btree) {
            let p = self.write_subtree(store, slot, seq, 0)?;
            self.set_root(btree, Some(ChildRef::Disk(p)))?;
            self.changed();
        }
        Ok(())
    }

    fn write_subtree(
        &mut self,
        store: &mut dyn NodeStore,
        slot: u32,
        seq: u64,
        depth: u8,
    ) -> Result<BtreePtr> {
        if depth >= MAX_DEPTH {
            return Err(Error::Internal("b-tree too deep to write"));
        }
        let n = self.cache.get(slot)?;
        if n.level > 0 {
            let mut children: TryVec<(Pos, u32)> = TryVec::new();
            for i in 0..n.keys.len() {
                if let ChildRef::Mem(c) = ChildRef::decode(n.value(i)?)? {
                    let pos = n.keys.get(i).ok_or(Error::Internal("key"))?.pos;
                    children.try_push((pos, c))?;
                }
            }
            for &(pos, c) in children.iter() {
                let p = self.write_subtree(store, c, seq, depth + 1)?;
                self.cache.get_mut(slot)?.set(pos, KeyType::BtreePtr, &ChildRef::Disk(p).encode())?;
            }
        }
        let mut p = store.allocate()?;
        let node_size = self.node_size;
        if self.buf.len() < node_size {
            self.buf.try_resize(node_size, 0)?;
        }
        let n = self.cache.get(slot)?;
        let buf = self.buf.get_mut(..node_size).ok_or(Error::Internal("node buffer"))?;
        let used = n.encode(buf, seq, store.checksum())?;
        let len = crate::format::round_up(used as u64, store.block_size() as u64).unwrap_or(node_size as u64);
        p.level = n.level;
        p.seq = seq;
        let image = buf.get(..len as usize).ok_or(Error::Internal("node buffer"))?;
        store.write(&p, image)?;
        let n = self.cache.get_mut(slot)?;
        n.dirty = false;
        n.disk = Some(p);
        self.cache.index_add(p, slot)?;
        self.dirty_nodes = self.dirty_nodes.saturating_sub(1);
        self.nodes_written += 1;
        Ok(p)
    }

    /// Call `f` with every node pointer of `btree` (its root included), the
    /// range its parent gives it: interior nodes are loaded, leaves are not.
    /// An interior node that cannot be read fails the walk, unless
    /// `skip_damaged`: then what lies below a damaged one is left out (fsck
    /// reports it).
    pub fn walk_ptrs(
        &mut self,
        store: &mut dyn NodeStore,
        btree: BtreeId,
        skip_damaged: bool,
        f: &mut dyn FnMut(&BtreePtr, Pos, Pos) -> Result<()>,
    ) -> Result<()> {
        let Some(root) = self.root(btree) else { return Ok(()) };
        let mut stack: TryVec<(ChildRef, Pos, Pos)> = TryVec::new();
        stack.try_push((root, Pos::MIN, Pos::MAX))?;
        while let Some((r, min, max)) = stack.pop() {
            let slot = match r {
                ChildRef::Disk(p) => {
                    f(&p, min, max)?;
                    if p.level == 0 {
                        continue;
                    }
                    match self.load(store, p, btree, min, max) {
                        Ok(slot) => slot,
                        Err(e) if skip_damaged && e.is_damage() => continue,
                        Err(e) => return Err(e),
                    }
                }
                ChildRef::Mem(s) => s,
            };
            let n = self.cache.get(slot)?;
            if n.level == 0 {
                continue;
            }
            for i in 0..n.keys.len() {
                let (cmin, cmax) = n.child_range(i, min, max);
                stack.try_push((ChildRef::decode(n.value(i)?)?, cmin, cmax))?;
            }
        }
        Ok(())
    }
}
