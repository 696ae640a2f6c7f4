//! The file system: the state of one mounted (or opened) arborfs, its
//! lifecycle (format, open, close), and the POSIX operations shaped for the
//! VFS (in the submodules).
//!
//! `Fs` owns the components and is the one place that orchestrates them:
//! transactions ([`crate::txn`]) change the b-trees ([`crate::btree`])
//! through the journal ([`crate::journal`]) and charge buckets of the
//! allocator ([`crate::alloc`]); [`checkpoint`] writes the trees and a
//! superblock and reclaims the journal; [`replay`] applies the journal at
//! open. The components do not know each other: the b-tree reaches bucket
//! space only through the node store in [`store`].

pub mod change;
pub mod check;
pub mod checkpoint;
pub mod dirent;
pub mod extent;
pub mod format;
pub mod inode;
pub mod options;
pub mod orphan;
pub mod read_plan;
pub mod replay;
pub mod store;
pub mod sync;
pub mod write_plan;
pub mod xattr;

use core::sync::atomic::{AtomicU64, Ordering};

use crate::alloc::Allocator;
use crate::btree::cursor::Cursor;
use crate::btree::{Btrees, Cached, NodeMiss};
use crate::error::{bad_metadata, Error, Result};
use crate::format::alloc_info::AllocInfo;
use crate::format::extent::Compression;
use crate::format::superblock::{Superblock, SB_BYTES, SB_FLAG_CLEAN, SB_OFFSETS};
use crate::format::{BtreeId, FormatError, KeyType, Pos, FIRST_FREE_INO};
use crate::journal::{Journal, JournalStop};
use crate::sys::{BlockDevice, TryBox, TryVec};
use crate::txn::{Shared, Txn};
use store::Store;

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
    /// Descents from a b-tree root to a leaf since open.
    pub descents: u64,
}

/// An open file system over member devices `D`.
pub struct Fs<D: BlockDevice> {
    pub(crate) devs: TryVec<D>,
    /// The in-memory superblock (the one last written or read), on the heap:
    /// it is large and kernel stacks are small.
    pub sb: TryBox<Superblock>,
    pub(crate) alloc: Allocator,
    pub(crate) btrees: Btrees,
    pub(crate) journal: Journal,
    pub(crate) counters: Counters,
    /// The next inode number to try; 0 once the largest was given out.
    pub(crate) next_ino: u64,
    /// Numbers are taken from gaps (the largest one is in use): each
    /// candidate is checked first.
    pub(crate) ino_gaps: bool,
    pub(crate) read_only: bool,
    pub(crate) failed: Option<Error>,
    /// File data writes so far ([`Fs::note_data_written`]); the first
    /// `data_durable` of them are known durable. Data written since must
    /// be durable before a journal entry that points at it
    /// ([`Fs::data_unflushed`]).
    data_writes: u64,
    data_durable: u64,
    /// The value of `data_writes` when the unordered journal write in
    /// flight started: its trailing flush makes that many durable.
    unordered_from: Option<u64>,
    pub(crate) checkpoints: u64,
    pub(crate) replayed: u64,
    pub(crate) payload: extent::PayloadCache,
    /// How new data is compressed (the superblock's default or a mount option).
    pub(crate) compression: (Compression, u8),
    /// Transactions refuse to read nodes ([`Fs::refuse_reads`]) until a
    /// commit begins to change anything.
    pub(crate) refuse_reads: bool,
    /// The node a refused read needed.
    pub(crate) refused: Option<NodeMiss>,
    /// Buffers the last transaction left for the next one.
    pub(crate) txn_spare: crate::txn::TxnBuffers,
    /// Transactions begun now may use the node room held back for
    /// operations that free space ([`Fs::with_reserve`]).
    pub(crate) use_reserve: bool,
    /// Bytes of dirty data writers were promised room for and have not
    /// written yet ([`Fs::note_data_promised`]).
    pub(crate) data_promised: u64,
    /// The keys the latest commits changed, for optimistic changes.
    pub(crate) changes: crate::txn::ChangeLog,
    /// Inode numbers below this were handed to optimistic changes (which
    /// run side by side, and take theirs before they commit).
    pub(crate) ino_taken: AtomicU64,
    /// This open file system among those of the process's life
    /// ([`crate::txn::Prepared`] is committed to the one it was made on).
    pub(crate) instance: u64,
}

/// Instances of [`Fs`] opened so far.
static INSTANCES: AtomicU64 = AtomicU64::new(0);

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

/// Put `devs` in member order, checking that they are exactly the members
/// of the file system the newest superblock describes; returns that one.
fn order_members<D: BlockDevice>(mut devs: TryVec<D>) -> Result<(TryVec<D>, TryBox<Superblock>)> {
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
    Ok((devs, sb))
}

impl<D: BlockDevice> Fs<D> {
    fn new(devs: TryVec<D>, sb: TryBox<Superblock>, opts: &OpenOptions) -> Result<Self> {
        let compression = (sb.compression, sb.compression_level);
        let alloc = Allocator::new(&sb)?;
        let btrees = Btrees::new(&sb.roots, sb.node_size as usize, opts.cache_bytes);
        let journal = Journal::new(&sb);
        let counters = Counters { inodes: sb.inodes, data_bytes: sb.data_bytes };
        Ok(Fs {
            devs,
            sb,
            alloc,
            btrees,
            journal,
            counters,
            next_ino: FIRST_FREE_INO,
            ino_gaps: false,
            txn_spare: crate::txn::TxnBuffers::new(),
            use_reserve: false,
            data_promised: 0,
            changes: crate::txn::ChangeLog::new(),
            ino_taken: AtomicU64::new(0),
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            read_only: opts.read_only,
            failed: None,
            data_writes: 0,
            data_durable: 0,
            unordered_from: None,
            checkpoints: 0,
            replayed: 0,
            payload: extent::PayloadCache::new(),
            compression,
            refuse_reads: false,
            refused: None,
        })
    }

    /// Open the file system on `devs` (its members, in any order): read the
    /// superblock, replay the journal, load the allocator and, unless
    /// read-only, finish interrupted deletions and checkpoint.
    pub fn open(devs: TryVec<D>, opts: &OpenOptions) -> Result<Self> {
        if opts.no_replay && !opts.read_only {
            return Err(Error::Invalid);
        }
        let (devs, sb) = order_members(devs)?;
        let read_only = opts.read_only || sb.needs_read_only();
        let mut fs = Fs::new(devs, sb, &OpenOptions { read_only, ..*opts })?;
        // Anything written from here on (orphan cleanup, checkpoints) happens
        // with the file system marked in use.
        fs.sb.flags &= !SB_FLAG_CLEAN;
        if !opts.no_replay {
            fs.replayed = fs.replay(opts.check)?;
        }
        fs.load_alloc(opts.check)?;
        fs.next_ino = match fs.find_next_ino() {
            Ok(n) => n,
            // Numbers then come from checked gaps.
            Err(e) if opts.check && e.is_damage() => 0,
            Err(e) => return Err(e),
        };
        if !fs.read_only {
            fs.journal.skip_stale();
        }
        if opts.check {
            return Ok(fs);
        }
        // Read-only opens do this in memory only, so that what they show is
        // what a read-write open would leave.
        fs.alloc.free_unused()?;
        if !fs.read_only {
            fs.process_orphans()?;
            fs.checkpoint()?;
        }
        Ok(fs)
    }

    /// Load the alloc b-tree into the bucket tables, then count the live
    /// nodes of every bucket from the trees' node pointers (and the node
    /// places released since the checkpoint, which it still references).
    /// Where the keys and the trees disagree in the unsafe direction, the
    /// trees win ([`Allocator::note_node`]).
    ///
    /// An open for fsck (`tolerant`) goes on past damaged nodes: the keys
    /// and pointers it can read are loaded, and fsck deals with the rest.
    fn load_alloc(&mut self, tolerant: bool) -> Result<()> {
        let mut c = Cursor::new(BtreeId::Alloc, Pos::MIN, Pos::MAX, crate::btree::cursor::View::LIVE);
        loop {
            match self.next_key(&mut c) {
                Ok(Some((pos, _))) => {
                    let info =
                        AllocInfo::decode(c.value()).map_err(|_| Error::Corrupt("malformed alloc key"))?;
                    self.alloc.load_key(pos, &info)?;
                }
                Ok(None) => break,
                Err(e) if tolerant && e.is_damage() => {
                    self.alloc.distrusted += 1;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        // Node pointers are read before generation checks begin: their
        // generations are what the checks are corrected by.
        let mut ptrs = TryVec::new();
        for id in BtreeId::ALL {
            let (trees, mut store) = self.parts();
            trees.walk_ptrs(&mut store, id, tolerant, &mut |p, _, _| ptrs.try_push(*p))?;
        }
        ptrs.try_extend_from_slice(&self.alloc.released)?;
        for p in ptrs.iter() {
            self.alloc.note_node(p);
        }
        self.alloc.finish_load();
        Ok(())
    }

    /// One past the highest inode number in use (the last inode key, one
    /// descent), or 0 when the largest number is taken (new inodes then
    /// take numbers from gaps).
    fn find_next_ino(&mut self) -> Result<u64> {
        let mut c = Cursor::new(BtreeId::Inodes, Pos::MIN, Pos::MAX, crate::btree::cursor::View::LIVE);
        c.seek_end();
        let (trees, mut store) = self.parts();
        Ok(match trees.prev(&mut store, &mut c)? {
            Some((pos, _)) if pos.inode >= FIRST_FREE_INO => pos.inode.wrapping_add(1),
            _ => FIRST_FREE_INO,
        })
    }

    /// The b-trees and the node store they read and write through.
    pub(crate) fn parts(&mut self) -> (&mut Btrees, Store<'_, D>) {
        let store = Store::new(&mut self.devs, &mut self.alloc, &self.sb);
        (&mut self.btrees, store)
    }

    /// The next key of cursor `c` (its value is [`Cursor::value`]): scans
    /// outside any transaction (fsck passes, dump).
    pub fn next_key(&mut self, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
        let (trees, mut store) = self.parts();
        trees.next(&mut store, c)
    }

    /// Start a transaction that changes the file system. Maintenance
    /// (writing the journal buffer, checkpoints, cache trimming) happens
    /// here, between transactions, never inside one.
    pub(crate) fn begin(&mut self) -> Result<Txn<'_, D>> {
        self.check_user_writable()?;
        let node_size = self.sb.node_size as usize;
        if self.journal.buf.len() > self.journal.max_entry / 4 {
            self.journal_write()?;
        }
        // Dirty nodes are made durable by the journal: a checkpoint only
        // rewrites them whole, so it waits until they take the clean
        // nodes' budget again.
        let dirty_limit = self.btrees.cache.budget.max(64 * node_size);
        if self.journal.half_full() || self.btrees.dirty_nodes * node_size > dirty_limit {
            self.checkpoint()?;
        }
        self.btrees.trim()?;
        Ok(Txn::new(self))
    }

    /// Run `f` as one transaction and commit it. `f` may run again when a
    /// transaction has to restart (see [`crate::txn`]), so it keeps its
    /// effects inside the transaction.
    pub(crate) fn write_txn<T>(&mut self, mut f: impl FnMut(&mut Txn<'_, D>) -> Result<T>) -> Result<T> {
        let mut t = self.begin()?;
        let v = f(&mut t)?;
        t.commit()?;
        Ok(v)
    }

    /// Run `f`, whose transactions may use the node room held back for
    /// operations that free space or repair (deleting a file, truncating,
    /// cleaning up orphans, fsck), and for writing data the allocator
    /// already gave room to: on a file system full of metadata, these go
    /// on working where creating files gets ENOSPC.
    pub(crate) fn with_reserve<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let was = core::mem::replace(&mut self.use_reserve, true);
        let r = f(self);
        self.use_reserve = was;
        r
    }

    /// A transaction that only reads, from nodes in memory, holding the
    /// file system shared: any number of these may run at once on other
    /// threads (the caller's lock, shared, keeps every `&mut` call out).
    /// Where it needs a node that is on disk only it fails with
    /// [`Error::NotCached`], and the call is made again exclusively.
    pub fn shared(&self) -> Txn<'_, D, Shared<'_, D>> {
        Txn::reading(Shared::new(self))
    }

    /// Take in a node that a shared reader found missing and its caller
    /// read and decoded without the lock ([`crate::btree::NodeMiss`]):
    /// cached if the tree still points at it. Returns whether it was.
    pub fn adopt_node(
        &mut self,
        miss: &crate::btree::NodeMiss,
        node: crate::btree::node::Node,
    ) -> Result<bool> {
        self.btrees.adopt(miss, node)
    }

    /// For the next call, made by a caller that can make it again (the
    /// kernel holds its lock exclusively for it): the call's transactions
    /// do not read nodes that are on disk only, they fail with
    /// [`Error::NotCached`] before the call changed anything, and
    /// [`Fs::take_refused`] names the node, for the caller to read without
    /// its lock and offer to [`Fs::adopt_node`] before calling again. Once
    /// a commit has checked that its leaves are in memory and begins to
    /// apply, reads are no longer refused: what follows in the call reads
    /// nodes in as it needs them (a call made again must not repeat a
    /// change). Operations take no other effect before their first commit
    /// than the harmless ones listed in [`crate::txn`].
    pub fn refuse_reads(&mut self) {
        self.refuse_reads = true;
        self.refused = None;
    }

    /// End [`Fs::refuse_reads`]: the node a refused read needed, if any.
    pub fn take_refused(&mut self) -> Option<NodeMiss> {
        self.refuse_reads = false;
        self.refused.take()
    }

    /// `step` over the cached nodes only, recording in `miss` the node it
    /// needed that is on disk only. A pointer the store would refuse is
    /// not recorded: the call made again, reading, reports it.
    pub(crate) fn step_cached<T>(
        &self,
        miss: &mut Option<NodeMiss>,
        step: impl FnOnce(&mut Cached<'_>) -> Result<T>,
    ) -> Result<T> {
        let r = step(&mut self.btrees.cached(self.sb.meta_csum, miss));
        if miss.is_some_and(|m| self.alloc.check_node_ptr(&m.ptr).is_err()) {
            *miss = None;
        }
        r
    }

    /// [`Fs::step_cached`] for a call with reads refused ([`Fs::refuse_reads`]).
    pub(crate) fn refusing<T>(&mut self, step: impl FnOnce(&mut Cached<'_>) -> Result<T>) -> Result<T> {
        let mut miss = self.refused.take();
        let r = self.step_cached(&mut miss, step);
        self.refused = miss;
        r
    }

    /// Run `f` over a transaction that only reads.
    pub(crate) fn read_txn<T>(&mut self, f: impl FnOnce(&mut Txn<'_, D>) -> Result<T>) -> Result<T> {
        self.btrees.trim()?;
        let mut t = Txn::new(self);
        f(&mut t)
    }

    /// Write the journal records buffered by committed transactions as one
    /// entry (not yet durable). Data they point at is flushed first, and so
    /// is the data of an unordered entry in flight: replay takes the start
    /// of the entry after one for a sign that its data is durable. With no
    /// room in the ring, checkpoint instead: the checkpoint makes the
    /// records durable through the b-trees.
    pub(crate) fn journal_write(&mut self) -> Result<()> {
        if self.journal.nr_records == 0 {
            return Ok(());
        }
        if self.data_unflushed() || self.journal.in_flight.is_some_and(|f| f.unordered) {
            self.flush_all()?;
        }
        let dev =
            self.devs.get_mut(usize::from(self.journal.dev)).ok_or(Error::Internal("journal device"))?;
        match self.journal.write_entry(dev) {
            Ok(crate::journal::write::Written::NoRoom) => self.checkpoint(),
            Ok(_) => Ok(()),
            Err(e) => {
                self.fail(e);
                Err(e)
            }
        }
    }

    /// File data was written (the write completed) outside a journal
    /// entry: the next entry that points at it is not durable before it is.
    pub(crate) fn note_data_written(&mut self) {
        self.data_writes += 1;
    }

    /// Whether file data was written that is not known durable.
    pub(crate) fn data_unflushed(&self) -> bool {
        self.data_writes != self.data_durable
    }

    /// Every file data write so far is durable (or will be, before any
    /// journal write issued after this: a preflush).
    pub(crate) fn data_flushed(&mut self) {
        self.data_durable = self.data_writes;
    }

    /// Flush every member.
    pub(crate) fn flush_all(&mut self) -> Result<()> {
        for d in self.devs.iter_mut() {
            d.flush()?;
        }
        self.data_flushed();
        Ok(())
    }

    /// Discard buckets once a checkpoint has made them reusable (the
    /// `discard` mount option), or stop.
    pub fn set_discard(&mut self, on: bool) {
        self.alloc.discard = on;
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
        let r = if flush_journal && !self.read_only { self.sync() } else { Ok(()) };
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

    /// Why replay stopped early at open, if it did.
    pub fn journal_stop(&self) -> Option<JournalStop> {
        self.journal.stop
    }

    /// The sequence number of an unordered entry replay left out because
    /// the data it points at was not on the medium: what a power cut during
    /// its sync leaves, so not damage (see [`crate::fs::replay`]).
    pub fn journal_left_out(&self) -> Option<u64> {
        self.journal.left_out
    }

    /// Bytes new data can still take.
    pub fn available_bytes(&self) -> u64 {
        self.alloc.free_data_bytes()
    }

    /// Bytes writers may reserve for dirty data not yet written: what is
    /// available, less what writing it back needs for metadata.
    pub fn reservable_bytes(&self) -> u64 {
        self.available_bytes().saturating_sub(options::RESERVE_MARGIN)
    }

    /// Bytes of dirty data that writers hold room for ([`Fs::reservable_bytes`])
    /// and will write later: creating files leaves the space they need.
    /// The kernel's page cache tells this before every engine call.
    pub fn note_data_promised(&mut self, bytes: u64) {
        self.data_promised = bytes;
    }

    /// Give up the devices without writing anything (tests simulate crashes).
    pub fn into_devices(mut self) -> TryVec<D> {
        core::mem::take(&mut self.devs)
    }

    /// Refuse changes after a fatal error.
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
        let total = self.alloc.usable_bytes();
        let free = self.alloc.free_data_bytes();
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
            nodes_written: self.btrees.nodes_written,
            replayed: self.replayed,
            cache_bytes: self.btrees.cache.bytes,
            dirty_nodes: self.btrees.dirty_nodes,
            descents: self.btrees.descents.load(core::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The member devices.
    pub fn devices_mut(&mut self) -> &mut [D] {
        &mut self.devs
    }

    /// Drop clean cached nodes down to `target` bytes (memory pressure).
    pub fn shrink_cache(&mut self, target: usize) -> Result<usize> {
        self.btrees.shrink(target)
    }

    /// Largest value a key may carry.
    pub fn max_value_bytes(&self) -> usize {
        self.btrees.max_value_bytes()
    }
}
