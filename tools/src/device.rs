//! Opening member devices and turning engine errors into messages that name
//! the device.

use std::path::{Path, PathBuf};

use arborfs_engine::format::FormatError;
use arborfs_engine::sys::{FileDevice, TryVec};
use arborfs_engine::{Error, Fs, OpenOptions};

/// An error for the user: what went wrong, where.
#[derive(Debug)]
pub struct ToolError(pub String);

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Result of a tool step.
pub type ToolResult<T> = Result<T, ToolError>;

/// Describe an engine error, naming the member paths.
pub fn describe(e: &Error, paths: &[PathBuf]) -> String {
    let name = |dev: u8| {
        paths.get(usize::from(dev)).map_or_else(|| format!("device {dev}"), |p| p.display().to_string())
    };
    match e {
        Error::BadMetadata { what: "superblock", err: FormatError::BadMagic, dev, .. } => {
            format!("{}: not an arborfs file system (no superblock found)", name(*dev))
        }
        Error::BadMetadata { what: "superblock", err: FormatError::Truncated, dev, .. } => {
            format!("{}: too small to hold an arborfs file system", name(*dev))
        }
        Error::BadMetadata { what: "superblock", err: FormatError::UnsupportedVersion, dev, .. } => {
            format!("{}: made by a newer arborfs (unsupported format version)", name(*dev))
        }
        Error::BadMetadata { what, err, dev, offset } => {
            format!("{}: {err} in {what} at byte {offset}", name(*dev))
        }
        Error::BadNode { btree, why, dev, offset } => {
            format!("{}: bad {} b-tree node at byte {offset}: {why}", name(*dev), btree.name())
        }
        Error::Io { dev, offset } => format!("{}: I/O error at byte {offset}", name(*dev)),
        e => e.to_string(),
    }
}

/// Open every path as a member device.
pub fn open_devices(paths: &[PathBuf], writable: bool) -> ToolResult<TryVec<FileDevice>> {
    let mut devs = TryVec::new();
    for (i, p) in paths.iter().enumerate() {
        let mut d = FileDevice::open(p, writable).map_err(|e| {
            let why = if e.raw_os_error() == Some(nix::libc::EBUSY) {
                "device is busy (mounted?)".to_string()
            } else {
                e.to_string()
            };
            ToolError(format!("{}: {why}", p.display()))
        })?;
        d.set_index(i as u8);
        devs.try_push(d).map_err(|_| ToolError("out of memory".into()))?;
    }
    Ok(devs)
}

/// Open the file system on `paths`.
pub fn open_fs(paths: &[PathBuf], opts: &OpenOptions) -> ToolResult<Fs<FileDevice>> {
    let devs = open_devices(paths, !opts.read_only)?;
    Fs::open(devs, opts).map_err(|e| ToolError(describe(&e, paths)))
}

/// Parse a size such as `4096`, `64k`, `16M`, `2G`, `1T` (also `16MiB`,
/// `16MB`: powers of two all the same, as mkfs tools take them).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_lowercase() {
                'k' => 1 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                _ => return Err(format!("unknown size suffix in {s:?} (use k, M, G or T)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    n.checked_mul(mult).ok_or_else(|| format!("size too large: {s:?}"))
}

/// Where and how `path` is mounted, if it is: a block device by its device
/// number, an image file through the loop device that backs onto it.
/// Returns (mount point, read-only).
pub fn mount_state(path: &Path) -> Option<(String, bool)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).ok()?;
    let mut devs: Vec<u64> = Vec::new();
    if meta.file_type().is_block_device() {
        devs.push(meta.rdev());
    } else if meta.is_file() {
        let me = std::fs::canonicalize(path).ok()?;
        for e in std::fs::read_dir("/sys/block").ok()?.flatten() {
            let backing = e.path().join("loop/backing_file");
            let Ok(b) = std::fs::read_to_string(&backing) else { continue };
            if Path::new(b.trim()) == me {
                let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
                let (ma, mi) = dev.trim().split_once(':')?;
                devs.push(nix::sys::stat::makedev(ma.parse().ok()?, mi.parse().ok()?));
            }
        }
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (Some(id), Some(point), Some(opts)) = (f.get(2), f.get(4), f.get(5)) else { continue };
        for &d in &devs {
            if *id == format!("{}:{}", nix::sys::stat::major(d), nix::sys::stat::minor(d)) {
                return Some((point.to_string(), opts.split(',').any(|o| o == "ro")));
            }
        }
    }
    None
}

/// 16 random bytes from the kernel.
pub fn random_bytes() -> [u8; 16] {
    use std::io::Read;
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b
}

/// A UUID in the usual text form.
pub fn uuid_str(u: &[u8; 16]) -> String {
    let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..].concat()
    )
}

/// Whether `p` is a block device.
pub fn is_block_device(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).map(|m| m.file_type().is_block_device()).unwrap_or(false)
}
