#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Group commit (`Fs::sync_target`, `Fs::sync_step`, `Fs::sync_done`), as
//! the kernel's fsync drives it: the journal write runs without the engine
//! lock while other callers commit, checkpoint and sync. A sync is done
//! only when its target is durable; callers arriving during a write share
//! the next one; a power cut at any moment keeps every file whose sync was
//! reported durable.
mod common;

use std::collections::HashMap;

use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::fs::sync::SyncStep;
use arborfs_engine::sys::{BlockDevice, MemDevice, TryVec};
use arborfs_engine::{Error, Fs, OpenOptions};
use common::*;

fn crash_fs() -> Fs<CrashDev> {
    let mut devs = TryVec::new();
    devs.try_push(CrashDev::new(48 << 20)).unwrap();
    Fs::format(devs, &opts()).unwrap()
}

/// Issue the write a `SyncStep::Write` asked for, as the kernel glue does.
fn issue(fs: &mut Fs<CrashDev>, step: SyncStep) {
    let SyncStep::Write { dev, offset, preflush } = step else { panic!("not a write: {step:?}") };
    let bytes = fs.sync_write_bytes().to_vec();
    let d = &mut fs.devices_mut()[usize::from(dev)];
    let res = match (bytes.is_empty(), preflush) {
        (true, _) => d.flush(),
        (false, true) => d.write_durable(offset, &bytes),
        (false, false) => d.write_fua(offset, &bytes),
    };
    fs.sync_done(res).unwrap();
}

/// Open what a power cut now leaves, after checking it read-only.
fn after_cut(fs: &mut Fs<CrashDev>, rng: &mut Rng) -> Fs<MemDevice> {
    let img = fs.devices_mut()[0].crash_image(rng);
    let mut devs = TryVec::new();
    devs.try_push(MemDevice { data: img }).unwrap();
    let mut fs = Fs::open(devs, &OpenOptions::default()).unwrap();
    let p = fsck_problems(&mut fs);
    assert!(p.is_empty(), "fsck after the cut: {p:?}");
    fs
}

fn content(fs: &mut Fs<MemDevice>, name: &[u8]) -> Option<Vec<u8>> {
    let a = fs.lookup(ROOT_INO, name).ok()?;
    Some(read_all(fs, a.ino).unwrap())
}

#[test]
fn syncs_arriving_during_a_journal_write_share_the_next_one() {
    let mut fs = crash_fs();
    let a = fs.create(ROOT_INO, b"a", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
    fs.write(a, 0, b"first").unwrap();
    let t1 = fs.sync_target();
    let w1 = fs.sync_step(t1).unwrap();
    assert!(matches!(w1, SyncStep::Write { .. }), "{w1:?}");
    assert!(!fs.sync_write_bytes().is_empty());

    // While the write is out: more commits, and syncs that must wait.
    let b = fs.create(ROOT_INO, b"b", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
    fs.write(b, 0, b"second").unwrap();
    let t2 = fs.sync_target();
    assert!(t2 > t1);
    assert_eq!(fs.sync_step(t1).unwrap(), SyncStep::Wait);
    assert_eq!(fs.sync_step(t2).unwrap(), SyncStep::Wait);
    // A cut now need not keep either file, but leaves a clean image.
    after_cut(&mut fs, &mut Rng(1));

    issue(&mut fs, w1);
    assert_eq!(fs.sync_step(t1).unwrap(), SyncStep::Durable, "the write covered t1");
    for seed in 0..8 {
        let mut cut = after_cut(&mut fs, &mut Rng(seed));
        assert_eq!(content(&mut cut, b"a").as_deref(), Some(&b"first"[..]), "seed {seed}");
    }
    // Everything t2 waited for goes in one more write; a third caller
    // arriving now shares it.
    let w2 = fs.sync_step(t2).unwrap();
    let c = fs.create(ROOT_INO, b"c", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
    fs.write(c, 0, b"third").unwrap();
    let t3 = fs.sync_target();
    assert_eq!(fs.sync_step(t3).unwrap(), SyncStep::Wait);
    issue(&mut fs, w2);
    assert_eq!(fs.sync_step(t2).unwrap(), SyncStep::Durable);
    let w3 = fs.sync_step(t3).unwrap();
    issue(&mut fs, w3);
    assert_eq!(fs.sync_step(t3).unwrap(), SyncStep::Durable);
    for seed in 0..8 {
        let mut cut = after_cut(&mut fs, &mut Rng(100 + seed));
        assert_eq!(content(&mut cut, b"b").as_deref(), Some(&b"second"[..]), "seed {seed}");
        assert_eq!(content(&mut cut, b"c").as_deref(), Some(&b"third"[..]), "seed {seed}");
    }
    // Nothing new: durable at once, without a write.
    let t = fs.sync_target();
    assert_eq!(fs.sync_step(t).unwrap(), SyncStep::Durable);
}

#[test]
fn a_failed_journal_write_stops_the_file_system() {
    let mut fs = crash_fs();
    let a = fs.create(ROOT_INO, b"a", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
    fs.write(a, 0, b"lost").unwrap();
    let t = fs.sync_target();
    assert!(matches!(fs.sync_step(t).unwrap(), SyncStep::Write { .. }));
    let err = Error::Io { dev: 0, offset: 0 };
    assert_eq!(fs.sync_done(Err(err)), Err(err));
    assert!(fs.sync_step(t).is_err(), "a sync after the failure is not reported durable");
    assert!(fs.create(ROOT_INO, b"b", S_IFREG | 0o644, 0, 0, 0).is_err());
    after_cut(&mut fs, &mut Rng(7));
}

/// Callers interleaved at random with commits, the engine's own journal
/// writes and checkpoints, writes in flight across them, and a power cut at
/// the end: every file whose sync was reported durable has exactly the
/// content it had when the sync took its target (it never changes after:
/// the caller freezes it, as an fsync'd file in crash.rs).
#[test]
fn power_cuts_with_journal_writes_in_flight() {
    let (mut overlapped, mut waits, mut checkpoints_in_flight, mut durable_total) = (0, 0, 0, 0);
    for seed in 0..40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut fs = crash_fs();
        let mut files: HashMap<String, (u64, Vec<u8>)> = HashMap::new();
        // Syncs under way: (target, the file frozen for it, its content).
        let mut waiting: Vec<(u64, String, Vec<u8>)> = Vec::new();
        let mut durable: Vec<(String, Vec<u8>)> = Vec::new();
        let mut in_flight: Option<SyncStep> = None;
        for step in 0..(30 + rng.below(150)) {
            let mut keys: Vec<_> = files.keys().cloned().collect();
            keys.sort();
            let pick = keys.get(rng.below(keys.len().max(1) as u64) as usize).cloned();
            match rng.below(12) {
                0..=2 => {
                    let name = format!("f{step}");
                    let ino = fs.create(ROOT_INO, name.as_bytes(), S_IFREG | 0o600, 0, 0, 0).unwrap().ino;
                    files.insert(name, (ino, Vec::new()));
                }
                3..=5 => {
                    if let Some(k) = pick {
                        let (ino, content) = files.get_mut(&k).unwrap();
                        let off = rng.below(100_000) as usize;
                        let mut data = vec![0u8; 1 + rng.below(60_000) as usize];
                        rng.fill(&mut data);
                        fs.write(*ino, off as u64, &data).unwrap();
                        if content.len() < off + data.len() {
                            content.resize(off + data.len(), 0);
                        }
                        content[off..off + data.len()].copy_from_slice(&data);
                        overlapped += u32::from(in_flight.is_some());
                    }
                }
                6..=7 => {
                    // A new caller freezes a file and takes its target.
                    if let Some(k) = pick {
                        let (_, content) = files.remove(&k).unwrap();
                        waiting.push((fs.sync_target(), k, content));
                    }
                }
                8 => {
                    checkpoints_in_flight += u32::from(in_flight.is_some());
                    fs.checkpoint().unwrap();
                }
                _ => {
                    if let Some(w) = in_flight.take() {
                        issue(&mut fs, w);
                    }
                }
            }
            // Every caller under way steps; one may start a write.
            let mut still = Vec::new();
            for (t, name, content) in waiting.drain(..) {
                match fs.sync_step(t).unwrap() {
                    SyncStep::Durable => durable.push((name, content)),
                    SyncStep::Wait => {
                        waits += 1;
                        still.push((t, name, content));
                    }
                    w @ SyncStep::Write { .. } => {
                        assert!(in_flight.is_none(), "seed {seed}: two journal writes in flight");
                        in_flight = Some(w);
                        still.push((t, name, content));
                    }
                }
            }
            waiting = still;
        }
        durable_total += durable.len();
        let mut cut = after_cut(&mut fs, &mut rng);
        for (name, want) in &durable {
            let got =
                content(&mut cut, name.as_bytes()).unwrap_or_else(|| panic!("seed {seed}: {name} lost"));
            assert!(got == *want, "seed {seed}: {name} differs after the cut");
        }
    }
    // The interleavings this test is for happened.
    assert!(
        overlapped > 0 && waits > 0 && checkpoints_in_flight > 0 && durable_total > 0,
        "{overlapped} {waits} {checkpoints_in_flight} {durable_total}"
    );
}
