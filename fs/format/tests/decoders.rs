#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Every decoder on random and mutated input: errors are fine, panics are not.
//! (The cargo-fuzz target in `fuzz/` does the same, coverage guided.)

use arborfs_format::checksum::ChecksumType;
use arborfs_format::node::{BtreePtr, NodeBuilder, NodeHeader};
use arborfs_format::superblock::{Superblock, SB_BYTES};
use arborfs_format::{alloc_info, dirent, extent, inode, journal, xattr, BtreeId, KeyType, Pos};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn decode_all(buf: &[u8]) {
    let _ = Superblock::decode(buf);
    for csum in [ChecksumType::None, ChecksumType::Crc32c] {
        if let Ok(h) = NodeHeader::decode(buf, csum) {
            for e in h.entries(buf).flatten() {
                let _ = KeyType::from_u8(e.kind);
            }
        }
        if let Ok(h) = journal::JournalHeader::decode(buf, csum) {
            for r in h.records(buf) {
                let _ = r;
            }
        }
    }
    let _ = journal::JournalHeader::peek_len(buf);
    let _ = journal::JournalHeader::peek_seq(buf);
    let _ = inode::Inode::decode(buf);
    let _ = dirent::Dirent::decode(buf);
    let _ = xattr::Xattr::decode(buf);
    let _ = extent::Extent::decode(buf);
    let _ = alloc_info::AllocInfo::decode(buf);
    let _ = BtreePtr::decode(buf);
}

#[test]
fn random_buffers() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let len = (rng.next() % 600) as usize;
        let buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        decode_all(&buf);
    }
}

#[test]
fn mutated_valid_structures() {
    // A valid node (checksum none so mutations reach the entry decoder).
    let mut node = vec![0u8; 4096];
    let mut b = NodeBuilder::new(&mut node).unwrap();
    let mut ibuf = [0u8; inode::INODE_BYTES];
    inode::Inode { mode: inode::S_IFREG | 0o644, nlink: 1, ..Default::default() }.encode(&mut ibuf).unwrap();
    b.push(Pos::new(4096, 0, u32::MAX), KeyType::Inode, &ibuf).unwrap();
    b.push(Pos::new(4097, 0, u32::MAX), KeyType::Inode, &ibuf).unwrap();
    b.finish(BtreeId::Inodes, 0, 1, Pos::MIN, Pos::MAX, ChecksumType::None).unwrap();
    let mut rec = vec![0u8; 512];
    let mut w = arborfs_format::bytes::Writer::new(&mut rec[journal::JOURNAL_HEADER_BYTES..]);
    let r = journal::Record::BtreeUpdate {
        btree: BtreeId::Dirents,
        pos: Pos::new(1, 2, 3),
        kind: Some(KeyType::Dirent),
        value: b"\x01\0\0\0\0\0\0\0\x08\x01a",
    };
    r.encode(&mut w).unwrap();
    let len = journal::JOURNAL_HEADER_BYTES + w.position();
    journal::finish_entry(&mut rec, len, 1, 1, 7, ChecksumType::None).unwrap();
    let mut sb = vec![0u8; SB_BYTES];
    let mut rng = Rng(12345);
    let seeds = [node, rec, ibuf.to_vec()];
    for round in 0..30_000 {
        let mut buf = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.next() % 6 {
            let at = (rng.next() as usize) % buf.len();
            buf[at] = rng.next() as u8;
        }
        if rng.next().is_multiple_of(8) {
            let cut = (rng.next() as usize) % buf.len();
            buf.truncate(cut);
        }
        decode_all(&buf);
    }
    // Superblocks: mutate fields after the checksum and re-checksum, so the
    // field validation (not just the checksum) sees hostile values.
    for _ in 0..5_000 {
        sb.iter_mut().for_each(|b| *b = 0);
        sb[..8].copy_from_slice(b"ARBORFS\0");
        for _ in 0..40 {
            let at = 12 + (rng.next() as usize) % (SB_BYTES - 12);
            sb[at] = rng.next() as u8;
        }
        sb[12] = 1;
        let c = arborfs_format::checksum::crc32c(&sb[12..]);
        sb[8..12].copy_from_slice(&c.to_le_bytes());
        let _ = Superblock::decode(&sb);
    }
}
