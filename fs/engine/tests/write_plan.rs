#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Writes planned under the engine lock and carried out by the caller
//! (`Fs::plan_write`, `WritePlan::encode`, `Fs::place_write`,
//! `Fs::commit_write`, `Fs::abort_write`), as the kernel's writeback does
//! them: the data must read back and survive a reopen, compressed plans
//! must store compressed extents, a bucket with a write in flight must not
//! be freed however the rest of it is emptied, and what cannot be planned
//! is said so.
mod common;

use arborfs_engine::format::checksum::ChecksumType;
use arborfs_engine::format::extent::Compression;
use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::superblock::INCOMPAT_CHUNKED_CSUMS;
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::fs::write_plan::{WritePlan, WriteRequest};
use arborfs_engine::fs::{FormatOptions, SetAttr};
use arborfs_engine::sys::{BlockDevice, MemDevice};
use arborfs_engine::Fs;
use common::*;

const MIB: usize = 1 << 20;

fn fs_with(data_csum: ChecksumType, compression: Compression) -> Fs<MemDevice> {
    let mut o = FormatOptions { data_csum, compression, ..opts() };
    o.members[0].bucket_size = 2 << 20;
    mem_fs_with(64 << 20, &o)
}

/// Write `data` at `off` as the kernel's writeback does: planned pieces
/// written to the device by the caller, the rest through the engine.
/// Returns how many bytes went through plans.
fn write_planned(fs: &mut Fs<MemDevice>, ino: u64, off: u64, data: &[u8]) -> u64 {
    write_planned_padded(fs, ino, off, data, 0)
}

/// As [`write_planned`], with `pad` zeros after `data` as the kernel pads a
/// folio cut at the end of the file: the plans may cover them, but the
/// file ends with `data`.
fn write_planned_padded(fs: &mut Fs<MemDevice>, ino: u64, off: u64, data: &[u8], pad: usize) -> u64 {
    let mut buf = data.to_vec();
    buf.resize(data.len() + pad, 0);
    let data_end = off + data.len() as u64;
    let mut done = 0u64;
    let mut planned = 0;
    while done < data.len() as u64 {
        let mut plan = WritePlan::new();
        if !fs.plan_write(ino, off + done, buf.len() as u64 - done, data_end, &mut plan).unwrap() {
            break;
        }
        assert!(plan.len > 0 && plan.len <= buf.len() as u64 - done);
        let piece = &buf[done as usize..(done + plan.len) as usize];
        if plan.is_placed() {
            // Plain: written from the caller's buffer, checksummed meanwhile.
            fs.devices_mut()[usize::from(plan.dev)].write_at(plan.offset, piece).unwrap();
            plan.encode(piece).unwrap();
        } else {
            // Encoded: compressed first, placed at the size it came to.
            plan.encode(piece).unwrap();
            fs.place_write(&mut plan).unwrap();
            fs.devices_mut()[usize::from(plan.dev)].write_at(plan.offset, plan.stored(piece)).unwrap();
        }
        fs.commit_write(&plan).unwrap();
        done += plan.len;
        planned += plan.len;
    }
    if done < data.len() as u64 {
        // The engine writes only the caller's data, never the padding.
        fs.write_back(ino, off + done, &data[done as usize..]).unwrap();
    }
    planned
}

/// Reopen (replaying the journal) and check that file `ino` reads `want`
/// and fsck finds nothing.
fn reopen_and_check(fs: Fs<MemDevice>, ino: u64, want: &[u8], what: &str) -> Fs<MemDevice> {
    let mut fs = reopen(fs);
    assert_eq!(read_all(&mut fs, ino).unwrap(), want, "{what} after reopen");
    assert!(fsck_problems(&mut fs).is_empty(), "{what}: {:?}", fsck_problems(&mut fs));
    fs
}

fn file(fs: &mut Fs<MemDevice>, name: &[u8]) -> u64 {
    fs.create(ROOT_INO, name, S_IFREG | 0o644, 0, 0, 0).unwrap().ino
}

#[test]
fn planned_writes_read_back_and_survive_a_reopen() {
    for csum in [ChecksumType::None, ChecksumType::Crc32c, ChecksumType::Xxhash64] {
        let mut fs = fs_with(csum, Compression::None);
        let ino = file(&mut fs, b"f");
        let mut want = vec![0u8; 5 * MIB + 3000];
        Rng(1).fill(&mut want);
        let planned = write_planned(&mut fs, ino, 0, &want);
        assert_eq!(planned, (want.len() - want.len() % 4096) as u64, "{csum:?}: whole blocks planned");
        // Overwrite the middle, unaligned at its end: plans and the engine mixed.
        let mut patch = vec![0u8; MIB + 777];
        Rng(2).fill(&mut patch);
        write_planned(&mut fs, ino, 2 * MIB as u64 + 8192, &patch);
        want[2 * MIB + 8192..3 * MIB + 8192 + 777].copy_from_slice(&patch);
        assert_eq!(fs.getattr(ino).unwrap().inode.size, want.len() as u64);
        assert_eq!(read_all(&mut fs, ino).unwrap(), want, "{csum:?}");
        // Only the journal holds the extents: they replay with their data.
        reopen_and_check(fs, ino, &want, &format!("{csum:?}"));
    }
}

/// Half compressible text, half random bytes, in 64 KiB stretches: some
/// encoded plans compress and some fall back to storing as they are.
fn mixed(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    let mut rng = Rng(seed);
    for (i, piece) in data.chunks_mut(64 * 1024).enumerate() {
        if i % 2 == 0 {
            rng.fill(piece);
        } else {
            for (j, b) in piece.iter_mut().enumerate() {
                *b = b"arborfs compresses this line well\n"[j % 34];
            }
        }
    }
    data
}

#[test]
fn compressed_plans_store_compressed_extents_that_read_back() {
    for comp in [Compression::Lz4, Compression::Zstd] {
        for csum in [ChecksumType::None, ChecksumType::Crc32c, ChecksumType::Xxhash64] {
            let mut fs = fs_with(csum, comp);
            let ino = file(&mut fs, b"z");
            let mut want = mixed(3 * MIB + 5000, 7);
            let planned = write_planned(&mut fs, ino, 0, &want);
            assert_eq!(planned, (want.len() - want.len() % 4096) as u64, "{comp:?}/{csum:?}");
            // A compressible overwrite across extents, unaligned at its end.
            let patch = mixed(300 * 1024 + 11, 8);
            write_planned(&mut fs, ino, 128 * 1024, &patch[64 * 1024..]);
            want[128 * 1024..128 * 1024 + patch.len() - 64 * 1024].copy_from_slice(&patch[64 * 1024..]);
            let ext = extents(&mut fs, ino);
            assert!(ext.iter().all(|(_, e)| e.payload_len <= 128 * 1024), "{comp:?}/{csum:?}: {ext:?}");
            assert!(ext.iter().any(|(_, e)| e.compression == comp), "{comp:?}/{csum:?}: some compressed");
            assert!(
                ext.iter().any(|(_, e)| e.compression == Compression::None),
                "{comp:?}/{csum:?}: random data stored as it is"
            );
            let alloc = fs.getattr(ino).unwrap().inode.alloc_bytes;
            assert!(alloc < want.len() as u64 * 3 / 4, "{comp:?}/{csum:?}: {alloc} allocated");
            assert_eq!(read_all(&mut fs, ino).unwrap(), want, "{comp:?}/{csum:?}");
            reopen_and_check(fs, ino, &want, &format!("{comp:?}/{csum:?}"));
        }
    }
}

#[test]
fn images_with_one_checksum_per_extent_plan_encoded_writes() {
    let mut fs = fs_with(ChecksumType::Crc32c, Compression::None);
    fs.sb.incompat &= !INCOMPAT_CHUNKED_CSUMS;
    let mut fs = reopen(fs);
    let ino = file(&mut fs, b"old");
    let mut want = vec![0u8; MIB];
    Rng(9).fill(&mut want);
    let mut plan = WritePlan::new();
    assert!(fs.plan_write(ino, 0, MIB as u64, MIB as u64, &mut plan).unwrap());
    assert!(!plan.is_placed() && plan.len == 128 * 1024, "one checksum covers at most 128 KiB");
    assert_eq!(write_planned(&mut fs, ino, 0, &want), MIB as u64);
    let mut fs = reopen(fs);
    for (_, e) in extents(&mut fs, ino) {
        assert!(!e.is_chunked() && e.payload_len == 128 * 1024 && e.csum != 0, "{e:?}");
    }
    assert_eq!(read_all(&mut fs, ino).unwrap(), want);
    assert!(fsck_problems(&mut fs).is_empty(), "{:?}", fsck_problems(&mut fs));
}

#[test]
fn encoded_plans_are_placed_once_and_only_after_encoding() {
    let mut fs = fs_with(ChecksumType::Crc32c, Compression::Zstd);
    let ino = file(&mut fs, b"z");
    fs.write(ino, 0, b"kept").unwrap();
    let data = mixed(128 * 1024, 10);
    let mut plan = WritePlan::new();
    assert!(fs.plan_write(ino, 0, MIB as u64, MIB as u64, &mut plan).unwrap());
    assert!(!plan.is_placed());
    assert!(fs.place_write(&mut plan).is_err(), "placed before encoding");
    assert!(fs.commit_write(&plan).is_err(), "committed before placing");
    fs.abort_write(&plan).unwrap();
    plan.encode(&data).unwrap();
    fs.place_write(&mut plan).unwrap();
    assert!(fs.place_write(&mut plan).is_err(), "placed twice");
    // Given up after placing: the room is unpinned and nothing changes.
    fs.abort_write(&plan).unwrap();
    let mut fs = reopen(fs);
    assert_eq!(read_all(&mut fs, ino).unwrap(), b"kept");
    assert!(fsck_problems(&mut fs).is_empty(), "{:?}", fsck_problems(&mut fs));
}

#[test]
fn a_last_block_padded_with_zeros_is_planned_whole_and_the_file_ends_at_the_data() {
    for (block, comp) in [(4096, Compression::None), (4096, Compression::Zstd), (1024, Compression::None)] {
        let mut o =
            FormatOptions { data_csum: ChecksumType::Crc32c, compression: comp, block_size: block, ..opts() };
        o.members[0].bucket_size = 2 << 20;
        let mut fs = mem_fs_with(64 << 20, &o);
        let what = format!("{block}-byte blocks, {comp:?}");
        let b = u64::from(block);
        // Small files, each one partial block or a few blocks and a bit,
        // padded to a 4 KiB folio as the kernel does.
        for (i, len) in [1usize, 3000, 4095, 4097, 9000, 130 * 1024 + 5].into_iter().enumerate() {
            let ino = file(&mut fs, format!("f{i}").as_bytes());
            let data = mixed(len, i as u64);
            let pad = len.next_multiple_of(4096) - len;
            let planned = write_planned_padded(&mut fs, ino, 0, &data, pad);
            assert_eq!(
                planned,
                (len as u64).next_multiple_of(b),
                "{what}, {len} bytes: blocks to the data's end"
            );
            assert_eq!(fs.getattr(ino).unwrap().inode.size, len as u64, "{what}");
            assert_eq!(read_all(&mut fs, ino).unwrap(), data, "{what}");
            // Growing the file shows zeros past the old end, not padding.
            fs.setattr(ino, &SetAttr { size: Some(len as u64 + 5000), ..Default::default() }).unwrap();
            let mut want = data.clone();
            want.resize(len + 5000, 0);
            assert_eq!(read_all(&mut fs, ino).unwrap(), want, "{what}");
        }
        // A padded write in front of what the file already holds past it
        // (the engine's size ran ahead): the size is not cut back.
        let ino = file(&mut fs, b"ahead");
        fs.write(ino, 0, &vec![7u8; 20_000]).unwrap();
        let data = mixed(5000, 99);
        write_planned_padded(&mut fs, ino, 0, &data, 3192);
        assert_eq!(fs.getattr(ino).unwrap().inode.size, 20_000, "{what}");
        let mut fs = reopen(fs);
        assert!(fsck_problems(&mut fs).is_empty(), "{what}: {:?}", fsck_problems(&mut fs));
    }
}

#[test]
fn what_the_engine_must_write_is_not_planned() {
    let mut fs = fs_with(ChecksumType::Crc32c, Compression::None);
    let ino = file(&mut fs, b"p");
    let mut plan = WritePlan::new();
    let m = MIB as u64;
    assert!(!fs.plan_write(ino, 100, m, m + 100, &mut plan).unwrap(), "unaligned start");
    assert!(!fs.plan_write(ino, 0, 4095, 4095, &mut plan).unwrap(), "less than a block");
    assert!(!fs.plan_write(ino, 0, 4096, 0, &mut plan).unwrap(), "no data");
    assert!(!fs.plan_write(ino, 8192, 4096, 4096, &mut plan).unwrap(), "all padding");
    assert!(fs.plan_write(ROOT_INO, 0, m, m, &mut plan).is_err(), "a directory");
}

#[test]
fn a_bucket_with_a_write_in_flight_is_not_freed() {
    let mut fs = fs_with(ChecksumType::Crc32c, Compression::None);
    let a = file(&mut fs, b"a");
    let mut plan = WritePlan::new();
    assert!(fs.plan_write(a, 0, 64 * 1024, 64 * 1024, &mut plan).unwrap());
    // Fill the rest of the bucket and beyond with another file, then
    // delete it: the bucket is empty of extents and closed, but pinned.
    let b = file(&mut fs, b"b");
    let mut other = vec![0u8; 5 * MIB];
    Rng(3).fill(&mut other);
    fs.write(b, 0, &other).unwrap();
    fs.unlink(ROOT_INO, b"b").unwrap();
    fs.evict(b).unwrap();
    fs.sync().unwrap();
    // More writes after the checkpoint must not land in the pinned bucket.
    let c = file(&mut fs, b"c");
    let mut third = vec![0u8; 8 * MIB];
    Rng(4).fill(&mut third);
    fs.write(c, 0, &third).unwrap();
    let mut mine = vec![0u8; 64 * 1024];
    Rng(5).fill(&mut mine);
    fs.devices_mut()[usize::from(plan.dev)].write_at(plan.offset, &mine).unwrap();
    plan.encode(&mine).unwrap();
    fs.commit_write(&plan).unwrap();
    let mut fs = reopen(fs);
    assert_eq!(read_all(&mut fs, a).unwrap(), mine);
    assert_eq!(read_all(&mut fs, c).unwrap(), third);
    assert!(fsck_problems(&mut fs).is_empty(), "{:?}", fsck_problems(&mut fs));
}

#[test]
fn an_aborted_plan_leaves_the_file_and_image_as_they_were() {
    let mut fs = fs_with(ChecksumType::Crc32c, Compression::None);
    let a = file(&mut fs, b"a");
    fs.write(a, 0, b"kept").unwrap();
    let mut plan = WritePlan::new();
    assert!(fs.plan_write(a, 0, MIB as u64, MIB as u64, &mut plan).unwrap());
    fs.abort_write(&plan).unwrap();
    // A plan never encoded is refused, and unpins all the same.
    assert!(fs.plan_write(a, 0, MIB as u64, MIB as u64, &mut plan).unwrap());
    assert!(fs.commit_write(&plan).is_err());
    let mut fs = reopen(fs);
    assert_eq!(read_all(&mut fs, a).unwrap(), b"kept");
    assert!(fsck_problems(&mut fs).is_empty(), "{:?}", fsck_problems(&mut fs));
}

/// Plan (and write) a block of `data` at each of `offs`, as writeback does
/// for a run of scattered folios.
fn plan_blocks(fs: &mut Fs<MemDevice>, ino: u64, offs: &[u64], data: &[u8], size: u64) -> Vec<WritePlan> {
    offs.iter()
        .map(|&off| {
            let piece = &data[off as usize..off as usize + 4096];
            let mut plan = WritePlan::new();
            assert!(fs.plan_write(ino, off, 4096, size, &mut plan).unwrap());
            assert!(plan.is_placed() && plan.len == 4096);
            fs.devices_mut()[usize::from(plan.dev)].write_at(plan.offset, piece).unwrap();
            plan.encode(piece).unwrap();
            plan
        })
        .collect()
}

#[test]
fn scattered_plans_committed_together_read_back_and_survive_a_reopen() {
    for csum in [ChecksumType::None, ChecksumType::Xxhash64] {
        let mut fs = fs_with(csum, Compression::None);
        let ino = file(&mut fs, b"f");
        let mut want = vec![0u8; 4 * MIB];
        Rng(3).fill(&mut want);
        write_planned(&mut fs, ino, 0, &want);
        // New contents for every block; a growing file too (the last
        // blocks lie past the end).
        let mut next = vec![0u8; 5 * MIB];
        Rng(4).fill(&mut next);
        let mut rng = Rng(5);
        for round in 0..4 {
            // Scattered, neighbours among them, in file order as writeback
            // hands them; one round far more than fits one transaction.
            let n = if round == 2 { 900 } else { 40 };
            let mut offs: Vec<u64> = (0..n).map(|_| rng.below(5 * MIB as u64 / 4096) * 4096).collect();
            offs.sort_unstable();
            offs.dedup();
            let size = fs.getattr(ino).unwrap().inode.size.max(offs.last().unwrap() + 4096);
            let plans = plan_blocks(&mut fs, ino, &offs, &next, size);
            let refs: Vec<&WritePlan> = plans.iter().collect();
            fs.commit_writes(&refs).unwrap();
            want.resize(want.len().max(size as usize), 0);
            for &off in &offs {
                let o = off as usize;
                want[o..o + 4096].copy_from_slice(&next[o..o + 4096]);
            }
            assert_eq!(fs.getattr(ino).unwrap().inode.size, want.len() as u64, "{csum:?} round {round}");
            assert_eq!(read_all(&mut fs, ino).unwrap(), want, "{csum:?} round {round}");
        }
        // fsck also checks the file's allocated bytes against its extents.
        reopen_and_check(fs, ino, &want, &format!("{csum:?}"));
    }
}

#[test]
fn neighbouring_plain_plans_committed_together_join_into_one_extent() {
    let mut fs = fs_with(ChecksumType::None, Compression::None);
    let ino = file(&mut fs, b"f");
    let mut data = vec![0u8; MIB];
    Rng(6).fill(&mut data);
    // Planned one after another, so their room on the member is contiguous.
    let offs: Vec<u64> = (0..16).map(|i| i * 4096).collect();
    let plans = plan_blocks(&mut fs, ino, &offs, &data, 16 * 4096);
    let refs: Vec<&WritePlan> = plans.iter().collect();
    fs.commit_writes(&refs).unwrap();
    assert_eq!(extents(&mut fs, ino).len(), 1, "{:?}", extents(&mut fs, ino));
    assert_eq!(read_all(&mut fs, ino).unwrap(), &data[..16 * 4096]);
}

#[test]
fn a_batch_with_a_plan_not_encoded_commits_nothing_and_unpins_all() {
    let mut fs = fs_with(ChecksumType::Xxhash64, Compression::None);
    let ino = file(&mut fs, b"f");
    fs.write(ino, 0, &[7u8; 3 * 4096]).unwrap();
    let data = vec![9u8; 3 * 4096];
    let mut plans = plan_blocks(&mut fs, ino, &[0, 4096], &data, 3 * 4096);
    let mut raw = WritePlan::new();
    assert!(fs.plan_write(ino, 8192, 4096, 3 * 4096, &mut raw).unwrap());
    plans.push(raw);
    let refs: Vec<&WritePlan> = plans.iter().collect();
    assert!(fs.commit_writes(&refs).is_err());
    reopen_and_check(fs, ino, &[7u8; 3 * 4096], "aborted batch");
}

/// A 20 MiB file `f` written from `Rng(old)`, and plans that rewrite every
/// block of it on its own from `Rng(new)`: some 5000 extents, several
/// journal entries' worth. The file, its new bytes and the plans.
fn every_block_rewritten(fs: &mut Fs<MemDevice>, old: u64, new: u64) -> (u64, Vec<u8>, Vec<WritePlan>) {
    let ino = file(fs, b"f");
    let len = 20 * MIB;
    let mut before = vec![0u8; len];
    Rng(old).fill(&mut before);
    write_planned(fs, ino, 0, &before);
    let mut want = vec![0u8; len];
    Rng(new).fill(&mut want);
    let offs: Vec<u64> = (0..len as u64 / 4096).map(|i| i * 4096).collect();
    let plans = plan_blocks(fs, ino, &offs, &want, len as u64);
    (ino, want, plans)
}

#[test]
fn a_batch_larger_than_a_journal_entry_commits_in_several_transactions() {
    let mut fs = fs_with(ChecksumType::Xxhash64, Compression::None);
    let (ino, want, plans) = every_block_rewritten(&mut fs, 7, 8);
    let refs: Vec<&WritePlan> = plans.iter().collect();
    fs.commit_writes(&refs).unwrap();
    assert_eq!(read_all(&mut fs, ino).unwrap(), want);
    reopen_and_check(fs, ino, &want, "one large batch");
}

#[test]
fn a_batch_of_writebacks_is_planned_in_one_call() {
    let mut fs = fs_with(ChecksumType::Xxhash64, Compression::None);
    let ino = file(&mut fs, b"f");
    let mut want = vec![0u8; 64 * 4096];
    Rng(9).fill(&mut want);
    let size = want.len() as u64;
    // Whole blocks, an unaligned start (the engine's to write), nothing.
    let mut reqs = [
        WriteRequest::new(0, 8192, size),
        WriteRequest::new(40 * 4096 + 100, 4096, size),
        WriteRequest::new(20 * 4096, 0, size),
        WriteRequest::new(60 * 4096, 4 * 4096, size),
    ];
    fs.plan_writes(ino, &mut reqs).unwrap();
    assert_eq!(reqs.iter().map(|r| r.planned).collect::<Vec<_>>(), [true, false, false, true]);
    for r in reqs.iter_mut().filter(|r| r.planned) {
        let piece = &want[r.off as usize..(r.off + r.plan.len) as usize];
        fs.devices_mut()[usize::from(r.plan.dev)].write_at(r.plan.offset, piece).unwrap();
        r.plan.encode(piece).unwrap();
    }
    let plans: Vec<&WritePlan> = reqs.iter().filter(|r| r.planned).map(|r| &r.plan).collect();
    fs.commit_writes(&plans).unwrap();
    let mut got = read_all(&mut fs, ino).unwrap();
    got.resize(want.len(), 0);
    for (off, len) in [(0, 8192), (60 * 4096, 4 * 4096)] {
        assert_eq!(got[off..off + len], want[off..off + len]);
    }
    // Not a regular file: an error, and nothing planned.
    let dir = fs.mkdir(ROOT_INO, b"d", 0o755, 0, 0).unwrap().ino;
    let mut reqs = [WriteRequest::new(0, 4096, 4096)];
    assert!(fs.plan_writes(dir, &mut reqs).is_err());
    assert!(!reqs[0].planned);
    reopen_and_check(fs, ino, &got, "batch planned");
}

/// The commit of scattered plans made while their data is in flight (the
/// file system held shared) and applied once it is written reads back and
/// survives a reopen as the exclusive commit does; one another commit
/// made meanwhile on the same file is a conflict that changes nothing, and
/// the plans then commit exclusively.
#[test]
fn a_commit_prepared_while_the_data_is_written_applies_as_the_exclusive_one() {
    let mut fs = fs_with(ChecksumType::Xxhash64, Compression::None);
    let ino = file(&mut fs, b"f");
    let mut want = vec![0u8; MIB];
    Rng(11).fill(&mut want);
    write_planned(&mut fs, ino, 0, &want);
    let mut next = vec![0u8; MIB];
    Rng(12).fill(&mut next);
    let apply = |want: &mut Vec<u8>, offs: &[u64]| {
        for &off in offs {
            let o = off as usize;
            want[o..o + 4096].copy_from_slice(&next[o..o + 4096]);
        }
    };

    // Prepared, then applied; the last plan gives the file its times.
    let offs = [0u64, 8192, 65536, 65536 + 4096, 512 * 1024];
    let mut plans = plan_blocks(&mut fs, ino, &offs, &next, MIB as u64);
    let c = fs.getattr(ino).unwrap().inode.ctime;
    let times = (c + 11, c + 22, c + 33);
    plans.last_mut().unwrap().set_times(times.0, times.1, times.2);
    let refs: Vec<&WritePlan> = plans.iter().collect();
    let prepared = fs.prepare_writes(&refs).unwrap();
    let bytes = fs.commit_prepared_writes(prepared, &refs).unwrap();
    assert_eq!(bytes, fs.getattr(ino).unwrap().inode.alloc_bytes, "the bytes the file holds");
    apply(&mut want, &offs);
    assert_eq!(read_all(&mut fs, ino).unwrap(), want);
    let i = fs.getattr(ino).unwrap().inode;
    assert_eq!((i.atime, i.mtime, i.ctime), times, "the times the plan carried");

    // Another write of the file commits between the body and its commit.
    let offs = [4096u64, 12288];
    let mut plans = plan_blocks(&mut fs, ino, &offs, &next, MIB as u64);
    // Times older than the file's (a setattr committed since) are not put back.
    plans.last_mut().unwrap().set_times(1, 2, times.2 - 1);
    let refs: Vec<&WritePlan> = plans.iter().collect();
    let prepared = fs.prepare_writes(&refs).unwrap();
    write_planned(&mut fs, ino, 16384, &next[16384..20480]);
    apply(&mut want, &[16384]);
    assert_eq!(fs.commit_prepared_writes(prepared, &refs), Err(arborfs_engine::Error::Conflict));
    assert_eq!(read_all(&mut fs, ino).unwrap(), want, "a conflict changes nothing");
    let bytes = fs.commit_writes(&refs).unwrap();
    assert_eq!(bytes, fs.getattr(ino).unwrap().inode.alloc_bytes, "the bytes the file holds");
    apply(&mut want, &offs);
    assert_eq!(read_all(&mut fs, ino).unwrap(), want);
    let mut fs = reopen_and_check(fs, ino, &want, "prepared commits");
    let i = fs.getattr(ino).unwrap().inode;
    assert_eq!((i.atime, i.mtime, i.ctime), times, "older times and plans without any keep the file's");
}

/// Plans that take more than one transaction are not prepared: the
/// exclusive commit splits them.
#[test]
fn plans_beyond_one_transaction_are_committed_exclusively() {
    let mut fs = fs_with(ChecksumType::Xxhash64, Compression::None);
    let (ino, want, plans) = every_block_rewritten(&mut fs, 13, 14);
    let refs: Vec<&WritePlan> = plans.iter().collect();
    assert_eq!(fs.prepare_writes(&refs).err(), Some(arborfs_engine::Error::Conflict));
    fs.commit_writes(&refs).unwrap();
    reopen_and_check(fs, ino, &want, "a large batch");
}
