//! The b-tree alone, over an in-memory node store: random inserts, deletes,
//! range scans both ways, splits and merges and checkpoints, all compared
//! with a `BTreeMap`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

extern crate std;

use std::collections::BTreeMap;
use std::vec::Vec;

use super::cursor::{Cursor, View};
use super::{Btrees, NodeStore};
use crate::error::{Error, Result};
use crate::format::checksum::ChecksumType;
use crate::format::node::BtreePtr;
use crate::format::{BtreeId, KeyType, Pos, SNAPSHOT_ROOT};

/// Nodes in a vector; a released node stays readable (as on disk until the
/// next checkpoint), and is counted.
struct MemStore {
    nodes: Vec<Vec<u8>>,
    node_size: usize,
    released: usize,
}

impl NodeStore for MemStore {
    fn checksum(&self) -> ChecksumType {
        ChecksumType::Crc32c
    }
    fn block_size(&self) -> usize {
        512
    }
    fn read(&mut self, p: &BtreePtr, buf: &mut [u8]) -> Result<()> {
        let n = self.nodes.get(p.offset as usize / self.node_size).ok_or(Error::Corrupt("no such node"))?;
        buf.fill(0);
        buf[..n.len()].copy_from_slice(n);
        Ok(())
    }
    fn allocate(&mut self) -> Result<BtreePtr> {
        self.nodes.push(Vec::new());
        Ok(BtreePtr {
            dev: 0,
            level: 0,
            gen: 0,
            offset: ((self.nodes.len() - 1) * self.node_size) as u64,
            seq: 0,
        })
    }
    fn write(&mut self, p: &BtreePtr, image: &[u8]) -> Result<()> {
        self.nodes[p.offset as usize / self.node_size] = image.to_vec();
        Ok(())
    }
    fn release(&mut self, _p: &BtreePtr) -> Result<()> {
        self.released += 1;
        Ok(())
    }
}

/// A xorshift generator for the engine's unit tests.
pub(crate) struct Rng(pub(crate) u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const T: BtreeId = BtreeId::Inodes;

fn pos(k: u64) -> Pos {
    Pos::new(4096 + k, 0, SNAPSHOT_ROOT)
}

fn value(k: u64, len: usize) -> Vec<u8> {
    // Inode values are validated only on read from disk; any bytes do here
    // as long as they decode (the node decoder checks them after a
    // checkpoint): a real inode image.
    let i = crate::format::inode::Inode {
        mode: crate::format::inode::S_IFREG | 0o644,
        size: k,
        nlink: len as u32,
        ..Default::default()
    };
    let mut v = std::vec![0u8; crate::format::inode::INODE_BYTES];
    i.encode(&mut v).unwrap();
    v
}

fn scan(t: &mut Btrees, s: &mut MemStore, from: Pos, to: Pos) -> Vec<(Pos, Vec<u8>)> {
    let mut c = Cursor::new(T, from, to, View::LIVE);
    let mut out = Vec::new();
    while let Some((p, _)) = t.next(s, &mut c).unwrap() {
        out.push((p, c.value().to_vec()));
    }
    out
}

fn scan_back(t: &mut Btrees, s: &mut MemStore, from: Pos, to: Pos) -> Vec<Pos> {
    let mut c = Cursor::new(T, from, to, View::LIVE);
    c.seek_end();
    let mut out = Vec::new();
    while let Some((p, _)) = t.prev(s, &mut c).unwrap() {
        out.push(p);
    }
    out
}

fn run(seed: u64, node_size: usize, ops: usize) {
    let mut s = MemStore { nodes: Vec::new(), node_size, released: 0 };
    let mut t = Btrees::new(&[], node_size, 1 << 30);
    let mut model: BTreeMap<Pos, Vec<u8>> = BTreeMap::new();
    let mut rng = Rng(seed | 1);
    let mut checkpoint_seq = 1;
    for op in 0..ops {
        let k = rng.next() % 3000;
        match rng.next() % 10 {
            0..=5 => {
                let v = value(k, (rng.next() % 7) as usize);
                t.set(&mut s, T, pos(k), KeyType::Inode, &v).unwrap();
                model.insert(pos(k), v);
            }
            6..=8 => {
                let existed = t.delete(&mut s, T, pos(k)).unwrap();
                assert_eq!(existed, model.remove(&pos(k)).is_some(), "seed {seed} op {op}: delete {k}");
            }
            _ => {
                // A checkpoint: every dirty node written, then read back
                // through the store as the cache is emptied.
                t.write_tree(&mut s, T, checkpoint_seq).unwrap();
                checkpoint_seq += 1;
                assert_eq!(t.dirty_nodes, 0);
                t.shrink(0).unwrap();
            }
        }
        if op % 97 == 0 {
            let a = rng.next() % 3000;
            let b = a + rng.next() % 500;
            let got = scan(&mut t, &mut s, pos(a), pos(b));
            let want: Vec<_> = model.range(pos(a)..=pos(b)).map(|(p, v)| (*p, v.clone())).collect();
            assert_eq!(got, want, "seed {seed} op {op}: scan {a}..={b}");
            let back = scan_back(&mut t, &mut s, pos(a), pos(b));
            let want_back: Vec<_> = model.range(pos(a)..=pos(b)).rev().map(|(p, _)| *p).collect();
            assert_eq!(back, want_back, "seed {seed} op {op}: backward scan {a}..={b}");
        }
    }
    let all = scan(&mut t, &mut s, Pos::MIN, Pos::MAX);
    assert_eq!(all.len(), model.len());
    assert!(all.iter().zip(model.iter()).all(|(a, b)| a.0 == *b.0 && a.1 == *b.1));
    // Everything deleted: the tree shrinks back to one empty leaf.
    for p in model.keys().copied().collect::<Vec<_>>() {
        assert!(t.delete(&mut s, T, p).unwrap());
    }
    assert!(scan(&mut t, &mut s, Pos::MIN, Pos::MAX).is_empty());
    t.write_tree(&mut s, T, checkpoint_seq).unwrap();
    assert!(s.released > 0, "copy-on-write released old node places");
}

#[test]
fn random_operations_match_a_btreemap() {
    for seed in 1..6 {
        run(seed, 4096, 6000);
    }
}

#[test]
fn large_nodes_few_splits() {
    run(99, 65536, 8000);
}

#[test]
fn cursor_costs_one_descent_per_leaf() {
    let mut s = MemStore { nodes: Vec::new(), node_size: 4096, released: 0 };
    let mut t = Btrees::new(&[], 4096, 1 << 30);
    for k in 0..5000 {
        t.set(&mut s, T, pos(k), KeyType::Inode, &value(k, 1)).unwrap();
    }
    t.write_tree(&mut s, T, 1).unwrap();
    let mut leaves = 0;
    t.walk_ptrs(&mut s, T, false, &mut |p, _, _| {
        if p.level == 0 {
            leaves += 1;
        }
        Ok(())
    })
    .unwrap();
    assert!(leaves > 20, "{leaves} leaves");
    t.shrink(0).unwrap();
    let before = t.descents.load(core::sync::atomic::Ordering::Relaxed);
    let mut c = Cursor::new(T, Pos::MIN, Pos::MAX, View::LIVE);
    let mut n = 0;
    while t.next(&mut s, &mut c).unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 5000);
    let descents = t.descents.load(core::sync::atomic::Ordering::Relaxed) - before;
    assert!(descents <= leaves + 1, "{descents} descents for {leaves} leaves and {n} keys");
}

#[test]
fn views_hide_non_canonical_keys_raw_shows_them() {
    let mut s = MemStore { nodes: Vec::new(), node_size: 4096, released: 0 };
    let mut t = Btrees::new(&[], 4096, 1 << 30);
    t.set(&mut s, T, pos(1), KeyType::Inode, &value(1, 1)).unwrap();
    t.set(&mut s, T, Pos::new(4097, 0, 7), KeyType::Inode, &value(2, 1)).unwrap();
    t.set(&mut s, T, Pos::new(4097, 3, SNAPSHOT_ROOT), KeyType::Inode, &value(3, 1)).unwrap();
    assert_eq!(scan(&mut t, &mut s, Pos::MIN, Pos::MAX).len(), 1);
    let mut c = Cursor::new(T, Pos::MIN, Pos::MAX, View::Raw);
    let mut n = 0;
    while t.next(&mut s, &mut c).unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn a_scan_goes_on_across_changes_behind_and_ahead_of_it() {
    let mut s = MemStore { nodes: Vec::new(), node_size: 4096, released: 0 };
    let mut t = Btrees::new(&[], 4096, 1 << 30);
    for k in 0..3000 {
        t.set(&mut s, T, pos(k), KeyType::Inode, &value(k, 1)).unwrap();
    }
    t.write_tree(&mut s, T, 1).unwrap();
    // Walk every key once while deleting the one just seen (behind the
    // cursor: merges move keys between leaves) and every key 7 ahead
    // whose number is a multiple of 5 (ahead: the scan must not meet it).
    let mut c = Cursor::new(T, Pos::MIN, Pos::MAX, View::LIVE);
    let mut seen = Vec::new();
    let mut gone = std::collections::BTreeSet::new();
    while let Some((p, _)) = t.next(&mut s, &mut c).unwrap() {
        let k = p.inode - 4096;
        assert!(!gone.contains(&k), "met deleted key {k}");
        seen.push(k);
        assert!(t.delete(&mut s, T, p).unwrap());
        if (k + 7) % 5 == 0 && t.delete(&mut s, T, pos(k + 7)).unwrap() {
            gone.insert(k + 7);
        }
    }
    let want: Vec<u64> = (0..3000).filter(|k| !gone.contains(k)).collect();
    assert_eq!(seen, want);
    assert!(scan(&mut t, &mut s, Pos::MIN, Pos::MAX).is_empty());
}

#[test]
fn prune_cuts_out_unreadable_nodes_and_keeps_the_rest() {
    use super::check::NodeEvent;
    for victim_level in [0u8, 1] {
        let mut s = MemStore { nodes: Vec::new(), node_size: 4096, released: 0 };
        let mut t = Btrees::new(&[], 4096, 1 << 30);
        for k in 0..20_000 {
            t.set(&mut s, T, pos(k), KeyType::Inode, &value(k, 1)).unwrap();
        }
        t.write_tree(&mut s, T, 1).unwrap();
        t.shrink(0).unwrap();
        // Damage one node of the level (not the root).
        let mut nodes = Vec::new();
        t.walk_ptrs(&mut s, T, false, &mut |p, min, _| {
            nodes.push((*p, min));
            Ok(())
        })
        .unwrap();
        let root_level = nodes[0].0.level;
        assert!(root_level >= 2, "a tree of three levels");
        let &(victim, _) = nodes.iter().find(|(p, _)| p.level == victim_level).unwrap();
        s.nodes[victim.offset as usize / 4096][100] ^= 0xff;
        t.shrink(0).unwrap();
        let mut bad = Vec::new();
        t.verify_tree(&mut s, T, &mut |ev| {
            if let NodeEvent::Bad { ptr, min, .. } = ev {
                bad.push((ptr, min));
            }
        })
        .unwrap();
        assert_eq!(bad.len(), 1);
        let (ptr, min) = bad[0];
        assert!(t.prune(&mut s, T, ptr, min).unwrap());
        // Everything left reads, in order; new keys go anywhere again.
        let mut clean = true;
        t.verify_tree(&mut s, T, &mut |ev| clean &= !matches!(ev, NodeEvent::Bad { .. })).unwrap();
        assert!(clean);
        let left = scan(&mut t, &mut s, Pos::MIN, Pos::MAX);
        assert!(left.len() < 20_000 && left.len() > 10_000, "{} keys left", left.len());
        assert!(left.windows(2).all(|w| w[0].0 < w[1].0));
        t.set(&mut s, T, min, KeyType::Inode, &value(1, 1)).unwrap();
        t.write_tree(&mut s, T, 2).unwrap();
        t.shrink(0).unwrap();
        assert_eq!(scan(&mut t, &mut s, Pos::MIN, Pos::MAX).len(), left.len() + 1);
    }
}
