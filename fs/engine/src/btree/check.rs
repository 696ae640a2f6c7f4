//! fsck of b-tree structure: every node reachable from a root is read from
//! disk and verified (checksum, level, sequence, key order, ranges, value
//! formats). The caller is told of each node and of each failure; what it
//! makes of them (bucket counts, reports, pruning) is its business.
//!
//! [`Btrees::prune`] is the repair: it cuts a node that cannot be read out
//! of its tree, so that the rest of the tree can be walked, checked and
//! changed again. What a leaf held that can still be read, whole and in
//! its range, fsck first takes out ([`Btrees::salvage_leaf`]) and puts back
//! once the leaf is gone: a leaf fails for one value that does not decode,
//! and it holds thousands of keys.

use super::node::{ChildRef, Node};
use super::{validate_value, Btrees, NodeStore};
use crate::error::{Error, Result};
use crate::format::node::{BtreePtr, NodeHeader, MAX_DEPTH};
use crate::format::{BtreeId, KeyType, Pos};
use crate::sys::TryVec;

/// A key of a leaf that failed verification, as [`Btrees::salvage_leaf`]
/// read it.
pub struct SalvagedKey<'a> {
    /// Its position, inside the range the leaf's parent gives it.
    pub pos: Pos,
    /// Its type: `None` when the type is unknown or not of this b-tree.
    pub kind: Option<KeyType>,
    /// Its value.
    pub value: &'a [u8],
    /// Whether the value decodes as its type says ([`validate_value`])
    /// and is no larger than a key may carry.
    pub valid: bool,
}

/// What the walk of one tree met.
pub enum NodeEvent<'a> {
    /// A node pointer (counted before its node is read).
    Pointer(&'a BtreePtr),
    /// A node that read and verified.
    Good {
        /// Its level (0: a leaf).
        level: u8,
        /// Keys it holds.
        keys: usize,
    },
    /// The node at `ptr`, which its parent gives `[min, max]`, could not be
    /// read or verified; nothing below it was walked.
    Bad {
        /// Where it is.
        ptr: BtreePtr,
        /// The start of its range (the key [`Btrees::prune`] finds it by).
        min: Pos,
        /// The end of its range.
        max: Pos,
        /// Why.
        err: Error,
    },
    /// The node at `ptr` reads and verifies, but only at the generation its
    /// bucket has now (`now`): the pointer's generation is wrong, its
    /// node is not stale (the node's own sequence number matches).
    WrongGen {
        /// The pointer as its parent (or the superblock) holds it.
        ptr: BtreePtr,
        /// The same pointer with the bucket's generation.
        now: BtreePtr,
        /// The start of its range (the key [`Btrees::repoint`] finds it by).
        min: Pos,
    },
    /// The walk could not go on at all (too deep): the tree is incomplete.
    Stopped(Error),
}

impl Btrees {
    /// Read and verify every node of `btree` from the store (nodes changed
    /// in memory are walked in memory), depth first.
    pub fn verify_tree(
        &mut self,
        store: &mut dyn NodeStore,
        btree: BtreeId,
        f: &mut dyn FnMut(NodeEvent<'_>),
    ) -> Result<()> {
        let Some(root) = self.root(btree) else { return Ok(()) };
        let mut stack: TryVec<(ChildRef, Pos, Pos, u8)> = TryVec::new();
        stack.try_push((root, Pos::MIN, Pos::MAX, 0))?;
        while let Some((r, min, max, depth)) = stack.pop() {
            if depth >= MAX_DEPTH {
                f(NodeEvent::Stopped(Error::Corrupt("b-tree deeper than the maximum depth")));
                continue;
            }
            let children = match r {
                ChildRef::Disk(p) => {
                    f(NodeEvent::Pointer(&p));
                    let n = match self.read_node(store, p, btree, min, max) {
                        Ok(n) => n,
                        Err(Error::NoMem) => return Err(Error::NoMem),
                        Err(err) => {
                            // Intact at its bucket's generation: only the
                            // pointer's generation is wrong.
                            let now =
                                store.bucket_gen(&p).filter(|&g| g != p.gen).map(|gen| BtreePtr { gen, ..p });
                            match now.map(|now| (now, self.read_node(store, now, btree, min, max))) {
                                Some((now, Ok(n))) => {
                                    f(NodeEvent::WrongGen { ptr: p, now, min });
                                    n
                                }
                                Some((_, Err(Error::NoMem))) => return Err(Error::NoMem),
                                _ => {
                                    f(NodeEvent::Bad { ptr: p, min, max, err });
                                    continue;
                                }
                            }
                        }
                    };
                    f(NodeEvent::Good { level: n.level, keys: n.keys.len() });
                    children_of(&n, min, max)?
                }
                ChildRef::Mem(slot) => children_of(self.cache.get(slot)?, min, max)?,
            };
            for (c, cmin, cmax) in children.iter().rev().copied() {
                stack.try_push((c, cmin, cmax, depth + 1))?;
            }
        }
        Ok(())
    }

    /// Hand `f` the keys of the leaf at `p` (of `btree`, given `[min,
    /// max]` by its parent) that failed verification: each entry of its
    /// image, in order, up to the first that does not parse, leaving out
    /// those outside `[min, max]` or not after the one before. Returns
    /// whether there was a leaf to read: false when the image cannot be
    /// read, fails its checksum, or is not a leaf of `btree` at the
    /// pointer's sequence (nothing in it can be trusted then).
    pub fn salvage_leaf(
        &mut self,
        store: &mut dyn NodeStore,
        p: BtreePtr,
        btree: BtreeId,
        min: Pos,
        max: Pos,
        f: &mut dyn FnMut(SalvagedKey<'_>) -> Result<()>,
    ) -> Result<bool> {
        let max_value = self.max_value_bytes();
        let buf = match self.read_image(store, p) {
            Ok(buf) => buf,
            Err(Error::NoMem) => return Err(Error::NoMem),
            Err(_) => return Ok(false),
        };
        let Ok(h) = NodeHeader::decode(buf, store.checksum()) else { return Ok(false) };
        if h.btree != btree || h.level != 0 || p.level != 0 || h.seq != p.seq {
            return Ok(false);
        }
        let mut prev: Option<Pos> = None;
        for e in h.entries(buf) {
            let Ok(e) = e else { break };
            if e.pos < min || e.pos > max || prev.is_some_and(|q| q >= e.pos) {
                continue;
            }
            prev = Some(e.pos);
            let kind = KeyType::from_u8(e.kind).ok().filter(|&k| btree.allows(k) && k != KeyType::BtreePtr);
            // What a transaction could not set again goes too.
            let valid =
                kind.is_some_and(|k| validate_value(btree, k, e.value).is_ok()) && e.value.len() <= max_value;
            f(SalvagedKey { pos: e.pos, kind, value: e.value, valid })?;
        }
        Ok(true)
    }

    /// Cut the node at `bad` (whose range starts at `min`) out of `btree`:
    /// its parent forgets it (its range goes to a neighbour), parents left
    /// with no child go too, and a bad root empties the tree. Returns
    /// whether the pointer was found.
    pub fn prune(
        &mut self,
        store: &mut dyn NodeStore,
        btree: BtreeId,
        bad: BtreePtr,
        min: Pos,
    ) -> Result<bool> {
        let Some(root) = self.root(btree) else { return Ok(false) };
        if root == ChildRef::Disk(bad) {
            self.set_root(btree, None)?;
            store.release(&bad)?;
            self.changed();
            return Ok(true);
        }
        // Down towards `min`, copying the nodes on the way, until the
        // parent holding the bad pointer.
        let mut path = self.descend_mut_to(store, btree, min, Some(bad))?;
        let Some(d) = path.depth.checked_sub(1) else { return Ok(false) };
        let parent = *path.slots.get(d).ok_or(Error::Internal("path"))?;
        let n = self.cache.get(parent)?;
        let i = n.child_index(min);
        if n.level == 0 || n.value(i).ok().and_then(|v| ChildRef::decode(v).ok()) != Some(ChildRef::Disk(bad))
        {
            return Ok(false);
        }
        self.remove_child(parent, i)?;
        store.release(&bad)?;
        // Interior nodes left empty go from their parents, upwards.
        let mut depth = path.depth;
        while let Some(k) = depth.checked_sub(1) {
            let slot = *path.slots.get(k).ok_or(Error::Internal("path"))?;
            if !self.cache.get(slot)?.keys.is_empty() {
                break;
            }
            self.cache.remove(slot)?;
            self.dirty_nodes = self.dirty_nodes.saturating_sub(1);
            depth = k;
            match k.checked_sub(1) {
                Some(up) => {
                    let p = *path.slots.get(up).ok_or(Error::Internal("path"))?;
                    let at = *path.idx.get(up).ok_or(Error::Internal("path"))?;
                    self.remove_child(p, at)?;
                }
                None => self.set_root(btree, None)?,
            }
        }
        self.changed();
        path.depth = depth;
        if depth > 0 {
            self.rebalance(store, btree, &path)?;
        }
        Ok(true)
    }

    /// Make `btree` name the node at `old` (whose range starts at `min`) by
    /// `new` instead: the pointer in its parent, or the root. Returns
    /// whether the pointer was found.
    pub fn repoint(
        &mut self,
        store: &mut dyn NodeStore,
        btree: BtreeId,
        old: BtreePtr,
        new: BtreePtr,
        min: Pos,
    ) -> Result<bool> {
        let Some(root) = self.root(btree) else { return Ok(false) };
        if root == ChildRef::Disk(old) {
            self.set_root(btree, Some(ChildRef::Disk(new)))?;
            self.changed();
            return Ok(true);
        }
        let path = self.descend_mut_to(store, btree, min, Some(old))?;
        let Some(d) = path.depth.checked_sub(1) else { return Ok(false) };
        let parent = *path.slots.get(d).ok_or(Error::Internal("path"))?;
        let n = self.cache.get_mut(parent)?;
        let i = n.child_index(min);
        let Some(k) = n.keys.get(i).copied() else { return Ok(false) };
        if n.level == 0 || n.value(i).ok().and_then(|v| ChildRef::decode(v).ok()) != Some(ChildRef::Disk(old))
        {
            return Ok(false);
        }
        let before = n.mem_bytes();
        n.set(k.pos, k.kind, &ChildRef::Disk(new).encode())?;
        let after = n.mem_bytes();
        self.cache.resize(before, after);
        self.changed();
        Ok(true)
    }

    /// Delete child `i` of interior node `slot`; a first child's range
    /// goes to the next one.
    fn remove_child(&mut self, slot: u32, i: usize) -> Result<()> {
        let n = self.cache.get_mut(slot)?;
        let before = n.mem_bytes();
        n.delete_index(i);
        if i == 0 && !n.keys.is_empty() {
            let min = n.min;
            n.set_pos(0, min);
        }
        let after = n.mem_bytes();
        self.cache.resize(before, after);
        Ok(())
    }
}

/// The children of interior node `n` (covering `[min, max]`) with their
/// ranges; none for a leaf.
fn children_of(n: &Node, min: Pos, max: Pos) -> Result<TryVec<(ChildRef, Pos, Pos)>> {
    let mut out = TryVec::new();
    if n.level == 0 {
        return Ok(out);
    }
    for i in 0..n.keys.len() {
        let (cmin, cmax) = n.child_range(i, min, max);
        out.try_push((ChildRef::decode(n.value(i)?)?, cmin, cmax))?;
    }
    Ok(out)
}
