#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Changing calls with reads refused (`Fs::refuse_reads`), as the kernel
//! makes them with its lock held exclusively: where a call needs a node
//! that is on disk only, it fails with `Error::NotCached` before it changed
//! anything and names the node (`Fs::take_refused`); the caller reads the
//! node without the lock, offers it (`Fs::adopt_node`) and calls again.
//! The calls must end as the same calls made reading do, and a refused
//! attempt must leave no trace.
mod common;

use arborfs_engine::btree::NodeMiss;
use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::{BtreeId, ROOT_INO};
use arborfs_engine::fs::write_plan::{WritePlan, WriteRequest};
use arborfs_engine::fs::SetAttr;
use arborfs_engine::sys::{BlockDevice, MemDevice};
use arborfs_engine::{Error, Fs};
use common::*;

/// What the calls below can see of the tree: every name in the root with
/// its inode's size, mode and links, its attribute and its data.
fn listing(fs: &mut Fs<MemDevice>) -> Vec<String> {
    let mut entries = Vec::new();
    fs.readdir(ROOT_INO, 0, &mut |name, ino, _, _| {
        entries.push((String::from_utf8_lossy(name).into_owned(), ino));
        true
    })
    .unwrap();
    entries
        .into_iter()
        .map(|(name, ino)| {
            let a = fs.getattr(ino).unwrap();
            let mut x = arborfs_engine::sys::TryVec::new();
            let xattr = fs.getxattr(ino, b"user.n", &mut x).map(|_| x.to_vec()).ok();
            let data =
                if a.inode.mode & 0o170000 == S_IFREG { read_all(fs, ino).unwrap() } else { Vec::new() };
            // The data as its length and a sum of its bytes at their places.
            let sum = data
                .iter()
                .enumerate()
                .fold(0u64, |s, (i, &b)| s.wrapping_mul(31).wrapping_add(b as u64 ^ i as u64));
            format!(
                "{name} {ino} {} {:o} {} {xattr:?} {} {sum:x}",
                a.inode.size,
                a.inode.mode,
                a.inode.nlink,
                data.len()
            )
        })
        .collect()
}

/// Empty the node cache: every node is on disk only.
fn cold(fs: &mut Fs<MemDevice>) {
    fs.checkpoint().unwrap();
    fs.shrink_cache(0).unwrap();
}

/// Make `call` as the kernel does: with reads refused, fetching each node
/// it names, until it stops asking; returns its result and the nodes read
/// in. A refused attempt must not have changed the file system.
fn with_reads_refused<T>(
    fs: &mut Fs<MemDevice>,
    mut call: impl FnMut(&mut Fs<MemDevice>) -> Result<T, Error>,
) -> (Result<T, Error>, Vec<NodeMiss>) {
    let mut fetched = Vec::new();
    for _ in 0..64 {
        let before = fs.stats();
        fs.refuse_reads();
        let r = call(fs);
        let miss = fs.take_refused();
        match r {
            Err(Error::NotCached) => {
                let after = fs.stats();
                assert_eq!(
                    (before.dirty_nodes, before.nodes_written),
                    (after.dirty_nodes, after.nodes_written),
                    "a refused call changed the trees"
                );
                let miss = miss.expect("a refused call names its node");
                let node = fetch_node(&mut fs.devices_mut()[usize::from(miss.ptr.dev)], &miss).unwrap();
                assert!(fs.adopt_node(&miss, node).unwrap(), "nothing changed: the node is taken");
                fetched.push(miss);
            }
            r => return (r, fetched),
        }
    }
    panic!("still refused after 64 nodes");
}

/// The same changes, one way or the other, each from a cold cache.
fn changes(fs: &mut Fs<MemDevice>, names: &[(String, u64)], refused: bool) -> usize {
    let mut fetched = 0;
    let mut step = |fs: &mut Fs<MemDevice>, call: &mut dyn FnMut(&mut Fs<MemDevice>) -> Result<(), Error>| {
        cold(fs);
        if refused {
            let (r, nodes) = with_reads_refused(fs, |fs| call(fs));
            fetched += nodes.len();
            r
        } else {
            call(fs)
        }
    };
    let (n0, i0) = &names[0];
    let (_, i1) = &names[1];
    let (n2, _) = &names[2];
    let (n3, i3) = &names[3];
    step(fs, &mut |fs| fs.create(ROOT_INO, b"new", S_IFREG | 0o640, 1, 2, 0).map(drop)).unwrap();
    step(fs, &mut |fs| fs.create(ROOT_INO, b"new", S_IFREG | 0o640, 1, 2, 0).map(drop)).unwrap_err();
    step(fs, &mut |fs| fs.symlink(ROOT_INO, b"sym", b"new", 0, 0).map(drop)).unwrap();
    step(fs, &mut |fs| fs.setattr(*i0, &SetAttr { mode: Some(0o600), ..Default::default() }).map(drop))
        .unwrap();
    step(fs, &mut |fs| fs.setattr(*i1, &SetAttr { size: Some(100), ..Default::default() }).map(drop))
        .unwrap();
    step(fs, &mut |fs| fs.setxattr(*i0, b"user.n", b"changed", 0).map(drop)).unwrap();
    step(fs, &mut |fs| fs.link(*i0, ROOT_INO, b"second").map(drop)).unwrap();
    step(fs, &mut |fs| fs.rename(ROOT_INO, n0.as_bytes(), ROOT_INO, b"renamed", 0, (0, 0)).map(drop))
        .unwrap();
    step(fs, &mut |fs| fs.unlink(ROOT_INO, n2.as_bytes()).map(drop)).unwrap();
    step(fs, &mut |fs| fs.unlink(ROOT_INO, n3.as_bytes()).map(drop)).unwrap();
    step(fs, &mut |fs| fs.evict(*i3)).unwrap();
    fetched
}

#[test]
fn changes_with_reads_refused_end_as_changes_made_reading() {
    let (mut reading, names) = populated_tree();
    let (mut refusing, _) = populated_tree();
    assert_eq!(changes(&mut reading, &names, false), 0);
    let fetched = changes(&mut refusing, &names, true);
    assert!(fetched >= 11, "each call from a cold cache needs nodes: {fetched}");
    let want = listing(&mut reading);
    let got = listing(&mut refusing);
    let differ: Vec<_> = got.iter().zip(&want).filter(|(g, w)| g != w).collect();
    assert!(
        differ.is_empty() && got.len() == want.len(),
        "{} vs {} entries, differing: {differ:?}",
        got.len(),
        want.len()
    );
    assert!(fsck_problems(&mut refusing).is_empty());
    let mut refusing = reopen(refusing);
    assert!(listing(&mut refusing) == want);
}

/// A commit whose reads all find their nodes, but whose changes land in a
/// leaf on disk only (here the bucket keys its data charges), is refused
/// before it applies anything, keeping the plans' buckets pinned for the
/// call made again.
#[test]
fn a_commit_into_a_leaf_on_disk_is_refused_before_it_applies() {
    let (mut fs, names) = populated_tree();
    let (_, ino) = names[10];
    let data = vec![0x5a; 8192];
    let mut reqs = [WriteRequest::new(0, 8192, 8192)];
    fs.plan_writes(ino, &mut reqs).unwrap();
    assert!(reqs[0].planned && reqs[0].plan.is_placed());
    let plan = &mut reqs[0].plan;
    fs.devices_mut()[usize::from(plan.dev)].write_at(plan.offset, &data).unwrap();
    plan.encode(&data).unwrap();
    let plans: Vec<&WritePlan> = vec![&reqs[0].plan];

    // Only what the commit's body reads is in memory: the inode and its
    // extents, not the alloc tree.
    cold(&mut fs);
    fs.getattr(ino).unwrap();
    read_all(&mut fs, ino).unwrap();
    let (r, fetched) = with_reads_refused(&mut fs, |fs| fs.commit_writes(&plans));
    r.unwrap();
    assert!(
        fetched.iter().any(|m| m.btree == BtreeId::Alloc),
        "the bucket key's leaf was fetched: {fetched:?}"
    );
    let mut got = read_all(&mut fs, ino).unwrap();
    got.truncate(data.len());
    assert_eq!(got, data);
    assert!(fsck_problems(&mut fs).is_empty());
    let mut fs = reopen(fs);
    let mut got = read_all(&mut fs, ino).unwrap();
    got.truncate(data.len());
    assert_eq!(got, data);
}
