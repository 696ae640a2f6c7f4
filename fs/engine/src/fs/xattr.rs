//! Extended attributes: get, set (with XATTR_CREATE / XATTR_REPLACE), list
//! and remove, keyed by a hash of namespace and name like dirents.

use super::inode::Attr;
use super::Fs;
use crate::error::{Error, Result};
use crate::format::dirent::HASH_PROBE;
use crate::format::xattr::{slot_of, Namespace, Xattr};
use crate::format::{BtreeId, KeyType, Pos, SNAPSHOT_ROOT, XATTR_NAME_MAX};
use crate::sys::{now_ns, BlockDevice, TryVec};

/// Xattr walk callback: `(namespace, name, value)`.
pub type XattrFn<'a> = dyn FnMut(Namespace, &[u8], &[u8]) -> Result<()> + 'a;

/// setxattr(2): fail if the attribute exists.
pub const XATTR_CREATE: u32 = 1;
/// setxattr(2): fail if the attribute does not exist.
pub const XATTR_REPLACE: u32 = 2;

impl<D: BlockDevice> Fs<D> {
    /// Largest xattr value this file system stores.
    pub fn xattr_value_max(&self) -> usize {
        crate::format::xattr::value_max(self.sb.node_size)
    }

    fn xattr_find(
        &mut self,
        ino: u64,
        ns: Namespace,
        name: &[u8],
        val: &mut TryVec<u8>,
    ) -> Result<Option<Pos>> {
        let slot = slot_of(self.sb.hash_seed, ns, name);
        let mut from = Pos::new(ino, slot, 0);
        let to = Pos::new(ino, slot + HASH_PROBE - 1, u32::MAX);
        while let Some((pos, _)) = self.peek(BtreeId::Xattrs, from, to, val)? {
            let x = Xattr::decode(val).map_err(|_| Error::Corrupt("malformed xattr"))?;
            if x.ns == ns && x.name == name {
                return Ok(Some(pos));
            }
            match pos.successor() {
                Some(p) => from = p,
                None => break,
            }
        }
        Ok(None)
    }

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

    /// The value of attribute `full_name` ("user.foo") copied into `out`.
    pub fn getxattr(&mut self, ino: u64, full_name: &[u8], out: &mut TryVec<u8>) -> Result<()> {
        let (ns, name) = Self::split_name(full_name)?;
        self.inode_read(ino)?;
        let mut val = TryVec::new();
        self.xattr_find(ino, ns, name, &mut val)?.ok_or(Error::NoData)?;
        let x = Xattr::decode(&val).map_err(|_| Error::Corrupt("malformed xattr"))?;
        out.clear();
        out.try_extend_from_slice(x.value)
    }

    /// Set attribute `full_name` to `value`.
    pub fn setxattr(&mut self, ino: u64, full_name: &[u8], value: &[u8], flags: u32) -> Result<Attr> {
        self.check_user_writable()?;
        let (ns, name) = Self::split_name(full_name)?;
        if value.len() > self.xattr_value_max() {
            return Err(Error::ArgTooBig);
        }
        let mut inode = self.inode_read(ino)?;
        let mut val = TryVec::new();
        let existing = self.xattr_find(ino, ns, name, &mut val)?;
        match (existing, flags & (XATTR_CREATE | XATTR_REPLACE)) {
            (Some(_), XATTR_CREATE) => return Err(Error::Exists),
            (None, XATTR_REPLACE) => return Err(Error::NoData),
            (_, f) if f == XATTR_CREATE | XATTR_REPLACE => return Err(Error::Invalid),
            _ => {}
        }
        let pos = match existing {
            Some(p) => p,
            None => {
                let slot = slot_of(self.sb.hash_seed, ns, name);
                let mut free = None;
                for s in slot..slot + HASH_PROBE {
                    let p = Pos::new(ino, s, SNAPSHOT_ROOT);
                    if self.get(BtreeId::Xattrs, p, &mut val)?.is_none() {
                        free = Some(p);
                        break;
                    }
                }
                free.ok_or(Error::NoSpace)?
            }
        };
        let x = Xattr { ns, name, value };
        let mut buf = TryVec::new();
        buf.try_resize(x.encoded_len(), 0)?;
        x.encode(&mut buf).map_err(|_| Error::Range)?;
        inode.ctime = now_ns();
        self.in_txn(|fs| {
            fs.btree_set(BtreeId::Xattrs, pos, KeyType::Xattr, &buf)?;
            fs.inode_write(ino, &inode)
        })?;
        Ok(Attr { ino, inode })
    }

    /// Remove attribute `full_name`.
    pub fn removexattr(&mut self, ino: u64, full_name: &[u8]) -> Result<()> {
        self.check_user_writable()?;
        let (ns, name) = Self::split_name(full_name)?;
        let mut inode = self.inode_read(ino)?;
        let mut val = TryVec::new();
        let pos = self.xattr_find(ino, ns, name, &mut val)?.ok_or(Error::NoData)?;
        inode.ctime = now_ns();
        self.in_txn(|fs| {
            fs.btree_delete(BtreeId::Xattrs, pos)?;
            fs.inode_write(ino, &inode)
        })
    }

    /// Append every attribute name, NUL terminated, to `out` (listxattr(2)).
    pub fn listxattr(&mut self, ino: u64, out: &mut TryVec<u8>) -> Result<()> {
        self.inode_read(ino)?;
        out.clear();
        self.xattr_walk(ino, &mut |ns, name, _| {
            out.try_extend_from_slice(ns.prefix())?;
            out.try_extend_from_slice(name)?;
            out.try_push(0)
        })
    }

    /// Call `f(namespace, name, value)` for every attribute of `ino`.
    pub fn xattr_walk(&mut self, ino: u64, f: &mut XattrFn<'_>) -> Result<()> {
        let mut from = Pos::new(ino, 0, 0);
        let to = Pos::new(ino, u64::MAX, u32::MAX);
        let mut val = TryVec::new();
        while let Some((pos, _)) = self.peek(BtreeId::Xattrs, from, to, &mut val)? {
            let x = Xattr::decode(&val).map_err(|_| Error::Corrupt("malformed xattr"))?;
            f(x.ns, x.name, x.value)?;
            match pos.successor() {
                Some(p) => from = p,
                None => break,
            }
        }
        Ok(())
    }

    /// Delete every attribute of `ino` (inode deletion), in bounded transactions.
    pub(crate) fn xattrs_delete_all(&mut self, ino: u64) -> Result<()> {
        let to = Pos::new(ino, u64::MAX, u32::MAX);
        let mut val = TryVec::new();
        loop {
            let more = self.in_txn(|fs| {
                for _ in 0..64 {
                    match fs.peek(BtreeId::Xattrs, Pos::new(ino, 0, 0), to, &mut val)? {
                        Some((pos, _)) => {
                            fs.btree_delete(BtreeId::Xattrs, pos)?;
                        }
                        None => return Ok(false),
                    }
                }
                Ok(true)
            })?;
            if !more {
                return Ok(());
            }
        }
    }
}
