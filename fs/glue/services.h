/* SPDX-License-Identifier: GPL-2.0 */
/* Services the C glue gives the Rust side of arborfs (fs/kernel/sys.rs, fs/arborfs_main.rs). */
#ifndef ARBORFS_GLUE_H
#define ARBORFS_GLUE_H

#include <linux/types.h>

s64 arborfs_glue_now_ns(void);
int arborfs_glue_bdev_read(void *bdev, u8 *buf, size_t len, u64 off);
int arborfs_glue_bdev_write(void *bdev, const u8 *buf, size_t len, u64 off);
int arborfs_glue_bdev_flush(void *bdev);
int arborfs_glue_bdev_write_durable(void *bdev, const u8 *buf, size_t len, u64 off);
int arborfs_glue_bdev_discard(void *bdev, u64 off, u64 len);
u32 arborfs_glue_crc32c(const u8 *data, size_t len);
int arborfs_glue_lz4_decompress(const u8 *src, size_t srclen, u8 *dst, size_t dstlen);
ssize_t arborfs_glue_lz4_compress(const u8 *src, size_t srclen, u8 *dst, size_t dstlen);
int arborfs_glue_zstd_decompress(const u8 *src, size_t srclen, u8 *dst, size_t dstlen);
ssize_t arborfs_glue_zstd_compress(const u8 *src, size_t srclen, u8 *dst, size_t dstlen, int level);
int arborfs_glue_register(void);
void arborfs_glue_unregister(void);

#endif
