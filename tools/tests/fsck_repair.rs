#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! fsck repairs: damage the logical structure of an image (keys rewritten in
//! place, node checksums kept valid, as a buggy writer would leave them), then
//! `fsck -n` must report it (exit 4), `fsck -y` repair it (exit 1), and a
//! second `fsck -n` find nothing (exit 0).

use std::path::Path;
use std::process::Command;

use arborfs_engine::btree::cursor::{Cursor, View};
use arborfs_engine::format::alloc_info::{AllocInfo, DataType};
use arborfs_engine::format::inode::{Inode, S_IFREG};
use arborfs_engine::format::node::{BtreePtr, NodeBuilder, NodeHeader};
use arborfs_engine::format::superblock::{Superblock, SB_BYTES, SB_OFFSETS};
use arborfs_engine::format::{BtreeId, KeyType, Pos, ROOT_INO, SNAPSHOT_ROOT};
use arborfs_engine::fs::FormatOptions;
use arborfs_engine::sys::{FileDevice, TryVec};
use arborfs_engine::Fs;

fn newest_super(img: &[u8]) -> Superblock {
    SB_OFFSETS
        .iter()
        .filter_map(|&o| Superblock::decode(&img[o as usize..]).ok())
        .max_by_key(|s| s.seq)
        .unwrap()
}

/// Rewrite the key at `pos` in `btree` inside the image: `f` gets the old
/// value and returns the new one (`None` deletes the key).
fn rewrite(img: &mut [u8], btree: BtreeId, pos: Pos, f: impl FnOnce(Option<&[u8]>) -> Option<Vec<u8>>) {
    let sb = newest_super(img);
    let ns = sb.node_size as usize;
    let mut ptr = sb.roots[btree.index()];
    loop {
        let at = ptr.offset as usize;
        let node = img[at..at + ns].to_vec();
        let h = NodeHeader::decode(&node, sb.meta_csum).unwrap();
        let entries: Vec<_> = h.entries(&node).map(|e| e.unwrap()).collect();
        if h.level > 0 {
            let i = entries.iter().rposition(|e| e.pos <= pos).unwrap_or(0);
            ptr = BtreePtr::decode(entries[i].value).unwrap();
            continue;
        }
        let old = entries.iter().find(|e| e.pos == pos).map(|e| e.value);
        assert!(old.is_some(), "key {pos:?} not found in {}", btree.name());
        let new = f(old);
        let mut buf = vec![0u8; ns];
        let mut b = NodeBuilder::new(&mut buf).unwrap();
        for e in &entries {
            if e.pos == pos {
                if let Some(v) = &new {
                    b.push(e.pos, KeyType::from_u8(e.kind).unwrap(), v).unwrap();
                }
            } else {
                b.push(e.pos, KeyType::from_u8(e.kind).unwrap(), e.value).unwrap();
            }
        }
        b.finish(h.btree, h.level, h.seq, h.min_key, h.max_key, sb.meta_csum).unwrap();
        img[at..at + ns].copy_from_slice(&buf);
        return;
    }
}

fn rewrite_super(img: &mut [u8], f: impl Fn(&mut Superblock)) {
    let mut sb = newest_super(img);
    f(&mut sb);
    let mut buf = vec![0u8; SB_BYTES];
    sb.encode(&mut buf).unwrap();
    for o in SB_OFFSETS {
        img[o as usize..o as usize + SB_BYTES].copy_from_slice(&buf);
    }
}

/// The image opened read-only through the engine.
fn open_ro(img: &Path) -> Fs<FileDevice> {
    let mut devs = TryVec::new();
    devs.try_push(FileDevice::open(img, false).unwrap()).unwrap();
    Fs::open(devs, &arborfs_engine::OpenOptions { read_only: true, ..Default::default() }).unwrap()
}

/// `fsck -n` left `image` (the file at `img`) as it was; then `-y` repairs
/// (exit 1) and a second `-n` finds nothing; returns where `restore` put
/// the repaired tree.
fn repair_and_restore(img: &Path, image: &[u8], dir: &Path) -> std::path::PathBuf {
    assert!(std::fs::read(img).unwrap() == image, "fsck -n changed the image");
    let (code, out) = fsck(img, "-y");
    assert_eq!(code, 1, "{out}");
    let (code, again) = fsck(img, "-n");
    assert_eq!(code, 0, "after repair ({out}): {again}");
    let out_dir = dir.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_arborfs"))
        .args(["restore", img.to_str().unwrap(), out_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out_dir
}

fn fsck(img: &Path, flag: &str) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_arborfs"))
        .args(["fsck", flag, img.to_str().unwrap()])
        .output()
        .unwrap();
    (
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

#[test]
fn fsck_reports_then_repairs() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("img");
    std::fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
    let (a, lost, dir, data) = {
        let mut devs = TryVec::new();
        devs.try_push(FileDevice::open(&img, true).unwrap()).unwrap();
        let mut o = FormatOptions { uuid: [5; 16], hash_seed: 9, ..Default::default() };
        o.member_uuids[0] = [6; 16];
        let mut fs = Fs::format(devs, &o).unwrap();
        let a = fs.create(ROOT_INO, b"a", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
        let lost = fs.create(ROOT_INO, b"lost-me", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
        let data = b"the data of an unreachable file".repeat(500);
        fs.write(lost, 0, &data).unwrap();
        let dir = fs.mkdir(ROOT_INO, b"d", 0o755, 0, 0).unwrap().ino;
        fs.mkdir(dir, b"sub", 0o755, 0, 0).unwrap();
        fs.close().unwrap();
        (a, lost, dir, data)
    };
    let mut image = std::fs::read(&img).unwrap();
    let set_nlink = |n: u32| {
        move |old: Option<&[u8]>| {
            let mut i = Inode::decode(old.unwrap()).unwrap();
            i.nlink = n;
            let mut buf = vec![0u8; arborfs_engine::format::inode::INODE_BYTES];
            i.encode(&mut buf).unwrap();
            Some(buf)
        }
    };
    rewrite(&mut image, BtreeId::Inodes, Pos::new(a, 0, SNAPSHOT_ROOT), set_nlink(5));
    rewrite(&mut image, BtreeId::Inodes, Pos::new(dir, 0, SNAPSHOT_ROOT), set_nlink(9));
    // Remove the directory entry naming `lost-me`.
    let slot = arborfs_engine::format::dirent::name_slot(9, b"lost-me");
    rewrite(&mut image, BtreeId::Dirents, Pos::new(ROOT_INO, slot, SNAPSHOT_ROOT), |_| None);
    // Overstate one user bucket's usage.
    let sb = newest_super(&image);
    let bucket = {
        std::fs::write(&img, &image).unwrap();
        let mut fs = open_ro(&img);
        let mut c = Cursor::new(BtreeId::Alloc, Pos::MIN, Pos::MAX, View::LIVE);
        loop {
            let (pos, _) = fs.next_key(&mut c).unwrap().unwrap();
            if AllocInfo::decode(c.value()).unwrap().data_type == DataType::User {
                break pos;
            }
        }
    };
    rewrite(&mut image, BtreeId::Alloc, bucket, |old| {
        let mut a = AllocInfo::decode(old.unwrap()).unwrap();
        a.used += 4096;
        let mut buf = vec![0u8; 16];
        a.encode(&mut buf).unwrap();
        Some(buf)
    });
    rewrite_super(&mut image, |s| s.inodes += 7);
    let _ = sb;
    std::fs::write(&img, &image).unwrap();

    let (code, out) = fsck(&img, "-n");
    assert_eq!(code, 4, "{out}");
    assert_eq!(out.matches("inode ").count(), 3, "each problem once:\n{out}");
    for want in [
        "link count 5, but 1",
        "directory",
        "no directory entry names it",
        "usage recorded wrong",
        "inode counter",
    ] {
        assert!(out.contains(want), "fsck -n output lacks {want:?}:\n{out}");
    }
    // The unreachable file is in lost+found with its data.
    let out_dir = repair_and_restore(&img, &image, t.path());
    let got = std::fs::read(out_dir.join(format!("lost+found/#{lost}"))).unwrap();
    assert_eq!(got, data);
    assert!(!out_dir.join("lost-me").exists());
}

/// The position of every live key of `btree` belonging to `ino`.
fn key_positions(img: &Path, btree: BtreeId, ino: u64) -> Vec<Pos> {
    let mut fs = open_ro(img);
    let mut c = Cursor::new(btree, Pos::new(ino, 0, 0), Pos::new(ino, u64::MAX, u32::MAX), View::LIVE);
    let mut out = Vec::new();
    while let Some((pos, _)) = fs.next_key(&mut c).unwrap() {
        out.push(pos);
    }
    out
}

/// Values that do not decode, in each tree that holds file-system values:
/// an inode whose mode names no file type, one cut short, a directory's
/// with no type at all, a directory entry, an extent and an extended
/// attribute cut short. `fsck -n` reports each, `-y` repairs them keeping
/// what can be kept (the files whose inodes were damaged keep their names
/// and data), and a second `-n` finds nothing.
#[test]
fn undecodable_values_are_repaired() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("img");
    std::fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
    let data = |n: usize, seed: u8| {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<u8>>()
    };
    let (bad_mode, short, sdir, ext, xf, named) = {
        let mut devs = TryVec::new();
        devs.try_push(FileDevice::open(&img, true).unwrap()).unwrap();
        let mut o = FormatOptions { uuid: [5; 16], hash_seed: 9, ..Default::default() };
        o.member_uuids[0] = [6; 16];
        let mut fs = Fs::format(devs, &o).unwrap();
        let mk = |fs: &mut Fs<FileDevice>, dir: u64, name: &[u8]| {
            fs.create(dir, name, S_IFREG | 0o644, 0, 0, 0).unwrap().ino
        };
        let bad_mode = mk(&mut fs, ROOT_INO, b"bad-mode");
        fs.write(bad_mode, 0, &data(20000, 1)).unwrap();
        let short = mk(&mut fs, ROOT_INO, b"short");
        fs.write(short, 0, &data(30000, 2)).unwrap();
        let sdir = fs.mkdir(ROOT_INO, b"sdir", 0o755, 0, 0).unwrap().ino;
        let inner = mk(&mut fs, sdir, b"inner");
        fs.write(inner, 0, b"inner data").unwrap();
        let ext = mk(&mut fs, ROOT_INO, b"ext");
        fs.write(ext, 0, &data(8192, 3)).unwrap();
        fs.write(ext, 1 << 20, &data(8192, 4)).unwrap();
        let xf = mk(&mut fs, ROOT_INO, b"xf");
        fs.setxattr(xf, b"user.a", b"kept", 0).unwrap();
        fs.setxattr(xf, b"user.b", b"damaged", 0).unwrap();
        let named = mk(&mut fs, ROOT_INO, b"named");
        fs.write(named, 0, b"named data").unwrap();
        fs.close().unwrap();
        (bad_mode, short, sdir, ext, xf, named)
    };
    let mut image = std::fs::read(&img).unwrap();
    let inode = |ino| Pos::new(ino, 0, SNAPSHOT_ROOT);
    let with_mode = |mode: u32| {
        move |old: Option<&[u8]>| {
            let mut v = old.unwrap().to_vec();
            v[..4].copy_from_slice(&mode.to_le_bytes());
            Some(v)
        }
    };
    let cut_short = |n: usize| move |old: Option<&[u8]>| Some(old.unwrap()[..n].to_vec());
    rewrite(&mut image, BtreeId::Inodes, inode(bad_mode), with_mode(0o170644));
    rewrite(&mut image, BtreeId::Inodes, inode(short), cut_short(10));
    rewrite(&mut image, BtreeId::Inodes, inode(sdir), with_mode(0));
    let slot = arborfs_engine::format::dirent::name_slot(9, b"named");
    rewrite(&mut image, BtreeId::Dirents, Pos::new(ROOT_INO, slot, SNAPSHOT_ROOT), cut_short(3));
    let extents = key_positions(&img, BtreeId::Extents, ext);
    assert_eq!(extents.len(), 2, "{extents:?}");
    rewrite(&mut image, BtreeId::Extents, extents[1], cut_short(5));
    let xattrs = key_positions(&img, BtreeId::Xattrs, xf);
    assert_eq!(xattrs.len(), 2, "{xattrs:?}");
    // Which of the two is user.b: the one whose value names it.
    let b = {
        let mut fs = open_ro(&img);
        let mut c = Cursor::new(BtreeId::Xattrs, xattrs[0], xattrs[0], View::LIVE);
        fs.next_key(&mut c).unwrap();
        if c.value().windows(7).any(|w| w == b"damaged") {
            xattrs[0]
        } else {
            xattrs[1]
        }
    };
    rewrite(&mut image, BtreeId::Xattrs, b, cut_short(2));
    std::fs::write(&img, &image).unwrap();

    let (code, out) = fsck(&img, "-n");
    assert_eq!(code, 4, "{out}");
    for want in [format!("inode {bad_mode}:"), format!("inode {short}:"), format!("inode {sdir}:")] {
        assert!(out.contains(&want), "fsck -n output lacks {want:?}:\n{out}");
    }
    let out_dir = repair_and_restore(&img, &image, t.path());
    assert!(std::fs::read(out_dir.join("bad-mode")).unwrap() == data(20000, 1), "bad-mode's data");
    // A size lost with its inode is where the data ends: the last block, whole.
    let short_data = std::fs::read(out_dir.join("short")).unwrap();
    assert_eq!(short_data.len(), 32768, "short's size");
    assert!(
        short_data[..30000] == data(30000, 2)[..] && short_data[30000..].iter().all(|&x| x == 0),
        "short's data"
    );
    assert_eq!(std::fs::read(out_dir.join("sdir/inner")).unwrap(), b"inner data");
    let e = std::fs::read(out_dir.join("ext")).unwrap();
    assert!(e[..8192] == data(8192, 3)[..], "the extent that decodes is kept");
    assert!(e[8192..].iter().all(|&x| x == 0), "the damaged extent is a hole now");
    assert_eq!(std::fs::read(out_dir.join(format!("lost+found/#{named}"))).unwrap(), b"named data");
    let _ = xf;
}
