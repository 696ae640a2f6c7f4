//! The file system: the state of one mounted (or opened) arborfs, its
//! lifecycle (format, open, close), transactions, and the POSIX operations
//! shaped for the VFS (in the submodules).

pub mod check;
pub mod dirent;
pub mod format;
pub mod inode;
pub mod io;
pub mod xattr;

use crate::btree::cache::NodeCache;
use crate::btree::node::ChildRef;
use crate::buckets::Allocator;
use crate::error::{bad_metadata, Error, Result};
use crate::format::extent::Compression;
use crate::format::key::BTREE_ID_NR;
use crate::format::node::BtreePtr;
use crate::format::superblock::{Superblock, SB_BYTES, SB_FLAG_CLEAN, SB_OFFSETS};
use crate::format::{BtreeId, FormatError, Pos, FIRST_FREE_INO};
use crate::journal::Journal;
use crate::sys::{BlockDevice, TryBox, TryVec};

pub use format::FormatOptions;
pub use inode::{Attr, SetAttr};

/// Options for opening a file system.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Never write: the journal is replayed in memory only.
    pub read_only: bool,
    /// Memory budget of the node cache, in bytes.
    pub cache_bytes: usize,
    /// Open for fsck: change nothing at open (no orphan deletion, no
    /// freeing of leftover buckets, no checkpoint), so that fsck can learn
    /// from the trees which buckets are in use before anything allocates.
    pub check: bool,
    /// Do not replay the journal: show the file system as of its last
    /// checkpoint (the `norecovery` mount option). Read-only only.
    pub no_replay: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { read_only: false, cache_bytes: 64 << 20, check: false, no_replay: false }
    }
}

/// File system counters (what statfs and fsck compare).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Inodes in use.
    pub inodes: u64,
    /// Bytes of file data stored (after compression).
    pub data_bytes: u64,
}

/// The transaction in progress.
#[derive(Debug, Default)]
pub struct Txn {
    /// Between begin and commit.
    pub active: bool,
    /// Some update was applied (an abort must then stop the file system).
    pub dirty: bool,
    /// Records journalled by this transaction.
    pub records: u32,
    pub(crate) buf_start: usize,
}

/// What statfs reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// Block size.
    pub block_size: u32,
    /// Total data blocks.
    pub blocks: u64,
    /// Free blocks.
    pub blocks_free: u64,
    /// Blocks available to unprivileged users.
    pub blocks_avail: u64,
    /// Inodes in use plus inodes that could be created.
    pub files: u64,
    /// Inodes that could still be created.
    pub files_free: u64,
    /// Longest name.
    pub name_max: u32,
}

/// Engine statistics (for tools and benchmarks).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Checkpoints done since open.
    pub checkpoints: u64,
    /// Nodes written since open.
    pub nodes_written: u64,
    /// Journal entries replayed at open.
    pub replayed: u64,
    /// Bytes held by the node cache.
    pub cache_bytes: usize,
    /// Dirty nodes.
    pub dirty_nodes: usize,
}

/// An open file system over member devices `D`.
pub struct Fs<D: BlockDevice> {
    pub(crate) devs: TryVec<D>,
    /// The in-memory superblock (the one last written or read), on the heap:
    /// it is large and kernel stacks are small.
    pub sb: TryBox<Superblock>,
    pub(crate) alloc: Allocator,
    pub(crate) cache: NodeCache,
    pub(crate) roots: [Option<ChildRef>; BTREE_ID_NR],
    pub(crate) journal: Journal,
    pub(crate) pending_release: TryVec<BtreePtr>,
    pub(crate) txn: Txn,
    pub(crate) counters: Counters,
    pub(crate) next_ino: u64,
    pub(crate) read_only: bool,
    pub(crate) failed: Option<Error>,
    pub(crate) io_buf: TryVec<u8>,
    pub(crate) dirty_nodes: usize,
    pub(crate) data_unflushed: bool,
    pub(crate) defer_alloc: bool,
    pub(crate) deferred: TryVec<(u8, u64)>,
    pub(crate) checkpoints: u64,
    pub(crate) nodes_written: u64,
    pub(crate) replayed: u64,
    pub(crate) payload: io::PayloadCache,
    /// How new data is compressed (the superblock's default or a mount option).
    pub(crate) compression: (Compression, u8),
}

/// Read the newest valid superblock copy of one device.
pub fn read_super<D: BlockDevice>(dev: &mut D) -> Result<Superblock> {
    let mut sb = TryBox::try_new(Superblock::default())?;
    read_super_into(dev, &mut sb)?;
    Ok((*sb).clone())
}

/// [`read_super`] into caller storage, keeping the stack small (kernel).
pub fn read_super_into<D: BlockDevice>(dev: &mut D, out: &mut Superblock) -> Result<()> {
    let mut buf: TryVec<u8> = TryVec::new();
    buf.try_resize(SB_BYTES, 0)?;
    // Candidates decode into heap storage; the newest valid one is kept.
    let mut cand = TryBox::try_new(Superblock::default())?;
    let mut found = false;
    let mut first_err: Option<Error> = None;
    for off in SB_OFFSETS {
        if off + SB_BYTES as u64 > dev.size() {
            continue;
        }
        let r = dev
            .read_at(off, &mut buf)
            .and_then(|_| cand.decode_into(&buf).map_err(bad_metadata("superblock", 0, off)));
        match r {
            Ok(()) => {
                if !found || cand.seq > out.seq {
                    out.clone_from(&cand);
                    found = true;
                }
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if found {
        return Ok(());
    }
    Err(first_err.unwrap_or(Error::BadMetadata {
        what: "superblock",
        err: FormatError::Truncated,
        dev: 0,
        offset: SB_OFFSETS[0],
    }))
}

impl<D: BlockDevice> Fs<D> {
    fn new(devs: TryVec<D>, sb: TryBox<Superblock>, opts: &OpenOptions) -> Self {
        let compression = (sb.compression, sb.compression_level);
        Fs {
            devs,
            sb,
            alloc: Allocator::new(),
            cache: NodeCache::new(opts.cache_bytes),
            roots: [None; BTREE_ID_NR],
            journal: Journal::new(),
            pending_release: TryVec::new(),
            txn: Txn::default(),
            counters: Counters::default(),
            next_ino: FIRST_FREE_INO,
            compression,
            read_only: opts.read_only,
            failed: None,
            io_buf: TryVec::new(),
            dirty_nodes: 0,
            data_unflushed: false,
            defer_alloc: false,
            deferred: TryVec::new(),
            checkpoints: 0,
            nodes_written: 0,
            replayed: 0,
            payload: io::PayloadCache::new(),
        }
    }

    fn setup_journal(&mut self) {
        let sb = &self.sb;
        let j = &mut self.journal;
        j.dev = sb.journal_dev;
        j.offset = sb.journal_offset;
        j.size = sb.journal_size;
        j.block = u64::from(sb.block_size);
        j.seq = sb.checkpoint_seq;
        j.cursor = sb.journal_resume;
        j.start = sb.journal_resume;
        // Entries are padded to blocks; the limit is a whole number of blocks
        // so that what commit accepts, replay accepts too.
        let block = u64::from(sb.block_size);
        j.max_entry = ((sb.journal_size / 4).min(4 << 20).checked_div(block).unwrap_or(0) * block) as usize;
        j.fs_tag = crate::format::journal::fs_tag(&sb.uuid);
        for (i, r) in self.roots.iter_mut().enumerate() {
            *r = sb.roots.get(i).filter(|p| p.offset != 0).map(|p| ChildRef::Disk(*p));
        }
        self.counters = Counters { inodes: sb.inodes, data_bytes: sb.data_bytes };
    }

    /// Open the file system on `devs` (its members, in any order): read the
    /// superblock, replay the journal, load the allocator and, unless
    /// read-only, finish interrupted deletions and checkpoint.
    pub fn open(devs: TryVec<D>, opts: &OpenOptions) -> Result<Self> {
        let mut devs = devs;
        let mut supers: TryVec<Superblock> = TryVec::new();
        supers.try_resize(devs.len(), Superblock::default())?;
        for (i, d) in devs.iter_mut().enumerate() {
            let slot = supers.get_mut(i).ok_or(Error::Invalid)?;
            read_super_into(d, slot).map_err(|e| match e {
                Error::BadMetadata { what, err, offset, .. } => {
                    Error::BadMetadata { what, err, dev: i as u8, offset }
                }
                e => e,
            })?;
        }
        let newest =
            supers.iter().enumerate().max_by_key(|(_, s)| s.seq).map(|(i, _)| i).ok_or(Error::Invalid)?;
        let mut sb = TryBox::try_new(Superblock::default())?;
        sb.clone_from(supers.get(newest).ok_or(Error::Invalid)?);
        if usize::from(sb.nr_members) != devs.len() {
            return Err(Error::Corrupt("the devices given are not all the members of one file system"));
        }
        // Put the devices in member order.
        let mut ordered: TryVec<Option<D>> = TryVec::new();
        for _ in 0..devs.len() {
            ordered.try_push(None)?;
        }
        let mut i = devs.len();
        while let Some(d) = devs.pop() {
            i -= 1;
            let s = supers.get(i).ok_or(Error::Invalid)?;
            if s.uuid != sb.uuid {
                return Err(Error::Corrupt("devices belong to different file systems"));
            }
            let m = sb.members().get(usize::from(s.this_member)).ok_or(Error::Invalid)?;
            if m.uuid != s.members.get(usize::from(s.this_member)).map_or([0; 16], |x| x.uuid)
                || d.size() < m.size
            {
                return Err(Error::Corrupt("a member device does not match its superblock record"));
            }
            let slot = ordered.get_mut(usize::from(s.this_member)).ok_or(Error::Invalid)?;
            if slot.is_some() {
                return Err(Error::Corrupt("the same member was given twice"));
            }
            *slot = Some(d);
        }
        let mut devs = TryVec::new();
        while let Some(d) = ordered.pop() {
            devs.try_push(d.ok_or(Error::Corrupt("a member device is missing"))?)?;
        }
        devs.reverse();
        if opts.no_replay && !opts.read_only {
            return Err(Error::Invalid);
        }
        let read_only = opts.read_only || sb.needs_read_only();
        let mut fs = Fs::new(devs, sb, &OpenOptions { read_only, ..*opts });
        // Anything written from here on (orphan cleanup, checkpoints) happens
        // with the file system marked in use.
        fs.sb.flags &= !SB_FLAG_CLEAN;
        fs.setup_journal();
        fs.alloc_init()?;
        if !opts.no_replay {
            fs.replayed = fs.journal_replay()?;
        }
        fs.alloc_load()?;
        fs.next_ino = fs.find_next_ino()?;
        if !fs.read_only {
            fs.journal_skip_stale();
        }
        if opts.check {
            return Ok(fs);
        }
        // Read-only opens do this in memory only, so that what they show is
        // what a read-write open would leave.
        fs.alloc_free_unused()?;
        if !fs.read_only {
            fs.process_orphans()?;
            fs.checkpoint()?;
        }
        Ok(fs)
    }

    /// Write everything and release the devices. Returns them for reuse.
    pub fn close(mut self) -> Result<TryVec<D>> {
        if !self.read_only {
            self.check_writable()?;
            self.sb.flags |= SB_FLAG_CLEAN;
            self.checkpoint()?;
        }
        Ok(core::mem::take(&mut self.devs))
    }

    /// Remount read-only: write everything with the clean flag set, then
    /// refuse changes. Reads go on; a later read-write remount opens the file
    /// system afresh.
    pub fn make_read_only(&mut self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.check_writable()?;
        self.sb.flags |= SB_FLAG_CLEAN;
        self.checkpoint()?;
        self.read_only = true;
        Ok(())
    }

    /// Stop writing at once (the shutdown ioctl, or a dying device): after an
    /// optional journal flush nothing more reaches the disk, so the next
    /// mount sees the state of the last flush and replays from there.
    pub fn shutdown(&mut self, flush_journal: bool) -> Result<()> {
        let r = if flush_journal && !self.read_only { self.journal_flush() } else { Ok(()) };
        self.read_only = true;
        self.fail(Error::ReadOnly);
        r
    }

    /// Compress data written from now on with `c` (at zstd `level`) instead
    /// of the format's default; for this open only (a mount option), nothing
    /// is persisted. Extents already written keep their encoding.
    pub fn set_compression(&mut self, c: Compression, level: u8) {
        self.compression = (c, level);
    }

    /// Bucket records found wrong at open and corrected in memory from the
    /// b-trees (fsck repairs them on disk).
    pub fn alloc_distrusted(&self) -> u64 {
        self.alloc.distrusted
    }

    /// Bytes new data can still take (what a writer may reserve against).
    pub fn available_bytes(&self) -> u64 {
        self.free_data_bytes()
    }

    /// Give up the devices without writing anything (tests simulate crashes).
    pub fn into_devices(mut self) -> TryVec<D> {
        core::mem::take(&mut self.devs)
    }

    /// Refuse changes when read-only or after a fatal error.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if let Some(e) = self.failed {
            return Err(match e {
                Error::NoMem | Error::Io { .. } | Error::Internal(_) => Error::ReadOnly,
                e => e,
            });
        }
        Ok(())
    }

    /// Changes from users are refused on a read-only file system.
    pub(crate) fn check_user_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        self.check_writable().map_err(|_| Error::ReadOnly)
    }

    /// Stop accepting changes after an error left memory and disk apart.
    pub(crate) fn fail(&mut self, e: Error) {
        if self.failed.is_none() {
            self.failed = Some(e);
        }
    }

    /// The error that stopped the file system, if any.
    pub fn failure(&self) -> Option<Error> {
        self.failed
    }

    /// Whether the file system refuses changes.
    pub fn is_read_only(&self) -> bool {
        self.read_only || self.failed.is_some()
    }

    /// Start a transaction. Maintenance (writing the journal buffer,
    /// checkpoints, cache trimming) happens here, between transactions.
    pub(crate) fn txn_begin(&mut self) -> Result<()> {
        self.check_user_writable()?;
        if self.txn.active {
            return Err(Error::Internal("nested transaction"));
        }
        let j = &self.journal;
        if j.buf.len() > j.max_entry / 4 {
            self.journal_write_entry()?;
        }
        let dirty_limit = (self.cache.budget / 2).max(64 * self.sb.node_size as usize);
        if self.journal.used() > self.journal.size / 2
            || self.dirty_nodes * self.sb.node_size as usize > dirty_limit
        {
            self.checkpoint()?;
        }
        if self.cache.bytes > self.cache.budget {
            self.cache.shrink(self.cache.budget * 3 / 4)?;
        }
        self.txn = Txn { active: true, dirty: false, records: 0, buf_start: self.journal.buf.len() };
        Ok(())
    }

    /// Commit the transaction: its records join the pending journal entry.
    pub(crate) fn txn_commit(&mut self) -> Result<()> {
        self.journal.nr_records += self.txn.records;
        self.txn = Txn::default();
        let padded =
            crate::format::round_up(self.journal.buf.len() as u64, self.journal.block).unwrap_or(u64::MAX);
        if padded > self.journal.max_entry as u64 {
            let e = Error::Internal("transaction larger than a journal entry");
            self.fail(e);
            return Err(e);
        }
        Ok(())
    }

    /// Abandon the transaction. If it already changed the b-trees, memory no
    /// longer matches any durable state: the file system stops taking changes.
    pub(crate) fn txn_abort(&mut self, e: Error) -> Error {
        if self.txn.dirty {
            self.fail(e);
        }
        self.journal.buf.truncate(self.txn.buf_start);
        if self.journal.buf.len() <= crate::format::journal::JOURNAL_HEADER_BYTES
            && self.journal.nr_records == 0
        {
            self.journal.buf.clear();
        }
        self.txn = Txn::default();
        e
    }

    /// Run `f` as one transaction.
    pub(crate) fn in_txn<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.txn_begin()?;
        match f(self) {
            Ok(v) => {
                self.txn_commit()?;
                Ok(v)
            }
            Err(e) => Err(self.txn_abort(e)),
        }
    }

    /// Make everything committed durable (sync(2), syncfs(2)).
    pub fn sync(&mut self) -> Result<()> {
        self.journal_flush()
    }

    /// Whether counter values are possible on these devices: every inode
    /// takes a key of more than 64 bytes, and stored data is charged at most
    /// once per block of each extent piece (`format.md` §8.1). Journal replay
    /// refuses entries that would leave this range.
    pub(crate) fn counters_plausible(&self, c: Counters) -> bool {
        let total: u64 = self.sb.members().iter().map(|m| m.size).fold(0, u64::saturating_add);
        let block = u64::from(self.sb.block_size).max(1);
        let per_block = u64::from(crate::format::extent::MAX_ENCODED_PAYLOAD) / block;
        c.inodes <= total / 64 && c.data_bytes <= total.saturating_mul(per_block.max(1))
    }

    /// Usage numbers for statfs(2).
    pub fn statfs(&self) -> StatFs {
        // Never zero on an open file system (the superblock is validated).
        let bs = u64::from(self.sb.block_size).max(1);
        let mut total = 0u64;
        for (dev, t) in self.alloc.tables.iter().enumerate() {
            let bsz = self.alloc.bucket_size.get(dev).copied().unwrap_or(0);
            let usable = t
                .iter()
                .filter(|b| {
                    !matches!(
                        b.data_type,
                        crate::format::alloc_info::DataType::Superblock
                            | crate::format::alloc_info::DataType::Journal
                    )
                })
                .count() as u64;
            total = total.saturating_add(usable.saturating_mul(bsz));
        }
        let free = self.free_data_bytes();
        let files_free = free / bs;
        StatFs {
            block_size: self.sb.block_size,
            blocks: total / bs,
            blocks_free: free / bs,
            blocks_avail: free / bs,
            files: self.counters.inodes.saturating_add(files_free),
            files_free,
            name_max: crate::format::NAME_MAX as u32,
        }
    }

    /// Counters as kept in memory.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Engine statistics.
    pub fn stats(&self) -> Stats {
        Stats {
            checkpoints: self.checkpoints,
            nodes_written: self.nodes_written,
            replayed: self.replayed,
            cache_bytes: self.cache.bytes,
            dirty_nodes: self.dirty_nodes,
        }
    }

    /// The member devices.
    pub fn devices_mut(&mut self) -> &mut [D] {
        &mut self.devs
    }

    /// Drop clean cached nodes down to `target` bytes (memory pressure).
    pub fn shrink_cache(&mut self, target: usize) -> Result<usize> {
        if self.txn.active {
            return Ok(0);
        }
        self.cache.shrink(target)
    }

    /// One past the highest inode number in use, or 0 when the largest
    /// number is taken (creating files then fails with ENOSPC).
    fn find_next_ino(&mut self) -> Result<u64> {
        let mut val = TryVec::new();
        let mut exists_from = |fs: &mut Self, x: u64| -> Result<bool> {
            Ok(fs.peek(BtreeId::Inodes, Pos::new(x, 0, 0), Pos::MAX, &mut val)?.is_some())
        };
        // Exponential, then binary search on "is there an inode at or after x".
        let (mut lo, mut hi) = (FIRST_FREE_INO, FIRST_FREE_INO);
        while exists_from(self, hi)? {
            lo = hi;
            if hi == u64::MAX {
                return Ok(0);
            }
            hi = hi.saturating_mul(2);
        }
        if lo == hi {
            return Ok(lo);
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if exists_from(self, mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(hi)
    }
}
