//! The node store: where the b-tree keeps its nodes. The b-tree knows nodes
//! only through this interface (a place for a new node, write, read,
//! release); the file system's store puts them in buckets of the member
//! devices and checks pointers against bucket generations, the b-tree's own
//! tests keep them in memory.

use crate::error::Result;
use crate::format::checksum::ChecksumType;
use crate::format::node::BtreePtr;

/// Where nodes are read from and written to.
pub trait NodeStore {
    /// The checksum node images carry.
    fn checksum(&self) -> ChecksumType;
    /// Node images are written rounded up to this many bytes.
    fn block_size(&self) -> usize;
    /// Read the node image at `p` into `buf` (`node_size` bytes), refusing
    /// a pointer that cannot be right (outside the layout, stale) with
    /// [`crate::Error::Corrupt`].
    fn read(&mut self, p: &BtreePtr, buf: &mut [u8]) -> Result<()>;
    /// A place for one new node (checkpoints ask, one per dirty node).
    fn allocate(&mut self) -> Result<BtreePtr>;
    /// Write a node image (already block rounded) at `p`.
    fn write(&mut self, p: &BtreePtr, image: &[u8]) -> Result<()>;
    /// Write several node images, all in flight together where the device
    /// can ([`crate::sys::BlockDevice::write_many`]).
    fn write_many(&mut self, nodes: &[(BtreePtr, &[u8])]) -> Result<()> {
        nodes.iter().try_for_each(|(p, image)| self.write(p, image))
    }
    /// The tree in memory no longer references the node at `p` (it was
    /// copied to be changed); it stays on disk until the next checkpoint.
    fn release(&mut self, p: &BtreePtr) -> Result<()>;
    /// The generation of the bucket `p` points into, where the store keeps
    /// generations (fsck compares it with the pointer's).
    fn bucket_gen(&self, _p: &BtreePtr) -> Option<u32> {
        None
    }
}
