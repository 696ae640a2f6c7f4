//! `arborfs dump`: print the keys of the b-trees, decoded, for debugging.

use std::path::PathBuf;
use std::process::ExitCode;

use arborfs_engine::format::alloc_info::AllocInfo;
use arborfs_engine::format::dirent::Dirent;
use arborfs_engine::format::extent::Extent;
use arborfs_engine::format::inode::Inode;
use arborfs_engine::format::xattr::Xattr;
use arborfs_engine::format::{BtreeId, KeyType, Pos};
use arborfs_engine::sys::TryVec;
use arborfs_engine::OpenOptions;

use crate::device::{describe, open_fs};

/// Options of `arborfs dump`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this b-tree (extents, inodes, dirents, xattrs, alloc, orphans).
    #[arg(long)]
    btree: Option<String>,
    /// Member devices.
    #[arg(required = true)]
    devices: Vec<PathBuf>,
}

fn describe_value(kind: KeyType, v: &[u8]) -> String {
    match kind {
        KeyType::Inode => Inode::decode(v).map(|i| format!("{i:?}")),
        KeyType::Dirent => Dirent::decode(v)
            .map(|d| format!("{:?} -> {} (type {})", String::from_utf8_lossy(d.name), d.target, d.dtype)),
        KeyType::Extent => Extent::decode(v).map(|e| {
            format!(
                "len {} payload {} stored {} at +{} {} {} csum {:#x} ptrs {:?}{}",
                e.live_len,
                e.payload_len,
                e.stored_len,
                e.offset_into,
                e.compression.name(),
                e.csum_type.name(),
                e.csum,
                e.ptrs(),
                if e.is_unwritten() { " unwritten" } else { "" }
            )
        }),
        KeyType::InlineData => Ok(format!("inline {:?}", String::from_utf8_lossy(v))),
        KeyType::Xattr => Xattr::decode(v).map(|x| {
            format!(
                "{}{} = {} bytes",
                String::from_utf8_lossy(x.ns.prefix()),
                String::from_utf8_lossy(x.name),
                x.value.len()
            )
        }),
        KeyType::Alloc => {
            AllocInfo::decode(v).map(|a| format!("gen {} {} used {}", a.gen, a.data_type.name(), a.used))
        }
        KeyType::Orphan => Ok("orphan".into()),
        KeyType::BtreePtr => Ok("pointer".into()),
    }
    .unwrap_or_else(|e| format!("<undecodable: {e}>"))
}

/// Run `arborfs dump`.
pub fn run(a: &Args) -> ExitCode {
    let mut fs =
        match open_fs(&a.devices, &OpenOptions { read_only: true, check: true, ..Default::default() }) {
            Ok(fs) => fs,
            Err(e) => {
                eprintln!("arborfs dump: {e}");
                return ExitCode::FAILURE;
            }
        };
    let mut val = TryVec::new();
    for id in BtreeId::ALL {
        if a.btree.as_deref().is_some_and(|b| b != id.name()) {
            continue;
        }
        println!("b-tree {}:", id.name());
        let mut from = Pos::MIN;
        loop {
            match fs.peek(id, from, Pos::MAX, &mut val) {
                Ok(Some((pos, kind))) => {
                    println!(
                        "  {}:{}:{} {}",
                        pos.inode,
                        pos.offset,
                        pos.snapshot,
                        describe_value(kind, &val)
                    );
                    match pos.successor() {
                        Some(p) => from = p,
                        None => break,
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    eprintln!("arborfs dump: {}", describe(&e, &a.devices));
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}
