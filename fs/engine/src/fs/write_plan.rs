//! Writes planned under the engine lock and carried out without it.
//!
//! The kernel's writeback asks for room for the whole blocks of a run
//! ([`Fs::plan_write`]), encodes them ([`WritePlan::encode`]: compression
//! and checksums, a pure function) and writes them with the lock released,
//! and then commits the extent under the lock again
//! ([`Fs::commit_write`], or [`Fs::commit_writes`] for the plans of a
//! whole run at once) or gives the room up ([`Fs::abort_write`]).
//!
//! A plain plan (uncompressed, no checksum or one per chunk) is placed at
//! once: its blocks are written from the caller's buffer while their
//! checksums are computed. An encoded plan (compressed, or one checksum
//! per extent) covers at most one encoded extent's payload and is placed
//! only once encoded ([`Fs::place_write`]), since the room it takes is the
//! compressed size: compression runs without the lock, so compressing
//! writers do not serialise the mount.
//!
//! The bucket written stays pinned from placing to commit or abort: it is
//! not freed, so not reused, whatever else is written, cut or deleted
//! meanwhile. The commit marks data unflushed, so the journal entry that
//! makes the extent durable flushes the blocks first, as for the engine's
//! own writes. A partial last block at the end of the file is planned
//! whole when the caller pads it with zeros (`data_end`); other partial
//! blocks are written by the engine itself ([`Fs::write_back`]).

use super::extent::{encode_payload, PayloadSums, Placement};
use super::Fs;
use crate::error::{Error, Result};
use crate::format::checksum::ChecksumType;
use crate::format::extent::{Compression, Extent, ExtentPtr};
use crate::format::inode::Inode;
use crate::format::round_up;
use crate::sys::{BlockDevice, TryVec};
use crate::txn::{Access, Prepared, Txn};

/// Room for a write of whole blocks, from [`Fs::plan_write`].
pub struct WritePlan {
    /// The inode.
    pub ino: u64,
    /// File offset of the first block.
    pub start: u64,
    /// Bytes of the file covered: whole blocks, perhaps fewer than asked for.
    pub len: u64,
    /// Where the caller's data ends: the file grows no further (the bytes
    /// of the last block past it are zero padding).
    data_end: u64,
    /// Member to write to (once placed).
    pub dev: u8,
    /// Byte offset on the member (once placed).
    pub offset: u64,
    bucket: u64,
    gen: u32,
    block: u64,
    csum_type: ChecksumType,
    /// Chunk checksums of this shift for uncompressed data.
    chunk_shift: Option<u8>,
    /// Compression asked for (an encoded plan).
    compression: (Compression, u8),
    /// Placed only once encoded: the room taken is the stored size.
    encoded: bool,
    placed: bool,
    summed: bool,
    /// What `encode` made of the data.
    used: Compression,
    stored_len: u64,
    sums: PayloadSums,
    /// The compressed bytes, padded to whole blocks (empty otherwise).
    payload: TryVec<u8>,
    /// Access, modification and change times (ns) the commit gives the
    /// file ([`WritePlan::set_times`]).
    times: Option<[i64; 3]>,
}

impl WritePlan {
    /// An empty plan.
    pub const fn new() -> Self {
        WritePlan {
            ino: 0,
            start: 0,
            len: 0,
            data_end: 0,
            dev: 0,
            offset: 0,
            bucket: 0,
            gen: 0,
            block: 0,
            csum_type: ChecksumType::None,
            chunk_shift: None,
            compression: (Compression::None, 0),
            encoded: false,
            placed: false,
            summed: false,
            used: Compression::None,
            stored_len: 0,
            sums: PayloadSums::new(),
            payload: TryVec::new(),
            times: None,
        }
    }

    /// Have the commit also give the file these access, modification and
    /// change times (ns): the kernel's times of the file as it was
    /// written, which would otherwise take a transaction of their own
    /// (write_inode) at the fsync that follows. Not given if the file's
    /// change time is later (changed since they were taken).
    pub fn set_times(&mut self, atime: i64, mtime: i64, ctime: i64) {
        self.times = Some([atime, mtime, ctime]);
    }

    /// Whether the plan has its room on a member (`dev`, `offset`).
    /// A plan not placed is encoded first, then placed with
    /// [`Fs::place_write`].
    pub fn is_placed(&self) -> bool {
        self.placed
    }

    /// Encode `data`, the plan's `len` bytes: compress them if the plan
    /// asks for it and it saves at least a block, and compute their
    /// checksums. Touches nothing but the plan: callable without the
    /// engine lock (the kernel calls it while a plain plan's bios are in
    /// flight, and before placing an encoded one).
    pub fn encode(&mut self, data: &[u8]) -> Result<()> {
        if data.len() as u64 != self.len {
            return Err(Error::Internal("write plan length"));
        }
        let (used, n) = encode_payload(self.compression, self.block, data, &mut self.payload)?;
        let sums = if used == Compression::None {
            self.payload.clear();
            PayloadSums::of(self.csum_type, self.chunk_shift, data)?
        } else {
            let padded = round_up(n as u64, self.block).ok_or(Error::Internal("write plan payload"))?;
            self.payload.truncate(n);
            self.payload.try_resize(padded as usize, 0)?;
            PayloadSums::of(self.csum_type, None, self.payload.get(..n).ok_or(Error::Internal("payload"))?)?
        };
        self.used = used;
        self.stored_len = n as u64;
        self.sums = sums;
        self.summed = true;
        Ok(())
    }

    /// The bytes to write at the plan's room once encoded: the compressed
    /// payload padded to blocks, or `data` (the plan's bytes) as they are.
    pub fn stored<'a>(&'a self, data: &'a [u8]) -> &'a [u8] {
        if self.used == Compression::None {
            data
        } else {
            &self.payload
        }
    }
}

/// The commit of written plans made with the file system held shared
/// ([`Fs::prepare_writes`]), for [`Fs::commit_prepared_writes`].
pub struct PreparedWrites {
    prepared: Prepared,
    /// The bytes the file of the last plan holds once it is committed.
    alloc_bytes: u64,
}

/// One writeback of a batch planned by [`Fs::plan_writes`]: the
/// arguments of [`Fs::plan_write`], and its result.
pub struct WriteRequest {
    /// File offset.
    pub off: u64,
    /// Bytes (with the padding of a partial last block).
    pub len: u64,
    /// Where the file's data ends.
    pub data_end: u64,
    /// The plan made.
    pub plan: WritePlan,
    /// Whether `plan` was made (false: the engine writes these bytes).
    pub planned: bool,
}

impl WriteRequest {
    /// A request not yet planned.
    pub const fn new(off: u64, len: u64, data_end: u64) -> Self {
        WriteRequest { off, len, data_end, plan: WritePlan::new(), planned: false }
    }
}

impl Default for WritePlan {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: BlockDevice> Fs<D> {
    /// Plan the whole blocks at the front of a writeback of `len` bytes at
    /// `off` of `ino` into `plan`. The file's data ends at `data_end`: the
    /// caller zeroed the bytes of the range past it, so a partial last
    /// block of the file is planned whole, and the file grows only to
    /// `data_end`. Blocks wholly past `data_end` are not planned.
    ///
    /// A plain plan is placed (allocated) here; an encoded one is placed
    /// by [`Fs::place_write`] once encoded. False (and nothing allocated)
    /// when the engine must write these bytes itself: an unaligned `off`,
    /// or no whole block to plan.
    pub fn plan_write(
        &mut self,
        ino: u64,
        off: u64,
        len: u64,
        data_end: u64,
        plan: &mut WritePlan,
    ) -> Result<bool> {
        let [req] = &mut [WriteRequest::new(off, len, data_end)];
        self.plan_writes(ino, core::slice::from_mut(req))?;
        core::mem::swap(plan, &mut req.plan);
        Ok(req.planned)
    }

    /// Plan the front of several writebacks of one file at once, each as
    /// [`Fs::plan_write`] would (the inode is read once). Stops at the
    /// first error, leaving the rest unplanned; the plans made before it
    /// stand (the caller aborts them).
    pub fn plan_writes(&mut self, ino: u64, reqs: &mut [WriteRequest]) -> Result<()> {
        reqs.iter_mut().for_each(|r| r.planned = false);
        let inode = self.writable_file(ino)?;
        for r in reqs.iter_mut() {
            r.planned = self.plan_request(&inode, ino, r)?;
        }
        Ok(())
    }

    /// The inode of a regular file that user data may be written to.
    fn writable_file(&mut self, ino: u64) -> Result<Inode> {
        self.check_user_writable()?;
        let inode = self.getattr(ino)?.inode;
        if inode.is_dir() {
            return Err(Error::IsDir);
        }
        if !inode.is_reg() {
            return Err(Error::Invalid);
        }
        Ok(inode)
    }

    /// [`Fs::plan_write`] of one request on `ino`'s `inode`.
    fn plan_request(&mut self, inode: &Inode, ino: u64, req: &mut WriteRequest) -> Result<bool> {
        let (off, len, plan) = (req.off, req.len, &mut req.plan);
        let block = self.block();
        let end = off.checked_add(len).filter(|&e| e <= i64::MAX as u64).ok_or(Error::TooBig)?;
        let data_end = req.data_end.min(end);
        if !off.is_multiple_of(block) || data_end <= off {
            return Ok(false);
        }
        // The whole blocks of the range, up to the one holding `data_end`.
        let data_blocks = round_up(data_end - off, block).ok_or(Error::TooBig)?;
        let whole = (len - len.checked_rem(block).ok_or(Error::Corrupt("block size 0"))?).min(data_blocks);
        if whole == 0 {
            return Ok(false);
        }
        let compression = self.compression_for(inode);
        let (encoded, max) = self.new_extent_shape(compression);
        *plan = WritePlan {
            ino,
            start: off,
            len: whole.min(max),
            data_end,
            block,
            csum_type: self.sb.data_csum,
            chunk_shift: self.chunked_csums().then(|| self.chunk_shift()),
            compression,
            encoded,
            ..WritePlan::new()
        };
        if !encoded {
            plan.len = self.place(plan, block, plan.len)?;
        }
        Ok(true)
    }

    /// Place an encoded plan: room for its stored bytes, in one piece.
    pub fn place_write(&mut self, plan: &mut WritePlan) -> Result<()> {
        if !plan.encoded || plan.placed || !plan.summed {
            return Err(Error::Internal("write plan placed twice or before encoding"));
        }
        let room = round_up(plan.stored_len, plan.block).ok_or(Error::Internal("write plan size"))?;
        self.place(plan, room, room).map(|_| ())
    }

    /// Allocate at least `min` and up to `want` bytes for `plan` and pin
    /// their bucket; returns the bytes given.
    fn place(&mut self, plan: &mut WritePlan, min: u64, want: u64) -> Result<u64> {
        // As `Txn::allocate_data`: data the writer reserved room for may
        // use the reserve, and a checkpoint first frees what awaits one.
        let (dev, offset, got, gen) = self.with_reserve(|fs| {
            if fs.alloc.wants_checkpoint_for(min) {
                fs.checkpoint()?;
            }
            fs.alloc.allocate_data(min, want)
        })?;
        let (bucket, _) =
            self.alloc.bucket_of(dev, offset).ok_or(Error::Internal("allocation outside the buckets"))?;
        self.alloc.pin(dev, bucket)?;
        plan.dev = dev;
        plan.offset = offset;
        plan.bucket = bucket;
        plan.gen = gen;
        plan.placed = true;
        Ok(got)
    }

    /// Commit a placed plan whose stored bytes the caller wrote: its
    /// extent replaces what the range held, and the file grows to its end.
    /// The bucket is unpinned whatever happens. Returns the bytes the file
    /// now holds (its `alloc_bytes`).
    pub fn commit_write(&mut self, plan: &WritePlan) -> Result<u64> {
        self.commit_writes(core::slice::from_ref(&plan))
    }

    /// Commit several placed plans (of one file or several) as
    /// [`Fs::commit_write`], in as few transactions as the journal's entry
    /// size allows: a writeback of scattered blocks is one commit, not one
    /// per block. On an error the plans not yet committed are given up;
    /// every bucket is unpinned whatever happens, but for
    /// [`Error::NotCached`] with reads refused, when nothing was committed.
    /// Returns the bytes the file of the last plan now holds.
    pub fn commit_writes(&mut self, plans: &[&WritePlan]) -> Result<u64> {
        if plans.iter().any(|p| !p.placed || !p.summed) {
            return self.abort_writes(plans).and(Err(Error::Internal("write plan committed before placing")));
        }
        let r = self.commit_planned(plans);
        if matches!(r, Err(Error::NotCached)) {
            // Refused before anything changed (`Fs::refuse_reads`): the
            // caller commits the plans again, pinned as they are.
            return r;
        }
        let unpinned = self.abort_writes(plans);
        let alloc_bytes = r?;
        unpinned.map(|()| alloc_bytes)
    }

    /// Give up a plan (its bytes were not written, or not all): the room
    /// stays unused and the bucket is unpinned.
    pub fn abort_write(&mut self, plan: &WritePlan) -> Result<()> {
        self.abort_writes(core::slice::from_ref(&plan))
    }

    /// Give up several plans ([`Fs::abort_write`]).
    pub fn abort_writes(&mut self, plans: &[&WritePlan]) -> Result<()> {
        let mut r = Ok(());
        for p in plans.iter().filter(|p| p.placed) {
            r = r.and(self.alloc.unpin(p.dev, p.bucket));
        }
        r
    }

    /// Make the commit of written plans (of one file or several) with the
    /// file system held shared, while their blocks are still being
    /// written, for [`Fs::commit_prepared_writes`] once they are: the
    /// commit then only applies what this found. Fails, changing nothing,
    /// where the commit must be made exclusively ([`Fs::commit_writes`]):
    /// a node on disk only ([`Error::NotCached`]), or plans that take more
    /// than one transaction ([`Error::Conflict`]).
    pub fn prepare_writes(&self, plans: &[&WritePlan]) -> Result<PreparedWrites> {
        self.check_user_writable()?;
        if plans.iter().any(|p| !p.placed || !p.summed) {
            return Err(Error::Internal("write plan committed before placing"));
        }
        // Data the writer reserved room for may use the reserve, as in
        // `commit_planned`.
        let mut t = Txn::optimistic(self, true);
        let (n, alloc_bytes) = commit_planned_some(&mut t, plans, self.journal.max_entry / 2)?;
        if n < plans.len() {
            return Err(Error::Conflict);
        }
        Ok(PreparedWrites { prepared: t.prepare(), alloc_bytes })
    }

    /// Commit plans whose commit [`Fs::prepare_writes`] made, now that
    /// their blocks are written: as [`Fs::commit_writes`], but for
    /// [`Error::Conflict`] (a commit since changed what the body read),
    /// which changes nothing and leaves the plans pinned, for the caller
    /// to commit them with [`Fs::commit_writes`].
    /// Returns the bytes the file of the last plan now holds.
    pub fn commit_prepared_writes(&mut self, prepared: PreparedWrites, plans: &[&WritePlan]) -> Result<u64> {
        self.check_user_writable()?;
        // Written outside the engine: the next journal entry flushes it
        // (noted before the commit, which may write a full entry).
        self.note_data_written();
        let r = self.commit_prepared(prepared.prepared);
        if matches!(r, Err(Error::Conflict | Error::NotCached)) {
            return r.map(|()| 0);
        }
        let unpinned = self.abort_writes(plans);
        r.and(unpinned).map(|()| prepared.alloc_bytes)
    }

    fn commit_planned(&mut self, plans: &[&WritePlan]) -> Result<u64> {
        self.check_user_writable()?;
        // Written outside the engine: the next journal entry flushes it.
        self.note_data_written();
        // Half an entry per transaction, so one always fits beside what
        // the entry being built holds.
        let budget = self.journal.max_entry / 2;
        let mut rest = plans;
        let mut alloc_bytes = 0;
        while !rest.is_empty() {
            let done;
            (done, alloc_bytes) =
                self.with_reserve(|fs| fs.write_txn(|t| commit_planned_some(t, rest, budget)))?;
            rest = rest.get(done..).unwrap_or(&[]);
        }
        Ok(alloc_bytes)
    }
}

/// Put the extents of the first of `plans` in place in `t`, until its
/// journal bytes reach `budget`: how many it took (at least one), and the
/// bytes the last one's file then holds.
fn commit_planned_some<D: BlockDevice, A: Access<D>>(
    t: &mut Txn<'_, D, A>,
    plans: &[&WritePlan],
    budget: usize,
) -> Result<(usize, u64)> {
    let mut n = 0;
    // Plans of one file are neighbours: its inode is read and written
    // once for them.
    let mut file: Option<(u64, Inode)> = None;
    for plan in plans {
        let inode = match &mut file {
            Some((ino, inode)) if *ino == plan.ino => inode,
            _ => {
                if let Some((ino, inode)) = file.take() {
                    t.inode_write(ino, &inode)?;
                }
                &mut file.insert((plan.ino, t.inode_read(plan.ino)?)).1
            }
        };
        t.commit_planned(plan, inode)?;
        // Times older than what the file holds (a setattr committed
        // since they were taken) are not put back.
        if let Some([atime, mtime, ctime]) = plan.times.filter(|times| times[2] >= inode.ctime) {
            (inode.atime, inode.mtime, inode.ctime) = (atime, mtime, ctime);
        }
        n += 1;
        if t.journal_bytes() >= budget {
            break;
        }
    }
    let mut alloc_bytes = 0;
    if let Some((ino, inode)) = file {
        t.inode_write(ino, &inode)?;
        alloc_bytes = inode.alloc_bytes;
    }
    Ok((n, alloc_bytes))
}

impl<D: BlockDevice, A: Access<D>> Txn<'_, D, A> {
    /// Put a written plan's extent in place of what its range held, on
    /// `inode` (its file's, which the caller writes back).
    fn commit_planned(&mut self, plan: &WritePlan, inode: &mut Inode) -> Result<()> {
        let len = u32::try_from(plan.len).map_err(|_| Error::Internal("extent size"))?;
        let e = plan.sums.apply(Extent {
            compression: plan.used,
            csum_type: plan.csum_type,
            stored_len: u32::try_from(plan.stored_len).map_err(|_| Error::Internal("extent size"))?,
            ..Extent::one_copy(ExtentPtr { dev: plan.dev, gen: plan.gen, offset: plan.offset }, len)
        });
        let end = plan.start.checked_add(plan.len).ok_or(Error::TooBig)?;
        let place = Placement {
            size_end: end.min(plan.data_end),
            keep_size: false,
            stamp: false,
            compression: plan.compression,
        };
        self.replace_extents(plan.ino, inode, plan.start, end, Some(e), place)
    }
}
