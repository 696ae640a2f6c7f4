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

/// Parse a size such as `4096`, `64k`, `16M`, `2G`, `1T`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_lowercase() {
                'k' => 1 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                _ => return Err(format!("unknown size suffix in {s:?} (use k, M, G or T)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    n.checked_mul(mult).ok_or_else(|| format!("size too large: {s:?}"))
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
