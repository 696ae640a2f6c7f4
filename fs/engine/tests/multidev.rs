#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Several member devices: mixed bucket sizes, data spread over members,
//! members given in any order at open, and missing or foreign members refused.
mod common;

use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::superblock::make_label;
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::fs::format::MemberOptions;
use arborfs_engine::sys::{MemDevice, TryVec};
use arborfs_engine::{Error, Fs, OpenOptions};
use common::*;

#[test]
fn two_members_with_different_bucket_sizes() {
    let mut o = opts();
    // (Four nodes fit the smaller bucket.)
    o.node_size = 16 * 1024;
    o.member_uuids[1] = [0x33; 16];
    o.members[0] =
        MemberOptions { label: make_label("ssd.a").unwrap(), bucket_size: 128 * 1024, durability: 1 };
    o.members[1] =
        MemberOptions { label: make_label("hdd.b").unwrap(), bucket_size: 64 * 1024, durability: 1 };
    let mut devs = TryVec::new();
    devs.try_push(MemDevice::new(32 << 20)).unwrap();
    devs.try_push(MemDevice::new(24 << 20)).unwrap();
    let mut fs = Fs::format(devs, &o).unwrap();
    let mut rng = Rng(31);
    let mut files = Vec::new();
    for i in 0..60 {
        let a = fs.create(ROOT_INO, format!("f{i}").as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap();
        let mut data = vec![0u8; 200_000 + rng.below(100_000) as usize];
        rng.fill(&mut data);
        fs.write(a.ino, 0, &data).unwrap();
        files.push((a.ino, data));
    }
    // Both members hold data.
    let mut used = [false; 2];
    for (ino, _) in &files {
        fs.map_extents(*ino, 0, &mut |m| {
            if let Some((dev, _)) = m.physical {
                used[usize::from(dev)] = true;
            }
            true
        })
        .unwrap();
    }
    assert_eq!(used, [true, true]);
    let mut devs = fs.close().unwrap();
    // Open with the members in the other order.
    let b = devs.pop().unwrap();
    let a = devs.pop().unwrap();
    let mut swapped = TryVec::new();
    swapped.try_push(b.clone()).unwrap();
    swapped.try_push(a.clone()).unwrap();
    let mut fs = Fs::open(swapped, &OpenOptions::default()).unwrap();
    for (ino, data) in &files {
        assert_eq!(&read_all(&mut fs, *ino).unwrap(), data);
    }
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
    drop(fs);
    // A missing member, or a foreign device in its place, is refused.
    let mut one = TryVec::new();
    one.try_push(a.clone()).unwrap();
    assert!(matches!(Fs::open(one, &OpenOptions::default()), Err(Error::Corrupt(_))));
    let mut foreign = TryVec::new();
    foreign.try_push(a).unwrap();
    foreign.try_push(mem_fs(16 << 20).close().unwrap().pop().unwrap()).unwrap();
    assert!(Fs::open(foreign, &OpenOptions::default()).is_err());
}

#[test]
fn enospc_repeatedly_never_stops_the_file_system() {
    let mut fs = mem_fs(16 << 20);
    let a = fs.create(ROOT_INO, b"f", S_IFREG | 0o644, 0, 0, 0).unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    let mut off = 0;
    let mut errors = 0;
    for _ in 0..40 {
        match fs.write(a.ino, off, &chunk) {
            Ok(_) => off += chunk.len() as u64,
            Err(Error::NoSpace) => errors += 1,
            Err(e) => panic!("{e}"),
        }
        assert!(!fs.is_read_only(), "{:?}", fs.failure());
    }
    assert!(errors > 10);
    fs.setattr(a.ino, &arborfs_engine::fs::SetAttr { size: Some(0), ..Default::default() }).unwrap();
    fs.write(a.ino, 0, &chunk).unwrap();
    let mut fs = reopen(fs);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
}
