// SPDX-License-Identifier: GPL-2.0
/*
 * Directories: lookup, readdir, and every namespace change (create, mkdir,
 * mknod, symlink, link, unlink, rmdir, rename with whiteouts, O_TMPFILE).
 * The engine does each change in one journalled transaction; the glue then
 * brings the in-core inodes it touched in step (link counts, change times,
 * directory sizes).
 */
#include <linux/fs.h>
#include <linux/namei.h>
#include <linux/posix_acl.h>
#include <linux/slab.h>
#include <linux/cred.h>

#include "arborfs.h"

static struct dentry *arborfs_lookup(struct inode *dir, struct dentry *dentry, unsigned int flags)
{
	struct super_block *sb = dir->i_sb;
	struct inode *inode = NULL;
	u64 ino;
	int err;

	if (dentry->d_name.len > NAME_MAX)
		return ERR_PTR(-ENAMETOOLONG);
	err = arborfs_alive(sb) ?:
		ENGINE_READ(sb, arborfs_rs_lookup, dir->i_ino, dentry->d_name.name, dentry->d_name.len, &ino);
	if (err == 0)
		inode = arborfs_iget(sb, ino);
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
	int err = arborfs_alive(sb);

	if (err)
		return err;
	if (!dir_emit_dots(file, ctx))
		return 0;
	batch = kvmalloc_array(DIRENT_BATCH, sizeof(*batch), GFP_KERNEL);
	if (!batch)
		return -ENOMEM;
	for (;;) {
		/* Collect under the engine lock, emit (copy to user) outside it. */
		err = ENGINE_READ(sb, arborfs_rs_readdir, inode->i_ino, ctx->pos, batch, DIRENT_BATCH, &n);
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

/*
 * Owner and group of a new inode in `dir`, by inode_init_owner()'s rules: the
 * caller's fsuid and fsgid as the mount's idmap maps them (the VFS has
 * checked that they map), except that a setgid directory passes its group
 * on, and its setgid bit to new directories.
 */
static void arborfs_new_owner(struct mnt_idmap *idmap, struct inode *dir, umode_t *mode, u32 *uid, u32 *gid)
{
	*uid = from_kuid(&init_user_ns, mapped_fsuid(idmap, i_user_ns(dir)));
	if (dir->i_mode & S_ISGID) {
		*gid = from_kgid(&init_user_ns, dir->i_gid);
		if (S_ISDIR(*mode))
			*mode |= S_ISGID;
	} else {
		*gid = from_kgid(&init_user_ns, mapped_fsgid(idmap, i_user_ns(dir)));
	}
}

/*
 * Create an inode of any type named `name` in `dir`, or with no name and no
 * links for O_TMPFILE (`name` NULL): owner and setgid inheritance as
 * inode_init_owner() does, mode and ACLs as posix_acl_create() decides (it
 * also applies the umask, since the super block has SB_POSIXACL).
 */
static struct inode *arborfs_make_inode(struct mnt_idmap *idmap, struct inode *dir, const struct qstr *name,
					umode_t mode, dev_t rdev, const char *link)
{
	struct super_block *sb = dir->i_sb;
	struct posix_acl *default_acl = NULL, *acl = NULL;
	struct arborfs_attr a;
	struct inode *inode;
	u32 uid, gid;
	int err = arborfs_alive(sb);

	if (err)
		return ERR_PTR(err);
	if (!link) {
		err = posix_acl_create(dir, &mode, &default_acl, &acl);
		if (err)
			return ERR_PTR(err);
	}
	arborfs_new_owner(idmap, dir, &mode, &uid, &gid);
	if (!name)
		err = ENGINE_CHANGE(sb, arborfs_rs_tmpfile, dir->i_ino, mode, uid, gid, &a);
	else if (link)
		err = ENGINE_CHANGE(sb, arborfs_rs_symlink, dir->i_ino, name->name, name->len, link,
							 strlen(link), uid, gid, &a);
	else
		err = ENGINE_CHANGE(sb, arborfs_rs_create, dir->i_ino, name->name, name->len, mode, uid,
							gid, new_encode_dev(rdev), &a);
	if (err) {
		inode = ERR_PTR(err);
		goto out;
	}
	inode = arborfs_new_inode(sb, &a, link);
	if (!IS_ERR(inode)) {
		/*
		 * Nothing has attributes yet: every write and chown asks for
		 * security.capability, which need not reach the engine. The
		 * ACLs just below clear it again.
		 */
		WRITE_ONCE(AI(inode)->no_xattrs, true);
		err = arborfs_init_acl(inode, default_acl, acl);
		if (err) {
			/* A named inode shows up at the next lookup; an unnamed one goes at eviction. */
			iput(inode);
			inode = ERR_PTR(err);
		}
	}
out:
	posix_acl_release(default_acl);
	posix_acl_release(acl);
	return inode;
}

static int arborfs_make(struct mnt_idmap *idmap, struct inode *dir, struct dentry *dentry, umode_t mode, dev_t rdev,
			const char *link)
{
	struct inode *inode;

	if (dentry->d_name.len > NAME_MAX)
		return -ENAMETOOLONG;
	inode = arborfs_make_inode(idmap, dir, &dentry->d_name, mode, rdev, link);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	arborfs_refresh(dir);
	d_instantiate(dentry, inode);
	return 0;
}

static int arborfs_create(struct mnt_idmap *idmap, struct inode *dir, struct dentry *dentry, umode_t mode,
			  bool excl)
{
	return arborfs_make(idmap, dir, dentry, mode, 0, NULL);
}

static int arborfs_mkdir(struct mnt_idmap *idmap, struct inode *dir, struct dentry *dentry, umode_t mode)
{
	return arborfs_make(idmap, dir, dentry, mode | S_IFDIR, 0, NULL);
}

static int arborfs_mknod(struct mnt_idmap *idmap, struct inode *dir, struct dentry *dentry, umode_t mode,
			 dev_t rdev)
{
	return arborfs_make(idmap, dir, dentry, mode, rdev, NULL);
}

static int arborfs_symlink(struct mnt_idmap *idmap, struct inode *dir, struct dentry *dentry, const char *target)
{
	return arborfs_make(idmap, dir, dentry, S_IFLNK | 0777, 0, target);
}

/*
 * O_TMPFILE: an unnamed file with no links, on the engine's orphan list
 * until linkat() names it (arborfs_link) or its last close deletes it.
 */
static int arborfs_tmpfile(struct mnt_idmap *idmap, struct inode *dir, struct file *file, umode_t mode)
{
	struct inode *inode = arborfs_make_inode(idmap, dir, NULL, mode, 0, NULL);

	if (IS_ERR(inode))
		return PTR_ERR(inode);
	/* d_tmpfile() drops the one link the VFS expects a new inode to have. */
	set_nlink(inode, 1);
	d_tmpfile(file, inode);
	return finish_open_simple(file, 0);
}

static int arborfs_link(struct dentry *old, struct inode *dir, struct dentry *dentry)
{
	struct super_block *sb = dir->i_sb;
	struct inode *inode = d_inode(old);
	struct arborfs_attr a;
	int err;

	if (dentry->d_name.len > NAME_MAX)
		return -ENAMETOOLONG;
	err = arborfs_alive(sb) ?:
		ENGINE_CHANGE(sb, arborfs_rs_link, inode->i_ino, dir->i_ino, dentry->d_name.name,
						dentry->d_name.len, &a);
	if (err)
		return err;
	set_nlink(inode, a.nlink);
	inode_set_ctime_to_ts(inode, ns_to_timespec64(a.ctime));
	arborfs_refresh(dir);
	ihold(inode);
	d_instantiate(dentry, inode);
	return 0;
}

static int arborfs_remove(struct inode *dir, struct dentry *dentry, int rmdir)
{
	struct super_block *sb = dir->i_sb;
	struct inode *inode = d_inode(dentry);
	struct arborfs_attr a;
	int err;

	err = arborfs_alive(sb) ?:
		ENGINE_CHANGE(sb, arborfs_rs_unlink, dir->i_ino, dentry->d_name.name, dentry->d_name.len, rmdir,
						  &a);
	if (err)
		return err;
	set_nlink(inode, a.nlink);
	inode_set_ctime_to_ts(inode, ns_to_timespec64(a.ctime));
	arborfs_refresh(dir);
	return 0;
}

static int arborfs_unlink(struct inode *dir, struct dentry *dentry)
{
	return arborfs_remove(dir, dentry, 0);
}

static int arborfs_rmdir(struct inode *dir, struct dentry *dentry)
{
	return arborfs_remove(dir, dentry, 1);
}

static int arborfs_rename(struct mnt_idmap *idmap, struct inode *old_dir, struct dentry *old_dentry,
			  struct inode *new_dir, struct dentry *new_dentry, unsigned int flags)
{
	struct super_block *sb = old_dir->i_sb;
	umode_t whiteout_mode = S_IFCHR;
	u32 uid, gid;
	int err;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT))
		return -EINVAL;
	if (new_dentry->d_name.len > NAME_MAX)
		return -ENAMETOOLONG;
	arborfs_new_owner(idmap, old_dir, &whiteout_mode, &uid, &gid);
	err = arborfs_alive(sb) ?:
		ENGINE_CHANGE(sb, arborfs_rs_rename, old_dir->i_ino, old_dentry->d_name.name,
						  old_dentry->d_name.len, new_dir->i_ino, new_dentry->d_name.name,
						  new_dentry->d_name.len, flags, uid, gid);
	if (err)
		return err;
	arborfs_refresh(old_dir);
	if (new_dir != old_dir)
		arborfs_refresh(new_dir);
	arborfs_refresh(d_inode(old_dentry));
	if (d_really_is_positive(new_dentry))
		arborfs_refresh(d_inode(new_dentry));
	return 0;
}

const struct inode_operations arborfs_dir_iops = {
	.lookup = arborfs_lookup,
	.create = arborfs_create,
	.mkdir = arborfs_mkdir,
	.mknod = arborfs_mknod,
	.symlink = arborfs_symlink,
	.link = arborfs_link,
	.unlink = arborfs_unlink,
	.rmdir = arborfs_rmdir,
	.rename = arborfs_rename,
	.tmpfile = arborfs_tmpfile,
	.setattr = arborfs_setattr,
	.getattr = arborfs_getattr,
	.listxattr = arborfs_listxattr,
	.get_inode_acl = arborfs_get_inode_acl,
	.set_acl = arborfs_set_acl,
	.fileattr_get = arborfs_fileattr_get,
	.fileattr_set = arborfs_fileattr_set,
};

const struct file_operations arborfs_dir_fops = {
	.read = generic_read_dir,
	.iterate_shared = arborfs_iterate,
	.llseek = generic_file_llseek,
	.fsync = arborfs_fsync,
	.unlocked_ioctl = arborfs_ioctl,
};
