#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Basic operations through format, close and reopen.
mod common;
use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::ROOT_INO;
use common::*;

#[test]
fn create_write_reopen_read() {
    let mut fs = mem_fs(64 << 20);
    let f = fs.create(ROOT_INO, b"hello", S_IFREG | 0o644, 1, 2, 0).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    fs.write(f.ino, 100, &data).unwrap();
    let d = fs.mkdir(ROOT_INO, b"dir", 0o755, 0, 0).unwrap();
    fs.symlink(d.ino, b"link", b"../hello", 0, 0).unwrap();
    let mut fs = reopen(fs);
    let a = fs.lookup(ROOT_INO, b"hello").unwrap();
    assert_eq!(a.inode.size, 300_100);
    let got = read_all(&mut fs, a.ino).unwrap();
    assert_eq!(&got[..100], &[0u8; 100][..]);
    assert_eq!(&got[100..], &data[..]);
    let l = fs.lookup(d.ino, b"link").unwrap();
    let mut t = arborfs_engine::sys::TryVec::new();
    fs.readlink(l.ino, &mut t).unwrap();
    assert_eq!(&t[..], b"../hello");
    assert_eq!(fs.getattr(ROOT_INO).unwrap().inode.nlink, 3);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
}

/// What the kernel's remount, shutdown and compress= option do to the engine.
#[test]
fn read_only_switch_shutdown_and_compression_override() {
    use arborfs_engine::format::extent::Compression;
    use arborfs_engine::Error;
    let mut fs = mem_fs(64 << 20);
    let f = fs.create(ROOT_INO, b"f", S_IFREG | 0o644, 0, 0, 0).unwrap();
    // compress=lz4 on a file system formatted without compression: new data
    // takes less room, and reads back the same after a reopen.
    fs.set_compression(Compression::Lz4, 0);
    let text = b"compressible ".repeat(100_000);
    fs.write(f.ino, 0, &text).unwrap();
    let used = fs.getattr(f.ino).unwrap().inode.alloc_bytes;
    assert!(used < text.len() as u64 / 4, "{used} bytes for {}", text.len());
    // Read-only: changes refused, reads go on, and closing writes nothing more.
    fs.make_read_only().unwrap();
    assert_eq!(fs.write(f.ino, 0, b"x"), Err(Error::ReadOnly));
    assert_eq!(read_all(&mut fs, f.ino).unwrap(), text);
    let mut fs = reopen(fs);
    assert_eq!(read_all(&mut fs, f.ino).unwrap(), text);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
    // Shutdown after a journal flush: the flushed change survives, nothing
    // after it is written, and the next open replays the journal.
    fs.write(f.ino, 0, b"flushed").unwrap();
    fs.shutdown(true).unwrap();
    assert_eq!(fs.write(f.ino, 0, b"lost"), Err(Error::ReadOnly));
    let devs = fs.close().unwrap();
    let mut fs = arborfs_engine::Fs::open(devs, &arborfs_engine::OpenOptions::default()).unwrap();
    assert_eq!(&read_all(&mut fs, f.ino).unwrap()[..7], b"flushed");
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
}

/// O_TMPFILE: an unnamed file is reclaimed at the next open unless a link
/// gave it a name first.
#[test]
fn tmpfile_is_reclaimed_unless_linked() {
    let mut fs = mem_fs(64 << 20);
    let used = |s: arborfs_engine::fs::StatFs| s.files - s.files_free;
    let inodes = used(fs.statfs());
    let kept = fs.create_tmpfile(ROOT_INO, S_IFREG | 0o600, 3, 4).unwrap();
    assert_eq!(kept.inode.nlink, 0);
    fs.write(kept.ino, 0, b"kept data").unwrap();
    let lost = fs.create_tmpfile(ROOT_INO, S_IFREG | 0o600, 0, 0).unwrap();
    fs.write(lost.ino, 0, &[7u8; 300_000]).unwrap();
    assert_eq!(fs.create_tmpfile(ROOT_INO, 0o040755, 0, 0).map(|_| ()), Err(arborfs_engine::Error::Invalid));
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
    let named = fs.link(kept.ino, ROOT_INO, b"named").unwrap();
    assert_eq!(named.inode.nlink, 1);
    // The system goes down with `lost` still open: the next open deletes it.
    let mut fs = reopen(fs);
    assert_eq!(fs.getattr(lost.ino).map(|_| ()), Err(arborfs_engine::Error::NotFound));
    let a = fs.lookup(ROOT_INO, b"named").unwrap();
    assert_eq!((a.ino, a.inode.nlink, a.inode.uid, a.inode.gid), (kept.ino, 1, 3, 4));
    assert_eq!(read_all(&mut fs, a.ino).unwrap(), b"kept data");
    assert_eq!(used(fs.statfs()), inodes + 1);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
}

/// RENAME_WHITEOUT leaves a 0:0 character device at the old name, in the
/// same transaction as the move.
#[test]
fn rename_whiteout_leaves_a_character_device() {
    use arborfs_engine::format::inode::S_IFCHR;
    use arborfs_engine::fs::dirent::{RENAME_EXCHANGE, RENAME_WHITEOUT};
    let mut fs = mem_fs(64 << 20);
    let d = fs.mkdir(ROOT_INO, b"d", 0o755, 0, 0).unwrap();
    let f = fs.create(ROOT_INO, b"f", S_IFREG | 0o644, 0, 0, 0).unwrap();
    fs.rename(ROOT_INO, b"f", d.ino, b"g", RENAME_WHITEOUT, (5, 6)).unwrap();
    let w = fs.lookup(ROOT_INO, b"f").unwrap();
    assert_eq!((w.inode.mode, w.inode.rdev, w.inode.nlink, w.inode.uid, w.inode.gid), (S_IFCHR, 0, 1, 5, 6));
    assert_eq!(fs.lookup(d.ino, b"g").unwrap().ino, f.ino);
    // A directory over an empty one in the same parent: the replaced one
    // goes, the whiteout takes the old name, the parent loses one link.
    fs.mkdir(ROOT_INO, b"sub", 0o755, 0, 0).unwrap();
    fs.mkdir(ROOT_INO, b"empty", 0o755, 0, 0).unwrap();
    assert_eq!(fs.getattr(ROOT_INO).unwrap().inode.nlink, 5);
    let gone = fs.rename(ROOT_INO, b"sub", ROOT_INO, b"empty", RENAME_WHITEOUT, (0, 0)).unwrap();
    assert!(gone.is_some());
    assert_eq!(fs.getattr(ROOT_INO).unwrap().inode.nlink, 4);
    assert_eq!(fs.lookup(ROOT_INO, b"sub").unwrap().inode.mode, S_IFCHR);
    assert_eq!(
        fs.rename(ROOT_INO, b"d", ROOT_INO, b"sub", RENAME_WHITEOUT | RENAME_EXCHANGE, (0, 0)),
        Err(arborfs_engine::Error::Invalid)
    );
    if let Some(ino) = gone {
        fs.evict(ino).unwrap();
    }
    let mut fs = reopen(fs);
    assert_eq!(fs.lookup(ROOT_INO, b"f").unwrap().ino, w.ino);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
}

/// `write` stamps mtime and ctime; `write_back` (the kernel's writeback,
/// which may run after a utimes) leaves the times the caller set.
#[test]
fn write_back_keeps_times() {
    use arborfs_engine::fs::SetAttr;
    let mut fs = mem_fs(64 << 20);
    let f = fs.create(ROOT_INO, b"f", S_IFREG | 0o644, 0, 0, 0).unwrap();
    let set = SetAttr { mtime: Some(4_000_000_000_000_000_000), ctime: Some(-5), ..Default::default() };
    fs.setattr(f.ino, &set).unwrap();
    fs.write_back(f.ino, 0, &[1u8; 10_000]).unwrap();
    let a = fs.getattr(f.ino).unwrap().inode;
    assert_eq!((a.mtime, a.ctime, a.size), (4_000_000_000_000_000_000, -5, 10_000));
    fs.write(f.ino, 0, b"x").unwrap();
    let a = fs.getattr(f.ino).unwrap().inode;
    assert!(a.mtime < 4_000_000_000_000_000_000 && a.ctime > 0, "write stamps the times");
}

/// The platform's CRC-32C (hardware where the host has it) gives the values
/// the format crate's portable one defines, at every length and alignment.
#[test]
fn platform_crc32c_matches_the_format() {
    use arborfs_engine::format::checksum::{crc32c, ChecksumType};
    use arborfs_engine::sys::data_checksum;
    let mut rng = Rng(0x5eed);
    let mut data = vec![0u8; 70_000];
    rng.fill(&mut data);
    assert_eq!(arborfs_engine::sys::crc32c(b"123456789"), 0xE306_9283);
    for (start, len) in [(0, 0), (0, 1), (1, 7), (3, 64), (5, 4099), (0, 70_000), (13, 65_536)] {
        let d = &data[start..start + len];
        assert_eq!(arborfs_engine::sys::crc32c(d), crc32c(d), "{start}+{len}");
        assert_eq!(data_checksum(ChecksumType::Crc32c, d), u64::from(crc32c(d)));
        assert_eq!(data_checksum(ChecksumType::Xxhash64, d), ChecksumType::Xxhash64.compute(d));
    }
}
