/* SPDX-License-Identifier: GPL-2.0 */
/* Services the C glue gives the Rust side of arborfs (fs/kernel/sys.rs, fs/arborfs_main.rs). */
#ifndef ARBORFS_GLUE_H
#define ARBORFS_GLUE_H

#include <linux/types.h>
#include <linux/atomic.h>
#include <linux/completion.h>
#include <linux/blk_types.h>
#include <linux/workqueue.h>

/*
 * A member device as the Rust side holds it (an opaque pointer): the block
 * device and the time spent waiting for it, for /proc/self/mountstats
 * (local_clock: cheap where reading the clocksource is not, as in QEMU).
 */
struct arborfs_member {
	struct block_device *bdev;
	atomic64_t sync_ios, sync_ns;		/* bios an engine call waited for, one by one */
	atomic64_t batch_waits, batch_ns;	/* waits for batches of planned reads and writes */
	atomic64_t journal_ios, journal_ns;	/* journal writes of syncs, without the engine lock */
	atomic64_t journal_preflushes;		/* of them, the entries written after a flush */
};

s64 arborfs_glue_now_ns(void);
int arborfs_glue_bdev_read(void *dev, u8 *buf, size_t len, u64 off);
int arborfs_glue_bdev_write(void *dev, const u8 *buf, size_t len, u64 off);
int arborfs_glue_bdev_flush(void *dev);
/* One write of arborfs_glue_bdev_write_many (struct GlueWrite in fs/kernel/sys.rs). */
struct arborfs_glue_write {
	const u8 *buf;
	size_t len;
	u64 off;
};
_Static_assert(sizeof(struct arborfs_glue_write) == 24, "struct arborfs_glue_write: as GlueWrite in sys.rs");
int arborfs_glue_bdev_write_many(void *dev, const struct arborfs_glue_write *w, size_t n);

/*
 * Bios submitted together (several in flight) and either waited for once
 * or, with `then` set, finished by a work item queued on arborfs_io_wq
 * when the last of them ends.
 */
struct arborfs_io_batch {
	atomic_t pending;
	u64 start_ns;
	int err;
	struct completion done;
	struct work_struct *then;
};
extern struct workqueue_struct *arborfs_io_wq;
int arborfs_io_init(void);
void arborfs_io_exit(void);
void arborfs_io_batch_init(struct arborfs_io_batch *b);
int arborfs_io_batch_add(struct arborfs_io_batch *b, struct arborfs_member *m, u8 *buf, size_t len, u64 off,
			 blk_opf_t op);
int arborfs_io_batch_wait(struct arborfs_io_batch *b, struct arborfs_member *m);
void arborfs_io_batch_submitted(struct arborfs_io_batch *b);
int arborfs_io_batch_end(struct arborfs_io_batch *b, struct arborfs_member *m);
int arborfs_glue_bdev_write_durable(void *dev, const u8 *buf, size_t len, u64 off);
int arborfs_glue_bdev_write_fua(void *dev, const u8 *buf, size_t len, u64 off);
bool arborfs_glue_bdev_fua_flushes_all(void *dev);
int arborfs_glue_journal_write(struct arborfs_member *m, const u8 *buf, size_t len, u64 off, bool preflush);
int arborfs_glue_bdev_discard(void *dev, u64 off, u64 len);
u32 arborfs_glue_crc32c(const u8 *data, size_t len);
int arborfs_glue_lz4_decompress(const u8 *src, size_t srclen, u8 *dst, size_t dstlen);
ssize_t arborfs_glue_lz4_compress(const u8 *src, size_t srclen, u8 *dst, size_t dstlen);
int arborfs_glue_zstd_decompress(const u8 *src, size_t srclen, u8 *dst, size_t dstlen);
ssize_t arborfs_glue_zstd_compress(const u8 *src, size_t srclen, u8 *dst, size_t dstlen, int level);
int arborfs_glue_register(void);
void arborfs_glue_unregister(void);

#endif
