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
    /// A bug: an engine invariant does not hold.
    Internal(&'static str),
}

impl Error {
    /// The positive errno value.
    pub const fn errno(&self) -> i32 {
        match self {
            Error::NoMem => 12,
            Error::Io { .. } | Error::DataChecksum { .. } => 5,
            Error::BadMetadata { .. } | Error::BadNode { .. } | Error::Corrupt(_) => 117, // EUCLEAN
            Error::NotFound => 2,
            Error::Exists => 17,
            Error::NotDir => 20,
            Error::IsDir => 21,
            Error::NotEmpty => 39,
            Error::NameTooLong => 36,
            Error::Invalid => 22,
            Error::NoSpace => 28,
            Error::TooBig => 27,
            Error::NoData => 61,
            Error::Range => 34,
            Error::ArgTooBig => 7,
            Error::ReadOnly => 30,
            Error::TooManyLinks => 31,
            Error::Unsupported => 95,
            Error::NotPermitted => 1,
            Error::NoSuchOffset => 6,
            Error::Internal(_) => 5,
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
