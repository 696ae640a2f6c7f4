#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Hostile and damaged images, one class of damage each, through the real
//! binary: metadata changed with checksums kept valid, as a bad disk, a bug
//! or an attacker would leave it. restore must stay beneath its target and
//! terminate; fsck -y must never lose reachable data and must converge
//! (fsck -n clean afterwards); open and replay must refuse what breaks the
//! format's rules.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use arborfs_engine::format::alloc_info::{AllocInfo, DataType};
use arborfs_engine::format::dirent::{name_slot, Dirent};
use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::{BtreeId, KeyType, Pos, ROOT_INO, SNAPSHOT_ROOT};
use arborfs_engine::fs::FormatOptions;
use arborfs_engine::sys::{MemDevice, TryVec};
use arborfs_engine::{Fs, OpenOptions};
use arborfs_imagefuzz::image::{Image, OwnedRecord};

const SEED: u64 = 77;

fn opts() -> FormatOptions {
    let mut o = FormatOptions { uuid: [3; 16], hash_seed: SEED, node_size: 4096, ..Default::default() };
    o.member_uuids[0] = [4; 16];
    o.members[0].bucket_size = 64 << 10;
    o
}

/// A 16 MiB image made by `f`, closed cleanly unless `f` returns false
/// (then its last changes are only in the journal).
fn build(f: impl FnOnce(&mut Fs<MemDevice>) -> bool) -> Image {
    let mut devs = TryVec::new();
    devs.try_push(MemDevice::new(16 << 20)).unwrap();
    let mut fs = Fs::format(devs, &opts()).unwrap();
    let close = f(&mut fs);
    let mut devs = if close {
        fs.close().unwrap()
    } else {
        fs.sync().unwrap();
        fs.into_devices()
    };
    Image { bytes: devs.pop().unwrap().data }
}

fn arborfs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arborfs")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    fn path(&self, p: &str) -> PathBuf {
        self.0.path().join(p)
    }
    fn write(&self, img: &Image) -> String {
        let p = self.path("img");
        std::fs::write(&p, &img.bytes).unwrap();
        p.display().to_string()
    }
}

fn fsck(img: &str, flag: &str) -> (i32, String) {
    let o = arborfs(&["fsck", flag, img]);
    (o.status.code().unwrap_or(-1), text(&o))
}

/// fsck -y then fsck -n must be clean, and a second -y must find nothing.
fn repair_converges(img: &str) -> String {
    let (code, out) = fsck(img, "-y");
    assert!(code == 0 || code == 1, "fsck -y: {code}\n{out}");
    let (code, after) = fsck(img, "-n");
    assert_eq!(code, 0, "fsck -n after -y:\n{after}\n-y said:\n{out}");
    let (code, again) = fsck(img, "-y");
    assert_eq!(code, 0, "a second fsck -y:\n{again}");
    out
}

fn dirent(target: u64, dtype: u8, name: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 10 + name.len()];
    let n = Dirent { target, dtype, name }.encode(&mut v).unwrap();
    v.truncate(n);
    v
}

fn dpos(dir: u64, slot: u64) -> Pos {
    Pos::new(dir, slot, SNAPSHOT_ROOT)
}

#[test]
fn restore_never_follows_a_symlink_named_like_the_file_after_it() {
    let d = Dir::new();
    let outside = d.path("outside");
    std::fs::create_dir(&outside).unwrap();
    let target = outside.join("victim");
    let mut file = 0;
    let mut link = 0;
    let img = build(|fs| {
        file = fs.create(ROOT_INO, b"name", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
        fs.write(file, 0, b"the file's data").unwrap();
        link = fs.symlink(ROOT_INO, b"link", target.as_os_str().as_encoded_bytes(), 0, 0).unwrap().ino;
        fs.mkdir(ROOT_INO, b"dir", 0o755, 0, 0).unwrap();
        true
    });
    // The slot of "name" now holds a symlink called "name"; the file's
    // entry follows in the next slot (and a directory entry named like the
    // symlink to a directory, after that).
    let mut img = img;
    let slot = name_slot(SEED, b"name");
    assert!(img.edit_leaf(BtreeId::Dirents, dpos(ROOT_INO, slot), |e, i| {
        assert_eq!(e[i].0, dpos(ROOT_INO, slot));
        e[i].2 = dirent(link, 10, b"name");
        e.insert(i + 1, (dpos(ROOT_INO, slot + 1), KeyType::Dirent, dirent(file, 8, b"name")));
    }));
    let path = d.write(&img);
    let dest = d.path("dest");
    let o = arborfs(&["restore", &path, dest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!target.exists(), "restore wrote through the symlink: {}", text(&o));
    assert!(text(&o).contains("name already taken"), "{}", text(&o));
    assert!(std::fs::symlink_metadata(dest.join("name")).unwrap().file_type().is_symlink());
    let dup = format!("name.arborfs-dup-{file}");
    assert_eq!(std::fs::read(dest.join(dup)).unwrap(), b"the file's data");
    // fsck removes the second name; the file keeps its data in lost+found.
    let out = repair_converges(&path);
    assert!(out.contains("repeats the name"), "{out}");
    let dest2 = d.path("dest2");
    let o = arborfs(&["restore", &path, dest2.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(dest2.join(format!("lost+found/#{file}"))).unwrap(), b"the file's data");
}

#[test]
fn restore_ends_and_fsck_repairs_directory_cycles() {
    let mut a = 0;
    let mut b = 0;
    let img = build(|fs| {
        a = fs.mkdir(ROOT_INO, b"a", 0o755, 0, 0).unwrap().ino;
        b = fs.mkdir(a, b"b", 0o755, 0, 0).unwrap().ino;
        let f = fs.create(b, b"f", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
        fs.write(f, 0, b"deep").unwrap();
        fs.mkdir(b, b"loop", 0o755, 0, 0).unwrap();
        fs.mkdir(b, b"self", 0o755, 0, 0).unwrap();
        true
    });
    // b/loop names a (an ancestor), b/self names b itself.
    let mut img = img;
    for (name, target) in [(&b"loop"[..], a), (&b"self"[..], b)] {
        let slot = name_slot(SEED, name);
        assert!(img.edit_leaf(BtreeId::Dirents, dpos(b, slot), |e, i| {
            assert_eq!(e[i].0, dpos(b, slot));
            e[i].2 = dirent(target, 4, name);
        }));
    }
    let d = Dir::new();
    let path = d.write(&img);
    let (code, out) = fsck(&path, "-n");
    assert_eq!(code, 4, "{out}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_arborfs"))
        .args(["restore", &path, d.path("dest").to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(30), "restore does not end on a directory cycle");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("already restored"), "{}", text(&o));
    assert_eq!(std::fs::read(d.path("dest/a/b/f")).unwrap(), b"deep");
    repair_converges(&path);
    let o = arborfs(&["restore", &path, d.path("dest2").to_str().unwrap()]);
    assert!(o.status.success(), "after repair: {}", text(&o));
    assert_eq!(std::fs::read(d.path("dest2/a/b/f")).unwrap(), b"deep");
}

/// The user data and b-tree buckets of an image, from its alloc keys.
fn buckets_of(img: &Image, t: DataType) -> Vec<Pos> {
    let sb = img.sb().unwrap();
    let mut out = Vec::new();
    for n in img.nodes().iter().filter(|n| n.btree == BtreeId::Alloc && n.level == 0) {
        for (pos, _, v) in img.read_node(n.offset, sb.node_size as usize, sb.meta_csum).unwrap().entries {
            if AllocInfo::decode(&v).unwrap().data_type == t {
                out.push(pos);
            }
        }
    }
    out
}

fn tree_with_data() -> (Image, Vec<(u64, Vec<u8>)>) {
    let mut files = Vec::new();
    let img = build(|fs| {
        for i in 0..12u8 {
            let name = format!("f{i}");
            let ino = fs.create(ROOT_INO, name.as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
            let data: Vec<u8> = (0..30_000 + usize::from(i) * 5000).map(|j| (j as u8) ^ i).collect();
            fs.write(ino, 0, &data).unwrap();
            files.push((ino, data));
        }
        true
    });
    (img, files)
}

fn assert_files(path: &str, d: &Dir, files: &[(u64, Vec<u8>)], dest: &str) {
    let o = arborfs(&["restore", path, d.path(dest).to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    for (i, (_, data)) in files.iter().enumerate() {
        assert_eq!(&std::fs::read(d.path(&format!("{dest}/f{i}"))).unwrap(), data, "f{i}");
    }
}

#[test]
fn fsck_never_allocates_into_buckets_whose_alloc_keys_are_missing() {
    let (mut img, files) = tree_with_data();
    // Every alloc key goes: all buckets look free, yet hold data and nodes.
    let keys: Vec<Pos> =
        [DataType::User, DataType::Btree].iter().flat_map(|t| buckets_of(&img, *t)).collect();
    assert!(keys.len() > 3);
    for pos in keys {
        assert!(img.edit_leaf(BtreeId::Alloc, pos, |e, i| {
            e.remove(i);
        }));
    }
    let d = Dir::new();
    let path = d.write(&img);
    let out = repair_converges(&path);
    assert!(out.contains("(fixed)"), "{out}");
    assert_files(&path, &d, &files, "dest");
    // And the repaired file system takes new data without losing the old.
    let mut devs = TryVec::new();
    devs.try_push(MemDevice { data: std::fs::read(&path).unwrap() }).unwrap();
    let mut fs = Fs::open(devs, &OpenOptions::default()).unwrap();
    for i in 0..20u8 {
        let ino = fs.create(ROOT_INO, format!("new{i}").as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
        fs.write(ino, 0, &vec![i; 100_000]).unwrap();
    }
    let bytes = fs.close().unwrap().pop().unwrap().data;
    std::fs::write(&path, bytes).unwrap();
    assert_files(&path, &d, &files, "dest2");
    assert_eq!(fsck(&path, "-n").0, 0);
}

#[test]
fn opening_read_write_keeps_a_node_bucket_whose_key_says_empty_user_data() {
    let (mut img, files) = tree_with_data();
    for pos in buckets_of(&img, DataType::Btree) {
        let mut a = AllocInfo::decode(&img.get(BtreeId::Alloc, pos).unwrap()).unwrap();
        a.data_type = DataType::User;
        a.used = 0;
        let mut v = vec![0u8; 16];
        a.encode(&mut v).unwrap();
        assert!(img.edit_leaf(BtreeId::Alloc, pos, |e, i| e[i].2 = v));
    }
    // Two read-write opens: the first must not free (and bump) those buckets.
    let mut bytes = img.bytes.clone();
    for _ in 0..2 {
        let mut devs = TryVec::new();
        devs.try_push(MemDevice { data: bytes }).unwrap();
        let fs = Fs::open(devs, &OpenOptions::default()).unwrap();
        bytes = fs.close().unwrap().pop().unwrap().data;
    }
    let d = Dir::new();
    let path = d.write(&Image { bytes });
    assert_files(&path, &d, &files, "dest");
    repair_converges(&path);
}

#[test]
fn misplaced_and_non_canonical_keys_are_repaired_once() {
    let mut ino = 0;
    let mut img = build(|fs| {
        for i in 0..30 {
            fs.create(ROOT_INO, format!("n{i}").as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap();
        }
        ino = fs.create(ROOT_INO, b"x", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
        true
    });
    // "x" moves far from its hash slot; inode "x" gets a second copy at a
    // non-canonical position.
    let slot = name_slot(SEED, b"x");
    let mut moved = None;
    assert!(img.edit_leaf(BtreeId::Dirents, dpos(ROOT_INO, slot), |e, i| {
        let lo = if i == 0 { 16 } else { e[i - 1].0.offset + 1 };
        assert!(slot - lo > 16, "no room before the slot");
        let v = e.remove(i).2;
        let to = dpos(ROOT_INO, lo + 3);
        let j = e.partition_point(|k| k.0 < to);
        e.insert(j, (to, KeyType::Dirent, v));
        moved = Some(to);
    }));
    let inode = img.get(BtreeId::Inodes, Pos::new(ino, 0, SNAPSHOT_ROOT)).unwrap();
    assert!(img.edit_leaf(BtreeId::Inodes, Pos::new(ino, 0, 7), |e, i| {
        e.insert(i, (Pos::new(ino, 0, 7), KeyType::Inode, inode));
    }));
    let d = Dir::new();
    let path = d.write(&img);
    let (code, out) = fsck(&path, "-n");
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("outside its name's hash slots"), "{out}");
    assert!(out.contains("position its b-tree does not allow"), "{out}");
    assert!(!out.contains("link count"), "the entry was counted twice:\n{out}");
    let out = repair_converges(&path);
    assert_eq!(out.matches("hash slots").count(), 1, "{out}");
    let o = arborfs(&["restore", &path, d.path("dest").to_str().unwrap()]);
    assert!(o.status.success() && d.path("dest/x").exists(), "{}", text(&o));
    let _ = moved;
}

#[test]
fn an_unreadable_node_is_cut_out_and_what_it_named_reconnected() {
    let mut linked = 0;
    let mut img = build(|fs| {
        linked = fs.create(ROOT_INO, b"a", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
        fs.link(linked, ROOT_INO, b"b").unwrap();
        for i in 0..200 {
            fs.create(ROOT_INO, format!("file-number-{i:04}").as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap();
        }
        true
    });
    // One dirents leaf (not the one with "a" and "b") becomes unreadable.
    let keep = [
        img.leaf_for(BtreeId::Dirents, dpos(ROOT_INO, name_slot(SEED, b"a"))).unwrap(),
        img.leaf_for(BtreeId::Dirents, dpos(ROOT_INO, name_slot(SEED, b"b"))).unwrap(),
    ];
    let leaf = img
        .nodes()
        .into_iter()
        .find(|n| n.btree == BtreeId::Dirents && n.level == 0 && !keep.contains(&n.offset))
        .expect("several dirents leaves");
    img.bytes[leaf.offset as usize + 100] ^= 0xff;
    let d = Dir::new();
    let path = d.write(&img);
    // Without repairs, only what a partial walk can know is reported, and
    // nothing that needs the whole tree is claimed.
    let (code, out) = fsck(&path, "-n");
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("b-tree node unreadable"), "{out}");
    // Repairs cut the node out; the files it named go to lost+found, and
    // one run is enough.
    let (code, out) = fsck(&path, "-y");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("b-tree node unreadable") && out.contains("(fixed)"), "{out}");
    assert!(!out.contains("not fixed"), "{out}");
    let (code, out) = fsck(&path, "-n");
    assert_eq!(code, 0, "converged:\n{out}");
    let mut devs = TryVec::new();
    devs.try_push(MemDevice { data: std::fs::read(&path).unwrap() }).unwrap();
    let mut fs = Fs::open(devs, &OpenOptions { read_only: true, ..Default::default() }).unwrap();
    // The hard link keeps both names; every file has a name again.
    assert_eq!(fs.getattr(linked).unwrap().inode.nlink, 2);
    let count = |fs: &mut Fs<MemDevice>, dir: u64| {
        let mut n = 0;
        fs.readdir(dir, 0, &mut |name, _, _, _| {
            n += usize::from(name != b"lost+found");
            true
        })
        .unwrap();
        n
    };
    let lf = fs.lookup(ROOT_INO, b"lost+found").unwrap().ino;
    let (in_root, in_lf) = (count(&mut fs, ROOT_INO), count(&mut fs, lf));
    assert!(in_lf > 0, "the lost leaf named files");
    assert_eq!(in_root + in_lf, 202, "{in_root} in the root, {in_lf} in lost+found");
}

#[test]
fn replay_refuses_an_invalid_entry_and_never_replays_stale_ones() {
    let img = build(|fs| {
        for i in 0..40 {
            let ino = fs.create(ROOT_INO, format!("j{i}").as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
            fs.write(ino, 0, b"journal").unwrap();
            fs.sync().unwrap();
        }
        false
    });
    let mut img = img;
    let sb = img.sb().unwrap();
    let entries = img.journal_entries();
    assert!(entries.len() >= 20, "{} entries", entries.len());
    // Entry 10 carries an accounting record that would take the inode
    // counter below zero: valid checksums, invalid content.
    let mut e = entries[10].clone();
    e.records.push(OwnedRecord::Accounting { inodes: -1_000_000, data_bytes: 0 });
    if !img.write_entry(&e, sb.meta_csum) {
        e.records.pop();
        for r in e.records.iter_mut() {
            if let OwnedRecord::Accounting { inodes, .. } = r {
                *inodes = i64::MIN;
            }
        }
        assert!(img.write_entry(&e, sb.meta_csum));
    }
    let d = Dir::new();
    let path = d.write(&img);
    let (code, out) = fsck(&path, "-n");
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("journal entry"), "{out}");
    // A read-write open replays up to entry 10 and writes new entries; the
    // old entries after 10 must never come back.
    let mut devs = TryVec::new();
    devs.try_push(MemDevice { data: std::fs::read(&path).unwrap() }).unwrap();
    let mut fs = Fs::open(devs, &OpenOptions::default()).unwrap();
    assert!(fs.lookup(ROOT_INO, b"j5").is_ok());
    assert!(fs.lookup(ROOT_INO, b"j30").is_err());
    for i in 0..5 {
        let ino = fs.create(ROOT_INO, format!("new{i}").as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
        fs.write(ino, 0, b"x").unwrap();
        fs.sync().unwrap();
    }
    // Power cut: nothing after the last sync.
    let bytes = fs.into_devices().pop().unwrap().data;
    let mut devs = TryVec::new();
    devs.try_push(MemDevice { data: bytes }).unwrap();
    let mut fs = Fs::open(devs, &OpenOptions { read_only: true, ..Default::default() }).unwrap();
    for i in 0..5 {
        assert!(fs.lookup(ROOT_INO, format!("new{i}").as_bytes()).is_ok(), "new{i}");
    }
    for i in 10..40 {
        assert!(fs.lookup(ROOT_INO, format!("j{i}").as_bytes()).is_err(), "stale entry for j{i} replayed");
    }
    assert!(fs.statfs().files > 0);
}

#[test]
fn statfs_survives_counters_at_their_limits() {
    let mut img = build(|_| true);
    let mut sb = img.sb().unwrap();
    sb.inodes = u64::MAX;
    sb.data_bytes = u64::MAX;
    img.write_super(&sb);
    let mut devs = TryVec::new();
    devs.try_push(MemDevice { data: img.bytes.clone() }).unwrap();
    let fs = Fs::open(devs, &OpenOptions { read_only: true, ..Default::default() }).unwrap();
    let st = fs.statfs();
    assert_eq!(st.files, u64::MAX);
    let d = Dir::new();
    let path = d.write(&img);
    let out = repair_converges(&path);
    assert!(out.contains("inode counter"), "{out}");
}

#[test]
fn a_closed_pipe_ends_the_tool_quietly() {
    let img = build(|fs| {
        for i in 0..300 {
            fs.create(ROOT_INO, format!("entry-{i}").as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap();
        }
        true
    });
    let d = Dir::new();
    let path = d.write(&img);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("'{}' dump '{path}' | head -n 1", env!("CARGO_BIN_EXE_arborfs")))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

#[test]
fn a_node_pointer_with_a_wrong_generation_is_repointed_not_cut() {
    let img = build(|fs| {
        for i in 0..300 {
            fs.create(ROOT_INO, format!("file-number-{i:04}").as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap();
        }
        true
    });
    let sb = img.sb().unwrap();
    let (ns, csum) = (sb.node_size as usize, sb.meta_csum);
    // Two places a pointer lives: the superblock (the inodes root) and an
    // interior node (a child of the dirents root).
    let mut root_gen = img.clone();
    let mut s = sb.clone();
    s.roots[BtreeId::Inodes.index()].gen ^= 0x5a5a;
    root_gen.write_super(&s);
    let mut child_gen = img.clone();
    let root = sb.roots[BtreeId::Dirents.index()];
    let mut n = child_gen.read_node(root.offset, ns, csum).unwrap();
    assert!(n.level > 0, "300 entries need more than one dirents leaf");
    let mut p = arborfs_engine::format::node::BtreePtr::decode(&n.entries[0].2).unwrap();
    p.gen = p.gen.wrapping_add(7);
    p.encode(&mut n.entries[0].2).unwrap();
    assert!(child_gen.write_node(root.offset, ns, csum, &n));
    for img in [root_gen, child_gen] {
        let d = Dir::new();
        let path = d.write(&img);
        let (code, out) = fsck(&path, "-n");
        assert_eq!(code, 4, "{out}");
        assert!(out.contains("generation"), "{out}");
        let out = repair_converges(&path);
        assert!(out.contains("generation") && !out.contains("unreadable"), "{out}");
        // Nothing was cut: every file is still there under its name.
        let o = arborfs(&["restore", &path, &d.path("out").display().to_string()]);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(std::fs::read_dir(d.path("out")).unwrap().count(), 300);
    }
}

/// An owner or group of 2^32 - 1 (the id Linux reserves: chown takes it as
/// "leave unchanged") only a damaged image holds: restore reports it, sets
/// the rest, and restores the file's data (it used to panic).
#[test]
fn restore_reports_a_reserved_owner_and_restores_the_file() {
    let d = Dir::new();
    let img = build(|fs| {
        let f = fs.create(ROOT_INO, b"owned", S_IFREG | 0o640, 0, 0, 0).unwrap().ino;
        fs.write(f, 0, b"still here").unwrap();
        let set =
            arborfs_engine::fs::SetAttr { uid: Some(u32::MAX), gid: Some(u32::MAX), ..Default::default() };
        fs.setattr(f, &set).unwrap();
        true
    });
    let path = d.write(&img);
    let dest = d.path("dest");
    let o = arborfs(&["restore", &path, dest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("reserved id"), "{}", text(&o));
    assert_eq!(std::fs::read(dest.join("owned")).unwrap(), b"still here");
}
