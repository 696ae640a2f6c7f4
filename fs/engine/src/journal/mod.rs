//! The journal: b-tree updates are appended here as they commit, so that an
//! fsync writes one journal entry instead of rewriting b-tree paths. Entries go
//! into a ring on one member; a checkpoint writes the dirty nodes and a new
//! superblock, after which the ring space before it is free again.

pub mod checkpoint;
pub mod read;
pub mod write;

use crate::sys::TryVec;

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
    /// Entries written since the last flush of the journal member.
    pub unflushed: bool,
    /// Tag of this file system's entries.
    pub fs_tag: u32,
    /// Why replay stopped before the end of the journal, if it did.
    pub stop: Option<read::JournalStop>,
    /// The sequence moved past stale entries ([`crate::fs::Fs::journal_skip_stale`])
    /// and no checkpoint has recorded that yet: no entry may be written
    /// before one does.
    pub skip_unrecorded: bool,
}

impl Default for Journal {
    fn default() -> Self {
        Self::new()
    }
}

impl Journal {
    /// An empty journal.
    pub const fn new() -> Self {
        Journal {
            dev: 0,
            offset: 0,
            size: 0,
            block: 4096,
            seq: 0,
            cursor: 0,
            start: 0,
            buf: TryVec::new(),
            nr_records: 0,
            max_entry: 0,
            unflushed: false,
            fs_tag: 0,
            stop: None,
            skip_unrecorded: false,
        }
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
