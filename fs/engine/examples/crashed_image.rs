//! Make an image whose latest changes exist only in the journal, as after a
//! crash: creates `replayed/file` with known content, fsyncs, and stops
//! without a checkpoint. Used by the QEMU suite to test journal replay at
//! mount. Run: `cargo run -p arborfs-engine --example crashed_image IMAGE`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::sys::{FileDevice, TryVec};
use arborfs_engine::{Fs, OpenOptions};

fn main() {
    let path = std::env::args().nth(1).expect("usage: crashed_image IMAGE");
    let mut devs = TryVec::new();
    devs.try_push(FileDevice::open(path.as_ref(), true).unwrap()).unwrap();
    let mut fs = Fs::open(devs, &OpenOptions::default()).unwrap();
    let d = fs.mkdir(ROOT_INO, b"replayed", 0o755, 0, 0).unwrap().ino;
    let f = fs.create(d, b"file", S_IFREG | 0o644, 0, 0, 0).unwrap().ino;
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    fs.write(f, 0, &data).unwrap();
    fs.setxattr(f, b"user.replayed", b"yes", 0).unwrap();
    fs.fsync(f).unwrap();
    let checkpoints = fs.stats().checkpoints;
    // Power cut: no checkpoint, no clean flag; only the journal has this.
    drop(fs.into_devices());
    println!("crashed_image: {path}: journal holds the changes ({checkpoints} checkpoints since open)");
}
