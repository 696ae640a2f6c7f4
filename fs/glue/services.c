// SPDX-License-Identifier: GPL-2.0
/*
 * Services the Rust platform layer (fs/kernel/sys.rs) calls: the clock,
 * block I/O with bios (synchronous, or batches in flight together), and the kernel's crc32c, lz4 and zstd.
 */
#include <linux/blkdev.h>
#include <linux/bio.h>
#include <linux/crc32c.h>
#include <linux/lz4.h>
#include <linux/zstd.h>
#include <linux/mm.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/timekeeping.h>
#include <linux/workqueue.h>
#include <linux/sched/clock.h>

#include "services.h"

/*
 * The clock the VFS stamps inodes with (current_time): the engine's
 * timestamps must not run ahead of the ones file_update_time and
 * touch_atime set, or relatime sees atime newer than mtime and never
 * updates it.
 */
s64 arborfs_glue_now_ns(void)
{
	struct timespec64 now;

	ktime_get_coarse_real_ts64(&now);
	return timespec64_to_ns(&now);
}

/*
 * Block I/O with bios on the device the mount opened. The engine issues
 * only sector-aligned offsets and lengths; buffers come from kmalloc or
 * vmalloc (kvmalloc), so pages are looked up one by one.
 */

/* The next bio of [*buf, *buf + *len) at byte *off: as many pages as fit; advances all three. */
static struct bio *arborfs_next_bio(struct block_device *bdev, u8 **buf, size_t *len, u64 *off, blk_opf_t op)
{
	unsigned int nr = min_t(size_t, DIV_ROUND_UP(*len + offset_in_page(*buf), PAGE_SIZE), BIO_MAX_VECS);
	struct bio *bio = bio_alloc(bdev, nr, op, GFP_NOIO);

	bio->bi_iter.bi_sector = *off >> SECTOR_SHIFT;
	while (*len) {
		size_t chunk = min_t(size_t, *len, PAGE_SIZE - offset_in_page(*buf));
		struct page *page = is_vmalloc_addr(*buf) ? vmalloc_to_page(*buf) : virt_to_page(*buf);

		if (bio_add_page(bio, page, chunk, offset_in_page(*buf)) != chunk)
			break;
		*buf += chunk;
		*off += chunk;
		*len -= chunk;
	}
	return bio;
}

/* Synchronous I/O, one bio at a time, counted in *ios and *ns. */
static int arborfs_bdev_rw(struct block_device *bdev, u8 *buf, size_t len, u64 off, blk_opf_t op, atomic64_t *ios,
			   atomic64_t *ns)
{
	if ((off | len) & (SECTOR_SIZE - 1))
		return -EINVAL;
	while (len) {
		struct bio *bio = arborfs_next_bio(bdev, &buf, &len, &off, op);
		u64 start = local_clock();
		int err = submit_bio_wait(bio);

		atomic64_add(local_clock() - start, ns);
		atomic64_inc(ios);
		bio_put(bio);
		if (err)
			return err;
		/* A preflush belongs to the first request only. */
		op &= ~REQ_PREFLUSH;
	}
	return 0;
}

static void arborfs_io_batch_end_io(struct bio *bio)
{
	struct arborfs_io_batch *b = bio->bi_private;

	if (bio->bi_status)
		WRITE_ONCE(b->err, blk_status_to_errno(bio->bi_status));
	bio_put(bio);
	if (atomic_dec_and_test(&b->pending)) {
		if (b->then)
			queue_work(arborfs_io_wq, b->then);
		else
			complete(&b->done);
	}
}

/*
 * Where batches with a `then` finish: verifying checksums and completing
 * folios must not run in a bio's end_io (interrupt context), and unbound
 * workers put that work on whichever CPU is free. It may have to run for
 * reclaim to progress (locked page-cache folios wait for it): a rescuer.
 */
struct workqueue_struct *arborfs_io_wq;

int arborfs_io_init(void)
{
	arborfs_io_wq = alloc_workqueue("arborfs_io", WQ_UNBOUND | WQ_HIGHPRI | WQ_MEM_RECLAIM, 0);
	return arborfs_io_wq ? 0 : -ENOMEM;
}

void arborfs_io_exit(void)
{
	destroy_workqueue(arborfs_io_wq);
}

void arborfs_io_batch_init(struct arborfs_io_batch *b)
{
	atomic_set(&b->pending, 1);	/* the submitter's own, dropped in _wait or _submitted */
	b->start_ns = local_clock();
	b->err = 0;
	b->then = NULL;
	init_completion(&b->done);
}

/*
 * Submit bios of operation op (a read or write) for [off, off + len) of
 * buf; they complete in the background. -EINVAL for an unaligned request, -EAGAIN for a buffer whose
 * pages cannot be looked up (a highmem mapping): the caller reads another way.
 * Every batch is waited for, even after an error here.
 */
int arborfs_io_batch_add(struct arborfs_io_batch *b, struct arborfs_member *m, u8 *buf, size_t len, u64 off,
			 blk_opf_t op)
{
	if ((off | len) & (SECTOR_SIZE - 1))
		return -EINVAL;
	if (!is_vmalloc_addr(buf) && !virt_addr_valid(buf))
		return -EAGAIN;
	while (len) {
		struct bio *bio = arborfs_next_bio(m->bdev, &buf, &len, &off, op);

		bio->bi_private = b;
		bio->bi_end_io = arborfs_io_batch_end_io;
		atomic_inc(&b->pending);
		submit_bio(bio);
	}
	return 0;
}

/* Drop the submitter's reference and wait for every bio of the batch; 0 or the errno of a failed one. */
static int arborfs_io_batch_settle(struct arborfs_io_batch *b)
{
	if (!atomic_dec_and_test(&b->pending))
		wait_for_completion_io(&b->done);
	return READ_ONCE(b->err);
}

/* Wait for every bio of the batch, counted as a batch wait; 0 or the errno of a failed one. */
int arborfs_io_batch_wait(struct arborfs_io_batch *b, struct arborfs_member *m)
{
	arborfs_io_batch_settle(b);
	return arborfs_io_batch_end(b, m);
}

/*
 * The submitter is done adding bios to a batch with `then` set: the work is
 * queued when the last bio ends, at once if none is left in flight.
 */
void arborfs_io_batch_submitted(struct arborfs_io_batch *b)
{
	if (atomic_dec_and_test(&b->pending))
		queue_work(arborfs_io_wq, b->then);
}

/* A batch whose bios have all ended: counts its time; 0 or the errno of a failed bio. */
int arborfs_io_batch_end(struct arborfs_io_batch *b, struct arborfs_member *m)
{
	atomic64_add(local_clock() - b->start_ns, &m->batch_ns);
	atomic64_inc(&m->batch_waits);
	return READ_ONCE(b->err);
}

int arborfs_glue_bdev_read(void *dev, u8 *buf, size_t len, u64 off)
{
	struct arborfs_member *m = dev;

	return arborfs_bdev_rw(m->bdev, buf, len, off, REQ_OP_READ, &m->sync_ios, &m->sync_ns);
}

int arborfs_glue_bdev_write(void *dev, const u8 *buf, size_t len, u64 off)
{
	struct arborfs_member *m = dev;

	return arborfs_bdev_rw(m->bdev, (u8 *)buf, len, off, REQ_OP_WRITE, &m->sync_ios, &m->sync_ns);
}

/*
 * Several writes in flight together (a checkpoint's node images), plugged,
 * and waited for once: counted as one wait of an engine call.
 */
int arborfs_glue_bdev_write_many(void *dev, const struct arborfs_glue_write *w, size_t n)
{
	struct arborfs_member *m = dev;
	struct arborfs_io_batch b;
	struct blk_plug plug;
	u64 start = local_clock();
	int err = 0, batch_err;
	size_t i;

	arborfs_io_batch_init(&b);
	blk_start_plug(&plug);
	for (i = 0; i < n && !err; i++)
		err = arborfs_io_batch_add(&b, m, (u8 *)w[i].buf, w[i].len, w[i].off, REQ_OP_WRITE);
	blk_finish_plug(&plug);
	/* Every bio submitted is waited for, even after an error. */
	batch_err = arborfs_io_batch_settle(&b);
	atomic64_add(local_clock() - start, &m->sync_ns);
	atomic64_inc(&m->sync_ios);
	return err ?: batch_err;
}

int arborfs_glue_bdev_flush(void *dev)
{
	struct arborfs_member *m = dev;
	u64 start = local_clock();
	int err = blkdev_issue_flush(m->bdev);

	atomic64_add(local_clock() - start, &m->sync_ns);
	atomic64_inc(&m->sync_ios);
	return err;
}

/*
 * A write durable on return, with what completed before it: the first bio
 * carries the preflush, every bio is FUA (the block layer drops both on a
 * device without a volatile cache).
 */
#define ARBORFS_OP_DURABLE (REQ_OP_WRITE | REQ_SYNC | REQ_PREFLUSH | REQ_FUA)

int arborfs_glue_bdev_write_durable(void *dev, const u8 *buf, size_t len, u64 off)
{
	struct arborfs_member *m = dev;

	return arborfs_bdev_rw(m->bdev, (u8 *)buf, len, off, ARBORFS_OP_DURABLE, &m->sync_ios, &m->sync_ns);
}

/* A write durable on return, without a flush before it. */
#define ARBORFS_OP_FUA (REQ_OP_WRITE | REQ_SYNC | REQ_FUA)

int arborfs_glue_bdev_write_fua(void *dev, const u8 *buf, size_t len, u64 off)
{
	struct arborfs_member *m = dev;

	return arborfs_bdev_rw(m->bdev, (u8 *)buf, len, off, ARBORFS_OP_FUA, &m->sync_ios, &m->sync_ns);
}

/*
 * Whether a FUA write also makes every write completed before it durable:
 * on a device without a volatile cache (nothing to flush), and on one that
 * does not do FUA itself, for which the block layer follows the write with
 * a flush of the whole cache.
 */
bool arborfs_glue_bdev_fua_flushes_all(void *dev)
{
	struct block_device *bdev = ((struct arborfs_member *)dev)->bdev;

	return !bdev_write_cache(bdev) || !bdev_fua(bdev);
}

/*
 * A sync's journal write, issued without the engine lock (group commit):
 * the entry written durably, after a flush when `preflush`, or with len 0
 * a flush. Counted apart from the I/O engine calls wait for.
 */
int arborfs_glue_journal_write(struct arborfs_member *m, const u8 *buf, size_t len, u64 off, bool preflush)
{
	u64 start = local_clock();
	int err;

	if (len) {
		if (preflush)
			atomic64_inc(&m->journal_preflushes);
		return arborfs_bdev_rw(m->bdev, (u8 *)buf, len, off, preflush ? ARBORFS_OP_DURABLE : ARBORFS_OP_FUA,
				       &m->journal_ios, &m->journal_ns);
	}
	err = blkdev_issue_flush(m->bdev);
	atomic64_add(local_clock() - start, &m->journal_ns);
	atomic64_inc(&m->journal_ios);
	return err;
}

/* Discard whole sectors of [off, off + len); nothing on a device that cannot. */
int arborfs_glue_bdev_discard(void *dev, u64 off, u64 len)
{
	struct block_device *bdev = ((struct arborfs_member *)dev)->bdev;

	if (!bdev_max_discard_sectors(bdev) || (off | len) & (SECTOR_SIZE - 1))
		return 0;
	return blkdev_issue_discard(bdev, off >> SECTOR_SHIFT, len >> SECTOR_SHIFT, GFP_NOFS);
}

/* Standard CRC-32C (what the format specifies): crc32c() is the bare update. */
u32 arborfs_glue_crc32c(const u8 *data, size_t len)
{
	u32 crc = ~0u;

	while (len) {
		unsigned int n = min_t(size_t, len, SZ_1G);

		crc = crc32c(crc, data, n);
		data += n;
		len -= n;
	}
	return ~crc;
}

int arborfs_glue_lz4_decompress(const u8 *src, size_t srclen, u8 *dst, size_t dstlen)
{
	int n = LZ4_decompress_safe(src, dst, srclen, dstlen);

	return n == dstlen ? 0 : -EUCLEAN;
}

ssize_t arborfs_glue_lz4_compress(const u8 *src, size_t srclen, u8 *dst, size_t dstlen)
{
	void *wrk = kvmalloc(LZ4_MEM_COMPRESS, GFP_KERNEL);
	int n;

	if (!wrk)
		return -ENOMEM;
	n = LZ4_compress_default(src, dst, srclen, dstlen, wrk);
	kvfree(wrk);
	return n > 0 ? n : -ENOSPC;
}

int arborfs_glue_zstd_decompress(const u8 *src, size_t srclen, u8 *dst, size_t dstlen)
{
	size_t wsize = zstd_dctx_workspace_bound();
	void *wrk = kvmalloc(wsize, GFP_KERNEL);
	zstd_dctx *dctx;
	size_t n;

	if (!wrk)
		return -ENOMEM;
	dctx = zstd_init_dctx(wrk, wsize);
	n = dctx ? zstd_decompress_dctx(dctx, dst, dstlen, src, srclen) : 0;
	kvfree(wrk);
	return (dctx && !zstd_is_error(n) && n == dstlen) ? 0 : -EUCLEAN;
}

ssize_t arborfs_glue_zstd_compress(const u8 *src, size_t srclen, u8 *dst, size_t dstlen, int level)
{
	zstd_parameters params = zstd_get_params(level, srclen);
	size_t wsize = zstd_cctx_workspace_bound(&params.cParams);
	void *wrk = kvmalloc(wsize, GFP_KERNEL);
	zstd_cctx *cctx;
	size_t n;

	if (!wrk)
		return -ENOMEM;
	cctx = zstd_init_cctx(wrk, wsize);
	n = cctx ? zstd_compress_cctx(cctx, dst, dstlen, src, srclen, &params) : 0;
	kvfree(wrk);
	return (cctx && !zstd_is_error(n)) ? (ssize_t)n : -ENOSPC;
}

