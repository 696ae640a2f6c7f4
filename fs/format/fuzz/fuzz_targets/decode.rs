//! Coverage-guided fuzzing of every on-disk decoder: `cargo fuzz run decode`
//! (needs a nightly toolchain; not part of CI, where tests/decoders.rs runs a
//! seeded version of the same).
#![no_main]

use arborfs_format::checksum::ChecksumType;
use arborfs_format::node::{BtreePtr, NodeHeader};
use arborfs_format::superblock::Superblock;
use arborfs_format::{alloc_info, dirent, extent, inode, journal, xattr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Superblock::decode(data);
    for csum in [ChecksumType::None, ChecksumType::Crc32c, ChecksumType::Xxhash64] {
        if let Ok(h) = NodeHeader::decode(data, csum) {
            for e in h.entries(data) {
                let _ = e;
            }
        }
        if let Ok(h) = journal::JournalHeader::decode(data, csum) {
            for r in h.records(data) {
                let _ = r;
            }
        }
    }
    let _ = inode::Inode::decode(data);
    let _ = dirent::Dirent::decode(data);
    let _ = xattr::Xattr::decode(data);
    let _ = extent::Extent::decode(data);
    let _ = alloc_info::AllocInfo::decode(data);
    let _ = BtreePtr::decode(data);
});
