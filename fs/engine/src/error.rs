//! The engine's one error type. Every error maps to an errno for the VFS and
//! prints a precise message for the tools.

use crate::format::{BtreeId, FormatError};

/// An engine error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Out of memory.
    NoMem,
    /// A device read or write failed.
    Io {
        /// Member index.
        dev: u8,
        /// Byte offset.
        offset: u64,
    },
    /// An on-disk structure failed to decode.
    BadMetadata {
        /// What was being read.
        what: &'static str,
        /// What is wrong with it.
        err: FormatError,
        /// Member index.
        dev: u8,
        /// Byte offset.
        offset: u64,
    },
    /// A b-tree node decoded but does not fit where it was found.
    BadNode {
        /// Which b-tree.
        btree: BtreeId,
        /// What is wrong.
        why: &'static str,
        /// Member index.
        dev: u8,
        /// Byte offset.
        offset: u64,
    },
    /// File data failed its checksum.
    DataChecksum {
        /// Inode.
        ino: u64,
        /// File offset of the extent.
        offset: u64,
    },
    /// Metadata is inconsistent in a way not tied to one node.
    Corrupt(&'static str),
    /// No such file or directory (ENOENT).
    NotFound,
    /// File exists (EEXIST).
    Exists,
    /// Not a directory (ENOTDIR).
    NotDir,
    /// Is a directory (EISDIR).
    IsDir,
    /// Directory not empty (ENOTEMPTY).
    NotEmpty,
    /// Name too long (ENAMETOOLONG).
    NameTooLong,
    /// Invalid argument (EINVAL).
    Invalid,
    /// No space left on device (ENOSPC).
    NoSpace,
    /// File too large (EFBIG).
    TooBig,
    /// No such attribute (ENODATA).
    NoData,
    /// Result does not fit the buffer (ERANGE).
    Range,
    /// A value is larger than this file system stores (E2BIG).
    ArgTooBig,
    /// Read-only file system (EROFS).
    ReadOnly,
    /// Too many links (EMLINK).
    TooManyLinks,
    /// Operation not supported (EOPNOTSUPP).
    Unsupported,
    /// Operation not permitted (EPERM).
    NotPermitted,
    /// No data or hole at or after the offset (ENXIO).
    NoSuchOffset,
    /// A shared reader ([`crate::fs::Fs::shared`]) met a node that is not
    /// in memory: the call is to be made again with the file system held
    /// exclusively, which may read it (ECHILD, as the VFS's RCU path-walk
    /// says "again, the slow way"). Never reaches user space.
    NotCached,
    /// An optimistic change ([`crate::txn::Prepared`]) read keys that
    /// commits made since changed: its body is to be made again (EAGAIN).
    /// Never reaches user space.
    Conflict,
    /// A bug: an engine invariant does not hold.
    Internal(&'static str),
}

impl Error {
    /// The positive errno value.
    pub const fn errno(&self) -> i32 {
        use errno::*;
        match self {
            Error::NoMem => ENOMEM,
            Error::Io { .. } | Error::DataChecksum { .. } | Error::Internal(_) => EIO,
            Error::BadMetadata { .. } | Error::BadNode { .. } | Error::Corrupt(_) => EUCLEAN,
            Error::NotFound => ENOENT,
            Error::Exists => EEXIST,
            Error::NotDir => ENOTDIR,
            Error::IsDir => EISDIR,
            Error::NotEmpty => ENOTEMPTY,
            Error::NameTooLong => ENAMETOOLONG,
            Error::Invalid => EINVAL,
            Error::NoSpace => ENOSPC,
            Error::TooBig => EFBIG,
            Error::NoData => ENODATA,
            Error::Range => ERANGE,
            Error::ArgTooBig => E2BIG,
            Error::ReadOnly => EROFS,
            Error::TooManyLinks => EMLINK,
            Error::Unsupported => EOPNOTSUPP,
            Error::NotPermitted => EPERM,
            Error::NoSuchOffset => ENXIO,
            Error::NotCached => ECHILD,
            Error::Conflict => EAGAIN,
        }
    }

    /// Whether this error means on-disk damage (as opposed to a request error).
    pub const fn is_damage(&self) -> bool {
        matches!(
            self,
            Error::BadMetadata { .. }
                | Error::BadNode { .. }
                | Error::DataChecksum { .. }
                | Error::Corrupt(_)
        )
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::NoMem => f.write_str("out of memory"),
            Error::Io { dev, offset } => write!(f, "I/O error on device {dev} at byte {offset}"),
            Error::BadMetadata { what, err, dev, offset } => {
                write!(f, "{err} in {what} on device {dev} at byte {offset}")
            }
            Error::BadNode { btree, why, dev, offset } => {
                write!(f, "bad {} b-tree node on device {dev} at byte {offset}: {why}", btree.name())
            }
            Error::DataChecksum { ino, offset } => {
                write!(f, "data checksum mismatch in inode {ino} at file offset {offset}")
            }
            Error::Corrupt(what) => write!(f, "file system inconsistency: {what}"),
            Error::NotFound => f.write_str("no such file or directory"),
            Error::Exists => f.write_str("file exists"),
            Error::NotDir => f.write_str("not a directory"),
            Error::IsDir => f.write_str("is a directory"),
            Error::NotEmpty => f.write_str("directory not empty"),
            Error::NameTooLong => f.write_str("name too long"),
            Error::Invalid => f.write_str("invalid argument"),
            Error::NoSpace => f.write_str("no space left on device"),
            Error::TooBig => f.write_str("file too large"),
            Error::NoData => f.write_str("no such attribute"),
            Error::Range => f.write_str("result too large for buffer"),
            Error::ArgTooBig => f.write_str("argument list too long"),
            Error::ReadOnly => f.write_str("read-only file system"),
            Error::TooManyLinks => f.write_str("too many links"),
            Error::Unsupported => f.write_str("operation not supported"),
            Error::NotPermitted => f.write_str("operation not permitted"),
            Error::NoSuchOffset => f.write_str("no such device or address"),
            Error::NotCached => f.write_str("node not in memory (call again exclusively)"),
            Error::Conflict => f.write_str("keys read were changed meanwhile (make the change again)"),
            Error::Internal(what) => write!(f, "internal error: {what}"),
        }
    }
}

/// Result of an engine call.
pub type Result<T> = core::result::Result<T, Error>;

/// Attach location to a format error.
pub fn bad_metadata(what: &'static str, dev: u8, offset: u64) -> impl Fn(FormatError) -> Error {
    move |err| Error::BadMetadata { what, err, dev, offset }
}

/// Linux errno values (the kernel ABI; the module checks them against the
/// kernel's own definitions at build time).
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No such file or directory.
    pub const ENOENT: i32 = 2;
    /// I/O error.
    pub const EIO: i32 = 5;
    /// No such device or address (SEEK_DATA/SEEK_HOLE past the data).
    pub const ENXIO: i32 = 6;
    /// Argument list too long (an xattr value over the limit).
    pub const E2BIG: i32 = 7;
    /// No child process: here, a shared call to be made again exclusively.
    pub const ECHILD: i32 = 10;
    /// Try again: here, an optimistic change whose reads were changed.
    pub const EAGAIN: i32 = 11;
    /// Out of memory.
    pub const ENOMEM: i32 = 12;
    /// File exists.
    pub const EEXIST: i32 = 17;
    /// Not a directory.
    pub const ENOTDIR: i32 = 20;
    /// Is a directory.
    pub const EISDIR: i32 = 21;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// File too large.
    pub const EFBIG: i32 = 27;
    /// No space left on device.
    pub const ENOSPC: i32 = 28;
    /// Read-only file system.
    pub const EROFS: i32 = 30;
    /// Too many links.
    pub const EMLINK: i32 = 31;
    /// Result out of range (a buffer too small).
    pub const ERANGE: i32 = 34;
    /// File name too long.
    pub const ENAMETOOLONG: i32 = 36;
    /// Directory not empty.
    pub const ENOTEMPTY: i32 = 39;
    /// No data available (no such xattr).
    pub const ENODATA: i32 = 61;
    /// Operation not supported.
    pub const EOPNOTSUPP: i32 = 95;
    /// Structure needs cleaning (on-disk damage).
    pub const EUCLEAN: i32 = 117;
}
