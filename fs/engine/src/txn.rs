//! Transactions: every change to the file system is one. A transaction
//! reads through cursors that see its own changes, buffers its updates
//! (keys set or deleted, counter deltas, bucket charges), and commits them
//! atomically: journal room is taken first ([`Txn::commit`]: the entry
//! being built is written, or a checkpoint made, before anything changes),
//! then the bucket charges, the alloc keys they dirty, the updates and the
//! counters are journalled as records of one entry and applied to the
//! b-trees.
//!
//! What a transaction may hold, and the restart rules:
//! - A transaction borrows the file system for its lifetime, as its
//!   [`Access`] says: exclusively (`&mut Fs`) to change it, or shared
//!   (`&Fs`, [`Fs::shared`]) to read beside other readers, from nodes in
//!   memory only ([`Error::NotCached`] where it would have to read one).
//!   It holds nothing of the b-trees across calls: no node, no cache slot.
//!   Its cursors remember a leaf and an epoch, and look again from their
//!   position when the cache changed under them (a commit, a checkpoint, an
//!   eviction), so they are never invalidated, only slowed.
//! - Dropping a transaction before [`Txn::commit`] changes nothing in the
//!   b-trees, the journal or the counters: an operation that fails half way
//!   (ENOSPC, a damaged key, a name that exists) just returns its error.
//!   What it took from the allocator (space at a write point, a bucket
//!   opened) is harmless: nothing references that space, and an opened
//!   bucket's key is written with the next commit. For the same reason a
//!   transaction may write file data into space it allocated before it
//!   commits the extent that points there.
//! - A commit that fails after it began applying (out of memory in the
//!   b-trees) leaves memory apart from any durable state: the file system
//!   stops taking changes (read-only until remounted).
//! - A transaction may checkpoint in its middle ([`Txn::allocate_data`]:
//!   the allocator needs emptied buckets back): its updates are logical and
//!   buffered, so they stay valid.
//! - Restarts: a caller that can make a call again may have its reads
//!   refused ([`Fs::refuse_reads`]: the kernel, holding its lock
//!   exclusively, rather than read a node under it). Cursors then see
//!   cached nodes only and fail with [`Error::NotCached`] where a node is
//!   on disk only; a commit checks first that every leaf it changes is
//!   in memory. The transaction is dropped, the caller reads the node
//!   without its lock and makes the call again from the start. So the
//!   body of [`Fs::write_txn`] takes its effects only through the
//!   transaction, and what an operation changes outside one before its
//!   first commit must be harmless to repeat (space at a write point, a
//!   checkpoint, an opened bucket). Inode numbers are taken at commit.
//!   Per-tree or per-node locks (engine core part 2) will restart the
//!   same way on a lock taken out of order.
//! - Journal replay and the checkpoint's own bucket keys change the
//!   b-trees directly, without a transaction (they are not journalled).
//! - Optimistic transactions ([`Txn::optimistic`]) run over a file system
//!   held shared, as readers do, and record the ranges of keys they read
//!   ([`ReadSet`]); their buffers leave the lock as a [`Prepared`] change,
//!   and the commit, holding the file system exclusively, checks those
//!   ranges against the keys committed since ([`ChangeLog`]): a change that
//!   read a key changed meanwhile fails with [`Error::Conflict`] and is made
//!   again. So the bodies of changes to different inodes run in parallel
//!   and only their commits take turns (`crate::fs::change`).

use core::marker::PhantomData;

use crate::btree::cursor::{self, Cursor, View};
use crate::btree::{Cached, NodeMiss};
use crate::error::{Error, Result};
use crate::format::alloc_info::ALLOC_BYTES;
use crate::format::journal::{Record, RECORD_HEADER_BYTES, UPDATE_HEADER_BYTES};
use crate::format::{BtreeId, KeyType, Pos};
use crate::fs::Fs;
use crate::sys::{BlockDevice, TryVec};

/// One buffered key change.
#[derive(Debug, Clone, Copy)]
struct Update {
    btree: BtreeId,
    pos: Pos,
    /// `None`: delete.
    kind: Option<KeyType>,
    off: u32,
    len: u32,
}

impl<D: BlockDevice, A: Access<D>> Drop for Txn<'_, D, A> {
    fn drop(&mut self) {
        let size = self.vals.len() + self.updates.len() * core::mem::size_of::<Update>();
        if size <= SPARE_BYTES {
            self.updates.clear();
            self.vals.clear();
            self.charges.clear();
            self.fs.keep(TxnBuffers {
                updates: core::mem::take(&mut self.updates),
                vals: core::mem::take(&mut self.vals),
                charges: core::mem::take(&mut self.charges),
            });
        }
    }
}

/// How a transaction holds the file system: exclusively (`&mut Fs`, the
/// default: it reads nodes in as it needs them and may commit), or shared
/// with other readers (`&Fs`, from [`Fs::shared`]: it reads, from cached
/// nodes only, and cannot change anything).
pub trait Access<D: BlockDevice> {
    /// The file system, to look at.
    fn fs(&self) -> &Fs<D>;
    /// The file system, to change outside a commit (a search's hint), when
    /// held exclusively.
    fn fs_mut(&mut self) -> Option<&mut Fs<D>> {
        None
    }
    /// [`cursor::peek`] a b-tree cursor.
    fn peek(&mut self, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>>;
    /// [`cursor::next`].
    fn next(&mut self, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>>;
    /// [`cursor::prev`].
    fn prev(&mut self, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>>;
    /// Keep a finished transaction's buffers for the next one (only a
    /// file system held exclusively can).
    fn keep(&mut self, spare: TxnBuffers);
    /// The node a shared reader last failed on ([`Error::NotCached`]).
    fn miss(&self) -> Option<NodeMiss> {
        None
    }
}

impl<D: BlockDevice> Access<D> for &mut Fs<D> {
    fn fs(&self) -> &Fs<D> {
        self
    }

    fn fs_mut(&mut self) -> Option<&mut Fs<D>> {
        Some(self)
    }

    fn peek(&mut self, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
        if self.refuse_reads {
            return self.refusing(|n| cursor::peek(n, c));
        }
        let (trees, mut store) = self.parts();
        trees.peek(&mut store, c)
    }

    fn next(&mut self, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
        if self.refuse_reads {
            return self.refusing(|n| cursor::next(n, c));
        }
        let (trees, mut store) = self.parts();
        trees.next(&mut store, c)
    }

    fn prev(&mut self, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
        if self.refuse_reads {
            return self.refusing(|n| cursor::prev(n, c));
        }
        let (trees, mut store) = self.parts();
        trees.prev(&mut store, c)
    }

    fn keep(&mut self, spare: TxnBuffers) {
        self.txn_spare = spare;
    }
}

/// The file system shared with other readers ([`Fs::shared`]): cursors
/// see cached nodes only, and the first node found missing is kept
/// ([`Txn::miss`]) for the caller to read in without the lock.
pub struct Shared<'a, D: BlockDevice> {
    fs: &'a Fs<D>,
    miss: Option<NodeMiss>,
}

impl<'a, D: BlockDevice> Shared<'a, D> {
    /// `fs`, held shared.
    pub fn new(fs: &'a Fs<D>) -> Self {
        Shared { fs, miss: None }
    }

    /// Step `c` with `step` over the cached nodes.
    fn step(
        &mut self,
        c: &mut Cursor,
        step: impl FnOnce(&mut Cached<'_>, &mut Cursor) -> Result<Option<(Pos, KeyType)>>,
    ) -> Result<Option<(Pos, KeyType)>> {
        self.fs.step_cached(&mut self.miss, |n| step(n, c))
    }
}

impl<D: BlockDevice> Access<D> for Shared<'_, D> {
    fn fs(&self) -> &Fs<D> {
        self.fs
    }

    fn peek(&mut self, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
        self.step(c, |n, c| cursor::peek(n, c))
    }

    fn next(&mut self, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
        self.step(c, |n, c| cursor::next(n, c))
    }

    fn prev(&mut self, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
        self.step(c, |n, c| cursor::prev(n, c))
    }

    fn keep(&mut self, _spare: TxnBuffers) {}

    fn miss(&self) -> Option<NodeMiss> {
        self.miss
    }
}

/// A file system held one way or the other, as chosen at run time: the
/// kernel's entry points for reads serve both the shared call and the
/// exclusive one made again after [`Error::NotCached`].
pub enum Held<'a, D: BlockDevice> {
    /// Shared with other readers: cached nodes only.
    Shared(Shared<'a, D>),
    /// Exclusively: nodes are read in as needed.
    Exclusive(&'a mut Fs<D>),
}

impl<D: BlockDevice> Access<D> for Held<'_, D> {
    fn fs(&self) -> &Fs<D> {
        match self {
            Held::Shared(s) => s.fs,
            Held::Exclusive(fs) => fs,
        }
    }

    fn fs_mut(&mut self) -> Option<&mut Fs<D>> {
        match self {
            Held::Shared(_) => None,
            Held::Exclusive(fs) => Some(fs),
        }
    }

    fn peek(&mut self, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
        match self {
            Held::Shared(s) => s.peek(c),
            Held::Exclusive(fs) => fs.peek(c),
        }
    }

    fn next(&mut self, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
        match self {
            Held::Shared(s) => s.next(c),
            Held::Exclusive(fs) => fs.next(c),
        }
    }

    fn prev(&mut self, c: &mut Cursor) -> Result<Option<(Pos, KeyType)>> {
        match self {
            Held::Shared(s) => s.prev(c),
            Held::Exclusive(fs) => fs.prev(c),
        }
    }

    /// Only reading transactions hold a file system this way: their
    /// buffers never held anything, and the spares the file system keeps
    /// (with their room) stay.
    fn keep(&mut self, _spare: TxnBuffers) {}

    fn miss(&self) -> Option<NodeMiss> {
        match self {
            Held::Shared(s) => s.miss(),
            Held::Exclusive(_) => None,
        }
    }
}

/// A transaction over the file system `fs`, held as `A` says.
pub struct Txn<'a, D: BlockDevice, A: Access<D> = &'a mut Fs<D>> {
    pub(crate) fs: A,
    /// Sorted by (b-tree, position); one per key.
    updates: TryVec<Update>,
    vals: TryVec<u8>,
    /// Journal bytes the records of `updates` take (kept as they change,
    /// so that a commit of many plans asks [`Txn::journal_bytes`] cheaply).
    update_bytes: usize,
    inodes: i64,
    data_bytes: i64,
    /// (member, byte offset, delta) for bucket usage.
    charges: TryVec<(u8, u64, i64)>,
    /// The file system's next inode number once this commits (it created one).
    pub(crate) next_ino: Option<u64>,
    /// May take the node room held back for freeing ([`Fs::with_reserve`]),
    /// or was given data space (its metadata is part of that).
    use_reserve: bool,
    /// What an optimistic transaction read ([`Txn::optimistic`]), to be
    /// checked at commit against the keys changed since; `None` for the
    /// others.
    reads: Option<ReadSet>,
    held: PhantomData<&'a D>,
}

/// Ranges an optimistic transaction read, more than this and it conflicts
/// with any commit made since it began.
const READ_RANGES: usize = 256;

/// Keys the change log remembers: commits whose changes it no longer holds
/// conflict with every optimistic change begun before them.
const CHANGE_LOG_KEYS: usize = 4096;

/// One range of positions of one b-tree that a transaction read.
#[derive(Debug, Clone, Copy)]
struct ReadRange {
    btree: BtreeId,
    lo: Pos,
    hi: Pos,
}

/// What an optimistic transaction read: the ranges its cursors covered,
/// merged where they touch, and the commit sequence it began at.
pub(crate) struct ReadSet {
    ranges: TryVec<ReadRange>,
    /// More ranges than [`READ_RANGES`] (or no memory to note one): any
    /// commit since `began` conflicts.
    lost: bool,
    began: u64,
}

impl ReadSet {
    fn note(&mut self, btree: BtreeId, lo: Pos, hi: Pos) {
        if btree == BtreeId::Alloc {
            // The change log leaves bucket keys out.
            self.lost = true;
            return;
        }
        if let Some(last) = self.ranges.last_mut() {
            let touches = |a: Pos, b: Pos| b.successor().is_none_or(|next| a <= next);
            if last.btree == btree && touches(lo, last.hi) && touches(last.lo, hi) {
                last.lo = last.lo.min(lo);
                last.hi = last.hi.max(hi);
                return;
            }
        }
        if self.ranges.len() >= READ_RANGES || self.ranges.try_push(ReadRange { btree, lo, hi }).is_err() {
            self.lost = true;
        }
    }

    fn covers(&self, btree: BtreeId, pos: Pos) -> bool {
        self.ranges.iter().any(|r| r.btree == btree && r.lo <= pos && pos <= r.hi)
    }
}

/// One key a commit changed, with the commit's sequence number.
#[derive(Debug, Clone, Copy)]
struct Changed {
    seq: u64,
    btree: BtreeId,
    pos: Pos,
}

/// The keys the latest commits changed (all b-trees but the bucket keys'),
/// for optimistic transactions to check what they read against: a ring of
/// [`CHANGE_LOG_KEYS`], a fixed cost per mount.
pub(crate) struct ChangeLog {
    /// Commits applied so far.
    seq: u64,
    keys: TryVec<Changed>,
    /// Where the next key goes once the ring is full.
    next: usize,
    /// The newest commit some of whose keys the ring no longer holds.
    forgotten: u64,
}

impl ChangeLog {
    pub(crate) fn new() -> Self {
        ChangeLog { seq: 0, keys: TryVec::new(), next: 0, forgotten: 0 }
    }

    /// Note a key the commit being applied changes.
    fn record(&mut self, btree: BtreeId, pos: Pos) {
        if btree == BtreeId::Alloc {
            return;
        }
        let c = Changed { seq: self.seq + 1, btree, pos };
        if self.keys.len() < CHANGE_LOG_KEYS {
            if self.keys.try_push(c).is_err() {
                self.forgotten = c.seq;
            }
            return;
        }
        if let Some(slot) = self.keys.get_mut(self.next) {
            self.forgotten = self.forgotten.max(slot.seq);
            *slot = c;
        }
        self.next = (self.next + 1) % CHANGE_LOG_KEYS;
    }

    /// Whether no commit since `reads` began changed a key in them.
    fn unchanged(&self, reads: &ReadSet) -> bool {
        if self.seq == reads.began {
            return true;
        }
        if reads.lost || self.forgotten > reads.began {
            return false;
        }
        // Newest first, down to the commits the reader had seen.
        let len = self.keys.len();
        let newest = if len < CHANGE_LOG_KEYS { len } else { self.next + len };
        for i in (newest.saturating_sub(len)..newest).rev() {
            let Some(k) = i.checked_rem(len).and_then(|j| self.keys.get(j)) else { return false };
            if k.seq <= reads.began {
                break;
            }
            if reads.covers(k.btree, k.pos) {
                return false;
            }
        }
        true
    }
}

/// An optimistic transaction's changes, taken out of it when its body is
/// done ([`Txn::prepare`]) to be committed with the file system held
/// exclusively ([`Fs::commit_prepared`]).
pub struct Prepared {
    buffers: TxnBuffers,
    update_bytes: usize,
    inodes: i64,
    data_bytes: i64,
    next_ino: Option<u64>,
    use_reserve: bool,
    reads: ReadSet,
    /// The file system it was made on ([`Fs::instance`]): a remount
    /// replaces it, and a change prepared on the old one is made again.
    instance: u64,
}

/// The buffers of a finished transaction, kept by the file system for the
/// next one: allocating them afresh is a large part of what a small
/// operation costs beyond the tree itself.
pub struct TxnBuffers {
    updates: TryVec<Update>,
    vals: TryVec<u8>,
    charges: TryVec<(u8, u64, i64)>,
}

impl TxnBuffers {
    pub(crate) fn new() -> Self {
        TxnBuffers { updates: TryVec::new(), vals: TryVec::new(), charges: TryVec::new() }
    }
}

/// Buffers of a transaction larger than this go back to the allocator
/// instead of being kept (memory stays bounded after a large one).
const SPARE_BYTES: usize = 64 << 10;

/// A cursor of a transaction: the b-tree's keys with the transaction's own
/// changes laid over them.
pub struct TxnCursor {
    tree: Cursor,
    btree: BtreeId,
    start: Pos,
    end: Pos,
    /// Forward: the next position to show; none past the end.
    at: Option<Pos>,
    /// Backward: one past the last position shown.
    below: Option<Pos>,
}

impl TxnCursor {
    /// Move to `pos`.
    pub fn seek(&mut self, pos: Pos) {
        let pos = pos.max(self.start);
        self.at = Some(pos);
        self.tree.seek(pos);
    }
}

fn update_key(u: &Update) -> (BtreeId, Pos) {
    (u.btree, u.pos)
}

impl<'a, D: BlockDevice> Txn<'a, D> {
    pub(crate) fn new(fs: &'a mut Fs<D>) -> Self {
        let TxnBuffers { updates, vals, charges } = core::mem::replace(&mut fs.txn_spare, TxnBuffers::new());
        let use_reserve = fs.use_reserve;
        Txn {
            fs,
            updates,
            vals,
            update_bytes: 0,
            inodes: 0,
            data_bytes: 0,
            charges,
            next_ino: None,
            use_reserve,
            reads: None,
            held: PhantomData,
        }
    }
}

impl<D: BlockDevice, A: Access<D>> Txn<'_, D, A> {
    /// A transaction that only reads: [`Fs::shared`], or [`Held`] either way.
    pub fn reading(fs: A) -> Self {
        Txn {
            fs,
            updates: TryVec::new(),
            vals: TryVec::new(),
            update_bytes: 0,
            inodes: 0,
            data_bytes: 0,
            charges: TryVec::new(),
            next_ino: None,
            use_reserve: false,
            reads: None,
            held: PhantomData,
        }
    }
}

impl<'a, D: BlockDevice> Txn<'a, D, Shared<'a, D>> {
    /// A transaction that changes the file system held shared: it reads
    /// as [`Fs::shared`] does, buffers its changes and records what it
    /// read, for [`Txn::prepare`] and [`Fs::commit_prepared`].
    /// `frees`: it may use the node room held back for freeing.
    pub fn optimistic(fs: &'a Fs<D>, frees: bool) -> Self {
        let mut t = Txn::reading(Shared::new(fs));
        t.use_reserve = frees || fs.use_reserve;
        let mut ranges = TryVec::new();
        // Room for a usual change at once, rather than growing each buffer
        // from nothing a push at a time (these do not come from
        // `txn_spare`, which only an exclusive holder may take). A failed
        // reserve only leaves the growing to the pushes.
        let _ = ranges.try_reserve(16);
        let _ = t.updates.try_reserve(32);
        let _ = t.vals.try_reserve(4096);
        let _ = t.charges.try_reserve(8);
        t.reads = Some(ReadSet { ranges, lost: false, began: fs.changes.seq });
        t
    }

    /// Its changes and what it read, to be committed exclusively.
    pub fn prepare(mut self) -> Prepared {
        let buffers = TxnBuffers {
            updates: core::mem::take(&mut self.updates),
            vals: core::mem::take(&mut self.vals),
            charges: core::mem::take(&mut self.charges),
        };
        let reads = self.reads.take().unwrap_or(ReadSet { ranges: TryVec::new(), lost: true, began: 0 });
        Prepared {
            buffers,
            update_bytes: self.update_bytes,
            inodes: self.inodes,
            data_bytes: self.data_bytes,
            next_ino: self.next_ino,
            use_reserve: self.use_reserve,
            reads,
            instance: self.fs().instance,
        }
    }
}

impl<D: BlockDevice> Fs<D> {
    /// Commit a change prepared with the file system held shared
    /// ([`Txn::prepare`]): [`Error::Conflict`], changing nothing, when a
    /// commit since its body began changed a key it read (or the file
    /// system is another one, remounted), for the caller to make the
    /// change again; else as [`Txn::commit`], reads refused included.
    pub fn commit_prepared(&mut self, p: Prepared) -> Result<()> {
        if p.instance != self.instance || !self.changes.unchanged(&p.reads) {
            return Err(Error::Conflict);
        }
        // What `begin` does between transactions: it changes no key.
        let mut t = self.begin()?;
        let TxnBuffers { updates, vals, charges } = p.buffers;
        // Bucket usage moved since: the charges are checked again.
        for (i, &c) in charges.iter().enumerate() {
            check_charges(t.fs(), charges.get(..i).unwrap_or(&[]), c)?;
        }
        t.updates = updates;
        t.vals = vals;
        t.charges = charges;
        t.update_bytes = p.update_bytes;
        t.inodes = p.inodes;
        t.data_bytes = p.data_bytes;
        t.next_ino = p.next_ino;
        t.use_reserve = p.use_reserve;
        t.commit()
    }
}

impl<D: BlockDevice, A: Access<D>> Txn<'_, D, A> {
    /// Note that the transaction read `[lo, hi]` of `btree` (optimistic
    /// transactions only).
    pub(crate) fn note_read(&mut self, btree: BtreeId, lo: Pos, hi: Pos) {
        if let Some(r) = self.reads.as_mut() {
            r.note(btree, lo, hi);
        }
    }

    /// Whether this transaction runs optimistically ([`Txn::optimistic`]).
    pub(crate) fn is_optimistic(&self) -> bool {
        self.reads.is_some()
    }

    /// The file system, to look at.
    pub(crate) fn fs(&self) -> &Fs<D> {
        self.fs.fs()
    }

    /// The file system, to change outside a commit: [`Error::NotCached`]
    /// (make the call exclusively) when held shared.
    pub(crate) fn fs_mut(&mut self) -> Result<&mut Fs<D>> {
        self.fs.fs_mut().ok_or(Error::NotCached)
    }

    /// The node this transaction, held shared, failed on
    /// ([`Error::NotCached`]): to be read in and offered to
    /// [`Fs::adopt_node`] before the call is made again.
    pub fn miss(&self) -> Option<NodeMiss> {
        self.fs.miss()
    }

    fn update_value(&self, u: &Update) -> Result<&[u8]> {
        let start = u.off as usize;
        self.vals.get(start..start + u.len as usize).ok_or(Error::Internal("update value"))
    }

    fn find_update(&self, btree: BtreeId, pos: Pos) -> core::result::Result<usize, usize> {
        self.updates.binary_search_by(|u| update_key(u).cmp(&(btree, pos)))
    }

    /// The key at exactly `pos` (as the transaction sees it); its value into `val`.
    pub fn get(&mut self, btree: BtreeId, pos: Pos, val: &mut TryVec<u8>) -> Result<Option<KeyType>> {
        self.get_in(btree, pos, val, View::LIVE)
    }

    /// Whether any key sits at `pos`, at a canonical position or not (a
    /// slot a misplaced key holds is not free).
    pub fn occupied(&mut self, btree: BtreeId, pos: Pos) -> Result<bool> {
        let mut val = TryVec::new();
        Ok(self.get_in(btree, pos, &mut val, View::Raw)?.is_some())
    }

    fn get_in(
        &mut self,
        btree: BtreeId,
        pos: Pos,
        val: &mut TryVec<u8>,
        view: View,
    ) -> Result<Option<KeyType>> {
        if let Ok(i) = self.find_update(btree, pos) {
            let u = *self.updates.get(i).ok_or(Error::Internal("update"))?;
            if u.kind.is_some() {
                val.clear();
                val.try_extend_from_slice(self.update_value(&u)?)?;
            }
            return Ok(u.kind);
        }
        self.note_read(btree, pos, pos);
        let mut c = Cursor::new(btree, pos, pos, view);
        match self.fs.next(&mut c)? {
            Some((_, kind)) => {
                val.clear();
                val.try_extend_from_slice(c.value())?;
                Ok(Some(kind))
            }
            None => Ok(None),
        }
    }

    /// A cursor over `[start, end]` of `btree` in the live file system.
    pub fn cursor(&self, btree: BtreeId, start: Pos, end: Pos) -> TxnCursor {
        self.cursor_in(btree, start, end, View::LIVE)
    }

    /// A cursor over the keys of inode `ino` in `btree` at offsets `from`
    /// and above.
    pub fn inode_cursor(&self, btree: BtreeId, ino: u64, from: u64) -> TxnCursor {
        self.cursor(btree, Pos::new(ino, from, 0), Pos::new(ino, u64::MAX, u32::MAX))
    }

    /// A cursor showing every key as stored (fsck).
    pub fn raw_cursor(&self, btree: BtreeId, start: Pos, end: Pos) -> TxnCursor {
        self.cursor_in(btree, start, end, View::Raw)
    }

    fn cursor_in(&self, btree: BtreeId, start: Pos, end: Pos, view: View) -> TxnCursor {
        TxnCursor {
            tree: Cursor::new(btree, start, end, view),
            btree,
            start,
            end,
            at: Some(start),
            below: None,
        }
    }

    /// The first key of `btree` in `[from, to]` (a one-off cursor).
    pub fn first(
        &mut self,
        btree: BtreeId,
        from: Pos,
        to: Pos,
        val: &mut TryVec<u8>,
    ) -> Result<Option<(Pos, KeyType)>> {
        let mut c = self.cursor(btree, from, to);
        self.next(&mut c, val)
    }

    /// How many keys of `ino` `btree` holds, counting no further than one
    /// past `limit`.
    pub fn keys_of(&mut self, btree: BtreeId, ino: u64, limit: usize) -> Result<usize> {
        let mut c = self.inode_cursor(btree, ino, 0);
        let mut val = TryVec::new();
        let mut n = 0;
        while n <= limit && self.next(&mut c, &mut val)?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    /// The next key of the cursor, the transaction's changes included; its
    /// value into `val`.
    pub fn next(&mut self, c: &mut TxnCursor, val: &mut TryVec<u8>) -> Result<Option<(Pos, KeyType)>> {
        self.next_with(c, |pos, kind, v| {
            val.clear();
            val.try_extend_from_slice(v)?;
            Ok((pos, kind))
        })
    }

    /// The next key of the cursor, the transaction's changes included,
    /// handed to `f` with its value in place (nothing copied).
    pub fn next_with<T>(
        &mut self,
        c: &mut TxnCursor,
        f: impl FnOnce(Pos, KeyType, &[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
        let from = c.at;
        let r = self.step_next(c, f);
        // What this step looked at: from where it began to the key it
        // returned, or to the end of the range when it found none.
        if let (Some(from), Ok(_)) = (from, &r) {
            let to = match c.at {
                Some(next) => next.predecessor().unwrap_or(Pos::MIN),
                None => c.end,
            };
            if from <= to {
                self.note_read(c.btree, from, to);
            }
        }
        r
    }

    fn step_next<T>(
        &mut self,
        c: &mut TxnCursor,
        f: impl FnOnce(Pos, KeyType, &[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
        // Each round moves `at` forward past one key.
        loop {
            let Some(at) = c.at else { return Ok(None) };
            if at > c.end {
                c.at = None;
                return Ok(None);
            }
            // The tree's next key at or after `at`.
            let tree_key = {
                let mut k = self.fs.peek(&mut c.tree)?;
                while let Some((p, _)) = k {
                    if p >= at {
                        break;
                    }
                    self.fs.next(&mut c.tree)?;
                    k = self.fs.peek(&mut c.tree)?;
                }
                k
            };
            // The transaction's next change at or after `at`.
            let i = match self.find_update(c.btree, at) {
                Ok(i) | Err(i) => i,
            };
            let upd = self.updates.get(i).copied().filter(|u| u.btree == c.btree && u.pos <= c.end);
            match (tree_key, upd) {
                (None, None) => {
                    c.at = None;
                    return Ok(None);
                }
                (Some((p, kind)), u) if u.is_none_or(|u| p < u.pos) => {
                    c.at = p.successor();
                    return f(p, kind, c.tree.value()).map(Some);
                }
                (_, Some(u)) => {
                    c.at = u.pos.successor();
                    if let Some(kind) = u.kind {
                        return f(u.pos, kind, self.update_value(&u)?).map(Some);
                    }
                    // A delete: the tree's key there (if any) is gone.
                }
                (Some(_), None) => return Err(Error::Internal("cursor")),
            }
        }
    }

    /// The key before the last one `prev` returned (the cursor's last key
    /// first), the transaction's changes included.
    pub fn prev(&mut self, c: &mut TxnCursor, val: &mut TryVec<u8>) -> Result<Option<(Pos, KeyType)>> {
        let top = match c.below {
            Some(b) => b.predecessor(),
            None => Some(c.end),
        };
        let r = self.step_prev(c, val);
        // What this step looked at: from the key it returned (or the start
        // of the range) up to where it began.
        if let (Some(top), Ok(found)) = (top, &r) {
            let low = match found {
                Some((p, _)) => *p,
                None => c.start,
            };
            if low <= top {
                self.note_read(c.btree, low, top);
            }
        }
        r
    }

    fn step_prev(&mut self, c: &mut TxnCursor, val: &mut TryVec<u8>) -> Result<Option<(Pos, KeyType)>> {
        // Each round moves `below` back past one key.
        loop {
            let to = match c.below {
                Some(b) => match b.predecessor() {
                    Some(p) => p,
                    None => return Ok(None),
                },
                None => c.end,
            };
            if to < c.start {
                return Ok(None);
            }
            let tree_key = {
                match to.successor() {
                    Some(s) => c.tree.seek(s),
                    None => c.tree.seek_end(),
                }
                self.fs.prev(&mut c.tree)?
            };
            let upd = match self.find_update(c.btree, to) {
                Ok(i) => self.updates.get(i).copied(),
                Err(i) => i.checked_sub(1).and_then(|j| self.updates.get(j).copied()),
            }
            .filter(|u| u.btree == c.btree && u.pos >= c.start);
            match (tree_key, upd) {
                (None, None) => return Ok(None),
                (Some((p, kind)), u) if u.is_none_or(|u| p > u.pos) => {
                    val.clear();
                    val.try_extend_from_slice(c.tree.value())?;
                    c.below = Some(p);
                    return Ok(Some((p, kind)));
                }
                (_, Some(u)) => {
                    c.below = Some(u.pos);
                    if let Some(kind) = u.kind {
                        val.clear();
                        val.try_extend_from_slice(self.update_value(&u)?)?;
                        return Ok(Some((u.pos, kind)));
                    }
                }
                (Some(_), None) => return Err(Error::Internal("cursor")),
            }
        }
    }

    /// Whether the transaction changes anything.
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.inodes == 0 && self.data_bytes == 0 && self.charges.is_empty()
    }
}

impl<D: BlockDevice, A: Access<D>> Txn<'_, D, A> {
    /// Journal bytes this commit appends: the records of the updates, of
    /// the alloc keys its charges and earlier changes dirty, and the
    /// counters.
    pub(crate) fn journal_bytes(&self) -> usize {
        let bytes = self.update_bytes;
        let alloc_rec = RECORD_HEADER_BYTES + UPDATE_HEADER_BYTES + ALLOC_BYTES;
        let buckets = self.charges.len().saturating_add(self.fs().alloc.dirty_count());
        bytes.saturating_add(buckets.saturating_mul(alloc_rec)).saturating_add(RECORD_HEADER_BYTES + 16)
    }

    fn put(&mut self, btree: BtreeId, pos: Pos, kind: Option<KeyType>, val: &[u8]) -> Result<()> {
        let off = u32::try_from(self.vals.len()).map_err(|_| Error::NoMem)?;
        let len = u32::try_from(val.len()).map_err(|_| Error::Invalid)?;
        self.vals.try_extend_from_slice(val)?;
        let u = Update { btree, pos, kind, off, len };
        match self.find_update(btree, pos) {
            Ok(i) => {
                if let Some(slot) = self.updates.get_mut(i) {
                    self.update_bytes = self.update_bytes.saturating_sub(slot.len as usize) + val.len();
                    *slot = u;
                }
                Ok(())
            }
            Err(i) => {
                self.updates.try_insert(i, u)?;
                self.update_bytes += RECORD_HEADER_BYTES + UPDATE_HEADER_BYTES + val.len();
                Ok(())
            }
        }
    }

    /// Set a key.
    pub fn set(&mut self, btree: BtreeId, pos: Pos, kind: KeyType, val: &[u8]) -> Result<()> {
        if val.len() > self.fs().btrees.max_value_bytes() || !btree.allows(kind) {
            return Err(Error::Internal("value too large or wrong type for b-tree"));
        }
        self.put(btree, pos, Some(kind), val)
    }

    /// Delete a key (nothing happens at commit if it does not exist).
    pub fn delete(&mut self, btree: BtreeId, pos: Pos) -> Result<()> {
        self.put(btree, pos, None, &[])
    }

    /// Change the inode and stored-data counters.
    pub fn account(&mut self, inodes: i64, data_bytes: i64) {
        self.inodes = self.inodes.saturating_add(inodes);
        self.data_bytes = self.data_bytes.saturating_add(data_bytes);
    }

    /// Charge `delta` bytes to the user bucket holding `offset` on `dev`
    /// (checked now, applied at commit).
    pub fn charge(&mut self, dev: u8, offset: u64, delta: i64) -> Result<()> {
        check_charges(self.fs(), &self.charges, (dev, offset, delta))?;
        self.charges.try_push((dev, offset, delta))
    }
}

/// Whether `charge` may be added to the bucket charges `pending` (those of
/// the same bucket summed with it stay within the bucket).
pub(crate) fn check_charges<D: BlockDevice>(
    fs: &Fs<D>,
    pending: &[(u8, u64, i64)],
    (dev, offset, delta): (u8, u64, i64),
) -> Result<()> {
    let (b, size) = fs.alloc.bucket_of(dev, offset).ok_or(Error::Corrupt("extent on a missing device"))?;
    // The bucket's byte range, so that each pending charge costs a compare,
    // not a division: a commit of many extents checks them all pairwise.
    let lo = b.saturating_mul(size);
    let hi = lo.saturating_add(size);
    let sum: i64 = pending
        .iter()
        .filter(|c| c.0 == dev && (lo..hi).contains(&c.1))
        .map(|c| c.2)
        .fold(0i64, i64::saturating_add);
    fs.alloc.check_charge(dev, offset, sum.saturating_add(delta))
}

impl<D: BlockDevice> Txn<'_, D> {
    /// Space for `min` to `want` bytes of file data (see
    /// [`crate::alloc::Allocator::allocate_data`]). When free buckets run
    /// short and some only await a checkpoint, checkpoint first: this
    /// transaction's updates are buffered, so that is safe here.
    pub fn allocate_data(&mut self, min: u64, want: u64) -> Result<(u8, u64, u64, u32)> {
        if self.fs.alloc.wants_checkpoint_for(min) {
            self.fs.checkpoint()?;
        }
        let got = self.fs.alloc.allocate_data(min, want)?;
        // The data allocator keeps its own reserve: the extent keys for the
        // space it gave must find room, or the data written is lost.
        self.use_reserve = true;
        Ok(got)
    }

    /// Journal and apply everything, atomically. Bucket changes made
    /// outside any transaction since the last commit (a repair of the
    /// tables, a bucket freed by a checkpoint) are journalled with it.
    pub fn commit(mut self) -> Result<()> {
        if self.is_empty() && self.fs.alloc.dirty_count() == 0 {
            return Ok(());
        }
        self.fs.check_writable()?;
        self.reserve()?;
        if self.fs.refuse_reads {
            self.leaves_in_memory()?;
            self.fs.refuse_reads = false;
        }
        let r = self.apply();
        if let Err(e) = r {
            self.fs.fail(e);
        }
        r
    }

    /// Take journal room for the whole commit before anything changes:
    /// write the entry being built when this one would not fit in it, or
    /// checkpoint when bucket keys waiting to be written do not fit either
    /// (the checkpoint writes them into the tree). Then reserve the memory
    /// the commit's records and bucket keys need, so that applying fails
    /// only on the b-trees' own allocations.
    fn reserve(&mut self) -> Result<()> {
        let max = self.fs.journal.max_entry as u64;
        let mut room = false;
        for _ in 0..3 {
            if self.fs.journal.padded_with(self.journal_bytes()) <= max {
                room = true;
                break;
            }
            if self.fs.journal.nr_records > 0 {
                self.fs.journal_write()?;
            } else {
                self.fs.checkpoint()?;
            }
        }
        if !room {
            return Err(Error::Internal("transaction larger than a journal entry"));
        }
        self.reserve_nodes()?;
        let bytes = self.journal_bytes();
        self.fs.journal.buf.try_reserve(bytes)?;
        let buckets = self.charges.len().saturating_add(self.fs.alloc.dirty_count());
        self.updates.try_reserve(buckets)?;
        self.vals.try_reserve(buckets.saturating_mul(ALLOC_BYTES))
    }

    /// Nodes this commit may newly dirty, as an estimate with room to
    /// spare: per b-tree it changes, the path from the root and a split;
    /// a further leaf per inode its updates are about (updates are sorted,
    /// so an inode's keys are neighbours) and per half node of values.
    /// Bucket keys go to the alloc tree the same way.
    fn nodes_dirtied(&self) -> u64 {
        let trees = &self.fs.btrees;
        let half_node = u64::from(self.fs.sb.node_size / 2).max(1);
        let mut nodes = 0u64;
        let mut last: Option<(BtreeId, u64)> = None;
        let mut bytes = 0u64;
        for u in self.updates.iter() {
            match last {
                Some((b, _)) if b != u.btree => nodes += trees.depth(u.btree) + 1,
                None => nodes += trees.depth(u.btree) + 1,
                Some((_, ino)) if ino != u.pos.inode => nodes += 1,
                Some(_) => {}
            }
            last = Some((u.btree, u.pos.inode));
            bytes = bytes.saturating_add(u64::from(u.len) + UPDATE_HEADER_BYTES as u64);
        }
        let buckets = self.charges.len().saturating_add(self.fs.alloc.dirty_count()) as u64;
        if buckets > 0 {
            nodes += trees.depth(BtreeId::Alloc) + 1;
            bytes = bytes.saturating_add(buckets.saturating_mul(ALLOC_BYTES as u64));
        }
        nodes.saturating_add(bytes / half_node)
    }

    /// Make sure the next checkpoint can write every dirty node once this
    /// commit is applied: checkpoint first when that makes room (dirty
    /// nodes written, their old places and emptied buckets freed), and
    /// refuse with ENOSPC when even then it would not fit. Changes that add
    /// metadata also leave the room held back for deleting and repairing.
    fn reserve_nodes(&mut self) -> Result<()> {
        // The checkpoint's own bucket keys dirty a few alloc nodes per round.
        let slack = self.fs.btrees.depth(BtreeId::Alloc) + 2;
        // Writing promised data back takes nodes too: the margin writers
        // leave (`Fs::reservable_bytes`) is for them.
        let promised = match self.fs.data_promised {
            0 => 0,
            p => p.saturating_add(crate::fs::options::RESERVE_MARGIN),
        };
        let held_back = if self.use_reserve { 0 } else { self.fs.alloc.held_back_slots(promised) };
        for _ in 0..3 {
            let need = (self.fs.btrees.dirty_nodes as u64)
                .saturating_add(self.nodes_dirtied())
                .saturating_add(slack)
                .saturating_add(held_back);
            if need <= self.fs.alloc.node_slots() {
                return Ok(());
            }
            if self.fs.btrees.dirty_nodes == 0 && self.fs.alloc.pending == 0 {
                break;
            }
            self.fs.checkpoint()?;
        }
        Err(Error::NoSpace)
    }

    /// With reads refused ([`Fs::refuse_reads`]): every leaf this commit
    /// changes, bucket keys included, is in memory, so that applying it
    /// reads no node; else [`Error::NotCached`] before anything changed.
    /// (A merge may still read a leaf's neighbour.) Nothing between this
    /// and applying evicts a node.
    fn leaves_in_memory(&mut self) -> Result<()> {
        let fs = &*self.fs;
        let buckets = self
            .charges
            .iter()
            .filter_map(|&(dev, offset, _)| fs.alloc.bucket_of(dev, offset).map(|(b, _)| (dev, b)))
            .chain(fs.alloc.dirty_buckets().iter().copied())
            .map(|(dev, b)| (BtreeId::Alloc, crate::alloc::alloc_pos(dev, b)));
        // Keys are sorted per b-tree: neighbours mostly share a leaf.
        let mut leaf: Option<(BtreeId, Pos, Pos)> = None;
        let mut miss = None;
        let r = self.updates.iter().map(update_key).chain(buckets).try_for_each(|(btree, pos)| {
            if !leaf.is_some_and(|(b, min, max)| b == btree && min <= pos && pos <= max) {
                let found = fs.step_cached(&mut miss, |n| crate::btree::find_leaf(n, btree, pos))?;
                leaf = found.map(|(_, min, max)| (btree, min, max));
            }
            Ok(())
        });
        self.fs.refused = miss;
        r
    }

    fn apply(&mut self) -> Result<()> {
        for &(dev, offset, delta) in self.charges.iter() {
            self.fs.alloc.charge(dev, offset, delta)?;
        }
        // Buckets this and earlier changes left dirty get their keys written
        // in this entry.
        let dirty = self.fs.alloc.take_dirty();
        for &(dev, b) in dirty.iter() {
            let pos = crate::alloc::alloc_pos(dev, b);
            match self.fs.alloc.key_of(dev, b)? {
                Some(info) => {
                    let mut buf = [0u8; ALLOC_BYTES];
                    info.encode(&mut buf).map_err(|_| Error::Internal("alloc encode"))?;
                    self.put(BtreeId::Alloc, pos, Some(KeyType::Alloc), &buf)?;
                }
                None => self.put(BtreeId::Alloc, pos, None, &[])?,
            }
        }
        for i in 0..self.updates.len() {
            let u = *self.updates.get(i).ok_or(Error::Internal("update"))?;
            let start = u.off as usize;
            let value =
                self.vals.get(start..start + u.len as usize).ok_or(Error::Internal("update value"))?;
            self.fs.journal.append(&Record::BtreeUpdate {
                btree: u.btree,
                pos: u.pos,
                kind: u.kind,
                value,
            })?;
        }
        if self.inodes != 0 || self.data_bytes != 0 {
            self.fs
                .journal
                .append(&Record::Accounting { inodes: self.inodes, data_bytes: self.data_bytes })?;
        }
        for i in 0..self.updates.len() {
            let u = *self.updates.get(i).ok_or(Error::Internal("update"))?;
            let start = u.off as usize;
            let Txn { fs, vals, .. } = self;
            let value = vals.get(start..start + u.len as usize).ok_or(Error::Internal("update value"))?;
            fs.changes.record(u.btree, u.pos);
            let (trees, mut store) = fs.parts();
            match u.kind {
                Some(kind) => trees.set(&mut store, u.btree, u.pos, kind, value)?,
                None => {
                    trees.delete(&mut store, u.btree, u.pos)?;
                }
            }
        }
        self.fs.changes.seq += 1;
        // Numbers go upwards: an optimistic change that took a lower one
        // (committed after one that took a higher) leaves the next alone;
        // 0 sends the next search to the gaps.
        if let Some(next) = self.next_ino.filter(|&n| n == 0 || n > self.fs.next_ino) {
            self.fs.next_ino = next;
        }
        self.fs.counters.inodes = self.fs.counters.inodes.wrapping_add_signed(self.inodes);
        self.fs.counters.data_bytes = self.fs.counters.data_bytes.wrapping_add_signed(self.data_bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::btree::tests::Rng;
    use crate::fs::FormatOptions;
    use crate::sys::MemDevice;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    const T: BtreeId = BtreeId::Xattrs;

    fn fs() -> Fs<MemDevice> {
        let mut devs = TryVec::new();
        devs.try_push(MemDevice::new(32 << 20)).unwrap();
        Fs::format(devs, &FormatOptions { uuid: [7; 16], hash_seed: 9, ..Default::default() }).unwrap()
    }

    fn pos(k: u64) -> Pos {
        Pos::new(5000 + k / 8, 16 + k % 8, crate::format::SNAPSHOT_ROOT)
    }

    fn value(k: u64, gen: u64) -> Vec<u8> {
        let name = std::format!("n{k}-{gen}");
        let x = crate::format::xattr::Xattr {
            ns: crate::format::xattr::Namespace::User,
            name: name.as_bytes(),
            value: b"v",
        };
        let mut v = std::vec![0u8; x.encoded_len()];
        x.encode(&mut v).unwrap();
        v
    }

    #[test]
    fn journal_bytes_follow_the_updates_as_they_change() {
        let mut fs = fs();
        let mut t = fs.begin().unwrap();
        let mut rng = Rng(3);
        for round in 0..2000u64 {
            let k = rng.next() % 300;
            if rng.next().is_multiple_of(4) {
                t.delete(T, pos(k)).unwrap();
            } else {
                t.set(T, pos(k), KeyType::Xattr, &value(k, round)).unwrap();
            }
            let records: usize =
                t.updates.iter().map(|u| RECORD_HEADER_BYTES + UPDATE_HEADER_BYTES + u.len as usize).sum();
            assert_eq!(t.update_bytes, records, "after {round} changes");
        }
    }

    /// Every key of `T` as a committed reader sees it.
    fn tree(fs: &mut Fs<MemDevice>) -> BTreeMap<Pos, Vec<u8>> {
        fs.read_txn(|t| {
            let mut c = t.cursor(T, Pos::MIN, Pos::MAX);
            let mut val = TryVec::new();
            let mut out = BTreeMap::new();
            while let Some((p, _)) = t.next(&mut c, &mut val)? {
                out.insert(p, val.to_vec());
            }
            Ok(out)
        })
        .unwrap()
    }

    #[test]
    fn a_dropped_transaction_changes_nothing() {
        let mut fs = fs();
        fs.write_txn(|t| t.set(T, pos(1), KeyType::Xattr, &value(1, 0))).unwrap();
        let before = tree(&mut fs);
        let (records, counters, epoch) = (fs.journal.nr_records, fs.counters, fs.btrees.cache.epoch);
        {
            let mut t = fs.begin().unwrap();
            t.set(T, pos(2), KeyType::Xattr, &value(2, 0)).unwrap();
            t.delete(T, pos(1)).unwrap();
            t.account(3, 4096);
            let mut val = TryVec::new();
            assert!(t.get(T, pos(2), &mut val).unwrap().is_some(), "the transaction sees its own set");
            assert!(t.get(T, pos(1), &mut val).unwrap().is_none(), "and its own delete");
        }
        assert_eq!(tree(&mut fs), before);
        assert_eq!((fs.journal.nr_records, fs.counters, fs.btrees.cache.epoch), (records, counters, epoch));
    }

    #[test]
    fn cursors_see_the_transaction_over_the_tree() {
        let mut fs = fs();
        let mut rng = Rng(42);
        let mut model: BTreeMap<Pos, Vec<u8>> = BTreeMap::new();
        for round in 0..40u64 {
            // Committed state, then one transaction of mixed changes checked
            // against the model through forward and backward cursors.
            let mut t = fs.begin().unwrap();
            let mut want = model.clone();
            for _ in 0..(rng.next() % 60) {
                let k = rng.next() % 400;
                if rng.next().is_multiple_of(3) {
                    t.delete(T, pos(k)).unwrap();
                    want.remove(&pos(k));
                } else {
                    let v = value(k, round);
                    t.set(T, pos(k), KeyType::Xattr, &v).unwrap();
                    want.insert(pos(k), v);
                }
            }
            let (a, b) = (rng.next() % 400, rng.next() % 400);
            let (lo, hi) = (pos(a.min(b)), pos(a.max(b)));
            let mut c = t.cursor(T, lo, hi);
            let mut val = TryVec::new();
            let mut fwd = Vec::new();
            while let Some((p, _)) = t.next(&mut c, &mut val).unwrap() {
                fwd.push((p, val.to_vec()));
            }
            let expect: Vec<_> = want.range(lo..=hi).map(|(p, v)| (*p, v.clone())).collect();
            assert_eq!(fwd, expect, "round {round}: forward");
            let mut c = t.cursor(T, lo, hi);
            let mut back = Vec::new();
            while let Some((p, _)) = t.prev(&mut c, &mut val).unwrap() {
                back.push(p);
            }
            let expect_back: Vec<_> = want.range(lo..=hi).rev().map(|(p, _)| *p).collect();
            assert_eq!(back, expect_back, "round {round}: backward");
            if rng.next().is_multiple_of(4) {
                drop(t);
            } else {
                t.commit().unwrap();
                model = want;
            }
            assert_eq!(tree(&mut fs), model, "round {round}: committed state");
        }
    }

    #[test]
    fn commit_takes_journal_room_before_applying() {
        let mut fs = fs();
        // Records of committed transactions in the entry being built (a
        // new transaction writes them once they pass a quarter entry).
        let max = fs.journal.max_entry;
        let mut k = 0;
        while fs.journal.buf.len() < max / 5 {
            fs.write_txn(|t| t.set(T, pos(k), KeyType::Xattr, &value(k, 1))).unwrap();
            k += 1;
        }
        let (seq, built) = (fs.journal.seq, fs.journal.nr_records);
        // A transaction too big for the room left: the entry being built is
        // written first, and the transaction's records start the next one.
        let big = std::vec![7u8; 1000];
        let x = crate::format::xattr::Xattr {
            ns: crate::format::xattr::Namespace::User,
            name: b"big",
            value: &big,
        };
        let mut v = std::vec![0u8; x.encoded_len()];
        x.encode(&mut v).unwrap();
        let n = (max - fs.journal.buf.len()) / v.len() + 8;
        assert!(n * (v.len() + 64) < max - 4096, "the transaction fits an entry of its own");
        let mut t = fs.begin().unwrap();
        for j in 0..n as u64 {
            t.set(T, pos(10_000 + j), KeyType::Xattr, &v).unwrap();
        }
        t.commit().unwrap();
        assert_eq!(fs.journal.seq, seq + 1, "the entry being built was written before the commit");
        assert!(fs.journal.nr_records as usize >= n && (fs.journal.nr_records as usize) < n + built as usize);
        // Both entries are replayed after a crash.
        fs.journal_write().unwrap();
        let devs = fs.into_devices();
        let mut fs = Fs::open(devs, &crate::fs::OpenOptions::default()).unwrap();
        let got = tree(&mut fs);
        assert!(got.contains_key(&pos(0)) && got.contains_key(&pos(k - 1)) && got.contains_key(&pos(10_000)));
    }
}
