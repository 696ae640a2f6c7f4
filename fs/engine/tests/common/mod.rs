#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use arborfs_engine::btree::cursor::{Cursor, View};
use arborfs_engine::btree::NodeMiss;
use arborfs_engine::format::extent::Extent;
use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::superblock::make_label;
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::format::{BtreeId, KeyType, Pos};
use arborfs_engine::fs::FormatOptions;
use arborfs_engine::sys::{BlockDevice, MemDevice, TryVec};
use arborfs_engine::{Fs, OpenOptions, Result};

/// Format options with fixed UUIDs and seed, so runs are reproducible.
pub fn opts() -> FormatOptions {
    let mut o = FormatOptions { uuid: [0x11; 16], hash_seed: 0x5eed, ..Default::default() };
    o.member_uuids[0] = [0x22; 16];
    o.label = make_label("test").unwrap();
    o
}

/// A fresh file system on one in-memory device.
pub fn mem_fs(size: usize) -> Fs<MemDevice> {
    mem_fs_with(size, &opts())
}

/// A fresh file system with the given options.
pub fn mem_fs_with(size: usize, o: &FormatOptions) -> Fs<MemDevice> {
    let mut devs = TryVec::new();
    devs.try_push(MemDevice::new(size)).unwrap();
    Fs::format(devs, o).unwrap()
}

/// Close and reopen.
pub fn reopen<D: BlockDevice>(fs: Fs<D>) -> Fs<D> {
    let devs = fs.close().unwrap();
    Fs::open(devs, &OpenOptions::default()).unwrap()
}

/// Reopen with a small node cache to force eviction.
pub fn reopen_small_cache<D: BlockDevice>(fs: Fs<D>) -> Fs<D> {
    let devs = fs.close().unwrap();
    Fs::open(devs, &OpenOptions { cache_bytes: 256 * 1024, ..Default::default() }).unwrap()
}

/// Read a whole file.
pub fn read_all<D: BlockDevice>(fs: &mut Fs<D>, ino: u64) -> Result<Vec<u8>> {
    let size = fs.getattr(ino)?.inode.size as usize;
    let mut buf = vec![0u8; size];
    let n = fs.read(ino, 0, &mut buf)?;
    assert_eq!(n, size);
    Ok(buf)
}

/// Run fsck without repairs; returns the problems as text.
pub fn fsck_problems<D: BlockDevice>(fs: &mut Fs<D>) -> Vec<String> {
    use arborfs_engine::fsck::{Repair, Reporter};
    let mut out = Vec::new();
    let mut sink = |p: &arborfs_engine::fsck::Problem| out.push(p.to_string());
    let mut progress = |_: &str, _: u64, _: u64| {};
    let mut r = Reporter::new(Repair::No, &mut sink, &mut progress);
    fs.fsck(&mut r).unwrap();
    out
}

/// A small deterministic PRNG (xorshift64*), so tests need no crate.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// Writes not yet flushed: `(offset, bytes)` in the order they were made.
pub type Pending = Vec<(u64, Vec<u8>)>;

/// A device whose writes since the last flush are volatile: a crash keeps an
/// arbitrary subset of them (some torn at a 512-byte boundary).
pub struct CrashDev {
    pub live: Vec<u8>,
    pub durable: Vec<u8>,
    pub pending: Pending,
    pub flushes: u64,
    pub discards: u64,
    /// How many writes each `write_many` carried.
    pub batches: Vec<usize>,
    /// FUA writes without a flush before them.
    pub fua_writes: u64,
    /// Armed with a seed, the next FUA write stores the image a power cut
    /// during it could leave (after the write, before the flush that makes
    /// it durable) in `cut_image`, and the device as it then stood in
    /// `cut_state` (durable bytes, writes pending: the FUA write last).
    pub cut_in_fua: Option<u64>,
    pub cut_image: Option<Vec<u8>>,
    pub cut_state: Option<(Vec<u8>, Pending)>,
}

impl CrashDev {
    pub fn new(size: usize) -> Self {
        CrashDev {
            live: vec![0; size],
            durable: vec![0; size],
            pending: Vec::new(),
            flushes: 0,
            discards: 0,
            batches: Vec::new(),
            fua_writes: 0,
            cut_in_fua: None,
            cut_image: None,
            cut_state: None,
        }
    }

    /// The image a power cut now could leave.
    pub fn crash_image(&self, rng: &mut Rng) -> Vec<u8> {
        let mut img = self.durable.clone();
        for (off, data) in &self.pending {
            match rng.below(4) {
                0 => {}
                1 => {
                    let sectors = data.len().div_ceil(512);
                    let keep = (rng.below(sectors as u64 + 1) as usize * 512).min(data.len());
                    img[*off as usize..*off as usize + keep].copy_from_slice(&data[..keep]);
                }
                _ => img[*off as usize..*off as usize + data.len()].copy_from_slice(data),
            }
        }
        img
    }
}

impl BlockDevice for CrashDev {
    fn size(&self) -> u64 {
        self.live.len() as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> arborfs_engine::Result<()> {
        let s = offset as usize;
        buf.copy_from_slice(
            self.live.get(s..s + buf.len()).ok_or(arborfs_engine::Error::Io { dev: 0, offset })?,
        );
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> arborfs_engine::Result<()> {
        let s = offset as usize;
        self.live
            .get_mut(s..s + buf.len())
            .ok_or(arborfs_engine::Error::Io { dev: 0, offset })?
            .copy_from_slice(buf);
        self.pending.push((offset, buf.to_vec()));
        Ok(())
    }
    fn write_many(&mut self, writes: &[(u64, &[u8])]) -> arborfs_engine::Result<()> {
        self.batches.push(writes.len());
        writes.iter().try_for_each(|&(offset, buf)| self.write_at(offset, buf))
    }
    fn flush(&mut self) -> arborfs_engine::Result<()> {
        for (off, data) in self.pending.drain(..) {
            self.durable[off as usize..off as usize + data.len()].copy_from_slice(&data);
        }
        self.flushes += 1;
        Ok(())
    }
    fn write_fua(&mut self, offset: u64, buf: &[u8]) -> arborfs_engine::Result<()> {
        self.write_at(offset, buf)?;
        self.fua_writes += 1;
        if let Some(seed) = self.cut_in_fua.take() {
            self.cut_image = Some(self.crash_image(&mut Rng(seed)));
            self.cut_state = Some((self.durable.clone(), self.pending.clone()));
        }
        self.flush()
    }
    /// Zeroes the range at once, on the medium too, superseding writes to
    /// it still in the cache: whatever the engine discards must be dead.
    fn discard(&mut self, offset: u64, len: u64) -> arborfs_engine::Result<()> {
        let (s, e) = (offset as usize, (offset + len) as usize);
        self.live[s..e].fill(0);
        self.durable[s..e].fill(0);
        self.pending.retain(|(o, d)| *o as usize + d.len() <= s || *o as usize >= e);
        self.discards += 1;
        Ok(())
    }
}

/// The extents of `ino` with their start offsets.
pub fn extents(fs: &mut Fs<MemDevice>, ino: u64) -> Vec<(u64, Extent)> {
    let mut c =
        Cursor::new(BtreeId::Extents, Pos::new(ino, 1, 0), Pos::new(ino, u64::MAX, u32::MAX), View::LIVE);
    let mut out = Vec::new();
    while let Some((pos, kind)) = fs.next_key(&mut c).unwrap() {
        assert_eq!(kind, KeyType::Extent);
        let e = Extent::decode(c.value()).unwrap();
        out.push((pos.offset - u64::from(e.live_len), e));
    }
    out
}

/// A tree of a few hundred files with data, attributes and a symlink,
/// on small nodes so that it has several levels.
pub fn populated_tree() -> (Fs<MemDevice>, Vec<(String, u64)>) {
    let mut fs = mem_fs_with(64 << 20, &FormatOptions { node_size: 4096, ..opts() });
    let mut names = Vec::new();
    for i in 0..600u64 {
        let name = format!("file{i:04}");
        let a = fs.create(ROOT_INO, name.as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap();
        fs.write(a.ino, 0, &vec![i as u8; 1000 + i as usize * 10]).unwrap();
        fs.setxattr(a.ino, b"user.n", name.as_bytes(), 0).unwrap();
        names.push((name, a.ino));
    }
    fs.symlink(ROOT_INO, b"link", b"file0001", 0, 0).unwrap();
    fs.sync().unwrap();
    (reopen(fs), names)
}

/// Read the node `miss` names from the device, as the kernel does without
/// the engine lock, and decode it.
pub fn fetch_node(dev: &mut MemDevice, miss: &NodeMiss) -> Result<arborfs_engine::btree::node::Node> {
    let mut image = vec![0u8; miss.node_size as usize];
    dev.read_at(miss.ptr.offset, &mut image)?;
    miss.decode(&image)
}
