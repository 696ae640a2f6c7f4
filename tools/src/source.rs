//! `format --source DIR`: copy a directory tree into a new file system with
//! contents (holes kept), modes, owners, times, hard links, symlinks, device
//! nodes, fifos, sockets and extended attributes.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use arborfs_engine::format::inode::{encode_dev, S_IFMT};
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::fs::SetAttr;
use arborfs_engine::sys::FileDevice;
use arborfs_engine::Fs;
use nix::unistd::{lseek, Whence};

struct Copier<'a> {
    fs: &'a mut Fs<FileDevice>,
    /// (st_dev, st_ino) of multiply linked files -> arborfs inode.
    links: HashMap<(u64, u64), u64>,
    files: u64,
    bytes: u64,
    progress: crate::progress::Progress,
    total: u64,
}

/// Entries under `dir`, for the progress bar (unreadable ones not counted).
fn count_entries(dir: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            n += 1;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    n
}

fn ns(sec: i64, nsec: i64) -> i64 {
    sec.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// Copy the tree under `src` into the root of `fs`.
pub fn copy_tree(fs: &mut Fs<FileDevice>, src: &Path, quiet: bool) -> Result<(), String> {
    let progress = crate::progress::Progress::new(&src.display().to_string(), "files", quiet, None);
    let total = if quiet { 0 } else { count_entries(src) };
    let mut c = Copier { fs, links: HashMap::new(), files: 0, bytes: 0, progress, total };
    let meta = std::fs::symlink_metadata(src).map_err(|e| format!("{}: {e}", src.display()))?;
    c.copy_dir(src, ROOT_INO)?;
    c.copy_attrs(src, ROOT_INO, &meta)?;
    c.progress.finish();
    if !quiet {
        println!("arborfs: copied {} files, {} MiB from {}", c.files, c.bytes >> 20, src.display());
    }
    Ok(())
}

impl Copier<'_> {
    fn err(&self, p: &Path, e: impl std::fmt::Display) -> String {
        format!("{}: {e}", p.display())
    }

    fn copy_dir(&mut self, dir: &Path, ino: u64) -> Result<(), String> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| self.err(dir, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(dir, e))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let name = e.file_name();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| self.err(&path, e))?;
            let ft = meta.file_type();
            let key = (meta.dev(), meta.ino());
            if !ft.is_dir() && meta.nlink() > 1 {
                if let Some(&target) = self.links.get(&key) {
                    self.fs.link(target, ino, name.as_bytes()).map_err(|e| self.err(&path, e))?;
                    continue;
                }
            }
            let (uid, gid) = (meta.uid(), meta.gid());
            let child = if ft.is_dir() {
                let a = self
                    .fs
                    .mkdir(ino, name.as_bytes(), meta.mode(), uid, gid)
                    .map_err(|e| self.err(&path, e))?;
                self.copy_dir(&path, a.ino)?;
                a.ino
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&path).map_err(|e| self.err(&path, e))?;
                self.fs
                    .symlink(ino, name.as_bytes(), t.as_os_str().as_bytes(), uid, gid)
                    .map_err(|e| self.err(&path, e))?
                    .ino
            } else {
                let rdev = if ft.is_block_device() || ft.is_char_device() {
                    let r = meta.rdev();
                    encode_dev(nix::sys::stat::major(r) as u32, nix::sys::stat::minor(r) as u32)
                } else {
                    0
                };
                let a = self
                    .fs
                    .create(ino, name.as_bytes(), meta.mode() & (S_IFMT | 0o7777), uid, gid, rdev)
                    .map_err(|e| self.err(&path, e))?;
                if ft.is_file() {
                    self.copy_data(&path, a.ino, meta.len())?;
                }
                a.ino
            };
            self.files += 1;
            self.progress.update("copy", self.files, self.total);
            self.progress.message(&path.display().to_string());
            if !ft.is_dir() && meta.nlink() > 1 {
                self.links.insert(key, child);
            }
            self.copy_attrs(&path, child, &meta)?;
        }
        Ok(())
    }

    /// Copy file contents, skipping holes.
    fn copy_data(&mut self, path: &Path, ino: u64, size: u64) -> Result<(), String> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(path).map_err(|e| self.err(path, e))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = 0u64;
        while pos < size {
            let data = match lseek(f.as_raw_fd(), pos as i64, Whence::SeekData) {
                Ok(d) => d as u64,
                Err(nix::errno::Errno::ENXIO) => break,
                Err(_) => pos, // no SEEK_DATA support: copy everything
            };
            let hole = match lseek(f.as_raw_fd(), data as i64, Whence::SeekHole) {
                Ok(h) => (h as u64).min(size),
                Err(_) => size,
            };
            let mut off = data;
            while off < hole {
                let n = ((hole - off) as usize).min(buf.len());
                f.read_exact_at(&mut buf[..n], off).map_err(|e| self.err(path, e))?;
                self.fs.write(ino, off, &buf[..n]).map_err(|e| self.err(path, e))?;
                off += n as u64;
                self.bytes += n as u64;
            }
            pos = hole.max(data + 1);
        }
        let cur = self.fs.getattr(ino).map_err(|e| self.err(path, e))?.inode.size;
        if cur != size {
            self.fs
                .setattr(ino, &SetAttr { size: Some(size), ..Default::default() })
                .map_err(|e| self.err(path, e))?;
        }
        Ok(())
    }

    fn copy_attrs(&mut self, path: &Path, ino: u64, meta: &std::fs::Metadata) -> Result<(), String> {
        if !meta.file_type().is_symlink() {
            if let Ok(names) = xattr::list(path) {
                for n in names {
                    if let Ok(Some(v)) = xattr::get(path, &n) {
                        self.fs
                            .setxattr(ino, n.as_bytes(), &v, 0)
                            .map_err(|e| self.err(path, format!("xattr {n:?}: {e}")))?;
                    }
                }
            }
        }
        let set = SetAttr {
            mode: Some(meta.mode() & 0o7777),
            uid: Some(meta.uid()),
            gid: Some(meta.gid()),
            atime: Some(ns(meta.atime(), meta.atime_nsec())),
            mtime: Some(ns(meta.mtime(), meta.mtime_nsec())),
            ctime: Some(ns(meta.ctime(), meta.ctime_nsec())),
            ..Default::default()
        };
        self.fs.setattr(ino, &set).map_err(|e| self.err(path, e))?;
        Ok(())
    }
}
