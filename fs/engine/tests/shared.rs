#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Shared readers (`Fs::shared`): read-only calls that many threads make at
//! once over `&Fs`, from nodes in memory only, as the kernel's shared engine
//! lock runs them. They must answer exactly as the exclusive calls do, and
//! refuse with `Error::NotCached` (never a wrong answer) where a node is
//! on disk only, naming it (`Txn::miss`): the caller reads it in without
//! the lock and offers it (`Fs::adopt_node`, taken only if the tree still
//! points at it), or calls again exclusively.
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;

use arborfs_engine::btree::NodeMiss;
use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::fs::read_plan::ReadPlan;
use arborfs_engine::sys::{BlockDevice, MemDevice, TryVec};
use arborfs_engine::txn::{Access, Held, Txn};
use arborfs_engine::{Error, Fs};
use common::*;

/// Everything the shared calls answer, made with exclusive calls.
fn answers<F>(names: &[(String, u64)], mut call: F) -> Vec<String>
where
    F: FnMut(&str, u64) -> Result<String, Error>,
{
    names.iter().map(|(n, ino)| call(n, *ino).unwrap_or_else(|e| format!("error {e}"))).collect()
}

fn describe_exclusive(fs: &mut Fs<MemDevice>, name: &str, ino: u64) -> Result<String, Error> {
    describe_with(&mut Txn::reading(Held::Exclusive(fs)), name, ino).map(|(d, _)| d)
}

fn describe_shared(fs: &Fs<MemDevice>, name: &str, ino: u64) -> Result<String, Error> {
    describe_shared_or_miss(fs, name, ino, &mut None)
}

/// As `describe_shared`, with the node a `NotCached` failed on into `miss`.
fn describe_shared_or_miss(
    fs: &Fs<MemDevice>,
    name: &str,
    ino: u64,
    miss: &mut Option<NodeMiss>,
) -> Result<String, Error> {
    let mut t = fs.shared();
    let r = describe_with(&mut t, name, ino);
    *miss = t.miss();
    let (d, plan) = r?;
    if !fs.plan_current(&plan) {
        return Err(Error::Internal("plan went stale with nothing changing"));
    }
    Ok(d)
}

/// What the read calls answer about `name` (inode `ino`) in the root, and
/// the read plan of its first MiB.
fn describe_with<A: Access<MemDevice>>(
    t: &mut Txn<'_, MemDevice, A>,
    name: &str,
    ino: u64,
) -> Result<(String, ReadPlan), Error> {
    let a = t.lookup(ROOT_INO, name.as_bytes())?;
    let g = t.getattr(ino)?;
    let mut x = TryVec::new();
    t.getxattr(ino, b"user.n", &mut x)?;
    let mut l = TryVec::new();
    t.listxattr(ino, &mut l)?;
    let mut plan = ReadPlan::new();
    let n = t.plan_read(ino, 0, 1 << 20, &mut plan)?;
    let d = format!(
        "{} {} {} {:?} {:?} {} {}",
        a.ino,
        g.inode.size,
        g.inode.mode,
        &x[..],
        &l[..],
        n,
        plan.spans.len()
    );
    Ok((d, plan))
}

#[test]
fn shared_reads_answer_as_exclusive_ones_or_ask_for_the_nodes() {
    let (mut fs, names) = populated_tree();
    let want = answers(&names, |n, ino| describe_exclusive(&mut fs, n, ino));
    // Everything was just read: the shared calls find every node.
    let got = answers(&names, |n, ino| describe_shared(&fs, n, ino));
    assert_eq!(got, want);
    let mut count = 0;
    fs.shared()
        .readdir(ROOT_INO, 0, &mut |_, _, _, _| {
            count += 1;
            true
        })
        .unwrap();
    assert_eq!(count, names.len() + 1);
    let mut target = TryVec::new();
    let link = fs.shared().lookup(ROOT_INO, b"link").unwrap();
    fs.shared().readlink(link.ino, &mut target).unwrap();
    assert_eq!(&target[..], b"file0001");

    // With the cache emptied, a shared call refuses instead of reading.
    fs.checkpoint().unwrap();
    fs.shrink_cache(0).unwrap();
    assert!(matches!(fs.shared().getattr(names[0].1), Err(Error::NotCached)));
    assert!(matches!(fs.shared().lookup(ROOT_INO, b"file0300"), Err(Error::NotCached)));
    // Errors that are answers stay answers once the nodes are in.
    fs.lookup(ROOT_INO, b"nothing").unwrap_err();
    assert!(matches!(fs.shared().lookup(ROOT_INO, b"nothing"), Err(Error::NotFound)));
    // Half the answers by calling exclusively, half by reading the missing
    // nodes in and offering them, until the shared call finds them all.
    let mut adopted = 0;
    let got = answers(&names, |n, ino| {
        for _ in 0..16 {
            let mut miss = None;
            match describe_shared_or_miss(&fs, n, ino, &mut miss) {
                Err(Error::NotCached) if ino % 2 == 0 => return describe_exclusive(&mut fs, n, ino),
                Err(Error::NotCached) => {
                    let miss = miss.expect("a miss names its node");
                    let node = fetch_node(&mut fs.devices_mut()[usize::from(miss.ptr.dev)], &miss)?;
                    assert!(fs.adopt_node(&miss, node)?, "nothing changed: the node is taken");
                    adopted += 1;
                }
                r => return r,
            }
        }
        panic!("{n}: still missing nodes after 16 reads");
    });
    assert_eq!(got, want);
    assert!(adopted > 0);
}

#[test]
fn a_node_read_in_is_refused_once_the_tree_moved_on() {
    let (mut fs, names) = populated_tree();
    let (name, ino) = &names[300];
    let mut miss = None;
    assert!(matches!(describe_shared_or_miss(&fs, name, *ino, &mut miss), Err(Error::NotCached)));
    let miss = miss.unwrap();
    let dev = usize::from(miss.ptr.dev);
    let node = fetch_node(&mut fs.devices_mut()[dev], &miss).unwrap();
    // Offered twice: the second finds it cached.
    let again = fetch_node(&mut fs.devices_mut()[dev], &miss).unwrap();
    assert!(fs.adopt_node(&miss, node).unwrap());
    assert!(!fs.adopt_node(&miss, again).unwrap());

    // Read in, then the tree is changed and written: the old node is no
    // longer what the tree points at, and is refused.
    fs.checkpoint().unwrap();
    fs.shrink_cache(0).unwrap();
    let mut misses = Vec::new();
    for (name, ino) in &names {
        let mut miss = None;
        if describe_shared_or_miss(&fs, name, *ino, &mut miss).is_err() {
            let miss = miss.unwrap();
            if !misses.contains(&miss) {
                misses.push(miss);
            }
        }
    }
    assert!(!misses.is_empty());
    let nodes: Vec<_> = misses
        .iter()
        .map(|m| fetch_node(&mut fs.devices_mut()[usize::from(m.ptr.dev)], m).unwrap())
        .collect();
    for (name, ino) in &names {
        fs.setattr(*ino, &arborfs_engine::fs::SetAttr { mode: Some(S_IFREG | 0o600), ..Default::default() })
            .unwrap();
        fs.rename(ROOT_INO, name.as_bytes(), ROOT_INO, format!("{name}.moved").as_bytes(), 0, (0, 0))
            .unwrap();
    }
    fs.checkpoint().unwrap();
    for (m, node) in misses.iter().zip(nodes) {
        assert!(!fs.adopt_node(m, node).unwrap(), "a node the tree left behind was taken: {m:?}");
    }
    // A miss over a pointer that was never the tree's is refused too.
    let mut wrong = misses[0];
    wrong.ptr.seq += 1;
    let mut image = vec![0u8; wrong.node_size as usize];
    fs.devices_mut()[usize::from(wrong.ptr.dev)].read_at(wrong.ptr.offset, &mut image).unwrap();
    assert!(
        wrong.decode(&image).is_err(),
        "a node whose sequence differs from its pointer's does not decode"
    );
    assert!(fsck_problems(&mut fs).is_empty());
}

#[test]
fn a_plan_over_freed_space_is_not_current() {
    let (mut fs, names) = populated_tree();
    let ino = names[10].1;
    let mut plan = ReadPlan::new();
    assert!(matches!(fs.shared().plan_read(ino, 0, 4096, &mut plan), Err(Error::NotCached)));
    fs.plan_read(ino, 0, 4096, &mut plan).unwrap();
    fs.shared().plan_read(ino, 0, 4096, &mut plan).unwrap();
    assert!(fs.plan_current(&plan));
    // Overwrite the whole file many times: its old buckets are freed and reused.
    for round in 0..40u8 {
        for (_, i) in &names {
            fs.write(*i, 0, &vec![round; 8192]).unwrap();
        }
        fs.sync().unwrap();
        if !fs.plan_current(&plan) {
            return;
        }
    }
    panic!("the plan stayed current over 40 rewrites of every file");
}

/// Readers on four threads under a reader-writer lock, as the kernel's
/// engine lock: shared calls, with the exclusive call on `NotCached`,
/// while a writer creates, writes and removes other files and empties the
/// cache now and then. Every answer about the stable files must be right,
/// and shared calls must really overlap.
#[test]
fn shared_readers_run_together_beside_a_writer() {
    let (mut fs, names) = populated_tree();
    let want: BTreeMap<u64, String> =
        names.iter().map(|(n, ino)| (*ino, describe_exclusive(&mut fs, n, *ino).unwrap())).collect();
    let lock = RwLock::new(fs);
    let inside = AtomicUsize::new(0);
    let overlaps = AtomicU64::new(0);
    let shared_ok = AtomicU64::new(0);
    let retried = AtomicU64::new(0);
    let adopted = AtomicU64::new(0);
    let refused = AtomicU64::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (lock, names, want) = (&lock, &names, &want);
            let (inside, overlaps, shared_ok, retried, stop) =
                (&inside, &overlaps, &shared_ok, &retried, &stop);
            let (adopted, refused) = (&adopted, &refused);
            s.spawn(move || {
                let mut rng = Rng(t + 1);
                let mut rounds = 0;
                while rounds < 3000 || (!stop.load(Ordering::Relaxed) && rounds < 200_000) {
                    rounds += 1;
                    let (name, ino) = &names[rng.below(names.len() as u64) as usize];
                    // As the kernel's ENGINE_READ: shared; on a miss the node
                    // is read in and offered without the lock held across
                    // the read (threads 0 and 1) and the call made again, a
                    // few times; then (or at once: threads 2 and 3)
                    // exclusively.
                    let mut r = Err(Error::NotCached);
                    for _ in 0..if t < 2 { 12 } else { 1 } {
                        let mut miss = None;
                        r = {
                            let fs = lock.read().unwrap();
                            if inside.fetch_add(1, Ordering::SeqCst) > 0 {
                                overlaps.fetch_add(1, Ordering::Relaxed);
                            }
                            let r = describe_shared_or_miss(&fs, name, *ino, &mut miss);
                            inside.fetch_sub(1, Ordering::SeqCst);
                            r
                        };
                        let (Err(Error::NotCached), Some(miss), true) = (&r, miss, t < 2) else { break };
                        let image = {
                            let mut fs = lock.write().unwrap();
                            let mut image = vec![0u8; miss.node_size as usize];
                            fs.devices_mut()[usize::from(miss.ptr.dev)]
                                .read_at(miss.ptr.offset, &mut image)
                                .unwrap();
                            image
                        };
                        std::thread::yield_now();
                        // A node rewritten in between does not decode.
                        if let Ok(node) = miss.decode(&image) {
                            if lock.write().unwrap().adopt_node(&miss, node).unwrap() {
                                adopted.fetch_add(1, Ordering::Relaxed);
                            } else {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    let r = match r {
                        Err(Error::NotCached) => {
                            retried.fetch_add(1, Ordering::Relaxed);
                            describe_exclusive(&mut lock.write().unwrap(), name, *ino)
                        }
                        r => {
                            shared_ok.fetch_add(1, Ordering::Relaxed);
                            r
                        }
                    };
                    assert_eq!(r.as_ref().ok(), want.get(ino), "{name}");
                }
            });
        }
        let (lock, stop) = (&lock, &stop);
        s.spawn(move || {
            for i in 0..300u64 {
                let mut fs = lock.write().unwrap();
                let name = format!("new{i}");
                let a = fs.create(ROOT_INO, name.as_bytes(), S_IFREG | 0o600, 0, 0, 0).unwrap();
                fs.write(a.ino, 0, &vec![7u8; 20_000]).unwrap();
                if i % 3 == 0 {
                    fs.unlink(ROOT_INO, name.as_bytes()).unwrap();
                    fs.evict(a.ino).unwrap();
                }
                if i % 50 == 0 {
                    fs.checkpoint().unwrap();
                    fs.shrink_cache(0).unwrap();
                }
                drop(fs);
                std::thread::yield_now();
            }
            stop.store(true, Ordering::Relaxed);
        });
    });
    let (ok, again, over) = (
        shared_ok.load(Ordering::Relaxed),
        retried.load(Ordering::Relaxed),
        overlaps.load(Ordering::Relaxed),
    );
    let (took, left) = (adopted.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    eprintln!(
        "shared {ok}, again exclusively {again}, overlapping {over}, nodes read in {took}, refused {left}"
    );
    assert!(
        ok > 0 && again > 0 && took > 0,
        "every path ran: shared {ok}, exclusive {again}, read in {took}"
    );
    assert!(over > 0, "shared calls overlapped");
    let mut fs = lock.into_inner().unwrap();
    assert!(fsck_problems(&mut fs).is_empty());
}
