//! Extended attribute values. Keys are `(inode, slot, snapshot)` with the slot
//! computed from the namespace byte and name exactly like dirent slots.

use super::bytes::{Reader, Writer};
use super::error::{FormatError, Result};
use super::{XATTR_NAME_MAX, XATTR_VALUE_MAX};

/// Fixed part of an xattr value before the name.
pub const XATTR_HEADER_BYTES: usize = 4;

/// Namespaces. Persistent numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Namespace {
    /// `user.`
    User = 1,
    /// `trusted.`
    Trusted = 2,
    /// `security.`
    Security = 3,
    /// `system.posix_acl_access`
    PosixAclAccess = 4,
    /// `system.posix_acl_default`
    PosixAclDefault = 5,
}

impl Namespace {
    /// Decode the on-disk namespace.
    pub fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            1 => Namespace::User,
            2 => Namespace::Trusted,
            3 => Namespace::Security,
            4 => Namespace::PosixAclAccess,
            5 => Namespace::PosixAclDefault,
            _ => return Err(FormatError::UnknownType("xattr namespace")),
        })
    }

    /// The prefix of full names in this namespace.
    pub const fn prefix(self) -> &'static [u8] {
        match self {
            Namespace::User => b"user.",
            Namespace::Trusted => b"trusted.",
            Namespace::Security => b"security.",
            Namespace::PosixAclAccess => b"system.posix_acl_access",
            Namespace::PosixAclDefault => b"system.posix_acl_default",
        }
    }

    /// Split a full attribute name ("user.foo") into namespace and name.
    pub fn split(full: &[u8]) -> Option<(Namespace, &[u8])> {
        for ns in [
            Namespace::User,
            Namespace::Trusted,
            Namespace::Security,
            Namespace::PosixAclAccess,
            Namespace::PosixAclDefault,
        ] {
            if let Some(rest) = full.strip_prefix(ns.prefix()) {
                let acl = matches!(ns, Namespace::PosixAclAccess | Namespace::PosixAclDefault);
                if acl == rest.is_empty() {
                    return Some((ns, rest));
                }
            }
        }
        None
    }
}

/// The bytes hashed for an xattr's slot: the namespace byte, then the name.
pub fn slot_of(seed: u64, ns: Namespace, name: &[u8]) -> u64 {
    let mut h = super::checksum::Xxh64::new(seed);
    h.update(&[ns as u8]);
    h.update(name);
    let v = h.finish() & (super::dirent::SLOT_END - 1) & !(super::dirent::HASH_PROBE - 1);
    v.max(super::dirent::FIRST_SLOT)
}

/// Largest xattr value a file system with `node_size` nodes stores: the
/// format's limit, or what a key holds after the header and the longest name.
pub const fn value_max(node_size: u32) -> usize {
    let fits =
        super::node::max_value_bytes(node_size).saturating_sub(XATTR_HEADER_BYTES + super::XATTR_NAME_MAX);
    if fits < super::XATTR_VALUE_MAX {
        fits
    } else {
        super::XATTR_VALUE_MAX
    }
}

/// An extended attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Xattr<'a> {
    /// Namespace.
    pub ns: Namespace,
    /// Name within the namespace (empty for the ACL namespaces).
    pub name: &'a [u8],
    /// Value.
    pub value: &'a [u8],
}

impl<'a> Xattr<'a> {
    /// Decode a value.
    pub fn decode(val: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(val);
        let ns = Namespace::from_u8(r.u8()?)?;
        let name_len = usize::from(r.u8()?);
        let value_len = usize::from(r.u16()?);
        if value_len > XATTR_VALUE_MAX {
            return Err(FormatError::BadField("xattr value length"));
        }
        let name = r.bytes(name_len)?;
        let value = r.bytes(value_len)?;
        Ok(Xattr { ns, name, value })
    }

    /// Encoded length.
    pub fn encoded_len(&self) -> usize {
        XATTR_HEADER_BYTES + self.name.len() + self.value.len()
    }

    /// Encode into `buf`; returns the length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        if self.name.len() > XATTR_NAME_MAX {
            return Err(FormatError::BadField("xattr name length"));
        }
        if self.value.len() > XATTR_VALUE_MAX {
            return Err(FormatError::BadField("xattr value length"));
        }
        let mut w = Writer::new(buf);
        w.u8(self.ns as u8)?;
        w.u8(self.name.len() as u8)?;
        w.u16(self.value.len() as u16)?;
        w.bytes(self.name)?;
        w.bytes(self.value)?;
        Ok(w.position())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let x = Xattr { ns: Namespace::Trusted, name: b"md5", value: &[0, 1, 2] };
        let mut buf = [0u8; 64];
        let n = x.encode(&mut buf).unwrap();
        assert_eq!(n, x.encoded_len());
        assert_eq!(Xattr::decode(&buf[..n]), Ok(x));
        assert!(Xattr::decode(&buf[..n - 1]).is_err());
    }

    #[test]
    fn split_names() {
        assert_eq!(Namespace::split(b"user.a"), Some((Namespace::User, &b"a"[..])));
        assert_eq!(Namespace::split(b"system.posix_acl_access"), Some((Namespace::PosixAclAccess, &b""[..])));
        assert_eq!(Namespace::split(b"system.other"), None);
        assert_eq!(Namespace::split(b"bogus"), None);
    }
}
