//! Making committed transactions durable (fsync, sync(2), syncfs(2)) with
//! group commit: a caller takes a target (every record appended so far),
//! then steps until the target is durable. A step either finds it durable,
//! or finds another caller's journal write in flight (wait for it and step
//! again: it may cover this target too), or starts a write the caller
//! issues without the engine lock and reports back. Callers that arrive
//! while a write is in flight share the next one.
//!
//! [`Fs::sync`] runs the steps itself, for callers that hold the engine
//! alone (the tools, the engine's tests).

use super::Fs;
use crate::error::{Error, Result};
use crate::journal::write::Started;
use crate::sys::BlockDevice;

/// What the caller of [`Fs::sync_step`] does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStep {
    /// The target is durable.
    Durable,
    /// Another caller's journal write is in flight: step again once it
    /// has been reported.
    Wait,
    /// Write [`Fs::sync_write_bytes`] at byte `offset` of member `dev` so
    /// that it and the writes completed before it are durable (one
    /// preflush + FUA request); when they are empty, flush the member.
    /// Then report with [`Fs::sync_done`].
    Write {
        /// The journal member.
        dev: u8,
        /// Byte offset on it.
        offset: u64,
    },
}

impl<D: BlockDevice> Fs<D> {
    /// What a sync starting now waits for: every record appended so far.
    pub fn sync_target(&self) -> u64 {
        self.journal.appended
    }

    /// One step towards making `target` durable (see the module docs).
    pub fn sync_step(&mut self, target: u64) -> Result<SyncStep> {
        if self.read_only && self.journal.in_flight.is_none() {
            return Ok(SyncStep::Durable);
        }
        loop {
            if self.journal.durable >= target {
                return Ok(SyncStep::Durable);
            }
            self.check_writable()?;
            if self.journal.in_flight.is_some() {
                return Ok(SyncStep::Wait);
            }
            if self.journal.nr_records > 0 && self.data_unflushed {
                // The journal write's preflush covers its own member's data.
                let jdev = usize::from(self.journal.dev);
                for (i, d) in self.devs.iter_mut().enumerate() {
                    if i != jdev {
                        d.flush()?;
                    }
                }
                self.data_unflushed = false;
            }
            match self.journal.start_durable() {
                Ok(Started::Nothing) => return Ok(SyncStep::Durable),
                Ok(Started::Write(f)) => {
                    return Ok(SyncStep::Write { dev: self.journal.dev, offset: self.journal.offset + f.at })
                }
                // The checkpoint makes everything appended durable.
                Ok(Started::NoRoom) => self.checkpoint()?,
                Err(e) => {
                    self.fail(e);
                    return Err(e);
                }
            }
        }
    }

    /// Whether a [`SyncStep::Write`] has not been reported yet.
    pub fn sync_in_flight(&self) -> bool {
        self.journal.in_flight.is_some()
    }

    /// The bytes of the journal write a [`SyncStep::Write`] asked for; they
    /// stay in place until [`Fs::sync_done`].
    pub fn sync_write_bytes(&self) -> &[u8] {
        self.journal.flight_bytes()
    }

    /// The journal write a [`SyncStep::Write`] asked for completed, or
    /// failed with `res`'s error: then the file system stops, since
    /// transactions committed before may not be durable.
    pub fn sync_done(&mut self, res: Result<()>) -> Result<()> {
        self.journal.finish_durable(res.is_ok());
        if let Err(e) = res {
            self.fail(e);
        }
        res
    }

    /// Make every committed transaction durable, issuing the journal write
    /// itself.
    pub fn sync(&mut self) -> Result<()> {
        let target = self.sync_target();
        loop {
            match self.sync_step(target)? {
                SyncStep::Durable => return Ok(()),
                SyncStep::Wait => return Err(Error::Internal("a journal write of another caller in flight")),
                SyncStep::Write { dev, offset } => {
                    let bytes = self.journal.flight_bytes();
                    let res = match self.devs.get_mut(usize::from(dev)) {
                        None => Err(Error::Internal("journal device")),
                        Some(d) if bytes.is_empty() => d.flush(),
                        Some(d) => d.write_durable(offset, bytes),
                    };
                    self.sync_done(res)?;
                }
            }
        }
    }
}
