// SPDX-License-Identifier: GPL-2.0
/*
 * Swap files (swapon on a file of this file system).
 *
 * The kernel's swap code reads and writes a swap file's blocks on the block
 * device directly, so those blocks must stay where they are and nothing of
 * the file system may describe their content. The engine checks that every
 * block of the file is in a plain, single-copy extent and drops the
 * extents' checksums, durably (Fs::swap_prepare); this file hands the
 * physical runs to the swap code. While the file is active, S_SWAPFILE makes
 * the VFS refuse writes, truncation and fallocate, page_mkwrite refuses
 * shared-mmap writes, and writeback leaves the file alone, so copy-on-write
 * never moves a block under the swap code.
 */
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/swap.h>

#include "arborfs.h"

#define SWAP_EXTENTS 32

struct arborfs_swap_run {
	struct swap_info_struct *sis;
	u64 file_pos, phys, len;	/* bytes: the run being gathered */
	unsigned long nr_pages;		/* pages handed to the swap code so far */
	sector_t lowest, highest;	/* device pages of the swap area */
	int nr_extents;
};

/* Hand the gathered run to the swap code, whole pages only (as iomap does). */
static int arborfs_swap_add_run(struct arborfs_swap_run *r)
{
	u64 first = ALIGN(r->phys, PAGE_SIZE) >> PAGE_SHIFT;
	u64 next = ALIGN_DOWN(r->phys + r->len, PAGE_SIZE) >> PAGE_SHIFT;
	u64 reported;
	unsigned long nr;
	int err;

	if (first >= next || r->nr_pages >= r->sis->max)
		return 0;
	nr = min_t(u64, next - first, r->sis->max - r->nr_pages);
	/* The file's first page is the swap header, not swap space. */
	reported = first + (r->file_pos == 0);
	if (reported < r->lowest)
		r->lowest = reported;
	if (next - 1 > r->highest)
		r->highest = next - 1;
	err = add_swap_extent(r->sis, r->nr_pages, nr, first);
	if (err < 0)
		return err;
	r->nr_extents += err;
	r->nr_pages += nr;
	return 0;
}

int arborfs_swap_activate(struct swap_info_struct *sis, struct file *file, sector_t *span)
{
	struct inode *inode = file->f_mapping->host;
	struct super_block *sb = inode->i_sb;
	u64 len = ALIGN_DOWN(i_size_read(inode), PAGE_SIZE), pos = 0;
	struct arborfs_swap_run r = { .sis = sis, .lowest = (sector_t)-1 };
	struct arborfs_extent *ext;
	size_t i, n;
	int err;

	if (!len)
		return -EINVAL;
	/* Every block allocated (writeback done) before the engine looks. */
	err = vfs_fsync(file, 1);
	if (err)
		return err;
	err = arborfs_alive(sb) ?: ENGINE_CALL(sb, arborfs_rs_swap_prepare(FS(sb), inode->i_ino, len));
	if (err == -EINVAL)
		pr_warn("arborfs (%s): swapon: %pD has holes, compressed or inline data: not a swap file\n",
			sb->s_id, file);
	if (err)
		return err;
	ext = kmalloc_array(SWAP_EXTENTS, sizeof(*ext), GFP_KERNEL);
	if (!ext)
		return -ENOMEM;
	while (pos < len) {
		err = arborfs_alive(sb) ?:
			ENGINE_CALL(sb, arborfs_rs_fiemap(FS(sb), inode->i_ino, pos, len, ext, SWAP_EXTENTS, &n));
		if (err)
			goto out;
		/* swap_prepare found every byte mapped: a gap now is a change under us. */
		if (!n) {
			err = -EINVAL;
			goto out;
		}
		for (i = 0; i < n && pos < len; i++) {
			u64 start = ext[i].logical, l = min(ext[i].length, len - start);

			if (start != pos || (ext[i].flags & (ARBORFS_EXTENT_ENCODED | ARBORFS_EXTENT_INLINE))) {
				err = -EINVAL;
				goto out;
			}
			pos = start + l;
			if (r.len && r.phys + r.len == ext[i].physical) {
				r.len += l;
				continue;
			}
			err = r.len ? arborfs_swap_add_run(&r) : 0;
			if (err)
				goto out;
			r.file_pos = start;
			r.phys = ext[i].physical;
			r.len = l;
		}
	}
	err = arborfs_swap_add_run(&r);
	if (err)
		goto out;
	if (!r.nr_pages) {
		err = -EINVAL;
		goto out;
	}
	*span = 1 + r.highest - r.lowest;
	sis->max = r.nr_pages;
	sis->pages = r.nr_pages - 1;
	sis->highest_bit = r.nr_pages - 1;
	err = r.nr_extents;
out:
	kfree(ext);
	return err;
}
