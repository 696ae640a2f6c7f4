//! Progress of long operations: a bar with rate and ETA on a terminal
//! (indicatif), nothing on a pipe, and, for fsck(8)'s `-C FD`, the
//! machine-readable lines e2fsck writes (`PASS CURRENT MAX DEVICE`).

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One operation's progress.
pub struct Progress {
    bar: Option<ProgressBar>,
    machine: Option<std::fs::File>,
    device: String,
    passes: Vec<String>,
}

impl Progress {
    /// Progress shown on stderr when it is a terminal (and `quiet` is
    /// off); `machine_fd` also gets e2fsck-style lines. `unit` names what
    /// is counted ("files", "steps").
    pub fn new(device: &str, unit: &str, quiet: bool, machine_fd: Option<i32>) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(&format!(
                "{{prefix:>12}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}} left) {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style.progress_chars("=> "));
            b
        });
        // An inherited descriptor, reached through /proc so that no unsafe
        // conversion of a raw number into a File is needed.
        let machine = machine_fd
            .and_then(|fd| std::fs::OpenOptions::new().write(true).open(format!("/proc/self/fd/{fd}")).ok());
        Progress { bar, machine, device: device.to_string(), passes: Vec::new() }
    }

    /// Where `pass` stands: `done` of `total`.
    pub fn update(&mut self, pass: &str, done: u64, total: u64) {
        let number = match self.passes.iter().position(|p| p == pass) {
            Some(i) => i + 1,
            None => {
                self.passes.push(pass.to_string());
                self.passes.len()
            }
        };
        if let Some(b) = &self.bar {
            b.set_prefix(pass.to_string());
            b.set_length(total);
            b.set_position(done);
        }
        if let Some(m) = &mut self.machine {
            let _ = writeln!(m, "{number} {done} {total} {}", self.device);
        }
    }

    /// A message beside the bar (a file name).
    pub fn message(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
    }

    /// Print `line` without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    /// Take the bar off the screen.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
