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
