//! fsck: check every structure and cross-check them, repairing what is safe.
//!
//! Each subsystem owns its checks: `btree::check` verifies nodes (checksums,
//! order, ranges, value formats), `alloc::check` decides what a bucket's
//! key should say, and `fs::check` checks the logical structure (inodes,
//! link counts, dirents, extents, xattrs, orphans, counters). This module
//! reports problems and drives the passes that span subsystems: [`nodes`]
//! (every node of every tree), [`positions`] (keys where the format allows
//! them) and [`buckets`] (bucket usage from the trees, before and after the
//! repairs). Each problem has a persistent number.
//!
//! Repair never destroys what is reachable and always converges:
//! - The file system is opened with [`crate::fs::OpenOptions::check`], so
//!   nothing is written before fsck has learnt from the trees which buckets
//!   hold live nodes and extents; those are protected in memory before the
//!   first repair allocates anything, and the alloc keys are rewritten from
//!   what the trees say only at the end.
//! - A repair that needs the complete picture of a b-tree (link counts need
//!   every inode and dirent, bucket usage every extent) is not made when
//!   that tree could not be read completely: the problem is reported as
//!   left uncorrected ([`Reporter::may_fix`]).
//! - Every repair leaves the structure in a state the next run accepts: a
//!   second `fsck -y` changes nothing.

pub mod buckets;
pub mod nodes;
pub mod positions;
pub mod salvage;

use crate::error::{Error, Result};
use crate::format::key::BTREE_ID_NR;
use crate::format::BtreeId;
use crate::fs::Fs;
use crate::sys::BlockDevice;

/// What fsck may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// Report only (`-n`).
    No,
    /// Fix everything fixable (`-y`, `-p`).
    Yes,
}

/// Kinds of problems. Persistent numbers, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ProblemKind {
    /// A b-tree node cannot be read or fails verification.
    BadNode = 1,
    /// A bucket's recorded data type is wrong.
    BucketType = 2,
    /// A user bucket's recorded usage is wrong.
    BucketUsage = 3,
    /// A b-tree bucket holds no live node but is not free, or the reverse.
    BucketNodes = 4,
    /// An extent belongs to no inode, or to one that cannot have data.
    ExtentOrphan = 5,
    /// Extents of one file overlap.
    ExtentOverlap = 6,
    /// An extent points outside the data buckets or with a stale generation.
    ExtentBadPtr = 7,
    /// A directory entry names a missing inode.
    DirentDangling = 8,
    /// A directory entry's type differs from its inode's.
    DirentType = 9,
    /// An inode's link count differs from the entries naming it.
    LinkCount = 10,
    /// An inode with links is named by no directory entry.
    Unreachable = 11,
    /// A directory's link count differs from 2 + its subdirectories.
    DirLinkCount = 12,
    /// An xattr belongs to no inode.
    XattrOrphan = 13,
    /// An unlinked inode is missing from the orphan list.
    OrphanMissing = 14,
    /// The orphan list names an inode that is linked or gone.
    OrphanStale = 15,
    /// The inode counter is wrong.
    InodeCounter = 16,
    /// The stored-data counter is wrong.
    DataCounter = 17,
    /// An inode's allocated-bytes field is wrong.
    AllocBytes = 18,
    /// A directory's parent pointer is wrong.
    DirParent = 19,
    /// The root directory is missing or not a directory.
    RootMissing = 20,
    /// A directory is named by more than one entry.
    DirMultiplyLinked = 21,
    /// A directory entry sits outside its name's hash slots.
    DirentSlot = 22,
    /// A directory entry sits in something that is not a directory.
    DirentParent = 23,
    /// A key could not be read (damaged b-tree): the pass stopped early.
    PassAborted = 24,
    /// Two entries of one directory have the same name.
    DirentDuplicate = 25,
    /// A journal entry breaks the format's rules; replay stopped before it.
    JournalInvalid = 26,
    /// A key sits at a position the format does not allow for its b-tree.
    KeyPosition = 27,
    /// A directory is part of a cycle of directories cut off from the root.
    DirCycle = 28,
    /// An alloc key names a bucket that cannot have one.
    AllocKeyInvalid = 29,
    /// A directory entry names the root directory.
    DirentRoot = 30,
    /// Every b-tree root is unreadable: the superblock is probably wrong,
    /// and no node is cut out.
    RootsUnreadable = 31,
    /// A node pointer's generation differs from its bucket's, though the
    /// node it names is there (its sequence number matches).
    NodeGen = 32,
    /// A key of a leaf that failed verification has a value that does not
    /// decode (or a type its b-tree does not hold): the rest of the leaf
    /// is kept, the key is dropped.
    KeyDropped = 33,
    /// An inode's value does not decode: it is rebuilt from what of it
    /// reads, the entries and extents the file has.
    InodeRebuilt = 34,
}

impl ProblemKind {
    /// A stable name (`snake_case`), for machine-readable reports.
    pub const fn name(self) -> &'static str {
        match self {
            ProblemKind::BadNode => "bad_node",
            ProblemKind::BucketType => "bucket_type",
            ProblemKind::BucketUsage => "bucket_usage",
            ProblemKind::BucketNodes => "bucket_nodes",
            ProblemKind::ExtentOrphan => "extent_orphan",
            ProblemKind::ExtentOverlap => "extent_overlap",
            ProblemKind::ExtentBadPtr => "extent_bad_ptr",
            ProblemKind::DirentDangling => "dirent_dangling",
            ProblemKind::DirentType => "dirent_type",
            ProblemKind::LinkCount => "link_count",
            ProblemKind::Unreachable => "unreachable",
            ProblemKind::DirLinkCount => "dir_link_count",
            ProblemKind::XattrOrphan => "xattr_orphan",
            ProblemKind::OrphanMissing => "orphan_missing",
            ProblemKind::OrphanStale => "orphan_stale",
            ProblemKind::InodeCounter => "inode_counter",
            ProblemKind::DataCounter => "data_counter",
            ProblemKind::AllocBytes => "alloc_bytes",
            ProblemKind::DirParent => "dir_parent",
            ProblemKind::RootMissing => "root_missing",
            ProblemKind::DirMultiplyLinked => "dir_multiply_linked",
            ProblemKind::DirentSlot => "dirent_slot",
            ProblemKind::DirentParent => "dirent_parent",
            ProblemKind::PassAborted => "pass_aborted",
            ProblemKind::DirentDuplicate => "dirent_duplicate",
            ProblemKind::JournalInvalid => "journal_invalid",
            ProblemKind::KeyPosition => "key_position",
            ProblemKind::DirCycle => "dir_cycle",
            ProblemKind::AllocKeyInvalid => "alloc_key_invalid",
            ProblemKind::DirentRoot => "dirent_root",
            ProblemKind::RootsUnreadable => "roots_unreadable",
            ProblemKind::NodeGen => "node_gen",
            ProblemKind::KeyDropped => "key_dropped",
            ProblemKind::InodeRebuilt => "inode_rebuilt",
        }
    }

    /// The persistent number.
    pub const fn number(self) -> u32 {
        self as u32
    }
}

/// One problem found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problem {
    /// What.
    pub kind: ProblemKind,
    /// Where: an inode, or a device index for bucket problems.
    pub ino: u64,
    /// What was found (meaning depends on the kind).
    pub found: u64,
    /// What was expected.
    pub expected: u64,
    /// Whether it was repaired.
    pub fixed: bool,
    /// The underlying error, for unreadable structures.
    pub err: Option<Error>,
    /// Repairs were asked for, but this one was not made because a pass it
    /// depends on could not read its b-tree completely.
    pub skipped: bool,
}

impl core::fmt::Display for Problem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (i, a, b) = (self.ino, self.found, self.expected);
        match self.kind {
            ProblemKind::BadNode => write!(f, "b-tree node unreadable")?,
            ProblemKind::BucketType => write!(f, "device {i} bucket {a}: wrong data type (should hold {b})")?,
            ProblemKind::BucketUsage => {
                write!(f, "device {i} bucket {a}: usage recorded wrong, live extents use {b} bytes")?
            }
            ProblemKind::BucketNodes => {
                write!(f, "device {i} bucket {a}: holds {b} live b-tree nodes but its state disagrees")?
            }
            ProblemKind::ExtentOrphan => {
                write!(f, "inode {i}: extent ending at {a} belongs to no regular file")?
            }
            ProblemKind::ExtentOverlap => {
                write!(f, "inode {i}: extent ending at {a} overlaps the previous one ending at {b}")?
            }
            ProblemKind::ExtentBadPtr => {
                write!(f, "inode {i}: extent ending at {a} points to an invalid or stale location")?
            }
            ProblemKind::DirentDangling => {
                write!(f, "directory {i}: entry at slot {a} names missing inode {b}")?
            }
            ProblemKind::DirentType => write!(f, "directory {i}: entry for inode {a} has type {b} wrong")?,
            ProblemKind::LinkCount => {
                write!(f, "inode {i}: link count {a}, but {b} directory entries name it")?
            }
            ProblemKind::Unreachable => {
                write!(f, "inode {i}: has {a} links but no directory entry names it")?
            }
            ProblemKind::DirLinkCount => write!(f, "directory {i}: link count {a}, should be {b}")?,
            ProblemKind::XattrOrphan => write!(f, "inode {i}: extended attribute for a missing inode")?,
            ProblemKind::OrphanMissing => write!(f, "inode {i}: unlinked but not on the orphan list")?,
            ProblemKind::OrphanStale => write!(f, "inode {i}: on the orphan list but linked or missing")?,
            ProblemKind::InodeCounter => write!(f, "inode counter is {a}, counted {b}")?,
            ProblemKind::DataCounter => write!(f, "stored data counter is {a}, counted {b}")?,
            ProblemKind::AllocBytes => write!(f, "inode {i}: allocated bytes {a}, extents use {b}")?,
            ProblemKind::DirParent => write!(f, "directory {i}: parent recorded as {a}, is {b}")?,
            ProblemKind::RootMissing => write!(f, "root directory {i} is missing or not a directory")?,
            ProblemKind::DirMultiplyLinked => write!(f, "directory {i}: named by {a} entries")?,
            ProblemKind::DirentSlot => {
                write!(f, "directory {i}: entry at slot {a} is outside its name's hash slots")?
            }
            ProblemKind::DirentParent => {
                write!(f, "inode {i}: holds directory entries but is not a directory")?
            }
            ProblemKind::PassAborted => write!(f, "check stopped early")?,
            ProblemKind::DirentDuplicate => {
                write!(f, "directory {i}: entry at slot {a} repeats the name of the entry at slot {b}")?
            }
            ProblemKind::JournalInvalid => {
                write!(f, "journal entry {i} breaks the format's rules; replay stopped before it")?
            }
            ProblemKind::KeyPosition => {
                write!(f, "inode or device {i}: key at offset {a} snapshot {b} is at a position its b-tree does not allow")?
            }
            ProblemKind::DirCycle => write!(f, "directory {i}: in a cycle of directories cut off from the root")?,
            ProblemKind::DirentRoot => write!(f, "directory {i}: entry at slot {a} names the root directory")?,
            ProblemKind::RootsUnreadable => write!(
                f,
                "all {a} b-tree roots are unreadable: the superblock is probably damaged, so no node was cut out"
            )?,
            ProblemKind::AllocKeyInvalid => {
                write!(f, "device {i} bucket {a}: alloc key for a bucket that cannot have one")?
            }
            ProblemKind::NodeGen => write!(
                f,
                "b-tree {i}: a node pointer has generation {a} where its bucket has {b} (the node is intact)"
            )?,
            ProblemKind::KeyDropped => write!(
                f,
                "inode {i}: key at offset {a} of the {} b-tree does not decode and is dropped (the rest of its node kept)",
                BtreeId::ALL.get(b as usize).map_or("unknown", |t| t.name())
            )?,
            ProblemKind::InodeRebuilt => {
                write!(f, "inode {i}: attributes do not decode (mode {a:o}); rebuilt with mode {b:o}")?
            }
        }
        if let Some(e) = self.err {
            write!(f, ": {e}")?;
        }
        if self.fixed {
            f.write_str(" (fixed)")?;
        } else if self.skipped {
            f.write_str(" (not fixed: a b-tree it depends on could not be read completely)")?;
        }
        Ok(())
    }
}

/// Totals of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Problems found.
    pub problems: u64,
    /// Of them, repaired.
    pub fixed: u64,
    /// B-tree nodes checked.
    pub nodes: u64,
    /// Keys checked.
    pub keys: u64,
    /// Inodes checked.
    pub inodes: u64,
}

impl FsckReport {
    /// Problems left as they were.
    pub fn unfixed(&self) -> u64 {
        self.problems - self.fixed
    }
}

/// Which b-trees every pass could read completely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    complete: [bool; BTREE_ID_NR],
}

impl Walked {
    /// Nothing found incomplete yet.
    pub const fn new() -> Self {
        Walked { complete: [true; BTREE_ID_NR] }
    }

    /// `id` could not be read completely.
    pub fn lost(&mut self, id: BtreeId) {
        if let Some(c) = self.complete.get_mut(id.index()) {
            *c = false;
        }
    }

    /// Whether every tree of `ids` was read completely.
    pub fn complete(&self, ids: &[BtreeId]) -> bool {
        ids.iter().all(|id| self.complete.get(id.index()).copied().unwrap_or(false))
    }
}

impl Default for Walked {
    fn default() -> Self {
        Self::new()
    }
}

/// Passes call this for every problem.
pub struct Reporter<'a> {
    /// Whether to repair.
    pub repair: Repair,
    /// Totals.
    pub report: FsckReport,
    /// Which b-trees could be read completely so far.
    pub walked: Walked,
    sink: &'a mut dyn FnMut(&Problem),
    /// Progress callback: (pass name, done, total).
    pub progress: &'a mut dyn FnMut(&str, u64, u64),
}

impl<'a> Reporter<'a> {
    /// A reporter sending problems to `sink`.
    pub fn new(
        repair: Repair,
        sink: &'a mut dyn FnMut(&Problem),
        progress: &'a mut dyn FnMut(&str, u64, u64),
    ) -> Self {
        Reporter { repair, report: FsckReport::default(), walked: Walked::new(), sink, progress }
    }

    /// Whether repairs are allowed.
    pub fn fixing(&self) -> bool {
        self.repair == Repair::Yes
    }

    /// Whether a repair that relies on the complete contents of `needs` may
    /// be made: repairs are asked for and each of those trees was read
    /// completely.
    pub fn may_fix(&self, needs: &[BtreeId]) -> bool {
        self.fixing() && self.walked.complete(needs)
    }

    /// Record a problem, repaired or not. A problem left alone while
    /// repairing was held back by [`Reporter::may_fix`].
    pub fn problem(&mut self, kind: ProblemKind, ino: u64, found: u64, expected: u64, fixed: bool) {
        let skipped = !fixed && self.fixing();
        self.emit(Problem { kind, ino, found, expected, fixed, err: None, skipped });
    }

    /// Record a problem no repair exists for.
    pub fn unfixable(&mut self, kind: ProblemKind, ino: u64, found: u64, expected: u64) {
        self.emit(Problem { kind, ino, found, expected, fixed: false, err: None, skipped: false });
    }

    /// Record a problem with its error: a tree that could not be read.
    pub fn error(&mut self, kind: ProblemKind, ino: u64, err: Error) {
        self.emit(Problem { kind, ino, found: 0, expected: 0, fixed: false, err: Some(err), skipped: false });
    }

    /// Record damage found (an unreadable node), repaired or not.
    pub fn damage(&mut self, kind: ProblemKind, ino: u64, err: Error, fixed: bool) {
        self.emit(Problem { kind, ino, found: 0, expected: 0, fixed, err: Some(err), skipped: false });
    }

    /// `id` could not be read completely: report why, and hold back the
    /// repairs that need it.
    pub fn tree_lost(&mut self, id: BtreeId, err: Error) {
        self.walked.lost(id);
        self.error(ProblemKind::PassAborted, id as u64, err);
    }

    fn emit(&mut self, p: Problem) {
        self.report.problems += 1;
        if p.fixed {
            self.report.fixed += 1;
        }
        (self.sink)(&p);
    }
}

impl<D: BlockDevice> Fs<D> {
    /// Run every check. Repairs happen only with [`Repair::Yes`] on a
    /// writable file system, best opened with
    /// [`crate::fs::OpenOptions::check`]. Errors that stop a pass become
    /// problems; an `Err` return means fsck itself could not run.
    pub fn fsck(&mut self, r: &mut Reporter<'_>) -> Result<FsckReport> {
        // Repairs must work on a full file system.
        self.with_reserve(|fs| fs.fsck_passes(r))
    }

    fn fsck_passes(&mut self, r: &mut Reporter<'_>) -> Result<FsckReport> {
        if r.fixing() && self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        if let Some(stop) = self.journal_stop() {
            // A read-write open moved the journal past it; the checkpoint
            // below records that, so it is never replayed.
            r.problem(ProblemKind::JournalInvalid, stop.seq, 0, 0, r.fixing());
        }
        let (node_counts, salvage) = self.check_btrees(r)?;
        // Which buckets hold what, from the trees, before any repair.
        self.survey_generations(r)?;
        if r.fixing() {
            self.protect_in_use(r)?;
            self.checkpoint()?;
        }
        // What the leaves cut out still held goes back first: the passes
        // below check it like the rest (and its memory is freed before them).
        self.salvage_put_back(r, &salvage, r.fixing())?;
        drop(salvage);
        self.check_positions(r)?;
        let usage = self.check_fs(r)?;
        if r.fixing() {
            // Repairs (and the orphan deletions an open would do) changed
            // the trees: the bucket pass compares with what they hold now,
            // every node written.
            self.checkpoint()?;
            let (counts, usage) = self.survey_in_use(r)?;
            self.check_buckets(r, &usage, &counts)?;
        } else {
            self.check_buckets(r, &usage, &node_counts)?;
        }
        if r.fixing() {
            self.sync()?;
        }
        Ok(r.report)
    }
}
