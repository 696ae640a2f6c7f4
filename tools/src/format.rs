//! `arborfs format` / `mkfs.arborfs`: make a new file system, optionally
//! filled from a directory tree.

use std::path::PathBuf;
use std::process::ExitCode;

use arborfs_engine::format::checksum::ChecksumType;
use arborfs_engine::format::superblock::{make_label, LABEL_BYTES, SB_OFFSETS};
use arborfs_engine::fs::format::{layout, MemberOptions, MIN_DEVICE_BYTES};
use arborfs_engine::fs::FormatOptions;
use arborfs_engine::{Error, Fs};

use crate::device::{
    describe, is_block_device, open_devices, parse_size, random_bytes, uuid_str, ToolError, ToolResult,
};

/// Options of `arborfs format`.
#[derive(clap::Args, Debug)]
#[command(name = "mkfs.arborfs", about = "Make an arborfs file system")]
pub struct Args {
    /// File system label.
    #[arg(short = 'L', long)]
    label: Option<String>,
    /// Data block size (512 to 64k, power of two).
    #[arg(long, value_parser = parse_size, default_value = "4096")]
    block_size: u64,
    /// Bucket size (64k to 64M, power of two; default: about 1/512 of the device, at most 2M).
    #[arg(long, value_parser = parse_size)]
    bucket_size: Option<u64>,
    /// B-tree node size (4k to 1M, power of two; default: a quarter bucket, 16k to 256k).
    #[arg(long, value_parser = parse_size)]
    btree_node_size: Option<u64>,
    /// Checksum for metadata: none, crc32c, xxhash64.
    #[arg(long, default_value = "crc32c")]
    metadata_checksum: String,
    /// Checksum for file data: none, crc32c, xxhash64.
    #[arg(long, default_value = "xxhash64")]
    data_checksum: String,
    /// Compression for new data: none, lz4, zstd, or zstd:LEVEL (1-19).
    #[arg(long, default_value = "none")]
    compression: String,
    /// Label of each device in order (such as ssd.fast1); repeat per device.
    #[arg(long = "device-label")]
    device_labels: Vec<String>,
    /// Size of the file system: image files are created or resized to it;
    /// on a block device only its first SIZE bytes are used.
    #[arg(long, value_parser = parse_size)]
    fs_size: Option<u64>,
    /// Fill the new file system from this directory.
    #[arg(long)]
    source: Option<PathBuf>,
    /// Overwrite an existing file system.
    #[arg(short, long)]
    force: bool,
    /// Do not discard the devices first (by default every block is
    /// discarded, or punched out of an image file, so nothing of what was
    /// there before can be read back as metadata).
    #[arg(short = 'K', long)]
    nodiscard: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// Print the layout that would be made, and write nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Devices or image files.
    #[arg(required = true)]
    devices: Vec<PathBuf>,
}

/// What `path` holds that we refuse to overwrite without --force: an
/// arborfs superblock, or whatever blkid(8) recognises (any file system,
/// swap, RAID or LVM member, partition table); a few built-in signatures
/// when blkid is not installed.
fn existing_signature(path: &std::path::Path) -> Option<String> {
    if let Some(sig) = builtin_signature(path, true) {
        return Some(format!("an {sig} file system"));
    }
    match blkid_signature(path) {
        Ok(found) => found,
        Err(()) => builtin_signature(path, false).map(|sig| format!("a signature of {sig}")),
    }
}

/// blkid's low-level probe of `path`: `Ok(None)` when it found nothing,
/// `Err` when it could not run.
fn blkid_signature(path: &std::path::Path) -> Result<Option<String>, ()> {
    let out = std::process::Command::new("blkid")
        .args(["-p", "-o", "export", "--"])
        .arg(path)
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|_| ())?;
    // Exit status 2: nothing recognised; anything else but 0 is an error.
    match out.status.code() {
        Some(0) => {}
        Some(2) => return Ok(None),
        _ => return Err(()),
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name).map(str::to_owned)).filter(|v| !v.is_empty())
    };
    Ok(field("TYPE=")
        .map(|t| format!("a signature of {t} (blkid)"))
        .or_else(|| field("PTTYPE=").map(|t| format!("a {t} partition table (blkid)"))))
}

/// Signatures this tool knows itself; with `own_only`, just arborfs's
/// (blkid does not know it).
fn builtin_signature(path: &std::path::Path, own_only: bool) -> Option<&'static str> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let mut probe = |off: u64, len: usize| -> Option<Vec<u8>> {
        f.seek(SeekFrom::Start(off)).ok()?;
        let mut b = vec![0u8; len];
        f.read_exact(&mut b).ok()?;
        Some(b)
    };
    for off in SB_OFFSETS {
        if probe(off, 8).as_deref() == Some(&b"ARBORFS\0"[..]) {
            return Some("arborfs");
        }
    }
    if own_only {
        return None;
    }
    if probe(1080, 2).as_deref() == Some(&[0x53, 0xEF][..]) {
        return Some("ext2/3/4");
    }
    if probe(0, 4).as_deref() == Some(&b"XFSB"[..]) {
        return Some("xfs");
    }
    if probe(65600, 8).as_deref() == Some(&b"_BHRfS_M"[..]) {
        return Some("btrfs");
    }
    if probe(4086, 10).as_deref() == Some(&b"SWAPSPACE2"[..]) {
        return Some("swap");
    }
    None
}

fn parse_options(a: &Args) -> ToolResult<FormatOptions> {
    let err = |s: String| ToolError(s);
    let mut o = FormatOptions {
        uuid: random_bytes(),
        hash_seed: u64::from_le_bytes(random_bytes()[..8].try_into().unwrap_or_default()),
        ..Default::default()
    };
    if let Some(l) = &a.label {
        o.label = make_label::<LABEL_BYTES>(l)
            .ok_or_else(|| err(format!("label {l:?} is longer than 32 bytes")))?;
    }
    o.block_size = u32::try_from(a.block_size)
        .ok()
        .filter(|b| b.is_power_of_two() && (512..=65536).contains(b))
        .ok_or_else(|| err(format!("block size {} is not a power of two from 512 to 64k", a.block_size)))?;
    if let Some(n) = a.btree_node_size {
        o.node_size = u32::try_from(n)
            .ok()
            .filter(|b| b.is_power_of_two() && (4096..=1 << 20).contains(b) && *b >= o.block_size)
            .ok_or_else(|| {
                err(format!("b-tree node size {n} is not a power of two from 4k to 1M (and >= block size)"))
            })?;
    }
    let csum = |s: &str| {
        ChecksumType::from_name(s)
            .ok_or_else(|| err(format!("unknown checksum {s:?} (none, crc32c, xxhash64)")))
    };
    o.meta_csum = csum(&a.metadata_checksum)?;
    o.data_csum = csum(&a.data_checksum)?;
    (o.compression, o.compression_level) = arborfs_engine::fs::options::parse_compression(&a.compression)
        .map_err(|why| err(format!("--compression {:?}: {why}", a.compression)))?;
    if a.devices.len() > o.members.len() {
        return Err(err(format!("at most {} devices", o.members.len())));
    }
    if a.device_labels.len() > a.devices.len() {
        return Err(err("more --device-label options than devices".into()));
    }
    for (i, m) in o.members.iter_mut().enumerate().take(a.devices.len()) {
        *m = MemberOptions { durability: 1, ..Default::default() };
        if let Some(l) = a.device_labels.get(i) {
            m.label =
                make_label(l).ok_or_else(|| err(format!("device label {l:?} is longer than 32 bytes")))?;
        }
        if let Some(b) = a.bucket_size {
            m.bucket_size = u32::try_from(b)
                .ok()
                .filter(|v| v.is_power_of_two() && (64 * 1024..=64 << 20).contains(v))
                .ok_or_else(|| err(format!("bucket size {b} is not a power of two from 64k to 64M")))?;
        }
    }
    for u in o.member_uuids.iter_mut().take(a.devices.len()) {
        *u = random_bytes();
    }
    Ok(o)
}

fn prepare_devices(a: &Args) -> ToolResult<()> {
    for p in &a.devices {
        if is_block_device(p) {
            if let Some(size) = a.fs_size {
                let dev = arborfs_engine::sys::FileDevice::open_shared(p)
                    .map_err(|e| ToolError(format!("{}: {e}", p.display())))?;
                use arborfs_engine::sys::BlockDevice;
                if size > dev.size() {
                    return Err(ToolError(format!(
                        "{}: --fs-size {size} is larger than the device ({} bytes)",
                        p.display(),
                        dev.size()
                    )));
                }
            }
        } else if let Some(size) = a.fs_size {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(p)
                .map_err(|e| ToolError(format!("{}: {e}", p.display())))?;
            f.set_len(size).map_err(|e| ToolError(format!("{}: {e}", p.display())))?;
        } else if !p.exists() {
            return Err(ToolError(format!(
                "{}: does not exist (give --fs-size to create an image file)",
                p.display()
            )));
        }
        if !a.force {
            if let Some(sig) = existing_signature(p) {
                return Err(ToolError(format!(
                    "{}: already holds {sig}; use --force to overwrite it",
                    p.display()
                )));
            }
        }
    }
    Ok(())
}

fn print_layout(a: &Args, sb: &arborfs_engine::format::superblock::Superblock, free: Option<(u64, u64)>) {
    println!(
        "arborfs: {} {} ({} device{}), UUID {}",
        if a.dry_run { "would format" } else { "formatted" },
        a.devices.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        a.devices.len(),
        if a.devices.len() == 1 { "" } else { "s" },
        uuid_str(&sb.uuid)
    );
    print!(
        "  block size {}, bucket size {}, node size {}, journal {} KiB",
        sb.block_size,
        sb.members()[0].bucket_size,
        sb.node_size,
        sb.journal_size >> 10
    );
    match free {
        Some((free, total)) => println!(", {} MiB free of {} MiB", free >> 20, total >> 20),
        None => println!(", {} MiB", sb.members().iter().map(|m| m.size).sum::<u64>() >> 20),
    }
    println!(
        "  checksums: metadata {}, data {}; compression {}",
        sb.meta_csum.name(),
        sb.data_csum.name(),
        sb.compression.name()
    );
}

/// The size of each device as the file system will see it.
fn device_sizes(a: &Args) -> ToolResult<Vec<u64>> {
    use arborfs_engine::sys::{BlockDevice, FileDevice};
    a.devices
        .iter()
        .map(|p| {
            let dev_size = if p.exists() {
                FileDevice::open_shared(p).map_err(|e| ToolError(format!("{}: {e}", p.display())))?.size()
            } else {
                0
            };
            match a.fs_size {
                Some(s) if is_block_device(p) => Ok(s.min(dev_size)),
                Some(s) => Ok(s),
                None if p.exists() => Ok(dev_size),
                None => Err(ToolError(format!(
                    "{}: does not exist (give --fs-size to create an image file)",
                    p.display()
                ))),
            }
        })
        .collect()
}

fn format(a: &Args) -> ToolResult<()> {
    let opts = parse_options(a)?;
    if let Some(src) = &a.source {
        if !src.is_dir() {
            return Err(ToolError(format!("{}: not a directory", src.display())));
        }
    }
    let too_small = || {
        ToolError(format!(
            "{}: too small for arborfs (needs at least {} MiB, and room for the journal and 16 buckets)",
            a.devices[0].display(),
            MIN_DEVICE_BYTES >> 20
        ))
    };
    if a.dry_run {
        // The layout only: nothing is created, resized or written.
        let sizes = device_sizes(a)?;
        let sb = layout(&sizes, &opts).map_err(|e| match e {
            Error::NoSpace => too_small(),
            e => ToolError(describe(&e, &a.devices)),
        })?;
        if !a.force {
            for p in &a.devices {
                if let Some(sig) = p.exists().then(|| existing_signature(p)).flatten() {
                    println!("  {}: already holds {sig} (formatting needs --force)", p.display());
                }
            }
        }
        print_layout(a, &sb, None);
        return Ok(());
    }
    prepare_devices(a)?;
    let mut devs = open_devices(&a.devices, true)?;
    for d in devs.iter_mut() {
        if let Some(size) = a.fs_size {
            d.limit_size(size);
        }
        if !a.nodiscard {
            use arborfs_engine::sys::BlockDevice;
            let size = d.size();
            d.discard(0, size).map_err(|e| ToolError(describe(&e, &a.devices)))?;
        }
    }
    let mut fs = Fs::format(devs, &opts).map_err(|e| match e {
        Error::NoSpace => too_small(),
        e => ToolError(describe(&e, &a.devices)),
    })?;
    if let Some(src) = &a.source {
        crate::source::copy_tree(&mut fs, src, a.quiet).map_err(|e| ToolError(format!("--source: {e}")))?;
    }
    let st = fs.statfs();
    let sb = fs.sb.clone();
    fs.close().map_err(|e| ToolError(describe(&e, &a.devices)))?;
    if !a.quiet {
        let bs = u64::from(st.block_size);
        print_layout(a, &sb, Some((st.blocks_free * bs, st.blocks * bs)));
    }
    Ok(())
}

/// Run `arborfs format` (`prog` names the tool in messages).
pub fn run(a: &Args, prog: &str) -> ExitCode {
    match format(a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{prog}: {e}");
            ExitCode::FAILURE
        }
    }
}
