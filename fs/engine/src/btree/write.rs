//! Writing dirty nodes at a checkpoint, children before parents.

use super::node::ChildRef;
use crate::error::{Error, Result};
use crate::format::node::{BtreePtr, MAX_DEPTH};
use crate::format::{BtreeId, KeyType, Pos};
use crate::fs::Fs;
use crate::sys::{BlockDevice, TryVec};

impl<D: BlockDevice> Fs<D> {
    /// Write every dirty node of `btree` with sequence `seq`.
    pub(crate) fn write_tree(&mut self, btree: BtreeId, seq: u64) -> Result<()> {
        if let Some(ChildRef::Mem(slot)) = self.roots.get(btree.index()).copied().flatten() {
            let p = self.write_subtree(slot, seq, 0)?;
            self.set_root_ref(btree, ChildRef::Disk(p))?;
        }
        Ok(())
    }

    fn set_root_ref(&mut self, btree: BtreeId, r: ChildRef) -> Result<()> {
        *self.roots.get_mut(btree.index()).ok_or(Error::Internal("btree id"))? = Some(r);
        Ok(())
    }

    fn write_subtree(&mut self, slot: u32, seq: u64, depth: u8) -> Result<BtreePtr> {
        if depth >= MAX_DEPTH {
            return Err(Error::Internal("b-tree too deep to write"));
        }
        let n = self.cache.get(slot)?;
        if n.level > 0 {
            let mut children: TryVec<(usize, Pos, u32)> = TryVec::new();
            for i in 0..n.keys.len() {
                if let ChildRef::Mem(c) = ChildRef::decode(n.value(i)?)? {
                    let pos = n.keys.get(i).ok_or(Error::Internal("key"))?.pos;
                    children.try_push((i, pos, c))?;
                }
            }
            for &(_, pos, c) in children.iter() {
                let p = self.write_subtree(c, seq, depth + 1)?;
                self.cache.get_mut(slot)?.set(pos, KeyType::BtreePtr, &ChildRef::Disk(p).encode())?;
            }
        }
        let mut p = self.alloc_node()?;
        let node_size = self.sb.node_size as usize;
        if self.io_buf.len() < node_size {
            self.io_buf.try_resize(node_size, 0)?;
        }
        let n = self.cache.get(slot)?;
        let buf = self.io_buf.get_mut(..node_size).ok_or(Error::Internal("io buffer"))?;
        let used = n.encode(buf, seq, self.sb.meta_csum)?;
        let len =
            crate::format::round_up(used as u64, u64::from(self.sb.block_size)).unwrap_or(node_size as u64);
        p.level = n.level;
        p.seq = seq;
        let data = buf.get(..len as usize).ok_or(Error::Internal("io buffer"))?;
        self.devs.get_mut(usize::from(p.dev)).ok_or(Error::Internal("device"))?.write_at(p.offset, data)?;
        let n = self.cache.get_mut(slot)?;
        n.dirty = false;
        n.disk = Some(p);
        self.cache.index_add(p, slot)?;
        self.dirty_nodes = self.dirty_nodes.saturating_sub(1);
        self.nodes_written += 1;
        Ok(p)
    }

    /// Call `f` with every node pointer reachable from the roots (the roots
    /// included) and the level of the node it points to. Interior nodes are
    /// loaded; leaves are not.
    pub(crate) fn walk_node_ptrs(
        &mut self,
        f: &mut dyn FnMut(&BtreePtr, BtreeId, Pos, Pos) -> Result<()>,
    ) -> Result<()> {
        for id in BtreeId::ALL {
            self.walk_tree_ptrs(id, f)?;
        }
        Ok(())
    }

    /// [`Fs::walk_node_ptrs`] for one b-tree.
    pub(crate) fn walk_tree_ptrs(
        &mut self,
        id: BtreeId,
        f: &mut dyn FnMut(&BtreePtr, BtreeId, Pos, Pos) -> Result<()>,
    ) -> Result<()> {
        {
            let root = match self.roots.get(id.index()).copied().flatten() {
                None => return Ok(()),
                Some(r) => r,
            };
            let mut stack: TryVec<(ChildRef, Pos, Pos)> = TryVec::new();
            stack.try_push((root, Pos::MIN, Pos::MAX))?;
            while let Some((r, min, max)) = stack.pop() {
                let slot = match r {
                    ChildRef::Disk(p) => {
                        f(&p, id, min, max)?;
                        if p.level == 0 {
                            continue;
                        }
                        self.load_node_for_walk(p, id, min, max)?
                    }
                    ChildRef::Mem(s) => s,
                };
                let n = self.cache.get(slot)?;
                if n.level == 0 {
                    continue;
                }
                for i in 0..n.keys.len() {
                    let (cmin, cmax) = super::child_range(n, i, min, max);
                    stack.try_push((ChildRef::decode(n.value(i)?)?, cmin, cmax))?;
                }
            }
        }
        Ok(())
    }

    fn load_node_for_walk(&mut self, p: BtreePtr, id: BtreeId, min: Pos, max: Pos) -> Result<u32> {
        if let Some(s) = self.cache.lookup(&p) {
            return Ok(s);
        }
        let n = self.read_node(p, id, min, max)?;
        self.cache.insert(n)
    }
}
