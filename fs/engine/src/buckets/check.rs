//! fsck pass over buckets: each bucket's type and usage must match what the
//! extents and b-tree nodes found by the other passes say.

use super::Bucket;
use crate::btree::check::NodeCounts;
use crate::error::Result;
use crate::format::alloc_info::DataType;
use crate::fs::Fs;
use crate::fsck::{ProblemKind, Reporter};
use crate::sys::{BlockDevice, TryVec};

/// Bytes charged by live extents per bucket, per member.
pub type Usage = TryVec<TryVec<u64>>;

impl<D: BlockDevice> Fs<D> {
    /// An all-zero usage table shaped like the bucket tables.
    pub(crate) fn usage_table(&self) -> Result<Usage> {
        let mut u: Usage = TryVec::new();
        for t in self.alloc.tables.iter() {
            let mut c = TryVec::new();
            c.try_resize(t.len(), 0u64)?;
            u.try_push(c)?;
        }
        Ok(u)
    }

    /// Compare bucket states with the usage the other passes computed.
    pub(crate) fn check_buckets(
        &mut self,
        r: &mut Reporter<'_>,
        usage: &Usage,
        nodes: &NodeCounts,
    ) -> Result<()> {
        for dev in 0..self.alloc.tables.len() {
            let n = self.alloc.tables.get(dev).map_or(0, |t| t.len());
            for b in 0..n {
                let bk = self.alloc.tables.get(dev).and_then(|t| t.get(b)).copied().unwrap_or_default();
                let used = usage.get(dev).and_then(|t| t.get(b)).copied().unwrap_or(0);
                let live = nodes.get(dev).and_then(|t| t.get(b)).copied().unwrap_or(0);
                self.check_bucket(r, dev as u8, b as u64, bk, used, live)?;
            }
        }
        Ok(())
    }

    fn check_bucket(
        &mut self,
        r: &mut Reporter<'_>,
        dev: u8,
        b: u64,
        bk: Bucket,
        used: u64,
        live: u32,
    ) -> Result<()> {
        if matches!(bk.data_type, DataType::Superblock | DataType::Journal) {
            if used > 0 || live > 0 {
                // The extent and node passes already reported these pointers.
                r.problem(ProblemKind::BucketType, u64::from(dev), b, bk.data_type as u64, false);
            }
            return Ok(());
        }
        let want = if live > 0 {
            DataType::Btree
        } else if used > 0 {
            DataType::User
        } else if bk.open {
            bk.data_type
        } else {
            DataType::Free
        };
        if live > 0 && used > 0 {
            r.problem(ProblemKind::BucketType, u64::from(dev), b, DataType::User as u64, false);
            return Ok(());
        }
        if bk.data_type != want && !(bk.pending && want == DataType::Free) {
            let fix = r.fixing();
            if fix {
                self.bucket_repair(dev, b, want, used)?;
            }
            let kind = if want == DataType::Btree || bk.data_type == DataType::Btree {
                ProblemKind::BucketNodes
            } else {
                ProblemKind::BucketType
            };
            r.problem(kind, u64::from(dev), b, want as u64, fix);
        } else if want == DataType::User && bk.used != used {
            let fix = r.fixing();
            if fix {
                self.bucket_repair(dev, b, want, used)?;
            }
            r.problem(ProblemKind::BucketUsage, u64::from(dev), b, used, fix);
        }
        Ok(())
    }

    fn bucket_repair(&mut self, dev: u8, b: u64, t: DataType, used: u64) -> Result<()> {
        self.in_txn(|fs| {
            let was_alloc = fs.bucket(dev, b).is_some_and(|x| x.allocatable());
            let bk = fs.bucket_mut(dev, b)?;
            if t == DataType::Free && bk.data_type != DataType::Free {
                bk.gen = bk.gen.wrapping_add(1);
            }
            bk.data_type = t;
            bk.used = if t == DataType::User { used } else { 0 };
            let now_alloc = bk.allocatable();
            if was_alloc && !now_alloc {
                fs.alloc.free = fs.alloc.free.saturating_sub(1);
            } else if !was_alloc && now_alloc {
                fs.alloc.free += 1;
            }
            fs.persist_bucket_now(dev, b)
        })
    }
}
