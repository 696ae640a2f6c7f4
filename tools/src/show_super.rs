//! `arborfs show-super`: print the superblock of a member device.

use std::path::PathBuf;
use std::process::ExitCode;

use arborfs_engine::format::superblock::{label_str, Superblock};
use arborfs_engine::format::BtreeId;
use arborfs_engine::fs::read_super;
use serde_json::json;

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

fn to_json(sb: &Superblock) -> serde_json::Value {
    let members: Vec<_> = sb
        .members()
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({
                "index": i,
                "uuid": uuid_str(&m.uuid),
                "size": m.size,
                "bucket_size": m.bucket_size,
                "buckets": m.nbuckets,
                "label": label_str(&m.label),
                "durability": m.durability,
                "state": m.state.name(),
            })
        })
        .collect();
    let roots: serde_json::Map<String, serde_json::Value> = BtreeId::ALL
        .iter()
        .map(|id| {
            let r = sb.roots[id.index()];
            (
                id.name().to_string(),
                if r.offset == 0 {
                    serde_json::Value::Null
                } else {
                    json!({"device": r.dev, "offset": r.offset, "level": r.level, "gen": r.gen, "seq": r.seq})
                },
            )
        })
        .collect();
    json!({
        "magic": "ARBORFS",
        "version": sb.version,
        "features": {"compat": sb.compat, "ro_compat": sb.ro_compat, "incompat": sb.incompat},
        "seq": sb.seq,
        "uuid": uuid_str(&sb.uuid),
        "label": label_str(&sb.label),
        "block_size": sb.block_size,
        "btree_node_size": sb.node_size,
        "created_ns": sb.ctime,
        "metadata_checksum": sb.meta_csum.name(),
        "data_checksum": sb.data_csum.name(),
        "compression": sb.compression.name(),
        "compression_level": sb.compression_level,
        "replicas": sb.replicas,
        "foreground_target": label_str(&sb.foreground_target),
        "background_target": label_str(&sb.background_target),
        "promote_target": label_str(&sb.promote_target),
        "this_member": sb.this_member,
        "journal": {"device": sb.journal_dev, "offset": sb.journal_offset, "size": sb.journal_size},
        "checkpoint": {"seq": sb.checkpoint_seq, "journal_resume": sb.journal_resume},
        "clean": sb.flags & arborfs_engine::format::superblock::SB_FLAG_CLEAN != 0,
        "counters": {"inodes": sb.inodes, "data_bytes": sb.data_bytes},
        "roots": roots,
        "members": members,
        "limits": {
            "name_max": arborfs_engine::format::NAME_MAX,
            "symlink_max": arborfs_engine::format::SYMLINK_MAX
                .min(arborfs_engine::format::node::max_value_bytes(sb.node_size)),
            "xattr_name_max": arborfs_engine::format::XATTR_NAME_MAX,
            "xattr_value_max": arborfs_engine::format::xattr::value_max(sb.node_size),
        },
    })
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
    let v = to_json(&sb);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return ExitCode::SUCCESS;
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
