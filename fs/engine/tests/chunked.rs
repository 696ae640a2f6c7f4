#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Data checksums per chunk (`EXTENT_CHUNKED`): large checksummed extents,
//! reads that verify only the chunks they touch, and images formatted
//! before the feature keeping one checksum per extent.
mod common;

use arborfs_engine::format::checksum::ChecksumType;
use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::superblock::INCOMPAT_CHUNKED_CSUMS;
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::fs::FormatOptions;
use arborfs_engine::sys::{MemDevice, TryVec};
use arborfs_engine::{Error, Fs, OpenOptions};
use common::*;

const MIB: usize = 1 << 20;

/// A file of `len` random bytes written in one call.
fn file_with(fs: &mut Fs<MemDevice>, name: &[u8], len: usize, seed: u64) -> (u64, Vec<u8>) {
    let ino = fs.create(ROOT_INO, name, S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
    let mut data = vec![0u8; len];
    Rng(seed).fill(&mut data);
    fs.write(ino, 0, &data).unwrap();
    (ino, data)
}

/// Buckets of 2 MiB, as devices of 1 GiB and more get, so that extents
/// can reach their largest size.
fn big_buckets(mut o: FormatOptions) -> FormatOptions {
    o.members[0].bucket_size = 2 << 20;
    o
}

fn open(img: Vec<u8>) -> Fs<MemDevice> {
    let mut devs = TryVec::new();
    devs.try_push(MemDevice { data: img }).unwrap();
    Fs::open(devs, &OpenOptions { read_only: true, ..Default::default() }).unwrap()
}

#[test]
fn large_writes_make_mebibyte_extents_checksummed_per_chunk() {
    for csum in [ChecksumType::Crc32c, ChecksumType::Xxhash64] {
        let o = big_buckets(FormatOptions { data_csum: csum, ..opts() });
        let mut fs = mem_fs_with(64 << 20, &o);
        let (ino, data) = file_with(&mut fs, b"big", 3 * MIB + 5000, 1);
        let mut fs = reopen(fs);
        let ext = extents(&mut fs, ino);
        assert_eq!(ext.len(), 4, "{csum:?}: {ext:?}");
        for (i, (start, e)) in ext.iter().enumerate() {
            assert_eq!(*start, (i * MIB) as u64);
            assert!(e.is_chunked() && e.csum_type == csum && e.csum == 0, "{e:?}");
            assert_eq!(e.chunk_bytes(), 32 * 1024);
            assert_eq!(e.nr_chunks(), (e.payload_len as usize).div_ceil(32 * 1024));
        }
        assert_eq!(ext[0].1.live_len as usize, MIB);
        assert_eq!(read_all(&mut fs, ino).unwrap(), data);
        // Overwriting the middle narrows the windows of what it cuts; the
        // chunk checksums of the cut pieces still verify.
        let mut patch = vec![0u8; 70_000];
        Rng(2).fill(&mut patch);
        fs.write(ino, 1_000_000, &patch).unwrap();
        let mut want = data.clone();
        want[1_000_000..1_070_000].copy_from_slice(&patch);
        let mut fs = reopen(fs);
        assert_eq!(read_all(&mut fs, ino).unwrap(), want);
        assert!(fsck_problems(&mut fs).is_empty());
    }
}

#[test]
fn a_damaged_chunk_fails_only_the_reads_that_touch_it() {
    let o = big_buckets(opts());
    let mut fs = mem_fs_with(64 << 20, &o);
    let (ino, data) = file_with(&mut fs, b"f", MIB, 3);
    let devs = fs.close().unwrap();
    let img = devs[0].data.clone();
    let mut fs = open(img.clone());
    let ext = extents(&mut fs, ino);
    assert_eq!(ext.len(), 1);
    let chunk = 32 * 1024;
    let mut bad = img;
    bad[ext[0].1.ptrs[0].offset as usize + 5 * chunk + 777] ^= 0x10;
    let mut fs = open(bad);
    let mut buf = vec![0u8; 5 * chunk];
    assert_eq!(fs.read(ino, 0, &mut buf).unwrap(), buf.len());
    assert_eq!(buf, data[..5 * chunk]);
    let mut small = vec![0u8; 4096];
    match fs.read(ino, (5 * chunk + 4096) as u64, &mut small) {
        Err(Error::DataChecksum { ino: i, offset: 0 }) => assert_eq!(i, ino),
        other => panic!("expected a data checksum error, got {other:?}"),
    }
    let mut rest = vec![0u8; MIB - 6 * chunk];
    assert_eq!(fs.read(ino, (6 * chunk) as u64, &mut rest).unwrap(), rest.len());
    assert_eq!(rest, data[6 * chunk..]);
    assert!(fs.read(ino, 0, &mut vec![0u8; MIB]).is_err(), "a read across the damage fails");
}

#[test]
fn images_without_the_feature_keep_one_checksum_per_extent() {
    let mut fs = mem_fs(32 << 20);
    fs.sb.incompat &= !INCOMPAT_CHUNKED_CSUMS;
    let mut fs = reopen(fs);
    assert_eq!(fs.sb.incompat & INCOMPAT_CHUNKED_CSUMS, 0);
    let (ino, data) = file_with(&mut fs, b"old", MIB, 4);
    let mut fs = reopen(fs);
    let ext = extents(&mut fs, ino);
    assert!(ext.len() >= 8, "{ext:?}");
    for (_, e) in &ext {
        assert!(!e.is_chunked() && e.payload_len <= 128 * 1024 && e.csum != 0, "{e:?}");
    }
    assert_eq!(read_all(&mut fs, ino).unwrap(), data);
    assert!(fsck_problems(&mut fs).is_empty());
}

#[test]
fn pieces_of_one_extent_brought_back_together_join_again() {
    use arborfs_engine::fs::extent::{FALLOC_COLLAPSE_RANGE, FALLOC_INSERT_RANGE};
    let o = big_buckets(opts());
    let mut fs = mem_fs_with(64 << 20, &o);
    let (ino, data) = file_with(&mut fs, b"f", MIB, 4);
    assert_eq!(extents(&mut fs, ino).len(), 1);
    // Opening a hole splits the extent; closing it moves the back piece
    // against the front one, and the two are one payload again.
    fs.fallocate(ino, FALLOC_INSERT_RANGE, 256 * 1024, 64 * 1024).unwrap();
    assert_eq!(extents(&mut fs, ino).len(), 2);
    fs.fallocate(ino, FALLOC_COLLAPSE_RANGE, 256 * 1024, 64 * 1024).unwrap();
    assert_eq!(extents(&mut fs, ino).len(), 1, "{:?}", extents(&mut fs, ino));
    assert_eq!(read_all(&mut fs, ino).unwrap(), data);
    let mut fs = reopen(fs);
    assert_eq!(read_all(&mut fs, ino).unwrap(), data);
    assert!(fsck_problems(&mut fs).is_empty(), "{:?}", fsck_problems(&mut fs));
}
