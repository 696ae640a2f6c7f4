//! The node cache: every node in memory lives in a slot here. Clean nodes are
//! found by disk address and evicted least-recently-used when the cache is over
//! budget; dirty nodes stay until a checkpoint writes them.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::node::Node;
use crate::error::{Error, Result};
use crate::format::node::BtreePtr;
use crate::sys::TryVec;

/// Slots, a disk-address index, and memory accounting.
pub struct NodeCache {
    slots: TryVec<Option<Node>>,
    free: TryVec<u32>,
    /// (device, offset, slot), sorted by (device, offset): clean nodes only.
    index: TryVec<(u8, u64, u32)>,
    /// The use clock: atomic, so that shared readers mark what they use.
    tick: AtomicU64,
    /// Moves on whenever a slot is emptied: a cursor that remembers a slot
    /// checks it to know the slot still holds its node.
    pub epoch: u64,
    /// Memory held by cached nodes.
    pub bytes: usize,
    /// Memory budget for clean nodes.
    pub budget: usize,
}

impl NodeCache {
    /// An empty cache with a memory budget.
    pub fn new(budget: usize) -> Self {
        NodeCache {
            slots: TryVec::new(),
            free: TryVec::new(),
            index: TryVec::new(),
            tick: AtomicU64::new(0),
            epoch: 0,
            bytes: 0,
            budget,
        }
    }

    /// The node in `slot`.
    pub fn get(&self, slot: u32) -> Result<&Node> {
        self.slots.get(slot as usize).and_then(|s| s.as_ref()).ok_or(Error::Internal("empty cache slot"))
    }

    /// The node in `slot`, marked used, from a reader that shares the
    /// cache with others (the use clock is atomic for this).
    pub fn touch(&self, slot: u32) -> Result<&Node> {
        let n = self.get(slot)?;
        n.lru.store(self.tick.fetch_add(1, Relaxed) + 1, Relaxed);
        Ok(n)
    }

    /// The node in `slot`, mutably; marks it used.
    pub fn get_mut(&mut self, slot: u32) -> Result<&mut Node> {
        let tick = self.tick.get_mut();
        *tick += 1;
        let tick = *tick;
        let n = self
            .slots
            .get_mut(slot as usize)
            .and_then(|s| s.as_mut())
            .ok_or(Error::Internal("empty cache slot"))?;
        *n.lru.get_mut() = tick;
        Ok(n)
    }

    /// Store a node; returns its slot.
    pub fn insert(&mut self, mut node: Node) -> Result<u32> {
        let tick = self.tick.get_mut();
        *tick += 1;
        *node.lru.get_mut() = *tick;
        self.bytes += node.mem_bytes();
        let disk = node.disk;
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(e) = self.slots.get_mut(s as usize) {
                    *e = Some(node);
                }
                s
            }
            None => {
                let s = u32::try_from(self.slots.len()).map_err(|_| Error::NoMem)?;
                self.slots.try_push(Some(node))?;
                s
            }
        };
        if let Some(p) = disk {
            self.index_add(p, slot)?;
        }
        Ok(slot)
    }

    /// Drop the node in `slot`.
    pub fn remove(&mut self, slot: u32) -> Result<Node> {
        let node = self
            .slots
            .get_mut(slot as usize)
            .and_then(|s| s.take())
            .ok_or(Error::Internal("removing empty cache slot"))?;
        if let Some(p) = node.disk {
            self.index_del(p);
        }
        self.bytes = self.bytes.saturating_sub(node.mem_bytes());
        self.epoch = self.epoch.wrapping_add(1);
        self.free.try_push(slot)?;
        Ok(node)
    }

    /// The slot caching the node at `p`, if any.
    pub fn lookup(&self, p: &BtreePtr) -> Option<u32> {
        let i = self.index.partition_point(|e| (e.0, e.1) < (p.dev, p.offset));
        match self.index.get(i) {
            Some(&(d, o, s)) if d == p.dev && o == p.offset => Some(s),
            _ => None,
        }
    }

    /// Record that `slot` holds the node written at `p`.
    pub fn index_add(&mut self, p: BtreePtr, slot: u32) -> Result<()> {
        let i = self.index.partition_point(|e| (e.0, e.1) < (p.dev, p.offset));
        self.index.try_insert(i, (p.dev, p.offset, slot))
    }

    /// Forget the disk address `p`.
    pub fn index_del(&mut self, p: BtreePtr) {
        let i = self.index.partition_point(|e| (e.0, e.1) < (p.dev, p.offset));
        if self.index.get(i).is_some_and(|e| e.0 == p.dev && e.1 == p.offset) {
            self.index.remove(i);
        }
    }

    /// Account for a node's size change.
    pub fn resize(&mut self, before: usize, after: usize) {
        self.bytes = self.bytes.saturating_sub(before) + after;
    }

    /// Evict clean nodes, oldest first, until under budget. Only called between
    /// operations, when no slot number is held by a caller.
    pub fn shrink(&mut self, target: usize) -> Result<usize> {
        if self.bytes <= target {
            return Ok(0);
        }
        let mut clean: TryVec<(u64, u32)> = TryVec::new();
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(n) = s {
                if !n.dirty {
                    clean.try_push((n.lru.load(Relaxed), i as u32))?;
                }
            }
        }
        clean.sort_unstable_by_key(|e| e.0);
        let mut freed = 0;
        for &(_, slot) in clean.iter() {
            if self.bytes <= target {
                break;
            }
            freed += self.remove(slot)?.mem_bytes();
        }
        Ok(freed)
    }
}
