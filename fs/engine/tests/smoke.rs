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
