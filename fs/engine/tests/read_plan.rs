#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Reads planned under the engine lock and carried out by the caller
//! (`Fs::plan_read`, `ReadPlan::verify_span`, `ReadPlan::decode_span`,
//! `Fs::finish_read`), as the kernel's page-cache reads do them: the bytes
//! must be the engine's own read's, damaged chunks and payloads must be
//! caught, and a bucket freed between the plan and its finish must send
//! the caller back.
mod common;

use arborfs_engine::format::checksum::ChecksumType;
use arborfs_engine::format::extent::Compression;
use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::superblock::INCOMPAT_CHUNKED_CSUMS;
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::fs::read_plan::{ReadPlan, SpanSource};
use arborfs_engine::fs::FormatOptions;
use arborfs_engine::sys::{BlockDevice, MemDevice};
use arborfs_engine::{Error, Fs};
use common::*;

const MIB: usize = 1 << 20;

/// Carry out a plan as the kernel does: member blocks read by the caller,
/// zeros filled, verified, finished. None when the plan went stale.
fn planned_read(fs: &mut Fs<MemDevice>, plan: &ReadPlan) -> Result<Option<Vec<u8>>, Error> {
    let mut buf = vec![0xa5u8; plan.len as usize];
    for (i, s) in plan.spans.iter().enumerate() {
        let from = (s.start - plan.start) as usize;
        let dst = &mut buf[from..from + s.len as usize];
        match s.source {
            SpanSource::Zero => dst.fill(0),
            SpanSource::Device { dev, offset, dev_len, skip, .. } => {
                assert!(dev_len.is_multiple_of(4096) && offset.is_multiple_of(4096), "whole blocks");
                let mut read = vec![0u8; dev_len as usize];
                fs.devices_mut()[usize::from(dev)].read_at(offset, &mut read)?;
                plan.verify_span(i, &read)?;
                dst.copy_from_slice(&read[skip as usize..skip as usize + dst.len()]);
            }
            SpanSource::Encoded { dev, offset, dev_len, .. } => {
                assert!(dev_len.is_multiple_of(4096) && offset.is_multiple_of(4096), "whole blocks");
                let mut read = vec![0u8; dev_len as usize];
                fs.devices_mut()[usize::from(dev)].read_at(offset, &mut read)?;
                plan.decode_span(i, &read, dst)?;
            }
            SpanSource::Engine => {}
        }
    }
    Ok(fs.finish_read(plan, &mut buf)?.then_some(buf))
}

fn read_via_plan(fs: &mut Fs<MemDevice>, ino: u64, off: u64, len: u64) -> (Vec<u8>, usize) {
    let mut plan = ReadPlan::new();
    let n = fs.plan_read(ino, off, len, &mut plan).unwrap();
    assert_eq!(n, plan.len);
    let covered: u64 = plan.spans.iter().map(|s| s.len).sum();
    assert_eq!(covered, n, "spans cover the plan");
    let device = plan
        .spans
        .iter()
        .filter(|s| matches!(s.source, SpanSource::Device { .. } | SpanSource::Encoded { .. }))
        .count();
    (planned_read(fs, &plan).unwrap().expect("nothing changed: the plan is current"), device)
}

/// A file with data, a hole, preallocated space and a short tail.
fn mixed_file(fs: &mut Fs<MemDevice>, name: &[u8], seed: u64) -> (u64, Vec<u8>) {
    let ino = fs.create(ROOT_INO, name, S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
    let mut want = vec![0u8; 3 * MIB + 1234];
    Rng(seed).fill(&mut want[..MIB + 8192]);
    fs.write(ino, 0, &want[..MIB + 8192]).unwrap();
    // A hole, then preallocated space (reads as zeros), then data to the end.
    fs.fallocate(ino, 0x01, (3 * MIB / 2) as u64, 65536).unwrap();
    Rng(seed + 1).fill(&mut want[2 * MIB..]);
    fs.write(ino, (2 * MIB) as u64, &want[2 * MIB..]).unwrap();
    (ino, want)
}

fn big_buckets(data_csum: ChecksumType, compression: Compression) -> FormatOptions {
    let mut o = FormatOptions { data_csum, compression, ..opts() };
    o.members[0].bucket_size = 2 << 20;
    o
}

#[test]
fn planned_reads_return_what_the_engine_reads() {
    let kinds = [
        (ChecksumType::None, Compression::None),
        (ChecksumType::Crc32c, Compression::None),
        (ChecksumType::Xxhash64, Compression::None),
        // Random data does not compress: stored as it is, chunk-checksummed.
        (ChecksumType::Crc32c, Compression::Zstd),
    ];
    for (csum, compression) in kinds {
        let mut fs = mem_fs_with(64 << 20, &big_buckets(csum, compression));
        let (ino, want) = mixed_file(&mut fs, b"mixed", 7);
        let small = fs.create(ROOT_INO, b"small", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
        fs.write(small, 0, b"inline bytes").unwrap();
        let mut fs = reopen(fs);
        let (all, device) = read_via_plan(&mut fs, ino, 0, want.len() as u64 + 4096);
        assert_eq!(all, want, "{csum:?} {compression:?}: whole file");
        // Uncompressed data is read straight from the device.
        assert!(device > 0, "{csum:?} {compression:?}: no device spans");
        let mut rng = Rng(3);
        for _ in 0..200 {
            let off = rng.below(want.len() as u64 + 100);
            let len = 1 + rng.below(300_000);
            let (got, device) = read_via_plan(&mut fs, ino, off, len);
            let holes_only = off >= (MIB + 8192) as u64 && off + len <= (2 * MIB) as u64;
            assert!(
                device > 0 || holes_only || off >= want.len() as u64,
                "{csum:?}: {off}+{len} not from the device"
            );
            let from = (off as usize).min(want.len());
            let to = (off + len).min(want.len() as u64) as usize;
            assert_eq!(got, &want[from..to.max(from)], "{csum:?} {compression:?}: {off}+{len}");
        }
        assert_eq!(read_via_plan(&mut fs, small, 0, 4096).0, b"inline bytes");
        assert_eq!(read_via_plan(&mut fs, small, 100, 4096).0, b"");
    }
}

/// A megabyte of text that compresses well.
fn text(len: usize) -> Vec<u8> {
    (0..len).map(|i| b"arborfs compresses this line\n"[i % 29]).collect()
}

#[test]
fn compressed_and_whole_checksummed_data_is_decoded_from_the_plan() {
    for (csum, compression, chunked) in [
        (ChecksumType::Crc32c, Compression::Zstd, true),
        (ChecksumType::None, Compression::Lz4, true),
        (ChecksumType::Xxhash64, Compression::None, false),
    ] {
        let mut fs = mem_fs_with(64 << 20, &big_buckets(csum, compression));
        if !chunked {
            fs.sb.incompat &= !INCOMPAT_CHUNKED_CSUMS;
            fs = reopen(fs);
        }
        let ino = fs.create(ROOT_INO, b"text", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
        let want = text(MIB + 5000);
        fs.write(ino, 0, &want).unwrap();
        let mut fs = reopen(fs);
        let mut plan = ReadPlan::new();
        fs.plan_read(ino, 0, want.len() as u64, &mut plan).unwrap();
        assert!(
            plan.spans.iter().all(|s| matches!(s.source, SpanSource::Encoded { .. })),
            "{csum:?} {compression:?}: every span decoded by the caller"
        );
        let (got, _) = read_via_plan(&mut fs, ino, 0, want.len() as u64);
        assert_eq!(got, want, "{csum:?} {compression:?}");
        let mut rng = Rng(5);
        for _ in 0..100 {
            let off = rng.below(want.len() as u64);
            let len = 1 + rng.below(200_000);
            let to = (off + len).min(want.len() as u64) as usize;
            assert_eq!(read_via_plan(&mut fs, ino, off, len).0, &want[off as usize..to], "{off}+{len}");
        }
    }
}

#[test]
fn a_damaged_compressed_extent_fails_the_planned_read() {
    let mut fs = mem_fs_with(64 << 20, &big_buckets(ChecksumType::Crc32c, Compression::Zstd));
    let ino = fs.create(ROOT_INO, b"text", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
    fs.write(ino, 0, &text(MIB)).unwrap();
    let mut fs = reopen(fs);
    let mut plan = ReadPlan::new();
    fs.plan_read(ino, 200_000, 4096, &mut plan).unwrap();
    let Some(SpanSource::Encoded { dev, offset, extent_start, .. }) = plan.spans.first().map(|s| s.source)
    else {
        panic!("the span is an encoded extent");
    };
    fs.devices_mut()[usize::from(dev)].data[offset as usize + 10] ^= 0x40;
    match planned_read(&mut fs, &plan) {
        Err(Error::DataChecksum { ino: i, offset }) => assert_eq!((i, offset), (ino, extent_start)),
        other => panic!("damaged payload read as {:?}", other.map(|o| o.map(|v| v.len()))),
    }
    // The engine's own read, which the kernel falls back to, fails the same way.
    assert!(fs.read(ino, 200_000, &mut [0u8; 4096]).is_err());
}

#[test]
fn a_damaged_chunk_fails_the_planned_read() {
    let mut fs = mem_fs_with(64 << 20, &big_buckets(ChecksumType::Crc32c, Compression::None));
    let (ino, _) = mixed_file(&mut fs, b"f", 9);
    let mut fs = reopen(fs);
    let mut plan = ReadPlan::new();
    fs.plan_read(ino, 0, MIB as u64, &mut plan).unwrap();
    let Some(SpanSource::Device { dev, offset, .. }) = plan.spans.iter().map(|s| s.source).next() else {
        panic!("the first span is read from the device");
    };
    let mut b = [0u8; 1];
    let d = &mut fs.devices_mut()[usize::from(dev)];
    d.read_at(offset + 40_000, &mut b).unwrap();
    d.data[(offset + 40_000) as usize] ^= 0x40;
    match planned_read(&mut fs, &plan) {
        Err(Error::DataChecksum { ino: i, offset: 0 }) => assert_eq!(i, ino),
        other => panic!("damaged chunk read as {:?}", other.map(|o| o.map(|v| v.len()))),
    }
}

#[test]
fn a_bucket_freed_after_planning_sends_the_reader_back() {
    for (csum, compression) in [
        (ChecksumType::None, Compression::None),
        (ChecksumType::Crc32c, Compression::None),
        (ChecksumType::Crc32c, Compression::Zstd),
    ] {
        let mut fs = mem_fs_with(64 << 20, &big_buckets(csum, compression));
        let ino = fs.create(ROOT_INO, b"f", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
        // Random bytes, or for zstd text (compressed extents, Encoded spans).
        let data = |seed| {
            let mut d = if compression == Compression::None { vec![0u8; 6 * MIB] } else { text(6 * MIB) };
            if compression == Compression::None {
                Rng(seed).fill(&mut d);
            } else {
                d[..8].copy_from_slice(&seed.to_le_bytes());
            }
            d
        };
        fs.write(ino, 0, &data(11)).unwrap();
        let mut fs = reopen(fs);
        let mut plan = ReadPlan::new();
        fs.plan_read(ino, 0, 2 * MIB as u64, &mut plan).unwrap();
        // Overwriting the file frees its buckets (generations bumped).
        let new = data(12);
        fs.write(ino, 0, &new).unwrap();
        fs.sync().unwrap();
        assert!(
            planned_read(&mut fs, &plan).unwrap().is_none(),
            "{csum:?} {compression:?}: stale plan finished"
        );
        // A fresh plan reads the new data.
        assert_eq!(read_via_plan(&mut fs, ino, 0, 2 * MIB as u64).0, &new[..2 * MIB]);
    }
}
