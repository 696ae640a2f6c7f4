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

use super::replay::data_check_bytes;
use super::Fs;
use crate::error::{Error, Result};
use crate::format::extent::Extent;
use crate::format::journal::{Record, Records, JOURNAL_HEADER_BYTES, UNORDERED_CHECK_MAX_BYTES};
use crate::format::superblock::INCOMPAT_UNORDERED_ENTRIES;
use crate::format::{BtreeId, KeyType};
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
    /// Write [`Fs::sync_write_bytes`] at byte `offset` of member `dev`,
    /// durably (a FUA request, after a flush when `preflush`); when they
    /// are empty, flush the member. Then report with [`Fs::sync_done`].
    Write {
        /// The journal member.
        dev: u8,
        /// Byte offset on it.
        offset: u64,
        /// Whether the writes completed before must be durable before this
        /// one is (a preflush).
        preflush: bool,
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
            let (mut preflush, mut unordered) = (false, false);
            if self.journal.nr_records > 0 {
                if self.data_unflushed() {
                    // The journal member's data is the entry's own business.
                    let jdev = usize::from(self.journal.dev);
                    for (i, d) in self.devs.iter_mut().enumerate() {
                        if i != jdev {
                            d.flush()?;
                        }
                    }
                }
                (preflush, unordered) = self.entry_order()?;
                if preflush {
                    self.data_flushed();
                }
            }
            match self.journal.start_durable(preflush, unordered) {
                Ok(Started::Nothing) => return Ok(SyncStep::Durable),
                Ok(Started::Write(f)) => {
                    self.unordered_from = f.unordered.then_some(self.data_writes);
                    let offset = self.journal.offset + f.at;
                    return Ok(SyncStep::Write { dev: self.journal.dev, offset, preflush: f.preflush });
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

    /// Whether the entry about to be written durably needs a flush before
    /// it (which on a device that emulates FUA with a flush after the write
    /// makes a sync cost two flushes), and whether it was marked unordered.
    /// No flush is needed when no data was written since the last one and
    /// the entry's write makes the entries before it durable too (or they
    /// are); nor, on a file system that allows it, when the write makes
    /// everything before it durable and replay can check the data the
    /// entry's extents point at: then the entry is marked unordered (see
    /// [`crate::format::journal::REC_UNORDERED`]).
    fn entry_order(&mut self) -> Result<(bool, bool)> {
        let flushes_all = self.journal_fua_flushes_all()?;
        if !self.data_unflushed() {
            return Ok((!flushes_all && self.journal.unflushed(), false));
        }
        if !flushes_all || self.sb.incompat & INCOMPAT_UNORDERED_ENTRIES == 0 {
            return Ok((true, false));
        }
        let marker = Record::Unordered;
        let room = self.journal.padded_with(marker.encoded_len()) <= self.journal.max_entry as u64;
        if !room || !self.entry_data_checkable(UNORDERED_CHECK_MAX_BYTES) {
            return Ok((true, false));
        }
        self.journal.append(&marker)?;
        Ok((false, true))
    }

    /// Whether the journal member's FUA write makes every write completed
    /// before it durable ([`BlockDevice::fua_flushes_all`]).
    fn journal_fua_flushes_all(&self) -> Result<bool> {
        let dev = self.devs.get(usize::from(self.journal.dev)).ok_or(Error::Internal("journal device"))?;
        Ok(dev.fua_flushes_all())
    }

    /// Whether replay could check the data of every extent the entry being
    /// built points at, reading at most `max` bytes.
    fn entry_data_checkable(&self, max: u64) -> bool {
        let body = self.journal.buf.get(JOURNAL_HEADER_BYTES..).unwrap_or(&[]);
        let mut bytes = 0u64;
        for rec in Records::new(body, self.journal.nr_records) {
            match rec {
                Ok(Record::BtreeUpdate {
                    btree: BtreeId::Extents,
                    kind: Some(KeyType::Extent),
                    value,
                    ..
                }) => {
                    match Extent::decode(value).ok().and_then(|e| data_check_bytes(&e, self.journal.block)) {
                        Some(n) => bytes = bytes.saturating_add(n),
                        None => return false,
                    }
                    if bytes > max {
                        return false;
                    }
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Whether `target` (from [`Fs::sync_target`]) is durable.
    pub fn sync_durable(&self, target: u64) -> bool {
        self.journal.durable >= target
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
        // An unordered write's trailing flush made durable every data write
        // completed before it started.
        if let Some(from) = self.unordered_from.take() {
            if res.is_ok() && matches!(self.journal_fua_flushes_all(), Ok(true)) {
                self.data_durable = self.data_durable.max(from);
            }
        }
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
                SyncStep::Write { dev, offset, preflush } => {
                    let bytes = self.journal.flight_bytes();
                    let res = match self.devs.get_mut(usize::from(dev)) {
                        None => Err(Error::Internal("journal device")),
                        Some(d) if bytes.is_empty() => d.flush(),
                        Some(d) if preflush => d.write_durable(offset, bytes),
                        Some(d) => d.write_fua(offset, bytes),
                    };
                    self.sync_done(res)?;
                }
            }
        }
    }
}
