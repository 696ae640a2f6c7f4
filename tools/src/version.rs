//! `arborfs version`: the tool's version, the on-disk format it reads and
//! writes, and what the loaded kernel module says of itself in
//! /sys/fs/arborfs/features. Tools that talk to the module call
//! [`module_matches`] first, so a mismatch is named rather than failing
//! obscurely.

use std::process::ExitCode;

use arborfs_engine::format::superblock::{COMPAT_KNOWN, INCOMPAT_KNOWN, RO_COMPAT_KNOWN};
use arborfs_engine::format::FORMAT_VERSION;

/// Options of `arborfs version`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// What the module reports, field by field.
pub struct ModuleFeatures {
    /// Its own version.
    pub version: String,
    /// The newest format version it reads and writes.
    pub format: u32,
    /// Feature bits it knows.
    pub compat: u64,
    /// Read-only compatible bits.
    pub ro_compat: u64,
    /// Incompatible bits.
    pub incompat: u64,
}

fn hex(v: &str) -> Option<u64> {
    u64::from_str_radix(v.trim_start_matches("0x"), 16).ok()
}

/// The loaded module's features, if it is loaded.
pub fn module_features() -> Option<ModuleFeatures> {
    let text = std::fs::read_to_string("/sys/fs/arborfs/features").ok()?;
    let mut f = ModuleFeatures { version: String::new(), format: 0, compat: 0, ro_compat: 0, incompat: 0 };
    for line in text.lines() {
        let Some((k, v)) = line.split_once(' ') else { continue };
        match k {
            "version" => f.version = v.to_string(),
            "format" => f.format = v.parse().ok()?,
            "compat" => f.compat = hex(v)?,
            "ro_compat" => f.ro_compat = hex(v)?,
            "incompat" => f.incompat = hex(v)?,
            _ => {}
        }
    }
    Some(f)
}

/// Whether `have` lacks a bit of `need`.
fn lacks(have: u64, need: u64) -> bool {
    need & !have != 0
}

/// Whether the module speaks this tool's format; otherwise a message that
/// says which side to update.
pub fn module_matches(m: &ModuleFeatures) -> Result<(), String> {
    if m.format < FORMAT_VERSION || lacks(m.incompat, INCOMPAT_KNOWN) {
        return Err(format!(
            "the loaded arborfs module ({}) is older than these tools ({}): update the module",
            m.version,
            env!("CARGO_PKG_VERSION")
        ));
    }
    if m.format > FORMAT_VERSION || lacks(INCOMPAT_KNOWN, m.incompat) {
        return Err(format!(
            "the loaded arborfs module ({}) is newer than these tools ({}): update the tools",
            m.version,
            env!("CARGO_PKG_VERSION")
        ));
    }
    Ok(())
}

/// Run `arborfs version`.
pub fn run(_a: &Args) -> ExitCode {
    println!("arborfs {}", env!("CARGO_PKG_VERSION"));
    println!(
        "on-disk format: reads and writes version {FORMAT_VERSION}; features compat {COMPAT_KNOWN:#x}, \
         ro_compat {RO_COMPAT_KNOWN:#x}, incompat {INCOMPAT_KNOWN:#x}"
    );
    match module_features() {
        None => println!("kernel module: not loaded (no /sys/fs/arborfs/features)"),
        Some(m) => {
            println!(
                "kernel module: {}, format version {}; features compat {:#x}, ro_compat {:#x}, incompat {:#x}",
                m.version, m.format, m.compat, m.ro_compat, m.incompat
            );
            if let Err(e) = module_matches(&m) {
                println!("warning: {e}");
            }
        }
    }
    ExitCode::SUCCESS
}
