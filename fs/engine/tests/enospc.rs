#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Full file systems and long journals: ENOSPC is clean and recoverable, and
//! replay works across journal ring wrap-around.
mod common;

use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::sys::{MemDevice, TryVec};
use arborfs_engine::{Error, Fs, OpenOptions};
use common::*;

fn fill(fs: &mut Fs<MemDevice>, prefix: &str, rng: &mut Rng) -> Vec<(String, u64, Vec<u8>)> {
    let mut files = Vec::new();
    for i in 0.. {
        let name = format!("{prefix}{i}");
        let a = match fs.create(ROOT_INO, name.as_bytes(), S_IFREG | 0o644, 0, 0, 0) {
            Ok(a) => a,
            Err(Error::NoSpace) => break,
            Err(e) => panic!("create: {e}"),
        };
        let mut data = vec![0u8; 256 * 1024];
        rng.fill(&mut data);
        match fs.write(a.ino, 0, &data) {
            Ok(_) => files.push((name, a.ino, data)),
            Err(Error::NoSpace) => {
                // Whatever part was written stays readable; drop the file.
                let a = fs.unlink(ROOT_INO, name.as_bytes()).unwrap();
                fs.evict(a.ino).unwrap();
                break;
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    files
}

#[test]
fn full_file_system_stays_consistent_and_recovers() {
    let mut fs = mem_fs(24 << 20);
    let mut rng = Rng(5);
    let before = fs.statfs();
    let files = fill(&mut fs, "a", &mut rng);
    assert!(files.len() > 20, "only {} files fit", files.len());
    assert!(fs.statfs().blocks_free * 4096 < 2 << 20, "{:?}", fs.statfs());
    assert!(!fs.is_read_only(), "ENOSPC must not stop the file system: {:?}", fs.failure());
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
    let mut fs = reopen(fs);
    for (_, ino, data) in &files {
        assert_eq!(&read_all(&mut fs, *ino).unwrap(), data);
    }
    // Free half, and the space comes back.
    for (name, _, _) in files.iter().step_by(2) {
        let a = fs.unlink(ROOT_INO, name.as_bytes()).unwrap();
        fs.evict(a.ino).unwrap();
    }
    let more = fill(&mut fs, "b", &mut rng);
    assert!(more.len() >= files.len() / 2 - 2, "freed space not reusable: {} new files", more.len());
    let mut fs = reopen(fs);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
    for (_, ino, data) in files.iter().skip(1).step_by(2).chain(more.iter()) {
        assert_eq!(&read_all(&mut fs, *ino).unwrap(), data);
    }
    let after = fs.statfs();
    assert_eq!(before.blocks, after.blocks);
}

#[test]
fn replay_across_journal_wrap() {
    // A 16 MiB device has a 1 MiB journal: 600 fsyncs of small writes wrap it
    // several times, with checkpoints in between.
    let mut devs = TryVec::new();
    devs.try_push(CrashDev::new(16 << 20)).unwrap();
    let mut fs = Fs::format(devs, &opts()).unwrap();
    let a = fs.create(ROOT_INO, b"log", S_IFREG | 0o644, 0, 0, 0).unwrap();
    let mut content = Vec::new();
    for i in 0..600u32 {
        let line = format!("line {i:05}\n");
        fs.write(a.ino, content.len() as u64, line.as_bytes()).unwrap();
        content.extend_from_slice(line.as_bytes());
        let b = fs.create(ROOT_INO, format!("f{i}").as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap();
        fs.setxattr(b.ino, b"user.i", &i.to_le_bytes(), 0).unwrap();
        fs.fsync(a.ino).unwrap();
    }
    let checkpoints = fs.stats().checkpoints;
    assert!(checkpoints >= 3, "only {checkpoints} checkpoints: the ring did not fill");
    // Power cut with nothing pending: everything fsync'd must be there.
    let img = fs.devices_mut()[0].durable.clone();
    drop(fs.into_devices());
    let mut devs = TryVec::new();
    devs.try_push(MemDevice { data: img }).unwrap();
    let mut fs = Fs::open(devs, &OpenOptions::default()).unwrap();
    assert!(fs.stats().replayed > 0);
    let got = read_all(&mut fs, a.ino).unwrap();
    assert_eq!(got, content);
    for i in [0u32, 299, 599] {
        let b = fs.lookup(ROOT_INO, format!("f{i}").as_bytes()).unwrap();
        let mut v = TryVec::new();
        fs.getxattr(b.ino, b"user.i", &mut v).unwrap();
        assert_eq!(&v[..], &i.to_le_bytes());
    }
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
}

/// Files created until the file system refuses; panics on anything but ENOSPC.
fn create_until_full(fs: &mut Fs<MemDevice>, prefix: &str, limit: usize) -> usize {
    for i in 0..limit {
        match fs.create(ROOT_INO, format!("{prefix}{i}").as_bytes(), S_IFREG | 0o644, 0, 0, 0) {
            Ok(_) => {}
            Err(Error::NoSpace) => return i,
            Err(e) => panic!("create {prefix}{i}: {e}"),
        }
    }
    panic!("{limit} empty files fit on a full file system: metadata is not limited");
}

/// Rename `src{i}` to `dst{i}` for `i` below `count`, each leaving a
/// whiteout; returns how many renames did not fail with ENOSPC. Panics on
/// any other error.
fn rename_with_whiteouts(fs: &mut Fs<MemDevice>, count: usize) -> usize {
    use arborfs_engine::fs::dirent::RENAME_WHITEOUT;
    let mut renamed = 0;
    for i in 0..count {
        let (s, d) = (format!("src{i}"), format!("dst{i}"));
        match fs.rename(ROOT_INO, s.as_bytes(), ROOT_INO, d.as_bytes(), RENAME_WHITEOUT, (0, 0)) {
            Ok(_) => renamed += 1,
            Err(Error::NoSpace) => {}
            Err(e) => panic!("rename {s}: {e}"),
        }
    }
    renamed
}

/// generic/626: with data filling the file system, creating inodes until
/// the first ENOSPC, then renames that need a whiteout inode, must leave a
/// file system that still checkpoints (unmount), reopens, passes fsck, and
/// lets files be deleted to make room again. Metadata taking the room the
/// checkpoint needs made the unmount fail and the next mount ENOSPC.
#[test]
fn metadata_on_a_full_file_system_keeps_room_to_checkpoint() {
    let mut fs = mem_fs(64 << 20);
    let mut rng = Rng(626);
    for i in 0..64 {
        fs.create(ROOT_INO, format!("src{i}").as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap();
    }
    let files = fill(&mut fs, "fill", &mut rng);
    assert!(!files.is_empty());
    let empty = create_until_full(&mut fs, "empty", 200_000);
    // The reserve data leaves is also for the metadata of new files.
    assert!(empty >= 100, "only {empty} empty files fit once data filled the file system");
    assert!(!fs.is_read_only(), "ENOSPC on create stopped the file system: {:?}", fs.failure());
    rename_with_whiteouts(&mut fs, 64);
    assert!(!fs.is_read_only(), "ENOSPC on rename stopped the file system: {:?}", fs.failure());
    let mut fs = reopen(fs);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
    for i in 0..64 {
        let a = fs.lookup(ROOT_INO, format!("src{i}").as_bytes());
        let b = fs.lookup(ROOT_INO, format!("dst{i}").as_bytes());
        assert!(a.is_ok() || b.is_ok(), "src{i} lost");
    }
    // Deleting works on the full file system, and gives room back.
    for i in 0..empty {
        let a = fs.unlink(ROOT_INO, format!("empty{i}").as_bytes()).unwrap();
        fs.evict(a.ino).unwrap();
    }
    for (name, _, _) in &files {
        let a = fs.unlink(ROOT_INO, name.as_bytes()).unwrap();
        fs.evict(a.ino).unwrap();
    }
    let again = create_until_full(&mut fs, "again", 400_000);
    assert!(again >= empty, "only {again} files fit after deleting, {empty} before");
    let mut fs = reopen(fs);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
}

/// Dirty data the page cache holds room for (`reservable_bytes`, told
/// with `note_data_promised`) is still written back after files were
/// created until ENOSPC: creating files leaves the buckets it needs.
#[test]
fn creating_files_leaves_room_for_promised_dirty_data() {
    let mut fs = mem_fs(64 << 20);
    let a = fs.create(ROOT_INO, b"dirty", S_IFREG | 0o644, 0, 0, 0).unwrap();
    let mut promised = fs.reservable_bytes() & !((1 << 20) - 1);
    assert!(promised >= 32 << 20, "{promised}");
    fs.note_data_promised(promised);
    let created = create_until_full(&mut fs, "f", 400_000);
    assert!(created > 0);
    let mut rng = Rng(7);
    let mut chunk = vec![0u8; 1 << 20];
    let mut off = 0;
    while promised > 0 {
        rng.fill(&mut chunk);
        fs.write_back(a.ino, off, &chunk)
            .unwrap_or_else(|e| panic!("writeback at {off} after {created} files: {e}"));
        off += chunk.len() as u64;
        promised -= chunk.len() as u64;
        fs.note_data_promised(promised);
    }
    assert!(!fs.is_read_only());
    let mut fs = reopen(fs);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
    assert_eq!(fs.getattr(a.ino).unwrap().inode.size, off);
}

/// generic/626 as fstests runs it: fallocate fills the file system
/// (halving the size on every ENOSPC, as `_fill_fs` does), empty files
/// take what is left, renames need whiteouts; the unmount must finish.
#[test]
fn fallocate_filled_file_system_still_unmounts() {
    let mut fs = mem_fs(256 << 20);
    for i in 0..256 {
        fs.create(ROOT_INO, format!("src{i}").as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap();
    }
    let mut size = fs.statfs().blocks_free * 4096;
    let mut n = 0;
    while size >= 4096 {
        let a = fs.create(ROOT_INO, format!("fill{n}").as_bytes(), S_IFREG | 0o644, 0, 0, 0);
        n += 1;
        let Ok(a) = a else {
            size /= 2;
            continue;
        };
        match fs.fallocate(a.ino, 0, 0, size) {
            Ok(()) => {}
            Err(Error::NoSpace) => size /= 2,
            Err(e) => panic!("fallocate {size}: {e}"),
        }
    }
    let empty = create_until_full(&mut fs, "empty", 200_000);
    let renamed = rename_with_whiteouts(&mut fs, 256);
    eprintln!("{n} fill files, {empty} empty files, {renamed} renamed");
    let mut fs = reopen(fs);
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
}
