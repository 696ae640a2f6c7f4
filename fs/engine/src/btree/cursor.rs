//! Cursors: walk the keys of one b-tree over a range, forwards or
//! backwards, remembering the leaf they are in, so that a scan costs one
//! descent per leaf rather than one per key.
//!
//! A cursor shows the keys of a [`View`]: in a snapshot, each position's
//! version visible from that snapshot (the nearest ancestor's: snapshot ids
//! are given out downwards, so it is the first visible version in key
//! order), and only keys at positions the format allows; or every key as
//! stored, for fsck. Every lookup and scan of the engine goes through a
//! cursor, so snapshots add no second lookup path.

use super::{find_leaf, Btrees, Loading, NodeStore, Nodes};
use crate::error::Result;
use crate::format::{BtreeId, KeyType, Pos, SNAPSHOT_ROOT};
use crate::sys::TryVec;

/// Which keys a cursor shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The keys visible from this snapshot, at canonical positions.
    Snapshot(u32),
    /// Every key as stored, wherever it sits (fsck).
    Raw,
}

impl View {
    /// The live file system.
    pub const LIVE: View = View::Snapshot(SNAPSHOT_ROOT);
}

/// Whether a key written in snapshot `key` is seen from snapshot `view`:
/// its own, or an ancestor's. Only the root snapshot exists in format
/// version 1, so that is equality; the snapshot table will answer for
/// ancestors here.
pub fn visible_from(key: u32, view: u32) -> bool {
    key == view
}

/// Where a forward scan stands in the leaf it last read.
#[derive(Debug, Clone, Copy)]
struct LeafMark {
    slot: u32,
    /// Index of the next key to look at.
    next: usize,
    max: Pos,
    epoch: u64,
}

/// A position in one b-tree, with the range it may move in.
pub struct Cursor {
    btree: BtreeId,
    view: View,
    /// The next position to look at; none once past the end.
    at: Option<Pos>,
    start: Pos,
    end: Pos,
    leaf: Option<LeafMark>,
    /// The key [`Btrees::peek`] found, if not yet moved past.
    current: Option<(Pos, KeyType)>,
    val: TryVec<u8>,
}

impl Cursor {
    /// A cursor over `[start, end]` of `btree`, at `start`.
    pub fn new(btree: BtreeId, start: Pos, end: Pos, view: View) -> Self {
        Cursor { btree, view, at: Some(start), start, end, leaf: None, current: None, val: TryVec::new() }
    }

    /// The b-tree.
    pub fn btree(&self) -> BtreeId {
        self.btree
    }

    /// Move to `pos` (within the range).
    pub fn seek(&mut self, pos: Pos) {
        self.at = Some(pos.max(self.start));
        self.leaf = None;
        self.current = None;
    }

    /// Move past the end, so that [`Btrees::prev`] starts from the last key.
    pub fn seek_end(&mut self) {
        self.at = None;
        self.leaf = None;
        self.current = None;
    }

    /// The value of the key last returned.
    pub fn value(&self) -> &[u8] {
        &self.val
    }

    fn shows(&self, pos: Pos) -> bool {
        match self.view {
            View::Raw => true,
            View::Snapshot(s) => {
                self.btree.canonical(pos) && (!self.btree.snapshotted() || visible_from(pos.snapshot, s))
            }
        }
    }

    /// Where to go after the key at `pos`: its successor, or in a snapshot
    /// view past every other version of the same position.
    fn after(&self, pos: Pos) -> Option<Pos> {
        match self.view {
            View::Snapshot(_) if self.btree.snapshotted() => Pos { snapshot: u32::MAX, ..pos }.successor(),
            _ => pos.successor(),
        }
    }
}

impl Btrees {
    /// The key at or after the cursor's position, if any within its range;
    /// its value is [`Cursor::value`]. Does not move the cursor.
    pub fn peek(&mut self, store: &mut dyn NodeStore, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
        peek(&mut Loading { trees: self, store }, c)
    }

    /// The next key (as [`Btrees::peek`]), moving the cursor past it.
    pub fn next(&mut self, store: &mut dyn NodeStore, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
        next(&mut Loading { trees: self, store }, c)
    }

    /// The last key before the cursor's position (at or after the start of
    /// its range), moving the cursor onto it.
    pub fn prev(&mut self, store: &mut dyn NodeStore, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
        prev(&mut Loading { trees: self, store }, c)
    }
}

/// The key at or after the cursor's position, if any within its range;
/// its value is [`Cursor::value`]. Does not move the cursor.
pub fn peek<N: Nodes>(nodes: &mut N, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
    if let Some(k) = c.current {
        return Ok(Some(k));
    }
    let Some(mut from) = c.at else { return Ok(None) };
    // Each round ends one leaf; leaves are finite and each round takes
    // the next.
    loop {
        if from > c.end {
            c.at = None;
            return Ok(None);
        }
        // Go on in the leaf the last key came from while nothing moved.
        let mark = c.leaf.filter(|m| m.epoch == nodes.trees().cache.epoch);
        let (slot, mut i, leaf_max) = match mark {
            Some(m) => (m.slot, m.next, m.max),
            None => {
                // No slot is held across a cursor step: a safe point to
                // trim clean nodes, so that long scans stay in budget.
                nodes.settle()?;
                let Some((slot, _, max)) = find_leaf(nodes, c.btree, from)? else {
                    c.at = None;
                    return Ok(None);
                };
                (slot, nodes.trees().cache.get(slot)?.lower_bound(from), max)
            }
        };
        let trees = nodes.trees();
        let n = trees.cache.get(slot)?;
        while let Some(k) = n.keys.get(i) {
            if k.pos > c.end {
                c.at = None;
                return Ok(None);
            }
            if k.pos >= from && c.shows(k.pos) {
                let (pos, kind) = (k.pos, k.kind);
                c.val.clear();
                c.val.try_extend_from_slice(n.value(i)?)?;
                c.leaf = Some(LeafMark { slot, next: i + 1, max: leaf_max, epoch: trees.cache.epoch });
                c.current = Some((pos, kind));
                return Ok(Some((pos, kind)));
            }
            i += 1;
        }
        c.leaf = None;
        match leaf_max.successor() {
            Some(next) if leaf_max < c.end => from = next,
            _ => {
                c.at = None;
                return Ok(None);
            }
        }
    }
}

/// The next key (as [`peek`]), moving the cursor past it.
pub fn next<N: Nodes>(nodes: &mut N, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
    let k = peek(nodes, c)?;
    if let Some((pos, _)) = k {
        c.current = None;
        // (Other versions of the position may follow in the leaf: the
        // next peek skips them, they are before `at`.)
        c.at = c.after(pos);
    }
    Ok(k)
}

/// The last key before the cursor's position (at or after the start of
/// its range), moving the cursor onto it.
pub fn prev<N: Nodes>(nodes: &mut N, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
    c.current = None;
    c.leaf = None;
    let below = match c.at {
        Some(at) => at.predecessor(),
        None => Some(c.end),
    };
    let Some(mut to) = below else { return Ok(None) };
    // Each round moves `to` before one leaf.
    loop {
        if to < c.start {
            return Ok(None);
        }
        nodes.settle()?;
        let Some((slot, leaf_min, _)) = find_leaf(nodes, c.btree, to)? else { return Ok(None) };
        let n = nodes.trees().cache.get(slot)?;
        let mut i = n.keys.partition_point(|k| k.pos <= to);
        while i > 0 {
            i -= 1;
            let Some(k) = n.keys.get(i) else { break };
            if k.pos < c.start {
                return Ok(None);
            }
            if c.shows(k.pos) {
                let (pos, kind) = (k.pos, k.kind);
                c.val.clear();
                c.val.try_extend_from_slice(n.value(i)?)?;
                c.at = Some(pos);
                return Ok(Some((pos, kind)));
            }
        }
        if leaf_min <= c.start {
            return Ok(None);
        }
        match leaf_min.predecessor() {
            Some(p) => to = p,
            None => return Ok(None),
        }
    }
}
