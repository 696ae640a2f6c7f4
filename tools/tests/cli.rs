#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! The `arborfs` binary end to end: format --source of a rich tree, fsck,
//! restore, and a comparison of everything; refusals and error messages.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_arborfs"))
}

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run arborfs")
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "arborfs {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn set_times(p: &Path, atime: i64, mtime: i64) {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let t = |ns: i64| TimeSpec::new(ns / 1_000_000_000, ns % 1_000_000_000);
    utimensat(None, p, &t(atime), &t(mtime), UtimensatFlags::NoFollowSymlink).unwrap();
}

/// A tree with every kind of thing --source must carry over.
fn make_tree(root: &Path) {
    use std::os::unix::fs::symlink;
    std::fs::create_dir_all(root.join("empty/deeper")).unwrap();
    std::fs::create_dir_all(root.join("dir")).unwrap();
    std::fs::write(root.join("small"), b"hello arborfs\n").unwrap();
    let long = "l".repeat(255);
    std::fs::write(root.join(&long), b"long name").unwrap();
    std::fs::write(root.join("zażółć gęślą jaźń ☃"), "unicode".repeat(1000)).unwrap();
    // A large sparse file: data, a 64 MiB hole, data, a hole at the end.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(root.join("dir/sparse")).unwrap();
        let block: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        f.write_all_at(&block, 0).unwrap();
        f.write_all_at(&block, 64 << 20).unwrap();
        f.set_len(100 << 20).unwrap();
    }
    let mut big = vec![0u8; 3 << 20];
    let mut x = 1u64;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(root.join("dir/random"), &big).unwrap();
    std::fs::hard_link(root.join("small"), root.join("dir/hardlink")).unwrap();
    symlink("../small", root.join("dir/symlink")).unwrap();
    symlink("/nonexistent/target/".repeat(40), root.join("dangling")).unwrap();
    nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
    nix::sys::stat::mknod(
        &root.join("nullish"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &root.join("blk"),
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o660),
        nix::sys::stat::makedev(259, 70000),
    )
    .unwrap();
    std::fs::set_permissions(root.join("small"), std::fs::Permissions::from_mode(0o4751)).unwrap();
    std::os::unix::fs::lchown(root.join("dir/random"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::lchown(root.join("dir/symlink"), Some(42), Some(43)).unwrap();
    xattr::set(root.join("small"), "user.color", b"blue").unwrap();
    xattr::set(root.join("dir"), "user.empty", b"").unwrap();
    xattr::set(root.join("dir/random"), "trusted.big", &vec![7u8; 3000]).unwrap();
    for (i, p) in
        ["small", "dir/random", "dir/sparse", "fifo", "empty/deeper", "empty", "dir"].iter().enumerate()
    {
        set_times(
            &root.join(p),
            1_600_000_000_123_456_789 + i as i64,
            1_500_000_000_987_654_321 + i as i64 * 1000,
        );
    }
}

#[derive(Debug, PartialEq)]
struct Entry {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    size: u64,
    mtime: (i64, i64),
    atime: Option<(i64, i64)>,
    rdev: u64,
    content: Option<Vec<u8>>,
    link: Option<PathBuf>,
    xattrs: BTreeMap<String, Vec<u8>>,
    /// Paths (relative) sharing this inode.
    same_inode_as: Option<PathBuf>,
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut seen: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        let ft = m.file_type();
        if ft.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        let same = if !ft.is_dir() && m.nlink() > 1 {
            let first = seen.entry(m.ino()).or_insert_with(|| rel.clone()).clone();
            Some(first)
        } else {
            None
        };
        let mut xattrs = BTreeMap::new();
        if !ft.is_symlink() {
            for n in xattr::list(&p).unwrap() {
                xattrs.insert(
                    n.to_string_lossy().into_owned(),
                    xattr::get(&p, &n).unwrap().unwrap_or_default(),
                );
            }
        }
        out.insert(
            rel,
            Entry {
                mode: m.mode(),
                uid: m.uid(),
                gid: m.gid(),
                nlink: if ft.is_dir() { 0 } else { m.nlink() },
                size: if ft.is_dir() { 0 } else { m.size() },
                mtime: (m.mtime(), m.mtime_nsec()),
                // Reading contents and link targets changes atimes; compare the rest.
                atime: if ft.is_file() || ft.is_dir() || ft.is_symlink() {
                    None
                } else {
                    Some((m.atime(), m.atime_nsec()))
                },
                rdev: m.rdev(),
                content: if ft.is_file() { Some(std::fs::read(&p).unwrap()) } else { None },
                link: if ft.is_symlink() { Some(std::fs::read_link(&p).unwrap()) } else { None },
                xattrs,
                same_inode_as: same,
            },
        );
    }
    out
}

#[test]
fn source_restore_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    make_tree(&src);
    let img = t.path().join("img");
    let img_s = img.to_str().unwrap();
    ok(&["format", "--fs-size", "256M", "--label", "roundtrip", "--source", src.to_str().unwrap(), img_s]);
    let fsck = run(&["fsck", "-n", "-v", img_s]);
    assert_eq!(fsck.status.code(), Some(0), "{}", String::from_utf8_lossy(&fsck.stdout));
    let out = t.path().join("out");
    ok(&["restore", img_s, out.to_str().unwrap()]);
    let a = snapshot(&src);
    let b = snapshot(&out);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, ea) in &a {
        assert_eq!(ea, &b[k], "{}", k.display());
    }
    // Holes stay holes: the restored sparse file does not use 100 MiB.
    let blocks = std::fs::metadata(out.join("dir/sparse")).unwrap().blocks();
    assert!(blocks * 512 < 8 << 20, "sparse file restored with {} bytes allocated", blocks * 512);
}

#[test]
fn compressed_round_trip_and_show_super() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    make_tree(&src);
    let img = t.path().join("img");
    let img_s = img.to_str().unwrap();
    ok(&[
        "format",
        "--fs-size",
        "128M",
        "--compression",
        "zstd:5",
        "--data-checksum",
        "xxhash64",
        "--metadata-checksum",
        "xxhash64",
        "--btree-node-size",
        "16k",
        "--source",
        src.to_str().unwrap(),
        img_s,
    ]);
    let js: serde_json::Value = serde_json::from_str(&ok(&["show-super", "--json", img_s])).unwrap();
    assert_eq!(js["compression"], "zstd");
    assert_eq!(js["compression_level"], 5);
    assert_eq!(js["btree_node_size"], 16384);
    assert_eq!(js["clean"], true);
    // One inode per path, except hard links, which share one.
    let snap = snapshot(&src);
    let inodes = snap.iter().filter(|(k, e)| e.same_inode_as.as_ref().is_none_or(|f| f == *k)).count();
    assert_eq!(js["counters"]["inodes"].as_u64().unwrap() as usize, inodes);
    let out = t.path().join("out");
    ok(&["restore", img_s, out.to_str().unwrap()]);
    assert_eq!(snapshot(&src), snapshot(&out));
}

#[test]
fn refusals_and_messages() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("img");
    let img_s = img.to_str().unwrap();
    // Missing image without --fs-size.
    let o = run(&["format", img_s]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--fs-size"));
    // Too small.
    let o = run(&["format", "--fs-size", "1M", img_s]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("too small"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Bad options.
    for bad in [
        ["--block-size", "3000"],
        ["--compression", "gzip"],
        ["--data-checksum", "md5"],
        ["--compression", "lz4:3"],
    ] {
        let o = run(&["format", "--fs-size", "64M", bad[0], bad[1], img_s]);
        assert!(!o.status.success(), "{bad:?} accepted");
        assert_eq!(o.status.code(), Some(1));
    }
    // Existing file systems are kept unless --force.
    std::fs::remove_file(&img).ok();
    ok(&["format", "--fs-size", "64M", img_s]);
    let o = run(&["format", img_s]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    ok(&["format", "--force", "-q", img_s]);
    // Not arborfs.
    let other = t.path().join("other");
    std::fs::write(&other, vec![0u8; 2 << 20]).unwrap();
    let o = run(&["fsck", "-n", other.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an arborfs"));
    let o = run(&["show-super", other.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an arborfs"));
}

/// Format discards the old contents first (a journal entry or node left
/// from before must never be read back), unless -K.
#[test]
fn format_discards_old_contents_unless_nodiscard() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("img");
    let img_s = img.to_str().unwrap();
    let old_bytes = |discard: bool| {
        std::fs::write(&img, vec![0xa5u8; 64 << 20]).unwrap();
        let mut args = vec!["format", "-q", "--force", img_s];
        if !discard {
            args.push("-K");
        }
        ok(&args);
        ok(&["fsck", "-n", img_s]);
        std::fs::read(&img).unwrap().chunks(4096).filter(|b| b.iter().all(|&x| x == 0xa5)).count()
    };
    assert_eq!(old_bytes(true), 0, "old blocks survived a format");
    assert!(old_bytes(false) > 8000, "-K discarded anyway");
}

#[test]
fn multi_call_names() {
    let t = tempfile::tempdir().unwrap();
    let mkfs = t.path().join("mkfs.arborfs");
    let fsck = t.path().join("fsck.arborfs");
    std::os::unix::fs::symlink(bin(), &mkfs).unwrap();
    std::os::unix::fs::symlink(bin(), &fsck).unwrap();
    let img = t.path().join("img");
    let o = Command::new(&mkfs).args(["--fs-size", "64M", "-q", img.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for flag in ["-n", "-p", "-a", "-y"] {
        let o = Command::new(&fsck).args([flag, img.to_str().unwrap()]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "fsck.arborfs {flag}: {}", String::from_utf8_lossy(&o.stderr));
    }
}
