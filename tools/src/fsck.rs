//! `arborfs fsck` / `fsck.arborfs`: check and repair, with fsck(8) exit codes.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use arborfs_engine::fsck::{Problem, Repair, Reporter};
use arborfs_engine::OpenOptions;

use crate::device::{describe, open_fs};

/// fsck(8): no errors.
const EXIT_OK: u8 = 0;
/// fsck(8): errors corrected.
const EXIT_FIXED: u8 = 1;
/// fsck(8): errors left uncorrected.
const EXIT_UNCORRECTED: u8 = 4;
/// fsck(8): operational error.
const EXIT_OPERATIONAL: u8 = 8;

/// Options of `arborfs fsck`.
#[derive(clap::Args, Debug)]
#[command(name = "fsck.arborfs", about = "Check and repair an arborfs file system")]
pub struct Args {
    /// Check only; change nothing.
    #[arg(short = 'n', conflicts_with_all = ["yes", "preen"])]
    no: bool,
    /// Repair everything that can be repaired.
    #[arg(short = 'y')]
    yes: bool,
    /// Repair what is safe without asking (also -a).
    #[arg(short = 'p', short_alias = 'a')]
    preen: bool,
    /// Accepted for fsck(8) compatibility; arborfs always checks fully.
    #[arg(short = 'f', hide = true)]
    force: bool,
    /// Print every problem and the totals.
    #[arg(short = 'v')]
    verbose: bool,
    /// Member devices.
    #[arg(required = true)]
    devices: Vec<PathBuf>,
}

fn check(a: &Args) -> u8 {
    let repair = if a.no { Repair::No } else { Repair::Yes };
    let opts = OpenOptions { read_only: repair == Repair::No, check: true, ..Default::default() };
    let mut fs = match open_fs(&a.devices, &opts) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("fsck.arborfs: {e}");
            return EXIT_OPERATIONAL;
        }
    };
    let tty = std::io::stderr().is_terminal();
    let printed_progress = std::cell::Cell::new(false);
    let mut sink = |p: &Problem| {
        if printed_progress.get() {
            eprint!("\r\x1b[K");
        }
        println!("{}: {p}", a.devices[0].display());
    };
    let mut progress = |pass: &str, done: u64, total: u64| {
        if tty {
            eprint!("\r\x1b[Kchecking {pass} ({done}/{total})");
            let _ = std::io::stderr().flush();
            printed_progress.set(true);
        }
    };
    let mut r = Reporter::new(repair, &mut sink, &mut progress);
    let res = fs.fsck(&mut r);
    if tty {
        eprint!("\r\x1b[K");
    }
    let report = match res {
        Ok(rep) => rep,
        Err(e) => {
            eprintln!("fsck.arborfs: {}", describe(&e, &a.devices));
            return if e.is_damage() { EXIT_UNCORRECTED } else { EXIT_OPERATIONAL };
        }
    };
    if repair == Repair::Yes {
        if let Err(e) = fs.close() {
            eprintln!("fsck.arborfs: writing repairs: {}", describe(&e, &a.devices));
            return EXIT_OPERATIONAL;
        }
    }
    if a.verbose || report.problems > 0 {
        println!(
            "{}: {} problems, {} fixed; {} nodes, {} keys, {} inodes checked",
            a.devices[0].display(),
            report.problems,
            report.fixed,
            report.nodes,
            report.keys,
            report.inodes
        );
    }
    if report.unfixed() > 0 {
        EXIT_UNCORRECTED
    } else if report.fixed > 0 {
        EXIT_FIXED
    } else {
        EXIT_OK
    }
}

/// Run fsck; the exit code follows fsck(8).
pub fn run(a: &Args) -> ExitCode {
    let _ = (a.preen, a.yes, a.force);
    ExitCode::from(check(a))
}
