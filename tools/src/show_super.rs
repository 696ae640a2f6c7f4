//! `arborfs show-super`: print the superblock of a member device.

use std::path::PathBuf;
use std::process::ExitCode;

use std::collections::BTreeMap;

use arborfs_engine::format::superblock::{label_str, Superblock, SB_FLAG_CLEAN};
use arborfs_engine::format::BtreeId;
use arborfs_engine::fs::read_super;
use serde::Serialize;

use arborfs_engine::sys::FileDevice;

use crate::device::{describe, uuid_str};

/// Options of `arborfs show-super`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Device or image.
    device: PathBuf,
}

/// The superblock as `show-super --json` prints it; `version` changes when
/// the shape does.
#[derive(Serialize)]
struct SuperJson {
    version: u32,
    magic: &'static str,
    format_version: u32,
    features: Features,
    seq: u64,
    uuid: String,
    label: String,
    block_size: u32,
    btree_node_size: u32,
    created_ns: i64,
    metadata_checksum: &'static str,
    data_checksum: &'static str,
    compression: &'static str,
    compression_level: u8,
    replicas: u8,
    foreground_target: String,
    background_target: String,
    promote_target: String,
    this_member: u8,
    journal: Journal,
    checkpoint: Checkpoint,
    clean: bool,
    counters: Counters,
    roots: BTreeMap<&'static str, Option<Root>>,
    members: Vec<MemberJson>,
    limits: Limits,
}

#[derive(Serialize)]
struct Features {
    compat: u64,
    ro_compat: u64,
    incompat: u64,
}

#[derive(Serialize)]
struct Journal {
    device: u8,
    offset: u64,
    size: u64,
}

#[derive(Serialize)]
struct Checkpoint {
    seq: u64,
    journal_resume: u64,
}

#[derive(Serialize)]
struct Counters {
    inodes: u64,
    data_bytes: u64,
}

#[derive(Serialize)]
struct Root {
    device: u8,
    offset: u64,
    level: u8,
    gen: u32,
    seq: u64,
}

#[derive(Serialize)]
struct MemberJson {
    index: usize,
    uuid: String,
    size: u64,
    bucket_size: u32,
    buckets: u64,
    label: String,
    durability: u8,
    state: &'static str,
}

#[derive(Serialize)]
struct Limits {
    name_max: usize,
    symlink_max: usize,
    xattr_name_max: usize,
    xattr_value_max: usize,
}

fn to_json(sb: &Superblock) -> SuperJson {
    use arborfs_engine::format::{node, xattr, NAME_MAX, SYMLINK_MAX, XATTR_NAME_MAX};
    SuperJson {
        version: 1,
        magic: "ARBORFS",
        format_version: sb.version,
        features: Features { compat: sb.compat, ro_compat: sb.ro_compat, incompat: sb.incompat },
        seq: sb.seq,
        uuid: uuid_str(&sb.uuid),
        label: label_str(&sb.label).to_string(),
        block_size: sb.block_size,
        btree_node_size: sb.node_size,
        created_ns: sb.ctime,
        metadata_checksum: sb.meta_csum.name(),
        data_checksum: sb.data_csum.name(),
        compression: sb.compression.name(),
        compression_level: sb.compression_level,
        replicas: sb.replicas,
        foreground_target: label_str(&sb.foreground_target).to_string(),
        background_target: label_str(&sb.background_target).to_string(),
        promote_target: label_str(&sb.promote_target).to_string(),
        this_member: sb.this_member,
        journal: Journal { device: sb.journal_dev, offset: sb.journal_offset, size: sb.journal_size },
        checkpoint: Checkpoint { seq: sb.checkpoint_seq, journal_resume: sb.journal_resume },
        clean: sb.flags & SB_FLAG_CLEAN != 0,
        counters: Counters { inodes: sb.inodes, data_bytes: sb.data_bytes },
        roots: BtreeId::ALL
            .iter()
            .map(|id| {
                let r = sb.roots[id.index()];
                let root = (r.offset != 0).then_some(Root {
                    device: r.dev,
                    offset: r.offset,
                    level: r.level,
                    gen: r.gen,
                    seq: r.seq,
                });
                (id.name(), root)
            })
            .collect(),
        members: sb
            .members()
            .iter()
            .enumerate()
            .map(|(index, m)| MemberJson {
                index,
                uuid: uuid_str(&m.uuid),
                size: m.size,
                bucket_size: m.bucket_size,
                buckets: m.nbuckets,
                label: label_str(&m.label).to_string(),
                durability: m.durability,
                state: m.state.name(),
            })
            .collect(),
        limits: Limits {
            name_max: NAME_MAX,
            symlink_max: SYMLINK_MAX.min(node::max_value_bytes(sb.node_size)),
            xattr_name_max: XATTR_NAME_MAX,
            xattr_value_max: xattr::value_max(sb.node_size),
        },
    }
}

/// Run `arborfs show-super`.
pub fn run(a: &Args) -> ExitCode {
    let paths = [a.device.clone()];
    // Only the superblock is read: a mounted device is fine.
    let sb = FileDevice::open_shared(&a.device)
        .map_err(|e| format!("{}: {e}", a.device.display()))
        .and_then(|mut dev| read_super(&mut dev).map_err(|e| describe(&e, &paths)));
    let sb = match sb {
        Ok(sb) => sb,
        Err(e) => {
            eprintln!("arborfs show-super: {e}");
            return ExitCode::FAILURE;
        }
    };
    if a.json {
        return match serde_json::to_string_pretty(&to_json(&sb)) {
            Ok(s) => {
                println!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("arborfs show-super: {e}");
                ExitCode::FAILURE
            }
        };
    }
    println!("Device:              {}", a.device.display());
    println!("UUID:                {}", uuid_str(&sb.uuid));
    println!("Label:               {}", label_str(&sb.label));
    println!("Version:             {}", sb.version);
    println!("Superblock sequence: {}", sb.seq);
    println!("Block size:          {}", sb.block_size);
    println!("B-tree node size:    {}", sb.node_size);
    println!("Metadata checksum:   {}", sb.meta_csum.name());
    println!("Data checksum:       {}", sb.data_csum.name());
    println!(
        "Compression:         {}{}",
        sb.compression.name(),
        if sb.compression_level > 0 { format!(":{}", sb.compression_level) } else { String::new() }
    );
    println!(
        "Journal:             device {} at {} ({} KiB)",
        sb.journal_dev,
        sb.journal_offset,
        sb.journal_size >> 10
    );
    println!("Checkpoint:          seq {}, replay from {}", sb.checkpoint_seq, sb.journal_resume);
    println!("Clean:               {}", if sb.flags & 1 != 0 { "yes" } else { "no" });
    println!("Inodes:              {}", sb.inodes);
    println!("Data bytes:          {}", sb.data_bytes);
    println!("Members:             {}", sb.nr_members);
    for (i, m) in sb.members().iter().enumerate() {
        println!(
            "  [{i}] {} size {} bucket {} x {} label {:?} durability {} {}",
            uuid_str(&m.uuid),
            m.size,
            m.bucket_size,
            m.nbuckets,
            label_str(&m.label),
            m.durability,
            m.state.name()
        );
    }
    ExitCode::SUCCESS
}
