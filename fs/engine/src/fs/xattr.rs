//! Extended attributes: get, set (with XATTR_CREATE / XATTR_REPLACE), list
//! and remove, keyed by a hash of namespace and name like dirents.

use super::change::Change;
use super::inode::Attr;
use super::Fs;
use crate::error::{Error, Result};
use crate::format::dirent::HASH_PROBE;
use crate::format::xattr::{slot_of, Namespace, Xattr};
use crate::format::{BtreeId, KeyType, Pos, SNAPSHOT_ROOT, XATTR_NAME_MAX};
use crate::sys::{now_ns, BlockDevice, TryVec};
use crate::txn::{Access, Txn};

/// Xattr walk callback: `(namespace, name, value)`.
pub type XattrFn<'a> = dyn FnMut(Namespace, &[u8], &[u8]) -> Result<()> + 'a;

/// setxattr(2): fail if the attribute exists.
pub const XATTR_CREATE: u32 = 1;
/// setxattr(2): fail if the attribute does not exist.
pub const XATTR_REPLACE: u32 = 2;

fn split_name(full: &[u8]) -> Result<(Namespace, &[u8])> {
    let (ns, name) = Namespace::split(full).ok_or(Error::Unsupported)?;
    if name.len() > XATTR_NAME_MAX {
        return Err(Error::Range);
    }
    if name.is_empty() && matches!(ns, Namespace::User | Namespace::Trusted | Namespace::Security) {
        return Err(Error::Invalid);
    }
    Ok((ns, name))
}

/// Set an extended attribute ([`Fs::setxattr`]).
pub struct SetXattr<'a> {
    /// The inode.
    pub ino: u64,
    /// "namespace.name".
    pub full_name: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// [`XATTR_CREATE`], [`XATTR_REPLACE`] or neither.
    pub flags: u32,
}

impl<D: BlockDevice> Change<D> for SetXattr<'_> {
    type Out = Attr;

    fn body<A: Access<D>>(&mut self, t: &mut Txn<'_, D, A>) -> Result<Attr> {
        let (ino, flags) = (self.ino, self.flags);
        let (ns, name) = split_name(self.full_name)?;
        if self.value.len() > t.fs().xattr_value_max() {
            return Err(Error::ArgTooBig);
        }
        let x = Xattr { ns, name, value: self.value };
        let mut buf = TryVec::new();
        buf.try_resize(x.encoded_len(), 0)?;
        x.encode(&mut buf).map_err(|_| Error::Range)?;
        let mut inode = t.inode_read(ino)?;
        let mut val = TryVec::new();
        let existing = t.xattr_find(ino, ns, name, &mut val)?;
        match (existing, flags & (XATTR_CREATE | XATTR_REPLACE)) {
            (Some(_), XATTR_CREATE) => return Err(Error::Exists),
            (None, XATTR_REPLACE) => return Err(Error::NoData),
            (_, f) if f == XATTR_CREATE | XATTR_REPLACE => return Err(Error::Invalid),
            _ => {}
        }
        let pos = match existing {
            Some(p) => p,
            None => {
                let slot = slot_of(t.fs().sb.hash_seed, ns, name);
                let mut free = None;
                for s in slot..slot + HASH_PROBE {
                    let p = Pos::new(ino, s, SNAPSHOT_ROOT);
                    if !t.occupied(BtreeId::Xattrs, p)? {
                        free = Some(p);
                        break;
                    }
                }
                free.ok_or(Error::NoSpace)?
            }
        };
        inode.ctime = now_ns();
        t.set(BtreeId::Xattrs, pos, KeyType::Xattr, &buf)?;
        t.inode_write(ino, &inode)?;
        Ok(Attr { ino, inode })
    }
}

/// Remove an extended attribute ([`Fs::removexattr`]).
pub struct RemoveXattr<'a> {
    /// The inode.
    pub ino: u64,
    /// "namespace.name".
    pub full_name: &'a [u8],
}

impl<D: BlockDevice> Change<D> for RemoveXattr<'_> {
    type Out = Attr;

    fn body<A: Access<D>>(&mut self, t: &mut Txn<'_, D, A>) -> Result<Attr> {
        let (ns, name) = split_name(self.full_name)?;
        let mut inode = t.inode_read(self.ino)?;
        let mut val = TryVec::new();
        let pos = t.xattr_find(self.ino, ns, name, &mut val)?.ok_or(Error::NoData)?;
        inode.ctime = now_ns();
        t.delete(BtreeId::Xattrs, pos)?;
        t.inode_write(self.ino, &inode)?;
        Ok(Attr { ino: self.ino, inode })
    }
}

impl<D: BlockDevice> Fs<D> {
    /// Largest xattr value this file system stores.
    pub fn xattr_value_max(&self) -> usize {
        crate::format::xattr::value_max(self.sb.node_size)
    }

    /// The value of attribute `full_name` ("user.foo") copied into `out`.
    pub fn getxattr(&mut self, ino: u64, full_name: &[u8], out: &mut TryVec<u8>) -> Result<()> {
        self.read_txn(|t| t.getxattr(ino, full_name, out))
    }

    /// Set attribute `full_name` to `value`.
    pub fn setxattr(&mut self, ino: u64, full_name: &[u8], value: &[u8], flags: u32) -> Result<Attr> {
        self.change(&mut SetXattr { ino, full_name, value, flags })
    }

    /// Remove attribute `full_name`.
    pub fn removexattr(&mut self, ino: u64, full_name: &[u8]) -> Result<()> {
        self.change(&mut RemoveXattr { ino, full_name }).map(|_| ())
    }

    /// Append every attribute name, NUL terminated, to `out` (listxattr(2)).
    pub fn listxattr(&mut self, ino: u64, out: &mut TryVec<u8>) -> Result<()> {
        self.read_txn(|t| t.listxattr(ino, out))
    }

    /// Call `f(namespace, name, value)` for every attribute of `ino`.
    pub fn xattr_walk(&mut self, ino: u64, f: &mut XattrFn<'_>) -> Result<()> {
        self.read_txn(|t| t.xattr_walk(ino, f))
    }

    /// Delete every attribute of `ino` (inode deletion), in bounded transactions.
    pub(crate) fn xattrs_delete_all(&mut self, ino: u64) -> Result<()> {
        while self.write_txn(|t| t.xattrs_cut(ino))? {}
        Ok(())
    }
}

/// Attributes one transaction deletes at most.
pub(crate) const XATTR_CUT_BATCH: usize = 64;

impl<D: BlockDevice> Txn<'_, D> {
    /// Delete up to [`XATTR_CUT_BATCH`] attributes of `ino`; whether any
    /// may be left.
    pub(crate) fn xattrs_cut(&mut self, ino: u64) -> Result<bool> {
        let mut c = self.inode_cursor(BtreeId::Xattrs, ino, 0);
        let mut val = TryVec::new();
        for _ in 0..XATTR_CUT_BATCH {
            match self.next(&mut c, &mut val)? {
                Some((pos, _)) => self.delete(BtreeId::Xattrs, pos)?,
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}

impl<D: BlockDevice, A: Access<D>> Txn<'_, D, A> {
    /// Attribute `full_name` of `ino` into `out` ([`Fs::getxattr`]).
    pub fn getxattr(&mut self, ino: u64, full_name: &[u8], out: &mut TryVec<u8>) -> Result<()> {
        let (ns, name) = split_name(full_name)?;
        self.inode_read(ino)?;
        let mut val = TryVec::new();
        self.xattr_find(ino, ns, name, &mut val)?.ok_or(Error::NoData)?;
        let x = Xattr::decode(&val).map_err(|_| Error::Corrupt("malformed xattr"))?;
        out.clear();
        out.try_extend_from_slice(x.value)
    }

    /// The names of `ino`'s attributes into `out` ([`Fs::listxattr`]).
    pub fn listxattr(&mut self, ino: u64, out: &mut TryVec<u8>) -> Result<()> {
        out.clear();
        self.inode_read(ino)?;
        self.xattr_walk(ino, &mut |ns, name, _| {
            out.try_extend_from_slice(ns.prefix())?;
            out.try_extend_from_slice(name)?;
            out.try_push(0)
        })
    }

    /// Call `f(namespace, name, value)` for every attribute of `ino`.
    pub fn xattr_walk(&mut self, ino: u64, f: &mut XattrFn<'_>) -> Result<()> {
        let mut c = self.inode_cursor(BtreeId::Xattrs, ino, 0);
        let mut val = TryVec::new();
        while self.next(&mut c, &mut val)?.is_some() {
            let x = Xattr::decode(&val).map_err(|_| Error::Corrupt("malformed xattr"))?;
            f(x.ns, x.name, x.value)?;
        }
        Ok(())
    }

    /// Find attribute `name` of namespace `ns` on `ino`; its key's value
    /// into `val`.
    fn xattr_find(
        &mut self,
        ino: u64,
        ns: Namespace,
        name: &[u8],
        val: &mut TryVec<u8>,
    ) -> Result<Option<Pos>> {
        let slot = slot_of(self.fs().sb.hash_seed, ns, name);
        let mut c = self.cursor(
            BtreeId::Xattrs,
            Pos::new(ino, slot, 0),
            Pos::new(ino, slot + HASH_PROBE - 1, u32::MAX),
        );
        while let Some((pos, _)) = self.next(&mut c, val)? {
            let x = Xattr::decode(val).map_err(|_| Error::Corrupt("malformed xattr"))?;
            if x.ns == ns && x.name == name {
                return Ok(Some(pos));
            }
        }
        Ok(None)
    }
}
