//! Inode values.

use super::bytes::{Reader, Writer};
use super::error::{FormatError, Result};

/// Encoded size of an [`Inode`] in format version 1. Longer values (from newer
/// versions) decode with the extra bytes ignored.
pub const INODE_BYTES: usize = 96;

/// File type bits of `mode`, as in POSIX.
pub const S_IFMT: u32 = 0o170000;
/// Socket.
pub const S_IFSOCK: u32 = 0o140000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Block device.
pub const S_IFBLK: u32 = 0o060000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Character device.
pub const S_IFCHR: u32 = 0o020000;
/// FIFO.
pub const S_IFIFO: u32 = 0o010000;

/// Inode flag: immutable (FS_IMMUTABLE_FL).
pub const FLAG_IMMUTABLE: u32 = 0x10;
/// Inode flag: append only (FS_APPEND_FL).
pub const FLAG_APPEND: u32 = 0x20;
/// Inode flag: no dump (FS_NODUMP_FL).
pub const FLAG_NODUMP: u32 = 0x40;
/// Inode flag: no atime updates (FS_NOATIME_FL).
pub const FLAG_NOATIME: u32 = 0x80;
/// Inode flag: synchronous updates (FS_SYNC_FL).
pub const FLAG_SYNC: u32 = 0x08;
/// Every flag this version understands.
/// Compress this file's new data (zstd) even where the file system's
/// default is none (`FS_COMPR_FL`, `chattr +c`).
pub const FLAG_COMPR: u32 = 0x04;
/// Directories: new entries take this directory's project id
/// (`FS_PROJINHERIT_FL`).
pub const FLAG_PROJINHERIT: u32 = 0x2000_0000;
/// Every flag the engine stores.
pub const FLAGS_KNOWN: u32 =
    FLAG_IMMUTABLE | FLAG_APPEND | FLAG_NODUMP | FLAG_NOATIME | FLAG_SYNC | FLAG_COMPR | FLAG_PROJINHERIT;

/// An inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inode {
    /// File type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Number of directory entries naming this inode (directories: 2 + subdirectories).
    pub nlink: u32,
    /// File size in bytes.
    pub size: u64,
    /// Access time, nanoseconds since the epoch.
    pub atime: i64,
    /// Modification time.
    pub mtime: i64,
    /// Status change time.
    pub ctime: i64,
    /// Birth time.
    pub btime: i64,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Generation, for NFS file handles.
    pub generation: u32,
    /// Device number of a device node (Linux `new_encode_dev` form).
    pub rdev: u64,
    /// Bytes of storage the file's extents use (for `st_blocks`).
    pub alloc_bytes: u64,
    /// Per-inode compression override (0: file system default).
    pub compression: u8,
    /// Per-inode data checksum override (0: file system default).
    pub data_checksum: u8,
    /// For directories: the parent directory (".."), kept exact by rename and
    /// checked by fsck. For other files: the directory it was created in.
    pub parent: u64,
    /// Project id (`FS_IOC_FSSETXATTR`), 0 for none. In the reserved bytes
    /// of version 1 inodes: file systems that store one carry
    /// [`super::superblock::RO_COMPAT_PROJECT_ID`].
    pub projid: u32,
}

impl Inode {
    /// File type bits.
    pub const fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }
    /// Whether this is a directory.
    pub const fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }
    /// Whether this is a regular file.
    pub const fn is_reg(&self) -> bool {
        self.file_type() == S_IFREG
    }
    /// Whether this is a symlink.
    pub const fn is_symlink(&self) -> bool {
        self.file_type() == S_IFLNK
    }

    /// Decode a value.
    pub fn decode(val: &[u8]) -> Result<Self> {
        let ino = Self::decode_fields(val)?;
        if dirent_type(ino.mode).is_none() {
            return Err(FormatError::BadField("inode mode"));
        }
        if ino.size > i64::MAX as u64 {
            return Err(FormatError::BadField("inode size"));
        }
        Ok(ino)
    }

    /// Read the fields of a value without checking them (fsck salvages
    /// what it can of an inode that does not decode).
    pub fn decode_fields(val: &[u8]) -> Result<Self> {
        if val.len() < INODE_BYTES {
            return Err(FormatError::Truncated);
        }
        let mut r = Reader::new(val);
        let ino = Inode {
            mode: r.u32()?,
            uid: r.u32()?,
            gid: r.u32()?,
            nlink: r.u32()?,
            size: r.u64()?,
            atime: r.i64()?,
            mtime: r.i64()?,
            ctime: r.i64()?,
            btime: r.i64()?,
            flags: r.u32()?,
            generation: r.u32()?,
            rdev: r.u64()?,
            alloc_bytes: r.u64()?,
            compression: r.u8()?,
            data_checksum: r.u8()?,
            projid: {
                r.skip(2)?;
                r.u32()?
            },
            parent: r.u64()?,
        };
        Ok(ino)
    }

    /// Encode into `buf` (at least [`INODE_BYTES`]); returns the length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf);
        w.u32(self.mode)?;
        w.u32(self.uid)?;
        w.u32(self.gid)?;
        w.u32(self.nlink)?;
        w.u64(self.size)?;
        w.i64(self.atime)?;
        w.i64(self.mtime)?;
        w.i64(self.ctime)?;
        w.i64(self.btime)?;
        w.u32(self.flags)?;
        w.u32(self.generation)?;
        w.u64(self.rdev)?;
        w.u64(self.alloc_bytes)?;
        w.u8(self.compression)?;
        w.u8(self.data_checksum)?;
        w.zeros(2)?;
        w.u32(self.projid)?;
        w.u64(self.parent)?;
        Ok(w.position())
    }
}

/// Encode a device number the way Linux's `new_encode_dev` does (the form
/// stored in [`Inode::rdev`]).
pub const fn encode_dev(major: u32, minor: u32) -> u64 {
    ((minor & 0xff) as u64) | ((major as u64) << 8) | (((minor & !0xff) as u64) << 12)
}

/// Split a stored device number into (major, minor).
pub const fn decode_dev(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) as u32;
    let minor = ((rdev & 0xff) | ((rdev >> 12) & 0xfff00)) as u32;
    (major, minor)
}

/// The dirent type (`DT_*`) for a mode, or `None` for an invalid file type.
pub const fn dirent_type(mode: u32) -> Option<u8> {
    Some(match mode & S_IFMT {
        S_IFIFO => 1,
        S_IFCHR => 2,
        S_IFDIR => 4,
        S_IFBLK => 6,
        S_IFREG => 8,
        S_IFLNK => 10,
        S_IFSOCK => 12,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_round_trip() {
        for (ma, mi) in [(8, 1), (259, 65536), (4095, 1048575), (0, 0)] {
            assert_eq!(decode_dev(encode_dev(ma, mi)), (ma, mi));
        }
        assert_eq!(encode_dev(8, 1), 0x801);
    }

    #[test]
    fn round_trip() {
        let ino = Inode {
            mode: S_IFREG | 0o644,
            uid: 1,
            gid: 2,
            nlink: 3,
            size: 4,
            atime: -5,
            mtime: 6,
            ctime: 7,
            btime: 8,
            flags: FLAG_NOATIME,
            generation: 9,
            rdev: 10,
            alloc_bytes: 11,
            compression: 1,
            data_checksum: 2,
            parent: 12,
            projid: 13,
        };
        let mut buf = [0u8; INODE_BYTES];
        assert_eq!(ino.encode(&mut buf), Ok(INODE_BYTES));
        assert_eq!(Inode::decode(&buf), Ok(ino));
        assert!(Inode::decode(&buf[..INODE_BYTES - 1]).is_err());
    }
}
