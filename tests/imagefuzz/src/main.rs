//! `arborfs-imagefuzz`: run mutated images through the real tool; see the
//! library documentation for what is checked.
#![allow(clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use arborfs_imagefuzz::base::{bases, Base};
use arborfs_imagefuzz::image::Image;
use arborfs_imagefuzz::mutate::{apply, Kind, Rng};
use arborfs_imagefuzz::run::{contents, covers, digest, snapshot, Outcome, Tool};

const USAGE: &str = "usage: arborfs-imagefuzz --arborfs BIN [--seed N] [--cases N | --seconds N]
       [--work DIR] [--keep DIR] [--export DIR --export-count N [--export-only]]
       [--timeout SECS]
--export writes the first N mutated images (sparse) to DIR, for mounting in
QEMU; --export-only writes them without running the tool on them.";

/// Outcome classes, in report order. The first three are fine.
const CLASSES: [&str; 12] = [
    "clean",
    "found",
    "refused",
    "panic",
    "hang",
    "memory",
    "escape",
    "ro-changed",
    "bad-exit",
    "non-convergent",
    "repair-broke",
    "data-lost",
];

struct Opts {
    bin: PathBuf,
    seed: u64,
    cases: Option<u64>,
    seconds: Option<u64>,
    work: PathBuf,
    keep: PathBuf,
    export: Option<PathBuf>,
    export_count: u64,
    export_only: bool,
    timeout: u64,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        bin: PathBuf::new(),
        seed: 1,
        cases: None,
        seconds: None,
        work: PathBuf::from("target/imagefuzz"),
        keep: PathBuf::from("target/imagefuzz/failures"),
        export: None,
        export_count: 0,
        export_only: false,
        timeout: 20,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value\n{USAGE}"));
        let num = |s: String| s.parse::<u64>().map_err(|_| format!("not a number: {s}"));
        match a.as_str() {
            "--arborfs" => o.bin = PathBuf::from(val()?),
            "--seed" => o.seed = num(val()?)?,
            "--cases" => o.cases = Some(num(val()?)?),
            "--seconds" => o.seconds = Some(num(val()?)?),
            "--work" => o.work = PathBuf::from(val()?),
            "--keep" => o.keep = PathBuf::from(val()?),
            "--export" => o.export = Some(PathBuf::from(val()?)),
            "--export-count" => o.export_count = num(val()?)?,
            "--timeout" => o.timeout = num(val()?)?,
            "--export-only" => o.export_only = true,
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument {a}\n{USAGE}")),
        }
    }
    if o.bin.as_os_str().is_empty() {
        return Err(USAGE.into());
    }
    if o.cases.is_none() && o.seconds.is_none() {
        o.cases = Some(200);
    }
    Ok(o)
}

/// Write `bytes` leaving zero blocks as holes.
fn write_sparse(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(path)?;
    f.set_len(bytes.len() as u64)?;
    for (i, chunk) in bytes.chunks(4096).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            f.write_all_at(chunk, (i * 4096) as u64)?;
        }
    }
    Ok(())
}

struct Case<'a> {
    tool: &'a Tool,
    dir: PathBuf,
    img: PathBuf,
    canary: PathBuf,
    log: String,
}

impl Case<'_> {
    fn run(&mut self, args: &[&str]) -> Outcome {
        let o = self.tool.run(&self.dir, args);
        self.log.push_str(&format!(
            "$ arborfs {}\nexit {:?} signal {:?}{}\n{}{}\n",
            args.join(" "),
            o.code,
            o.signal,
            if o.timed_out { " (timed out)" } else { "" },
            tail(&o.stdout),
            tail(&o.stderr)
        ));
        o
    }

    /// Run one case; returns its class.
    fn check(&mut self) -> &'static str {
        let img = self.img.display().to_string();
        let before = digest(&self.img);
        let canary_before = snapshot(&self.canary);
        let sandbox = self.dir.join("sandbox");
        let _ = std::fs::remove_dir_all(&sandbox);
        let _ = std::fs::create_dir_all(&sandbox);
        let dest1 = sandbox.join("dest").display().to_string();
        let mut ro: Vec<Outcome> = Vec::new();
        for args in [
            vec!["show-super", img.as_str()],
            vec!["show-super", "--json", img.as_str()],
            vec!["fsck", "-n", img.as_str()],
            vec!["dump", img.as_str()],
            vec!["restore", img.as_str(), dest1.as_str()],
        ] {
            let o = self.run(&args);
            if let Some(c) = o.crashed() {
                return c;
            }
            if digest(&self.img) != before {
                return "ro-changed";
            }
            ro.push(o);
        }
        if snapshot(&self.canary) != canary_before || Path::new("/outside").exists() {
            return "escape";
        }
        if std::fs::read_dir(&sandbox).map(|d| d.count()).unwrap_or(0) > 1 {
            return "escape";
        }
        let n1 = &ro[2];
        let restore1 = &ro[4];
        if !matches!(n1.code, Some(0 | 1 | 4 | 8)) {
            return "bad-exit";
        }
        let opened = n1.code != Some(8);
        let before_repair = contents(Path::new(&dest1), &restore1.stderr);
        let y1 = self.run(&["fsck", "-y", img.as_str()]);
        if let Some(c) = y1.crashed() {
            return c;
        }
        if !matches!(y1.code, Some(0 | 1 | 4 | 8)) {
            return "bad-exit";
        }
        let n2 = self.run(&["fsck", "-n", img.as_str()]);
        if let Some(c) = n2.crashed() {
            return c;
        }
        if opened && n2.code == Some(8) {
            return "repair-broke";
        }
        if n2.code != Some(0) && n2.code != Some(8) {
            let unfixed = y1.unfixed();
            let left: Vec<_> = n2.problems().into_iter().filter(|p| !unfixed.contains(p)).collect();
            if !left.is_empty() {
                self.log.push_str(&format!("left after -y but not reported unfixed: {left:?}\n"));
                return "non-convergent";
            }
        }
        let y2 = self.run(&["fsck", "-y", img.as_str()]);
        if let Some(c) = y2.crashed() {
            return c;
        }
        if y2.code == Some(1) && y1.code != Some(8) {
            return "non-convergent";
        }
        let dest2 = sandbox.join("dest2").display().to_string();
        let r2 = self.run(&["restore", img.as_str(), dest2.as_str()]);
        if let Some(c) = r2.crashed() {
            return c;
        }
        if restore1.code != Some(1) && r2.code == Some(1) {
            return "repair-broke";
        }
        let after = contents(Path::new(&dest2), &r2.stderr);
        let lost: Vec<_> = before_repair
            .iter()
            .filter(|(d, p)| {
                !after.contains_key(d)
                    && !p.strip_prefix(&dest1).is_ok_and(|rel| covers(p, &Path::new(&dest2).join(rel)))
            })
            .map(|(_, p)| p.display().to_string())
            .collect();
        if !lost.is_empty() && y1.code != Some(8) {
            self.log.push_str(&format!("file contents restored before fsck -y are gone after: {lost:?}\n"));
            return "data-lost";
        }
        match n1.code {
            Some(0) => "clean",
            Some(8) => "refused",
            _ => "found",
        }
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let from = lines.len().saturating_sub(15);
    lines[from..].iter().map(|l| format!("  {l}\n")).collect()
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let work = match std::fs::create_dir_all(&o.work).and_then(|_| std::fs::canonicalize(&o.work)) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("imagefuzz: {}: {e}", o.work.display());
            return ExitCode::from(2);
        }
    };
    let canary = work.join("outside");
    let _ = std::fs::remove_dir_all(&canary);
    let _ = std::fs::create_dir_all(canary.join("inner"));
    let _ = std::fs::write(canary.join("keep"), b"must not change\n");
    let bases: Vec<Base> = match bases(&canary) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("imagefuzz: making base images: {e}");
            return ExitCode::from(2);
        }
    };
    let bin = match std::fs::canonicalize(&o.bin) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("imagefuzz: {}: {e}", o.bin.display());
            return ExitCode::from(2);
        }
    };
    let tool = Tool { bin, timeout: Duration::from_secs(o.timeout), memory: 2 << 30 };
    // The sandbox is work/case/sandbox/dest: relative escapes in the base
    // images ("../../outside") land in the canary.
    let dir = work.join("case");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    // The base images must be clean, or every case inherits their problems.
    for b in &bases {
        let path = dir.join(format!("base-{}.img", b.name));
        let o = write_sparse(&path, &b.bytes)
            .map(|_| tool.run(&dir, &["fsck", "-n", &path.display().to_string()]));
        match o {
            Ok(o) if o.code == Some(0) => {}
            Ok(o) => {
                eprintln!("imagefuzz: base image {} is not clean:\n{}{}", b.name, o.stdout, o.stderr);
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("imagefuzz: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let mut counts: BTreeMap<(Kind, &'static str), u64> = BTreeMap::new();
    let mut per_kind: BTreeMap<Kind, u64> = BTreeMap::new();
    let start = Instant::now();
    let mut failures = 0u64;
    let mut exported = 0u64;
    let mut i = 0u64;
    loop {
        if o.cases.is_some_and(|n| i >= n) || o.seconds.is_some_and(|s| start.elapsed().as_secs() >= s) {
            break;
        }
        let kind = Kind::ALL[(i % Kind::ALL.len() as u64) as usize];
        let mut rng =
            Rng((o.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03)) | 1);
        let base = &bases[rng.below(bases.len())];
        let mut img = Image { bytes: base.bytes.clone() };
        // Some cases stack two mutations.
        let mut what = Vec::new();
        for round in 0..(1 + usize::from(rng.below(4) == 0)) {
            let k = if round == 0 { kind } else { Kind::ALL[rng.below(Kind::ALL.len())] };
            if let Some(w) = apply(k, &mut rng, &mut img) {
                what.push(w);
            }
        }
        i += 1;
        if what.is_empty() {
            continue;
        }
        let path = dir.join("image");
        if write_sparse(&path, &img.bytes).is_err() {
            eprintln!("imagefuzz: cannot write {}", path.display());
            return ExitCode::from(2);
        }
        if let Some(ex) = &o.export {
            if exported < o.export_count {
                let _ = std::fs::create_dir_all(ex);
                let _ = write_sparse(&ex.join(format!("{exported:04}-{}.img", kind.name())), &img.bytes);
                exported += 1;
            }
            if o.export_only {
                if exported >= o.export_count {
                    break;
                }
                continue;
            }
        }
        let mut case = Case {
            tool: &tool,
            dir: dir.clone(),
            img: path.clone(),
            canary: canary.clone(),
            log: String::new(),
        };
        let class = case.check();
        *counts.entry((kind, class)).or_default() += 1;
        *per_kind.entry(kind).or_default() += 1;
        if CLASSES.iter().position(|c| *c == class).is_some_and(|p| p >= 3) {
            failures += 1;
            let keep = o.keep.join(format!("case-{}-{}-{class}", i - 1, kind.name()));
            let _ = std::fs::create_dir_all(&keep);
            let _ = write_sparse(&keep.join("image"), &img.bytes);
            let _ = write_sparse(&keep.join("base.img"), &base.bytes);
            let _ = std::fs::write(
                keep.join("log.txt"),
                format!(
                    "seed {} case {} base {}\n{}\n\n{}",
                    o.seed,
                    i - 1,
                    base.name,
                    what.join("\n"),
                    case.log
                ),
            );
            eprintln!(
                "imagefuzz: case {} ({}, {}): {class}: {}",
                i - 1,
                base.name,
                kind.name(),
                what.join("; ")
            );
        }
    }
    println!(
        "imagefuzz: seed {}, {} cases in {:.0} s",
        o.seed,
        per_kind.values().sum::<u64>(),
        start.elapsed().as_secs_f64()
    );
    print!("{:<14}", "kind");
    for c in CLASSES {
        print!(" {c:>8}");
    }
    println!();
    for k in Kind::ALL {
        print!("{:<14}", k.name());
        for c in CLASSES {
            print!(" {:>8}", counts.get(&(k, c)).copied().unwrap_or(0));
        }
        println!();
    }
    if failures > 0 {
        println!("imagefuzz: {failures} failing cases kept in {}", o.keep.display());
        ExitCode::from(1)
    } else {
        println!("imagefuzz: no failures");
        ExitCode::SUCCESS
    }
}
