//! Trim (FITRIM, `fstrim`): the runs of buckets nothing can refer to, to be
//! discarded on request rather than as they are freed (the `discard` mount
//! option, [`Allocator::take_discards`]).

use super::Allocator;
use crate::error::Result;
use crate::sys::TryVec;

impl Allocator {
    /// The runs of allocatable buckets on every member that lie inside the
    /// byte range `[start, end)` of that member, adjacent buckets merged, as
    /// (member, byte offset, length); runs shorter than `min_len` are left
    /// out. Allocatable means free, free in the durable checkpoint too, and
    /// not being filled, so nothing on disk or in memory points into them.
    pub fn trim_ranges(&self, start: u64, end: u64, min_len: u64) -> Result<TryVec<(u8, u64, u64)>> {
        let mut out = TryVec::new();
        for (dev, table) in self.tables.iter().enumerate() {
            let Some(&size) = self.bucket_size.get(dev) else { continue };
            if size == 0 {
                continue;
            }
            let mut run: Option<(u64, u64)> = None;
            let first = start / size;
            let last = end.div_ceil(size).min(table.len() as u64);
            for b in first..last {
                let free = table.get(b as usize).is_some_and(|bk| bk.allocatable());
                // Whole buckets only: a bucket the range cuts is left alone.
                let inside = b * size >= start && (b + 1).saturating_mul(size) <= end;
                match (&mut run, free && inside) {
                    (Some((_, len)), true) => *len += size,
                    (None, true) => run = Some((b * size, size)),
                    (r, false) => {
                        if let Some((off, len)) = r.take() {
                            push_run(&mut out, dev as u8, off, len, min_len)?;
                        }
                    }
                }
            }
            if let Some((off, len)) = run {
                push_run(&mut out, dev as u8, off, len, min_len)?;
            }
        }
        Ok(out)
    }
}

fn push_run(out: &mut TryVec<(u8, u64, u64)>, dev: u8, off: u64, len: u64, min_len: u64) -> Result<()> {
    if len >= min_len.max(1) {
        out.try_push((dev, off, len))?;
    }
    Ok(())
}
