//! `arborfs dump`: print the keys of the b-trees, decoded, for debugging;
//! with `--json`, one JSON object per line (the first names the format
//! version and the devices), for scripts.

use std::path::PathBuf;
use std::process::ExitCode;

use arborfs_engine::btree::cursor::{Cursor, View};
use arborfs_engine::format::alloc_info::AllocInfo;
use arborfs_engine::format::dirent::Dirent;
use arborfs_engine::format::extent::Extent;
use arborfs_engine::format::inode::Inode;
use arborfs_engine::format::xattr::Xattr;
use arborfs_engine::format::{BtreeId, KeyType, Pos};
use arborfs_engine::OpenOptions;
use serde::Serialize;

use crate::device::{describe, open_fs};

/// Options of `arborfs dump`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this b-tree (extents, inodes, dirents, xattrs, alloc, orphans).
    #[arg(long)]
    btree: Option<String>,
    /// Print JSON lines: a header, then one object per key.
    #[arg(long)]
    json: bool,
    /// Member devices.
    #[arg(required = true)]
    devices: Vec<PathBuf>,
}

/// The first line of `dump --json`.
#[derive(Serialize)]
struct Header {
    version: u32,
    devices: Vec<String>,
}

/// One key of `dump --json`.
#[derive(Serialize)]
struct KeyJson {
    btree: &'static str,
    inode: u64,
    offset: u64,
    snapshot: u32,
    #[serde(flatten)]
    value: ValueJson,
}

#[derive(Serialize)]
struct PtrJson {
    dev: u8,
    gen: u32,
    offset: u64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ValueJson {
    Inode {
        mode: u32,
        uid: u32,
        gid: u32,
        nlink: u32,
        size: u64,
        atime: i64,
        mtime: i64,
        ctime: i64,
        btime: i64,
        flags: u32,
        generation: u32,
        rdev: u64,
        alloc_bytes: u64,
        parent: u64,
        projid: u32,
    },
    Dirent {
        target: u64,
        dtype: u8,
        name: String,
    },
    Extent {
        live_len: u32,
        payload_len: u32,
        stored_len: u32,
        offset_into: u32,
        compression: &'static str,
        checksum: &'static str,
        csum: u64,
        /// Bytes per chunk checksum, 0 for one checksum over the payload.
        chunk_bytes: u32,
        chunk_csums: Vec<u64>,
        unwritten: bool,
        ptrs: Vec<PtrJson>,
    },
    InlineData {
        len: usize,
        text: String,
    },
    Xattr {
        name: String,
        value_len: usize,
    },
    Alloc {
        gen: u32,
        data_type: &'static str,
        used: u64,
    },
    Orphan,
    Undecodable {
        error: String,
    },
}

fn decode(kind: KeyType, v: &[u8]) -> ValueJson {
    let bad = |e: arborfs_engine::format::FormatError| ValueJson::Undecodable { error: e.to_string() };
    match kind {
        KeyType::Inode => Inode::decode(v).map_or_else(bad, |i| ValueJson::Inode {
            mode: i.mode,
            uid: i.uid,
            gid: i.gid,
            nlink: i.nlink,
            size: i.size,
            atime: i.atime,
            mtime: i.mtime,
            ctime: i.ctime,
            btime: i.btime,
            flags: i.flags,
            generation: i.generation,
            rdev: i.rdev,
            alloc_bytes: i.alloc_bytes,
            parent: i.parent,
            projid: i.projid,
        }),
        KeyType::Dirent => Dirent::decode(v).map_or_else(bad, |d| ValueJson::Dirent {
            target: d.target,
            dtype: d.dtype,
            name: String::from_utf8_lossy(d.name).into_owned(),
        }),
        KeyType::Extent => Extent::decode(v).map_or_else(bad, |e| ValueJson::Extent {
            live_len: e.live_len,
            payload_len: e.payload_len,
            stored_len: e.stored_len,
            offset_into: e.offset_into,
            compression: e.compression.name(),
            checksum: e.csum_type.name(),
            csum: e.csum,
            chunk_bytes: if e.is_chunked() { e.chunk_bytes() } else { 0 },
            chunk_csums: e.chunk_csums().to_vec(),
            unwritten: e.is_unwritten(),
            ptrs: e.ptrs().iter().map(|p| PtrJson { dev: p.dev, gen: p.gen, offset: p.offset }).collect(),
        }),
        KeyType::InlineData => {
            ValueJson::InlineData { len: v.len(), text: String::from_utf8_lossy(v).into_owned() }
        }
        KeyType::Xattr => Xattr::decode(v).map_or_else(bad, |x| {
            let mut name = String::from_utf8_lossy(x.ns.prefix()).into_owned();
            name.push_str(&String::from_utf8_lossy(x.name));
            ValueJson::Xattr { name, value_len: x.value.len() }
        }),
        KeyType::Alloc => AllocInfo::decode(v).map_or_else(bad, |a| ValueJson::Alloc {
            gen: a.gen,
            data_type: a.data_type.name(),
            used: a.used,
        }),
        KeyType::Orphan => ValueJson::Orphan,
        KeyType::BtreePtr => ValueJson::Undecodable { error: "pointer in a leaf".into() },
    }
}

fn describe_value(kind: KeyType, v: &[u8]) -> String {
    match decode(kind, v) {
        ValueJson::Inode { .. } => Inode::decode(v).map(|i| format!("{i:?}")).unwrap_or_default(),
        ValueJson::Dirent { target, dtype, name } => format!("{name:?} -> {target} (type {dtype})"),
        ValueJson::Extent {
            live_len,
            payload_len,
            stored_len,
            offset_into,
            compression,
            checksum,
            csum,
            chunk_bytes,
            chunk_csums,
            unwritten,
            ..
        } => {
            let ptrs = Extent::decode(v).map(|e| format!("{:?}", e.ptrs())).unwrap_or_default();
            let sums = if chunk_bytes == 0 {
                format!("csum {csum:#x}")
            } else {
                format!("{} chunks of {chunk_bytes}", chunk_csums.len())
            };
            format!(
                "len {live_len} payload {payload_len} stored {stored_len} at +{offset_into} {compression} \
                 {checksum} {sums} ptrs {ptrs}{}",
                if unwritten { " unwritten" } else { "" }
            )
        }
        ValueJson::InlineData { text, .. } => format!("inline {text:?}"),
        ValueJson::Xattr { name, value_len } => format!("{name} = {value_len} bytes"),
        ValueJson::Alloc { gen, data_type, used } => format!("gen {gen} {data_type} used {used}"),
        ValueJson::Orphan => "orphan".into(),
        ValueJson::Undecodable { error } => format!("<undecodable: {error}>"),
    }
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
    if let Some(b) = &a.btree {
        if !BtreeId::ALL.iter().any(|id| id.name() == b) {
            eprintln!("arborfs dump: no b-tree {b:?} (extents, inodes, dirents, xattrs, alloc, orphans)");
            return ExitCode::from(2);
        }
    }
    if a.json {
        let h = Header { version: 1, devices: a.devices.iter().map(|d| d.display().to_string()).collect() };
        println!("{}", serde_json::to_string(&h).unwrap_or_default());
    }
    for id in BtreeId::ALL {
        if a.btree.as_deref().is_some_and(|b| b != id.name()) {
            continue;
        }
        if !a.json {
            println!("b-tree {}:", id.name());
        }
        let mut c = Cursor::new(id, Pos::MIN, Pos::MAX, View::LIVE);
        loop {
            match fs.next_key(&mut c) {
                Ok(Some((pos, kind))) => {
                    if a.json {
                        let k = KeyJson {
                            btree: id.name(),
                            inode: pos.inode,
                            offset: pos.offset,
                            snapshot: pos.snapshot,
                            value: decode(kind, c.value()),
                        };
                        println!("{}", serde_json::to_string(&k).unwrap_or_default());
                    } else {
                        println!(
                            "  {}:{}:{} {}",
                            pos.inode,
                            pos.offset,
                            pos.snapshot,
                            describe_value(kind, c.value())
                        );
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
