//! `arborfs fsck` / `fsck.arborfs`: check and repair, with fsck(8)'s
//! options and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use arborfs_engine::format::superblock::SB_FLAG_CLEAN;
use arborfs_engine::fs::read_super;
use arborfs_engine::fsck::{FsckReport, Problem, Repair, Reporter};
use arborfs_engine::sys::FileDevice;
use arborfs_engine::{Fs, OpenOptions};
use serde::Serialize;

use crate::device::{describe, mount_state, open_devices};
use crate::progress::Progress;

/// fsck(8): no errors.
pub const EXIT_OK: u8 = 0;
/// fsck(8): errors corrected.
pub const EXIT_FIXED: u8 = 1;
/// fsck(8): errors left uncorrected.
pub const EXIT_UNCORRECTED: u8 = 4;
/// fsck(8): operational error.
pub const EXIT_OPERATIONAL: u8 = 8;
/// fsck(8): usage or syntax error.
pub const EXIT_USAGE: u8 = 16;

/// The exit codes, for --help and the man pages.
pub const EXIT_CODES: &str = "\
Exit status (fsck(8)):
  0   no errors
  1   errors found and corrected
  4   errors left uncorrected (with -n: errors found)
  8   operational error (the devices cannot be opened or read, a device is mounted)
  16  usage or syntax error

Without -n, -y or -p, fsck repairs as -y does: every repair arborfs makes is
safe (it never removes data a file still reaches, and a repair that would need
an unreadable b-tree is left undone and reported).";

/// Options of `arborfs fsck`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct Args {
    /// Check only: change nothing (the journal is replayed in memory).
    #[arg(short = 'n', long = "no", conflicts_with_all = ["yes", "preen"])]
    no: bool,
    /// Repair everything that can be repaired, asking nothing.
    #[arg(short = 'y', long = "yes")]
    yes: bool,
    /// Repair automatically (also -a); a cleanly unmounted file system is
    /// not checked unless -f is given (boot-time fsck).
    #[arg(short = 'p', short_alias = 'a', long = "preen")]
    preen: bool,
    /// Check even a file system marked clean.
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// Print every problem and the totals.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Write progress lines "PASS CURRENT MAX DEVICE" to descriptor FD, as
    /// e2fsck does for fsck(8) -C; without FD, show a progress bar.
    #[arg(short = 'C', value_name = "FD", num_args = 0..=1, default_missing_value = "-1", allow_negative_numbers = true)]
    progress: Option<i32>,
    /// Print the report as JSON on standard output (see arborfs-fsck(8)).
    #[arg(long)]
    json: bool,
    /// Member devices.
    #[arg(required = true)]
    devices: Vec<PathBuf>,
}

/// The JSON report (`fsck --json`); `version` changes when the shape does.
#[derive(Serialize)]
struct JsonReport<'a> {
    version: u32,
    devices: Vec<String>,
    mode: &'a str,
    exit_code: u8,
    result: &'a str,
    problems: Vec<JsonProblem>,
    summary: JsonSummary,
    error: Option<String>,
}

#[derive(Serialize)]
struct JsonProblem {
    number: u32,
    kind: &'static str,
    message: String,
    /// An inode, a device index, a directory or a journal sequence, as the
    /// kind says (see arborfs-fsck(8)).
    location: u64,
    found: u64,
    expected: u64,
    fixed: bool,
    skipped: bool,
    error: Option<String>,
}

#[derive(Serialize, Default)]
struct JsonSummary {
    problems: u64,
    fixed: u64,
    nodes: u64,
    keys: u64,
    inodes: u64,
}

fn result_text(code: u8) -> &'static str {
    match code {
        EXIT_OK => "no errors",
        EXIT_FIXED => "errors corrected",
        EXIT_UNCORRECTED => "errors left uncorrected",
        _ => "operational error",
    }
}

struct Run<'a> {
    a: &'a Args,
    prog: &'a str,
    problems: Vec<JsonProblem>,
}

impl Run<'_> {
    fn name(&self) -> String {
        self.a.devices.first().map(|d| d.display().to_string()).unwrap_or_default()
    }

    fn error(&self, msg: &str) {
        if !self.a.json {
            eprintln!("{}: {msg}", self.prog);
        }
    }

    /// Refuse mounted devices, unless mounted read-only and only checked.
    fn mounted(&self, check_only: bool) -> Result<bool, String> {
        let mut shared = false;
        for d in &self.a.devices {
            if let Some((at, ro)) = mount_state(d) {
                if ro && check_only {
                    shared = true;
                    continue;
                }
                return Err(format!(
                    "{}: is mounted{} at {at}: unmount it first{}",
                    d.display(),
                    if ro { " read-only" } else { "" },
                    if ro { " (or check it with -n)" } else { " (a read-only mount can be checked with -n)" }
                ));
            }
        }
        Ok(shared)
    }

    /// -p on a clean file system: report and skip, as boot-time fsck does.
    fn skip_clean(&self) -> Option<String> {
        let d = self.a.devices.first()?;
        let mut dev = FileDevice::open_shared(d).ok()?;
        let sb = read_super(&mut dev).ok()?;
        (sb.flags & SB_FLAG_CLEAN != 0).then(|| format!("{}: clean, {} inodes", d.display(), sb.inodes))
    }

    fn open(&self, repair: Repair, shared: bool) -> Result<Fs<FileDevice>, String> {
        let opts = OpenOptions { read_only: repair == Repair::No, check: true, ..Default::default() };
        let devs = if shared {
            let mut devs = arborfs_engine::sys::TryVec::new();
            for (i, p) in self.a.devices.iter().enumerate() {
                let mut d = FileDevice::open_shared(p).map_err(|e| format!("{}: {e}", p.display()))?;
                d.set_index(i as u8);
                devs.try_push(d).map_err(|_| "out of memory".to_string())?;
            }
            devs
        } else {
            open_devices(&self.a.devices, repair == Repair::Yes).map_err(|e| e.to_string())?
        };
        Fs::open(devs, &opts).map_err(|e| describe(&e, &self.a.devices))
    }

    fn check(&mut self) -> (u8, Option<FsckReport>, Option<String>) {
        let a = self.a;
        let repair = if a.no { Repair::No } else { Repair::Yes };
        let shared = match self.mounted(repair == Repair::No) {
            Ok(s) => s,
            Err(e) => return (EXIT_OPERATIONAL, None, Some(e)),
        };
        if a.preen && !a.force {
            if let Some(msg) = self.skip_clean() {
                if !a.json {
                    println!("{msg}");
                }
                return (EXIT_OK, None, None);
            }
        }
        let mut fs = match self.open(repair, shared) {
            Ok(fs) => fs,
            Err(e) => return (EXIT_OPERATIONAL, None, Some(e)),
        };
        let machine = a.progress.filter(|&fd| fd >= 0);
        let bar = a.progress.is_some() || a.verbose;
        let progress =
            std::cell::RefCell::new(Progress::new(&self.name(), "passes", !bar || a.json, machine));
        let name = self.name();
        let json = a.json;
        let mut found: Vec<JsonProblem> = Vec::new();
        let res = {
            let mut sink = |p: &Problem| {
                if json {
                    found.push(JsonProblem {
                        number: p.kind.number(),
                        kind: p.kind.name(),
                        message: p.to_string(),
                        location: p.ino,
                        found: p.found,
                        expected: p.expected,
                        fixed: p.fixed,
                        skipped: p.skipped,
                        error: p.err.map(|e| describe(&e, &a.devices)),
                    });
                } else {
                    progress.borrow().println(&format!("{name}: {p}"));
                }
            };
            let mut prog =
                |pass: &str, done: u64, total: u64| progress.borrow_mut().update(pass, done, total);
            let mut r = Reporter::new(repair, &mut sink, &mut prog);
            fs.fsck(&mut r)
        };
        progress.borrow().finish();
        self.problems = found;
        let report = match res {
            Ok(rep) => rep,
            Err(e) => {
                let code = if e.is_damage() { EXIT_UNCORRECTED } else { EXIT_OPERATIONAL };
                return (code, None, Some(describe(&e, &a.devices)));
            }
        };
        if repair == Repair::Yes {
            if let Err(e) = fs.close() {
                return (
                    EXIT_OPERATIONAL,
                    Some(report),
                    Some(format!("writing repairs: {}", describe(&e, &a.devices))),
                );
            }
        }
        let code = if report.unfixed() > 0 {
            EXIT_UNCORRECTED
        } else if report.fixed > 0 {
            EXIT_FIXED
        } else {
            EXIT_OK
        };
        (code, Some(report), None)
    }
}

/// Run fsck; the exit code follows fsck(8).
pub fn run(a: &Args, prog: &str) -> ExitCode {
    let mut r = Run { a, prog, problems: Vec::new() };
    let (code, report, err) = r.check();
    if let Some(e) = &err {
        r.error(e);
    }
    if a.json {
        let rep = report.unwrap_or_default();
        let out = JsonReport {
            version: 1,
            devices: a.devices.iter().map(|d| d.display().to_string()).collect(),
            mode: if a.no { "check" } else { "repair" },
            exit_code: code,
            result: result_text(code),
            problems: std::mem::take(&mut r.problems),
            summary: JsonSummary {
                problems: rep.problems,
                fixed: rep.fixed,
                nodes: rep.nodes,
                keys: rep.keys,
                inodes: rep.inodes,
            },
            error: err,
        };
        match serde_json::to_string_pretty(&out) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("{prog}: {e}"),
        }
    } else if let Some(rep) = report {
        if a.verbose || rep.problems > 0 {
            println!(
                "{}: {} problems, {} fixed; {} nodes, {} keys, {} inodes checked",
                r.name(),
                rep.problems,
                rep.fixed,
                rep.nodes,
                rep.keys,
                rep.inodes
            );
        }
    }
    let _ = (a.yes, a.force);
    ExitCode::from(code)
}
