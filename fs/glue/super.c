// SPDX-License-Identifier: GPL-2.0
/*
 * The file system type and the super block: mount (fs_context), remount,
 * unmount, sync, freeze, statfs, shutdown, and the shrinker that trims the
 * engine's node cache under memory pressure.
 */
#include <linux/module.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/blkdev.h>
#include <linux/statfs.h>
#include <linux/slab.h>
#include <linux/writeback.h>
#include <linux/backing-dev.h>
#include <linux/seq_file.h>
#include <linux/kobject.h>
#include <linux/sysfs.h>

#include "arborfs.h"
#include "services.h"

/* ---- shrinker: the engine's clean cached nodes ---- */

static unsigned long arborfs_cache_count(struct shrinker *shrink, struct shrink_control *sc)
{
	struct arborfs_sb_info *s = shrink->private_data;

	return atomic_long_read(&s->cache_bytes) >> PAGE_SHIFT;
}

static unsigned long arborfs_cache_scan(struct shrinker *shrink, struct shrink_control *sc)
{
	struct arborfs_sb_info *s = shrink->private_data;
	size_t before, after, target;
	unsigned int nofs;

	/* Never wait for the engine from reclaim: it may be what is allocating. */
	if (!(sc->gfp_mask & __GFP_FS) || !down_write_trylock(&s->lock))
		return SHRINK_STOP;
	nofs = memalloc_nofs_save();
	before = arborfs_rs_shrink(s->fs, SIZE_MAX);
	target = before > (sc->nr_to_scan << PAGE_SHIFT) ? before - (sc->nr_to_scan << PAGE_SHIFT) : 0;
	after = arborfs_rs_shrink(s->fs, target);
	memalloc_nofs_restore(nofs);
	up_write(&s->lock);
	atomic_long_set(&s->cache_bytes, after);
	return before > after ? (before - after) >> PAGE_SHIFT : SHRINK_STOP;
}

/* Note the cache size for the shrinker's count (after calls that grow it). */
static void arborfs_note_cache(struct super_block *sb)
{
	atomic_long_set(&ASB(sb)->cache_bytes, ENGINE_CALL(sb, arborfs_rs_shrink(FS(sb), SIZE_MAX)));
}

/* ---- super operations ---- */

static struct kmem_cache *arborfs_inode_cachep;

static void arborfs_inode_init_once(void *p)
{
	struct arborfs_inode *ai = p;

	inode_init_once(&ai->vfs);
}

static struct inode *arborfs_alloc_inode(struct super_block *sb)
{
	struct arborfs_inode *ai = alloc_inode_sb(sb, arborfs_inode_cachep, GFP_KERNEL);

	if (!ai)
		return NULL;
	atomic64_set(&ai->delalloc, 0);
	ai->btime = 0;
	ai->flags = 0;
	ai->projid = 0;
	ai->no_xattrs = false;
	ai->times_held = false;
	return &ai->vfs;
}

/* RCU-delayed (after the last reference and any RCU path walk). */
static void arborfs_free_inode(struct inode *inode)
{
	if (S_ISLNK(inode->i_mode))
		kfree(inode->i_link);
	kmem_cache_free(arborfs_inode_cachep, AI(inode));
}

/* Wait until no sync's journal write is in flight (before the engine may be replaced). */
static void arborfs_wait_journal(struct super_block *sb)
{
	struct arborfs_sb_info *s = ASB(sb);

	wait_event(s->journal_wait, !READ_ONCE(s->journal_busy));
}

static void arborfs_put_super(struct super_block *sb)
{
	struct arborfs_sb_info *s = ASB(sb);

	shrinker_free(s->shrinker);
	s->shrinker = NULL;
	arborfs_wait_journal(sb);
	/* Readahead and writeback finishing in the background may still be in the engine. */
	flush_workqueue(arborfs_io_wq);
	if (s->fs && ENGINE_CALL(sb, arborfs_rs_unmount(s->fs)))
		pr_err("arborfs: %s: unmounted with errors; run fsck.arborfs\n", sb->s_id);
	s->fs = NULL;
}

/* Under the engine lock: one step of a sync, and the glue's record of the write in flight. */
static int arborfs_sync_step_locked(struct arborfs_sb_info *s, u64 *target, struct arborfs_journal_write *w,
				    u64 *gen)
{
	int r = arborfs_rs_sync_step(s->fs, target, w);

	if (r == ARBORFS_SYNC_WRITE)
		WRITE_ONCE(s->journal_busy, true);
	*gen = s->journal_gen;
	return r;
}

static int arborfs_sync_done_locked(struct arborfs_sb_info *s, int err, u64 target)
{
	WRITE_ONCE(s->journal_busy, false);
	WRITE_ONCE(s->journal_gen, s->journal_gen + 1);
	return arborfs_rs_sync_done(s->fs, err, target);
}

/*
 * Make everything committed so far durable (fsync, syncfs, freeze) with
 * group commit: the journal write runs without the engine lock, and the
 * callers that arrive meanwhile wait for it, then share the next one (see
 * fs/engine/src/fs/sync.rs).
 */
int arborfs_sync(struct super_block *sb)
{
	struct arborfs_sb_info *s = ASB(sb);
	struct arborfs_journal_write w;
	u64 target = U64_MAX, gen;
	int r, err;

	atomic64_inc(&s->sync_calls);
	for (;;) {
		r = arborfs_alive(sb) ?: ENGINE_CALL(sb, arborfs_sync_step_locked(s, &target, &w, &gen));
		if (r <= 0)
			return r;
		if (r == ARBORFS_SYNC_WAIT) {
			atomic64_inc(&s->sync_waits);
			wait_event(s->journal_wait, READ_ONCE(s->journal_gen) != gen);
			continue;
		}
		/* One member per mount: its journal is on it. */
		err = w.dev ? -EIO : arborfs_glue_journal_write(&s->member, w.buf, w.len, w.offset, w.preflush);
		r = ENGINE_CALL(sb, arborfs_sync_done_locked(s, err, target));
		wake_up_all(&s->journal_wait);
		if (r != ARBORFS_SYNC_AGAIN)
			return r;
	}
}

static int arborfs_sync_fs(struct super_block *sb, int wait)
{
	if (!wait || sb_rdonly(sb))
		return 0;
	arborfs_note_cache(sb);
	return arborfs_sync(sb);
}

/* The VFS has written all dirty data by now; the engine writes nothing on its own. */
static int arborfs_freeze_fs(struct super_block *sb)
{
	return arborfs_sync_fs(sb, 1);
}

static int arborfs_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	struct super_block *sb = dentry->d_sb;
	struct arborfs_statfs s;
	u64 reserved;
	int err = arborfs_alive(sb) ?: ENGINE_READ(sb, arborfs_rs_statfs, &s);

	if (err)
		return err;
	/* Dirty data not yet written will take space: do not offer it again. */
	reserved = max_t(s64, atomic64_read(&ASB(sb)->reserved), 0) / s.bsize;
	buf->f_type = ARBORFS_MAGIC;
	buf->f_bsize = s.bsize;
	buf->f_frsize = s.bsize;
	buf->f_blocks = s.blocks;
	buf->f_bfree = s.bfree > reserved ? s.bfree - reserved : 0;
	buf->f_bavail = s.bavail > reserved ? s.bavail - reserved : 0;
	buf->f_files = s.files;
	buf->f_ffree = s.ffree;
	buf->f_namelen = s.namelen;
	buf->f_fsid = u64_to_fsid(huge_encode_dev(sb->s_bdev->bd_dev));
	return 0;
}

/* XFS_IOC_GOINGDOWN flags. */
#define GOINGDOWN_DEFAULT 0	/* write dirty data and the journal, then stop */
#define GOINGDOWN_LOGFLUSH 1	/* write the journal, then stop */
#define GOINGDOWN_NOLOGFLUSH 2	/* stop now */

int arborfs_shutdown(struct super_block *sb, u32 how)
{
	struct arborfs_sb_info *s = ASB(sb);
	int err;

	if (how > GOINGDOWN_NOLOGFLUSH)
		return -EINVAL;
	if (READ_ONCE(s->shut_down))
		return 0;
	if (how == GOINGDOWN_DEFAULT) {
		down_read(&sb->s_umount);
		sync_filesystem(sb);
		up_read(&sb->s_umount);
	}
	err = how != GOINGDOWN_NOLOGFLUSH ? arborfs_sync(sb) : 0;
	err = ENGINE_CALL(sb, arborfs_rs_shutdown(FS(sb), 0)) ?: err;
	WRITE_ONCE(s->shut_down, true);
	pr_warn("arborfs: %s: shut down (%s); writes fail from now on\n", sb->s_id,
		how == GOINGDOWN_DEFAULT ? "data and journal flushed" :
		how == GOINGDOWN_LOGFLUSH ? "journal flushed" : "nothing flushed");
	return err;
}

/* The block device went away: stop at once. */
static void arborfs_sb_shutdown(struct super_block *sb)
{
	arborfs_shutdown(sb, GOINGDOWN_NOLOGFLUSH);
}

static int arborfs_show_options(struct seq_file *m, struct dentry *root)
{
	struct arborfs_options *o = &ASB(root->d_sb)->opts;
	static const char *const names[] = { "none", "lz4", "zstd" };

	if (o->compress >= 0 && o->compress < ARRAY_SIZE(names)) {
		seq_printf(m, ",compress=%s", names[o->compress]);
		if (o->compress == 2 && o->compress_level)
			seq_printf(m, ":%u", o->compress_level);
	}
	if (o->norecovery)
		seq_puts(m, ",norecovery");
	if (o->discard > 0)
		seq_puts(m, ",discard");
	if (!(root->d_sb->s_flags & SB_POSIXACL))
		seq_puts(m, ",noacl");
	/* The window in force: readahead= or the bdi's read_ahead_kb in sysfs. */
	if (root->d_sb->s_bdi->ra_pages != ARBORFS_DEFAULT_READAHEAD >> PAGE_SHIFT)
		seq_printf(m, ",readahead=%luk", root->d_sb->s_bdi->ra_pages << (PAGE_SHIFT - 10));
	return 0;
}

/*
 * Read in the node a shared read missed (ENGINE_READ): read and checked
 * without the engine lock, then taken into the node cache under it if the
 * tree still points at it, a moment's hold with no device I/O. Nonzero
 * when the node could not be read or checked (the exclusive call made
 * instead reads it again and reports damage).
 */
int arborfs_engine_fetch(struct super_block *sb, const struct arborfs_node_miss *miss)
{
	struct arborfs_sb_info *s = ASB(sb);
	unsigned int nofs;
	void *node;
	int err;

	if (arborfs_alive(sb))
		return -EIO;
	nofs = memalloc_nofs_save();
	err = arborfs_rs_node_fetch(&s->member, bdev_nr_bytes(sb->s_bdev), miss, &node);
	memalloc_nofs_restore(nofs);
	if (err)
		return err;
	atomic64_inc(&s->node_fetches);
	if (ENGINE_CALL(sb, arborfs_rs_node_adopt(FS(sb), miss, node)) <= 0)
		atomic64_inc(&s->node_fetches_refused);
	return 0;
}

/*
 * Counters after the mount's line in /proc/self/mountstats (times in µs):
 * engine calls that held the engine lock exclusively, the time they held it
 * and the time every call waited for it, the bios they
 * waited for one by one (and that time: the part of engine_us spent on the
 * device), and reads whose device I/O ran without the lock (how many
 * overlapped another engine call, how many had to be read again), writes
 * done the same way, and the time waited for the batches of both; reads
 * answered with the lock shared (ENGINE_READ), how many of them entered
 * while another was in the engine, how many were made again exclusively,
 * and the nodes they read in without the lock (and of those, the ones the
 * tree had left behind by then); changes refused for a node on disk only
 * and made again once it was read in without the lock (ENGINE_WRITE);
 * changes whose body ran with the lock shared (ENGINE_CHANGE), how many
 * bodies entered while another call was in the engine, were made again
 * after a conflict, and changes made exclusively in the end, or at once
 * as a writer held or awaited the lock.
 */
static int arborfs_show_stats(struct seq_file *m, struct dentry *root)
{
	struct arborfs_sb_info *s = ASB(root->d_sb);

	seq_printf(m, " engine_calls=%lld engine_us=%lld lock_wait_us=%lld", atomic64_read(&s->engine_calls),
		   atomic64_read(&s->engine_ns) / 1000, atomic64_read(&s->lock_wait_ns) / 1000);
	seq_printf(m, " sync_ios=%lld sync_io_us=%lld", atomic64_read(&s->member.sync_ios),
		   atomic64_read(&s->member.sync_ns) / 1000);
	seq_printf(m, " syncs=%lld sync_waits=%lld journal_writes=%lld journal_preflushes=%lld journal_us=%lld",
		   atomic64_read(&s->sync_calls), atomic64_read(&s->sync_waits), atomic64_read(&s->member.journal_ios),
		   atomic64_read(&s->member.journal_preflushes), atomic64_read(&s->member.journal_ns) / 1000);
	seq_printf(m, " planned_reads=%lld overlapped_reads=%lld replanned_reads=%lld planned_writes=%lld batch_us=%lld",
		   atomic64_read(&s->planned_reads), atomic64_read(&s->overlapped_reads),
		   atomic64_read(&s->replanned_reads), atomic64_read(&s->planned_writes),
		   atomic64_read(&s->member.batch_ns) / 1000);
	seq_printf(m, " encoded_writes=%lld overlapped_encodes=%lld encode_us=%lld decoded_reads=%lld",
		   atomic64_read(&s->encoded_writes), atomic64_read(&s->overlapped_encodes),
		   atomic64_read(&s->encode_ns) / 1000, atomic64_read(&s->decoded_reads));
	seq_printf(m, " unplanned_writes=%lld direct_read_bytes=%lld", atomic64_read(&s->unplanned_writes),
		   atomic64_read(&s->direct_read_bytes));
	seq_printf(m, " prepared_commits=%lld prepared_conflicts=%lld times_held=%lld",
		   atomic64_read(&s->prepared_commits), atomic64_read(&s->prepared_conflicts),
		   atomic64_read(&s->times_held));
	seq_printf(m, " shared_calls=%lld shared_overlaps=%lld shared_misses=%lld shared_busy=%lld", atomic64_read(&s->shared_calls),
		   atomic64_read(&s->shared_overlaps), atomic64_read(&s->shared_misses), atomic64_read(&s->shared_busy));
	seq_printf(m, " node_fetches=%lld node_fetches_refused=%lld refused_writes=%lld",
		   atomic64_read(&s->node_fetches), atomic64_read(&s->node_fetches_refused),
		   atomic64_read(&s->refused_writes));
	seq_printf(m, " wb_groups=%lld wb_grouped_runs=%lld", atomic64_read(&s->wb_groups),
		   atomic64_read(&s->wb_grouped_runs));
	seq_printf(m, " optimistic_changes=%lld change_overlaps=%lld change_conflicts=%lld change_fallbacks=%lld change_busy=%lld",
		   atomic64_read(&s->optimistic_changes), atomic64_read(&s->change_overlaps),
		   atomic64_read(&s->change_conflicts), atomic64_read(&s->change_fallbacks),
		   atomic64_read(&s->change_busy));
	return 0;
}

static const struct super_operations arborfs_sops = {
	.alloc_inode = arborfs_alloc_inode,
	.free_inode = arborfs_free_inode,
	.show_options = arborfs_show_options,
	.show_stats = arborfs_show_stats,
	.write_inode = arborfs_write_inode,
	.evict_inode = arborfs_evict_inode,
	.put_super = arborfs_put_super,
	.sync_fs = arborfs_sync_fs,
	.freeze_fs = arborfs_freeze_fs,
	.statfs = arborfs_statfs,
	.shutdown = arborfs_sb_shutdown,
};

/* ---- mount ---- */

/* Apply the mount options to a freshly opened engine. */
static int arborfs_apply_options(struct super_block *sb)
{
	struct arborfs_options *o = &ASB(sb)->opts;

	ENGINE_CALL(sb, arborfs_rs_set_discard(FS(sb), o->discard > 0));
	if (o->compress < 0)
		return 0;
	return ENGINE_CALL(sb, arborfs_rs_set_compression(FS(sb), o->compress, o->compress_level));
}

enum { OPT_COMPRESS, OPT_NORECOVERY, OPT_DISCARD, OPT_READAHEAD, OPT_ACL };

static const struct fs_parameter_spec arborfs_param_spec[] = {
	fsparam_string("compress", OPT_COMPRESS),
	/* Read-only, without replaying the journal (xfs's name; ext4's is noload). */
	fsparam_flag("norecovery", OPT_NORECOVERY),
	fsparam_flag("noload", OPT_NORECOVERY),
	/* Discard buckets once a checkpoint has freed them (ext4's and btrfs's name). */
	fsparam_flag_no("discard", OPT_DISCARD),
	/* The readahead window of files opened from now on (bytes, k/m suffixes; 0: none). */
	fsparam_string("readahead", OPT_READAHEAD),
	/* POSIX ACLs honoured (the default) or ignored, the umask applying alone (ext4's names). */
	fsparam_flag_no("acl", OPT_ACL),
	{}
};

/* compress=none|lz4|zstd|zstd:LEVEL, parsed by the engine as mkfs parses it. */
static int arborfs_parse_compress(struct fs_context *fc, const char *v, struct arborfs_options *o)
{
	char why[80];
	u8 kind, level;

	if (arborfs_rs_parse_compress(v, strlen(v), &kind, &level, why, sizeof(why)))
		return invalfc(fc, "compress=%s: %s", v, why);
	o->compress = kind;
	o->compress_level = level;
	return 0;
}

/* readahead=SIZE: bytes with an optional k, m or g suffix, whole pages, at most ARBORFS_MAX_READAHEAD. */
static int arborfs_parse_readahead(struct fs_context *fc, const char *v, struct arborfs_options *o)
{
	char *end;
	unsigned long long n = memparse(v, &end);

	if (end == v || *end)
		return invalfc(fc, "readahead=%s: not a size (bytes, or with k, m or g)", v);
	if (n > ARBORFS_MAX_READAHEAD)
		return invalfc(fc, "readahead=%s: more than %u MiB", v, ARBORFS_MAX_READAHEAD / SZ_1M);
	if (n & (PAGE_SIZE - 1))
		return invalfc(fc, "readahead=%s: not a multiple of the page size (%lu)", v, PAGE_SIZE);
	o->readahead = n;
	return 0;
}

static int arborfs_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	struct arborfs_options *o = fc->fs_private;
	struct fs_parse_result result;
	int opt;

	/* "source" and the generic flags (ro, rw, ...) are the VFS's. */
	if (!strcmp(param->key, "source"))
		return -ENOPARAM;
	opt = fs_parse(fc, arborfs_param_spec, param, &result);
	if (opt == -ENOPARAM)
		return invalfc(fc, "unknown mount option \"%s\"", param->key);
	if (opt < 0)
		return opt;
	switch (opt) {
	case OPT_COMPRESS:
		return arborfs_parse_compress(fc, param->string, o);
	case OPT_NORECOVERY:
		o->norecovery = true;
		return 0;
	case OPT_DISCARD:
		o->discard = !result.negated;
		return 0;
	case OPT_READAHEAD:
		return arborfs_parse_readahead(fc, param->string, o);
	case OPT_ACL:
		o->acl = !result.negated;
		return 0;
	}
	return -EINVAL;
}

static int arborfs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	struct arborfs_sb_info *s;
	struct inode *root;
	int flags = 0, ro = 0;
	void *fs = NULL;
	int err;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	init_rwsem(&s->lock);
	init_waitqueue_head(&s->journal_wait);
	init_waitqueue_head(&s->wb_wait);
	spin_lock_init(&s->wb_lock);
	INIT_LIST_HEAD(&s->wb_pending);
	s->opts = *(struct arborfs_options *)fc->fs_private;
	sb->s_fs_info = s;
	sb->s_magic = ARBORFS_MAGIC;
	sb->s_op = &arborfs_sops;
	sb->s_xattr = arborfs_xattr_handlers;
	sb->s_export_op = &arborfs_export_ops;
	sb->s_time_gran = 1;
	sb->s_time_min = S64_MIN / NSEC_PER_SEC;
	sb->s_time_max = S64_MAX / NSEC_PER_SEC;
	sb->s_maxbytes = MAX_LFS_FILESIZE;
	if (s->opts.acl)
		sb->s_flags |= SB_POSIXACL;
	/*
	 * Writeback writes and checksums the folios in place (no copy): a folio
	 * must not change while it is under writeback, so writers wait for it.
	 */
	sb->s_iflags |= SB_I_STABLE_WRITES;
	if (!sb_set_blocksize(sb, 4096))
		return -EINVAL;
	/*
	 * A bdi of the mount's own instead of the block device's, for its
	 * readahead window (the device's is 128 KiB; arborfs reads a window
	 * with one engine call, so a larger one means fewer, longer reads).
	 * generic_shutdown_super puts whichever bdi s_bdi holds.
	 */
	bdi_put(sb->s_bdi);
	sb->s_bdi = &noop_backing_dev_info;
	err = super_setup_bdi(sb);
	if (err)
		return err;
	sb->s_bdi->ra_pages = (s->opts.readahead < 0 ? ARBORFS_DEFAULT_READAHEAD : s->opts.readahead) >> PAGE_SHIFT;
	sb->s_bdi->io_pages = sb->s_bdi->ra_pages;

	if (fc->sb_flags & SB_SILENT)
		flags |= ARBORFS_MOUNT_SILENT;
	if (fc->sb_flags & SB_RDONLY)
		flags |= ARBORFS_MOUNT_READ_ONLY;
	if (s->opts.norecovery) {
		if (!(fc->sb_flags & SB_RDONLY))
			return invalfc(fc, "norecovery needs a read-only mount (-o ro,norecovery)");
		flags |= ARBORFS_MOUNT_NO_REPLAY;
	}
	ASB(sb)->member.bdev = sb->s_bdev;
	err = ENGINE_CALL(sb, arborfs_rs_mount(sb->s_id, &ASB(sb)->member, bdev_nr_bytes(sb->s_bdev), flags, &fs, &ro));
	if (err)
		return err;
	s->fs = fs;
	{
		struct arborfs_statfs st;

		/*
		 * The VFS's block size is the file system's where the page cache
		 * allows it (1 and 2 KiB blocks): fallocate's shift alignment and
		 * st_blksize come from it. Larger blocks keep the page size.
		 */
		if (!ENGINE_READ(sb, arborfs_rs_statfs, &st) && st.bsize < PAGE_SIZE &&
		    is_power_of_2(st.bsize) && !sb_set_blocksize(sb, st.bsize))
			pr_warn("arborfs: %s: the device cannot do %u-byte blocks; the VFS sees %lu\n", sb->s_id,
				st.bsize, sb->s_blocksize);
	}
	{
		u8 uuid[16];

		ENGINE_CALL(sb, arborfs_rs_uuid(FS(sb), uuid));
		s->read_unit = ENGINE_CALL(sb, arborfs_rs_read_unit(FS(sb)));
		super_set_uuid(sb, uuid, sizeof(uuid));
		super_set_sysfs_name_bdev(sb);
	}
	err = arborfs_apply_options(sb);
	if (err)
		goto out_unmount;
	if (ro && !(fc->sb_flags & SB_RDONLY))
		pr_warn("arborfs: %s: the file system has features this module cannot write; mounted read-only\n",
			sb->s_id);
	if (ro)
		sb->s_flags |= SB_RDONLY;
	root = arborfs_iget(sb, ARBORFS_ROOT_INO);
	if (IS_ERR(root)) {
		err = PTR_ERR(root);
		goto out_unmount;
	}
	sb->s_root = d_make_root(root);
	if (!sb->s_root) {
		err = -ENOMEM;
		goto out_unmount;
	}
	s->shrinker = shrinker_alloc(0, "arborfs-%s", sb->s_id);
	if (s->shrinker) {
		s->shrinker->count_objects = arborfs_cache_count;
		s->shrinker->scan_objects = arborfs_cache_scan;
		s->shrinker->private_data = s;
		shrinker_register(s->shrinker);
	}
	arborfs_note_cache(sb);
	atomic64_set(&s->avail, ENGINE_CALL(sb, arborfs_rs_available(FS(sb))));
	return 0;
out_unmount:
	/* put_super only runs once s_root is set: release the engine here. */
	arborfs_put_super(sb);
	return err;
}

static int arborfs_get_tree(struct fs_context *fc)
{
	if (fc->source && strchr(fc->source, ':')) {
		errorf(fc, "%s: file systems with several devices cannot be mounted yet", fc->source);
		return -EINVAL;
	}
	return get_tree_bdev(fc, arborfs_fill_super);
}

static int arborfs_reconfigure(struct fs_context *fc)
{
	struct super_block *sb = fc->root->d_sb;
	struct arborfs_options *o = fc->fs_private;
	bool want_ro = fc->sb_flags & SB_RDONLY;
	int err, ro = 0;

	sync_filesystem(sb);
	err = arborfs_alive(sb);
	if (err)
		return err;
	if (!want_ro && (o->norecovery || ASB(sb)->opts.norecovery))
		return invalfc(fc, "%s: mounted with norecovery: remount read-write is refused", sb->s_id);
	/* A remount without compress=, [no]discard or readahead= keeps the current setting. */
	if (o->compress >= 0) {
		ASB(sb)->opts.compress = o->compress;
		ASB(sb)->opts.compress_level = o->compress_level;
	}
	if (o->discard >= 0)
		ASB(sb)->opts.discard = o->discard;
	if (o->acl >= 0) {
		ASB(sb)->opts.acl = o->acl;
		sb->s_flags = o->acl ? sb->s_flags | SB_POSIXACL : sb->s_flags & ~SB_POSIXACL;
	}
	/* Files opened from now on take the new window. */
	if (o->readahead >= 0)
		WRITE_ONCE(sb->s_bdi->ra_pages, o->readahead >> PAGE_SHIFT);
	if (want_ro == sb_rdonly(sb))
		return arborfs_apply_options(sb);
	arborfs_wait_journal(sb);
	/* Readahead planned by the engine being replaced finishes with it. */
	flush_workqueue(arborfs_io_wq);
	err = ENGINE_CALL(sb, arborfs_rs_remount(&ASB(sb)->fs, &ASB(sb)->member, bdev_nr_bytes(sb->s_bdev), want_ro, &ro));
	if (err)
		return err;
	err = arborfs_apply_options(sb);
	if (err)
		return err;
	if (!want_ro && ro) {
		errorf(fc, "%s: the file system has features this module cannot write", sb->s_id);
		return -EROFS;
	}
	atomic64_set(&ASB(sb)->avail, ENGINE_CALL(sb, arborfs_rs_available(FS(sb))));
	pr_info("arborfs: %s: remounted %s\n", sb->s_id, want_ro ? "read-only" : "read-write");
	return 0;
}

static void arborfs_free_fc(struct fs_context *fc)
{
	kfree(fc->fs_private);
}

static const struct fs_context_operations arborfs_context_ops = {
	.parse_param = arborfs_parse_param,
	.get_tree = arborfs_get_tree,
	.reconfigure = arborfs_reconfigure,
	.free = arborfs_free_fc,
};

static int arborfs_init_fs_context(struct fs_context *fc)
{
	struct arborfs_options *o = kzalloc(sizeof(*o), GFP_KERNEL);

	if (!o)
		return -ENOMEM;
	o->compress = -1;
	o->discard = -1;
	o->readahead = -1;
	o->acl = -1;
	fc->fs_private = o;
	fc->ops = &arborfs_context_ops;
	return 0;
}

static void arborfs_kill_sb(struct super_block *sb)
{
	struct arborfs_sb_info *s = ASB(sb);

	kill_block_super(sb);
	kfree(s);
}

static struct file_system_type arborfs_fs_type = {
	.owner = THIS_MODULE,
	.name = "arborfs",
	.init_fs_context = arborfs_init_fs_context,
	.kill_sb = arborfs_kill_sb,
	/* Every inode operation honours the mount's idmap (namei.c, inode.c). */
	.fs_flags = FS_REQUIRES_DEV | FS_ALLOW_IDMAP,
};

/* /sys/fs/arborfs/features: what the module reads and writes (arborfs version). */
static struct kobject *arborfs_kobj;

static ssize_t features_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	return arborfs_rs_features(buf, PAGE_SIZE);
}

static struct kobj_attribute arborfs_features_attr = __ATTR_RO(features);

static struct attribute *arborfs_attrs[] = { &arborfs_features_attr.attr, NULL };
static const struct attribute_group arborfs_attr_group = { .attrs = arborfs_attrs };

int arborfs_glue_register(void)
{
	int err;

	arborfs_kobj = kobject_create_and_add("arborfs", fs_kobj);
	if (!arborfs_kobj)
		return -ENOMEM;
	err = sysfs_create_group(arborfs_kobj, &arborfs_attr_group);
	if (err) {
		kobject_put(arborfs_kobj);
		return err;
	}

	arborfs_inode_cachep = kmem_cache_create("arborfs_inode", sizeof(struct arborfs_inode), 0,
						 SLAB_RECLAIM_ACCOUNT | SLAB_ACCOUNT, arborfs_inode_init_once);
	if (!arborfs_inode_cachep) {
		err = -ENOMEM;
		goto out_kobj;
	}
	err = arborfs_io_init();
	if (err)
		goto out_cache;
	err = arborfs_file_init();
	if (err)
		goto out_io;
	err = register_filesystem(&arborfs_fs_type);
	if (!err)
		return 0;
	arborfs_file_exit();
out_io:
	arborfs_io_exit();
out_cache:
	kmem_cache_destroy(arborfs_inode_cachep);
out_kobj:
	kobject_put(arborfs_kobj);
	return err;
}

void arborfs_glue_unregister(void)
{
	unregister_filesystem(&arborfs_fs_type);
	arborfs_io_exit();
	arborfs_file_exit();
	/* Inodes freed through RCU must be gone before their cache. */
	rcu_barrier();
	kmem_cache_destroy(arborfs_inode_cachep);
	kobject_put(arborfs_kobj);
}

MODULE_ALIAS_FS("arborfs");
