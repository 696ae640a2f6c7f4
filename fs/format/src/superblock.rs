//! The superblock: identity, options, layout, member devices and the latest
//! checkpoint (b-tree roots and where journal replay starts).
//!
//! Every member device carries copies at [`SB_OFFSETS`]; each copy is
//! [`SB_BYTES`] long, checksummed with CRC-32C, and carries a sequence number.
//! Readers take the valid copy with the highest sequence. The byte layout is in
//! `Documentation/format.md`.

use super::bytes::{Reader, Writer};
use super::checksum::{crc32c, ChecksumType};
use super::error::{FormatError, Result};
use super::extent::Compression;
use super::key::BTREE_ID_NR;
use super::node::BtreePtr;
use super::{
    FORMAT_VERSION, MAX_BLOCK_SIZE, MAX_BUCKET_SIZE, MAX_NODE_SIZE, MIN_BLOCK_SIZE, MIN_BUCKET_SIZE,
    MIN_NODE_SIZE,
};

/// Superblock magic.
pub const SB_MAGIC: [u8; 8] = *b"ARBORFS\0";
/// Bytes of one superblock copy.
pub const SB_BYTES: usize = 4096;
/// Byte offsets of the copies on every member.
pub const SB_OFFSETS: [u64; 3] = [4096, 128 * 1024, 512 * 1024];
/// Bytes at the start of every member reserved for superblocks.
pub const SB_RESERVED_BYTES: u64 = 1 << 20;
/// Most member devices.
pub const MAX_MEMBERS: usize = 16;
/// Bytes of a label.
pub const LABEL_BYTES: usize = 32;
/// Bytes of a target (a label or label prefix such as "ssd").
pub const TARGET_BYTES: usize = 16;
/// Root slots stored (room for b-trees added later).
pub const ROOT_SLOTS: usize = 8;
/// Offset of the member table.
pub const MEMBERS_OFFSET: usize = 512;
/// Bytes of one member record.
pub const MEMBER_BYTES: usize = 128;

/// Compatible features this code knows (none yet).
pub const COMPAT_KNOWN: u64 = 0;
/// Read-only-compatible features this code knows (none yet).
pub const RO_COMPAT_KNOWN: u64 = RO_COMPAT_PROJECT_ID;
/// Inodes may carry a project id (bytes 84-87 of the inode, which older
/// writers zero when they re-encode it).
pub const RO_COMPAT_PROJECT_ID: u64 = 1;
/// Incompatible features this code knows.
pub const INCOMPAT_KNOWN: u64 = INCOMPAT_CHUNKED_CSUMS | INCOMPAT_UNORDERED_ENTRIES;
/// Data extents may carry one checksum per chunk (`EXTENT_CHUNKED`).
pub const INCOMPAT_CHUNKED_CSUMS: u64 = 1;
/// Journal entries may be written without a flush before them, marked by a
/// [`crate::journal::Record::Unordered`] record: replay checks the data of
/// such an entry's extents when no entry follows it.
pub const INCOMPAT_UNORDERED_ENTRIES: u64 = 2;

/// Superblock flag: the file system was cleanly unmounted (journal empty).
pub const SB_FLAG_CLEAN: u64 = 1;

/// State of a member device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum MemberState {
    /// In use.
    #[default]
    Active = 0,
    /// Readable, but no new data goes there.
    ReadOnly = 1,
    /// Being emptied.
    Evacuating = 2,
    /// Missing or removed.
    Failed = 3,
}

impl MemberState {
    fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            0 => MemberState::Active,
            1 => MemberState::ReadOnly,
            2 => MemberState::Evacuating,
            3 => MemberState::Failed,
            _ => return Err(FormatError::UnknownType("member state")),
        })
    }

    /// Name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            MemberState::Active => "active",
            MemberState::ReadOnly => "ro",
            MemberState::Evacuating => "evacuating",
            MemberState::Failed => "failed",
        }
    }
}

/// One member device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Member {
    /// Device UUID.
    pub uuid: [u8; 16],
    /// Usable size in bytes.
    pub size: u64,
    /// Bucket size in bytes.
    pub bucket_size: u32,
    /// Number of buckets (`size / bucket_size`).
    pub nbuckets: u64,
    /// Label, such as `ssd.fast1`, NUL padded.
    pub label: [u8; LABEL_BYTES],
    /// How many copies a replica on this device counts for (0 = cache only).
    pub durability: u8,
    /// State.
    pub state: MemberState,
}

/// The decoded superblock.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Superblock {
    /// Format version that wrote this.
    pub version: u32,
    /// Compatible feature bits.
    pub compat: u64,
    /// Read-only-compatible feature bits.
    pub ro_compat: u64,
    /// Incompatible feature bits.
    pub incompat: u64,
    /// Write sequence: the valid copy with the highest wins.
    pub seq: u64,
    /// File system UUID.
    pub uuid: [u8; 16],
    /// File system label, NUL padded.
    pub label: [u8; LABEL_BYTES],
    /// Data block size.
    pub block_size: u32,
    /// B-tree node size.
    pub node_size: u32,
    /// Creation time, ns since the epoch.
    pub ctime: i64,
    /// Checksum for b-tree nodes and journal entries.
    pub meta_csum: ChecksumType,
    /// Checksum for data extents.
    pub data_csum: ChecksumType,
    /// Compression for new data.
    pub compression: Compression,
    /// Compression level (zstd: 1..=19; 0 = default).
    pub compression_level: u8,
    /// Copies of data to keep.
    pub replicas: u8,
    /// Number of members.
    pub nr_members: u8,
    /// Which member this copy was written to.
    pub this_member: u8,
    /// Target for new writes.
    pub foreground_target: [u8; TARGET_BYTES],
    /// Target data moves to in the background.
    pub background_target: [u8; TARGET_BYTES],
    /// Target for copies of hot data.
    pub promote_target: [u8; TARGET_BYTES],
    /// Seed of the dirent and xattr name hash.
    pub hash_seed: u64,
    /// Member holding the journal.
    pub journal_dev: u8,
    /// Byte offset of the journal ring on that member.
    pub journal_offset: u64,
    /// Bytes in the journal ring.
    pub journal_size: u64,
    /// Last journal sequence whose effects the roots below contain.
    pub checkpoint_seq: u64,
    /// Ring-relative offset where entry `checkpoint_seq + 1` goes.
    pub journal_resume: u64,
    /// Root of each b-tree (offset 0: empty tree).
    pub roots: [BtreePtr; BTREE_ID_NR],
    /// Number of inodes at the checkpoint.
    pub inodes: u64,
    /// Bytes of stored file data at the checkpoint.
    pub data_bytes: u64,
    /// `SB_FLAG_*` bits.
    pub flags: u64,
    /// Member devices (`nr_members` valid).
    pub members: [Member; MAX_MEMBERS],
}

fn label_valid(l: &[u8]) -> bool {
    let len = l.iter().position(|&b| b == 0).unwrap_or(l.len());
    l.iter().skip(len).all(|&b| b == 0) && core::str::from_utf8(l.get(..len).unwrap_or(&[])).is_ok()
}

/// The text of a NUL-padded label.
pub fn label_str(l: &[u8]) -> &str {
    let len = l.iter().position(|&b| b == 0).unwrap_or(l.len());
    core::str::from_utf8(l.get(..len).unwrap_or(&[])).unwrap_or("?")
}

/// Copy `s` into a NUL-padded label field; `None` if it does not fit.
pub fn make_label<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() > N || b.contains(&0) {
        return None;
    }
    let mut out = [0u8; N];
    out.get_mut(..b.len())?.copy_from_slice(b);
    Some(out)
}

fn check_pow2(v: u32, min: u32, max: u32, what: &'static str) -> Result<()> {
    if !v.is_power_of_two() || v < min || v > max {
        return Err(FormatError::BadField(what));
    }
    Ok(())
}

impl Superblock {
    /// The valid members.
    pub fn members(&self) -> &[Member] {
        self.members.get(..usize::from(self.nr_members)).unwrap_or(&[])
    }

    /// Whether features this code cannot write are set (mount read-only).
    pub fn needs_read_only(&self) -> bool {
        self.ro_compat & !RO_COMPAT_KNOWN != 0
    }

    /// Check cross-field invariants; the decoder calls this too.
    pub fn validate(&self) -> Result<()> {
        check_pow2(self.block_size, MIN_BLOCK_SIZE, MAX_BLOCK_SIZE, "block size")?;
        check_pow2(self.node_size, MIN_NODE_SIZE, MAX_NODE_SIZE, "b-tree node size")?;
        if self.node_size < self.block_size {
            return Err(FormatError::BadField("b-tree node size"));
        }
        if self.nr_members == 0 || usize::from(self.nr_members) > MAX_MEMBERS {
            return Err(FormatError::BadField("member count"));
        }
        if self.this_member >= self.nr_members || self.journal_dev >= self.nr_members {
            return Err(FormatError::BadField("member index"));
        }
        if self.replicas == 0 || usize::from(self.replicas) > super::extent::MAX_PTRS {
            return Err(FormatError::BadField("replicas"));
        }
        if !label_valid(&self.label)
            || !label_valid(&self.foreground_target)
            || !label_valid(&self.background_target)
            || !label_valid(&self.promote_target)
        {
            return Err(FormatError::BadField("label"));
        }
        for m in self.members() {
            check_pow2(m.bucket_size, MIN_BUCKET_SIZE, MAX_BUCKET_SIZE, "bucket size")?;
            // (Checkpoints need a few nodes per bucket to end: §5.)
            if u64::from(m.bucket_size) < u64::from(self.node_size) * u64::from(super::MIN_NODES_PER_BUCKET) {
                return Err(FormatError::BadField("bucket size"));
            }
            let covered = m.nbuckets.checked_mul(u64::from(m.bucket_size));
            if covered.is_none_or(|c| c > m.size) || m.nbuckets < 2 {
                return Err(FormatError::BadField("member size"));
            }
            if !label_valid(&m.label) {
                return Err(FormatError::BadField("member label"));
            }
        }
        let jm =
            self.members.get(usize::from(self.journal_dev)).ok_or(FormatError::BadField("journal device"))?;
        let jend = self.journal_offset.checked_add(self.journal_size);
        if self.journal_offset < SB_RESERVED_BYTES
            || jend.is_none_or(|e| e > jm.size)
            || self.journal_size < u64::from(self.block_size) * 8
            || !self.journal_offset.is_multiple_of(u64::from(self.block_size))
            || !self.journal_size.is_multiple_of(u64::from(self.block_size))
            || self.journal_resume >= self.journal_size
            || !self.journal_resume.is_multiple_of(u64::from(self.block_size))
        {
            return Err(FormatError::BadField("journal layout"));
        }
        for r in &self.roots {
            if r.offset != 0 && (r.dev >= self.nr_members || r.level >= super::node::MAX_DEPTH) {
                return Err(FormatError::BadField("b-tree root"));
            }
        }
        Ok(())
    }

    /// Decode and validate one copy.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut sb = Superblock::default();
        sb.decode_into(buf)?;
        Ok(sb)
    }

    /// Decode and validate one copy into `self` (no large temporaries, for
    /// callers with small stacks). On error `self` holds partial data.
    pub fn decode_into(&mut self, buf: &[u8]) -> Result<()> {
        let buf = buf.get(..SB_BYTES).ok_or(FormatError::Truncated)?;
        let mut r = Reader::new(buf);
        if r.array::<8>()? != SB_MAGIC {
            return Err(FormatError::BadMagic);
        }
        let csum = r.u32()?;
        if crc32c(buf.get(12..).ok_or(FormatError::Truncated)?) != csum {
            return Err(FormatError::BadChecksum);
        }
        self.version = r.u32()?;
        if self.version == 0 || self.version > FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion);
        }
        self.compat = r.u64()?;
        self.ro_compat = r.u64()?;
        self.incompat = r.u64()?;
        if self.incompat & !INCOMPAT_KNOWN != 0 {
            return Err(FormatError::UnknownIncompatFeature);
        }
        self.seq = r.u64()?;
        self.uuid = r.array()?;
        self.label = r.array()?;
        self.block_size = r.u32()?;
        self.node_size = r.u32()?;
        self.ctime = r.i64()?;
        self.meta_csum = ChecksumType::from_u8(r.u8()?)?;
        self.data_csum = ChecksumType::from_u8(r.u8()?)?;
        self.compression = Compression::from_u8(r.u8()?)?;
        self.compression_level = r.u8()?;
        self.replicas = r.u8()?;
        self.nr_members = r.u8()?;
        self.this_member = r.u8()?;
        r.skip(1)?;
        self.foreground_target = r.array()?;
        self.background_target = r.array()?;
        self.promote_target = r.array()?;
        self.hash_seed = r.u64()?;
        r.skip(8 * 4)?; // superblock offsets: fixed, informational
        self.journal_dev = r.u8()?;
        r.skip(7)?;
        self.journal_offset = r.u64()?;
        self.journal_size = r.u64()?;
        self.checkpoint_seq = r.u64()?;
        self.journal_resume = r.u64()?;
        for i in 0..ROOT_SLOTS {
            let p = BtreePtr::decode(r.bytes(super::node::BTREE_PTR_BYTES)?)?;
            if let Some(slot) = self.roots.get_mut(i) {
                *slot = p;
            }
        }
        self.inodes = r.u64()?;
        self.data_bytes = r.u64()?;
        self.flags = r.u64()?;
        let nr = usize::from(self.nr_members);
        for (i, m) in self.members.iter_mut().enumerate() {
            let mut mr = Reader::new(
                buf.get(MEMBERS_OFFSET + i * MEMBER_BYTES..MEMBERS_OFFSET + (i + 1) * MEMBER_BYTES)
                    .ok_or(FormatError::Truncated)?,
            );
            m.uuid = mr.array()?;
            m.size = mr.u64()?;
            m.bucket_size = mr.u32()?;
            mr.skip(4)?;
            m.nbuckets = mr.u64()?;
            m.label = mr.array()?;
            m.durability = mr.u8()?;
            m.state = if i < nr { MemberState::from_u8(mr.u8()?)? } else { MemberState::Active };
        }
        self.validate()
    }

    /// Encode one copy into `buf` (at least [`SB_BYTES`]), for member `this_member`.
    pub fn encode(&self, buf: &mut [u8]) -> Result<()> {
        let buf = buf.get_mut(..SB_BYTES).ok_or(FormatError::NoSpace)?;
        buf.fill(0);
        {
            let mut w = Writer::new(buf);
            w.bytes(&SB_MAGIC)?;
            w.u32(0)?; // checksum, filled below
            w.u32(self.version)?;
            w.u64(self.compat)?;
            w.u64(self.ro_compat)?;
            w.u64(self.incompat)?;
            w.u64(self.seq)?;
            w.bytes(&self.uuid)?;
            w.bytes(&self.label)?;
            w.u32(self.block_size)?;
            w.u32(self.node_size)?;
            w.i64(self.ctime)?;
            w.u8(self.meta_csum as u8)?;
            w.u8(self.data_csum as u8)?;
            w.u8(self.compression as u8)?;
            w.u8(self.compression_level)?;
            w.u8(self.replicas)?;
            w.u8(self.nr_members)?;
            w.u8(self.this_member)?;
            w.u8(0)?;
            w.bytes(&self.foreground_target)?;
            w.bytes(&self.background_target)?;
            w.bytes(&self.promote_target)?;
            w.u64(self.hash_seed)?;
            for off in SB_OFFSETS {
                w.u64(off)?;
            }
            w.u64(0)?;
            w.u8(self.journal_dev)?;
            w.zeros(7)?;
            w.u64(self.journal_offset)?;
            w.u64(self.journal_size)?;
            w.u64(self.checkpoint_seq)?;
            w.u64(self.journal_resume)?;
            let mut p = [0u8; super::node::BTREE_PTR_BYTES];
            for i in 0..ROOT_SLOTS {
                let root = self.roots.get(i).copied().unwrap_or_default();
                root.encode(&mut p)?;
                w.bytes(&p)?;
            }
            w.u64(self.inodes)?;
            w.u64(self.data_bytes)?;
            w.u64(self.flags)?;
        }
        for (i, m) in self.members().iter().enumerate() {
            let mut w = Writer::new(
                buf.get_mut(MEMBERS_OFFSET + i * MEMBER_BYTES..MEMBERS_OFFSET + (i + 1) * MEMBER_BYTES)
                    .ok_or(FormatError::NoSpace)?,
            );
            w.bytes(&m.uuid)?;
            w.u64(m.size)?;
            w.u32(m.bucket_size)?;
            w.u32(0)?;
            w.u64(m.nbuckets)?;
            w.bytes(&m.label)?;
            w.u8(m.durability)?;
            w.u8(m.state as u8)?;
        }
        let csum = crc32c(buf.get(12..).ok_or(FormatError::NoSpace)?);
        super::bytes::put_u32(buf, 8, csum)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> Superblock {
        let mut members = [Member::default(); MAX_MEMBERS];
        members[0] = Member {
            uuid: [7; 16],
            size: 64 << 20,
            bucket_size: 1 << 20,
            nbuckets: 64,
            label: make_label("ssd.fast1").unwrap(),
            durability: 1,
            state: MemberState::Active,
        };
        Superblock {
            version: FORMAT_VERSION,
            compat: 0,
            ro_compat: 0,
            incompat: 0,
            seq: 3,
            uuid: [1; 16],
            label: make_label("test").unwrap(),
            block_size: 4096,
            node_size: 65536,
            ctime: 1_700_000_000_000_000_000,
            meta_csum: ChecksumType::Crc32c,
            data_csum: ChecksumType::Xxhash64,
            compression: Compression::Zstd,
            compression_level: 3,
            replicas: 1,
            nr_members: 1,
            this_member: 0,
            foreground_target: [0; TARGET_BYTES],
            background_target: make_label("hdd").unwrap(),
            promote_target: [0; TARGET_BYTES],
            hash_seed: 0x1234,
            journal_dev: 0,
            journal_offset: 1 << 20,
            journal_size: 4 << 20,
            checkpoint_seq: 10,
            journal_resume: 8192,
            roots: [BtreePtr { dev: 0, level: 1, gen: 2, offset: 8 << 20, seq: 10 }; BTREE_ID_NR],
            inodes: 5,
            data_bytes: 6,
            flags: SB_FLAG_CLEAN,
            members,
        }
    }

    #[test]
    fn round_trip() {
        let sb = sample();
        let mut buf = [0u8; SB_BYTES];
        sb.encode(&mut buf).unwrap();
        assert_eq!(Superblock::decode(&buf), Ok(sb));
    }

    #[test]
    fn rejects_damage() {
        let sb = sample();
        let mut buf = [0u8; SB_BYTES];
        sb.encode(&mut buf).unwrap();
        let mut bad = buf;
        bad[0] = b'X';
        assert_eq!(Superblock::decode(&bad), Err(FormatError::BadMagic));
        let mut bad = buf;
        bad[3000] ^= 1;
        assert_eq!(Superblock::decode(&bad), Err(FormatError::BadChecksum));
        let mut newer = sb.clone();
        newer.version = FORMAT_VERSION + 1;
        newer.encode(&mut buf).unwrap();
        assert_eq!(Superblock::decode(&buf), Err(FormatError::UnsupportedVersion));
        let mut feat = sb.clone();
        feat.incompat = 1 << 40;
        feat.encode(&mut buf).unwrap();
        assert_eq!(Superblock::decode(&buf), Err(FormatError::UnknownIncompatFeature));
        let mut geom = sb;
        geom.block_size = 3000;
        geom.encode(&mut buf).unwrap();
        assert!(matches!(Superblock::decode(&buf), Err(FormatError::BadField(_))));
    }
}
