//! Engine benchmark on an image file (userspace, the real file-device path).
//! Prints operations per second, MB/s and peak memory; it asserts nothing
//! about speed. Run: `cargo run --release -p arborfs-engine --example bench [IMAGE] [FILES] [MiB]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Instant;

use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::fs::write_plan::WritePlan;
use arborfs_engine::fs::FormatOptions;
use arborfs_engine::sys::{BlockDevice, FileDevice, TryVec};
use arborfs_engine::{Fs, OpenOptions};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn drop_caches(path: &str) {
    // Best effort: ask the kernel to forget the image's cached pages.
    let _ = std::process::Command::new("sync").status();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
    let _ = path;
}

fn open(path: &str) -> Fs<FileDevice> {
    let mut devs = TryVec::new();
    devs.try_push(FileDevice::open(path.as_ref(), true).unwrap()).unwrap();
    Fs::open(devs, &OpenOptions::default()).unwrap()
}

fn report(what: &str, n: u64, unit: &str, secs: f64) {
    println!("{what:<44} {:>12.0} {unit}/s   ({n} in {secs:.2} s)", n as f64 / secs);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).cloned().unwrap_or_else(|| "/tmp/arborfs-bench.img".into());
    let nfiles: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let mib: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let size = (mib * 2 + 512) << 20;
    {
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
    }
    let mut devs = TryVec::new();
    devs.try_push(FileDevice::open(path.as_ref(), true).unwrap()).unwrap();
    let mut o = FormatOptions { uuid: [1; 16], hash_seed: 77, ..Default::default() };
    o.member_uuids[0] = [2; 16];
    let fs = Fs::format(devs, &o).unwrap();
    println!(
        "arborfs engine benchmark: image {path} ({} MiB), node size {}, bucket size {}, data checksum {}",
        size >> 20,
        fs.sb.node_size,
        fs.sb.members()[0].bucket_size,
        fs.sb.data_csum.name()
    );
    let mut fs = fs;

    let t = Instant::now();
    let mut inos = Vec::with_capacity(nfiles as usize);
    for i in 0..nfiles {
        inos.push(
            fs.create(ROOT_INO, format!("file{i:07}").as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap().ino,
        );
    }
    fs.sync().unwrap();
    report("create empty files in one directory", nfiles, "ops", t.elapsed().as_secs_f64());

    let devs = fs.close().unwrap();
    drop(devs);
    drop_caches(&path);
    let mut fs = open(&path);
    let t = Instant::now();
    for i in 0..nfiles {
        let a = fs.lookup(ROOT_INO, format!("file{i:07}").as_bytes()).unwrap();
        assert_eq!(a.ino, inos[i as usize]);
    }
    report("stat (lookup + getattr), cold start", nfiles, "ops", t.elapsed().as_secs_f64());

    let t = Instant::now();
    for i in 0..nfiles {
        let a = fs.unlink(ROOT_INO, format!("file{i:07}").as_bytes()).unwrap();
        fs.evict(a.ino).unwrap();
    }
    fs.sync().unwrap();
    report("unlink", nfiles, "ops", t.elapsed().as_secs_f64());

    let f = fs.create(ROOT_INO, b"big", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
    let mut buf = vec![0u8; 1 << 20];
    let mut x = 0x1234_5678u64;
    for c in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes());
    }
    let t = Instant::now();
    for i in 0..mib {
        buf[0] = i as u8;
        fs.write(f, i << 20, &buf).unwrap();
    }
    fs.sync().unwrap();
    fs.devices_mut()[0].flush().unwrap();
    report("sequential write, 1 MiB writes + sync", mib, "MiB", t.elapsed().as_secs_f64());

    let devs = fs.close().unwrap();
    drop(devs);
    drop_caches(&path);
    let mut fs = open(&path);
    let t = Instant::now();
    for i in 0..mib {
        let n = fs.read(f, i << 20, &mut buf).unwrap();
        assert_eq!(n, 1 << 20);
        assert_eq!(buf[0], i as u8);
    }
    report("sequential read, 1 MiB reads, cold", mib, "MiB", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let writes = 20_000u64;
    let mut r = 99u64;
    let block = [0xabu8; 4096];
    for i in 0..writes {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        let off = (r % (mib << 8)) << 12;
        fs.write(f, off, &block).unwrap();
        if i % 32 == 31 {
            fs.fsync(f).unwrap();
        }
    }
    report("random 4 KiB overwrites, fsync every 32", writes, "ops", t.elapsed().as_secs_f64());

    // As the kernel's writeback does them: planned, written by the caller,
    // and committed 32 at a time (one run of scattered folios).
    let t = Instant::now();
    let mut plans: Vec<WritePlan> = (0..32).map(|_| WritePlan::new()).collect();
    for i in 0..writes {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        let plan = &mut plans[(i % 32) as usize];
        assert!(fs.plan_write(f, (r % (mib << 8)) << 12, 4096, u64::MAX, plan).unwrap());
        fs.devices_mut()[usize::from(plan.dev)].write_at(plan.offset, &block).unwrap();
        plan.encode(&block).unwrap();
        if i % 32 == 31 {
            let batch: Vec<&WritePlan> = plans.iter().collect();
            fs.commit_writes(&batch).unwrap();
            fs.fsync(f).unwrap();
        }
    }
    report("planned 4 KiB overwrites, 32 per commit", writes, "ops", t.elapsed().as_secs_f64());
    let stats = fs.stats();
    fs.close().unwrap();
    println!("peak memory (VmHWM)                          {:>12.1} MiB", peak_rss_mib());
    println!(
        "node cache at the end                        {:>12.1} MiB, {} checkpoints",
        stats.cache_bytes as f64 / 1048576.0,
        stats.checkpoints
    );
    let _ = std::fs::remove_file(&path);
}
