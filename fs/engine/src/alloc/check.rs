//! fsck of buckets: what each bucket's alloc key should say, given what the
//! trees show lives there. The verdicts are the bucket pass's; repairs and
//! reports are made by fsck.

use super::Bucket;
use crate::format::alloc_info::{AllocInfo, DataType};

/// What a bucket pass decides for one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The key is right.
    Good,
    /// Live nodes and data in one bucket, or pointers into a superblock or
    /// journal bucket (the node and extent passes reported those): nothing
    /// to repair here.
    Conflict(DataType),
    /// The key must say b-tree, with this generation.
    Nodes {
        /// The bucket's generation.
        gen: u32,
        /// Live nodes in it.
        live: u32,
    },
    /// The key must say user data with this usage (repair needs every
    /// extent read).
    Data {
        /// The bucket's generation.
        gen: u32,
        /// Bytes live extents charge to it.
        used: u64,
        /// The key said user data (with the wrong usage or generation).
        key_was_user: bool,
    },
    /// Nothing lives here but the key says otherwise: free it. `leftover`
    /// when it is what a crash leaves (invariant 5: freed silently, as an
    /// open would); `needs_nodes` when the repair needs every tree's nodes
    /// counted, else every extent.
    Free {
        /// What a crash leaves: freed without a report.
        leftover: bool,
        /// The repair needs every tree's nodes counted (else every extent).
        needs_nodes: bool,
    },
}

/// The verdict for a bucket whose table state is `bk`, whose persisted key
/// is `key`, into which live extents charge `used` bytes and `live` nodes
/// point.
pub fn verdict(bk: &Bucket, key: Option<AllocInfo>, used: u64, live: u32) -> Verdict {
    if matches!(bk.data_type, DataType::Superblock | DataType::Journal) {
        return if used > 0 || live > 0 { Verdict::Conflict(bk.data_type) } else { Verdict::Good };
    }
    if live > 0 && used > 0 {
        return Verdict::Conflict(DataType::User);
    }
    if bk.open {
        // Filled by this run; its key was written when it was opened.
        return Verdict::Good;
    }
    let key_type = key.map_or(DataType::Free, |k| k.data_type);
    if live > 0 {
        let good = key_type == DataType::Btree && key.is_some_and(|k| k.gen == bk.gen);
        return if good { Verdict::Good } else { Verdict::Nodes { gen: bk.gen, live } };
    }
    if used > 0 {
        let good = key.is_some_and(|k| k.data_type == DataType::User && k.gen == bk.gen && k.used == used);
        return if good {
            Verdict::Good
        } else {
            Verdict::Data { gen: bk.gen, used, key_was_user: key_type == DataType::User }
        };
    }
    match key_type {
        DataType::Free => Verdict::Good,
        DataType::Btree => Verdict::Free { leftover: true, needs_nodes: true },
        _ => Verdict::Free { leftover: key.is_some_and(|k| k.used == 0), needs_nodes: false },
    }
}
