#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Model-based random test: seeded sequences of POSIX operations applied to
//! the engine and to a simple in-memory model, compared after every step, on
//! whole-tree walks, after close and reopen, and by fsck.
mod common;

use std::collections::{BTreeMap, HashMap};

use arborfs_engine::format::inode::{S_IFDIR, S_IFLNK, S_IFREG};
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::fs::dirent::{RENAME_EXCHANGE, RENAME_NOREPLACE};
use arborfs_engine::fs::extent::{FALLOC_KEEP_SIZE, FALLOC_PUNCH_HOLE};
use arborfs_engine::sys::{MemDevice, TryVec};
use arborfs_engine::{Error, Fs};
use common::*;

#[derive(Clone, Debug)]
enum Kind {
    File(Vec<u8>),
    Dir(BTreeMap<Vec<u8>, u64>),
    Symlink(Vec<u8>),
}

#[derive(Clone, Debug)]
struct MInode {
    kind: Kind,
    nlink: u32,
    parent: u64,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

struct Model {
    inodes: HashMap<u64, MInode>,
}

const NAMES: &[&[u8]] = &[b"a", b"b", b"c", b"dir", b"file.txt", b"\xc5\xbc\xc3\xb3\xc5\x82w", b"x y z"];

impl Model {
    fn new() -> Self {
        let mut inodes = HashMap::new();
        inodes.insert(
            ROOT_INO,
            MInode { kind: Kind::Dir(BTreeMap::new()), nlink: 2, parent: ROOT_INO, xattrs: BTreeMap::new() },
        );
        Model { inodes }
    }
    fn dir(&self, ino: u64) -> &BTreeMap<Vec<u8>, u64> {
        match &self.inodes[&ino].kind {
            Kind::Dir(d) => d,
            _ => panic!("not a dir"),
        }
    }
    fn dir_mut(&mut self, ino: u64) -> &mut BTreeMap<Vec<u8>, u64> {
        match &mut self.inodes.get_mut(&ino).unwrap().kind {
            Kind::Dir(d) => d,
            _ => panic!("not a dir"),
        }
    }
    fn is_dir(&self, ino: u64) -> bool {
        matches!(self.inodes[&ino].kind, Kind::Dir(_))
    }
    fn dirs(&self) -> Vec<u64> {
        let mut v: Vec<u64> =
            self.inodes.iter().filter(|(_, i)| matches!(i.kind, Kind::Dir(_))).map(|(k, _)| *k).collect();
        v.sort();
        v
    }
    fn files(&self) -> Vec<u64> {
        let mut v: Vec<u64> =
            self.inodes.iter().filter(|(_, i)| matches!(i.kind, Kind::File(_))).map(|(k, _)| *k).collect();
        v.sort();
        v
    }
    fn is_ancestor(&self, a: u64, mut d: u64) -> bool {
        loop {
            if d == a {
                return true;
            }
            if d == ROOT_INO {
                return false;
            }
            d = self.inodes[&d].parent;
        }
    }
    fn drop_link(&mut self, ino: u64) {
        let i = self.inodes.get_mut(&ino).unwrap();
        if matches!(i.kind, Kind::Dir(_)) {
            i.nlink = 0;
        } else {
            i.nlink -= 1;
        }
        if i.nlink == 0 {
            self.inodes.remove(&ino);
        }
    }
}

fn err_of<T>(r: &Result<T, Error>) -> Option<Error> {
    r.as_ref().err().copied()
}

fn check_file(fs: &mut Fs<MemDevice>, ino: u64, data: &[u8], ctx: &str) {
    let got = read_all(fs, ino).unwrap_or_else(|e| panic!("{ctx}: read {ino}: {e}"));
    assert_eq!(got.len(), data.len(), "{ctx}: size of {ino}");
    if got != data {
        let i = got.iter().zip(data).position(|(a, b)| a != b).unwrap();
        panic!("{ctx}: inode {ino} differs first at byte {i}");
    }
}

fn compare_tree(fs: &mut Fs<MemDevice>, m: &Model, ctx: &str) {
    for (&ino, mi) in &m.inodes {
        let a = fs.getattr(ino).unwrap_or_else(|e| panic!("{ctx}: getattr {ino}: {e}"));
        assert_eq!(a.inode.nlink, mi.nlink, "{ctx}: nlink of {ino}");
        match &mi.kind {
            Kind::File(d) => {
                assert_eq!(a.inode.mode & 0o170000, S_IFREG);
                check_file(fs, ino, d, ctx);
            }
            Kind::Symlink(t) => {
                assert_eq!(a.inode.mode & 0o170000, S_IFLNK);
                let mut v = TryVec::new();
                fs.readlink(ino, &mut v).unwrap();
                assert_eq!(&v[..], &t[..], "{ctx}");
            }
            Kind::Dir(children) => {
                assert_eq!(a.inode.mode & 0o170000, S_IFDIR);
                let mut got = BTreeMap::new();
                fs.readdir(ino, 0, &mut |name, target, _, _| {
                    got.insert(name.to_vec(), target);
                    true
                })
                .unwrap();
                assert_eq!(&got, children, "{ctx}: entries of {ino}");
            }
        }
        let mut names = TryVec::new();
        fs.listxattr(ino, &mut names).unwrap();
        let mut got: Vec<Vec<u8>> =
            names.split(|&b| b == 0).filter(|s| !s.is_empty()).map(|s| s.to_vec()).collect();
        got.sort();
        let want: Vec<Vec<u8>> = mi.xattrs.keys().cloned().collect();
        assert_eq!(got, want, "{ctx}: xattrs of {ino}");
    }
}

fn run(seed: u64, steps: usize, size: usize, node_size: u32) {
    let mut fs = mem_fs_with(size, &arborfs_engine::fs::FormatOptions { node_size, ..opts() });
    let mut m = Model::new();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        let dirs = m.dirs();
        let dir = dirs[rng.below(dirs.len() as u64) as usize];
        let name = NAMES[rng.below(NAMES.len() as u64) as usize];
        let op = rng.below(100);
        match op {
            0..=14 => {
                let r = fs.create(dir, name, S_IFREG | 0o644, 0, 0, 0);
                if m.dir(dir).contains_key(name) {
                    assert_eq!(err_of(&r), Some(Error::Exists), "{ctx}");
                } else {
                    let a = r.unwrap_or_else(|e| panic!("{ctx}: create: {e}"));
                    m.inodes.insert(
                        a.ino,
                        MInode { kind: Kind::File(vec![]), nlink: 1, parent: dir, xattrs: BTreeMap::new() },
                    );
                    m.dir_mut(dir).insert(name.to_vec(), a.ino);
                }
            }
            15..=20 => {
                let r = fs.mkdir(dir, name, 0o755, 0, 0);
                if m.dir(dir).contains_key(name) {
                    assert_eq!(err_of(&r), Some(Error::Exists), "{ctx}");
                } else {
                    let a = r.unwrap();
                    m.inodes.insert(
                        a.ino,
                        MInode {
                            kind: Kind::Dir(BTreeMap::new()),
                            nlink: 2,
                            parent: dir,
                            xattrs: BTreeMap::new(),
                        },
                    );
                    m.dir_mut(dir).insert(name.to_vec(), a.ino);
                    m.inodes.get_mut(&dir).unwrap().nlink += 1;
                }
            }
            21..=23 => {
                let mut target = vec![b't'; 1 + rng.below(200) as usize];
                rng.fill(&mut target[..1]);
                target[0] = b'/';
                let r = fs.symlink(dir, name, &target, 0, 0);
                if m.dir(dir).contains_key(name) {
                    assert_eq!(err_of(&r), Some(Error::Exists), "{ctx}");
                } else {
                    let a = r.unwrap();
                    m.inodes.insert(
                        a.ino,
                        MInode {
                            kind: Kind::Symlink(target),
                            nlink: 1,
                            parent: dir,
                            xattrs: BTreeMap::new(),
                        },
                    );
                    m.dir_mut(dir).insert(name.to_vec(), a.ino);
                }
            }
            24..=43 => {
                let files = m.files();
                if files.is_empty() {
                    continue;
                }
                let ino = files[rng.below(files.len() as u64) as usize];
                let off = if rng.below(4) == 0 { rng.below(3 << 20) } else { rng.below(300_000) };
                let cap = if rng.below(5) == 0 { 600_000 } else { 20_000 };
                let len = 1 + rng.below(cap) as usize;
                let mut data = vec![0u8; len];
                if rng.below(3) == 0 {
                    data.iter_mut().enumerate().for_each(|(i, b)| *b = (i / 100) as u8);
                } else {
                    rng.fill(&mut data);
                }
                fs.write(ino, off, &data).unwrap_or_else(|e| panic!("{ctx}: write: {e}"));
                if let Kind::File(d) = &mut m.inodes.get_mut(&ino).unwrap().kind {
                    let end = off as usize + len;
                    if d.len() < end {
                        d.resize(end, 0);
                    }
                    d[off as usize..end].copy_from_slice(&data);
                }
            }
            44..=49 => {
                let files = m.files();
                if files.is_empty() {
                    continue;
                }
                let ino = files[rng.below(files.len() as u64) as usize];
                let size = rng.below(400_000);
                fs.setattr(ino, &arborfs_engine::fs::SetAttr { size: Some(size), ..Default::default() })
                    .unwrap_or_else(|e| panic!("{ctx}: truncate: {e}"));
                if let Kind::File(d) = &mut m.inodes.get_mut(&ino).unwrap().kind {
                    d.resize(size as usize, 0);
                }
            }
            50..=54 => {
                let files = m.files();
                if files.is_empty() {
                    continue;
                }
                let ino = files[rng.below(files.len() as u64) as usize];
                let off = rng.below(300_000);
                let len = 1 + rng.below(100_000);
                fs.fallocate(ino, FALLOC_PUNCH_HOLE | FALLOC_KEEP_SIZE, off, len)
                    .unwrap_or_else(|e| panic!("{ctx}: punch: {e}"));
                if let Kind::File(d) = &mut m.inodes.get_mut(&ino).unwrap().kind {
                    let end = ((off + len) as usize).min(d.len());
                    if (off as usize) < end {
                        d[off as usize..end].fill(0);
                    }
                }
            }
            55..=64 => {
                let r = fs.unlink(dir, name);
                match m.dir(dir).get(name).copied() {
                    None => assert_eq!(err_of(&r), Some(Error::NotFound), "{ctx}"),
                    Some(t) if m.is_dir(t) => assert_eq!(err_of(&r), Some(Error::IsDir), "{ctx}"),
                    Some(t) => {
                        let a = r.unwrap();
                        if a.inode.nlink == 0 {
                            fs.evict(a.ino).unwrap();
                        }
                        m.dir_mut(dir).remove(name);
                        m.drop_link(t);
                    }
                }
            }
            65..=69 => {
                let r = fs.rmdir(dir, name);
                match m.dir(dir).get(name).copied() {
                    None => assert_eq!(err_of(&r), Some(Error::NotFound), "{ctx}"),
                    Some(t) if !m.is_dir(t) => assert_eq!(err_of(&r), Some(Error::NotDir), "{ctx}"),
                    Some(t) if !m.dir(t).is_empty() => assert_eq!(err_of(&r), Some(Error::NotEmpty), "{ctx}"),
                    Some(t) => {
                        r.unwrap();
                        fs.evict(t).unwrap();
                        m.dir_mut(dir).remove(name);
                        m.drop_link(t);
                        m.inodes.get_mut(&dir).unwrap().nlink -= 1;
                    }
                }
            }
            70..=74 => {
                let files = m.files();
                if files.is_empty() {
                    continue;
                }
                let ino = files[rng.below(files.len() as u64) as usize];
                let r = fs.link(ino, dir, name);
                if m.dir(dir).contains_key(name) {
                    assert_eq!(err_of(&r), Some(Error::Exists), "{ctx}");
                } else {
                    r.unwrap();
                    m.dir_mut(dir).insert(name.to_vec(), ino);
                    m.inodes.get_mut(&ino).unwrap().nlink += 1;
                }
            }
            75..=86 => {
                let dirs = m.dirs();
                let ndir = dirs[rng.below(dirs.len() as u64) as usize];
                let nname = NAMES[rng.below(NAMES.len() as u64) as usize];
                let flags = [0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE][rng.below(4) as usize];
                let r = fs.rename(dir, name, ndir, nname, flags, (0, 0));
                let src = m.dir(dir).get(name).copied();
                let dst = m.dir(ndir).get(nname).copied();
                let expect = match (src, dst) {
                    (None, _) => Err(Error::NotFound),
                    (Some(_), None) if flags == RENAME_EXCHANGE => Err(Error::NotFound),
                    (Some(_), Some(_)) if flags == RENAME_NOREPLACE => Err(Error::Exists),
                    (Some(s), Some(d)) if s == d => Ok(()),
                    (Some(s), _) if m.is_dir(s) && dir != ndir && m.is_ancestor(s, ndir) => {
                        Err(Error::Invalid)
                    }
                    (Some(_), Some(d))
                        if flags == RENAME_EXCHANGE
                            && m.is_dir(d)
                            && dir != ndir
                            && m.is_ancestor(d, dir) =>
                    {
                        Err(Error::Invalid)
                    }
                    (Some(s), Some(d)) if flags == 0 && m.is_dir(s) && !m.is_dir(d) => Err(Error::NotDir),
                    (Some(s), Some(d)) if flags == 0 && !m.is_dir(s) && m.is_dir(d) => Err(Error::IsDir),
                    (Some(_), Some(d)) if flags == 0 && m.is_dir(d) && !m.dir(d).is_empty() => {
                        Err(Error::NotEmpty)
                    }
                    _ => Ok(()),
                };
                match expect {
                    Err(e) => assert_eq!(err_of(&r), Some(e), "{ctx}: rename"),
                    Ok(()) => {
                        let orphan = r.unwrap_or_else(|e| {
                            panic!("{ctx}: rename {dir}/{name:?} -> {ndir}/{nname:?} {flags}: {e}")
                        });
                        let (s, d) = (src.unwrap(), dst);
                        if d == Some(s) {
                            continue;
                        }
                        if flags == RENAME_EXCHANGE {
                            let d = d.unwrap();
                            m.dir_mut(dir).insert(name.to_vec(), d);
                            m.dir_mut(ndir).insert(nname.to_vec(), s);
                            if dir != ndir {
                                if m.is_dir(s) {
                                    m.inodes.get_mut(&s).unwrap().parent = ndir;
                                    m.inodes.get_mut(&dir).unwrap().nlink -= 1;
                                    m.inodes.get_mut(&ndir).unwrap().nlink += 1;
                                }
                                if m.is_dir(d) {
                                    m.inodes.get_mut(&d).unwrap().parent = dir;
                                    m.inodes.get_mut(&ndir).unwrap().nlink -= 1;
                                    m.inodes.get_mut(&dir).unwrap().nlink += 1;
                                }
                            }
                        } else {
                            m.dir_mut(dir).remove(name);
                            if let Some(d) = d {
                                if m.is_dir(d) {
                                    m.inodes.get_mut(&ndir).unwrap().nlink -= 1;
                                }
                                m.drop_link(d);
                            }
                            m.dir_mut(ndir).insert(nname.to_vec(), s);
                            if m.is_dir(s) && dir != ndir {
                                m.inodes.get_mut(&s).unwrap().parent = ndir;
                                m.inodes.get_mut(&dir).unwrap().nlink -= 1;
                                m.inodes.get_mut(&ndir).unwrap().nlink += 1;
                            }
                        }
                        if let Some(o) = orphan {
                            fs.evict(o).unwrap();
                        }
                    }
                }
            }
            87..=92 => {
                let inos: Vec<u64> = {
                    let mut v: Vec<u64> = m.inodes.keys().copied().collect();
                    v.sort();
                    v
                };
                let ino = inos[rng.below(inos.len() as u64) as usize];
                let xname =
                    [&b"user.a"[..], b"user.b", b"trusted.t", b"security.selinux"][rng.below(4) as usize];
                if rng.below(3) == 0 {
                    let r = fs.removexattr(ino, xname);
                    if m.inodes.get_mut(&ino).unwrap().xattrs.remove(xname).is_some() {
                        r.unwrap();
                    } else {
                        assert_eq!(err_of(&r), Some(Error::NoData), "{ctx}");
                    }
                } else {
                    let mut v = vec![0u8; rng.below(300) as usize];
                    rng.fill(&mut v);
                    fs.setxattr(ino, xname, &v, 0).unwrap();
                    m.inodes.get_mut(&ino).unwrap().xattrs.insert(xname.to_vec(), v);
                }
            }
            93..=96 => {
                let files = m.files();
                if files.is_empty() {
                    continue;
                }
                let ino = files[rng.below(files.len() as u64) as usize];
                if let Kind::File(d) = &m.inodes[&ino].kind {
                    let off = rng.below(d.len() as u64 + 10);
                    let mut buf = vec![0u8; rng.below(70_000) as usize];
                    let n = fs.read(ino, off, &mut buf).unwrap();
                    let want = d.get(off as usize..).map(|s| &s[..s.len().min(buf.len())]).unwrap_or(&[]);
                    assert_eq!(&buf[..n], want, "{ctx}: read {ino} at {off}");
                }
            }
            97 => {
                fs = if rng.below(2) == 0 { reopen(fs) } else { reopen_small_cache(fs) };
            }
            _ => {
                compare_tree(&mut fs, &m, &ctx);
            }
        }
        if step % 500 == 499 {
            compare_tree(&mut fs, &m, &ctx);
            let p = fsck_problems(&mut fs);
            assert!(p.is_empty(), "{ctx}: fsck: {p:?}");
        }
    }
    let ctx = format!("seed {seed} end");
    compare_tree(&mut fs, &m, &ctx);
    let mut fs = reopen(fs);
    compare_tree(&mut fs, &m, &ctx);
    let p = fsck_problems(&mut fs);
    assert!(p.is_empty(), "{ctx}: fsck after reopen: {p:?}");
    eprintln!("seed {seed}: {} inodes, {:?}", m.inodes.len(), fs.stats());
}

#[test]
fn random_ops_tiny_nodes() {
    // 4 KiB nodes make deep trees: splits, merges and root changes all happen.
    run(3, 4000, 128 << 20, 4096);
}

#[test]
fn random_ops_seed_1() {
    run(1, 3000, 256 << 20, 0);
}

#[test]
fn random_ops_seed_2() {
    run(2, 3000, 256 << 20, 0);
}

#[test]
fn random_ops_small_device_many_seeds() {
    for seed in 10..16 {
        run(seed, 600, 48 << 20, 0);
    }
}
