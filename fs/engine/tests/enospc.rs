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
