#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Simulated power cuts: at random points, keep an arbitrary subset of the
//! writes not yet flushed, reopen (journal replay), and check that fsck is
//! clean, every file reads without error, and every file fsync'd before the
//! cut has exactly its fsync'd content.
mod common;

use std::collections::HashMap;

use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::fs::FormatOptions;
use arborfs_engine::sys::{MemDevice, TryVec};
use arborfs_engine::{Fs, OpenOptions};
use common::*;

/// One round; returns how many discards the device saw (odd seeds mount
/// with discard: what it zeroes must be dead).
fn run(seed: u64, o: &FormatOptions) -> u64 {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut devs = TryVec::new();
    devs.try_push(CrashDev::new(48 << 20)).unwrap();
    let mut fs = Fs::format(devs, o).unwrap();
    fs.set_discard(seed % 2 == 1);
    let d = fs.mkdir(ROOT_INO, b"d", 0o755, 0, 0).unwrap().ino;
    // name -> (ino, content); frozen files were fsync'd and never change again.
    let mut files: HashMap<String, (u64, Vec<u8>)> = HashMap::new();
    let mut frozen: HashMap<String, Vec<u8>> = HashMap::new();
    let steps = 20 + rng.below(150);
    // Half the rounds are cut during the FUA write of a sync, after a
    // random step: the journal entry may be on the medium without the data
    // written since the last flush.
    let mut cut_rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
    let cut_from = (cut_rng.below(2) == 0).then(|| cut_rng.below(steps));
    for step in 0..steps {
        if cut_from == Some(step) {
            fs.devices_mut()[0].cut_in_fua = Some(cut_rng.next());
        }
        match rng.below(10) {
            0..=2 => {
                let name = format!("f{step}");
                let parent = if rng.below(2) == 0 { ROOT_INO } else { d };
                let a = fs.create(parent, name.as_bytes(), S_IFREG | 0o600, 0, 0, 0).unwrap();
                files.insert(format!("{parent}/{name}"), (a.ino, Vec::new()));
            }
            3..=6 => {
                let mut keys: Vec<_> = files.keys().cloned().collect();
                keys.sort();
                if let Some(k) = keys.get(rng.below(keys.len() as u64) as usize) {
                    let (ino, content) = files.get_mut(k).unwrap();
                    let off = rng.below(200_000) as usize;
                    let mut data = vec![0u8; 1 + rng.below(150_000) as usize];
                    rng.fill(&mut data);
                    fs.write(*ino, off as u64, &data).unwrap();
                    if content.len() < off + data.len() {
                        content.resize(off + data.len(), 0);
                    }
                    content[off..off + data.len()].copy_from_slice(&data);
                }
            }
            7 => {
                let mut keys: Vec<_> = files.keys().cloned().collect();
                keys.sort();
                if let Some(k) = keys.get(rng.below(keys.len() as u64) as usize) {
                    let (ino, content) = files.remove(k).unwrap();
                    fs.fsync(ino).unwrap();
                    if fs.devices_mut()[0].cut_image.is_some() {
                        // The power went before this fsync returned.
                        files.insert(k.clone(), (ino, content));
                    } else {
                        frozen.insert(k.clone(), content);
                    }
                }
            }
            8 => {
                // Delete a file that is not frozen.
                let mut keys: Vec<_> = files.keys().cloned().collect();
                keys.sort();
                if let Some(k) = keys.get(rng.below(keys.len() as u64) as usize) {
                    let (parent, name) = k.split_once('/').unwrap();
                    let a = fs.unlink(parent.parse().unwrap(), name.as_bytes()).unwrap();
                    fs.evict(a.ino).unwrap();
                    files.remove(k);
                }
            }
            // A checkpoint now and then: it frees buckets, and with
            // discard they are zeroed on the device.
            _ if rng.below(4) == 0 => fs.checkpoint().unwrap(),
            _ => fs.sync().unwrap(),
        }
        if fs.devices_mut()[0].cut_image.is_some() {
            break;
        }
    }
    // Power cut.
    let discards = fs.devices_mut()[0].discards;
    let img = match fs.devices_mut()[0].cut_image.take() {
        Some(img) => img,
        None => fs.devices_mut()[0].crash_image(&mut rng),
    };
    drop(fs.into_devices());
    let mut devs = TryVec::new();
    devs.try_push(MemDevice { data: img.clone() }).unwrap();
    let mut ro = Fs::open(devs, &OpenOptions { read_only: true, ..Default::default() })
        .unwrap_or_else(|e| panic!("seed {seed}: read-only open: {e}"));
    let p = fsck_problems(&mut ro);
    assert!(p.is_empty(), "seed {seed}: read-only fsck after crash: {p:?}");
    let untouched = ro.into_devices();
    assert!(untouched[0].data == img, "seed {seed}: a read-only open wrote to the device");
    let mut devs = TryVec::new();
    devs.try_push(MemDevice { data: img }).unwrap();
    let mut fs = Fs::open(devs, &OpenOptions::default()).unwrap_or_else(|e| panic!("seed {seed}: open: {e}"));
    let p = fsck_problems(&mut fs);
    assert!(p.is_empty(), "seed {seed}: fsck after crash: {p:?}");
    for (k, content) in &frozen {
        let (parent, name) = k.split_once('/').unwrap();
        let a = fs
            .lookup(parent.parse().unwrap(), name.as_bytes())
            .unwrap_or_else(|e| panic!("seed {seed}: {k}: {e}"));
        let got = read_all(&mut fs, a.ino).unwrap();
        assert!(got == *content, "seed {seed}: fsync'd file {k} differs after the crash");
    }
    // Everything else must at least read without errors.
    for k in files.keys() {
        let (parent, name) = k.split_once('/').unwrap();
        if let Ok(a) = fs.lookup(parent.parse().unwrap(), name.as_bytes()) {
            read_all(&mut fs, a.ino)
                .unwrap_or_else(|e| panic!("seed {seed}: {k} unreadable after crash: {e}"));
        }
    }
    // The recovered file system keeps working and stays consistent.
    let a = fs.create(ROOT_INO, b"after", S_IFREG | 0o600, 0, 0, 0).unwrap();
    fs.write(a.ino, 0, b"still works").unwrap();
    let mut fs = reopen(fs);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new(), "seed {seed}: after reuse");
    discards
}

#[test]
fn power_cuts_crc32c() {
    let discards: u64 = (0..60).map(|seed| run(seed, &opts())).sum();
    assert!(discards > 0, "no round discarded anything: the discard half tests nothing");
}

#[test]
fn power_cuts_compressed_small_nodes() {
    let o = FormatOptions {
        node_size: 4096,
        compression: arborfs_engine::format::extent::Compression::Zstd,
        data_csum: arborfs_engine::format::checksum::ChecksumType::Xxhash64,
        ..opts()
    };
    for seed in 100..140 {
        run(seed, &o);
    }
}

/// As fstests' generic/455 checks with dm-log-writes: fsx-like operations
/// (writes, truncates, punch, zero, collapse and insert range) on three
/// files taking turns, and at each fsync the device as it stands (every
/// write kept, as a replay up to the fsync's mark gives it) must hold
/// exactly the fsync'd file as it was, and be fsck clean.
#[test]
fn every_fsync_of_fsx_like_operations_replays_exactly() {
    use arborfs_engine::fs::extent::*;
    use arborfs_engine::fs::SetAttr;
    for seed in 0..4u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut devs = TryVec::new();
        devs.try_push(CrashDev::new(48 << 20)).unwrap();
        let mut fs = Fs::format(devs, &opts()).unwrap();
        let mut files: Vec<(u64, Vec<u8>)> = (0..3)
            .map(|i| {
                (
                    fs.create(ROOT_INO, format!("f{i}").as_bytes(), S_IFREG | 0o600, 0, 0, 0).unwrap().ino,
                    Vec::new(),
                )
            })
            .collect();
        const MAX: u64 = 256 << 10;
        for step in 0..400 {
            let which = rng.below(3) as usize;
            let (ino, model) = &mut files[which];
            let ino = *ino;
            let size = model.len() as u64;
            let blk = |v: u64| v / 4096 * 4096;
            match rng.below(11) {
                0..=2 => {
                    let off = rng.below(MAX);
                    let len = 1 + rng.below(64 << 10).min(MAX - off);
                    let mut data = vec![0u8; len as usize];
                    rng.fill(&mut data);
                    fs.write(ino, off, &data).unwrap();
                    let end = (off + len) as usize;
                    if model.len() < end {
                        model.resize(end, 0);
                    }
                    model[off as usize..end].copy_from_slice(&data);
                }
                3 => {
                    let new = rng.below(MAX);
                    fs.setattr(ino, &SetAttr { size: Some(new), ..Default::default() }).unwrap();
                    model.resize(new as usize, 0);
                }
                4 | 5 if size > 0 => {
                    let off = rng.below(size);
                    let len = 1 + rng.below(size - off);
                    let zero = rng.below(2) == 0;
                    let mode = if zero {
                        FALLOC_ZERO_RANGE | FALLOC_KEEP_SIZE
                    } else {
                        FALLOC_PUNCH_HOLE | FALLOC_KEEP_SIZE
                    };
                    fs.fallocate(ino, mode, off, len).unwrap();
                    model[off as usize..(off + len) as usize].fill(0);
                }
                6 if size > 8192 => {
                    let off = blk(rng.below(size - 4096));
                    let len = blk(1 + rng.below(size - off)).max(4096);
                    if off + len < size {
                        fs.fallocate(ino, FALLOC_COLLAPSE_RANGE, off, len).unwrap();
                        model.drain(off as usize..(off + len) as usize);
                    }
                }
                7 if size > 4096 && size < MAX => {
                    let off = blk(rng.below(size));
                    let len = blk(1 + rng.below(32 << 10)).max(4096);
                    fs.fallocate(ino, FALLOC_INSERT_RANGE, off, len).unwrap();
                    let tail = model.split_off(off as usize);
                    model.resize((off + len) as usize, 0);
                    model.extend_from_slice(&tail);
                }
                8 if rng.below(2) == 0 => {
                    // Preallocation, within or past the size, keeping it or not.
                    let off = rng.below(MAX);
                    let len = 1 + rng.below(64 << 10).min(MAX - off);
                    let keep = rng.below(2) == 0;
                    fs.fallocate(ino, if keep { FALLOC_KEEP_SIZE } else { 0 }, off, len).unwrap();
                    if !keep && model.len() < (off + len) as usize {
                        model.resize((off + len) as usize, 0);
                    }
                }
                9 if rng.below(3) == 0 => fs.checkpoint().unwrap(),
                _ => {
                    fs.fsync(ino).unwrap();
                    let img = fs.devices_mut()[0].live.clone();
                    let mut devs = TryVec::new();
                    devs.try_push(MemDevice { data: img }).unwrap();
                    let mut back = Fs::open(devs, &OpenOptions { read_only: true, ..Default::default() })
                        .unwrap_or_else(|e| panic!("seed {seed} step {step}: open: {e}"));
                    let got = read_all(&mut back, ino).unwrap();
                    assert_eq!(got.len(), model.len(), "seed {seed} step {step}: size after replay");
                    let first = got.iter().zip(model.iter()).position(|(a, b)| a != b);
                    assert!(first.is_none(), "seed {seed} step {step}: content differs at {first:?}");
                    let p = fsck_problems(&mut back);
                    assert!(p.is_empty(), "seed {seed} step {step}: fsck after replay: {p:?}");
                }
            }
        }
    }
}

/// FITRIM: a trim after a large delete discards at least what was freed,
/// and only dead buckets (the device zeroes what it is told to discard, on
/// the medium too): the file kept reads back, before and after a power
/// cut, and fsck is clean. A range or minimum that no free run meets
/// discards nothing; a range ext4 refuses is refused.
#[test]
fn trim_discards_freed_buckets_and_nothing_live() {
    let mut devs = TryVec::new();
    devs.try_push(CrashDev::new(64 << 20)).unwrap();
    let mut fs = Fs::format(devs, &opts()).unwrap();
    let mut rng = Rng(7);
    let mut keep = vec![0u8; 3 << 20];
    rng.fill(&mut keep);
    let mut big = vec![0u8; 24 << 20];
    rng.fill(&mut big);
    let k = fs.create(ROOT_INO, b"keep", S_IFREG | 0o600, 0, 0, 0).unwrap().ino;
    fs.write(k, 0, &keep).unwrap();
    let b = fs.create(ROOT_INO, b"big", S_IFREG | 0o600, 0, 0, 0).unwrap().ino;
    fs.write(b, 0, &big).unwrap();
    fs.sync().unwrap();
    assert_eq!(fs.trim(0, u64::MAX, 64 << 20).unwrap(), 0, "a minimum no run meets");
    assert_eq!(fs.trim(0, 16 << 20, 0).unwrap(), 0, "a range of used buckets");
    // As ext4: a range under a block, a start or a minimum past the end.
    for (start, len, min) in
        [(0, 100, 0), (64 << 20, 1 << 20, 0), (1 << 40, 1 << 20, 0), (0, u64::MAX, u64::MAX)]
    {
        assert_eq!(
            fs.trim(start, len, min),
            Err(arborfs_engine::Error::Invalid),
            "trim({start}, {len}, {min})"
        );
    }
    let before = fs.trim(0, u64::MAX, 0).unwrap();
    fs.unlink(ROOT_INO, b"big").unwrap();
    fs.evict(b).unwrap();
    fs.sync().unwrap();
    let after = fs.trim(0, u64::MAX, 0).unwrap();
    assert!(after >= before + (20 << 20), "trim after deleting 24 MiB: {before} then {after} bytes");
    assert_eq!(read_all(&mut fs, k).unwrap(), keep);
    let durable = fs.devices_mut()[0].durable.clone();
    let mut devs = TryVec::new();
    devs.try_push(MemDevice { data: durable }).unwrap();
    let mut cut = Fs::open(devs, &OpenOptions::default()).unwrap();
    assert_eq!(read_all(&mut cut, k).unwrap(), keep, "after a power cut");
    assert!(fsck_problems(&mut cut).is_empty(), "{:?}", fsck_problems(&mut cut));
    let mut fs = reopen(fs);
    assert_eq!(read_all(&mut fs, k).unwrap(), keep);
    assert!(fsck_problems(&mut fs).is_empty());
}

/// A checkpoint writes its nodes in batches, each in flight together on a
/// block device: every node written went in one, and small nodes go many
/// to a batch. The batches are pending until the flush before the
/// superblock, so the power cuts above cover them.
#[test]
fn checkpoints_write_nodes_in_batches() {
    let mut devs = TryVec::new();
    devs.try_push(CrashDev::new(64 << 20)).unwrap();
    let mut fs = Fs::format(devs, &FormatOptions { node_size: 4096, ..opts() }).unwrap();
    for i in 0..2000u64 {
        let a = fs.create(ROOT_INO, format!("file{i:05}").as_bytes(), S_IFREG | 0o600, 0, 0, 0).unwrap();
        fs.setxattr(a.ino, b"user.i", &i.to_le_bytes(), 0).unwrap();
    }
    let before = fs.stats().nodes_written;
    let batches_before = fs.devices_mut()[0].batches.len();
    fs.checkpoint().unwrap();
    let written = fs.stats().nodes_written - before;
    let batches = fs.devices_mut()[0].batches[batches_before..].to_vec();
    assert_eq!(batches.iter().sum::<usize>() as u64, written, "every node written in a batch: {batches:?}");
    assert!(
        written > 50 && batches.iter().max().copied().unwrap_or(0) > 10,
        "{written} nodes in {batches:?}"
    );
    let mut fs = reopen(fs);
    assert!(fsck_problems(&mut fs).is_empty());
    assert!(fs.lookup(ROOT_INO, b"file01999").is_ok());
}

/// The image `durable` with `writes` on it.
fn with_writes(durable: &[u8], writes: &[(u64, Vec<u8>)]) -> TryVec<MemDevice> {
    let mut img = durable.to_vec();
    for (off, data) in writes {
        img[*off as usize..*off as usize + data.len()].copy_from_slice(data);
    }
    let mut devs = TryVec::new();
    devs.try_push(MemDevice { data: img }).unwrap();
    devs
}

/// An fsync's journal entry goes out as one FUA write with no flush before
/// it, marked unordered. A power cut that keeps the entry but not the data
/// it points at leaves the file system as it was before the fsync (and
/// fsck finds nothing: a torn sync is no damage); one that keeps both
/// leaves it as after the fsync.
#[test]
fn an_unordered_entry_replays_only_with_its_data() {
    let mut devs = TryVec::new();
    devs.try_push(CrashDev::new(48 << 20)).unwrap();
    let mut fs = Fs::format(devs, &opts()).unwrap();
    let a = fs.create(ROOT_INO, b"a", S_IFREG | 0o600, 0, 0, 0).unwrap().ino;
    fs.write(a, 0, &[1u8; 20_000]).unwrap();
    fs.fsync(a).unwrap();
    let b = fs.create(ROOT_INO, b"b", S_IFREG | 0o600, 0, 0, 0).unwrap().ino;
    fs.write(b, 0, &[2u8; 300_000]).unwrap();
    let dev = &mut fs.devices_mut()[0];
    let (flushes, fuas) = (dev.flushes, dev.fua_writes);
    dev.cut_in_fua = Some(1);
    fs.fsync(b).unwrap();
    let dev = &mut fs.devices_mut()[0];
    assert_eq!((dev.fua_writes, dev.flushes), (fuas + 1, flushes + 1), "one FUA write, no preflush");
    let (durable, pending) = dev.cut_state.take().unwrap();
    assert!(pending.len() > 1, "the data was not pending: {} writes", pending.len());

    // The entry without the data: b's create and write are not replayed.
    let entry = pending.last().unwrap().clone();
    let mut fs = Fs::open(with_writes(&durable, &[entry]), &OpenOptions::default()).unwrap();
    assert_eq!(fs.journal_stop(), None);
    assert!(fs.journal_left_out().is_some(), "the entry left out is not reported");
    assert!(fs.lookup(ROOT_INO, b"b").is_err(), "b's entry was replayed without its data");
    assert_eq!(read_all(&mut fs, a).unwrap(), vec![1u8; 20_000]);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());

    // Torn data: the same.
    let mut torn = pending.clone();
    for (_, data) in torn.iter_mut().rev().skip(1) {
        data.truncate(data.len() / 2);
    }
    let mut fs = Fs::open(with_writes(&durable, &torn), &OpenOptions::default()).unwrap();
    assert!(fs.lookup(ROOT_INO, b"b").is_err(), "b's entry was replayed with torn data");
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());

    // Everything kept: b is there, whole.
    let mut fs = Fs::open(with_writes(&durable, &pending), &OpenOptions::default()).unwrap();
    assert_eq!(fs.journal_left_out(), None);
    let got = fs.lookup(ROOT_INO, b"b").unwrap();
    assert_eq!(read_all(&mut fs, got.ino).unwrap(), vec![2u8; 300_000]);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
}

/// A device that honours FUA itself: an fsync's entry then needs a flush
/// before it, as does any entry after data written since the last flush.
#[test]
fn a_device_with_its_own_fua_gets_a_preflush() {
    struct OwnFua(CrashDev);
    impl arborfs_engine::sys::BlockDevice for OwnFua {
        fn size(&self) -> u64 {
            self.0.size()
        }
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> arborfs_engine::Result<()> {
            self.0.read_at(offset, buf)
        }
        fn write_at(&mut self, offset: u64, buf: &[u8]) -> arborfs_engine::Result<()> {
            self.0.write_at(offset, buf)
        }
        fn flush(&mut self) -> arborfs_engine::Result<()> {
            self.0.flush()
        }
        fn write_fua(&mut self, offset: u64, buf: &[u8]) -> arborfs_engine::Result<()> {
            self.0.fua_writes += 1;
            self.0.write_at(offset, buf)
        }
        fn fua_flushes_all(&self) -> bool {
            false
        }
    }
    let mut devs = TryVec::new();
    devs.try_push(OwnFua(CrashDev::new(48 << 20))).unwrap();
    let mut fs = Fs::format(devs, &opts()).unwrap();
    let a = fs.create(ROOT_INO, b"a", S_IFREG | 0o600, 0, 0, 0).unwrap().ino;
    fs.write(a, 0, &[1u8; 20_000]).unwrap();
    fs.fsync(a).unwrap();
    assert_eq!(fs.devices_mut()[0].0.fua_writes, 0, "an entry after data went without a preflush");
    // Nothing written since: the entry of a chmod needs no flush before it.
    let sa = arborfs_engine::fs::SetAttr { mode: Some(0o640), ..Default::default() };
    fs.setattr(a, &sa).unwrap();
    fs.fsync(a).unwrap();
    assert_eq!(fs.devices_mut()[0].0.fua_writes, 1);
}
