//! The man pages, generated from the command-line definitions (clap_mangen):
//! arborfs(8), one arborfs-SUBCOMMAND(8) per subcommand, mkfs.arborfs(8) and
//! fsck.arborfs(8). `make install` installs them; `make check` compares them
//! with the committed ones in Documentation/man/ (arborfs(5), about mount
//! options and on-disk concepts, is written by hand there).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;

/// Options of `arborfs man`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to write the pages into.
    dir: PathBuf,
}

fn write(dir: &Path, name: &str, cmd: clap::Command) -> std::io::Result<()> {
    let cmd = cmd.name(name.to_string()).bin_name(name.to_string());
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .section("8")
        .manual("arborfs")
        .source(format!("arborfs {}", env!("CARGO_PKG_VERSION")))
        .render(&mut out)?;
    std::fs::write(dir.join(format!("{name}.8")), out)
}

fn generate(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let top = crate::Cli::command();
    write(dir, "arborfs", top.clone())?;
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        write(dir, &format!("arborfs-{}", sub.get_name()), sub.clone())?;
    }
    write(dir, "mkfs.arborfs", crate::MkfsCli::command())?;
    write(dir, "fsck.arborfs", crate::FsckCli::command())
}

/// Run `arborfs man DIR`.
pub fn run(a: &Args) -> ExitCode {
    match generate(&a.dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arborfs man: {}: {e}", a.dir.display());
            ExitCode::FAILURE
        }
    }
}
