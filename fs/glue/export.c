// SPDX-License-Identifier: GPL-2.0
/*
 * File handles: name_to_handle_at/open_by_handle_at and NFS export.
 *
 * A handle is the 64-bit inode number and the inode's generation (and the
 * same for the parent directory when asked), the FILEID_INO64_GEN layouts
 * fuse and erofs use. Inode numbers can come back after a remount (a new
 * file system takes the highest number plus one), so the generation is what
 * tells a stale handle from a live one. A handle comes from userspace
 * (CAP_DAC_READ_SEARCH) or an NFS client: every field is checked.
 */
#include <linux/exportfs.h>
#include <linux/fs.h>

#include "arborfs.h"

#define ARBORFS_FH_LEN 3	/* u32 words: ino high, ino low, generation */
#define ARBORFS_FH_PARENT_LEN 6

static int arborfs_encode_fh(struct inode *inode, u32 *fh, int *max_len, struct inode *parent)
{
	int len = parent ? ARBORFS_FH_PARENT_LEN : ARBORFS_FH_LEN;

	if (*max_len < len) {
		*max_len = len;
		return FILEID_INVALID;
	}
	fh[0] = (u32)((u64)inode->i_ino >> 32);
	fh[1] = (u32)inode->i_ino;
	fh[2] = inode->i_generation;
	if (parent) {
		fh[3] = (u32)((u64)parent->i_ino >> 32);
		fh[4] = (u32)parent->i_ino;
		fh[5] = parent->i_generation;
	}
	*max_len = len;
	return parent ? FILEID_INO64_GEN_PARENT : FILEID_INO64_GEN;
}

/* The inode a handle names, or -ESTALE: never an internal number, a file
 * since deleted, or a new file that took a deleted one's number. A file
 * unlinked but still open is there until its last close (generic/467). */
static struct inode *arborfs_handle_inode(struct super_block *sb, u64 ino, u32 generation)
{
	struct inode *inode;

	if (ino < ARBORFS_ROOT_INO)
		return ERR_PTR(-ESTALE);
	inode = arborfs_iget(sb, ino);
	if (IS_ERR(inode))
		return PTR_ERR(inode) == -ENOENT ? ERR_PTR(-ESTALE) : inode;
	if (inode->i_generation != generation) {
		iput(inode);
		return ERR_PTR(-ESTALE);
	}
	return inode;
}

static u64 fh_ino(const struct fid *fid, int word)
{
	return ((u64)fid->raw[word] << 32) | fid->raw[word + 1];
}

static struct dentry *arborfs_fh_to_dentry(struct super_block *sb, struct fid *fid, int fh_len, int fh_type)
{
	if ((fh_type != FILEID_INO64_GEN && fh_type != FILEID_INO64_GEN_PARENT) || fh_len < ARBORFS_FH_LEN)
		return NULL;
	return d_obtain_alias(arborfs_handle_inode(sb, fh_ino(fid, 0), fid->raw[2]));
}

static struct dentry *arborfs_fh_to_parent(struct super_block *sb, struct fid *fid, int fh_len, int fh_type)
{
	if (fh_type != FILEID_INO64_GEN_PARENT || fh_len < ARBORFS_FH_PARENT_LEN)
		return NULL;
	return d_obtain_alias(arborfs_handle_inode(sb, fh_ino(fid, 3), fid->raw[5]));
}

/* A directory's "..", which the engine keeps in the directory's inode:
 * how a handle's disconnected directory is joined to the tree again. */
static struct dentry *arborfs_get_parent(struct dentry *child)
{
	struct super_block *sb = child->d_sb;
	struct inode *dir;
	u64 parent;
	int err;

	err = arborfs_alive(sb) ?: ENGINE_CALL(sb, arborfs_rs_parent(FS(sb), d_inode(child)->i_ino, &parent));
	if (err)
		return ERR_PTR(err);
	if (parent < ARBORFS_ROOT_INO)
		return ERR_PTR(-EUCLEAN);
	dir = arborfs_iget(sb, parent);
	/* A damaged parent field must not hand the VFS a non-directory to walk up through. */
	if (!IS_ERR(dir) && !S_ISDIR(dir->i_mode)) {
		iput(dir);
		dir = ERR_PTR(-EUCLEAN);
	}
	return d_obtain_alias(dir);
}

const struct export_operations arborfs_export_ops = {
	.encode_fh = arborfs_encode_fh,
	.fh_to_dentry = arborfs_fh_to_dentry,
	.fh_to_parent = arborfs_fh_to_parent,
	.get_parent = arborfs_get_parent,
};
