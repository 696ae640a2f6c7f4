#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! The conventions users bring from e2fsck, mkfs(8) and friends: help and
//! man output (golden files), fsck's JSON report, -C progress lines, -p on
//! a clean file system, fsck(8) exit codes, completions, mkfs --dry-run.
//! `UPDATE_GOLDEN=1 cargo test -p arborfs-tools --test conventions`
//! rewrites the golden files after an intended change.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_arborfs"))
}

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn golden(name: &str, got: &str) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&p).unwrap_or_default();
    assert_eq!(got, want, "{name} differs from tests/golden/{name} (UPDATE_GOLDEN=1 to accept)");
}

fn image(dir: &Path) -> String {
    let img = dir.join("img");
    let o = run(&["format", "-q", "--fs-size", "64M", img.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    img.display().to_string()
}

#[test]
fn help_output_is_stable() {
    for (name, args) in [
        ("arborfs.txt", vec!["--help"]),
        ("format.txt", vec!["format", "--help"]),
        ("fsck.txt", vec!["fsck", "--help"]),
        ("restore.txt", vec!["restore", "--help"]),
        ("show-super.txt", vec!["show-super", "--help"]),
        ("dump.txt", vec!["dump", "--help"]),
    ] {
        let o = run(&args);
        assert!(o.status.success());
        golden(name, &String::from_utf8_lossy(&o.stdout));
    }
    let t = tempfile::tempdir().unwrap();
    let fsck = t.path().join("fsck.arborfs");
    std::os::unix::fs::symlink(bin(), &fsck).unwrap();
    let o = Command::new(&fsck).arg("--help").output().unwrap();
    golden("fsck.arborfs.txt", &String::from_utf8_lossy(&o.stdout));
    // A usage error is fsck(8)'s 16.
    let o = Command::new(&fsck).arg("--no-such-flag").output().unwrap();
    assert_eq!(o.status.code(), Some(16));
}

#[test]
fn man_pages_match_the_committed_ones() {
    let t = tempfile::tempdir().unwrap();
    let o = run(&["man", t.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Documentation/man");
    let mut n = 0;
    for e in std::fs::read_dir(t.path()).unwrap() {
        let e = e.unwrap();
        let want = std::fs::read(committed.join(e.file_name())).unwrap_or_default();
        assert!(
            std::fs::read(e.path()).unwrap() == want,
            "Documentation/man/{} is out of date: run make man",
            e.file_name().to_string_lossy()
        );
        n += 1;
    }
    assert!(n >= 10, "{n} pages");
    assert!(committed.join("arborfs.5").exists());
}

#[test]
fn fsck_json_reports_problems_and_the_exit_code() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path());
    let o = run(&["fsck", "-n", "--json", &img]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["result"], "no errors");
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
    assert!(v["summary"]["nodes"].as_u64().unwrap() > 0);
    // Damage: the counters in the superblock.
    let mut bytes = std::fs::read(&img).unwrap();
    let mut im = arborfs_imagefuzz::image::Image { bytes: std::mem::take(&mut bytes) };
    let mut sb = im.sb().unwrap();
    sb.inodes += 3;
    im.write_super(&sb);
    std::fs::write(&img, &im.bytes).unwrap();
    let o = run(&["fsck", "-n", "--json", &img]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit_code"], 4);
    assert_eq!(v["mode"], "check");
    let p = &v["problems"][0];
    assert_eq!(p["kind"], "inode_counter");
    assert_eq!(p["number"], 16);
    assert_eq!(p["fixed"], false);
    assert!(p["message"].as_str().unwrap().contains("inode counter"));
    let o = run(&["fsck", "-y", "--json", &img]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["problems"][0]["fixed"], true);
    assert_eq!(v["result"], "errors corrected");
}

#[test]
fn fsck_progress_lines_and_preen() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path());
    // -C 1: e2fsck's "PASS CURRENT MAX DEVICE" lines on descriptor 1.
    let o = run(&["fsck", "-n", "-C", "1", &img]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 6, "{out}");
    let mut last_pass = 0;
    for l in &lines {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 4, "{l}");
        let pass: u32 = f[0].parse().unwrap();
        let (cur, max): (u64, u64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        assert!(cur <= max && pass >= last_pass, "{l}");
        assert_eq!(f[3], img);
        last_pass = pass;
    }
    // -p on a clean file system returns at once; -f checks anyway.
    let o = run(&["fsck", "-p", "-C", "1", &img]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("clean"), "{}", text(&o));
    let o = run(&["fsck", "-p", "-f", "-C", "1", &img]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).lines().count() >= 6, "{}", text(&o));
}

#[test]
fn completions_for_three_shells() {
    for sh in ["bash", "zsh", "fish"] {
        let o = run(&["completions", sh]);
        assert!(o.status.success() && o.stdout.len() > 500, "{sh}");
    }
    let script = format!("source <('{}' completions bash) && complete -p arborfs", bin().display());
    let o = Command::new("bash").arg("-c").arg(script).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("arborfs"));
}

#[test]
fn mkfs_dry_run_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path());
    let before = std::fs::read(&img).unwrap();
    let o = run(&["format", "-n", "--label", "x", &img]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("would format") && out.contains("already holds an arborfs"), "{out}");
    assert!(std::fs::read(&img).unwrap() == before, "--dry-run changed the device");
    // Nothing is created either, sizes take suffixes.
    let new = t.path().join("new");
    let o = run(&["format", "--dry-run", "--fs-size", "1GiB", new.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1024 MiB"), "{}", text(&o));
    assert!(!new.exists());
}

#[test]
fn errors_name_the_program_and_device() {
    let t = tempfile::tempdir().unwrap();
    let other = t.path().join("other");
    std::fs::write(&other, vec![0u8; 2 << 20]).unwrap();
    let o = run(&["fsck", "-n", other.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(8));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with(&format!("arborfs fsck: {}: not an arborfs", other.display())), "{err}");
    let o = run(&["format", "-q", "--block-size", "3000", other.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("arborfs format: block size 3000"), "{err}");
    assert!(!err.contains("panicked"));
}

/// generic/740: mkfs without --force refuses whatever mkfs(8) of another
/// file system left (blkid knows them, not just the few built in), and
/// --force overwrites it.
#[test]
fn mkfs_refuses_other_file_systems_without_force() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("other");
    let path = img.to_str().unwrap();
    let makers: [(&str, &[&str]); 3] =
        [("mkfs.minix", &[]), ("mkfs.cramfs", &["/proc/fs"]), ("mkfs.ext4", &["-q", "-F"])];
    for (mkfs, pre) in makers {
        std::fs::write(&img, vec![0u8; 64 << 20]).unwrap();
        // util-linux and e2fsprogs put them in /usr/sbin, not always on PATH.
        let prog = Path::new("/usr/sbin").join(mkfs);
        let o = Command::new(&prog).args(pre).arg(path).output().expect(mkfs);
        assert!(o.status.success(), "{mkfs}: {}", text(&o));
        let before = std::fs::read(&img).unwrap();
        let o = run(&["format", "-q", path]);
        assert_eq!(o.status.code(), Some(1), "{mkfs}: {}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("use --force"), "{mkfs}: {}", text(&o));
        assert!(std::fs::read(&img).unwrap() == before, "refusing {mkfs}'s image changed it");
        // mkfs.cramfs writes an image of its own size.
        std::fs::OpenOptions::new().write(true).open(&img).unwrap().set_len(64 << 20).unwrap();
        let o = run(&["format", "-q", "--force", path]);
        assert!(o.status.success(), "{mkfs} --force: {}", text(&o));
    }
}
