//! `arborfs restore`: copy the whole tree out of an unmounted file system,
//! best effort on a damaged one: what cannot be read is reported and skipped.
//!
//! Everything is created beneath the destination only, whatever the image
//! says: every file is made relative to a directory descriptor this run
//! opened itself (`mkdirat`, `openat` with `O_CREAT | O_EXCL | O_NOFOLLOW`,
//! `symlinkat`, `mknodat`), attributes go through the new file's own
//! descriptor or with `AT_SYMLINK_NOFOLLOW`, and no path from the image is
//! ever resolved. A name that already exists (two entries with one name, or
//! something already in the destination) is restored under another name
//! and reported, never followed or overwritten. Each directory is restored
//! once: a second name for it, or an entry leading back to an ancestor (a
//! cycle), is reported and skipped, so a damaged image cannot make restore
//! loop.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use arborfs_engine::format::dirent::valid_name;
use arborfs_engine::format::inode::{
    decode_dev, Inode, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::sys::{FileDevice, TryVec};
use arborfs_engine::{Fs, OpenOptions};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::device::{describe, open_fs};

/// Options of `arborfs restore`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print each path as it is restored.
    #[arg(short, long)]
    verbose: bool,
    /// Member devices, then the destination directory.
    #[arg(required = true, num_args = 2..)]
    paths: Vec<PathBuf>,
}

/// Directories nested deeper than this are reported and skipped: each level
/// holds one open descriptor.
const MAX_DEPTH: usize = 4096;

/// Where a restored file is: its parent directory's path beneath the
/// destination, as components, and its name.
#[derive(Clone)]
struct Placed {
    parent: Vec<Vec<u8>>,
    name: Vec<u8>,
}

struct Restorer<'a> {
    fs: &'a mut Fs<FileDevice>,
    devices: &'a [PathBuf],
    /// The destination directory, opened once; everything is beneath it.
    root: OwnedFd,
    /// Where each multiply linked file was first restored.
    links: HashMap<u64, Placed>,
    /// Directories restored (or being restored), by inode.
    dirs: HashMap<u64, String>,
    max_depth: usize,
    failures: u64,
    restored: u64,
    verbose: bool,
    progress: crate::progress::Progress,
    /// Inodes in the file system, for the progress bar.
    total: u64,
}

fn ts(ns: i64) -> Timespec {
    Timespec { tv_sec: ns.div_euclid(1_000_000_000), tv_nsec: ns.rem_euclid(1_000_000_000) }
}

fn times(inode: &Inode) -> Timestamps {
    Timestamps { last_access: ts(inode.atime), last_modification: ts(inode.mtime) }
}

fn show(parent: &[Vec<u8>], name: &[u8]) -> String {
    let mut s = String::new();
    for c in parent.iter().map(Vec::as_slice).chain(std::iter::once(name)) {
        if !s.is_empty() {
            s.push('/');
        }
        s.push_str(&String::from_utf8_lossy(c));
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// A name that is not taken in `dir`, derived from `name` and `ino`.
fn free_name(dir: &OwnedFd, name: &[u8], ino: u64) -> Option<Vec<u8>> {
    for n in 0..1000u32 {
        let mut alt = name.to_vec();
        alt.truncate(200);
        alt.extend_from_slice(format!(".arborfs-dup-{ino}").as_bytes());
        if n > 0 {
            alt.extend_from_slice(format!("-{n}").as_bytes());
        }
        match rustix::fs::statat(dir, OsStr::from_bytes(&alt), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Some(alt),
            _ => continue,
        }
    }
    None
}

/// Open a directory beneath `root` by components, following no symlink.
fn open_beneath(root: &OwnedFd, comps: &[Vec<u8>]) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = rustix::fs::openat(root, ".", flags, Mode::empty())?;
    for c in comps {
        fd = rustix::fs::openat(&fd, OsStr::from_bytes(c), flags, Mode::empty())?;
    }
    Ok(fd)
}

/// A file that could not be created under its own name is tried again under
/// another (reported); any other error ends the attempt.
enum Made {
    Dir(OwnedFd),
    File(File),
    /// Symlinks, device nodes, fifos and sockets: no descriptor.
    Other,
    /// A hard link to a file restored earlier: nothing more to set.
    Link,
}

impl Restorer<'_> {
    fn fail(&mut self, path: &str, what: impl std::fmt::Display) {
        self.progress.finish();
        eprintln!("arborfs restore: {path}: {what}");
        self.failures += 1;
    }

    /// Restore the entries of directory `dir` into `fd`, whose path beneath
    /// the destination is `comps`.
    fn restore_dir(&mut self, dir: u64, fd: &OwnedFd, comps: &mut Vec<Vec<u8>>) {
        let mut entries: Vec<(Vec<u8>, u64)> = Vec::new();
        let r = self.fs.readdir(dir, 0, &mut |name, ino, _, _| {
            entries.push((name.to_vec(), ino));
            true
        });
        if let Err(e) = r {
            let msg = describe(&e, self.devices);
            self.fail(&show(comps, b""), format!("directory partly unreadable: {msg}"));
        }
        for (name, ino) in entries {
            self.restore_one(ino, fd, comps, &name);
        }
    }

    fn restore_one(&mut self, ino: u64, dirfd: &OwnedFd, comps: &mut Vec<Vec<u8>>, name: &[u8]) {
        let path = show(comps, name);
        if !valid_name(name) {
            return self.fail(&path, "invalid name in a directory entry, skipped");
        }
        let inode = match self.fs.getattr(ino) {
            Ok(a) => a.inode,
            Err(e) => {
                let msg = describe(&e, self.devices);
                return self.fail(&path, format!("inode {ino} unreadable: {msg}"));
            }
        };
        if inode.is_dir() {
            if let Some(first) = self.dirs.get(&ino) {
                let first = first.clone();
                return self.fail(
                    &path,
                    format!(
                        "directory {ino} already restored at {first} (a second name or a cycle), skipped"
                    ),
                );
            }
            if comps.len() >= self.max_depth {
                return self.fail(&path, "directories nested too deep, skipped");
            }
            self.dirs.insert(ino, path.clone());
        }
        let mut name = name.to_vec();
        let made = loop {
            match self.make(ino, &inode, dirfd, comps, &name) {
                Ok(m) => break m,
                Err(Errno::EXIST) => {
                    let Some(alt) = free_name(dirfd, &name, ino) else {
                        return self.fail(&path, "name taken and no other name free, skipped");
                    };
                    self.fail(
                        &path,
                        format!("name already taken, restored as {}", String::from_utf8_lossy(&alt)),
                    );
                    name = alt;
                }
                Err(e) => return self.fail(&path, e),
            }
        };
        let path = show(comps, &name);
        if self.verbose {
            println!("{path}");
        }
        self.restored += 1;
        self.progress.update("restore", self.restored, self.total);
        self.progress.message(&path);
        match made {
            Made::Link => {}
            Made::Dir(fd) => {
                comps.push(name.clone());
                self.restore_dir(ino, &fd, comps);
                comps.pop();
                self.set_attrs_fd(ino, &inode, fd.as_fd(), &path);
            }
            Made::File(f) => {
                if inode.nlink > 1 {
                    self.links.insert(ino, Placed { parent: comps.clone(), name: name.clone() });
                }
                self.restore_data(ino, &inode, &f, &path);
                self.set_attrs_fd(ino, &inode, f.as_fd(), &path);
            }
            Made::Other => {
                if inode.nlink > 1 && !inode.is_symlink() {
                    self.links.insert(ino, Placed { parent: comps.clone(), name: name.clone() });
                }
                self.set_attrs_at(ino, &inode, dirfd, &name, &path);
            }
        }
    }

    /// Create `name` in `dirfd` as inode `ino`; never follows or replaces
    /// what is there (EEXIST).
    fn make(
        &mut self,
        ino: u64,
        inode: &Inode,
        dirfd: &OwnedFd,
        comps: &[Vec<u8>],
        name: &[u8],
    ) -> Result<Made, Errno> {
        let n = OsStr::from_bytes(name);
        if inode.nlink > 1 && !inode.is_dir() {
            if let Some(first) = self.links.get(&ino).cloned() {
                let linked = open_beneath(&self.root, &first.parent).and_then(|pfd| {
                    rustix::fs::linkat(&pfd, OsStr::from_bytes(&first.name), dirfd, n, AtFlags::empty())
                });
                match linked {
                    Ok(()) => return Ok(Made::Link),
                    Err(Errno::EXIST) => return Err(Errno::EXIST),
                    // The first copy is gone or cannot be linked (another
                    // file system?): restore this name as a copy instead.
                    Err(e) => {
                        let first = show(&first.parent, &first.name);
                        self.fail(&show(comps, name), format!("hard link to {first}: {e}; copied instead"));
                    }
                }
            }
        }
        let perm = Mode::from_bits_truncate(inode.mode & 0o7777);
        match inode.mode & S_IFMT {
            S_IFDIR => {
                // Writable for us until its contents are in; its mode is set last.
                rustix::fs::mkdirat(dirfd, n, Mode::RWXU)?;
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                Ok(Made::Dir(rustix::fs::openat(dirfd, n, flags, Mode::empty())?))
            }
            S_IFREG => {
                let flags =
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                Ok(Made::File(File::from(rustix::fs::openat(dirfd, n, flags, Mode::RUSR | Mode::WUSR)?)))
            }
            S_IFLNK => {
                let mut t = TryVec::new();
                if let Err(e) = self.fs.readlink(ino, &mut t) {
                    self.fail(&show(comps, name), format!("symlink target: {}", describe(&e, self.devices)));
                    return Err(Errno::IO);
                }
                rustix::fs::symlinkat(OsStr::from_bytes(&t), dirfd, n)?;
                Ok(Made::Other)
            }
            t @ (S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK) => {
                let kind = match t {
                    S_IFCHR => FileType::CharacterDevice,
                    S_IFBLK => FileType::BlockDevice,
                    S_IFIFO => FileType::Fifo,
                    _ => FileType::Socket,
                };
                let (ma, mi) = decode_dev(inode.rdev);
                rustix::fs::mknodat(dirfd, n, kind, perm, rustix::fs::makedev(ma, mi))?;
                Ok(Made::Other)
            }
            _ => {
                self.fail(&show(comps, name), format!("unknown file type {:o}", inode.mode & S_IFMT));
                Err(Errno::INVAL)
            }
        }
    }

    fn restore_data(&mut self, ino: u64, inode: &Inode, f: &File, path: &str) {
        use std::os::unix::fs::FileExt;
        let mut ranges = Vec::new();
        let r = self.fs.map_extents(ino, 0, &mut |m| {
            if !m.unwritten {
                ranges.push((m.start, m.end));
            }
            true
        });
        if let Err(e) = r {
            let msg = describe(&e, self.devices);
            self.fail(path, format!("extent list partly unreadable: {msg}"));
        }
        let mut buf = vec![0u8; 1 << 20];
        let mut bad = 0u64;
        for (s, e) in ranges {
            let e = e.min(inode.size);
            let mut off = s;
            while off < e {
                let n = ((e - off) as usize).min(buf.len());
                match self.fs.read(ino, off, &mut buf[..n]) {
                    Ok(got) => {
                        if let Err(e) = f.write_all_at(&buf[..got], off) {
                            return self.fail(path, e);
                        }
                    }
                    Err(err) => {
                        // Keep going so one bad extent costs only itself.
                        eprintln!(
                            "arborfs restore: {path}: bytes {off}..{} unreadable: {}",
                            off + n as u64,
                            describe(&err, self.devices)
                        );
                        bad += 1;
                    }
                }
                off += n as u64;
            }
        }
        if let Err(e) = f.set_len(inode.size) {
            self.fail(path, e);
        }
        if bad > 0 {
            self.failures += 1;
        }
    }

    fn xattrs(&mut self, ino: u64, path: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut pairs = Vec::new();
        let r = self.fs.xattr_walk(ino, &mut |ns, name, value| {
            let mut full = ns.prefix().to_vec();
            full.extend_from_slice(name);
            pairs.push((full, value.to_vec()));
            Ok(())
        });
        if let Err(e) = r {
            let msg = describe(&e, self.devices);
            self.fail(path, format!("extended attributes partly unreadable: {msg}"));
        }
        pairs
    }

    /// Owner, xattrs, mode and times of a file or directory, through its
    /// own descriptor (owner first: chown clears set-id bits).
    fn set_attrs_fd(&mut self, ino: u64, inode: &Inode, fd: std::os::fd::BorrowedFd<'_>, path: &str) {
        for (name, value) in self.xattrs(ino, path) {
            if let Err(e) = rustix::fs::fsetxattr(fd, OsStr::from_bytes(&name), &value, XattrFlags::empty()) {
                self.fail(path, format!("xattr {}: {e}", String::from_utf8_lossy(&name)));
            }
        }
        let (uid, gid) = self.ids(inode, path);
        if let Err(e) = rustix::fs::fchown(fd, uid, gid) {
            self.fail(path, format!("chown: {e}"));
        }
        if let Err(e) = rustix::fs::fchmod(fd, Mode::from_bits_truncate(inode.mode & 0o7777)) {
            self.fail(path, format!("chmod: {e}"));
        }
        if let Err(e) = rustix::fs::futimens(fd, &times(inode)) {
            self.fail(path, format!("times: {e}"));
        }
    }

    /// Owner, xattrs and times of a symlink, device node, fifo or socket,
    /// by name in `dirfd` without following it (their mode was set when
    /// they were made).
    fn set_attrs_at(&mut self, ino: u64, inode: &Inode, dirfd: &OwnedFd, name: &[u8], path: &str) {
        let n = OsStr::from_bytes(name);
        if !inode.is_symlink() {
            // There is no setxattr relative to a directory descriptor before
            // Linux 6.13: name the file through the descriptor's /proc link,
            // without following the last component.
            let mut via = format!("/proc/self/fd/{}/", dirfd.as_raw_fd()).into_bytes();
            via.extend_from_slice(name);
            for (xname, value) in self.xattrs(ino, path) {
                let r = rustix::fs::lsetxattr(
                    OsStr::from_bytes(&via),
                    OsStr::from_bytes(&xname),
                    &value,
                    XattrFlags::empty(),
                );
                if let Err(e) = r {
                    self.fail(path, format!("xattr {}: {e}", String::from_utf8_lossy(&xname)));
                }
            }
        }
        let (uid, gid) = self.ids(inode, path);
        if let Err(e) = rustix::fs::chownat(dirfd, n, uid, gid, AtFlags::SYMLINK_NOFOLLOW) {
            self.fail(path, format!("chown: {e}"));
        }
        if let Err(e) = rustix::fs::utimensat(dirfd, n, &times(inode), AtFlags::SYMLINK_NOFOLLOW) {
            self.fail(path, format!("times: {e}"));
        }
    }

    /// The owner and group to give a file. An id of 2^32 - 1 is no id
    /// (Linux reserves it: chown takes it as "leave unchanged"), so only a
    /// damaged image holds one: it is reported and not set.
    fn ids(&mut self, inode: &Inode, path: &str) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
        if inode.uid == u32::MAX || inode.gid == u32::MAX {
            self.fail(
                path,
                format!("owner {}:{} holds the reserved id {}: not set", inode.uid, inode.gid, u32::MAX),
            );
        }
        (
            (inode.uid != u32::MAX).then(|| rustix::fs::Uid::from_raw(inode.uid)),
            (inode.gid != u32::MAX).then(|| rustix::fs::Gid::from_raw(inode.gid)),
        )
    }
}

/// Let each level of directories hold a descriptor: raise the soft limit on
/// open files as far as the hard limit allows; returns the depth it permits.
fn depth_limit() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if let Some(max) = lim.maximum {
        let want = max.min(MAX_DEPTH as u64 + 256);
        if lim.current.is_some_and(|c| c < want) {
            lim.current = Some(want);
            let _ = setrlimit(Resource::Nofile, lim);
        }
    }
    let cur = getrlimit(Resource::Nofile).current.unwrap_or(MAX_DEPTH as u64 + 256);
    (cur.saturating_sub(64) as usize).clamp(16, MAX_DEPTH)
}

/// Run `arborfs restore`.
pub fn run(a: &Args) -> ExitCode {
    let (dest, devices) = match a.paths.split_last() {
        Some(x) => x,
        None => return ExitCode::FAILURE,
    };
    let mut fs = match open_fs(devices, &OpenOptions { read_only: true, check: true, ..Default::default() }) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("arborfs restore: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::create_dir_all(dest) {
        eprintln!("arborfs restore: {}: {e}", dest.display());
        return ExitCode::FAILURE;
    }
    let root = match rustix::fs::open(
        Path::new(dest),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("arborfs restore: {}: {e}", dest.display());
            return ExitCode::FAILURE;
        }
    };
    // Modes given to mknodat and mkdirat are the image's, not the umask's.
    rustix::process::umask(Mode::empty());
    let mut r = Restorer {
        fs: &mut fs,
        devices,
        root,
        links: HashMap::new(),
        dirs: HashMap::new(),
        max_depth: depth_limit(),
        failures: 0,
        restored: 0,
        verbose: a.verbose,
        progress: crate::progress::Progress::new(&dest.display().to_string(), "files", a.verbose, None),
        total: 0,
    };
    r.total = r.fs.counters().inodes;
    r.dirs.insert(ROOT_INO, ".".into());
    let root_fd = match r.root.try_clone() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("arborfs restore: {}: {e}", dest.display());
            return ExitCode::FAILURE;
        }
    };
    r.restore_dir(ROOT_INO, &root_fd, &mut Vec::new());
    if let Ok(root) = r.fs.getattr(ROOT_INO) {
        r.set_attrs_fd(ROOT_INO, &root.inode, root_fd.as_fd(), ".");
    }
    r.progress.finish();
    let (restored, failures) = (r.restored, r.failures);
    println!("arborfs restore: {restored} files restored to {}, {failures} problems", dest.display());
    if failures > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
