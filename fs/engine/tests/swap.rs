#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Swap files: `swap_prepare` accepts only files the kernel can write in
//! place (every byte in a plain, single-copy extent) and drops their
//! checksums durably, so that pages written past the file system read back
//! and leave fsck clean, before and after a remount.
mod common;

use arborfs_engine::format::checksum::ChecksumType;
use arborfs_engine::format::extent::Compression;
use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::fs::FormatOptions;
use arborfs_engine::sys::{BlockDevice, MemDevice};
use arborfs_engine::{Error, Fs};
use common::*;

const LEN: u64 = 256 * 1024;

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Data checksums on, whatever the default: what swap_prepare must drop.
fn checksummed() -> FormatOptions {
    FormatOptions { data_csum: ChecksumType::Crc32c, ..opts() }
}

fn new_file(fs: &mut Fs<MemDevice>, name: &[u8]) -> u64 {
    fs.create(ROOT_INO, name, S_IFREG | 0o600, 0, 0, 0).unwrap().ino
}

/// (file offset, device offset, length) of each extent of `ino`.
fn extents(fs: &mut Fs<MemDevice>, ino: u64) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    fs.map_extents(ino, 0, &mut |m| {
        let (dev, at) = m.physical.unwrap();
        assert_eq!(dev, 0);
        out.push((m.start, at, m.end - m.start));
        true
    })
    .unwrap();
    out
}

/// What the kernel's swap code does: overwrite the file's blocks on the
/// device, not through the file system.
fn write_in_place(fs: Fs<MemDevice>, map: &[(u64, u64, u64)], data: &[u8]) -> Fs<MemDevice> {
    let mut devs = fs.close().unwrap();
    for &(start, at, len) in map {
        let part = &data[start as usize..(start + len) as usize];
        devs.get_mut(0).unwrap().write_at(at, part).unwrap();
    }
    Fs::open(devs, &Default::default()).unwrap()
}

#[test]
fn swap_pages_written_in_place_read_back_and_fsck_clean() {
    let mut fs = mem_fs_with(64 << 20, &checksummed());
    let ino = new_file(&mut fs, b"swap");
    fs.write(ino, 0, &pattern(LEN as usize, 1)).unwrap();
    fs.fsync(ino).unwrap();
    // A second file keeps blocks on both sides, so the swap file's extents
    // are not at the end of what is allocated.
    let other = new_file(&mut fs, b"other");
    let other_data = pattern(100_000, 9);
    fs.write(other, 0, &other_data).unwrap();
    fs.swap_prepare(ino, LEN).unwrap();
    let map = extents(&mut fs, ino);
    let swapped = pattern(LEN as usize, 77);
    // Straight after swapon (no clean close in between: the change must be
    // in the journal already) and again after a clean remount.
    let mut fs = write_in_place(fs, &map, &swapped);
    assert_eq!(read_all(&mut fs, ino).unwrap(), swapped);
    assert_eq!(read_all(&mut fs, other).unwrap(), other_data);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
    let mut fs = reopen(fs);
    assert_eq!(read_all(&mut fs, ino).unwrap(), swapped);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
}

#[test]
fn in_place_writes_without_swap_prepare_fail_their_checksum() {
    // The test above can fail: without swap_prepare the same writes are
    // damage the engine reports.
    let mut fs = mem_fs_with(64 << 20, &checksummed());
    let ino = new_file(&mut fs, b"swap");
    fs.write(ino, 0, &pattern(LEN as usize, 1)).unwrap();
    fs.fsync(ino).unwrap();
    let map = extents(&mut fs, ino);
    let mut fs = write_in_place(fs, &map, &pattern(LEN as usize, 77));
    assert!(read_all(&mut fs, ino).is_err());
}

#[test]
fn preallocated_swap_file_is_accepted() {
    let mut fs = mem_fs(64 << 20);
    let ino = new_file(&mut fs, b"swap");
    fs.fallocate(ino, 0, 0, LEN).unwrap();
    fs.write(ino, 0, &pattern(4096, 3)).unwrap();
    fs.swap_prepare(ino, LEN).unwrap();
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
}

#[test]
fn files_swap_cannot_write_in_place_are_refused() {
    let mut fs = mem_fs(64 << 20);
    // A hole at the start, in the middle, or at the end.
    let holes = new_file(&mut fs, b"holes");
    fs.write(holes, 8192, &pattern(8192, 1)).unwrap();
    assert_eq!(fs.swap_prepare(holes, 16384), Err(Error::Invalid));
    let middle = new_file(&mut fs, b"middle");
    fs.write(middle, 0, &pattern(4096, 1)).unwrap();
    fs.write(middle, 65536, &pattern(4096, 1)).unwrap();
    assert_eq!(fs.swap_prepare(middle, 69632), Err(Error::Invalid));
    let short = new_file(&mut fs, b"short");
    fs.write(short, 0, &pattern(4096, 1)).unwrap();
    assert_eq!(fs.swap_prepare(short, 8192), Err(Error::Invalid));
    assert_eq!(fs.swap_prepare(ROOT_INO, 4096), Err(Error::Invalid));
    // Compressed data has no fixed place for a page.
    let mut o = opts();
    o.compression = Compression::Zstd;
    let mut fs = mem_fs_with(64 << 20, &o);
    let ino = new_file(&mut fs, b"swap");
    fs.write(ino, 0, &vec![0u8; LEN as usize]).unwrap();
    fs.fsync(ino).unwrap();
    assert_eq!(fs.swap_prepare(ino, LEN), Err(Error::Invalid));
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
}
