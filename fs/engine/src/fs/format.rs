//! Making a new file system (mkfs): choosing the layout, writing the first
//! superblocks, the root directory and the first checkpoint.

use super::{Fs, OpenOptions};
use crate::alloc::sb_buckets;
use crate::error::{Error, Result};
use crate::format::checksum::ChecksumType;
use crate::format::extent::Compression;
use crate::format::key::BTREE_ID_NR;
use crate::format::node::BtreePtr;
use crate::format::superblock::{Member, MemberState, Superblock, LABEL_BYTES, MAX_MEMBERS, TARGET_BYTES};
use crate::format::{
    FORMAT_VERSION, MAX_BLOCK_SIZE, MAX_BUCKET_SIZE, MIN_BLOCK_SIZE, MIN_BUCKET_SIZE, ROOT_INO,
};
use crate::sys::{now_ns, BlockDevice, TryBox, TryVec};

/// One member's settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemberOptions {
    /// Label, such as `ssd.fast1`.
    pub label: [u8; LABEL_BYTES],
    /// Bucket size (0: chosen from the device size).
    pub bucket_size: u32,
    /// Durability (copies a replica here counts for).
    pub durability: u8,
}

/// Settings for a new file system.
#[derive(Debug, Clone)]
pub struct FormatOptions {
    /// File system UUID.
    pub uuid: [u8; 16],
    /// UUID of each member, in order.
    pub member_uuids: [[u8; 16]; MAX_MEMBERS],
    /// Seed of the name hash.
    pub hash_seed: u64,
    /// Label.
    pub label: [u8; LABEL_BYTES],
    /// Data block size.
    pub block_size: u32,
    /// B-tree node size (0: chosen from the bucket size).
    pub node_size: u32,
    /// Metadata checksum.
    pub meta_csum: ChecksumType,
    /// Data checksum.
    pub data_csum: ChecksumType,
    /// Compression for new data.
    pub compression: Compression,
    /// Compression level.
    pub compression_level: u8,
    /// Targets.
    pub foreground_target: [u8; TARGET_BYTES],
    /// Background target.
    pub background_target: [u8; TARGET_BYTES],
    /// Promote target.
    pub promote_target: [u8; TARGET_BYTES],
    /// Per member settings.
    pub members: [MemberOptions; MAX_MEMBERS],
    /// Owner of the root directory.
    pub root_uid: u32,
    /// Group of the root directory.
    pub root_gid: u32,
    /// Permission bits of the root directory.
    pub root_mode: u32,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            uuid: [0; 16],
            member_uuids: [[0; 16]; MAX_MEMBERS],
            hash_seed: 0,
            label: [0; LABEL_BYTES],
            block_size: 4096,
            node_size: 0,
            meta_csum: ChecksumType::Crc32c,
            data_csum: ChecksumType::Xxhash64,
            compression: Compression::None,
            compression_level: 0,
            foreground_target: [0; TARGET_BYTES],
            background_target: [0; TARGET_BYTES],
            promote_target: [0; TARGET_BYTES],
            members: [MemberOptions { durability: 1, ..Default::default() }; MAX_MEMBERS],
            root_uid: 0,
            root_gid: 0,
            root_mode: 0o755,
        }
    }
}

/// The bucket size chosen for a device of `size` bytes: about 1/512 of it,
/// between 64 KiB and 2 MiB, and never smaller than four nodes.
pub fn default_bucket_size(size: u64, node_size: u32) -> u32 {
    let target = (size / 512).clamp(u64::from(MIN_BUCKET_SIZE), 2 << 20);
    let pow2 = 1u64 << (63 - target.leading_zeros());
    (pow2 as u32).max(node_size.saturating_mul(crate::format::MIN_NODES_PER_BUCKET)).max(MIN_BUCKET_SIZE)
}

/// The smallest device the layout accepts, for messages.
pub const MIN_DEVICE_BYTES: u64 = 8 << 20;

/// The superblock a new file system on devices of `sizes` bytes (members
/// in order) gets: bucket and node sizes, the journal, member records.
/// Nothing is written; [`Fs::format`] writes it, `mkfs --dry-run` shows it.
pub fn layout(sizes: &[u64], opts: &FormatOptions) -> Result<TryBox<Superblock>> {
    if sizes.is_empty() || sizes.len() > MAX_MEMBERS {
        return Err(Error::Invalid);
    }
    let block = opts.block_size;
    if !block.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block) {
        return Err(Error::Invalid);
    }
    let first_size = sizes.first().copied().unwrap_or(0);
    let mut members = [Member::default(); MAX_MEMBERS];
    let mut node_size = opts.node_size;
    for (i, &size) in sizes.iter().enumerate() {
        if size < MIN_DEVICE_BYTES {
            return Err(Error::NoSpace);
        }
        let mo = opts.members.get(i).copied().unwrap_or_default();
        let mut bucket =
            if mo.bucket_size != 0 { mo.bucket_size } else { default_bucket_size(size, node_size) };
        if i == 0 && node_size == 0 {
            node_size = (bucket / 4).clamp(16384, 256 * 1024).max(block);
            if mo.bucket_size == 0 {
                bucket = default_bucket_size(size, node_size);
            }
        }
        if !bucket.is_power_of_two() || !(MIN_BUCKET_SIZE..=MAX_BUCKET_SIZE).contains(&bucket) {
            return Err(Error::Invalid);
        }
        let nbuckets = size.checked_div(u64::from(bucket)).ok_or(Error::Invalid)?;
        *members.get_mut(i).ok_or(Error::Invalid)? = Member {
            uuid: opts.member_uuids.get(i).copied().unwrap_or_default(),
            size,
            bucket_size: bucket,
            nbuckets,
            label: mo.label,
            durability: mo.durability,
            state: MemberState::Active,
        };
    }
    let m0 = members[0];
    let bs0 = u64::from(m0.bucket_size);
    let journal_bytes = (first_size / 32).clamp(1 << 20, 256 << 20);
    // (div_ceil without its division-by-zero panic: bs0 was checked above.)
    let whole = journal_bytes.checked_div(bs0).ok_or(Error::Invalid)?;
    let part = u64::from(journal_bytes.checked_rem(bs0).is_some_and(|r| r != 0));
    let journal_buckets = (whole + part).max(2);
    let journal_offset = sb_buckets(bs0).saturating_mul(bs0);
    let needed = sb_buckets(bs0) + journal_buckets + 16;
    if m0.nbuckets < needed {
        return Err(Error::NoSpace);
    }
    let sb = TryBox::try_new(Superblock {
        version: FORMAT_VERSION,
        compat: 0,
        ro_compat: crate::format::superblock::RO_COMPAT_PROJECT_ID,
        incompat: crate::format::superblock::INCOMPAT_CHUNKED_CSUMS
            | crate::format::superblock::INCOMPAT_UNORDERED_ENTRIES,
        seq: 0,
        uuid: opts.uuid,
        label: opts.label,
        block_size: block,
        node_size,
        ctime: now_ns(),
        meta_csum: opts.meta_csum,
        data_csum: opts.data_csum,
        compression: opts.compression,
        compression_level: opts.compression_level,
        replicas: 1,
        nr_members: sizes.len() as u8,
        this_member: 0,
        foreground_target: opts.foreground_target,
        background_target: opts.background_target,
        promote_target: opts.promote_target,
        hash_seed: opts.hash_seed,
        journal_dev: 0,
        journal_offset,
        journal_size: journal_buckets.saturating_mul(bs0),
        checkpoint_seq: 0,
        journal_resume: 0,
        roots: [BtreePtr::default(); BTREE_ID_NR],
        inodes: 0,
        data_bytes: 0,
        flags: 0,
        members,
    })?;
    sb.validate().map_err(|_| Error::Invalid)?;
    Ok(sb)
}

impl<D: BlockDevice> Fs<D> {
    /// Make a new file system on `devs` and open it.
    pub fn format(devs: TryVec<D>, opts: &FormatOptions) -> Result<Self> {
        let mut sizes: TryVec<u64> = TryVec::new();
        for d in devs.iter() {
            sizes.try_push(d.size())?;
        }
        let sb = layout(&sizes, opts)?;
        let block = sb.block_size;
        let journal_offset = sb.journal_offset;
        let mut fs = Fs::new(devs, sb, &OpenOptions::default())?;
        fs.alloc.finish_load();
        // Entries of an earlier file system in the ring carry another tag, but
        // zeroing the first block also keeps tools like blkid from seeing them.
        let mut zero: TryVec<u8> = TryVec::new();
        zero.try_resize(block as usize, 0)?;
        let jdev = fs.devs.get_mut(0).ok_or(Error::Invalid)?;
        jdev.write_at(journal_offset, &zero)?;
        let root = super::inode::root_dir_inode(opts.root_mode, opts.root_uid, opts.root_gid);
        fs.write_txn(|t| {
            t.inode_write(ROOT_INO, &root)?;
            t.account(1, 0);
            Ok(())
        })?;
        fs.checkpoint()?;
        Ok(fs)
    }
}
