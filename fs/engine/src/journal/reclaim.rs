//! Reclaim: after a checkpoint, the ring before the checkpoint's resume
//! point is free; a read-write open moves the sequence past every entry the
//! ring could still hold.

use super::Journal;

impl Journal {
    /// A checkpoint recorded everything buffered and written so far: the
    /// ring is empty from here, except for a durable write still in flight,
    /// whose room [`Journal::slot`] keeps until it completes.
    pub fn after_checkpoint(&mut self) {
        self.start = self.cursor;
        self.buf.clear();
        self.nr_records = 0;
        self.written = self.appended;
        self.durable = self.appended;
        self.skip_unrecorded = false;
    }

    /// Before a read-write open writes its first entry: move the sequence
    /// past every number an entry in the ring could carry (at most one entry
    /// per block follows the checkpoint), so that no entry left behind the
    /// end of replay (torn, refused, or written out of order before a power
    /// cut) can ever be taken for a new one. Sequence numbers only grow. No
    /// entry is written until a checkpoint records the new sequence.
    pub fn skip_stale(&mut self) {
        let ring_blocks = self.size.checked_div(self.block).unwrap_or(0);
        self.seq = self.seq.wrapping_add(ring_blocks).wrapping_add(1);
        self.skip_unrecorded = true;
    }

    /// Whether the ring is half full: time for a checkpoint.
    pub fn half_full(&self) -> bool {
        self.used() > self.size / 2
    }
}
