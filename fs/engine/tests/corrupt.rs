#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Damaged images: flipped bytes in superblocks, nodes, journal and data must
//! give clear errors (or be repaired), never a panic, and never wrong data.
mod common;

use arborfs_engine::btree::cursor::{Cursor, View};
use arborfs_engine::format::extent::Extent;
use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::superblock::SB_OFFSETS;
use arborfs_engine::format::{BtreeId, KeyType, Pos, ROOT_INO};
use arborfs_engine::fsck::{Repair, Reporter};
use arborfs_engine::sys::{MemDevice, TryVec};
use arborfs_engine::{Error, Fs, OpenOptions};
use common::*;

/// An image with a few directories and files, closed cleanly.
fn populated() -> (Vec<u8>, Vec<(u64, Vec<u8>)>) {
    let mut fs = mem_fs(32 << 20);
    let mut rng = Rng(99);
    let mut files = Vec::new();
    for d in 0..4 {
        let dir = fs.mkdir(ROOT_INO, format!("d{d}").as_bytes(), 0o755, 0, 0).unwrap().ino;
        for f in 0..30 {
            let a = fs.create(dir, format!("f{f}").as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap();
            let mut data = vec![0u8; rng.below(40_000) as usize];
            rng.fill(&mut data);
            fs.write(a.ino, 0, &data).unwrap();
            fs.setxattr(a.ino, b"user.x", b"attr", 0).unwrap();
            files.push((a.ino, data));
        }
    }
    let devs = fs.close().unwrap();
    (devs[0].data.clone(), files)
}

fn open(img: Vec<u8>, read_only: bool) -> arborfs_engine::Result<Fs<MemDevice>> {
    let mut devs = TryVec::new();
    devs.try_push(MemDevice { data: img }).unwrap();
    Fs::open(devs, &OpenOptions { read_only, ..Default::default() })
}

/// Use the file system as a reader would; any error is fine, a panic is not.
fn exercise(fs: &mut Fs<MemDevice>, files: &[(u64, Vec<u8>)]) -> (usize, usize) {
    let (mut good, mut bad) = (0, 0);
    let _ = fs.readdir(ROOT_INO, 0, &mut |_, _, _, _| true);
    for (ino, data) in files {
        let mut buf = vec![0u8; data.len()];
        match fs.read(*ino, 0, &mut buf) {
            Ok(n) if n == data.len() && buf == *data => good += 1,
            Ok(n) => {
                // A successful read must never return wrong bytes.
                assert!(n != data.len() || buf == *data, "inode {ino}: read returned wrong data");
                bad += 1;
            }
            Err(_) => bad += 1,
        }
    }
    let mut out = Vec::new();
    let mut sink = |p: &arborfs_engine::fsck::Problem| out.push(p.to_string());
    let mut progress = |_: &str, _: u64, _: u64| {};
    let mut r = Reporter::new(Repair::No, &mut sink, &mut progress);
    let _ = fs.fsck(&mut r);
    (good, bad)
}

#[test]
fn data_corruption_is_an_io_error_not_wrong_data() {
    let (img, files) = populated();
    let mut fs = open(img.clone(), true).unwrap();
    let (ino, data) = files.iter().find(|(_, d)| d.len() > 10_000).unwrap().clone();
    let mut c =
        Cursor::new(BtreeId::Extents, Pos::new(ino, 1, 0), Pos::new(ino, u64::MAX, u32::MAX), View::LIVE);
    let (_, kind) = fs.next_key(&mut c).unwrap().unwrap();
    assert_eq!(kind, KeyType::Extent);
    let e = Extent::decode(c.value()).unwrap();
    let mut bad = img.clone();
    bad[e.ptrs[0].offset as usize + 100] ^= 0x40;
    let mut fs = open(bad, true).unwrap();
    let mut buf = vec![0u8; data.len()];
    match fs.read(ino, 0, &mut buf) {
        Err(Error::DataChecksum { ino: i, offset: 0 }) => assert_eq!(i, ino),
        other => panic!("expected a data checksum error, got {other:?}"),
    }
    assert_eq!(Error::DataChecksum { ino, offset: 0 }.errno(), 5);
}

#[test]
fn superblock_copies_back_each_other_up() {
    let (img, files) = populated();
    let mut bad = img.clone();
    bad[SB_OFFSETS[0] as usize + 200] ^= 1;
    let mut fs = open(bad.clone(), false).expect("a damaged first copy falls back to the others");
    assert_eq!(exercise(&mut fs, &files), (files.len(), 0));
    for off in SB_OFFSETS {
        bad[off as usize + 300] ^= 1;
    }
    match open(bad, true) {
        Err(Error::BadMetadata { what: "superblock", .. }) => {}
        other => panic!("expected a superblock error, got {:?}", other.err()),
    }
}

#[test]
fn damaged_root_node_is_reported() {
    let (img, files) = populated();
    let fs = open(img.clone(), true).unwrap();
    let root = fs.sb.roots[BtreeId::Dirents.index()];
    drop(fs);
    let mut bad = img;
    bad[root.offset as usize + 90] ^= 0xff;
    match open(bad, true) {
        Ok(mut fs) => {
            let e = fs.lookup(ROOT_INO, b"d0").unwrap_err();
            assert!(e.is_damage(), "{e:?}");
            let mut problems = Vec::new();
            let mut sink = |p: &arborfs_engine::fsck::Problem| problems.push(p.to_string());
            let mut progress = |_: &str, _: u64, _: u64| {};
            let mut r = Reporter::new(Repair::No, &mut sink, &mut progress);
            let rep = fs.fsck(&mut r).unwrap();
            assert!(rep.unfixed() > 0);
            assert!(problems.iter().any(|p| p.contains("checksum")), "{problems:?}");
            let _ = files;
        }
        Err(e) => assert!(e.is_damage(), "{e:?}"),
    }
}

#[test]
fn random_byte_flips_never_panic_or_return_wrong_data() {
    let (img, files) = populated();
    let used = img.iter().rposition(|&b| b != 0).unwrap() + 1;
    // Byte ranges of b-tree buckets, from the alloc b-tree.
    let mut fs = open(img.clone(), true).unwrap();
    let bucket = u64::from(fs.sb.members()[0].bucket_size);
    let mut meta = Vec::new();
    let mut c = Cursor::new(BtreeId::Alloc, Pos::MIN, Pos::MAX, View::LIVE);
    while let Some((pos, _)) = fs.next_key(&mut c).unwrap() {
        let a = arborfs_engine::format::alloc_info::AllocInfo::decode(c.value()).unwrap();
        if a.data_type == arborfs_engine::format::alloc_info::DataType::Btree {
            meta.push(pos.offset * bucket);
        }
    }
    assert!(!meta.is_empty());
    drop(fs);
    let mut rng = Rng(4242);
    let mut opened = 0;
    for round in 0..300 {
        let mut bad = img.clone();
        for _ in 0..1 + rng.below(8) {
            let at = if rng.below(2) == 0 {
                (meta[rng.below(meta.len() as u64) as usize] + rng.below(bucket)) as usize
            } else {
                rng.below(used as u64) as usize
            };
            bad[at] ^= 1 << rng.below(8);
        }
        let read_only = round % 2 == 0;
        if let Ok(mut fs) = open(bad, read_only) {
            opened += 1;
            exercise(&mut fs, &files);
            if !read_only {
                // Repairs must not panic either.
                let mut sink = |_: &arborfs_engine::fsck::Problem| {};
                let mut progress = |_: &str, _: u64, _: u64| {};
                let mut r = Reporter::new(Repair::Yes, &mut sink, &mut progress);
                let _ = fs.fsck(&mut r);
            }
        }
    }
    assert!(opened > 100, "only {opened} damaged images opened at all");
}
