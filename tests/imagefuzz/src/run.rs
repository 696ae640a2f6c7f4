//! Running the real `arborfs` tool on a case, under time and memory
//! limits, and classifying what happened.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How one invocation ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal, if one ended it.
    pub signal: Option<i32>,
    /// It ran out of time and was killed.
    pub timed_out: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Outcome {
    /// A Rust panic (panic=abort gives SIGABRT), or an abort on a failed
    /// allocation: (memory, panic).
    pub fn crashed(&self) -> Option<&'static str> {
        if self.timed_out {
            return Some("hang");
        }
        if self.stderr.contains("memory allocation of") {
            return Some("memory");
        }
        if self.stderr.contains("panicked at") || self.code == Some(101) || self.signal.is_some() {
            // SIGKILL from the limit (address space) counts as memory.
            if self.signal == Some(9) {
                return Some("memory");
            }
            return Some("panic");
        }
        None
    }

    /// Problem lines of an fsck run, with the repair suffix taken off.
    pub fn problems(&self) -> BTreeSet<String> {
        self.stdout
            .lines()
            .filter(|l| !l.contains(" problems, ") && l.contains(": "))
            .map(|l| {
                let l = l.split(" (fixed)").next().unwrap_or(l);
                l.split(" (not fixed").next().unwrap_or(l).to_string()
            })
            .collect()
    }

    /// Problem lines an fsck -y run left unrepaired.
    pub fn unfixed(&self) -> BTreeSet<String> {
        self.stdout
            .lines()
            .filter(|l| !l.contains(" problems, ") && l.contains(": ") && !l.ends_with(" (fixed)"))
            .map(|l| l.split(" (not fixed").next().unwrap_or(l).to_string())
            .collect()
    }
}

/// The tool under test with its limits.
pub struct Tool {
    /// The `arborfs` binary.
    pub bin: PathBuf,
    /// Wall-clock limit per invocation.
    pub timeout: Duration,
    /// Address-space limit per invocation, bytes.
    pub memory: u64,
}

impl Tool {
    /// Run `arborfs ARGS` in `dir`.
    pub fn run(&self, dir: &Path, args: &[&str]) -> Outcome {
        let out = dir.join("out.txt");
        let err = dir.join("err.txt");
        let (Ok(o), Ok(e)) = (std::fs::File::create(&out), std::fs::File::create(&err)) else {
            return Outcome {
                code: None,
                signal: None,
                timed_out: false,
                stdout: String::new(),
                stderr: "cannot create output files".into(),
            };
        };
        let child = Command::new("prlimit")
            .arg(format!("--as={}", self.memory))
            .arg("--core=0")
            .arg("--")
            .arg(&self.bin)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(o)
            .stderr(e)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                return Outcome {
                    code: None,
                    signal: None,
                    timed_out: false,
                    stdout: String::new(),
                    stderr: format!("spawn: {e}"),
                }
            }
        };
        let start = Instant::now();
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if start.elapsed() > self.timeout => {
                    let _ = child.kill();
                    timed_out = true;
                    break child.wait().ok();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => break None,
            }
        };
        use std::os::unix::process::ExitStatusExt;
        Outcome {
            code: status.and_then(|s| s.code()),
            signal: if timed_out { None } else { status.and_then(|s| s.signal()) },
            timed_out,
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        }
    }
}

/// A 64-bit digest of a file's bytes (None if it cannot be read).
pub fn digest(path: &Path) -> Option<u64> {
    std::fs::read(path).ok().map(|b| arborfs_engine::format::checksum::xxh64(&b, 0))
}

/// Every path under `root` with what it is (type, size, mode, target, and
/// the content digest of small regular files), sorted: a snapshot to
/// compare for changes.
pub fn snapshot(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&p) else { continue };
        for e in rd.flatten() {
            let path = e.path();
            let Ok(m) = std::fs::symlink_metadata(&path) else { continue };
            use std::os::unix::fs::MetadataExt;
            let extra = if m.file_type().is_symlink() {
                std::fs::read_link(&path).map(|t| t.display().to_string()).unwrap_or_default()
            } else if m.is_file() && m.len() < (64 << 20) {
                format!("{:?}", digest(&path))
            } else {
                String::new()
            };
            out.push(format!("{} {:o} {} {}", path.display(), m.mode(), m.len(), extra));
            if m.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The non-empty regular files under `root` that were restored without a
/// reported problem (`errors` are the restore's messages; a hard link of a
/// file with a problem counts as one too), by content digest.
pub fn contents(root: &Path, errors: &str) -> BTreeMap<u64, PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&p) else { continue };
        for e in rd.flatten() {
            let path = e.path();
            let Ok(m) = std::fs::symlink_metadata(&path) else { continue };
            if m.is_dir() {
                stack.push(path);
            } else if m.is_file() && m.len() > 0 && m.len() < (64 << 20) {
                files.push((path, m.ino()));
            }
        }
    }
    let bad: BTreeSet<u64> = files
        .iter()
        .filter(|(p, _)| {
            let rel = p.strip_prefix(root).map(|r| r.display().to_string()).unwrap_or_default();
            errors.contains(&format!("restore: {rel}:"))
        })
        .map(|(_, ino)| *ino)
        .collect();
    let mut out = BTreeMap::new();
    for (p, ino) in files {
        if bad.contains(&ino) {
            continue;
        }
        if let Some(d) = digest(&p) {
            out.insert(d, p);
        }
    }
    out
}

/// Whether `after` holds everything `before` did: the same length, and
/// every byte that was not zero unchanged (a repair may bring back data
/// that read as a hole before, never take data away).
pub fn covers(before: &Path, after: &Path) -> bool {
    match (std::fs::read(before), std::fs::read(after)) {
        (Ok(b), Ok(a)) => a.len() == b.len() && b.iter().zip(&a).all(|(x, y)| *x == 0 || x == y),
        _ => false,
    }
}
