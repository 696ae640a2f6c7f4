// SPDX-License-Identifier: GPL-2.0
/*
 * Inodes: loading them from the engine, keeping the VFS copy of their
 * attributes in step with it (setattr, write_inode, eviction), file flags,
 * extended attributes and POSIX ACLs.
 *
 * The engine owns the attributes. The VFS inode is a cache of them, except
 * for the timestamps the VFS changes itself (file_update_time, touch_atime):
 * those mark the inode dirty and write_inode hands them to the engine.
 */
#include <linux/fs.h>
#include <linux/overflow.h>
#include <linux/fileattr.h>
#include <linux/pagemap.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <linux/slab.h>
#include <linux/xattr.h>

#include "arborfs.h"

static struct timespec64 ns_to_ts(s64 ns)
{
	return ns_to_timespec64(ns);
}

/*
 * Exact over the whole range s_time_min..s_time_max (timespec64_to_ns
 * saturates at its bounds, which are the super block's: -9223372036 s would
 * come back a second early, generic/402).
 */
static s64 ts_to_ns(struct timespec64 ts)
{
	s64 ns;

	if (check_mul_overflow((s64)ts.tv_sec, (s64)NSEC_PER_SEC, &ns) || check_add_overflow(ns, (s64)ts.tv_nsec, &ns))
		return ts.tv_sec < 0 ? S64_MIN : S64_MAX;
	return ns;
}

/* The FS_*_FL bits the engine stores map to these inode flags. */
static void arborfs_set_flags(struct inode *inode, u32 flags)
{
	unsigned int f = 0;

	if (flags & FS_IMMUTABLE_FL)
		f |= S_IMMUTABLE;
	if (flags & FS_APPEND_FL)
		f |= S_APPEND;
	if (flags & FS_NOATIME_FL)
		f |= S_NOATIME;
	if (flags & FS_SYNC_FL)
		f |= S_SYNC;
	inode_set_flags(inode, f, S_IMMUTABLE | S_APPEND | S_NOATIME | S_SYNC);
}

/* The VFS times of an inode. */
void arborfs_vfs_times(struct inode *inode, struct arborfs_times *t)
{
	t->atime = ts_to_ns(inode_get_atime(inode));
	t->mtime = ts_to_ns(inode_get_mtime(inode));
	t->ctime = ts_to_ns(inode_get_ctime(inode));
}

/*
 * The engine now holds times t for the inode (it was given them, or gave
 * them): write_inode has nothing to hand it while the VFS times are these.
 */
void arborfs_note_times(struct inode *inode, const struct arborfs_times *t)
{
	spin_lock(&inode->i_lock);
	AI(inode)->held = *t;
	AI(inode)->times_held = true;
	spin_unlock(&inode->i_lock);
}

/* Whether the engine holds times t for the inode already. */
static bool arborfs_times_held(struct inode *inode, const struct arborfs_times *t)
{
	struct arborfs_inode *ai = AI(inode);
	bool held;

	spin_lock(&inode->i_lock);
	held = ai->times_held && arborfs_times_equal(&ai->held, t);
	spin_unlock(&inode->i_lock);
	return held;
}

/* Have a setattr hand the engine times t. */
static void arborfs_setattr_times(struct arborfs_setattr *s, const struct arborfs_times *t)
{
	s->valid |= ARBORFS_SET_ATIME | ARBORFS_SET_MTIME | ARBORFS_SET_CTIME;
	s->atime = t->atime;
	s->mtime = t->mtime;
	s->ctime = t->ctime;
}

/* Copy what the engine says into the VFS inode (all but i_size of files with cached data). */
void arborfs_apply_attr(struct inode *inode, const struct arborfs_attr *a)
{
	const struct arborfs_times engine = { .atime = a->atime, .mtime = a->mtime, .ctime = a->ctime };

	inode->i_mode = a->mode;
	i_uid_write(inode, a->uid);
	i_gid_write(inode, a->gid);
	set_nlink(inode, a->nlink);
	if (!S_ISREG(a->mode) || !inode->i_mapping->nrpages)
		i_size_write(inode, a->size);
	arborfs_set_blocks(inode, a->alloc_bytes);
	inode_set_atime_to_ts(inode, ns_to_ts(a->atime));
	inode_set_mtime_to_ts(inode, ns_to_ts(a->mtime));
	inode_set_ctime_to_ts(inode, ns_to_ts(a->ctime));
	inode->i_generation = a->generation;
	arborfs_set_flags(inode, a->flags);
	AI(inode)->btime = a->btime;
	AI(inode)->flags = a->flags;
	AI(inode)->projid = a->projid;
	arborfs_note_times(inode, &engine);
}

/* Give a new in-core inode (I_NEW) its attributes and operations. */
static int arborfs_setup_inode(struct inode *inode, const struct arborfs_attr *a, const char *link)
{
	arborfs_apply_attr(inode, a);
	i_size_write(inode, a->size);
	switch (a->mode & S_IFMT) {
	case S_IFDIR:
		inode->i_op = &arborfs_dir_iops;
		inode->i_fop = &arborfs_dir_fops;
		break;
	case S_IFREG:
		inode->i_op = &arborfs_file_iops;
		inode->i_fop = &arborfs_file_fops;
		inode->i_mapping->a_ops = &arborfs_aops;
		arborfs_set_large_folios(inode);
		break;
	case S_IFLNK:
		inode->i_link = kmemdup_nul(link, a->size, GFP_KERNEL);
		if (!inode->i_link)
			return -ENOMEM;
		inode->i_op = &arborfs_symlink_iops;
		break;
	default:
		inode->i_op = &arborfs_special_iops;
		init_special_inode(inode, a->mode, new_decode_dev(a->rdev));
		break;
	}
	return 0;
}

/* Read a symlink's target (a->size bytes) into a new buffer. */
static char *arborfs_read_link(struct super_block *sb, const struct arborfs_attr *a)
{
	char *target = kmalloc(a->size + 1, GFP_KERNEL);
	ssize_t n;

	if (!target)
		return ERR_PTR(-ENOMEM);
	n = ENGINE_READ(sb, arborfs_rs_readlink, a->ino, target, a->size);
	if (n < 0 || n != a->size) {
		kfree(target);
		return ERR_PTR(n < 0 ? n : -EUCLEAN);
	}
	target[n] = 0;
	return target;
}

struct inode *arborfs_iget(struct super_block *sb, u64 ino)
{
	struct arborfs_attr a;
	struct inode *inode;
	char *link = NULL;
	int err;

	inode = iget_locked(sb, ino);
	if (!inode)
		return ERR_PTR(-ENOMEM);
	if (!(inode->i_state & I_NEW))
		return inode;

	err = arborfs_alive(sb) ?: ENGINE_READ(sb, arborfs_rs_getattr, ino, &a);
	if (err)
		goto fail;
	if (S_ISLNK(a.mode)) {
		link = arborfs_read_link(sb, &a);
		if (IS_ERR(link)) {
			err = PTR_ERR(link);
			goto fail;
		}
	}
	err = arborfs_setup_inode(inode, &a, link);
	kfree(link);
	if (err)
		goto fail;
	unlock_new_inode(inode);
	return inode;
fail:
	iget_failed(inode);
	return ERR_PTR(err);
}

/* The in-core inode for one the engine just created. */
struct inode *arborfs_new_inode(struct super_block *sb, const struct arborfs_attr *a, const char *link)
{
	struct inode *inode = iget_locked(sb, a->ino);
	int err;

	if (!inode)
		return ERR_PTR(-ENOMEM);
	if (!(inode->i_state & I_NEW)) {
		/* A stale in-core inode with this number cannot exist: numbers are not reused while cached. */
		iput(inode);
		return ERR_PTR(-EUCLEAN);
	}
	err = arborfs_setup_inode(inode, a, link);
	if (err) {
		iget_failed(inode);
		return ERR_PTR(err);
	}
	unlock_new_inode(inode);
	return inode;
}

/* Reload link count and change times after a namespace operation changed them. */
int arborfs_refresh(struct inode *inode)
{
	struct super_block *sb = inode->i_sb;
	struct arborfs_attr a;
	int err = ENGINE_READ(sb, arborfs_rs_getattr, inode->i_ino, &a);

	if (err == -ENOENT) {
		clear_nlink(inode);
		return 0;
	}
	if (err)
		return err;
	set_nlink(inode, a.nlink);
	inode_set_ctime_to_ts(inode, ns_to_ts(a.ctime));
	if (S_ISDIR(inode->i_mode)) {
		inode_set_mtime_to_ts(inode, ns_to_ts(a.mtime));
		i_size_write(inode, a.size);
	}
	return 0;
}

/* ---- setattr, getattr, write_inode, eviction ---- */

/*
 * Hand attribute changes to the engine; the blocks count follows what it
 * reports. A size change takes several transactions: made exclusively.
 */
static int arborfs_engine_setattr(struct inode *inode, struct arborfs_setattr *s)
{
	struct super_block *sb = inode->i_sb;
	struct arborfs_attr a;
	int err = arborfs_alive(sb);

	if (!err && (s->valid & ARBORFS_SET_SIZE))
		err = ENGINE_WRITE(sb, arborfs_rs_setattr(FS(sb), false, NULL, NULL, inode->i_ino, s, &a));
	else if (!err)
		err = ENGINE_CHANGE(sb, arborfs_rs_setattr, inode->i_ino, s, &a);

	if (!err)
		arborfs_set_blocks(inode, a.alloc_bytes);
	return err;
}

int arborfs_setattr(struct mnt_idmap *idmap, struct dentry *dentry, struct iattr *attr)
{
	struct inode *inode = d_inode(dentry);
	struct arborfs_setattr s = { 0 };
	struct arborfs_times t;
	unsigned int valid = attr->ia_valid;
	int err;

	err = setattr_prepare(idmap, dentry, attr);
	if (err)
		return err;
	err = arborfs_alive(inode->i_sb);
	if (err)
		return err;
	if (valid & ATTR_SIZE) {
		if (attr->ia_size != i_size_read(inode)) {
			/* truncate(2) leaves the times of a size change to the file system (as xfs_setattr_size does). */
			if (!(valid & (ATTR_CTIME | ATTR_MTIME))) {
				attr->ia_ctime = attr->ia_mtime = current_time(inode);
				attr->ia_valid |= ATTR_CTIME | ATTR_MTIME;
				valid = attr->ia_valid;
			}
			inode_dio_wait(inode);
			/*
			 * Page cache first: once i_size is the new size, writeback can
			 * no longer extend the file past it behind the engine's back.
			 */
			truncate_setsize(inode, attr->ia_size);
		} else {
			/*
			 * The same size still frees preallocation past it, as on ext4
			 * and xfs (generic/092); the engine's size must include the
			 * cached data first, or it would take this for growing the file.
			 */
			err = filemap_write_and_wait(inode->i_mapping);
			if (err)
				return err;
		}
		s.valid |= ARBORFS_SET_SIZE;
		s.size = attr->ia_size;
	}
	setattr_copy(idmap, inode, attr);
	if (valid & ATTR_MODE) {
		s.valid |= ARBORFS_SET_MODE;
		s.mode = inode->i_mode;
	}
	if (valid & ATTR_UID) {
		s.valid |= ARBORFS_SET_UID;
		s.uid = i_uid_read(inode);
	}
	if (valid & ATTR_GID) {
		s.valid |= ARBORFS_SET_GID;
		s.gid = i_gid_read(inode);
	}
	arborfs_vfs_times(inode, &t);
	arborfs_setattr_times(&s, &t);
	err = arborfs_engine_setattr(inode, &s);
	if (!err) {
		arborfs_note_times(inode, &t);
	} else {
		/* Put the VFS copy back to what the engine holds. */
		struct arborfs_attr a;

		if (!ENGINE_READ(inode->i_sb, arborfs_rs_getattr, inode->i_ino, &a))
			arborfs_apply_attr(inode, &a);
		return err;
	}
	if (valid & ATTR_MODE)
		err = posix_acl_chmod(idmap, dentry, inode->i_mode);
	return err;
}

int arborfs_getattr(struct mnt_idmap *idmap, const struct path *path, struct kstat *stat,
			   u32 request_mask, unsigned int flags)
{
	struct inode *inode = d_inode(path->dentry);
	struct arborfs_inode *ai = AI(inode);
	u32 fl = READ_ONCE(ai->flags);

	generic_fillattr(idmap, request_mask, inode, stat);
	/* Dirty data not yet written over holes: what writeback will add. */
	stat->blocks += DIV_ROUND_UP(arborfs_new_dirty_bytes(inode), 512);
	if (request_mask & STATX_BTIME) {
		stat->result_mask |= STATX_BTIME;
		stat->btime = ns_to_ts(ai->btime);
	}
	if (fl & FS_IMMUTABLE_FL)
		stat->attributes |= STATX_ATTR_IMMUTABLE;
	if (fl & FS_APPEND_FL)
		stat->attributes |= STATX_ATTR_APPEND;
	if (fl & FS_NODUMP_FL)
		stat->attributes |= STATX_ATTR_NODUMP;
	if (fl & FS_COMPR_FL)
		stat->attributes |= STATX_ATTR_COMPRESSED;
	stat->attributes_mask |= STATX_ATTR_IMMUTABLE | STATX_ATTR_APPEND | STATX_ATTR_NODUMP |
				 STATX_ATTR_COMPRESSED;
	return 0;
}

/*
 * Hand the timestamps the VFS changed (write, mmap, atime) to the engine,
 * unless it holds them already: the commit of the file's last writeback
 * gave them (arborfs_wb_times), so an fsync after a write costs no
 * transaction of its own for them.
 */
int arborfs_write_inode(struct inode *inode, struct writeback_control *wbc)
{
	struct arborfs_times t;
	struct arborfs_setattr s = { 0 };
	int err;

	if (sb_rdonly(inode->i_sb))
		return 0;
	arborfs_vfs_times(inode, &t);
	if (arborfs_times_held(inode, &t)) {
		atomic64_inc(&ASB(inode->i_sb)->times_held);
		return 0;
	}
	arborfs_setattr_times(&s, &t);
	err = arborfs_engine_setattr(inode, &s);
	if (!err)
		arborfs_note_times(inode, &t);
	return err == -ENOENT ? 0 : err;
}

void arborfs_evict_inode(struct inode *inode)
{
	struct super_block *sb = inode->i_sb;

	truncate_inode_pages_final(&inode->i_data);
	clear_inode(inode);
	if (inode->i_nlink || is_bad_inode(inode) || arborfs_alive(sb) || sb_rdonly(sb))
		return;
	/* Unlinked and closed: delete it (a failure leaves it to the next mount's orphan pass). */
	sb_start_intwrite(sb);
	ENGINE_WRITE(sb, arborfs_rs_evict(FS(sb), inode->i_ino));
	sb_end_intwrite(sb);
}

/* ---- FS_IOC_GETFLAGS / SETFLAGS, FS_IOC_FSGETXATTR / FSSETXATTR ---- */

#define ARBORFS_FL_USER (FS_IMMUTABLE_FL | FS_APPEND_FL | FS_NODUMP_FL | FS_NOATIME_FL | FS_SYNC_FL | \
			 FS_COMPR_FL | FS_PROJINHERIT_FL)
#define ARBORFS_XFLAGS_USER (FS_XFLAG_IMMUTABLE | FS_XFLAG_APPEND | FS_XFLAG_NODUMP | FS_XFLAG_NOATIME | \
			     FS_XFLAG_SYNC | FS_XFLAG_PROJINHERIT)

int arborfs_fileattr_get(struct dentry *dentry, struct fileattr *fa)
{
	struct inode *inode = d_inode(dentry);
	struct super_block *sb = inode->i_sb;
	struct arborfs_attr a;
	int err = arborfs_alive(sb) ?: ENGINE_READ(sb, arborfs_rs_getattr, inode->i_ino, &a);

	if (err)
		return err;
	fileattr_fill_flags(fa, a.flags & ARBORFS_FL_USER);
	fa->fsx_projid = a.projid;
	return 0;
}

int arborfs_fileattr_set(struct mnt_idmap *idmap, struct dentry *dentry, struct fileattr *fa)
{
	struct inode *inode = d_inode(dentry);
	struct arborfs_setattr s = { .valid = ARBORFS_SET_FLAGS | ARBORFS_SET_CTIME };
	struct timespec64 now;
	int err;

	if (fa->flags & ~ARBORFS_FL_USER)
		return -EOPNOTSUPP;
	if (fileattr_has_fsx(fa)) {
		/* Extent size hints and the rest of XFS's flags have no meaning here. */
		if (fa->fsx_xflags & ~ARBORFS_XFLAGS_USER || fa->fsx_extsize || fa->fsx_cowextsize)
			return -EOPNOTSUPP;
		s.valid |= ARBORFS_SET_PROJID;
		s.projid = fa->fsx_projid;
	}
	if ((fa->flags & FS_PROJINHERIT_FL) && !S_ISDIR(inode->i_mode))
		return -EINVAL;
	now = current_time(inode);
	s.flags = fa->flags;
	s.ctime = ts_to_ns(now);
	err = arborfs_engine_setattr(inode, &s);
	if (err)
		return err;
	arborfs_set_flags(inode, fa->flags);
	WRITE_ONCE(AI(inode)->flags, fa->flags);
	if (fileattr_has_fsx(fa))
		AI(inode)->projid = fa->fsx_projid;
	inode_set_ctime_to_ts(inode, now);
	return 0;
}

/* ---- extended attributes ---- */

ssize_t arborfs_listxattr(struct dentry *dentry, char *buf, size_t size)
{
	struct super_block *sb = dentry->d_sb;

	if (READ_ONCE(AI(d_inode(dentry))->no_xattrs))
		return arborfs_alive(sb);
	return arborfs_alive(sb) ?:
		ENGINE_READ(sb, arborfs_rs_listxattr, d_inode(dentry)->i_ino, buf, size);
}

static ssize_t arborfs_getxattr_full(struct inode *inode, const char *full, void *buf, size_t size)
{
	struct super_block *sb = inode->i_sb;

	if (READ_ONCE(AI(inode)->no_xattrs))
		return arborfs_alive(sb) ?: -ENODATA;
	return arborfs_alive(sb) ?:
		ENGINE_READ(sb, arborfs_rs_getxattr, inode->i_ino, full, strlen(full), buf, size);
}

/* Set (value non-NULL) or remove an attribute by its full name. */
static int arborfs_setxattr_full(struct inode *inode, const char *full, const void *value, size_t size, int flags)
{
	struct super_block *sb = inode->i_sb;

	/* Before the attribute can exist: a get racing with this set sees it absent, as if it ran first. */
	WRITE_ONCE(AI(inode)->no_xattrs, false);
	return arborfs_alive(sb) ?:
		ENGINE_CHANGE(sb, arborfs_rs_setxattr, inode->i_ino, full, strlen(full), value, size, flags);
}

static int arborfs_xattr_get(const struct xattr_handler *h, struct dentry *unused, struct inode *inode,
			     const char *name, void *buf, size_t size)
{
	char full[XATTR_NAME_MAX + 1];

	if (snprintf(full, sizeof(full), "%s%s", h->prefix, name) >= sizeof(full))
		return -ERANGE;
	return arborfs_getxattr_full(inode, full, buf, size);
}

static int arborfs_xattr_set(const struct xattr_handler *h, struct mnt_idmap *idmap, struct dentry *unused,
			     struct inode *inode, const char *name, const void *value, size_t size, int flags)
{
	char full[XATTR_NAME_MAX + 1];
	int err;

	if (snprintf(full, sizeof(full), "%s%s", h->prefix, name) >= sizeof(full))
		return -ERANGE;
	err = arborfs_setxattr_full(inode, full, value, size, flags);
	if (!err)
		inode_set_ctime_current(inode);
	return err;
}

static const struct xattr_handler arborfs_user_xattr = {
	.prefix = XATTR_USER_PREFIX, .get = arborfs_xattr_get, .set = arborfs_xattr_set,
};
static const struct xattr_handler arborfs_trusted_xattr = {
	.prefix = XATTR_TRUSTED_PREFIX, .get = arborfs_xattr_get, .set = arborfs_xattr_set,
};
static const struct xattr_handler arborfs_security_xattr = {
	.prefix = XATTR_SECURITY_PREFIX, .get = arborfs_xattr_get, .set = arborfs_xattr_set,
};
const struct xattr_handler * const arborfs_xattr_handlers[] = {
	&arborfs_user_xattr, &arborfs_trusted_xattr, &arborfs_security_xattr, NULL
};

/* ---- POSIX ACLs, stored as system.posix_acl_* attributes in the VFS xattr form ---- */

static const char *acl_name(int type)
{
	return type == ACL_TYPE_ACCESS ? XATTR_NAME_POSIX_ACL_ACCESS : XATTR_NAME_POSIX_ACL_DEFAULT;
}

struct posix_acl *arborfs_get_inode_acl(struct inode *inode, int type, bool rcu)
{
	struct posix_acl *acl;
	ssize_t len;
	void *buf;

	if (rcu)
		return ERR_PTR(-ECHILD);
	len = arborfs_getxattr_full(inode, acl_name(type), NULL, 0);
	if (len == -ENODATA)
		return NULL;
	if (len < 0)
		return ERR_PTR(len);
	buf = kmalloc(len, GFP_KERNEL);
	if (!buf)
		return ERR_PTR(-ENOMEM);
	len = arborfs_getxattr_full(inode, acl_name(type), buf, len);
	acl = len < 0 ? ERR_PTR(len) : posix_acl_from_xattr(&init_user_ns, buf, len);
	kfree(buf);
	return acl;
}

static int arborfs_store_acl(struct inode *inode, struct posix_acl *acl, int type)
{
	size_t size;
	void *buf;
	int err;

	if (!acl) {
		err = arborfs_setxattr_full(inode, acl_name(type), NULL, 0, 0);
		return err == -ENODATA ? 0 : err;
	}
	size = posix_acl_xattr_size(acl->a_count);
	buf = kmalloc(size, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	err = posix_acl_to_xattr(&init_user_ns, acl, buf, size);
	if (err >= 0)
		err = arborfs_setxattr_full(inode, acl_name(type), buf, err, 0);
	kfree(buf);
	return err;
}

int arborfs_set_acl(struct mnt_idmap *idmap, struct dentry *dentry, struct posix_acl *acl, int type)
{
	struct inode *inode = d_inode(dentry);
	umode_t mode = inode->i_mode;
	int err;

	if (type == ACL_TYPE_ACCESS && acl) {
		err = posix_acl_update_mode(idmap, inode, &mode, &acl);
		if (err)
			return err;
	}
	err = arborfs_store_acl(inode, acl, type);
	if (err)
		return err;
	if (mode != inode->i_mode) {
		struct timespec64 now = current_time(inode);
		struct arborfs_setattr s = {
			.valid = ARBORFS_SET_MODE | ARBORFS_SET_CTIME, .mode = mode, .ctime = ts_to_ns(now),
		};

		err = arborfs_engine_setattr(inode, &s);
		if (err)
			return err;
		inode->i_mode = mode;
		inode_set_ctime_to_ts(inode, now);
	}
	set_cached_acl(inode, type, acl);
	return 0;
}

/* Store the ACLs posix_acl_create() computed for a new inode. */
int arborfs_init_acl(struct inode *inode, struct posix_acl *default_acl, struct posix_acl *acl)
{
	int err = 0;

	if (default_acl) {
		err = arborfs_store_acl(inode, default_acl, ACL_TYPE_DEFAULT);
		if (!err)
			set_cached_acl(inode, ACL_TYPE_DEFAULT, default_acl);
	}
	if (acl && !err) {
		err = arborfs_store_acl(inode, acl, ACL_TYPE_ACCESS);
		if (!err)
			set_cached_acl(inode, ACL_TYPE_ACCESS, acl);
	}
	return err;
}

const struct inode_operations arborfs_file_iops = {
	.setattr = arborfs_setattr,
	.getattr = arborfs_getattr,
	.fiemap = arborfs_fiemap,
	.listxattr = arborfs_listxattr,
	.get_inode_acl = arborfs_get_inode_acl,
	.set_acl = arborfs_set_acl,
	.fileattr_get = arborfs_fileattr_get,
	.fileattr_set = arborfs_fileattr_set,
};
const struct inode_operations arborfs_symlink_iops = {
	.get_link = simple_get_link,
	.setattr = arborfs_setattr,
	.getattr = arborfs_getattr,
	.listxattr = arborfs_listxattr,
};
const struct inode_operations arborfs_special_iops = {
	.setattr = arborfs_setattr,
	.getattr = arborfs_getattr,
	.listxattr = arborfs_listxattr,
	.get_inode_acl = arborfs_get_inode_acl,
	.set_acl = arborfs_set_acl,
};
