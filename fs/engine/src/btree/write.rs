//! Writing dirty nodes at a checkpoint, children before parents, each to a
//! new place the store gives; and walking the node pointers of a tree.
//!
//! Images are gathered ([`Staged`]) and written several at a time, all in
//! flight together ([`NodeStore::write_many`]): a checkpoint waits for the
//! device once per batch instead of once per node. A node is marked clean
//! when it is staged; every batch is written before `write_tree` returns,
//! and nothing between evicts or reads a node, so none is read back from a
//! place not yet written.

use super::node::ChildRef;
use super::{Btrees, NodeStore};
use crate::error::{Error, Result};
use crate::format::node::{BtreePtr, MAX_DEPTH};
use crate::format::{BtreeId, KeyType, Pos};
use crate::sys::TryVec;

/// Bytes of node images gathered before they are written together.
const STAGE_BYTES: usize = 2 << 20;

/// Node images encoded and not yet written: `(place, start, length)` in
/// `images`. Without room for them (memory is short) nodes are written
/// one at a time from the trees' own buffer, as they are encoded.
struct Staged {
    images: TryVec<u8>,
    nodes: TryVec<(BtreePtr, usize, usize)>,
    direct: bool,
}

impl Staged {
    fn new(node_size: usize) -> Self {
        let mut images = TryVec::new();
        let direct = images.try_reserve(STAGE_BYTES + node_size).is_err();
        Staged { images, nodes: TryVec::new(), direct }
    }

    /// Write every staged image, together.
    fn flush(&mut self, store: &mut dyn NodeStore) -> Result<()> {
        if self.nodes.is_empty() {
            return Ok(());
        }
        let mut writes: TryVec<(BtreePtr, &[u8])> = TryVec::new();
        writes.try_reserve(self.nodes.len())?;
        for &(p, start, len) in self.nodes.iter() {
            let image = self.images.get(start..start + len).ok_or(Error::Internal("staged node"))?;
            writes.try_push((p, image))?;
        }
        store.write_many(&writes)?;
        drop(writes);
        self.nodes.clear();
        self.images.clear();
        Ok(())
    }
}

impl Btrees {
    /// Write every dirty node of `btree`, with sequence `seq`.
    pub fn write_tree(&mut self, store: &mut dyn NodeStore, btree: BtreeId, seq: u64) -> Result<()> {
        if let Some(ChildRef::Mem(slot)) = self.root(btree) {
            let mut staged = Staged::new(self.node_size);
            let p = self.write_subtree(store, &mut staged, slot, seq, 0)?;
            staged.flush(store)?;
            self.set_root(btree, Some(ChildRef::Disk(p)))?;
            self.changed();
        }
        Ok(())
    }

    fn write_subtree(
        &mut self,
        store: &mut dyn NodeStore,
        staged: &mut Staged,
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
                let p = self.write_subtree(store, staged, c, seq, depth + 1)?;
                self.cache.get_mut(slot)?.set(pos, KeyType::BtreePtr, &ChildRef::Disk(p).encode())?;
            }
        }
        let mut p = store.allocate()?;
        let node_size = self.node_size;
        let n = self.cache.get(slot)?;
        p.level = n.level;
        p.seq = seq;
        let round = |used: usize| {
            crate::format::round_up(used as u64, store.block_size() as u64).map_or(node_size, |l| l as usize)
        };
        if staged.direct {
            if self.buf.len() < node_size {
                self.buf.try_resize(node_size, 0)?;
            }
            let buf = self.buf.get_mut(..node_size).ok_or(Error::Internal("node buffer"))?;
            let len = round(n.encode(buf, seq, store.checksum())?);
            store.write(&p, buf.get(..len).ok_or(Error::Internal("node buffer"))?)?;
        } else {
            let start = staged.images.len();
            staged.images.try_resize(start + node_size, 0)?;
            let buf = staged.images.get_mut(start..).ok_or(Error::Internal("node buffer"))?;
            let len = round(n.encode(buf, seq, store.checksum())?).min(node_size);
            staged.images.truncate(start + len);
            staged.nodes.try_push((p, start, len))?;
            if staged.images.len() >= STAGE_BYTES {
                staged.flush(store)?;
            }
        }
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
