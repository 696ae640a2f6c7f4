//! Mutations: each changes one structure of an image the way damage, a bug
//! or a hostile image would, and keeps checksums valid where the kind says
//! so, so that the change reaches the engine's checks rather than the
//! decoders' checksum test.

use arborfs_engine::format::alloc_info::{AllocInfo, DataType, ALLOC_BYTES};
use arborfs_engine::format::dirent::{name_slot, Dirent, HASH_PROBE};
use arborfs_engine::format::superblock::Superblock;
use arborfs_engine::format::{BtreeId, KeyType, Pos, ROOT_INO};

use crate::image::{Image, NodeImage, NodeRef, OwnedRecord};

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `[0, n)`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// One of `xs`.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> Option<&'a T> {
        if xs.is_empty() {
            None
        } else {
            xs.get(self.below(xs.len()))
        }
    }
    /// An integer an engine may stumble on.
    pub fn interesting(&mut self, old: u64, width: u32) -> u64 {
        let max = if width >= 64 { u64::MAX } else { (1u64 << width) - 1 };
        let v = match self.below(10) {
            0 => 0,
            1 => 1,
            2 => max,
            3 => max >> 1,
            4 => (max >> 1) + 1,
            5 => old.wrapping_add(1),
            6 => old.wrapping_sub(1),
            7 => old ^ (1 << self.below(width as usize)),
            8 => old.wrapping_mul(2),
            _ => self.next_u64(),
        };
        v & max
    }
}

/// What a mutation changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A field of a leaf value (inode, dirent, extent, xattr, alloc, pointer).
    NodeValue,
    /// A key's position (order, canonical fields).
    NodeKey,
    /// A node header field, or entries added, dropped or swapped.
    NodeHeader,
    /// A superblock field.
    Super,
    /// A record of a journal entry.
    Journal,
    /// Two entries of one name, a symlink pointing out of the tree first.
    DirentDup,
    /// An entry naming a directory's own ancestor.
    DirentCycle,
    /// An entry moved outside its name's slots.
    DirentSlot,
    /// An alloc key removed or made to lie.
    Alloc,
    /// Bytes flipped with no checksum fixed.
    RawFlip,
    /// A region zeroed.
    Zero,
    /// The image cut short.
    Truncate,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 12] = [
        Kind::NodeValue,
        Kind::NodeKey,
        Kind::NodeHeader,
        Kind::Super,
        Kind::Journal,
        Kind::DirentDup,
        Kind::DirentCycle,
        Kind::DirentSlot,
        Kind::Alloc,
        Kind::RawFlip,
        Kind::Zero,
        Kind::Truncate,
    ];

    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::NodeValue => "node-value",
            Kind::NodeKey => "node-key",
            Kind::NodeHeader => "node-header",
            Kind::Super => "superblock",
            Kind::Journal => "journal",
            Kind::DirentDup => "dirent-dup",
            Kind::DirentCycle => "dirent-cycle",
            Kind::DirentSlot => "dirent-slot",
            Kind::Alloc => "alloc",
            Kind::RawFlip => "raw-flip",
            Kind::Zero => "zero",
            Kind::Truncate => "truncate",
        }
    }
}

struct Ctx {
    sb: Superblock,
    ns: usize,
    nodes: Vec<NodeRef>,
}

fn ctx(img: &Image) -> Option<Ctx> {
    let sb = img.sb()?;
    let ns = sb.node_size as usize;
    let nodes = img.nodes();
    Some(Ctx { sb, ns, nodes })
}

/// Change one field of width 8, 16, 32 or 64 bits inside `v`.
fn poke(rng: &mut Rng, v: &mut [u8]) -> String {
    if v.is_empty() {
        return "empty value".into();
    }
    let width = *rng.pick(&[1usize, 2, 4, 8]).unwrap_or(&1);
    let width = width.min(v.len());
    let at = rng.below(v.len() - width + 1);
    let mut old = [0u8; 8];
    old[..width].copy_from_slice(&v[at..at + width]);
    let new = rng.interesting(u64::from_le_bytes(old), (width * 8) as u32);
    v[at..at + width].copy_from_slice(&new.to_le_bytes()[..width]);
    format!("{width} bytes at +{at} -> {new:#x}")
}

fn poke_pos(rng: &mut Rng, p: &mut Pos) -> String {
    match rng.below(3) {
        0 => {
            p.inode = rng.interesting(p.inode, 64);
            format!("inode -> {}", p.inode)
        }
        1 => {
            p.offset = rng.interesting(p.offset, 64);
            format!("offset -> {}", p.offset)
        }
        _ => {
            p.snapshot = rng.interesting(u64::from(p.snapshot), 32) as u32;
            format!("snapshot -> {}", p.snapshot)
        }
    }
}

/// Rewrite a random node of `filter` through `f`.
fn with_node(
    rng: &mut Rng,
    img: &mut Image,
    c: &Ctx,
    filter: impl Fn(&NodeRef) -> bool,
    f: impl FnOnce(&mut Rng, &mut NodeImage) -> Option<String>,
) -> Option<String> {
    let cands: Vec<_> = c.nodes.iter().filter(|n| filter(n)).collect();
    let n = **rng.pick(&cands)?;
    let mut node = img.read_node(n.offset, c.ns, c.sb.meta_csum)?;
    let what = f(rng, &mut node)?;
    img.write_node(n.offset, c.ns, c.sb.meta_csum, &node)
        .then(|| format!("{} node at {} (level {}): {what}", n.btree.name(), n.offset, n.level))
}

/// Apply a mutation of `kind`; returns what it did, or None if the image
/// offers nothing to mutate that way.
pub fn apply(kind: Kind, rng: &mut Rng, img: &mut Image) -> Option<String> {
    let c = ctx(img)?;
    match kind {
        Kind::NodeValue => with_node(
            rng,
            img,
            &c,
            |_| true,
            |rng, n| {
                let i = rng.below(n.entries.len());
                let e = n.entries.get_mut(i)?;
                Some(format!("entry {i} value: {}", poke(rng, &mut e.2)))
            },
        ),
        Kind::NodeKey => with_node(
            rng,
            img,
            &c,
            |n| n.level == 0,
            |rng, n| {
                let i = rng.below(n.entries.len());
                let e = n.entries.get_mut(i)?;
                // Mostly keep the order (so the node still decodes), sometimes not.
                let old = e.0;
                let what = if rng.below(3) > 0 {
                    let prev = i.checked_sub(1).and_then(|j| n.entries.get(j)).map_or(n.min, |x| x.0);
                    let next = n.entries.get(i + 1).map_or(n.max, |x| x.0);
                    let mut p = old;
                    let w = poke_pos(rng, &mut p);
                    if p <= prev || p >= next {
                        p = Pos { snapshot: old.snapshot ^ 5, ..old };
                    }
                    if p <= prev || p >= next {
                        return None;
                    }
                    n.entries.get_mut(i)?.0 = p;
                    w
                } else {
                    poke_pos(rng, &mut n.entries.get_mut(i)?.0)
                };
                Some(format!("entry {i} at {old:?}: {what}"))
            },
        ),
        Kind::NodeHeader => with_node(
            rng,
            img,
            &c,
            |_| true,
            |rng, n| {
                Some(match rng.below(7) {
                    0 => {
                        n.level = rng.interesting(u64::from(n.level), 8) as u8;
                        format!("level -> {}", n.level)
                    }
                    1 => {
                        n.seq = rng.interesting(n.seq, 64);
                        format!("seq -> {}", n.seq)
                    }
                    2 => format!("min {}", poke_pos(rng, &mut n.min)),
                    3 => format!("max {}", poke_pos(rng, &mut n.max)),
                    4 if !n.entries.is_empty() => {
                        let i = rng.below(n.entries.len());
                        n.entries.remove(i);
                        format!("entry {i} dropped")
                    }
                    5 if !n.entries.is_empty() => {
                        let i = rng.below(n.entries.len());
                        let e = n.entries[i].clone();
                        n.entries.insert(i, e);
                        format!("entry {i} doubled")
                    }
                    _ if n.entries.len() >= 2 => {
                        let i = rng.below(n.entries.len());
                        let j = rng.below(n.entries.len());
                        let v = n.entries[i].2.clone();
                        n.entries[i].2 = n.entries[j].2.clone();
                        n.entries[j].2 = v;
                        format!("values of entries {i} and {j} swapped")
                    }
                    _ => return None,
                })
            },
        ),
        Kind::Super => {
            let mut sb = c.sb.clone();
            let what = match rng.below(12) {
                0 => {
                    sb.inodes = rng.interesting(sb.inodes, 64);
                    format!("inodes -> {}", sb.inodes)
                }
                1 => {
                    sb.data_bytes = rng.interesting(sb.data_bytes, 64);
                    format!("data_bytes -> {}", sb.data_bytes)
                }
                2 => {
                    sb.journal_resume = rng.interesting(sb.journal_resume, 64) & !4095;
                    format!("journal_resume -> {}", sb.journal_resume)
                }
                3 => {
                    sb.checkpoint_seq = rng.interesting(sb.checkpoint_seq, 64);
                    format!("checkpoint_seq -> {}", sb.checkpoint_seq)
                }
                4 | 5 => {
                    let i = rng.below(sb.roots.len());
                    let r = &mut sb.roots[i];
                    match rng.below(4) {
                        0 => r.offset = rng.interesting(r.offset, 64),
                        1 => r.level = rng.interesting(u64::from(r.level), 8) as u8,
                        2 => r.gen = rng.interesting(u64::from(r.gen), 32) as u32,
                        _ => r.seq = rng.interesting(r.seq, 64),
                    }
                    format!("root {i} -> {r:?}")
                }
                6 => {
                    sb.members[0].nbuckets = rng.interesting(sb.members[0].nbuckets, 64);
                    format!("nbuckets -> {}", sb.members[0].nbuckets)
                }
                7 => {
                    sb.members[0].size = rng.interesting(sb.members[0].size, 64);
                    format!("member size -> {}", sb.members[0].size)
                }
                8 => {
                    sb.hash_seed = rng.next_u64();
                    "hash seed changed".into()
                }
                9 => {
                    sb.flags = rng.interesting(sb.flags, 64);
                    format!("flags -> {:#x}", sb.flags)
                }
                10 => {
                    sb.journal_size = rng.interesting(sb.journal_size, 64) & !4095;
                    format!("journal_size -> {}", sb.journal_size)
                }
                _ => {
                    sb.node_size = *rng.pick(&[4096u32, 8192, 16384, 65536])?;
                    format!("node_size -> {}", sb.node_size)
                }
            };
            img.write_super(&sb);
            Some(format!("superblock: {what}"))
        }
        Kind::Journal => {
            let entries = img.journal_entries();
            let mut e = rng.pick(&entries)?.clone();
            let i = rng.below(e.records.len());
            // Mark the entry unordered now and then: replay then checks the
            // data of the extents it points at.
            if rng.below(4) == 0 && !e.records.iter().any(|r| matches!(r, OwnedRecord::Unordered)) {
                e.records.push(OwnedRecord::Unordered);
            }
            let what = match e.records.get_mut(i)? {
                OwnedRecord::Unordered => "kept unordered".into(),
                OwnedRecord::Accounting { inodes, data_bytes } => {
                    if rng.below(2) == 0 {
                        *inodes = *rng.pick(&[i64::MIN, -1_000_000, i64::MAX, -1])?;
                    } else {
                        *data_bytes = *rng.pick(&[i64::MIN, -(1 << 40), i64::MAX, 1 << 50])?;
                    }
                    format!("accounting -> {inodes} {data_bytes}")
                }
                OwnedRecord::Update { pos, value, kind, .. } => match rng.below(4) {
                    0 => poke_pos(rng, pos),
                    1 => {
                        *kind = None;
                        value.clear();
                        "made a delete".into()
                    }
                    _ => poke(rng, value),
                },
            };
            img.write_entry(&e, c.sb.meta_csum).then(|| format!("journal entry {} record {i}: {what}", e.seq))
        }
        Kind::DirentDup => {
            // A symlink pointing out of the tree takes a file's name; the
            // file's entry moves to the next slot of its window.
            let symlinks = targets_of(img, &c, 10);
            with_node(
                rng,
                img,
                &c,
                |n| n.btree == BtreeId::Dirents && n.level == 0,
                |rng, n| {
                    let files: Vec<usize> = (0..n.entries.len())
                        .filter(|&i| {
                            Dirent::decode(&n.entries[i].2).is_ok_and(|d| d.dtype == 8 || d.dtype == 4)
                        })
                        .collect();
                    let i = *rng.pick(&files)?;
                    let (pos, _, v) = n.entries[i].clone();
                    let d = Dirent::decode(&v).ok()?;
                    let name = d.name.to_vec();
                    let base = name_slot(c.sb.hash_seed, &name);
                    let next = Pos { offset: pos.offset + 1, ..pos };
                    let free = next.offset < base + HASH_PROBE
                        && n.entries.get(i + 1).is_none_or(|x| x.0 > next)
                        && next <= n.max;
                    if !free {
                        return None;
                    }
                    let link = *rng.pick(&symlinks)?;
                    let mut sv = vec![0u8; 10 + name.len()];
                    let n2 = Dirent { target: link, dtype: 10, name: &name }.encode(&mut sv).ok()?;
                    sv.truncate(n2);
                    n.entries[i].2 = sv;
                    n.entries.insert(i + 1, (next, KeyType::Dirent, v));
                    Some(format!(
                        "{:?} in {} now a symlink (inode {link}) first",
                        String::from_utf8_lossy(&name),
                        pos.inode
                    ))
                },
            )
        }
        Kind::DirentCycle => with_node(
            rng,
            img,
            &c,
            |n| n.btree == BtreeId::Dirents && n.level == 0,
            |rng, n| {
                let i = rng.below(n.entries.len());
                let (pos, _, v) = n.entries.get(i)?.clone();
                let d = Dirent::decode(&v).ok()?;
                let target = *rng.pick(&[pos.inode, ROOT_INO])?;
                let mut nv = vec![0u8; v.len()];
                let len = Dirent { target, dtype: 4, name: d.name }.encode(&mut nv).ok()?;
                nv.truncate(len);
                n.entries[i].2 = nv;
                Some(format!(
                    "entry {:?} in {} now names directory {target}",
                    String::from_utf8_lossy(d.name),
                    pos.inode
                ))
            },
        ),
        Kind::DirentSlot => with_node(
            rng,
            img,
            &c,
            |n| n.btree == BtreeId::Dirents && n.level == 0,
            |rng, n| {
                let i = rng.below(n.entries.len());
                let pos = n.entries.get(i)?.0;
                let prev = i.checked_sub(1).and_then(|j| n.entries.get(j)).map_or(n.min, |x| x.0);
                let lo = if prev.inode == pos.inode { prev.offset + 1 } else { 16 };
                if lo >= pos.offset || pos.offset - lo < HASH_PROBE + 1 {
                    return None;
                }
                let to = lo + rng.below((pos.offset - lo - HASH_PROBE) as usize) as u64;
                n.entries[i].0 = Pos { offset: to, ..pos };
                Some(format!("entry at slot {} moved to slot {to}", pos.offset))
            },
        ),
        Kind::Alloc => with_node(
            rng,
            img,
            &c,
            |n| n.btree == BtreeId::Alloc && n.level == 0,
            |rng, n| {
                let i = rng.below(n.entries.len());
                let e = n.entries.get_mut(i)?;
                let mut a = AllocInfo::decode(&e.2).ok()?;
                let what = match rng.below(5) {
                    0 => {
                        n.entries.remove(i);
                        return Some(format!("alloc key {i} removed"));
                    }
                    1 => {
                        a.data_type = DataType::User;
                        a.used = 0;
                        "says user data, 0 bytes used".to_string()
                    }
                    2 => {
                        a.data_type = DataType::Free;
                        "says free".to_string()
                    }
                    3 => {
                        a.gen = rng.interesting(u64::from(a.gen), 32) as u32;
                        format!("gen -> {}", a.gen)
                    }
                    _ => {
                        a.used = rng.interesting(a.used, 64);
                        format!("used -> {}", a.used)
                    }
                };
                let mut buf = vec![0u8; ALLOC_BYTES];
                a.encode(&mut buf).ok()?;
                e.2 = buf;
                Some(format!("alloc key {:?}: {what}", e.0))
            },
        ),
        Kind::RawFlip => {
            let n = rng.pick(&c.nodes).copied();
            let (start, len) = match (rng.below(3), n) {
                (0, _) => (0u64, 1 << 20),
                (1, Some(n)) => (n.offset, c.ns as u64),
                _ => (c.sb.journal_offset, c.sb.journal_size.min(1 << 20)),
            };
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let at = (start + rng.below(len as usize) as u64) as usize;
                if let Some(b) = img.bytes.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            Some(format!("{flips} bits flipped in [{start}, +{len})"))
        }
        Kind::Zero => {
            let n = rng.pick(&c.nodes).copied()?;
            let len = *rng.pick(&[512usize, 4096, 65536])?;
            let at = if rng.below(2) == 0 { n.offset as usize } else { c.sb.journal_offset as usize };
            let end = (at + len).min(img.bytes.len());
            img.bytes.get_mut(at..end)?.fill(0);
            Some(format!("{len} bytes zeroed at {at}"))
        }
        Kind::Truncate => {
            let to = rng.below(img.bytes.len());
            img.bytes.truncate(to & !511);
            Some(format!("cut to {} bytes", img.bytes.len()))
        }
    }
}

/// Inode numbers of the image's entries of `dtype`.
fn targets_of(img: &Image, c: &Ctx, dtype: u8) -> Vec<u64> {
    let mut out = Vec::new();
    for n in c.nodes.iter().filter(|n| n.btree == BtreeId::Dirents && n.level == 0) {
        if let Some(node) = img.read_node(n.offset, c.ns, c.sb.meta_csum) {
            for (_, _, v) in &node.entries {
                if let Ok(d) = Dirent::decode(v) {
                    if d.dtype == dtype {
                        out.push(d.target);
                    }
                }
            }
        }
    }
    out
}
