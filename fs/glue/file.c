// SPDX-License-Identifier: GPL-2.0
/*
 * File data: the page cache (read_folio, readahead, write_begin/write_end,
 * writepages, mmap), O_DIRECT, fsync, fallocate, SEEK_DATA/SEEK_HOLE and
 * the file ioctls.
 *
 * Buffered writes land in the page cache. Writeback gathers runs of dirty
 * folios (up to WB_RUN_BYTES, in up to WB_RUN_SEGS contiguous ranges), ends
 * the folio lock and queues each run on arborfs_io_wq, which maps each range
 * as one buffer (no copy: writes are stable, so the folios do not change
 * under writeback) and hands the run to the engine as copy-on-write writes
 * committed together, so large writes make large extents and scattered
 * small ones one transaction.
 *
 * Space: a folio reserves its bytes when it first becomes dirty (marked by
 * folio->private) and gives them back once the engine has written it, or
 * when it is dropped. write_begin refuses with ENOSPC when the engine's free
 * space minus all reservations cannot take one more folio, so a full file
 * system refuses writes up front instead of losing them at writeback.
 */
#include <linux/fs.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/mempool.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/splice.h>
#include <linux/uio.h>
#include <linux/vmalloc.h>
#include <linux/writeback.h>
#include <linux/backing-dev.h>
#include <linux/blkdev.h>

#include "arborfs.h"
#include "services.h"

#define WB_RUN_BYTES (1024 * 1024)
#define WB_RUN_FOLIOS (WB_RUN_BYTES / PAGE_SIZE)
/* The largest folio: one fills a writeback run. */
#define WB_MAX_FOLIO_ORDER ilog2(WB_RUN_BYTES / PAGE_SIZE)
/*
 * Runs of a mount in flight at once, and their bytes (a run is gathered
 * while the bytes are under the limit, so it may pass it by one run); runs
 * kept for when memory is short; the bytes and runs of small runs (of
 * several files) one worker writes as a group.
 */
#define WB_RUNS_IN_FLIGHT 64
#define WB_BYTES_IN_FLIGHT (16 * 1024 * 1024)
#define WB_RUNS_RESERVED 4
#define WB_GROUP_BYTES WB_RUN_BYTES
#define WB_GROUP_RUNS 32
#define DIRECT_CHUNK (1024 * 1024)

/* The folio holds a space reservation. */
#define ARBORFS_RESERVED ((void *)1UL)
#define DIRTY_EXTENTS 32
#define DIRTY_FOLIOS_MAX 4096

/* ---- space reservations ---- */

/* Look at the engine's free space again. */
static u64 arborfs_update_avail(struct super_block *sb)
{
	u64 avail = ENGINE_CALL(sb, arborfs_rs_available(FS(sb)));

	atomic64_set(&ASB(sb)->avail, avail);
	return avail;
}

/* Reserve `bytes` for dirty data; -ENOSPC if the engine could not take it all. */
static int arborfs_reserve(struct super_block *sb, u64 bytes)
{
	struct arborfs_sb_info *s = ASB(sb);
	s64 want = atomic64_add_return(bytes, &s->reserved);

	if (want <= atomic64_read(&s->avail))
		return 0;
	/* The cached number may be stale in either direction: ask the engine. */
	if (want <= arborfs_update_avail(sb))
		return 0;
	atomic64_sub(bytes, &s->reserved);
	return -ENOSPC;
}

void arborfs_unreserve(struct super_block *sb, u64 bytes)
{
	atomic64_sub(bytes, &ASB(sb)->reserved);
}

/* Give a locked folio a reservation unless it holds one. */
static int arborfs_reserve_folio(struct folio *folio)
{
	struct super_block *sb = folio->mapping->host->i_sb;
	int err;

	if (folio_test_private(folio))
		return 0;
	err = arborfs_reserve(sb, folio_size(folio));
	if (!err) {
		folio_attach_private(folio, ARBORFS_RESERVED);
		atomic64_add(folio_size(folio), &AI(folio->mapping->host)->delalloc);
	}
	return err;
}

/* Drop a locked folio's reservation (written, or thrown away). */
static void arborfs_release_reservation(struct folio *folio)
{
	struct inode *inode = folio->mapping->host;

	if (folio_test_private(folio)) {
		folio_detach_private(folio);
		arborfs_unreserve(inode->i_sb, folio_size(folio));
		atomic64_sub(folio_size(folio), &AI(inode)->delalloc);
	}
}

/* Bytes of [start, end) that no extent of the engine covers. */
static u64 arborfs_unmapped_bytes(struct inode *inode, struct arborfs_extent *ext, u64 start, u64 end)
{
	struct super_block *sb = inode->i_sb;
	u64 pos = start, covered = 0;
	size_t i, n;

	while (pos < end) {
		if (arborfs_alive(sb) ||
		    ENGINE_CALL(sb, arborfs_rs_fiemap(FS(sb), inode->i_ino, pos, end, ext, DIRTY_EXTENTS, &n)) || !n)
			break;
		for (i = 0; i < n; i++) {
			u64 a = max(ext[i].logical, pos), b = min(ext[i].logical + ext[i].length, end);

			if (b > a)
				covered += b - a;
		}
		pos = ext[n - 1].logical + ext[n - 1].length;
		if (n < DIRTY_EXTENTS)
			break;
	}
	return end - start - min(covered, end - start);
}

/*
 * What writeback will add to a file's allocation: the bytes of its dirty
 * folios over holes (st_blocks counts them; an overwrite replaces what it
 * overwrites, so it adds nothing, generic/422). Past DIRTY_FOLIOS_MAX folios,
 * or without memory, every reserved byte counts.
 */
u64 arborfs_new_dirty_bytes(struct inode *inode)
{
	s64 reserved = atomic64_read(&AI(inode)->delalloc);
	struct folio_batch fbatch;
	struct arborfs_extent *ext;
	u64 run_start = 0, run_end = 0, new = 0;
	unsigned int i, seen = 0;
	pgoff_t index = 0;

	if (reserved <= 0)
		return 0;
	ext = kmalloc_array(DIRTY_EXTENTS, sizeof(*ext), GFP_KERNEL);
	if (!ext)
		return reserved;
	folio_batch_init(&fbatch);
	while (filemap_get_folios_tag(inode->i_mapping, &index, (pgoff_t)-1, PAGECACHE_TAG_DIRTY, &fbatch)) {
		for (i = 0; i < folio_batch_count(&fbatch); i++) {
			u64 s = folio_pos(fbatch.folios[i]), e = s + folio_size(fbatch.folios[i]);

			if (++seen > DIRTY_FOLIOS_MAX) {
				folio_batch_release(&fbatch);
				kfree(ext);
				return reserved;
			}
			if (s == run_end) {
				run_end = e;
				continue;
			}
			if (run_end > run_start)
				new += arborfs_unmapped_bytes(inode, ext, run_start, run_end);
			run_start = s;
			run_end = e;
		}
		folio_batch_release(&fbatch);
		cond_resched();
	}
	if (run_end > run_start)
		new += arborfs_unmapped_bytes(inode, ext, run_start, run_end);
	kfree(ext);
	return min_t(u64, new, reserved);
}

/* Make room: write back dirty data of the whole file system, then look again. */
static void arborfs_flush_for_space(struct super_block *sb)
{
	try_to_writeback_inodes_sb(sb, WB_REASON_FS_FREE_SPACE);
	/* The runs queued give their reservations back when written. */
	arborfs_wb_wait_idle(sb);
	arborfs_update_avail(sb);
}

/*
 * Let a regular file's page cache use folios of up to WB_MAX_FOLIO_ORDER: a
 * 1 MiB read or write is then a handful of folios, not 256 pages, each with
 * its own locking, LRU and mapping work. Every path here takes a folio's
 * size from folio_size() and maps it whole with kmap_local_folio(), which
 * only highmem kernels cannot do; they keep small folios.
 */
void arborfs_set_large_folios(struct inode *inode)
{
	if (!IS_ENABLED(CONFIG_HIGHMEM))
		mapping_set_folio_order_range(inode->i_mapping, 0, WB_MAX_FOLIO_ORDER);
}

/* ---- reading ---- */

/*
 * Reads of file bytes into a kernel buffer hold the engine lock only to
 * map the range and to finish: the member blocks are read with the engine lock
 * released, all in flight together, while other engine calls run; blocks
 * or chunks that reach past a span are read into a bounce buffer and the
 * span copied out once verified. Extents stored whole (compressed) are
 * read whole into a bounce buffer and checked and decoded from there, also
 * without the engine lock. A bucket freed meanwhile, a damaged chunk or a failed
 * bio falls back to the engine's own read under the engine lock, which tries
 * every replica and reports damage.
 *
 * A read is started (planned, its bios submitted) and ended (verified,
 * decoded, finished) apart, so readahead can return between the two.
 */
struct arborfs_read_op {
	struct inode *inode;
	loff_t pos;
	u8 *buf;
	size_t len;
	ssize_t n;		/* bytes planned (short at EOF); <= 0: nothing submitted, the result */
	int err;		/* the start failed part way: the end falls back */
	void *plan;
	u8 **bounce;		/* per span: its bounce buffer, or NULL */
	size_t nr;		/* spans */
	s64 calls;		/* engine calls entered when the bios went */
	struct arborfs_io_batch batch;
};

/* Plan the read of [pos, pos + len) into buf and submit its bios in r->batch, whose submitter reference is kept. */
static void arborfs_read_start(struct arborfs_read_op *r, struct inode *inode, loff_t pos, u8 *buf, size_t len)
{
	struct super_block *sb = inode->i_sb;
	struct arborfs_sb_info *sbi = ASB(sb);
	struct arborfs_read_span s;
	struct blk_plug plug;
	size_t i;

	*r = (struct arborfs_read_op){ .inode = inode, .pos = pos, .buf = buf, .len = len };
	arborfs_io_batch_init(&r->batch);
	r->n = arborfs_alive(sb) ?: ENGINE_READ(sb, arborfs_rs_plan_read, inode->i_ino, pos, len, &r->plan);
	if (r->n <= 0) {
		arborfs_rs_plan_free(r->plan);
		r->plan = NULL;
		return;
	}
	while (arborfs_rs_plan_span(r->plan, r->nr, &s))
		r->nr++;
	r->bounce = kcalloc(r->nr, sizeof(*r->bounce), GFP_NOFS);
	if (!r->bounce) {
		r->err = -ENOMEM;
		return;
	}
	r->calls = arborfs_calls_entered(sbi);
	blk_start_plug(&plug);
	for (i = 0; !r->err && arborfs_rs_plan_span(r->plan, i, &s); i++) {
		u8 *dst = buf + (s.start - pos);

		if (s.kind == ARBORFS_SPAN_ZERO) {
			memset(dst, 0, s.len);
		} else if (s.kind == ARBORFS_SPAN_DEVICE || s.kind == ARBORFS_SPAN_ENCODED) {
			/* The mount opens one member: its index is 0. */
			if (s.dev) {
				r->err = -EAGAIN;
				break;
			}
			if (s.kind == ARBORFS_SPAN_ENCODED || s.dev_len != s.len || s.skip) {
				dst = r->bounce[i] = kvmalloc(s.dev_len, GFP_NOFS);
				if (!dst) {
					r->err = -ENOMEM;
					break;
				}
			}
			r->err = arborfs_io_batch_add(&r->batch, &sbi->member, dst, s.dev_len, s.offset, REQ_OP_READ);
		}
	}
	blk_finish_plug(&plug);
}

/*
 * End a started read whose bios have all ended (io_err: the batch's
 * result): verify, decode and finish it, or read again under the engine lock.
 * Returns the bytes read (short at EOF) or a negative errno.
 */
static ssize_t arborfs_read_end(struct arborfs_read_op *r, int io_err)
{
	struct super_block *sb = r->inode->i_sb;
	struct arborfs_sb_info *sbi = ASB(sb);
	struct arborfs_read_span s;
	ssize_t n = r->n;
	int err = r->err ?: io_err;
	size_t i;

	if (n <= 0)
		return n;
	if (arborfs_calls_entered(sbi) != r->calls)
		atomic64_inc(&sbi->overlapped_reads);
	for (i = 0; !err && arborfs_rs_plan_span(r->plan, i, &s); i++) {
		u8 *dst = r->buf + (s.start - r->pos);

		if (s.kind == ARBORFS_SPAN_ENCODED) {
			/* Decompression allocates: keep reclaim out of the file system. */
			unsigned int nofs = memalloc_nofs_save();

			err = arborfs_rs_plan_decode(r->plan, i, r->bounce[i], s.dev_len, dst, s.len);
			memalloc_nofs_restore(nofs);
			if (!err)
				atomic64_inc(&sbi->decoded_reads);
			continue;
		}
		if (s.kind != ARBORFS_SPAN_DEVICE)
			continue;
		err = arborfs_rs_plan_verify(r->plan, i, r->bounce[i] ?: dst, s.dev_len);
		if (!err && r->bounce[i])
			memcpy(dst, r->bounce[i] + s.skip, s.len);
	}
	if (!err)
		err = ENGINE_READ(sb, arborfs_rs_plan_finish, r->plan, r->buf, n);
	if (!err) {
		atomic64_inc(&sbi->planned_reads);
	} else {
		if (err == 1)
			atomic64_inc(&sbi->replanned_reads);
		n = arborfs_alive(sb) ?:
			    ENGINE_CALL(sb, arborfs_rs_read(FS(sb), r->inode->i_ino, r->pos, r->buf, r->len));
	}
	if (r->bounce) {
		for (i = 0; i < r->nr; i++)
			kvfree(r->bounce[i]);
		kfree(r->bounce);
	}
	arborfs_rs_plan_free(r->plan);
	return n;
}

/* Read file bytes into buf (a kernel buffer) and wait: the bytes read (short at EOF) or a negative errno. */
ssize_t arborfs_read(struct inode *inode, loff_t pos, u8 *buf, size_t len)
{
	struct arborfs_read_op r;

	arborfs_read_start(&r, inode, pos, buf, len);
	if (r.n <= 0)
		return r.n;
	return arborfs_read_end(&r, arborfs_io_batch_wait(&r.batch, &ASB(inode->i_sb)->member));
}

/*
 * Fill a locked folio from the engine; bytes past EOF are zero. Does not
 * unlock. Returns 0 or a negative errno (the folio is then not uptodate).
 */
static int arborfs_fill_folio(struct inode *inode, struct folio *folio)
{
	size_t len = folio_size(folio);
	loff_t pos = folio_pos(folio);
	loff_t size = i_size_read(inode);
	ssize_t n = 0;
	u8 *addr;

	addr = kmap_local_folio(folio, 0);
	if (pos < size) {
		n = arborfs_read(inode, pos, addr, min_t(loff_t, len, size - pos));
	}
	if (n >= 0)
		memset(addr + n, 0, len - n);
	kunmap_local(addr);
	if (n < 0)
		return n;
	folio_mark_uptodate(folio);
	return 0;
}

static int arborfs_read_folio(struct file *file, struct folio *folio)
{
	int err = arborfs_fill_folio(folio->mapping->host, folio);

	folio_unlock(folio);
	return err;
}

/* Map pages as one buffer, in a NOFS scope since page tables may be allocated. NULL when memory is short. */
static u8 *arborfs_vmap(struct page **pages, unsigned int nr)
{
	unsigned int nofs = memalloc_nofs_save();
	u8 *buf = vmap(pages, nr, VM_MAP, PAGE_KERNEL);

	memalloc_nofs_restore(nofs);
	return buf;
}

/*
 * Map folios (in file order, `nr_pages` pages in all) as one buffer: a
 * single folio already is one (large folios exist only without highmem),
 * several are mapped together (arborfs_vmap). NULL when memory is short.
 * Undone by arborfs_unmap_folios.
 */
static u8 *arborfs_map_folios(struct folio **folios, unsigned int nr, struct page **pages, unsigned int nr_pages)
{
	unsigned int i, j, n = 0;

	if (nr == 1 && !IS_ENABLED(CONFIG_HIGHMEM))
		return folio_address(folios[0]);
	for (i = 0; i < nr; i++)
		for (j = 0; j < folio_nr_pages(folios[i]); j++) {
			if (n == nr_pages)
				return NULL;
			pages[n++] = folio_page(folios[i], j);
		}
	return arborfs_vmap(pages, n);
}

static void arborfs_unmap_folios(u8 *buf, unsigned int nr)
{
	if (nr > 1 || IS_ENABLED(CONFIG_HIGHMEM))
		vunmap(buf);
}

/*
 * A readahead window in flight, in parts of at least RA_PART_BYTES (whole
 * folios) that are read, verified and completed each on its own: the
 * reader copies out the first part while the later ones are still read,
 * and the parts are verified on both CPUs. A window completed whole would
 * keep the reader waiting for its last bio and its last checksum, so a
 * larger window would only mean a longer wait.
 */
#define RA_PART_BYTES SZ_256K

struct arborfs_readahead;

/* Part of a window: its folios (locked, so they stay in the page cache and readers wait), mapped as one buffer. */
struct arborfs_ra_part {
	struct arborfs_read_op op;
	struct work_struct work;
	struct arborfs_readahead *ra;
	u8 *buf;		/* NULL: the folios could not be mapped */
	size_t len;		/* the folios' bytes */
	unsigned int first;	/* index of its first folio in the window */
	unsigned int nr;
};

struct arborfs_readahead {
	atomic_t pending;	/* parts not completed, and the submitter's reference */
	struct arborfs_ra_part *parts;	/* after pages[] */
	struct page **pages;	/* room for arborfs_map_folios, after folios[] */
	struct folio *folios[];
};

static void arborfs_readahead_put(struct arborfs_readahead *ra)
{
	if (atomic_dec_and_test(&ra->pending))
		kfree(ra);
}

/* Complete the folios of a part read with result n, and drop its reference on the window. */
static void arborfs_readahead_end(struct arborfs_ra_part *part, ssize_t n)
{
	struct folio **folios = &part->ra->folios[part->first];
	unsigned int i;

	if (n >= 0)
		memset(part->buf + n, 0, part->len - n);
	if (part->buf)
		arborfs_unmap_folios(part->buf, part->nr);
	for (i = 0; i < part->nr; i++) {
		/* The part failed (damage, memory): each folio on its own, so the good ones read. */
		if (n >= 0)
			folio_mark_uptodate(folios[i]);
		else
			arborfs_fill_folio(part->op.inode, folios[i]);
		folio_unlock(folios[i]);
	}
	arborfs_readahead_put(part->ra);
}

/* On arborfs_io_wq once the part's bios have ended. */
static void arborfs_readahead_work(struct work_struct *work)
{
	struct arborfs_ra_part *part = container_of(work, struct arborfs_ra_part, work);
	int io_err = arborfs_io_batch_end(&part->op.batch, &ASB(part->op.inode->i_sb)->member);

	arborfs_readahead_end(part, arborfs_read_end(&part->op, io_err));
}

/* Map a part's folios and start reading them; it completes from arborfs_io_wq, or here when nothing was submitted. */
static void arborfs_readahead_start(struct arborfs_ra_part *part, unsigned int nr_pages)
{
	struct inode *inode = part->op.inode;
	loff_t pos = folio_pos(part->ra->folios[part->first]);
	loff_t size = i_size_read(inode);

	part->buf = arborfs_map_folios(&part->ra->folios[part->first], part->nr, part->ra->pages, nr_pages);
	if (!part->buf) {
		/* No memory for the mapping: each folio on its own. */
		arborfs_readahead_end(part, -ENOMEM);
		return;
	}
	if (pos >= size) {
		arborfs_readahead_end(part, 0);
		return;
	}
	arborfs_read_start(&part->op, inode, pos, part->buf, min_t(loff_t, part->len, size - pos));
	if (part->op.n <= 0) {
		arborfs_readahead_end(part, part->op.n);
		return;
	}
	INIT_WORK(&part->work, arborfs_readahead_work);
	part->op.batch.then = &part->work;
	arborfs_io_batch_submitted(&part->op.batch);
}

/*
 * A window smaller than the engine's read unit (a random read) is widened
 * to the units around it, short of EOF and of folios already cached: the
 * device read and the checksums cover the whole unit anyway (the chunk of
 * a chunk-checksummed extent), so its other pages cost nothing more, and
 * the neighbouring reads find them cached, as after mmap's read-around.
 * So it is for a file advised random (FADV_RANDOM), which only asks for
 * no I/O beyond the read, but not with readahead switched off (the
 * file's window is 0: readahead=0, or read_ahead_kb), which asks for no
 * page beyond it.
 */
static void arborfs_readahead_around(struct readahead_control *rac, u32 unit, loff_t size)
{
	loff_t start = readahead_pos(rac), end = start + readahead_length(rac);
	loff_t around_start, around_end;

	if (!unit || !rac->ra || !rac->ra->ra_pages || readahead_length(rac) >= unit || start >= size)
		return;
	around_start = round_down(start, (loff_t)unit);
	around_end = min_t(loff_t, round_up(end, (loff_t)unit), round_up(size, (loff_t)PAGE_SIZE));
	if (around_start < start || around_end > end)
		readahead_expand(rac, around_start, around_end - around_start);
}

/*
 * Read a readahead window straight into its folios and return once its
 * bios are submitted: the checksums are verified and the folios completed
 * part by part on arborfs_io_wq.
 */
static void arborfs_readahead(struct readahead_control *rac)
{
	struct inode *inode = rac->mapping->host;
	loff_t size = i_size_read(inode);
	unsigned int nr_pages, max_parts;
	struct arborfs_readahead *ra = NULL;
	struct arborfs_ra_part *part = NULL;
	struct folio *folio;
	unsigned int nr = 0, i, nr_parts = 0;

	arborfs_readahead_around(rac, ASB(inode->i_sb)->read_unit, size);
	nr_pages = readahead_count(rac);
	max_parts = min_t(unsigned int, nr_pages, nr_pages / (RA_PART_BYTES / PAGE_SIZE) + 1);
	if (readahead_pos(rac) < size && readahead_length(rac) > PAGE_SIZE)
		ra = kmalloc(size_add(size_add(struct_size(ra, folios, nr_pages),
					       array_size(nr_pages, sizeof(*ra->pages))),
				      array_size(max_parts, sizeof(*ra->parts))),
			     GFP_KERNEL | __GFP_NOWARN);
	if (ra) {
		ra->pages = (struct page **)&ra->folios[nr_pages];
		ra->parts = (struct arborfs_ra_part *)&ra->pages[nr_pages];
		/* Locked, so they stay in the page cache without the references readahead_folio drops. */
		while (nr < nr_pages && (folio = readahead_folio(rac))) {
			if (!part || part->len >= RA_PART_BYTES) {
				part = &ra->parts[nr_parts++];
				*part = (struct arborfs_ra_part){ .ra = ra, .first = nr };
				/* arborfs_read_start fills the rest of op; the fallback needs the inode before it. */
				part->op.inode = inode;
			}
			ra->folios[nr++] = folio;
			part->len += folio_size(folio);
			part->nr++;
		}
		/* Each part holds a reference, and so does this loop until the last part is started. */
		atomic_set(&ra->pending, nr_parts + 1);
		for (i = 0; i < nr_parts; i++)
			arborfs_readahead_start(&ra->parts[i], nr_pages);
		arborfs_readahead_put(ra);
	}
	/* Whatever is left (a one-page window, no memory) is read folio by folio. */
	while ((folio = readahead_folio(rac))) {
		arborfs_fill_folio(inode, folio);
		folio_unlock(folio);
	}
}

/*
 * Writes of whole blocks hold the engine lock only to plan (allocate) and
 * to commit: the data bios, compression and checksums run without it. A
 * plain plan is placed at once and its checksums are computed while its
 * bios are in flight; an encoded plan (compressed, or one checksum per
 * extent) is compressed first, then placed at its stored size, and its
 * bios go while the next piece compresses. One write may gather the plans
 * of several ranges of a file (a writeback run of scattered folios), which
 * are committed together in one engine call, as one transaction where the
 * journal allows. What cannot be planned (a partial block not padded to
 * its end, more pieces than ARBORFS_WRITE_PLANS) is written by the engine
 * under the engine lock after the commit (arborfs_write_rest). Callers keep the
 * folios under writeback until then, so truncate and fsync wait for the
 * commit. Writeback runs several writes at once, one per worker, and small
 * runs of several files as one group (arborfs_wb_work).
 */
/* Submit a piece's bios, plugged so they merge, and unplugged before the CPU work that follows. */
static int arborfs_write_submit(struct arborfs_write *w, struct arborfs_member *m, u32 dev, const u8 *data,
				size_t len, u64 offset)
{
	struct blk_plug plug;
	int err;

	/* The mount opens one member: its index is 0. */
	if (dev)
		return -EIO;
	blk_start_plug(&plug);
	err = arborfs_io_batch_add(&w->batch, m, (u8 *)data, len, offset, REQ_OP_WRITE);
	blk_finish_plug(&plug);
	return err;
}

static void arborfs_write_init(struct arborfs_write *w)
{
	arborfs_io_batch_init(&w->batch);
	w->nr_plans = 0;
	w->err = 0;
	w->prepared = NULL;
}

/*
 * Plan and start writing the `len` bytes of `buf` at `pos` as part of write
 * `w`. `buf` holds `padded` >= `len` bytes, zeros past `len`: where `len`
 * ends in a partial last block of the file, the block is planned whole
 * (the file still ends at pos + len). Returns the bytes planned from
 * `pos`; the rest is for arborfs_write_rest once `w` is finished.
 */
static size_t arborfs_write_start(struct inode *inode, u64 pos, const u8 *buf, size_t len, size_t padded,
				  struct arborfs_write *w, const struct arborfs_wreq *first)
{
	struct super_block *sb = inode->i_sb;
	struct arborfs_sb_info *sbi = ASB(sb);
	size_t planned = 0;

	/* A first plan given is already in w: it needs no room there. */
	while (!w->err && planned < len && (first || w->nr_plans < ARBORFS_WRITE_PLANS)) {
		const u8 *data = buf + planned, *out;
		void *plan = NULL;
		u64 start_ns, calls;
		unsigned int nofs;
		size_t out_len;
		int placed = 0;
		u64 offset = 0;
		u32 dev = 0;
		bool held = false;
		ssize_t n;
		int err = 0;

		if (first) {
			/* Planned with the rest of the run, and already in w (arborfs_wb_plan). */
			plan = first->plan;
			dev = first->dev;
			offset = first->offset;
			placed = first->placed;
			n = first->n;
			first = NULL;
			held = true;
		} else {
			n = arborfs_alive(sb) ?:
				ENGINE_WRITE(sb, arborfs_rs_plan_write(FS(sb), inode->i_ino, pos + planned,
								      padded - planned, pos + len, &plan, &dev,
								      &offset, &placed));
		}

		if (n <= 0) {
			w->err = n;	/* 0: the engine writes the rest */
			break;
		}
		if (!held)
			w->plans[w->nr_plans++] = plan;
		if (placed)
			err = arborfs_write_submit(w, &sbi->member, dev, data, n, offset);
		calls = arborfs_calls_entered(sbi);
		start_ns = local_clock();
		/* Compression allocates: keep reclaim out of the file system, as ENGINE_CALL does. */
		nofs = memalloc_nofs_save();
		if (!err)
			err = arborfs_rs_wplan_encode(plan, data, n, &out, &out_len);
		memalloc_nofs_restore(nofs);
		if (!err && !placed) {
			atomic64_add(local_clock() - start_ns, &sbi->encode_ns);
			atomic64_inc(&sbi->encoded_writes);
			if (arborfs_calls_entered(sbi) != calls)
				atomic64_inc(&sbi->overlapped_encodes);
			err = arborfs_alive(sb) ?: ENGINE_CALL(sb, arborfs_rs_write_place(FS(sb), plan, &dev, &offset));
			if (!err)
				err = arborfs_write_submit(w, &sbi->member, dev, out, out_len, offset);
		}
		w->err = err;
		if (!err)
			planned += n;
	}
	return planned;
}

/*
 * While a started write's bios are in flight, make the commit of its plans
 * with the lock shared (arborfs_rs_write_prepare, which reads the extents
 * it replaces and builds the new keys), so that once the bios complete the
 * commit holds the lock exclusively only to apply it: an fsync's commit
 * then costs little more than its data's write. The lock is taken shared
 * only when no writer holds or awaits it; where it is not, or the body
 * fails, the commit is made whole under the lock.
 */
static void arborfs_write_prepare(struct super_block *sb, struct arborfs_write *w)
{
	struct arborfs_sb_info *sbi = ASB(sb);
	unsigned int nofs;

	if (w->err || !w->nr_plans || !arborfs_enter_shared(sbi, &sbi->shared_busy, &sbi->shared_overlaps, &nofs))
		return;
	if (!sbi->fs || arborfs_rs_write_prepare(sbi->fs, w->plans, w->nr_plans, &w->prepared))
		w->prepared = NULL;
	arborfs_leave_shared(sbi, nofs);
}

/*
 * Under the engine lock (ENGINE_WRITE): commit a waited write's plans,
 * applying the commit prepared for them unless a commit since changed what
 * it read. 0 or a negative errno; -ECHILD (a node on disk only, reads
 * refused) changed nothing.
 */
static int arborfs_write_commit(struct inode *inode, struct arborfs_write *w, u64 *alloc_bytes)
{
	struct super_block *sb = inode->i_sb;
	void *prepared = w->prepared;
	int err;

	w->prepared = NULL;
	if (prepared) {
		err = arborfs_rs_write_commit_prepared(FS(sb), inode->i_ino, prepared, w->plans, w->nr_plans,
						       alloc_bytes);
		if (err != -EAGAIN && err != -ECHILD) {
			if (!err)
				atomic64_inc(&ASB(sb)->prepared_commits);
			return err;
		}
		atomic64_inc(&ASB(sb)->prepared_conflicts);
	}
	return arborfs_rs_write_commit(FS(sb), inode->i_ino, w->plans, w->nr_plans, alloc_bytes);
}

/* Wait for a started write's bios: 0, or the first error planning, submitting or writing (kept in w->err). */
static int arborfs_write_wait(struct inode *inode, struct arborfs_write *w)
{
	w->err = arborfs_io_batch_wait(&w->batch, &ASB(inode->i_sb)->member) ?: w->err;
	return w->err;
}

/*
 * After a waited write's commit (`committed`, or not tried since the
 * write failed): give its plans up if it failed before committing, and
 * free them. Returns w->err.
 */
static int arborfs_write_settle(struct inode *inode, struct arborfs_write *w, bool committed)
{
	struct super_block *sb = inode->i_sb;
	unsigned int i;

	if (w->nr_plans && !committed)
		ENGINE_CALL(sb, arborfs_rs_write_abort(FS(sb), inode->i_ino, w->plans, w->nr_plans));
	else if (w->nr_plans && !w->err)
		atomic64_add(w->nr_plans, &ASB(sb)->planned_writes);
	for (i = 0; i < w->nr_plans; i++)
		arborfs_rs_wplan_free(w->plans[i]);
	w->nr_plans = 0;
	/* Not applied: the write failed, or was not committed. */
	arborfs_rs_prepared_free(w->prepared);
	w->prepared = NULL;
	return w->err;
}

/* Wait for a started write and commit its plans in one engine call (or give them up). 0 or a negative errno. */
static int arborfs_write_finish(struct inode *inode, struct arborfs_write *w, u64 *alloc_bytes)
{
	struct super_block *sb = inode->i_sb;
	bool commit = !arborfs_write_wait(inode, w) && w->nr_plans;

	if (commit)
		w->err = ENGINE_WRITE(sb, arborfs_write_commit(inode, w, alloc_bytes));
	return arborfs_write_settle(inode, w, commit);
}

/* Write what arborfs_write_start left of `len` bytes at `pos` (after `planned`) through the engine. */
static int arborfs_write_rest(struct inode *inode, u64 pos, const u8 *buf, size_t len, size_t planned,
			      u64 *alloc_bytes)
{
	struct super_block *sb = inode->i_sb;
	ssize_t n;

	/* Planned past len: the padding of the last block. The engine never writes padding. */
	if (planned >= len)
		return 0;
	atomic64_inc(&ASB(sb)->unplanned_writes);
	n = arborfs_alive(sb) ?: ENGINE_CALL(sb, arborfs_rs_write(FS(sb), inode->i_ino, pos + planned,
								  buf + planned, len - planned, alloc_bytes));
	return n < 0 ? n : 0;
}

/* Write buf at pos, waiting for it (O_DIRECT). Returns len or a negative errno. */
ssize_t arborfs_write_back(struct inode *inode, u64 pos, const u8 *buf, size_t len, u64 *alloc_bytes)
{
	struct arborfs_write w;
	size_t planned;
	int err;

	arborfs_write_init(&w);
	planned = arborfs_write_start(inode, pos, buf, len, len, &w, NULL);
	arborfs_write_prepare(inode->i_sb, &w);
	err = arborfs_write_finish(inode, &w, alloc_bytes) ?:
	      arborfs_write_rest(inode, pos, buf, len, planned, alloc_bytes);
	return err ?: len;
}

/* ---- buffered writes ---- */

static int arborfs_write_begin(struct file *file, struct address_space *mapping, loff_t pos, unsigned int len,
			       struct folio **foliop, void **fsdata)
{
	struct inode *inode = mapping->host;
	struct super_block *sb = inode->i_sb;
	bool flushed = false, dropped = false;
	struct folio *folio;
	int err;

	err = arborfs_alive(sb);
	if (err)
		return err;
again:
	/* A folio as large as the write, where the mapping allows it. */
	folio = __filemap_get_folio(mapping, pos >> PAGE_SHIFT, FGP_WRITEBEGIN | fgf_set_order(len),
				    mapping_gfp_mask(mapping));
	if (IS_ERR(folio))
		return PTR_ERR(folio);
	/*
	 * Dirtiness is tracked per folio: a clean large folio (readahead's)
	 * that the write covers in part would be written back whole, 1 MiB for
	 * a 4 KiB write. Drop it from the cache, once, and write into a folio
	 * the size of the write instead (iomap tracks dirty blocks inside a
	 * folio; this glue does not). A dirty one is written whole anyway.
	 */
	if (folio_test_large(folio) && !folio_test_dirty(folio) && !dropped &&
	    (offset_in_folio(folio, pos) || len < folio_size(folio))) {
		pgoff_t first = folio->index, last = folio_next_index(folio) - 1;

		folio_unlock(folio);
		folio_put(folio);
		dropped = true;
		/* Busy (mapped and dirtied meanwhile): the large folio is used after all. */
		invalidate_inode_pages2_range(mapping, first, last);
		goto again;
	}
	err = arborfs_reserve_folio(folio);
	if (err == -ENOSPC && !flushed) {
		folio_unlock(folio);
		folio_put(folio);
		arborfs_flush_for_space(sb);
		flushed = true;
		goto again;
	}
	if (!err && !folio_test_uptodate(folio) && !(offset_in_folio(folio, pos) == 0 && len == folio_size(folio)))
		err = arborfs_fill_folio(inode, folio);
	if (err) {
		folio_unlock(folio);
		folio_put(folio);
		return err;
	}
	*foliop = folio;
	return 0;
}

static int arborfs_write_end(struct file *file, struct address_space *mapping, loff_t pos, unsigned int len,
			     unsigned int copied, struct folio *folio, void *fsdata)
{
	struct inode *inode = mapping->host;

	if (!folio_test_uptodate(folio)) {
		/* A whole-folio overwrite that copied short: nothing valid to keep, retry. */
		if (copied < len) {
			copied = 0;
			goto out;
		}
		folio_mark_uptodate(folio);
	}
	if (pos + copied > i_size_read(inode))
		i_size_write(inode, pos + copied);
	folio_mark_dirty(folio);
out:
	folio_unlock(folio);
	folio_put(folio);
	return copied;
}

/*
 * A run of folios of one file under writeback, and its write. writepages
 * gathers runs and hands each to arborfs_io_wq, which plans, writes,
 * checksums and commits it and ends writeback on its folios: writepages
 * returns once its runs are queued, the flusher goes on gathering while
 * earlier runs are in flight, and the CPU work of several runs (checksums,
 * compression) spreads over the CPUs. Waiters (fsync, sync, truncate,
 * unmount) wait for the folios' writeback as they would for any bio.
 *
 * A run holds up to WB_RUN_SEGS ranges of contiguous folios (segments), so
 * that scattered small writes (a database's pages before an fsync) are one
 * write: their plans are committed in one engine call and one transaction,
 * rather than one call and one commit for each 4 KiB.
 *
 * Small runs of several files are written as a group: the worker of a run
 * also claims the runs queued after it that no worker took yet, up to
 * WB_GROUP_BYTES, plans them one after another (their room is neighbouring
 * on the member) and submits all their bios under one plug, so they merge
 * into a few requests. A tree of 2500 small files written by sync(2) was
 * 2500 requests, one per file, each run handed to a worker of its own.
 */
#define WB_RUN_SEGS 32
static_assert(WB_RUN_SEGS <= ARBORFS_WRITE_PLANS);
struct arborfs_wb_seg {
	u64 start;
	size_t len;		/* bytes of the file: the last folio may reach past EOF */
	unsigned int first;	/* index of its first folio in the run */
	unsigned int nr;	/* its folios */
	u8 *buf;		/* its folios mapped as one buffer (the worker's) */
	size_t planned;		/* bytes of it the write planned (the worker's) */
};

struct arborfs_wb_run {
	struct work_struct work;
	struct list_head pending;	/* on sbi->wb_pending until a worker claims it */
	atomic_t refs;			/* the write and the work item: freed when both are done */
	struct arborfs_sb_info *sbi;	/* the inode may be gone before the work item runs */
	struct inode *inode;
	size_t bytes;		/* size of its folios */
	size_t len;		/* bytes of the file it writes */
	u64 reserved;
	unsigned int nr;
	unsigned int nr_segs;
	struct arborfs_wb_seg segs[WB_RUN_SEGS];
	struct arborfs_wreq reqs[WB_RUN_SEGS];	/* the first plan of each segment (the worker's) */
	struct folio *folios[WB_RUN_FOLIOS];
	struct page *pages[WB_RUN_FOLIOS];
	struct arborfs_write w;		/* the worker's */
	bool batched;			/* reqs hold the first plans (the worker's) */
	bool committed;			/* the commit of w's plans was tried (the worker's) */
	bool has_times;			/* the commit gives the file `times` (the worker's) */
	struct arborfs_times times;
	u64 alloc_bytes;		/* bytes the commit allocated (the worker's) */
};

/* Runs come from a mempool: writeback must progress when memory is short. */
static struct kmem_cache *arborfs_wb_run_cachep;
static mempool_t *arborfs_wb_run_pool;

int arborfs_file_init(void)
{
	arborfs_wb_run_cachep = KMEM_CACHE(arborfs_wb_run, 0);
	if (!arborfs_wb_run_cachep)
		return -ENOMEM;
	arborfs_wb_run_pool = mempool_create_slab_pool(WB_RUNS_RESERVED, arborfs_wb_run_cachep);
	if (!arborfs_wb_run_pool) {
		kmem_cache_destroy(arborfs_wb_run_cachep);
		return -ENOMEM;
	}
	return 0;
}

void arborfs_file_exit(void)
{
	mempool_destroy(arborfs_wb_run_pool);
	kmem_cache_destroy(arborfs_wb_run_cachep);
}

/* A new run, once the mount has fewer than WB_RUNS_IN_FLIGHT and WB_BYTES_IN_FLIGHT. */
static struct arborfs_wb_run *arborfs_wb_get(struct inode *inode)
{
	struct arborfs_sb_info *sbi = ASB(inode->i_sb);
	struct arborfs_wb_run *run;

	wait_event(sbi->wb_wait, atomic64_read(&sbi->wb_bytes) < WB_BYTES_IN_FLIGHT &&
				 atomic_add_unless(&sbi->wb_runs, 1, WB_RUNS_IN_FLIGHT));
	/* Sleeps for a run another write gives back rather than fail. */
	run = mempool_alloc(arborfs_wb_run_pool, GFP_NOFS);
	run->sbi = sbi;
	run->inode = inode;
	run->bytes = 0;
	run->len = 0;
	run->reserved = 0;
	run->nr = 0;
	run->nr_segs = 0;
	INIT_LIST_HEAD(&run->pending);
	atomic_set(&run->refs, 1);
	return run;
}

static void arborfs_wb_put(struct arborfs_wb_run *run)
{
	if (atomic_dec_and_test(&run->refs))
		mempool_free(run, arborfs_wb_run_pool);
}

/* Without a mapping of the segment (vmalloc space or memory short): each folio on its own, waited for. */
static int arborfs_wb_write_folios(struct inode *inode, struct arborfs_wb_run *run, struct arborfs_wb_seg *seg,
				   u64 *alloc_bytes)
{
	size_t done = 0;
	unsigned int i;

	for (i = seg->first; i < seg->first + seg->nr && done < seg->len; i++) {
		struct folio *folio = run->folios[i];
		size_t len = min_t(size_t, folio_size(folio), seg->len - done);
		u8 *addr = kmap_local_folio(folio, 0);
		ssize_t n = arborfs_write_back(inode, seg->start + done, addr, len, alloc_bytes);

		kunmap_local(addr);
		if (n < 0)
			return n;
		done += len;
	}
	return 0;
}

/* A segment's bytes with its last folio's zeroed tail: what its plans may cover. */
static size_t arborfs_wb_seg_padded(struct arborfs_wb_run *run, struct arborfs_wb_seg *seg)
{
	struct folio *last = run->folios[seg->first + seg->nr - 1];

	return folio_pos(last) + folio_size(last) - seg->start;
}

/* What a run asks arborfs_rs_plan_writes for: the first piece of each mapped segment. */
static void arborfs_wb_reqs(struct arborfs_wb_run *run)
{
	unsigned int i;

	for (i = 0; i < run->nr_segs; i++) {
		struct arborfs_wb_seg *seg = &run->segs[i];

		/* An unmapped segment asks for nothing: len 0 plans nothing. */
		run->reqs[i] = (struct arborfs_wreq){
			.off = seg->start,
			.len = seg->buf ? arborfs_wb_seg_padded(run, seg) : 0,
			.data_end = seg->start + seg->len,
		};
	}
}

/*
 * The plans arborfs_rs_plan_writes made for a run go into its write at
 * once, so that they are committed or given up with the rest whatever
 * happens to the segments before their own. True when the call worked:
 * run->reqs then hold the first plan of each segment.
 */
static bool arborfs_wb_adopt(struct arborfs_wb_run *run, int err)
{
	unsigned int i;

	/* At most WB_RUN_SEGS: the first plans always fit. */
	for (i = 0; i < run->nr_segs; i++)
		if (run->reqs[i].plan)
			run->w.plans[run->w.nr_plans++] = run->reqs[i].plan;
	run->w.err = err;
	return !err;
}

/*
 * Under the engine lock (ENGINE_WRITE): plan runs[*next..nr), one call
 * each. A refused call changed nothing and returns -ECHILD; made again,
 * this goes on from that run.
 */
static int arborfs_wb_plan_each(struct super_block *sb, struct arborfs_wb_run **runs, unsigned int nr,
				unsigned int *next)
{
	for (; *next < nr; (*next)++) {
		struct arborfs_wb_run *run = runs[*next];
		int err = arborfs_rs_plan_writes(FS(sb), run->inode->i_ino, run->reqs, run->nr_segs);

		if (err == -ECHILD)
			return err;
		run->batched = arborfs_wb_adopt(run, err);
	}
	return 0;
}

/* Map each segment's folios as one buffer; the write starts empty. */
static void arborfs_wb_map(struct arborfs_wb_run *run)
{
	unsigned int i;

	arborfs_write_init(&run->w);
	run->batched = false;
	run->committed = false;
	run->has_times = false;
	run->alloc_bytes = 0;
	for (i = 0; i < run->nr_segs; i++) {
		struct arborfs_wb_seg *seg = &run->segs[i];

		/* vmap copies the page pointers: one array serves every segment. */
		seg->buf = arborfs_map_folios(&run->folios[seg->first], seg->nr, run->pages, WB_RUN_FOLIOS);
		seg->planned = 0;
	}
}

/*
 * The commit of a run also gives the file its VFS times as they are now
 * (the last plan carries them), and write_inode, which the fsync that
 * follows a write calls, then finds them held (arborfs_note_times) and
 * costs no transaction.
 */
static void arborfs_wb_times(struct arborfs_wb_run *run)
{
	if (run->w.err || !run->w.nr_plans)
		return;
	arborfs_vfs_times(run->inode, &run->times);
	arborfs_rs_wplan_set_times(run->w.plans[run->w.nr_plans - 1], run->times.atime, run->times.mtime,
				   run->times.ctime);
	run->has_times = true;
}

/*
 * After the commit of a run that carried times: the engine holds them
 * unless the VFS times changed meanwhile (a write, or a setattr that the
 * commit may have overtaken: it keeps only times not older than the
 * file's); then the inode is dirtied, so write_inode hands the VFS times
 * over once more.
 */
static void arborfs_wb_times_given(struct arborfs_wb_run *run)
{
	struct arborfs_times now;

	arborfs_vfs_times(run->inode, &now);
	if (arborfs_times_equal(&now, &run->times))
		arborfs_note_times(run->inode, &now);
	else
		mark_inode_dirty_sync(run->inode);
}

/*
 * Start the bios of a mapped run's segments, from the first plans in
 * run->reqs when it was planned with others (run->batched), else planning
 * as they go. Each buffer runs to the end of the segment's last folio,
 * zeroed past EOF (writepages), so a partial last block is planned whole.
 */
static void arborfs_wb_submit(struct arborfs_wb_run *run)
{
	unsigned int i;

	for (i = 0; i < run->nr_segs; i++) {
		struct arborfs_wb_seg *seg = &run->segs[i];

		if (seg->buf)
			seg->planned = arborfs_write_start(run->inode, seg->start, seg->buf, seg->len,
							   arborfs_wb_seg_padded(run, seg), &run->w,
							   run->batched ? &run->reqs[i] : NULL);
	}
	arborfs_wb_times(run);
}

/*
 * Start writing runs (one, or a group of several files): map them, plan
 * them (the first piece of each segment, in one engine call for a run of
 * several segments, or for a group), and start their bios. Plans made one
 * after another take neighbouring room on the member, and one plug over
 * them lets their bios merge (the plug in arborfs_write_submit nests in
 * it); a lone run of one segment plugs each piece on its own, so that its
 * bios start before its checksums are computed.
 */
static void arborfs_wb_start(struct arborfs_wb_run **runs, unsigned int nr)
{
	struct super_block *sb = runs[0]->inode->i_sb;
	bool plugged = nr > 1 || runs[0]->nr_segs > 1;
	unsigned int i, next = 0;
	struct blk_plug plug;
	int err;

	if (plugged)
		blk_start_plug(&plug);
	for (i = 0; i < nr; i++) {
		arborfs_wb_map(runs[i]);
		arborfs_wb_reqs(runs[i]);
	}
	if (plugged) {
		err = arborfs_alive(sb) ?: ENGINE_WRITE(sb, arborfs_wb_plan_each(sb, runs, nr, &next));
		/* Runs not reached (the file system shut down) start nothing. */
		for (i = next; i < nr; i++)
			runs[i]->w.err = err;
	}
	for (i = 0; i < nr; i++)
		arborfs_wb_submit(runs[i]);
	if (plugged)
		blk_finish_plug(&plug);
}

/*
 * Under the engine lock (ENGINE_WRITE): commit the plans of the waited
 * runs[*next..nr) that were written, one call each. A refused call changed
 * nothing and returns -ECHILD; made again, this goes on from that run.
 */
static int arborfs_wb_commit_each(struct super_block *sb, struct arborfs_wb_run **runs, unsigned int nr,
				  unsigned int *next)
{
	for (; *next < nr; (*next)++) {
		struct arborfs_wb_run *run = runs[*next];
		struct arborfs_write *w = &run->w;
		int err;

		if (w->err || !w->nr_plans)
			continue;
		err = arborfs_write_commit(run->inode, w, &run->alloc_bytes);
		if (err == -ECHILD)
			return err;
		w->err = err;
		run->committed = true;
	}
	return 0;
}

/* Wait for started runs' bios and commit their plans, in one engine call for them all. */
static void arborfs_wb_commit(struct arborfs_wb_run **runs, unsigned int nr)
{
	struct super_block *sb = runs[0]->inode->i_sb;
	unsigned int i, next = 0;
	int err;

	for (i = 0; i < nr; i++)
		arborfs_write_wait(runs[i]->inode, &runs[i]->w);
	err = ENGINE_WRITE(sb, arborfs_wb_commit_each(sb, runs, nr, &next));
	/* Only a refusal stops the loop, and the last try is not refused. */
	WARN_ON_ONCE(err);
}

/*
 * Finish a started and committed run: give its plans up if it failed, write
 * what was not planned, and end writeback on the folios; then give
 * its place in flight back (the caller puts the run). Once the last folio
 * ends writeback the inode may be evicted: nothing of it is touched after
 * that.
 */
static int arborfs_wb_finish(struct arborfs_wb_run *run)
{
	struct inode *inode = run->inode;
	struct super_block *sb = inode->i_sb;
	struct arborfs_sb_info *sbi = ASB(sb);
	u64 alloc_bytes = run->alloc_bytes;
	unsigned int i;
	int err;

	err = arborfs_write_settle(inode, &run->w, run->committed);
	for (i = 0; i < run->nr_segs; i++) {
		struct arborfs_wb_seg *seg = &run->segs[i];

		if (!seg->buf) {
			err = err ?: arborfs_wb_write_folios(inode, run, seg, &alloc_bytes);
			continue;
		}
		err = err ?: arborfs_write_rest(inode, seg->start, seg->buf, seg->len, seg->planned, &alloc_bytes);
		arborfs_unmap_folios(seg->buf, seg->nr);
	}
	if (err == -EROFS && arborfs_alive(sb))
		err = -EIO;
	if (!err) {
		arborfs_set_blocks(inode, alloc_bytes);
		/* Keep the cached free space conservative until the next look. */
		atomic64_sub(run->len, &sbi->avail);
		if (run->committed && run->has_times)
			arborfs_wb_times_given(run);
	}
	/* Written (or failed): st_blocks now counts what the engine holds. */
	atomic64_sub(run->reserved, &AI(inode)->delalloc);
	arborfs_unreserve(sb, run->reserved);
	if (err)
		mapping_set_error(inode->i_mapping, err);
	for (i = 0; i < run->nr; i++)
		folio_end_writeback(run->folios[i]);
	/* The super block outlives this: unmount flushes arborfs_io_wq. */
	atomic64_sub(run->bytes, &sbi->wb_bytes);
	atomic_dec(&sbi->wb_runs);
	wake_up_all(&sbi->wb_wait);
	return err;
}

/* Write runs (one, or a group of several files) and give them back; 0 or the first error. */
static int arborfs_wb_write(struct arborfs_wb_run **runs, unsigned int nr)
{
	unsigned int i;
	int err = 0;

	arborfs_wb_start(runs, nr);
	/* While their bios are in flight: their commits, made with the lock shared. */
	for (i = 0; i < nr; i++)
		arborfs_write_prepare(runs[i]->inode->i_sb, &runs[i]->w);
	arborfs_wb_commit(runs, nr);
	for (i = 0; i < nr; i++) {
		int e = arborfs_wb_finish(runs[i]);

		err = err ?: e;
		arborfs_wb_put(runs[i]);
	}
	return err;
}

/*
 * The work of a queued run: unless another worker claimed it, write it with
 * the runs queued after it that no worker claimed yet, while their bytes
 * stay within WB_GROUP_BYTES. The runs of a group are started one after
 * another under one plug, then finished in the same order.
 */
static void arborfs_wb_work(struct work_struct *work)
{
	struct arborfs_wb_run *run = container_of(work, struct arborfs_wb_run, work);
	struct arborfs_sb_info *sbi = run->sbi;
	struct arborfs_wb_run *group[WB_GROUP_RUNS];
	unsigned int nr = 0;
	size_t bytes;

	spin_lock(&sbi->wb_lock);
	if (!list_empty(&run->pending)) {
		list_del_init(&run->pending);
		group[nr++] = run;
		bytes = run->bytes;
		while (!list_empty(&sbi->wb_pending) && nr < ARRAY_SIZE(group)) {
			struct arborfs_wb_run *next =
				list_first_entry(&sbi->wb_pending, struct arborfs_wb_run, pending);

			if (bytes + next->bytes > WB_GROUP_BYTES)
				break;
			list_del_init(&next->pending);
			group[nr++] = next;
			bytes += next->bytes;
		}
	}
	spin_unlock(&sbi->wb_lock);
	if (nr > 1) {
		atomic64_inc(&sbi->wb_groups);
		atomic64_add(nr, &sbi->wb_grouped_runs);
	}
	if (nr)
		arborfs_wb_write(group, nr);
	/* Claimed by this worker or another: this work item is done with it. */
	arborfs_wb_put(run);
}

/* Hand a gathered run to a worker. */
static void arborfs_wb_queue(struct arborfs_wb_run *run)
{
	struct arborfs_sb_info *sbi = run->sbi;

	/* One reference for the write, one for the work item: either may end last. */
	atomic_inc(&run->refs);
	INIT_WORK(&run->work, arborfs_wb_work);
	spin_lock(&sbi->wb_lock);
	list_add_tail(&run->pending, &sbi->wb_pending);
	spin_unlock(&sbi->wb_lock);
	queue_work(arborfs_io_wq, &run->work);
}

/* Whether file offset pos continues the run's last segment. */
static bool arborfs_wb_joins(struct arborfs_wb_run *run, loff_t pos)
{
	struct arborfs_wb_seg *seg = run->nr_segs ? &run->segs[run->nr_segs - 1] : NULL;

	return seg && pos == seg->start + seg->len;
}

/* Wait until every run of the mount in flight is written (its space reservations given back). */
void arborfs_wb_wait_idle(struct super_block *sb)
{
	struct arborfs_sb_info *sbi = ASB(sb);

	wait_event(sbi->wb_wait, !atomic_read(&sbi->wb_runs));
}

/*
 * Gather dirty folios into runs of at most 1 MiB and queue each as it
 * fills. A data-integrity writeback of one file (fsync, O_DIRECT's flush)
 * writes its last run itself: it waits for it anyway, and is spared a
 * switch to a worker (an fsync of a small file is one run). sync(2) and
 * syncfs(2) queue it like the rest, since they go on to the next file and
 * wait for them all at the end: written inline, a tree of small files
 * would be written one file at a time.
 */
static int arborfs_writepages(struct address_space *mapping, struct writeback_control *wbc)
{
	struct inode *inode = mapping->host;
	struct arborfs_wb_run *run = NULL;
	struct folio *folio = NULL;
	int err = 0;

	/*
	 * Copy-on-write would move an active swap file's blocks from under the
	 * swap code; swapon wrote everything back and nothing can dirty the
	 * file since (swap.c).
	 */
	if (IS_SWAPFILE(inode))
		return 0;
	while ((folio = writeback_iter(mapping, wbc, folio, &err))) {
		loff_t size = i_size_read(inode);
		loff_t pos = folio_pos(folio);
		size_t len = folio_size(folio);

		if (pos >= size) {
			/* Wholly past EOF (a truncate raced with us): nothing to write. */
			arborfs_release_reservation(folio);
			folio_unlock(folio);
			continue;
		}
		len = min_t(loff_t, len, size - pos);
		/* A folio is at most WB_RUN_BYTES (arborfs_set_large_folios): it fits an empty run. */
		if (run && (run->bytes + folio_size(folio) > WB_RUN_BYTES ||
			    (!arborfs_wb_joins(run, pos) && run->nr_segs == WB_RUN_SEGS))) {
			arborfs_wb_queue(run);
			run = NULL;
		}
		if (!run)
			run = arborfs_wb_get(inode);
		if (!arborfs_wb_joins(run, pos))
			run->segs[run->nr_segs++] = (struct arborfs_wb_seg){ .start = pos, .first = run->nr };
		/*
		 * The folio's bytes past EOF are not the file's, but mmap may
		 * have stored there: zero them (as iomap does at each writeback),
		 * so a size extended later reads zeros, and the file's last block
		 * is written whole, zeros padding it, without the engine lock.
		 */
		if (len < folio_size(folio))
			folio_zero_segment(folio, len, folio_size(folio));
		run->segs[run->nr_segs - 1].len += len;
		run->segs[run->nr_segs - 1].nr++;
		run->len += len;
		run->bytes += folio_size(folio);
		atomic64_add(folio_size(folio), &run->sbi->wb_bytes);
		if (folio_test_private(folio)) {
			folio_detach_private(folio);
			run->reserved += folio_size(folio);
		}
		folio_start_writeback(folio);
		folio_unlock(folio);
		run->folios[run->nr++] = folio;
	}
	if (run) {
		if (wbc->sync_mode == WB_SYNC_ALL && !wbc->for_sync)
			err = arborfs_wb_write(&run, 1) ?: err;
		else
			arborfs_wb_queue(run);
	}
	return err;
}

static bool arborfs_release_folio(struct folio *folio, gfp_t gfp)
{
	/*
	 * A dirty folio keeps its reservation: splitting a large folio (a
	 * truncate or punch inside it) asks to release it, and the pieces would
	 * be written without room reserved. Refusing only keeps it whole.
	 */
	if (folio_test_dirty(folio))
		return false;
	arborfs_release_reservation(folio);
	return true;
}

static void arborfs_invalidate_folio(struct folio *folio, size_t offset, size_t len)
{
	if (offset == 0 && len == folio_size(folio))
		arborfs_release_reservation(folio);
}

const struct address_space_operations arborfs_aops = {
	.read_folio = arborfs_read_folio,
	.readahead = arborfs_readahead,
	.write_begin = arborfs_write_begin,
	.write_end = arborfs_write_end,
	.writepages = arborfs_writepages,
	.dirty_folio = filemap_dirty_folio,
	.release_folio = arborfs_release_folio,
	.invalidate_folio = arborfs_invalidate_folio,
	.migrate_folio = filemap_migrate_folio,
	.swap_activate = arborfs_swap_activate,
};

/* ---- mmap ---- */

static vm_fault_t arborfs_page_mkwrite(struct vm_fault *vmf)
{
	struct folio *folio = page_folio(vmf->page);
	struct inode *inode = file_inode(vmf->vma->vm_file);
	struct super_block *sb = inode->i_sb;
	vm_fault_t ret = VM_FAULT_LOCKED;

	/* An active swap file's blocks are the swap code's (swap.c). */
	if (IS_SWAPFILE(inode))
		return VM_FAULT_SIGBUS;
	sb_start_pagefault(sb);
	file_update_time(vmf->vma->vm_file);
	/* fallocate's range changes exclude faults (filemap_invalidate_lock). */
	filemap_invalidate_lock_shared(inode->i_mapping);
	folio_lock(folio);
	if (folio->mapping != inode->i_mapping || folio_pos(folio) >= i_size_read(inode)) {
		folio_unlock(folio);
		ret = VM_FAULT_NOPAGE;
		goto out;
	}
	if (arborfs_alive(sb) || arborfs_reserve_folio(folio)) {
		folio_unlock(folio);
		ret = VM_FAULT_SIGBUS;
		goto out;
	}
	folio_mark_dirty(folio);
	folio_wait_stable(folio);
out:
	filemap_invalidate_unlock_shared(inode->i_mapping);
	sb_end_pagefault(sb);
	return ret;
}

static const struct vm_operations_struct arborfs_vm_ops = {
	.fault = filemap_fault,
	.map_pages = filemap_map_pages,
	.page_mkwrite = arborfs_page_mkwrite,
};

static int arborfs_mmap(struct file *file, struct vm_area_struct *vma)
{
	file_accessed(file);
	vma->vm_ops = &arborfs_vm_ops;
	return 0;
}

/* ---- O_DIRECT: through a bounce buffer, bypassing (and keeping coherent) the page cache ---- */

/*
 * Read `len` bytes at `pos` with O_DIRECT straight into the caller's
 * pages: those of the iterator's next stretch (at most len) are extracted
 * (pinned when user memory) and mapped as one buffer, which the read path
 * fills as any other (its bios land in the pages, the checksums are
 * verified there; only blocks and chunks reaching past the range go
 * through a bounce buffer). Returns the bytes read, the iterator advanced
 * by them; -EAGAIN when the pages could not be had, the iterator as it was.
 */
static ssize_t arborfs_direct_read_pages(struct inode *inode, loff_t pos, struct iov_iter *to, size_t len)
{
	struct page **pages = NULL;
	size_t off0;
	unsigned int nr;
	ssize_t got, n;
	u8 *buf;

	got = iov_iter_extract_pages(to, &pages, len, DIRECT_CHUNK / PAGE_SIZE + 1, 0, &off0);
	if (got <= 0)
		return got ?: -EAGAIN;
	nr = DIV_ROUND_UP(off0 + got, PAGE_SIZE);
	buf = arborfs_vmap(pages, nr);
	n = buf ? arborfs_read(inode, pos, buf + off0, got) : -EAGAIN;
	if (buf)
		vunmap(buf);
	/* Written to by the device or the CPU: dirty, as bio_release_pages makes them. */
	if (iov_iter_extract_will_pin(to))
		unpin_user_pages_dirty_lock(pages, nr, true);
	kvfree(pages);
	iov_iter_revert(to, got - max_t(ssize_t, n, 0));
	if (n > 0)
		atomic64_add(n, &ASB(inode->i_sb)->direct_read_bytes);
	return n;
}

static ssize_t arborfs_direct_read(struct kiocb *iocb, struct iov_iter *to)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	loff_t pos = iocb->ki_pos;
	size_t want = iov_iter_count(to);
	ssize_t done = 0, n;
	bool zero_copy;
	u8 *buf = NULL;
	int err = 0;

	if (!want)
		return 0;
	err = filemap_write_and_wait_range(inode->i_mapping, pos, pos + want - 1);
	if (err)
		return err;
	/* Sector-aligned position and memory: the caller's pages take the bios themselves. */
	zero_copy = !(pos & (SECTOR_SIZE - 1)) && iov_iter_is_aligned(to, SECTOR_SIZE - 1, SECTOR_SIZE - 1);
	while (want) {
		loff_t size = i_size_read(inode);
		size_t chunk = min_t(size_t, want, DIRECT_CHUNK);

		if (pos >= size)
			break;
		chunk = min_t(loff_t, chunk, size - pos);
		n = zero_copy ? arborfs_direct_read_pages(inode, pos, to, chunk) : -EAGAIN;
		if (n == -EAGAIN) {
			/* Misaligned, or no pages or mapping for them: a bounce buffer from here on. */
			zero_copy = false;
			if (!buf)
				buf = kvmalloc(min_t(size_t, want, DIRECT_CHUNK), GFP_KERNEL);
			n = buf ? arborfs_read(inode, pos, buf, chunk) : -ENOMEM;
			if (n > 0 && !(n = copy_to_iter(buf, n, to)))
				n = -EFAULT;
		}
		if (n <= 0) {
			err = n;
			break;
		}
		pos += n;
		done += n;
		want -= n;
	}
	kvfree(buf);
	iocb->ki_pos = pos;
	file_accessed(iocb->ki_filp);
	return done ? done : err;
}

static ssize_t arborfs_direct_write(struct kiocb *iocb, struct iov_iter *from)
{
	struct file *file = iocb->ki_filp;
	struct inode *inode = file_inode(file);
	ssize_t done = 0, n;
	u64 alloc_bytes;
	size_t want;
	loff_t pos;
	u8 *buf;
	int err;

	inode_lock(inode);
	n = generic_write_checks(iocb, from);
	if (n <= 0) {
		err = n;
		goto unlock;
	}
	err = file_modified(file);
	if (err)
		goto unlock;
	pos = iocb->ki_pos;
	want = n;
	err = filemap_write_and_wait_range(inode->i_mapping, pos, pos + want - 1);
	if (err)
		goto unlock;
	buf = kvmalloc(min_t(size_t, want, DIRECT_CHUNK), GFP_KERNEL);
	if (!buf) {
		err = -ENOMEM;
		goto unlock;
	}
	while (want) {
		size_t chunk = min_t(size_t, want, DIRECT_CHUNK);

		if (copy_from_iter(buf, chunk, from) != chunk) {
			err = -EFAULT;
			break;
		}
		n = arborfs_write_back(inode, pos, buf, chunk, &alloc_bytes);
		if (n < 0) {
			err = n;
			break;
		}
		pos += n;
		done += n;
		want -= n;
		if (pos > i_size_read(inode))
			i_size_write(inode, pos);
		arborfs_set_blocks(inode, alloc_bytes);
	}
	kvfree(buf);
	if (done)
		invalidate_inode_pages2_range(inode->i_mapping, iocb->ki_pos >> PAGE_SHIFT,
					      (iocb->ki_pos + done - 1) >> PAGE_SHIFT);
	iocb->ki_pos = pos;
unlock:
	inode_unlock(inode);
	if (done)
		return generic_write_sync(iocb, done);
	return err;
}

static ssize_t arborfs_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	if (iocb->ki_flags & IOCB_DIRECT)
		return arborfs_direct_read(iocb, to);
	return generic_file_read_iter(iocb, to);
}

static ssize_t arborfs_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	int err = arborfs_alive(file_inode(iocb->ki_filp)->i_sb);

	if (err)
		return err;
	if (iocb->ki_flags & IOCB_DIRECT)
		return arborfs_direct_write(iocb, from);
	return generic_file_write_iter(iocb, from);
}

static int arborfs_open(struct inode *inode, struct file *file)
{
	file->f_mode |= FMODE_CAN_ODIRECT;
	return generic_file_open(inode, file);
}

/* ---- fsync, fallocate, llseek, ioctl ---- */

int arborfs_fsync(struct file *file, loff_t start, loff_t end, int datasync)
{
	struct inode *inode = file->f_mapping->host;
	struct super_block *sb = inode->i_sb;
	int err;

	err = file_write_and_wait_range(file, start, end);
	if (err)
		return err;
	err = sync_inode_metadata(inode, 1);
	if (err)
		return err;
	if (sb_rdonly(sb))
		return 0;
	/* Data and inode are in the engine's journal buffer: make them durable. */
	return arborfs_sync(sb);
}

#define ARBORFS_FALLOC_MODES (FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | \
			      FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)
/* Modes that move or drop data the page cache may hold. */
#define ARBORFS_FALLOC_RANGE (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_COLLAPSE_RANGE | \
			      FALLOC_FL_INSERT_RANGE)

static long arborfs_fallocate(struct file *file, int mode, loff_t off, loff_t len)
{
	struct inode *inode = file_inode(file);
	struct address_space *mapping = inode->i_mapping;
	struct super_block *sb = inode->i_sb;
	bool shift = mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE);
	struct arborfs_attr a;
	int err;

	if (mode & ~ARBORFS_FALLOC_MODES)
		return -EOPNOTSUPP;
	if (off < 0 || len <= 0)
		return -EINVAL;
	/* Checked before the page cache is touched: a shift drops every page from `off`. */
	if (shift && ((off | len) & (i_blocksize(inode) - 1)))
		return -EINVAL;
	inode_lock(inode);
	err = arborfs_alive(sb);
	if (err)
		goto out;
	if (!(mode & FALLOC_FL_KEEP_SIZE) && !(mode & FALLOC_FL_COLLAPSE_RANGE)) {
		loff_t end = mode & FALLOC_FL_INSERT_RANGE ? i_size_read(inode) + len : off + len;

		if (end > i_size_read(inode)) {
			err = inode_newsize_ok(inode, end);
			if (err)
				goto out;
		}
	}
	err = file_modified(file);
	if (err)
		goto out;
	inode_dio_wait(inode);
	/* Page faults wait while the engine changes what the range holds. */
	filemap_invalidate_lock(mapping);
	/*
	 * The engine works on what it holds: write dirty data first, and drop
	 * cached pages of a range it is about to zero, unmap or move (a shift
	 * moves everything from `off` to the end of the file).
	 */
	err = filemap_write_and_wait(mapping);
	if (err)
		goto out_unlock;
	if (shift)
		truncate_pagecache(inode, round_down(off, PAGE_SIZE));
	else if (mode & ARBORFS_FALLOC_RANGE)
		truncate_pagecache_range(inode, off, off + len - 1);
	err = ENGINE_CALL(sb, arborfs_rs_fallocate(FS(sb), inode->i_ino, mode, off, len, &a));
	if (err)
		goto out_unlock;
	if (shift || a.size > i_size_read(inode))
		i_size_write(inode, a.size);
	arborfs_set_blocks(inode, a.alloc_bytes);
	inode_set_mtime_to_ts(inode, ns_to_timespec64(a.mtime));
	inode_set_ctime_to_ts(inode, ns_to_timespec64(a.ctime));
	arborfs_update_avail(sb);
out_unlock:
	filemap_invalidate_unlock(mapping);
out:
	inode_unlock(inode);
	return err;
}

/* FIEMAP: the engine's extents, after writing back what is dirty (so
 * data in the page cache shows as data). */
int arborfs_fiemap(struct inode *inode, struct fiemap_extent_info *fieinfo, u64 start, u64 len)
{
	struct super_block *sb = inode->i_sb;
	struct arborfs_extent *ext;
	u64 end, pos = start;
	size_t i, n;
	int err;

	err = fiemap_prep(inode, fieinfo, start, &len, FIEMAP_FLAG_SYNC);
	if (err)
		return err;
	err = filemap_write_and_wait(inode->i_mapping);
	if (err)
		return err;
	end = start + len < start ? U64_MAX : start + len;
	ext = kmalloc_array(32, sizeof(*ext), GFP_KERNEL);
	if (!ext)
		return -ENOMEM;
	inode_lock_shared(inode);
	for (;;) {
		err = arborfs_alive(sb) ?:
			ENGINE_CALL(sb, arborfs_rs_fiemap(FS(sb), inode->i_ino, pos, end, ext, 32, &n));
		if (err || !n)
			break;
		for (i = 0; i < n; i++) {
			u32 fl = 0;

			if (ext[i].flags & ARBORFS_EXTENT_ENCODED)
				fl |= FIEMAP_EXTENT_ENCODED;
			if (ext[i].flags & ARBORFS_EXTENT_UNWRITTEN)
				fl |= FIEMAP_EXTENT_UNWRITTEN;
			if (ext[i].flags & ARBORFS_EXTENT_INLINE)
				fl |= FIEMAP_EXTENT_DATA_INLINE | FIEMAP_EXTENT_NOT_ALIGNED;
			if (ext[i].flags & ARBORFS_EXTENT_LAST)
				fl |= FIEMAP_EXTENT_LAST;
			err = fiemap_fill_next_extent(fieinfo, ext[i].logical, ext[i].physical, ext[i].length, fl);
			if (err)
				break;
		}
		if (err || (ext[n - 1].flags & ARBORFS_EXTENT_LAST) || n < 32)
			break;
		pos = ext[n - 1].logical + ext[n - 1].length;
	}
	inode_unlock_shared(inode);
	kfree(ext);
	/* 1: the caller's array is full, which is not an error. */
	return err < 0 ? err : 0;
}

static loff_t arborfs_llseek(struct file *file, loff_t off, int whence)
{
	struct inode *inode = file_inode(file);
	struct super_block *sb = inode->i_sb;
	u64 res;
	int err;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return generic_file_llseek(file, off, whence);
	if (off < 0)
		return -ENXIO;
	/* Dirty data is data: let the engine see it. */
	err = filemap_write_and_wait(inode->i_mapping);
	if (err)
		return err;
	inode_lock_shared(inode);
	if (off >= i_size_read(inode))
		err = -ENXIO;
	else
		err = arborfs_alive(sb) ?:
			ENGINE_READ(sb, arborfs_rs_seek, inode->i_ino, off, whence == SEEK_HOLE, &res);
	inode_unlock_shared(inode);
	if (err)
		return err;
	return vfs_setpos(file, res, inode->i_sb->s_maxbytes);
}

/*
 * FITRIM (fstrim): discard the free buckets in the range. The engine checks
 * the range; a minimum below the device's discard granularity is raised to
 * it, as ext4 does, and the length comes back as the bytes discarded.
 */
static long arborfs_fitrim(struct file *file, struct fstrim_range __user *arg)
{
	struct super_block *sb = file_inode(file)->i_sb;
	struct block_device *bdev = sb->s_bdev;
	struct fstrim_range range;
	u64 trimmed = 0;
	int err;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (!bdev_max_discard_sectors(bdev))
		return -EOPNOTSUPP;
	if (copy_from_user(&range, arg, sizeof(range)))
		return -EFAULT;
	range.minlen = max_t(u64, range.minlen, bdev_discard_granularity(bdev));
	/* The trim may checkpoint first: a write, so not on a frozen or
	 * read-only mount. */
	err = mnt_want_write_file(file);
	if (err)
		return err;
	err = arborfs_alive(sb) ?:
		ENGINE_CALL(sb, arborfs_rs_trim(FS(sb), range.start, range.len, range.minlen, &trimmed));
	mnt_drop_write_file(file);
	if (err)
		return err;
	range.len = trimmed;
	if (copy_to_user(arg, &range, sizeof(range)))
		return -EFAULT;
	return 0;
}

/* XFS_IOC_GOINGDOWN, as fstests and xfs_io use it. */
#define ARBORFS_IOC_GOINGDOWN _IOR('X', 125, __u32)

long arborfs_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct super_block *sb = file_inode(file)->i_sb;
	u32 how;

	switch (cmd) {
	case ARBORFS_IOC_GOINGDOWN:
		if (!capable(CAP_SYS_ADMIN))
			return -EPERM;
		if (get_user(how, (u32 __user *)arg))
			return -EFAULT;
		return arborfs_shutdown(sb, how);
	case FITRIM:
		return arborfs_fitrim(file, (struct fstrim_range __user *)arg);
	default:
		return -ENOTTY;
	}
}

/*
 * copy_file_range(2) between two arborfs mounts too (within one the VFS
 * splices on its own; without this, across two it is EXDEV). The VFS leaves
 * the length to us here: at most MAX_RW_COUNT, as for a splice.
 */
static ssize_t arborfs_copy_file_range(struct file *in, loff_t pos_in, struct file *out, loff_t pos_out,
				       size_t len, unsigned int flags)
{
	return splice_copy_file_range(in, pos_in, out, pos_out, min_t(size_t, len, MAX_RW_COUNT));
}

const struct file_operations arborfs_file_fops = {
	.open = arborfs_open,
	.llseek = arborfs_llseek,
	.read_iter = arborfs_read_iter,
	.write_iter = arborfs_write_iter,
	.mmap = arborfs_mmap,
	.fsync = arborfs_fsync,
	.fallocate = arborfs_fallocate,
	.unlocked_ioctl = arborfs_ioctl,
	.splice_read = filemap_splice_read,
	.splice_write = iter_file_splice_write,
	.copy_file_range = arborfs_copy_file_range,
};
