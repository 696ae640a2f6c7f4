#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
//! B-tree stress through the file system API: many keys with tiny nodes, so
//! trees grow several levels and shrink again.
mod common;
use arborfs_engine::format::inode::S_IFREG;
use arborfs_engine::format::ROOT_INO;
use arborfs_engine::fs::FormatOptions;
use common::*;

#[test]
fn many_files_grow_and_shrink() {
    let mut fs = mem_fs_with(64 << 20, &FormatOptions { node_size: 4096, ..opts() });
    let n = 20_000u32;
    for i in 0..n {
        fs.create(ROOT_INO, format!("f{i}").as_bytes(), S_IFREG | 0o644, 0, 0, 0).unwrap();
    }
    let mut fs = reopen_small_cache(fs);
    let mut rng = Rng(7);
    let mut alive = vec![true; n as usize];
    for _ in 0..n * 3 / 4 {
        let i = rng.below(u64::from(n)) as usize;
        let name = format!("f{i}");
        match fs.unlink(ROOT_INO, name.as_bytes()) {
            Ok(a) => {
                assert!(alive[i]);
                fs.evict(a.ino).unwrap();
                alive[i] = false;
            }
            Err(arborfs_engine::Error::NotFound) => assert!(!alive[i]),
            Err(e) => panic!("unlink {name}: {e}"),
        }
    }
    let mut fs = reopen_small_cache(fs);
    for (i, &a) in alive.iter().enumerate() {
        let r = fs.lookup(ROOT_INO, format!("f{i}").as_bytes());
        assert_eq!(r.is_ok(), a, "f{i}");
    }
    let mut count = 0;
    fs.readdir(ROOT_INO, 0, &mut |_, _, _, _| {
        count += 1;
        true
    })
    .unwrap();
    assert_eq!(count, alive.iter().filter(|&&a| a).count());
    // The small cache stayed near its budget through all those lookups.
    assert!(fs.stats().cache_bytes < 512 * 1024, "{:?}", fs.stats());
    assert_eq!(fsck_problems(&mut fs), Vec::<String>::new());
    assert_eq!(fs.counters().inodes as usize, count + 1);
    eprintln!("{:?}", fs.stats());
}
