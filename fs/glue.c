// SPDX-License-Identifier: GPL-2.0
/*
 * arborfs C glue: the VFS object plumbing that Rust bindings do not reach in
 * 6.12 (fs_context, operation tables, static inlines such as dir_emit and
 * kmap_local_folio), block I/O with bios, the clock and the kernel's
 * lz4/zstd. All file system logic is in the Rust engine (arborfs_rs_*), which
 * is called with the per-mount mutex held inside a memalloc_nofs scope, so
 * reclaim never re-enters the file system. Lock order: folio lock, then the
 * engine mutex; the engine never takes folio locks, and nothing is copied to
 * user space while the mutex is held.
 */
#include <linux/module.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/blkdev.h>
#include <linux/pagemap.h>
#include <linux/xattr.h>
#include <linux/statfs.h>
#include <linux/slab.h>
#include <linux/mutex.h>
#include <linux/sched/mm.h>
#include <linux/lz4.h>
#include <linux/zstd.h>
#include <linux/vmalloc.h>
#include <linux/timekeeping.h>
#include <linux/highmem.h>
#include <linux/namei.h>

#include "glue.h"

#define ARBORFS_MAGIC 0x41524246 /* "ARBF" */
#define ARBORFS_ROOT_INO 4096

/* Attributes the engine returns for an inode. Layout shared with fs/arborfs.rs. */
struct arborfs_attr {
	u64 size;
	u64 alloc_bytes;
	s64 atime, mtime, ctime, btime;
	u64 rdev;
	u32 mode, uid, gid, nlink, generation, flags;
};

/* One directory entry handed from the engine to iterate_shared. */
struct arborfs_dirent {
	u64 ino;
	u64 next;
	u8 dtype;
	u8 len;
	char name[256];
};

struct arborfs_statfs {
	u64 blocks, bfree, bavail, files, ffree;
	u32 bsize, namelen;
};

/* Implemented in Rust (fs/arborfs.rs). Return 0 or a negative errno. */
int arborfs_rs_mount(const char *id, void *bdev, u64 size, int silent, void **fs);
void arborfs_rs_unmount(void *fs);
int arborfs_rs_getattr(void *fs, u64 ino, struct arborfs_attr *out);
int arborfs_rs_lookup(void *fs, u64 dir, const u8 *name, size_t len, u64 *ino);
int arborfs_rs_readdir(void *fs, u64 dir, u64 pos, struct arborfs_dirent *out, size_t max, size_t *n);
ssize_t arborfs_rs_read(void *fs, u64 ino, u64 off, u8 *buf, size_t len);
ssize_t arborfs_rs_readlink(void *fs, u64 ino, u8 *buf, size_t len);
int arborfs_rs_statfs(void *fs, struct arborfs_statfs *out);
ssize_t arborfs_rs_getxattr(void *fs, u64 ino, const u8 *name, size_t namelen, u8 *buf, size_t size);
ssize_t arborfs_rs_listxattr(void *fs, u64 ino, u8 *buf, size_t size);

struct arborfs_sb_info {
	struct mutex lock;
	void *fs;
};

static inline struct arborfs_sb_info *ASB(struct super_block *sb)
{
	return sb->s_fs_info;
}

/* Enter the engine: take the mount's mutex inside a NOFS allocation scope. */
#define ENGINE_CALL(sb, expr)                                   \
	({                                                      \
		struct arborfs_sb_info *__s = ASB(sb);          \
		unsigned int __nofs;                            \
		typeof(expr) __r;                               \
		mutex_lock(&__s->lock);                         \
		__nofs = memalloc_nofs_save();                  \
		__r = (expr);                                   \
		memalloc_nofs_restore(__nofs);                  \
		mutex_unlock(&__s->lock);                       \
		__r;                                            \
	})

/* ---- services the Rust platform layer calls ---- */

s64 arborfs_glue_now_ns(void)
{
	return ktime_get_real_ns();
}

/*
 * Synchronous block I/O with bios on the device the mount opened. The engine
 * issues only sector-aligned offsets and lengths; buffers come from kmalloc
 * or vmalloc (kvmalloc), so pages are looked up one by one.
 */
static int arborfs_bdev_rw(struct block_device *bdev, u8 *buf, size_t len, u64 off, blk_opf_t op)
{
	if ((off | len) & (SECTOR_SIZE - 1))
		return -EINVAL;
	while (len) {
		unsigned int nr = min_t(size_t, DIV_ROUND_UP(len + offset_in_page(buf), PAGE_SIZE), BIO_MAX_VECS);
		struct bio *bio = bio_alloc(bdev, nr, op, GFP_NOIO);
		int err;

		bio->bi_iter.bi_sector = off >> SECTOR_SHIFT;
		while (len) {
			size_t chunk = min_t(size_t, len, PAGE_SIZE - offset_in_page(buf));
			struct page *page = is_vmalloc_addr(buf) ? vmalloc_to_page(buf) : virt_to_page(buf);

			if (bio_add_page(bio, page, chunk, offset_in_page(buf)) != chunk)
				break;
			buf += chunk;
			off += chunk;
			len -= chunk;
		}
		err = submit_bio_wait(bio);
		bio_put(bio);
		if (err)
			return err;
	}
	return 0;
}

int arborfs_glue_bdev_read(void *bdev, u8 *buf, size_t len, u64 off)
{
	return arborfs_bdev_rw(bdev, buf, len, off, REQ_OP_READ);
}

int arborfs_glue_bdev_write(void *bdev, const u8 *buf, size_t len, u64 off)
{
	return arborfs_bdev_rw(bdev, (u8 *)buf, len, off, REQ_OP_WRITE);
}

int arborfs_glue_bdev_flush(void *bdev)
{
	return blkdev_issue_flush(bdev);
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

/* ---- inodes ---- */

static const struct inode_operations arborfs_dir_iops;
static const struct file_operations arborfs_dir_fops;
static const struct inode_operations arborfs_file_iops;
static const struct file_operations arborfs_file_fops;
static const struct inode_operations arborfs_symlink_iops;
static const struct inode_operations arborfs_special_iops;
static const struct address_space_operations arborfs_aops;

static struct timespec64 ns_to_ts(s64 ns)
{
	return ns_to_timespec64(ns);
}

static struct inode *arborfs_iget(struct super_block *sb, u64 ino)
{
	struct arborfs_attr a;
	struct inode *inode;
	int err;

	inode = iget_locked(sb, ino);
	if (!inode)
		return ERR_PTR(-ENOMEM);
	if (!(inode->i_state & I_NEW))
		return inode;

	err = ENGINE_CALL(sb, arborfs_rs_getattr(ASB(sb)->fs, ino, &a));
	if (err)
		goto fail;
	inode->i_mode = a.mode;
	i_uid_write(inode, a.uid);
	i_gid_write(inode, a.gid);
	set_nlink(inode, a.nlink);
	i_size_write(inode, a.size);
	inode->i_blocks = a.alloc_bytes >> 9;
	inode_set_atime_to_ts(inode, ns_to_ts(a.atime));
	inode_set_mtime_to_ts(inode, ns_to_ts(a.mtime));
	inode_set_ctime_to_ts(inode, ns_to_ts(a.ctime));
	inode->i_generation = a.generation;

	switch (a.mode & S_IFMT) {
	case S_IFDIR:
		inode->i_op = &arborfs_dir_iops;
		inode->i_fop = &arborfs_dir_fops;
		break;
	case S_IFREG:
		inode->i_op = &arborfs_file_iops;
		inode->i_fop = &arborfs_file_fops;
		inode->i_mapping->a_ops = &arborfs_aops;
		break;
	case S_IFLNK: {
		char *target = kmalloc(a.size + 1, GFP_KERNEL);
		ssize_t n;

		if (!target) {
			err = -ENOMEM;
			goto fail;
		}
		n = ENGINE_CALL(sb, arborfs_rs_readlink(ASB(sb)->fs, ino, target, a.size));
		if (n < 0 || n != a.size) {
			kfree(target);
			err = n < 0 ? n : -EUCLEAN;
			goto fail;
		}
		target[n] = 0;
		inode->i_link = target;
		inode->i_op = &arborfs_symlink_iops;
		break;
	}
	default:
		inode->i_op = &arborfs_special_iops;
		init_special_inode(inode, a.mode, new_decode_dev(a.rdev));
		break;
	}
	unlock_new_inode(inode);
	return inode;
fail:
	iget_failed(inode);
	return ERR_PTR(err);
}

static struct dentry *arborfs_lookup(struct inode *dir, struct dentry *dentry, unsigned int flags)
{
	struct inode *inode = NULL;
	u64 ino;
	int err;

	if (dentry->d_name.len > 255)
		return ERR_PTR(-ENAMETOOLONG);
	err = ENGINE_CALL(dir->i_sb, arborfs_rs_lookup(ASB(dir->i_sb)->fs, dir->i_ino,
			  dentry->d_name.name, dentry->d_name.len, &ino));
	if (err == 0)
		inode = arborfs_iget(dir->i_sb, ino);
	else if (err != -ENOENT)
		return ERR_PTR(err);
	return d_splice_alias(inode, dentry);
}

#define DIRENT_BATCH 32

static int arborfs_iterate(struct file *file, struct dir_context *ctx)
{
	struct inode *inode = file_inode(file);
	struct super_block *sb = inode->i_sb;
	struct arborfs_dirent *batch;
	size_t n, i;
	int err = 0;

	if (!dir_emit_dots(file, ctx))
		return 0;
	batch = kvmalloc_array(DIRENT_BATCH, sizeof(*batch), GFP_KERNEL);
	if (!batch)
		return -ENOMEM;
	for (;;) {
		/* Collect under the engine lock, emit (copy to user) outside it. */
		err = ENGINE_CALL(sb, arborfs_rs_readdir(ASB(sb)->fs, inode->i_ino, ctx->pos,
				  batch, DIRENT_BATCH, &n));
		if (err || n == 0)
			break;
		for (i = 0; i < n; i++) {
			if (!dir_emit(ctx, batch[i].name, batch[i].len, batch[i].ino, batch[i].dtype))
				goto out;
			ctx->pos = batch[i].next;
		}
	}
out:
	kvfree(batch);
	return err;
}

static int arborfs_read_folio(struct file *file, struct folio *folio)
{
	struct inode *inode = folio->mapping->host;
	struct super_block *sb = inode->i_sb;
	size_t len = folio_size(folio);
	loff_t pos = folio_pos(folio);
	ssize_t n = 0;
	u8 *addr;
	int err = 0;

	/* Folios of this file system are not in highmem on 64-bit; map page by page anyway. */
	addr = kmap_local_folio(folio, 0);
	if (pos < i_size_read(inode) && folio_test_large(folio) == false)
		n = ENGINE_CALL(sb, arborfs_rs_read(ASB(sb)->fs, inode->i_ino, pos, addr, len));
	else if (pos < i_size_read(inode))
		n = -EOPNOTSUPP;
	if (n < 0) {
		err = n;
		n = 0;
	}
	memset(addr + n, 0, len - n);
	kunmap_local(addr);
	if (!err)
		folio_mark_uptodate(folio);
	folio_unlock(folio);
	return err;
}

static int arborfs_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	struct super_block *sb = dentry->d_sb;
	struct arborfs_statfs s;
	int err = ENGINE_CALL(sb, arborfs_rs_statfs(ASB(sb)->fs, &s));

	if (err)
		return err;
	buf->f_type = ARBORFS_MAGIC;
	buf->f_bsize = s.bsize;
	buf->f_blocks = s.blocks;
	buf->f_bfree = s.bfree;
	buf->f_bavail = s.bavail;
	buf->f_files = s.files;
	buf->f_ffree = s.ffree;
	buf->f_namelen = s.namelen;
	buf->f_fsid = u64_to_fsid(huge_encode_dev(sb->s_bdev->bd_dev));
	return 0;
}

static ssize_t arborfs_listxattr(struct dentry *dentry, char *buf, size_t size)
{
	struct super_block *sb = dentry->d_sb;

	return ENGINE_CALL(sb, arborfs_rs_listxattr(ASB(sb)->fs, d_inode(dentry)->i_ino, buf, size));
}

static int arborfs_xattr_get(const struct xattr_handler *h, struct dentry *unused,
			     struct inode *inode, const char *name, void *buf, size_t size)
{
	struct super_block *sb = inode->i_sb;
	char full[XATTR_NAME_MAX + 1];
	int len = snprintf(full, sizeof(full), "%s%s", h->prefix, name);

	if (len >= sizeof(full))
		return -ERANGE;
	return ENGINE_CALL(sb, arborfs_rs_getxattr(ASB(sb)->fs, inode->i_ino, full, len, buf, size));
}

static const struct xattr_handler arborfs_user_xattr = { .prefix = XATTR_USER_PREFIX, .get = arborfs_xattr_get };
static const struct xattr_handler arborfs_trusted_xattr = { .prefix = XATTR_TRUSTED_PREFIX, .get = arborfs_xattr_get };
static const struct xattr_handler arborfs_security_xattr = { .prefix = XATTR_SECURITY_PREFIX, .get = arborfs_xattr_get };
static const struct xattr_handler * const arborfs_xattr_handlers[] = {
	&arborfs_user_xattr, &arborfs_trusted_xattr, &arborfs_security_xattr, NULL
};

static const struct inode_operations arborfs_dir_iops = {
	.lookup = arborfs_lookup,
	.listxattr = arborfs_listxattr,
};
static const struct file_operations arborfs_dir_fops = {
	.read = generic_read_dir,
	.iterate_shared = arborfs_iterate,
	.llseek = generic_file_llseek,
};
static const struct inode_operations arborfs_file_iops = {
	.listxattr = arborfs_listxattr,
};
static const struct file_operations arborfs_file_fops = {
	.llseek = generic_file_llseek,
	.read_iter = generic_file_read_iter,
	.mmap = generic_file_readonly_mmap,
	.splice_read = filemap_splice_read,
};
static const struct inode_operations arborfs_symlink_iops = {
	.get_link = simple_get_link,
	.listxattr = arborfs_listxattr,
};
static const struct inode_operations arborfs_special_iops = {
	.listxattr = arborfs_listxattr,
};
static const struct address_space_operations arborfs_aops = {
	.read_folio = arborfs_read_folio,
};

/* ---- super block ---- */

static void arborfs_free_inode(struct inode *inode)
{
	if (S_ISLNK(inode->i_mode))
		kfree(inode->i_link);
	free_inode_nonrcu(inode);
}

static void arborfs_put_super(struct super_block *sb)
{
	struct arborfs_sb_info *s = ASB(sb);

	if (s->fs)
		ENGINE_CALL(sb, (arborfs_rs_unmount(s->fs), 0));
	s->fs = NULL;
}

static const struct super_operations arborfs_sops = {
	.free_inode = arborfs_free_inode,
	.put_super = arborfs_put_super,
	.statfs = arborfs_statfs,
};

static int arborfs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	struct arborfs_sb_info *s;
	struct inode *root;
	void *fs = NULL;
	int err;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	mutex_init(&s->lock);
	sb->s_fs_info = s;
	sb->s_magic = ARBORFS_MAGIC;
	sb->s_op = &arborfs_sops;
	sb->s_xattr = arborfs_xattr_handlers;
	sb->s_time_gran = 1;
	sb->s_maxbytes = MAX_LFS_FILESIZE;
	sb->s_flags |= SB_RDONLY | SB_NOATIME;
	if (!sb_set_blocksize(sb, 4096))
		return -EINVAL;

	err = ENGINE_CALL(sb, arborfs_rs_mount(sb->s_id, sb->s_bdev, bdev_nr_bytes(sb->s_bdev),
			  fc->sb_flags & SB_SILENT, &fs));
	if (err)
		return err;
	s->fs = fs;
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
	return 0;
out_unmount:
	/* put_super only runs once s_root is set: release the engine here. */
	arborfs_put_super(sb);
	return err;
}

static int arborfs_get_tree(struct fs_context *fc)
{
	if (fc->source && strchr(fc->source, ':')) {
		errorf(fc, "arborfs: %s: file systems with several devices cannot be mounted yet", fc->source);
		return -EINVAL;
	}
	if (!(fc->sb_flags & SB_RDONLY)) {
		pr_warn("arborfs: %s: read-write mounts are not supported yet; mounting read-only\n",
			fc->source ? fc->source : "?");
		fc->sb_flags |= SB_RDONLY;
	}
	return get_tree_bdev(fc, arborfs_fill_super);
}

static int arborfs_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	/* "source" and the generic flags (ro, rw, ...) are handled by the VFS. */
	if (strcmp(param->key, "source") == 0)
		return -ENOPARAM;
	return invalfc(fc, "arborfs: unknown mount option \"%s\"", param->key);
}

static void arborfs_free_fc(struct fs_context *fc)
{
}

static const struct fs_context_operations arborfs_context_ops = {
	.parse_param = arborfs_parse_param,
	.get_tree = arborfs_get_tree,
	.free = arborfs_free_fc,
};

static int arborfs_init_fs_context(struct fs_context *fc)
{
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
	.fs_flags = FS_REQUIRES_DEV,
};

int arborfs_glue_register(void)
{
	return register_filesystem(&arborfs_fs_type);
}

void arborfs_glue_unregister(void)
{
	unregister_filesystem(&arborfs_fs_type);
	rcu_barrier();
}

MODULE_ALIAS_FS("arborfs");
