//! The journal: b-tree updates are appended here as transactions commit,
//! so that an fsync writes one journal entry instead of rewriting b-tree
//! paths. Entries go into a ring on one member ([`write`]); a checkpoint
//! writes the b-trees and a new superblock, after which the ring space
//! before it is free again ([`reclaim`]); at open, [`read`] replays the
//! entries written after the last checkpoint.
//!
//! The journal knows entries, records and the ring; it does not know the
//! b-trees: replay hands whole entries to the caller, which checks and
//! applies their records.

pub mod read;
pub mod reclaim;
pub mod write;

use crate::format::superblock::Superblock;
use crate::sys::TryVec;
pub use read::{JournalStop, Replay};

/// A durable journal write in flight: the entry at ring offset `at`, `len`
/// bytes (0: a flush of the journal member only), which makes the first
/// `covers` records appended durable when it completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flight {
    /// Ring offset of the entry.
    pub at: u64,
    /// Its padded length; 0 for a flush.
    pub len: u64,
    /// The value of [`Journal::appended`] it makes durable.
    pub covers: u64,
    /// Whether a flush goes before the write (a preflush): without one,
    /// nothing written before the entry needs to be durable first, or the
    /// entry is unordered.
    pub preflush: bool,
    /// Whether the entry is marked unordered (see
    /// [`crate::format::journal::REC_UNORDERED`]): no entry may start before
    /// it completed or a flush was issued after it.
    pub unordered: bool,
}

/// Journal state.
pub struct Journal {
    /// Member holding the ring.
    pub dev: u8,
    /// Byte offset of the ring on the member.
    pub offset: u64,
    /// Ring size.
    pub size: u64,
    /// Alignment of entries.
    pub block: u64,
    /// Sequence of the last entry written (or the checkpoint's).
    pub seq: u64,
    /// Ring offset of the next entry.
    pub cursor: u64,
    /// Ring offset of the first entry after the checkpoint.
    pub start: u64,
    /// The entry being built: header room, then records.
    pub buf: TryVec<u8>,
    /// Records in `buf`.
    pub nr_records: u32,
    /// Largest entry.
    pub max_entry: usize,
    /// Records appended so far (a running count; a failed commit's
    /// records are taken back): what a sync waits for is a value of it.
    pub appended: u64,
    /// How many of them are in entries written to the ring (or in a
    /// checkpoint).
    pub written: u64,
    /// How many of them are durable.
    pub durable: u64,
    /// The durable journal write in flight ([`Journal::start_durable`]),
    /// while the engine lock is not held across it.
    pub in_flight: Option<Flight>,
    /// The entry of the write in flight; `buf` and it trade places as
    /// each durable write starts, so their room is kept.
    pub flight: TryVec<u8>,
    /// Tag of this file system's entries.
    pub fs_tag: u32,
    /// Why replay stopped before the end of the journal, if it did.
    pub stop: Option<JournalStop>,
    /// The unordered entry replay left out because its data was missing.
    pub left_out: Option<u64>,
    /// The sequence moved past stale entries ([`Journal::skip_stale`]) and
    /// no checkpoint has recorded that yet: no entry may be written before
    /// one does.
    pub skip_unrecorded: bool,
    metadata: crate::format::checksum::ChecksumType,
}

impl Journal {
    /// The journal the superblock describes, positioned where replay starts.
    pub fn new(sb: &Superblock) -> Self {
        let block = u64::from(sb.block_size).max(1);
        // Entries are padded to blocks; the limit is a whole number of blocks
        // so that what commit accepts, replay accepts too.
        let max_entry = ((sb.journal_size / 4).min(4 << 20).checked_div(block).unwrap_or(0) * block) as usize;
        Journal {
            dev: sb.journal_dev,
            offset: sb.journal_offset,
            size: sb.journal_size,
            block,
            seq: sb.checkpoint_seq,
            cursor: sb.journal_resume,
            start: sb.journal_resume,
            buf: TryVec::new(),
            nr_records: 0,
            max_entry,
            appended: 0,
            written: 0,
            durable: 0,
            in_flight: None,
            flight: TryVec::new(),
            fs_tag: crate::format::journal::fs_tag(&sb.uuid),
            stop: None,
            left_out: None,
            skip_unrecorded: false,
            metadata: sb.meta_csum,
        }
    }

    /// Whether entries were written that are not durable yet.
    pub fn unflushed(&self) -> bool {
        self.written > self.durable
    }

    /// Bytes of the ring holding entries not yet covered by a checkpoint.
    pub fn used(&self) -> u64 {
        if self.cursor >= self.start {
            self.cursor - self.start
        } else {
            self.size - self.start + self.cursor
        }
    }
}
