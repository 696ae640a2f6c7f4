//! The images mutations start from: small file systems made through the
//! engine with every kind of object in them (directories several levels
//! deep and wide enough for several leaves, hard links, symlinks, some
//! pointing out of the tree, xattrs, device nodes, a fifo, sparse and
//! compressed data, an orphan), in several encodings, one with its last
//! changes only in the journal.

use std::path::Path;

use arborfs_engine::format::checksum::ChecksumType;
use arborfs_engine::format::extent::Compression;
use arborfs_engine::format::inode::{encode_dev, S_IFCHR, S_IFIFO, S_IFREG};
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::fs::FormatOptions;
use arborfs_engine::sys::{MemDevice, TryVec};
use arborfs_engine::{Fs, Result};

/// Size of every base image.
pub const IMAGE_BYTES: usize = 16 << 20;

/// One base image.
pub struct Base {
    /// Short name for reports.
    pub name: &'static str,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

fn options(meta: ChecksumType, data: ChecksumType, comp: Compression, node: u32) -> FormatOptions {
    let mut o = FormatOptions {
        uuid: [0x42; 16],
        hash_seed: 0x1234_5678,
        meta_csum: meta,
        data_csum: data,
        compression: comp,
        node_size: node,
        ..Default::default()
    };
    o.member_uuids[0] = [0x43; 16];
    o.members[0].bucket_size = 64 << 10;
    o
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 9) as u8)).collect()
}

/// Fill `fs` with the tree; `canary` is where escaping symlinks point.
fn populate(fs: &mut Fs<MemDevice>, canary: &Path) -> Result<()> {
    let a = fs.mkdir(ROOT_INO, b"dir_a", 0o755, 0, 0)?.ino;
    let sub = fs.mkdir(a, b"sub", 0o750, 1000, 1000)?.ino;
    let deep = fs.mkdir(sub, b"deep", 0o700, 0, 0)?.ino;
    let wide = fs.mkdir(ROOT_INO, b"wide", 0o755, 0, 0)?.ino;
    fs.mkdir(ROOT_INO, b"empty", 0o755, 0, 0)?;
    let sizes = [0usize, 1, 100, 4096, 5000, 70_000, 140_000, 300_000];
    let mut first = 0;
    for (i, &n) in sizes.iter().enumerate() {
        let name = format!("file{i}");
        let f = fs.create(a, name.as_bytes(), S_IFREG | 0o644, 0, 0, 0)?.ino;
        if i == 1 {
            first = f;
        }
        fs.write(f, 0, &pattern(n, i as u8))?;
        if i % 3 == 0 {
            fs.setxattr(f, b"user.note", &pattern(40 + i * 30, 7), 0)?;
        }
    }
    for i in 0..120u32 {
        let name = format!("entry-with-a-longish-name-{i:04}");
        let f = fs.create(wide, name.as_bytes(), S_IFREG | 0o600, i, i, 0)?.ino;
        if i % 10 == 0 {
            fs.write(f, 0, &pattern(2000 + i as usize * 10, i as u8))?;
        }
    }
    let d = fs.create(deep, b"data", S_IFREG | 0o644, 0, 0, 0)?.ino;
    fs.write(d, 0, &pattern(9000, 3))?;
    let sparse = fs.create(sub, b"sparse", S_IFREG | 0o644, 0, 0, 0)?.ino;
    fs.write(sparse, 1 << 20, &pattern(8192, 5))?;
    fs.link(first, ROOT_INO, b"hardlink")?;
    fs.link(first, sub, b"hardlink2")?;
    fs.symlink(sub, b"up", b"../file1", 0, 0)?;
    fs.symlink(ROOT_INO, b"esc_rel", b"../../../outside/rel", 0, 0)?;
    let abs = canary.join("abs");
    fs.symlink(ROOT_INO, b"esc_abs", abs.as_os_str().as_encoded_bytes(), 0, 0)?;
    fs.symlink(ROOT_INO, b"esc_dir", canary.as_os_str().as_encoded_bytes(), 0, 0)?;
    fs.create(ROOT_INO, b"fifo", S_IFIFO | 0o644, 0, 0, 0)?;
    fs.create(ROOT_INO, b"null", S_IFCHR | 0o666, 0, 0, encode_dev(1, 3))?;
    fs.setxattr(a, b"user.dir", b"on a directory", 0)?;
    // An open-unlinked file: on the orphan list until the next open.
    let o = fs.create(ROOT_INO, b"orphan", S_IFREG | 0o644, 0, 0, 0)?.ino;
    fs.write(o, 0, &pattern(6000, 9))?;
    fs.unlink(ROOT_INO, b"orphan")?;
    Ok(())
}

fn make(o: &FormatOptions, canary: &Path, journal_only_tail: bool) -> Result<Vec<u8>> {
    let mut devs = TryVec::new();
    devs.try_push(MemDevice::new(IMAGE_BYTES))?;
    let mut fs = Fs::format(devs, o)?;
    populate(&mut fs, canary)?;
    if journal_only_tail {
        fs.checkpoint()?;
        // Changes after the checkpoint live only in the journal.
        let f = fs.create(ROOT_INO, b"journalled", S_IFREG | 0o644, 0, 0, 0)?.ino;
        fs.write(f, 0, &pattern(3000, 11))?;
        fs.mkdir(ROOT_INO, b"journalled-dir", 0o755, 0, 0)?;
        fs.rename(ROOT_INO, b"hardlink", ROOT_INO, b"renamed", 0, (0, 0))?;
        fs.setxattr(f, b"user.j", b"journal", 0)?;
        fs.sync()?;
        let mut devs = fs.into_devices();
        return Ok(devs.pop().map(|d| d.data).unwrap_or_default());
    }
    let mut devs = fs.close()?;
    Ok(devs.pop().map(|d| d.data).unwrap_or_default())
}

/// Every base image.
pub fn bases(canary: &Path) -> Result<Vec<Base>> {
    let c = ChecksumType::Crc32c;
    Ok(vec![
        Base { name: "plain", bytes: make(&options(c, c, Compression::None, 4096), canary, false)? },
        Base { name: "journal", bytes: make(&options(c, c, Compression::None, 4096), canary, true)? },
        Base {
            name: "zstd",
            bytes: make(
                &options(ChecksumType::Xxhash64, ChecksumType::Xxhash64, Compression::Zstd, 16384),
                canary,
                false,
            )?,
        },
        Base {
            name: "nocsum",
            bytes: make(
                &options(ChecksumType::None, ChecksumType::None, Compression::None, 4096),
                canary,
                true,
            )?,
        },
    ])
}
