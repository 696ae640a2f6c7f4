/* SPDX-License-Identifier: GPL-2.0 */
/*
 * arborfs C glue, shared by its files: the data the Rust engine exchanges
 * with the glue (layouts mirrored in fs/kernel/vfs.rs), the engine's entry
 * points (arborfs_rs_*), the per-mount state and the engine lock.
 *
 * Lock order: i_rwsem, then folio locks, then the engine lock. The engine
 * never takes folio locks or calls back into the VFS, and nothing is copied
 * to or from user space while the engine lock is held, so a page fault taken
 * while copying can read a folio through the engine. Every engine call runs
 * in a memalloc_nofs scope, so reclaim never re-enters the file system.
 */
#ifndef ARBORFS_GLUE_INTERNAL_H
#define ARBORFS_GLUE_INTERNAL_H

#include <linux/fs.h>
#include <linux/rwsem.h>
#include <linux/sched/mm.h>
#include <linux/atomic.h>
#include <linux/shrinker.h>
#include <linux/sizes.h>
#include <linux/sched/clock.h>

#include "services.h"

#define ARBORFS_MAGIC 0x41524246 /* "ARBF" */
#define ARBORFS_ROOT_INO 4096

/* Attributes the engine returns for an inode. */
struct arborfs_attr {
	u64 ino;
	u64 size;
	u64 alloc_bytes;
	s64 atime, mtime, ctime, btime;
	u64 rdev;
	u32 mode, uid, gid, nlink, generation, flags, projid;
};

/* Attribute changes handed to the engine; `valid` holds ARBORFS_SET_* bits. */
struct arborfs_setattr {
	u32 valid;
	u32 mode, uid, gid, flags, projid;
	u64 size;
	s64 atime, mtime, ctime;
};

/* A file's access, modification and change times, ns. */
struct arborfs_times {
	s64 atime, mtime, ctime;
};

#define ARBORFS_SET_MODE 1
#define ARBORFS_SET_UID 2
#define ARBORFS_SET_GID 4
#define ARBORFS_SET_SIZE 8
#define ARBORFS_SET_ATIME 16
#define ARBORFS_SET_MTIME 32
#define ARBORFS_SET_CTIME 64
#define ARBORFS_SET_FLAGS 128
#define ARBORFS_SET_PROJID 256

/* One directory entry handed from the engine to iterate_shared. */
struct arborfs_dirent {
	u64 ino;
	u64 next;
	u8 dtype;
	u8 len;
	char name[256];
};

/* One extent handed from the engine to fiemap. */
struct arborfs_extent {
	u64 logical, physical, length;
	u32 flags, pad;
};

#define ARBORFS_EXTENT_ENCODED 1
#define ARBORFS_EXTENT_UNWRITTEN 2
#define ARBORFS_EXTENT_INLINE 4
#define ARBORFS_EXTENT_LAST 8

struct arborfs_statfs {
	u64 blocks, bfree, bavail, files, ffree;
	u32 bsize, namelen;
};

/* One writeback of a batch planned at once (arborfs_rs_plan_writes): arguments of arborfs_rs_plan_write in, its results out. */
struct arborfs_wreq {
	u64 off, len, data_end;
	void *plan;		/* NULL: not planned */
	u64 offset;
	u32 dev;
	int placed;
	s64 n;			/* bytes planned; 0: the engine writes them */
};

/* One span of a read planned by the engine (arborfs_rs_plan_read). */
struct arborfs_read_span {
	u64 start, len;		/* file bytes */
	u64 offset;		/* DEVICE, ENCODED: byte offset on member `dev` of the blocks to read, */
	u64 dev_len, skip;	/* how many, and how far into them (ENCODED: into the decoded payload) the span's bytes start */
	u32 kind, dev;
};

#define ARBORFS_SPAN_ZERO 0	/* zeros */
#define ARBORFS_SPAN_DEVICE 1	/* member blocks, read by the glue */
#define ARBORFS_SPAN_ENGINE 2	/* read by the engine in arborfs_rs_plan_finish */
#define ARBORFS_SPAN_ENCODED 3	/* an extent stored whole, read by the glue, decoded by arborfs_rs_plan_decode */

/*
 * A node a read made with the engine lock shared needed and did not find in
 * memory (the read answered -ECHILD): read and checked without the lock
 * (arborfs_rs_node_fetch), taken in under it (arborfs_rs_node_adopt).
 */
struct arborfs_node_miss {
	u32 valid, node_size;
	u8 dev, level, btree, csum;
	u32 gen;
	u64 offset, seq;
	u64 min_inode, min_offset;
	u32 min_snapshot, max_snapshot;
	u64 max_inode, max_offset;
};

/* A sync's journal write (arborfs_rs_sync_step), issued by the glue without the engine lock. */
struct arborfs_journal_write {
	const u8 *buf;		/* the entry, in the engine's memory until arborfs_rs_sync_done */
	u64 len;		/* its length; 0: flush the member */
	u64 offset;		/* byte offset on member `dev` */
	u32 dev, preflush;	/* preflush: flush before the write */
};
#define ARBORFS_SYNC_WAIT 1	/* another caller's journal write is in flight */
#define ARBORFS_SYNC_WRITE 2	/* issue the write given, then arborfs_rs_sync_done */
#define ARBORFS_SYNC_AGAIN 3	/* arborfs_rs_sync_done: the target is not durable yet */

/*
 * The layouts fs/kernel/vfs.rs asserts for its #[repr(C)] twins: a change
 * on one side without the other fails the build on that side.
 */
#define ARBORFS_LAYOUT(type, field, off) _Static_assert(offsetof(type, field) == (off), #type "." #field)
_Static_assert(sizeof(struct arborfs_attr) == 96, "struct arborfs_attr");
ARBORFS_LAYOUT(struct arborfs_attr, ino, 0);
ARBORFS_LAYOUT(struct arborfs_attr, size, 8);
ARBORFS_LAYOUT(struct arborfs_attr, alloc_bytes, 16);
ARBORFS_LAYOUT(struct arborfs_attr, atime, 24);
ARBORFS_LAYOUT(struct arborfs_attr, mtime, 32);
ARBORFS_LAYOUT(struct arborfs_attr, ctime, 40);
ARBORFS_LAYOUT(struct arborfs_attr, btime, 48);
ARBORFS_LAYOUT(struct arborfs_attr, rdev, 56);
ARBORFS_LAYOUT(struct arborfs_attr, mode, 64);
ARBORFS_LAYOUT(struct arborfs_attr, uid, 68);
ARBORFS_LAYOUT(struct arborfs_attr, gid, 72);
ARBORFS_LAYOUT(struct arborfs_attr, nlink, 76);
ARBORFS_LAYOUT(struct arborfs_attr, generation, 80);
ARBORFS_LAYOUT(struct arborfs_attr, flags, 84);
ARBORFS_LAYOUT(struct arborfs_attr, projid, 88);
_Static_assert(sizeof(struct arborfs_setattr) == 56, "struct arborfs_setattr");
ARBORFS_LAYOUT(struct arborfs_setattr, valid, 0);
ARBORFS_LAYOUT(struct arborfs_setattr, mode, 4);
ARBORFS_LAYOUT(struct arborfs_setattr, uid, 8);
ARBORFS_LAYOUT(struct arborfs_setattr, gid, 12);
ARBORFS_LAYOUT(struct arborfs_setattr, flags, 16);
ARBORFS_LAYOUT(struct arborfs_setattr, projid, 20);
ARBORFS_LAYOUT(struct arborfs_setattr, size, 24);
ARBORFS_LAYOUT(struct arborfs_setattr, atime, 32);
ARBORFS_LAYOUT(struct arborfs_setattr, mtime, 40);
ARBORFS_LAYOUT(struct arborfs_setattr, ctime, 48);
_Static_assert(sizeof(struct arborfs_dirent) == 280, "struct arborfs_dirent");
ARBORFS_LAYOUT(struct arborfs_dirent, ino, 0);
ARBORFS_LAYOUT(struct arborfs_dirent, next, 8);
ARBORFS_LAYOUT(struct arborfs_dirent, dtype, 16);
ARBORFS_LAYOUT(struct arborfs_dirent, len, 17);
ARBORFS_LAYOUT(struct arborfs_dirent, name, 18);
_Static_assert(sizeof(struct arborfs_extent) == 32, "struct arborfs_extent");
ARBORFS_LAYOUT(struct arborfs_extent, logical, 0);
ARBORFS_LAYOUT(struct arborfs_extent, physical, 8);
ARBORFS_LAYOUT(struct arborfs_extent, length, 16);
ARBORFS_LAYOUT(struct arborfs_extent, flags, 24);
ARBORFS_LAYOUT(struct arborfs_extent, pad, 28);
_Static_assert(sizeof(struct arborfs_statfs) == 48, "struct arborfs_statfs");
_Static_assert(sizeof(struct arborfs_wreq) == 56, "struct arborfs_wreq");
ARBORFS_LAYOUT(struct arborfs_wreq, plan, 24);
ARBORFS_LAYOUT(struct arborfs_wreq, offset, 32);
ARBORFS_LAYOUT(struct arborfs_wreq, dev, 40);
ARBORFS_LAYOUT(struct arborfs_wreq, placed, 44);
ARBORFS_LAYOUT(struct arborfs_wreq, n, 48);
_Static_assert(sizeof(struct arborfs_journal_write) == 32, "struct arborfs_journal_write");
ARBORFS_LAYOUT(struct arborfs_journal_write, len, 8);
ARBORFS_LAYOUT(struct arborfs_journal_write, offset, 16);
ARBORFS_LAYOUT(struct arborfs_journal_write, dev, 24);
_Static_assert(sizeof(struct arborfs_read_span) == 48, "struct arborfs_read_span");
_Static_assert(sizeof(struct arborfs_node_miss) == 72, "struct arborfs_node_miss");
ARBORFS_LAYOUT(struct arborfs_node_miss, node_size, 4);
ARBORFS_LAYOUT(struct arborfs_node_miss, dev, 8);
ARBORFS_LAYOUT(struct arborfs_node_miss, csum, 11);
ARBORFS_LAYOUT(struct arborfs_node_miss, gen, 12);
ARBORFS_LAYOUT(struct arborfs_node_miss, offset, 16);
ARBORFS_LAYOUT(struct arborfs_node_miss, seq, 24);
ARBORFS_LAYOUT(struct arborfs_node_miss, min_inode, 32);
ARBORFS_LAYOUT(struct arborfs_node_miss, min_snapshot, 48);
ARBORFS_LAYOUT(struct arborfs_node_miss, max_snapshot, 52);
ARBORFS_LAYOUT(struct arborfs_node_miss, max_inode, 56);
ARBORFS_LAYOUT(struct arborfs_node_miss, max_offset, 64);
ARBORFS_LAYOUT(struct arborfs_read_span, offset, 16);
ARBORFS_LAYOUT(struct arborfs_read_span, dev_len, 24);
ARBORFS_LAYOUT(struct arborfs_read_span, skip, 32);
ARBORFS_LAYOUT(struct arborfs_read_span, kind, 40);
ARBORFS_LAYOUT(struct arborfs_read_span, dev, 44);
ARBORFS_LAYOUT(struct arborfs_statfs, blocks, 0);
ARBORFS_LAYOUT(struct arborfs_statfs, bfree, 8);
ARBORFS_LAYOUT(struct arborfs_statfs, bavail, 16);
ARBORFS_LAYOUT(struct arborfs_statfs, files, 24);
ARBORFS_LAYOUT(struct arborfs_statfs, ffree, 32);
ARBORFS_LAYOUT(struct arborfs_statfs, bsize, 40);
ARBORFS_LAYOUT(struct arborfs_statfs, namelen, 44);

#define ARBORFS_MOUNT_SILENT 1
#define ARBORFS_MOUNT_READ_ONLY 2
#define ARBORFS_MOUNT_NO_REPLAY 4

/* Implemented in Rust (fs/kernel/vfs.rs). Return 0 or a negative errno. */
int arborfs_rs_mount(const char *id, void *bdev, u64 size, int flags, void **fs, int *ro);
int arborfs_rs_unmount(void *fs);
int arborfs_rs_remount(void **fs, void *bdev, u64 size, int read_only, int *ro);
int arborfs_rs_shutdown(void *fs, int flush_journal);
/* Reads called through ENGINE_READ take `shared` and `miss` after `fs`. */
int arborfs_rs_node_fetch(void *member, u64 size, const struct arborfs_node_miss *miss, void **node);
int arborfs_rs_node_adopt(void *fs, const struct arborfs_node_miss *miss, void *node);
/* Changes called through ENGINE_WRITE: refusing to read nodes, then the node refused. */
int arborfs_rs_refuse_reads(void *fs);
int arborfs_rs_take_refused(void *fs, struct arborfs_node_miss *miss);
/* Changes called through ENGINE_CHANGE take `shared`, `miss` and `prepared` after `fs`; then the commit. */
int arborfs_rs_commit_prepared(void *fs, void *prepared);
int arborfs_rs_getattr(void *fs, bool shared, struct arborfs_node_miss *miss, u64 ino, struct arborfs_attr *out);
int arborfs_rs_lookup(void *fs, bool shared, struct arborfs_node_miss *miss, u64 dir, const u8 *name, size_t len, u64 *ino);
int arborfs_rs_parent(void *fs, u64 dir, u64 *parent);
int arborfs_rs_readdir(void *fs, bool shared, struct arborfs_node_miss *miss, u64 dir, u64 pos, struct arborfs_dirent *out, size_t max, size_t *n);
ssize_t arborfs_rs_read(void *fs, u64 ino, u64 off, u8 *buf, size_t len);
/* Reads without the engine lock across device I/O: plan (lock), span/verify/free (no lock), finish (lock). */
ssize_t arborfs_rs_plan_read(void *fs, bool shared, struct arborfs_node_miss *miss, u64 ino, u64 off, size_t len, void **plan);
int arborfs_rs_plan_span(const void *plan, size_t i, struct arborfs_read_span *out);
int arborfs_rs_plan_verify(const void *plan, size_t i, const u8 *buf, size_t len);
int arborfs_rs_plan_decode(const void *plan, size_t i, const u8 *raw, size_t raw_len, u8 *out, size_t out_len);
int arborfs_rs_plan_finish(void *fs, bool shared, struct arborfs_node_miss *miss, const void *plan, u8 *buf, size_t len);
void arborfs_rs_plan_free(void *plan);
/*
 * Writes without the engine lock across device I/O and compression: plan (lock;
 * a plan not *placed is encoded, then placed), encode/free (no lock),
 * place (lock), commit or abort (lock; several plans of one file at once).
 */
ssize_t arborfs_rs_plan_write(void *fs, u64 ino, u64 off, size_t len, u64 data_end, void **plan, u32 *dev,
			      u64 *offset, int *placed);
int arborfs_rs_plan_writes(void *fs, u64 ino, struct arborfs_wreq *reqs, size_t nr);
int arborfs_rs_wplan_encode(void *plan, const u8 *buf, size_t len, const u8 **out, size_t *out_len);
int arborfs_rs_write_place(void *fs, void *plan, u32 *dev, u64 *offset);
int arborfs_rs_write_commit(void *fs, u64 ino, void *const *plans, size_t n, u64 *alloc_bytes);
int arborfs_rs_write_abort(void *fs, u64 ino, void *const *plans, size_t n);
int arborfs_rs_write_prepare(void *fs, void *const *plans, size_t n, void **prepared);
int arborfs_rs_write_commit_prepared(void *fs, u64 ino, void *prepared, void *const *plans, size_t n, u64 *alloc_bytes);
void arborfs_rs_prepared_free(void *prepared);
void arborfs_rs_wplan_set_times(void *plan, s64 atime, s64 mtime, s64 ctime);
void arborfs_rs_wplan_free(void *plan);
ssize_t arborfs_rs_readlink(void *fs, bool shared, struct arborfs_node_miss *miss, u64 ino, u8 *buf, size_t len);
int arborfs_rs_statfs(void *fs, bool shared, struct arborfs_node_miss *miss, struct arborfs_statfs *out);
ssize_t arborfs_rs_getxattr(void *fs, bool shared, struct arborfs_node_miss *miss, u64 ino, const u8 *name, size_t namelen, u8 *buf, size_t size);
ssize_t arborfs_rs_listxattr(void *fs, bool shared, struct arborfs_node_miss *miss, u64 ino, u8 *buf, size_t size);
int arborfs_rs_setxattr(void *fs, bool shared, struct arborfs_node_miss *miss, void **prepared, u64 ino, const u8 *name, size_t namelen, const u8 *value, size_t size,
			u32 flags);
int arborfs_rs_create(void *fs, bool shared, struct arborfs_node_miss *miss, void **prepared, u64 dir, const u8 *name, size_t len, u32 mode, u32 uid, u32 gid, u64 rdev,
		      struct arborfs_attr *out);
int arborfs_rs_symlink(void *fs, bool shared, struct arborfs_node_miss *miss, void **prepared, u64 dir, const u8 *name, size_t len, const u8 *target, size_t tlen,
		       u32 uid, u32 gid, struct arborfs_attr *out);
int arborfs_rs_link(void *fs, bool shared, struct arborfs_node_miss *miss, void **prepared, u64 ino, u64 dir, const u8 *name, size_t len, struct arborfs_attr *out);
int arborfs_rs_unlink(void *fs, bool shared, struct arborfs_node_miss *miss, void **prepared, u64 dir, const u8 *name, size_t len, int rmdir, struct arborfs_attr *out);
int arborfs_rs_rename(void *fs, bool shared, struct arborfs_node_miss *miss, void **prepared, u64 olddir, const u8 *oldname, size_t oldlen, u64 newdir, const u8 *newname,
		      size_t newlen, u32 flags, u32 uid, u32 gid);
int arborfs_rs_tmpfile(void *fs, bool shared, struct arborfs_node_miss *miss, void **prepared, u64 dir, u32 mode, u32 uid, u32 gid, struct arborfs_attr *out);
int arborfs_rs_setattr(void *fs, bool shared, struct arborfs_node_miss *miss, void **prepared, u64 ino, const struct arborfs_setattr *set, struct arborfs_attr *out);
ssize_t arborfs_rs_write(void *fs, u64 ino, u64 off, const u8 *buf, size_t len, u64 *alloc_bytes);
int arborfs_rs_fallocate(void *fs, u64 ino, u32 mode, u64 off, u64 len, struct arborfs_attr *out);
int arborfs_rs_seek(void *fs, bool shared, struct arborfs_node_miss *miss, u64 ino, u64 off, int hole, u64 *res);
int arborfs_rs_fiemap(void *fs, u64 ino, u64 start, u64 end, struct arborfs_extent *out, size_t max, size_t *n);
int arborfs_rs_swap_prepare(void *fs, u64 ino, u64 len);
/* Group commit: steps under the engine lock, the journal write between them without it (super.c: arborfs_sync). */
int arborfs_rs_sync_step(void *fs, u64 *target, struct arborfs_journal_write *out);
int arborfs_rs_sync_done(void *fs, int err, u64 target);
int arborfs_rs_evict(void *fs, u64 ino);
u64 arborfs_rs_available(void *fs); /* what writers may reserve */
int arborfs_rs_note_reserved(void *fs, u64 bytes); /* what they hold */
size_t arborfs_rs_shrink(void *fs, size_t target);
int arborfs_rs_set_compression(void *fs, u8 kind, u8 level);
int arborfs_rs_set_discard(void *fs, int on);
int arborfs_rs_trim(void *fs, u64 start, u64 len, u64 min_len, u64 *trimmed);
int arborfs_rs_parse_compress(const u8 *v, size_t len, u8 *kind, u8 *level, char *msg, size_t msglen);
int arborfs_rs_uuid(void *fs, u8 *out);
u32 arborfs_rs_read_unit(void *fs);
ssize_t arborfs_rs_features(u8 *buf, size_t len);

/* Mount options (fs_context private data, kept in the super block for remounts). */
struct arborfs_options {
	int compress;		/* -1: the format's default; else 0 none, 1 lz4, 2 zstd */
	u8 compress_level;	/* zstd level (0: the default) */
	bool norecovery;	/* read-only, journal not replayed */
	int discard;		/* -1: unset (off at mount, unchanged at remount); 0 nodiscard; 1 discard */
	s64 readahead;		/* readahead= in bytes; -1: unset (the default at mount, unchanged at remount) */
	int acl;		/* -1: unset (on at mount, unchanged at remount); 0 noacl; 1 acl */
};

/* The readahead window of files opened on a mount without readahead=. */
#define ARBORFS_DEFAULT_READAHEAD SZ_4M
/* The largest readahead= accepted: each window is one engine read into one buffer. */
#define ARBORFS_MAX_READAHEAD (64 * SZ_1M)

/* The in-core inode: the VFS inode and what the glue keeps beside it. */
struct arborfs_inode {
	struct inode vfs;
	atomic64_t delalloc;	/* bytes of dirty folios not yet written (st_blocks counts them) */
	s64 btime;		/* birth time, ns (statx) */
	u32 flags;		/* the engine's FS_*_FL flags */
	u32 projid;		/* project id */
	bool no_xattrs;		/* created by this mount and given no attribute since: getxattr needs no engine call */
	/* Times the engine was last given or gave (under i_lock): write_inode skips a file whose times are these. */
	struct arborfs_times held;
	bool times_held;
};

static inline struct arborfs_inode *AI(struct inode *inode)
{
	return container_of(inode, struct arborfs_inode, vfs);
}

/* Per-mount state. */
struct arborfs_sb_info {
	struct rw_semaphore lock;	/* the engine lock (ENGINE_CALL, ENGINE_READ) */
	void *fs;			/* the engine (Rust Fs) */
	bool shut_down;			/* shutdown ioctl: every call fails with EIO */
	atomic64_t reserved;		/* bytes of dirty page cache not yet written */
	atomic64_t avail;		/* engine's free bytes at the last look */
	atomic_long_t cache_bytes;	/* engine node cache size at the last look */
	struct shrinker *shrinker;
	struct arborfs_options opts;
	struct arborfs_member member;	/* the block device, as the engine's KernelDevice holds it */
	u32 read_unit;			/* bytes a small read reads and verifies whole (0: none; arborfs_readahead) */
	/* Counters for /proc/self/mountstats (show_stats). */
	atomic64_t engine_calls;	/* ENGINE_CALLs entered (the lock held exclusively) */
	atomic64_t engine_ns;		/* time they held it */
	atomic64_t lock_wait_ns;	/* time they waited for it */
	atomic64_t shared_calls;	/* ENGINE_READs answered with the lock shared */
	atomic64_t shared_overlaps;	/* ... entered while another shared call was in the engine */
	atomic64_t shared_misses;	/* ... made again exclusively (nodes missing, not fetched) */
	atomic64_t shared_busy;		/* ENGINE_READs made exclusively as a writer held or awaited the lock */
	atomic64_t node_fetches;	/* nodes read in for shared calls without the lock (arborfs_engine_fetch) */
	atomic64_t node_fetches_refused; /* ... that the tree no longer pointed at once read */
	atomic64_t refused_writes;	/* ENGINE_WRITE calls refused for a node on disk only, and made again */
	atomic64_t optimistic_changes;	/* ENGINE_CHANGEs committed after a body made with the lock shared */
	atomic64_t change_overlaps;	/* ... bodies entered while another call was in the engine */
	atomic64_t change_conflicts;	/* ... bodies made again as a commit changed what they read */
	atomic64_t change_fallbacks;	/* ENGINE_CHANGEs made exclusively at last (nodes, conflicts) */
	atomic64_t change_busy;		/* ENGINE_CHANGEs made exclusively as a writer held or awaited the lock */
	atomic_t shared_in;		/* shared calls in the engine now */
	atomic64_t planned_reads;	/* reads done without the engine lock across their device I/O */
	atomic64_t overlapped_reads;	/* ... while another engine call ran */
	atomic64_t replanned_reads;	/* ... whose buckets changed meanwhile (read again under the engine lock) */
	atomic64_t decoded_reads;	/* extents stored whole checked and decoded without it */
	atomic64_t times_held;		/* write_inode calls the engine was spared: it held the times already */
	atomic64_t prepared_commits;	/* write commits applied as made with the lock shared while their bios were in flight */
	atomic64_t prepared_conflicts;	/* such commits made again under the lock (a commit since changed what they read) */
	atomic64_t planned_writes;	/* writes of whole blocks done without the engine lock across their device I/O */
	atomic64_t unplanned_writes;	/* writes (or their tails) the engine did under the engine lock, device I/O included */
	atomic64_t direct_read_bytes;	/* O_DIRECT reads that landed in the caller's pages */
	atomic64_t encoded_writes;	/* ... compressed (or checksummed whole) without it too */
	atomic64_t overlapped_encodes;	/* ... while another engine call ran */
	atomic64_t encode_ns;		/* time spent encoding them */
	/* Group commit (arborfs_sync): the journal write in flight, under the engine lock. */
	bool journal_busy;		/* a sync's journal write is in flight */
	u64 journal_gen;		/* journal writes finished (waiters wait for it to move) */
	wait_queue_head_t journal_wait;
	/* Writeback runs queued and not yet written (file.c). */
	atomic_t wb_runs;
	atomic64_t wb_bytes;		/* ... the size of their folios */
	wait_queue_head_t wb_wait;
	spinlock_t wb_lock;
	struct list_head wb_pending;	/* ... not yet claimed by a worker (under wb_lock) */
	atomic64_t wb_groups;		/* groups of runs written by one worker (several files) */
	atomic64_t wb_grouped_runs;	/* ... and the runs in them */
	atomic64_t sync_calls;		/* arborfs_sync calls */
	atomic64_t sync_waits;		/* ... that waited for another's journal write */
};

static inline struct arborfs_sb_info *ASB(struct super_block *sb)
{
	return sb->s_fs_info;
}

/*
 * Take the engine lock exclusively. While shared calls hold it, spin for
 * it a while before sleeping: they are short and never wait for I/O, and
 * rwsem writers spin on readers only briefly (a writer that sleeps behind
 * a 30 µs lookup pays a wakeup, and everything queues behind it).
 */
static inline void arborfs_lock_exclusive(struct rw_semaphore *lock, atomic_t *shared_in)
{
	u64 until = local_clock() + 200 * NSEC_PER_USEC;

	while (!down_write_trylock(lock)) {
		if (!atomic_read(shared_in) || need_resched() || local_clock() > until) {
			down_write(lock);
			return;
		}
		cpu_relax();
	}
}

/*
 * Enter the engine: take the mount's lock exclusively inside a NOFS
 * allocation scope. With `refuse` (ENGINE_WRITE) the call reads no node:
 * where it needs one that is on disk only it fails with -ECHILD, having
 * changed nothing, and the node is described in *miss.
 */
#define ENGINE_HELD(sb, refuse, miss, expr)                     \
	({                                                      \
		struct arborfs_sb_info *__s = ASB(sb);          \
		unsigned int __nofs;                            \
		typeof(expr) __r;                               \
		u64 __t0 = local_clock(), __t1;                 \
		arborfs_lock_exclusive(&__s->lock, &__s->shared_in); \
		__t1 = local_clock();                           \
		atomic64_inc(&__s->engine_calls);               \
		atomic64_add(__t1 - __t0, &__s->lock_wait_ns);  \
		__nofs = memalloc_nofs_save();                  \
		if (__s->fs) {                                  \
			/* Creating files leaves room for dirty data. */ \
			arborfs_rs_note_reserved(__s->fs,       \
				max_t(s64, atomic64_read(&__s->reserved), 0)); \
			if (refuse)                             \
				arborfs_rs_refuse_reads(__s->fs); \
		}                                               \
		__r = (expr);                                   \
		if ((refuse) && __s->fs)                        \
			arborfs_rs_take_refused(__s->fs, miss); \
		memalloc_nofs_restore(__nofs);                  \
		atomic64_add(local_clock() - __t1, &__s->engine_ns); \
		up_write(&__s->lock);                           \
		__r;                                            \
	})

#define ENGINE_CALL(sb, expr) ENGINE_HELD(sb, false, NULL, expr)

/*
 * Enter the engine shared (ENGINE_READ, ENGINE_CHANGE), beside other shared
 * holders, inside a NOFS allocation scope (*nofs); false, counting `busy`,
 * when a writer holds or awaits the lock. `overlaps` counts entries while
 * another shared call is in the engine.
 */
static inline bool arborfs_enter_shared(struct arborfs_sb_info *s, atomic64_t *busy, atomic64_t *overlaps,
					unsigned int *nofs)
{
	if (!down_read_trylock(&s->lock)) {
		atomic64_inc(busy);
		return false;
	}
	if (atomic_inc_return(&s->shared_in) > 1)
		atomic64_inc(overlaps);
	*nofs = memalloc_nofs_save();
	return true;
}

/* Leave what arborfs_enter_shared entered. */
static inline void arborfs_leave_shared(struct arborfs_sb_info *s, unsigned int nofs)
{
	memalloc_nofs_restore(nofs);
	atomic_dec(&s->shared_in);
	up_read(&s->lock);
}

/* Nodes a read may read in without the lock before it is made exclusively instead. */
#define ARBORFS_READ_FETCHES 8

int arborfs_engine_fetch(struct super_block *sb, const struct arborfs_node_miss *miss);

/*
 * A call (ENGINE_READ, ENGINE_WRITE) failed for the node `miss` describes:
 * read it in without the lock (arborfs_engine_fetch) and say whether the
 * call may be made again the same way; false once *fetches reached
 * ARBORFS_READ_FETCHES, or when the node cannot be fetched: the call is
 * then made reading what it needs under the lock.
 */
static inline bool arborfs_fetch_again(struct super_block *sb, const struct arborfs_node_miss *miss,
				       unsigned int *fetches)
{
	return (*fetches)++ < ARBORFS_READ_FETCHES && miss->valid && !arborfs_engine_fetch(sb, miss);
}

/*
 * A read: fn(FS(sb), true, &miss, args...) with the lock shared, beside
 * other such calls; it answers from nodes in memory, or -ECHILD where it
 * needs one that is on disk only, described in `miss`. That node is then
 * read and checked without the lock and taken in under it (a moment's
 * exclusive hold, no device I/O: arborfs_engine_fetch) and the read made
 * again; after ARBORFS_READ_FETCHES nodes, or when a node cannot be
 * fetched, fn(FS(sb), false, NULL, args...) is made with the lock held
 * exclusively, which reads what it needs itself. So is a read that finds
 * the lock held or awaited by a writer: rwsem readers sleep where writers
 * spin on a running owner, and under a stream of short exclusive calls
 * (fs_mark with 4 threads) sleeping readers cost a fifth of the rate.
 */
#define ENGINE_READ(sb, fn, ...)                                \
	({                                                      \
		struct arborfs_sb_info *__rs = ASB(sb);         \
		struct arborfs_node_miss __miss;                \
		unsigned int __rnofs, __fetches = 0;            \
		typeof(fn(NULL, true, NULL, __VA_ARGS__)) __rr = -ECHILD; \
		/* Each round ends with an answer, a node read in, or a break. */ \
		while (__rr == -ECHILD) {                       \
			__miss.valid = 0;                       \
			if (!arborfs_enter_shared(__rs, &__rs->shared_busy, &__rs->shared_overlaps, &__rnofs)) \
				break;                          \
			__rr = fn(__rs->fs, true, &__miss, __VA_ARGS__); \
			arborfs_leave_shared(__rs, __rnofs);    \
			atomic64_inc(&__rs->shared_calls);      \
			if (__rr == -ECHILD && !arborfs_fetch_again(sb, &__miss, &__fetches)) { \
				atomic64_inc(&__rs->shared_misses); \
				break;                          \
			}                                       \
		}                                               \
		if (__rr == -ECHILD)                            \
			__rr = ENGINE_CALL(sb, fn(__rs->fs, false, NULL, __VA_ARGS__)); \
		__rr;                                           \
	})

/*
 * A change: expr, an engine call on FS(sb) that returns 0 or a negative
 * errno and takes no effect before its first commit that it may not
 * repeat, made with the lock held exclusively and the engine refusing to
 * read nodes. Where it needs one that is on disk only, it fails with
 * -ECHILD before anything changed; the node is read and checked without
 * the lock and taken in (arborfs_engine_fetch, as for ENGINE_READ) and the
 * call made again. After ARBORFS_READ_FETCHES nodes, or one that cannot be
 * fetched, the call is made reading what it needs under the lock. So a
 * change holds the lock across a node read only rarely: a merge's
 * neighbour, what follows the call's first commit, a checkpoint.
 */
#define ENGINE_WRITE(sb, expr)                                  \
	({                                                      \
		struct arborfs_node_miss __wmiss;               \
		unsigned int __wfetches = 0;                    \
		bool __refuse = true;                           \
		typeof(expr) __wr;                              \
		for (;;) {                                      \
			__wmiss.valid = 0;                      \
			__wr = ENGINE_HELD(sb, __refuse, &__wmiss, expr); \
			if (__wr != -ECHILD || !__refuse)       \
				break;                          \
			atomic64_inc(&ASB(sb)->refused_writes); \
			__refuse = arborfs_fetch_again(sb, &__wmiss, &__wfetches) && \
				   __wfetches < ARBORFS_READ_FETCHES; \
		}                                               \
		__wr;                                           \
	})

/* Bodies an ENGINE_CHANGE makes again after conflicts before it is made exclusively. */
#define ARBORFS_CHANGE_TRIES 4

/*
 * A change of one transaction: fn(FS(sb), true, &miss, &prepared, args...)
 * with the lock shared, beside reads and other bodies, makes the body over
 * nodes in memory and hands its change out in `prepared`; the change is
 * committed with the lock held exclusively (arborfs_rs_commit_prepared,
 * reads refused). A commit that finds a key the body read changed since
 * answers -EAGAIN and the body is made again; a body or commit that needs
 * a node on disk only answers -ECHILD, the node is fetched without the
 * lock (as for ENGINE_READ) and the body made again. After
 * ARBORFS_CHANGE_TRIES conflicts or ARBORFS_READ_FETCHES nodes, or a node
 * that cannot be fetched, fn(FS(sb), false, NULL, NULL, args...) is made
 * through ENGINE_WRITE. The body's out-arguments are final once it commits.
 * A body joins shared holders only: a change that finds nobody in the
 * engine, or a writer holding or awaiting the lock, is made exclusively at
 * once (`change_busy` counts the latter). A body beside nothing gains
 * nothing, and one that waited for a writer would wait for the lock twice:
 * on the guest's two CPUs, bodies that slept for the lock shared cost
 * fs_mark with 4 threads a fifth of its rate.
 */
#define ENGINE_CHANGE(sb, fn, ...)                              \
	({                                                      \
		struct arborfs_sb_info *__cs = ASB(sb);         \
		struct arborfs_node_miss __cmiss;               \
		unsigned int __cnofs, __cfetches = 0, __ctries = 0; \
		void *__prep;                                   \
		/* Made exclusively at once: nobody in the engine, or a writer in or waiting. */ \
		bool __direct = !rwsem_is_locked(&__cs->lock); \
		int __cr = -EAGAIN;                             \
		/* Each round ends with an answer, a conflict, a node read in, or a break. */ \
		while (!__direct && (__cr == -EAGAIN || __cr == -ECHILD)) { \
			if (__ctries == ARBORFS_CHANGE_TRIES)   \
				break;                          \
			__cmiss.valid = 0;                      \
			__prep = NULL;                          \
			if (!arborfs_enter_shared(__cs, &__cs->change_busy, &__cs->change_overlaps, &__cnofs)) { \
				__direct = true;                \
				break;                          \
			}                                       \
			__cr = __cs->fs ? fn(__cs->fs, true, &__cmiss, &__prep, __VA_ARGS__) : -EIO; \
			arborfs_leave_shared(__cs, __cnofs);    \
			if (!__cr)                              \
				__cr = ENGINE_HELD(sb, true, &__cmiss, \
					arborfs_rs_commit_prepared(__cs->fs, __prep)); \
			if (!__cr)                              \
				atomic64_inc(&__cs->optimistic_changes); \
			else if (__cr == -EAGAIN && ++__ctries) \
				atomic64_inc(&__cs->change_conflicts); \
			else if (__cr == -ECHILD && !arborfs_fetch_again(sb, &__cmiss, &__cfetches)) \
				break;                          \
		}                                               \
		if (__cr == -EAGAIN || __cr == -ECHILD) {       \
			if (!__direct)                          \
				atomic64_inc(&__cs->change_fallbacks); \
			__cr = ENGINE_WRITE(sb, fn(__cs->fs, false, NULL, NULL, __VA_ARGS__)); \
		}                                               \
		__cr;                                           \
	})

/* Engine calls entered so far, either way: a change means another call ran. */
static inline s64 arborfs_calls_entered(struct arborfs_sb_info *s)
{
	return atomic64_read(&s->engine_calls) + atomic64_read(&s->shared_calls);
}

/* The engine of a mount, for use inside ENGINE_CALL. */
#define FS(sb) (ASB(sb)->fs)

/* After the shutdown ioctl nothing reaches the engine. */
static inline int arborfs_alive(struct super_block *sb)
{
	return READ_ONCE(ASB(sb)->shut_down) ? -EIO : 0;
}

/* The blocks count (st_blocks) from the bytes the engine says a file occupies
 * (dirty folios not yet written are added by getattr). */
static inline void arborfs_set_blocks(struct inode *inode, u64 alloc_bytes)
{
	spin_lock(&inode->i_lock);
	inode->i_blocks = alloc_bytes >> 9;
	spin_unlock(&inode->i_lock);
}

/* inode.c */
extern const struct xattr_handler * const arborfs_xattr_handlers[];
struct inode *arborfs_iget(struct super_block *sb, u64 ino);
struct inode *arborfs_new_inode(struct super_block *sb, const struct arborfs_attr *a, const char *link);
void arborfs_apply_attr(struct inode *inode, const struct arborfs_attr *a);
int arborfs_refresh(struct inode *inode);
int arborfs_init_acl(struct inode *inode, struct posix_acl *default_acl, struct posix_acl *acl);
int arborfs_setattr(struct mnt_idmap *idmap, struct dentry *dentry, struct iattr *attr);
int arborfs_getattr(struct mnt_idmap *idmap, const struct path *path, struct kstat *stat, u32 request_mask,
		    unsigned int flags);
ssize_t arborfs_listxattr(struct dentry *dentry, char *buf, size_t size);
struct posix_acl *arborfs_get_inode_acl(struct inode *inode, int type, bool rcu);
int arborfs_set_acl(struct mnt_idmap *idmap, struct dentry *dentry, struct posix_acl *acl, int type);
int arborfs_fileattr_get(struct dentry *dentry, struct fileattr *fa);
int arborfs_fileattr_set(struct mnt_idmap *idmap, struct dentry *dentry, struct fileattr *fa);
extern const struct inode_operations arborfs_file_iops;
extern const struct inode_operations arborfs_symlink_iops;
extern const struct inode_operations arborfs_special_iops;
int arborfs_write_inode(struct inode *inode, struct writeback_control *wbc);
void arborfs_evict_inode(struct inode *inode);

/* namei.c */
extern const struct inode_operations arborfs_dir_iops;
extern const struct file_operations arborfs_dir_fops;

/*
 * A write in flight (file.c): its plans and their bios. A 1 MiB writeback
 * run is one plain plan, or eight encoded (compressed) ones of 128 KiB.
 */
/*
 * Plans of one write in flight: a writeback run of up to 32 ranges, each
 * in one or more plans (a compressed piece is at most 128 KiB, so a 1 MiB
 * range is eight).
 */
#define ARBORFS_WRITE_PLANS 48
struct arborfs_write {
	struct arborfs_io_batch batch;
	void *plans[ARBORFS_WRITE_PLANS];
	unsigned int nr_plans;
	int err;		/* the first error planning or submitting */
	void *prepared;		/* the commit of the plans, made while their bios are in flight */
};

/* inode.c: the times the engine holds */
void arborfs_vfs_times(struct inode *inode, struct arborfs_times *t);
void arborfs_note_times(struct inode *inode, const struct arborfs_times *t);

static inline bool arborfs_times_equal(const struct arborfs_times *a, const struct arborfs_times *b)
{
	return a->atime == b->atime && a->mtime == b->mtime && a->ctime == b->ctime;
}

/* file.c */
int arborfs_file_init(void);
void arborfs_file_exit(void);
void arborfs_wb_wait_idle(struct super_block *sb);
void arborfs_set_large_folios(struct inode *inode);
ssize_t arborfs_read(struct inode *inode, loff_t pos, u8 *buf, size_t len);
ssize_t arborfs_write_back(struct inode *inode, u64 pos, const u8 *buf, size_t len, u64 *alloc_bytes);
extern const struct file_operations arborfs_file_fops;
extern const struct address_space_operations arborfs_aops;
int arborfs_fsync(struct file *file, loff_t start, loff_t end, int datasync);
void arborfs_unreserve(struct super_block *sb, u64 bytes);
u64 arborfs_new_dirty_bytes(struct inode *inode);
long arborfs_ioctl(struct file *file, unsigned int cmd, unsigned long arg);
int arborfs_fiemap(struct inode *inode, struct fiemap_extent_info *fieinfo, u64 start, u64 len);

/* swap.c */
int arborfs_swap_activate(struct swap_info_struct *sis, struct file *file, sector_t *span);

/* export.c */
extern const struct export_operations arborfs_export_ops;

/* super.c */
int arborfs_shutdown(struct super_block *sb, u32 how);
int arborfs_sync(struct super_block *sb);

#endif
