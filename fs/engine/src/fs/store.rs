//! The file system's node store: b-tree nodes live in b-tree buckets of the
//! member devices. Places come from the allocator's node write point;
//! pointers are checked against the layout and bucket generations before a
//! node is read; released places stay live until the next checkpoint.

use crate::alloc::Allocator;
use crate::btree::NodeStore;
use crate::error::{Error, Result};
use crate::format::checksum::ChecksumType;
use crate::format::node::BtreePtr;
use crate::format::superblock::Superblock;
use crate::sys::{BlockDevice, TryVec};

/// The member devices and the allocator, seen as a node store.
pub(crate) struct Store<'a, D: BlockDevice> {
    devs: &'a mut TryVec<D>,
    alloc: &'a mut Allocator,
    block_size: usize,
    checksum: ChecksumType,
}

impl<'a, D: BlockDevice> Store<'a, D> {
    pub(crate) fn new(devs: &'a mut TryVec<D>, alloc: &'a mut Allocator, sb: &Superblock) -> Self {
        Store { devs, alloc, block_size: sb.block_size as usize, checksum: sb.meta_csum }
    }
}

impl<D: BlockDevice> NodeStore for Store<'_, D> {
    fn checksum(&self) -> ChecksumType {
        self.checksum
    }

    fn block_size(&self) -> usize {
        self.block_size
    }

    fn read(&mut self, p: &BtreePtr, buf: &mut [u8]) -> Result<()> {
        self.alloc.check_node_ptr(p).map_err(Error::Corrupt)?;
        let dev = self.devs.get_mut(usize::from(p.dev)).ok_or(Error::Corrupt("no such device"))?;
        dev.read_at(p.offset, buf)
    }

    fn allocate(&mut self) -> Result<BtreePtr> {
        self.alloc.allocate_node()
    }

    fn write(&mut self, p: &BtreePtr, image: &[u8]) -> Result<()> {
        let dev = self.devs.get_mut(usize::from(p.dev)).ok_or(Error::Internal("node on a missing device"))?;
        dev.write_at(p.offset, image)
    }

    fn write_many(&mut self, nodes: &[(BtreePtr, &[u8])]) -> Result<()> {
        if nodes.iter().any(|(p, _)| usize::from(p.dev) >= self.devs.len()) {
            return Err(Error::Internal("node on a missing device"));
        }
        // Per member, as its device takes them (nodes are on one or few).
        let mut writes: TryVec<(u64, &[u8])> = TryVec::new();
        writes.try_reserve(nodes.len())?;
        for (i, dev) in self.devs.iter_mut().enumerate() {
            writes.clear();
            for (p, image) in nodes.iter().filter(|(p, _)| usize::from(p.dev) == i) {
                writes.try_push((p.offset, *image))?;
            }
            if !writes.is_empty() {
                dev.write_many(&writes)?;
            }
        }
        Ok(())
    }

    fn release(&mut self, p: &BtreePtr) -> Result<()> {
        self.alloc.released.try_push(*p)
    }

    fn bucket_gen(&self, p: &BtreePtr) -> Option<u32> {
        self.alloc.node_bucket_gen(p)
    }
}
