//! `arborfs`: the userspace tool. One binary with subcommands; also runs as
//! `mkfs.arborfs` and `fsck.arborfs` when called by those names.
// The tools index their own argument lists and I/O buffers; everything read
// from disk is decoded by the format crate and the engine, which forbid this.
#![allow(clippy::indexing_slicing)]

mod device;
mod dump;
mod format;
mod fsck;
mod restore;
mod show_super;
mod source;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "arborfs", version, about = "Tools for the arborfs copy-on-write b-tree file system")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make a new file system (also installed as mkfs.arborfs).
    Format(format::Args),
    /// Check and repair a file system (also installed as fsck.arborfs).
    Fsck(fsck::Args),
    /// Print the superblock.
    ShowSuper(show_super::Args),
    /// Copy every file out of an unmounted, possibly damaged, file system.
    Restore(restore::Args),
    /// Print b-tree keys (debugging).
    Dump(dump::Args),
}

/// `mkfs.arborfs`: the format subcommand under its own name.
#[derive(Parser)]
#[command(name = "mkfs.arborfs", version, about = "Make an arborfs file system")]
struct MkfsCli {
    #[command(flatten)]
    args: format::Args,
}

/// `fsck.arborfs`: the fsck subcommand under its own name.
#[derive(Parser)]
#[command(name = "fsck.arborfs", version, about = "Check and repair an arborfs file system")]
struct FsckCli {
    #[command(flatten)]
    args: fsck::Args,
}

fn main() -> ExitCode {
    // A closed pipe (`arborfs dump IMG | head`) ends the tool quietly, as it
    // does `ls`, instead of a panic in println!.
    sigpipe::reset();
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let prog = std::path::Path::new(&argv0).file_name().and_then(|s| s.to_str()).unwrap_or("arborfs");
    match prog {
        "mkfs.arborfs" => format::run(&MkfsCli::parse().args),
        "fsck.arborfs" => fsck::run(&FsckCli::parse().args),
        _ => match Cli::parse().cmd {
            Cmd::Format(a) => format::run(&a),
            Cmd::Fsck(a) => fsck::run(&a),
            Cmd::ShowSuper(a) => show_super::run(&a),
            Cmd::Restore(a) => restore::run(&a),
            Cmd::Dump(a) => dump::run(&a),
        },
    }
}
