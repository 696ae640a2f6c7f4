//! Option values the tools and the kernel module share, so that `mkfs
//! --compression` and the `compress=` mount option accept the same values
//! and refuse the rest with the same words, and space policy that both
//! apply.

use crate::format::extent::Compression;

/// zstd levels this file system writes.
pub const ZSTD_LEVEL_MIN: u8 = 1;
/// The highest zstd level: beyond 19, zstd's "ultra" levels need more
/// memory to decompress than a kernel read path should take.
pub const ZSTD_LEVEL_MAX: u8 = 19;
/// The zstd level when none is given.
pub const ZSTD_LEVEL_DEFAULT: u8 = 3;

/// Space that reservations for dirty file data leave free, for the b-tree
/// nodes and journal entries writing that data takes.
pub const RESERVE_MARGIN: u64 = 4 << 20;

/// The zstd level to compress at for a stored or requested `level` (0:
/// the default; above the highest: the highest).
pub fn zstd_level(level: u8) -> u8 {
    match level {
        0 => ZSTD_LEVEL_DEFAULT,
        l => l.min(ZSTD_LEVEL_MAX),
    }
}

/// A compression choice: `none`, `lz4`, `zstd` or `zstd:LEVEL`. Returns
/// the method and its level (0: the default).
pub fn parse_compression(s: &str) -> Result<(Compression, u8), &'static str> {
    let (name, level) = match s.split_once(':') {
        Some((n, l)) => (n, Some(l)),
        None => (s, None),
    };
    let c = Compression::from_name(name).ok_or("unknown compression: want none, lz4, zstd or zstd:LEVEL")?;
    match (c, level) {
        (_, None) => Ok((c, 0)),
        (Compression::Zstd, Some(l)) => {
            let lv = l.parse::<u8>().ok().filter(|v| (ZSTD_LEVEL_MIN..=ZSTD_LEVEL_MAX).contains(v));
            lv.map(|v| (c, v)).ok_or("zstd level is not from 1 to 19")
        }
        (_, Some(_)) => Err("only zstd takes a level"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_values() {
        assert_eq!(parse_compression("none"), Ok((Compression::None, 0)));
        assert_eq!(parse_compression("lz4"), Ok((Compression::Lz4, 0)));
        assert_eq!(parse_compression("zstd"), Ok((Compression::Zstd, 0)));
        assert_eq!(zstd_level(0), ZSTD_LEVEL_DEFAULT);
        assert_eq!(zstd_level(22), ZSTD_LEVEL_MAX);
        assert_eq!(parse_compression("zstd:19"), Ok((Compression::Zstd, 19)));
        for bad in ["zstd:0", "zstd:20", "zstd:22", "zstd:", "zstd:x", "lz4:3", "gzip", ""] {
            assert!(parse_compression(bad).is_err(), "{bad}");
        }
    }
}
