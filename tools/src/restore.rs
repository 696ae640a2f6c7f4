//! `arborfs restore`: copy the whole tree out of an unmounted file system,
//! best effort on a damaged one: what cannot be read is reported and skipped.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use arborfs_engine::format::inode::{
    decode_dev, Inode, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::sys::{FileDevice, TryVec};
use arborfs_engine::{Fs, OpenOptions};
use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

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

struct Restorer<'a> {
    fs: &'a mut Fs<FileDevice>,
    devices: &'a [PathBuf],
    /// Inodes with several links -> first restored path.
    links: HashMap<u64, PathBuf>,
    failures: u64,
    restored: u64,
    verbose: bool,
}

fn ts(ns: i64) -> TimeSpec {
    TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
}

impl Restorer<'_> {
    fn fail(&mut self, path: &Path, what: impl std::fmt::Display) {
        eprintln!("arborfs restore: {}: {what}", path.display());
        self.failures += 1;
    }

    fn restore_dir(&mut self, dir: u64, dest: &Path) {
        let mut entries: Vec<(Vec<u8>, u64)> = Vec::new();
        let r = self.fs.readdir(dir, 0, &mut |name, ino, _, _| {
            entries.push((name.to_vec(), ino));
            true
        });
        if let Err(e) = r {
            let msg = describe(&e, self.devices);
            self.fail(dest, format!("directory partly unreadable: {msg}"));
        }
        for (name, ino) in entries {
            let path = dest.join(OsStr::from_bytes(&name));
            self.restore_one(ino, &path);
        }
    }

    fn restore_one(&mut self, ino: u64, path: &Path) {
        let inode = match self.fs.getattr(ino) {
            Ok(a) => a.inode,
            Err(e) => {
                let msg = describe(&e, self.devices);
                return self.fail(path, format!("inode {ino} unreadable: {msg}"));
            }
        };
        if inode.nlink > 1 && !inode.is_dir() {
            if let Some(first) = self.links.get(&ino).cloned() {
                if let Err(e) = std::fs::hard_link(&first, path) {
                    self.fail(path, e);
                }
                return;
            }
            self.links.insert(ino, path.to_path_buf());
        }
        if self.verbose {
            println!("{}", path.display());
        }
        let made = match inode.mode & S_IFMT {
            S_IFDIR => std::fs::create_dir(path).map_err(|e| e.to_string()),
            S_IFREG => self.restore_file(ino, &inode, path),
            S_IFLNK => {
                let mut t = TryVec::new();
                match self.fs.readlink(ino, &mut t) {
                    Ok(()) => {
                        std::os::unix::fs::symlink(OsStr::from_bytes(&t), path).map_err(|e| e.to_string())
                    }
                    Err(e) => Err(describe(&e, self.devices)),
                }
            }
            t @ (S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK) => {
                let kind = match t {
                    S_IFCHR => SFlag::S_IFCHR,
                    S_IFBLK => SFlag::S_IFBLK,
                    S_IFIFO => SFlag::S_IFIFO,
                    _ => SFlag::S_IFSOCK,
                };
                let (ma, mi) = decode_dev(inode.rdev);
                mknod(
                    path,
                    kind,
                    Mode::from_bits_truncate(inode.mode & 0o7777),
                    makedev(ma.into(), mi.into()),
                )
                .map_err(|e| e.to_string())
            }
            _ => Err("unknown file type".into()),
        };
        if let Err(e) = made {
            return self.fail(path, e);
        }
        self.restored += 1;
        if inode.is_dir() {
            self.restore_dir(ino, path);
        }
        self.restore_attrs(ino, &inode, path);
    }

    fn restore_file(&mut self, ino: u64, inode: &Inode, path: &Path) -> Result<(), String> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(path).map_err(|e| e.to_string())?;
        let mut ranges = Vec::new();
        self.fs
            .map_extents(ino, 0, &mut |s, e, unwritten| {
                if !unwritten {
                    ranges.push((s, e));
                }
                true
            })
            .map_err(|e| describe(&e, self.devices))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut bad = 0u64;
        for (s, e) in ranges {
            let e = e.min(inode.size);
            let mut off = s;
            while off < e {
                let n = ((e - off) as usize).min(buf.len());
                match self.fs.read(ino, off, &mut buf[..n]) {
                    Ok(got) => f.write_all_at(&buf[..got], off).map_err(|e| e.to_string())?,
                    Err(err) => {
                        // Keep going block by block so one bad extent costs only itself.
                        eprintln!(
                            "arborfs restore: {}: bytes {off}..{} unreadable: {}",
                            path.display(),
                            off + n as u64,
                            describe(&err, self.devices)
                        );
                        bad += 1;
                    }
                }
                off += n as u64;
            }
        }
        f.set_len(inode.size).map_err(|e| e.to_string())?;
        if bad > 0 {
            self.failures += 1;
        }
        Ok(())
    }

    fn restore_attrs(&mut self, ino: u64, inode: &Inode, path: &Path) {
        let is_link = inode.is_symlink();
        if !is_link {
            let mut pairs = Vec::new();
            let _ = self.fs.xattr_walk(ino, &mut |ns, name, value| {
                let mut full = ns.prefix().to_vec();
                full.extend_from_slice(name);
                pairs.push((full, value.to_vec()));
                Ok(())
            });
            for (name, value) in pairs {
                if let Err(e) = xattr::set(path, OsStr::from_bytes(&name), &value) {
                    self.fail(path, format!("xattr {}: {e}", String::from_utf8_lossy(&name)));
                }
            }
        }
        if let Err(e) = std::os::unix::fs::lchown(path, Some(inode.uid), Some(inode.gid)) {
            self.fail(path, format!("chown: {e}"));
        }
        if !is_link {
            use std::os::unix::fs::PermissionsExt;
            if let Err(e) =
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(inode.mode & 0o7777))
            {
                self.fail(path, format!("chmod: {e}"));
            }
        }
        if let Err(e) =
            utimensat(None, path, &ts(inode.atime), &ts(inode.mtime), UtimensatFlags::NoFollowSymlink)
        {
            self.fail(path, format!("times: {e}"));
        }
    }
}

/// Run `arborfs restore`.
pub fn run(a: &Args) -> ExitCode {
    let (dest, devices) = match a.paths.split_last() {
        Some(x) => x,
        None => return ExitCode::FAILURE,
    };
    if let Err(e) = std::fs::create_dir_all(dest) {
        eprintln!("arborfs restore: {}: {e}", dest.display());
        return ExitCode::FAILURE;
    }
    let mut fs = match open_fs(devices, &OpenOptions { read_only: true, ..Default::default() }) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("arborfs restore: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut r = Restorer {
        fs: &mut fs,
        devices,
        links: HashMap::new(),
        failures: 0,
        restored: 0,
        verbose: a.verbose,
    };
    r.restore_dir(ROOT_INO, dest);
    if let Ok(root) = r.fs.getattr(ROOT_INO) {
        r.restore_attrs(ROOT_INO, &root.inode, dest);
    }
    let (restored, failures) = (r.restored, r.failures);
    println!("arborfs restore: {restored} files restored to {}, {failures} problems", dest.display());
    if failures > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
