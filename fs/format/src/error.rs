//! Errors found while decoding on-disk structures.

/// What is wrong with a structure read from disk. Each variant has a persistent
/// number (`code`) that fsck reports and that is never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatError {
    /// The buffer ends before the structure does.
    Truncated,
    /// The magic number is not the one this structure carries.
    BadMagic,
    /// The stored checksum does not match the contents.
    BadChecksum,
    /// The format version is newer than this code understands.
    UnsupportedVersion,
    /// An incompatible feature bit this code does not know is set.
    UnknownIncompatFeature,
    /// A field holds a value outside its allowed range.
    BadField(&'static str),
    /// A type tag (key type, b-tree id, checksum or compression type) is unknown.
    UnknownType(&'static str),
    /// A buffer given to an encoder is too small.
    NoSpace,
}

impl FormatError {
    /// The persistent number of this error kind.
    pub const fn code(&self) -> u32 {
        match self {
            FormatError::Truncated => 1,
            FormatError::BadMagic => 2,
            FormatError::BadChecksum => 3,
            FormatError::UnsupportedVersion => 4,
            FormatError::UnknownIncompatFeature => 5,
            FormatError::BadField(_) => 6,
            FormatError::UnknownType(_) => 7,
            FormatError::NoSpace => 8,
        }
    }
}

impl core::fmt::Display for FormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FormatError::Truncated => f.write_str("structure truncated"),
            FormatError::BadMagic => f.write_str("bad magic number"),
            FormatError::BadChecksum => f.write_str("checksum mismatch"),
            FormatError::UnsupportedVersion => f.write_str("unsupported format version"),
            FormatError::UnknownIncompatFeature => f.write_str("unknown incompatible feature"),
            FormatError::BadField(name) => write!(f, "invalid field {name}"),
            FormatError::UnknownType(name) => write!(f, "unknown {name} type"),
            FormatError::NoSpace => f.write_str("encode buffer too small"),
        }
    }
}

/// Result of a decode or encode.
pub type Result<T> = core::result::Result<T, FormatError>;
