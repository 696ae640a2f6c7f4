//! `arborfs`: the userspace tool. One binary with subcommands; also runs as
//! `mkfs.arborfs` and `fsck.arborfs` when called by those names.
//!
//! Errors go to stderr as `PROGRAM: DEVICE: what is wrong`; exit codes are
//! listed in each subcommand's help and man page.
// The tools index their own argument lists and I/O buffers; everything read
// from disk is decoded by the format crate and the engine, which forbid this.
#![allow(clippy::indexing_slicing)]

mod device;
mod dump;
mod format;
mod fsck;
mod man;
mod progress;
mod restore;
mod show_super;
mod source;
mod version;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Exit codes of the commands other than fsck.
pub const EXIT_CODES: &str = "\
Exit status:
  0   success
  1   failure (the message says what and where)
  2   usage error; for restore: restored, but with problems (each is reported)";

#[derive(Parser)]
#[command(
    name = "arborfs",
    version,
    about = "Tools for the arborfs copy-on-write b-tree file system",
    after_help = EXIT_CODES
)]
pub struct Cli {
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
    /// Print the tool's version, the on-disk format versions it reads and
    /// writes, and the loaded kernel module's.
    Version(version::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionArgs),
    /// Write the man pages into a directory (for packaging).
    #[command(hide = true)]
    Man(man::Args),
}

/// Options of `arborfs completions`.
#[derive(clap::Args)]
struct CompletionArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

/// `mkfs.arborfs`: the format subcommand under its own name.
#[derive(Parser)]
#[command(name = "mkfs.arborfs", version, about = "Make an arborfs file system", after_help = EXIT_CODES)]
pub struct MkfsCli {
    #[command(flatten)]
    args: format::Args,
}

/// `fsck.arborfs`: the fsck subcommand under its own name.
#[derive(Parser)]
#[command(
    name = "fsck.arborfs",
    version,
    about = "Check and repair an arborfs file system",
    after_help = fsck::EXIT_CODES
)]
pub struct FsckCli {
    #[command(flatten)]
    args: fsck::Args,
}

/// Parse the command line; usage errors exit with `usage_code` (fsck(8)
/// wants 16), --help and --version with 0.
fn parse<P: Parser>(usage_code: u8) -> Result<P, ExitCode> {
    P::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::from(usage_code)
        } else {
            ExitCode::SUCCESS
        }
    })
}

fn main() -> ExitCode {
    // A closed pipe (`arborfs dump IMG | head`) ends the tool quietly, as it
    // does `ls`, instead of a panic in println!.
    sigpipe::reset();
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let prog = std::path::Path::new(&argv0).file_name().and_then(|s| s.to_str()).unwrap_or("arborfs");
    match prog {
        "mkfs.arborfs" => match parse::<MkfsCli>(1) {
            Ok(c) => format::run(&c.args, "mkfs.arborfs"),
            Err(code) => code,
        },
        "fsck.arborfs" => match parse::<FsckCli>(fsck::EXIT_USAGE) {
            Ok(c) => fsck::run(&c.args, "fsck.arborfs"),
            Err(code) => code,
        },
        _ => {
            let cli = match parse::<Cli>(2) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match cli.cmd {
                Cmd::Format(a) => format::run(&a, "arborfs format"),
                Cmd::Fsck(a) => fsck::run(&a, "arborfs fsck"),
                Cmd::ShowSuper(a) => show_super::run(&a),
                Cmd::Restore(a) => restore::run(&a),
                Cmd::Dump(a) => dump::run(&a),
                Cmd::Version(a) => version::run(&a),
                Cmd::Completions(a) => {
                    let mut cmd = Cli::command();
                    clap_complete::generate(a.shell, &mut cmd, "arborfs", &mut std::io::stdout());
                    ExitCode::SUCCESS
                }
                Cmd::Man(a) => man::run(&a),
            }
        }
    }
}
