//! The ext2/3/4 image parser (`generate::ext4`) on small real images made by mke2fs
//! (tests/fixtures/ext4/make.sh): every file is found with its path, size and content, and
//! damaged images give an error or a partial result, never a panic.

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;

use adudiff_gen::generate::ext4::{parse, Ext4Image, Extent, FileEntry};
use sha2::{Digest, Sha256};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ext4");
const NAMES: [&str; 3] = ["ext4-4k", "ext2-1k", "inline"];

fn image(name: &str) -> Vec<u8> {
    let gz = std::fs::read(Path::new(FIXTURES).join(format!("{name}.img.gz"))).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// path → (sha256 hex, size), from "sha256 size path" lines.
fn manifest(name: &str) -> BTreeMap<String, (String, u64)> {
    let text =
        std::fs::read_to_string(Path::new(FIXTURES).join(format!("{name}.manifest"))).unwrap();
    text.lines()
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            let sha = parts.next().unwrap().to_string();
            let size = parts.next().unwrap().parse().unwrap();
            (parts.next().unwrap().to_string(), (sha, size))
        })
        .collect()
}

/// SHA-256 of the file's content read through `file_ranges` (zeros for holes).
fn content_sha(img: &[u8], parsed: &Ext4Image, file: &FileEntry) -> String {
    let zeros = vec![0u8; 1 << 16];
    let mut h = Sha256::new();
    let mut total = 0u64;
    for (offset, len) in parsed.file_ranges(file) {
        total += len;
        match offset {
            Some(o) => h.update(&img[o as usize..(o + len) as usize]),
            None => {
                let mut left = len;
                while left > 0 {
                    let n = left.min(zeros.len() as u64);
                    h.update(&zeros[..n as usize]);
                    left -= n;
                }
            }
        }
    }
    assert_eq!(total, file.size, "{}: ranges add up to the size", file.path);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn by_path(parsed: &Ext4Image) -> BTreeMap<&str, &FileEntry> {
    parsed.files.iter().map(|f| (f.path.as_str(), f)).collect()
}

#[test]
fn ext4_fixtures_files_sizes_and_contents() {
    for name in NAMES {
        let img = image(name);
        let parsed = parse(&img).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.skipped, 0, "{name}");
        assert_eq!(
            parsed.blocks_count * parsed.block_size,
            img.len() as u64,
            "{name}"
        );
        let expected = manifest(name);
        let found: BTreeMap<String, u64> = parsed
            .files
            .iter()
            .map(|f| (f.path.clone(), f.size))
            .collect();
        assert_eq!(found.len(), parsed.files.len(), "{name}: paths are unique");
        let want: BTreeMap<String, u64> =
            expected.iter().map(|(p, (_, s))| (p.clone(), *s)).collect();
        assert_eq!(found, want, "{name}: paths and sizes");
        let inodes: HashSet<u32> = parsed.files.iter().map(|f| f.inode).collect();
        assert_eq!(inodes.len(), parsed.files.len(), "{name}: each inode once");
        for f in &parsed.files {
            assert_eq!(
                content_sha(&img, &parsed, f),
                expected[&f.path].0,
                "{name}: content of {}",
                f.path
            );
            assert!(f
                .extents
                .windows(2)
                .all(|w| w[0].logical + w[0].len <= w[1].logical));
        }
    }
}

#[test]
fn ext4_fixture_structures() {
    // ext4, 4 KiB blocks.
    let img = image("ext4-4k");
    let parsed = parse(&img).unwrap();
    assert_eq!(parsed.block_size, 4096);
    let files = by_path(&parsed);
    // Hard link: reported once, under the first path in name order (sub/ < zz-hardlink.txt).
    assert!(files.contains_key("sub/small.txt"));
    assert!(!files.contains_key("zz-hardlink.txt"));
    // Symlinks are not regular files.
    assert!(!files.contains_key("fast-symlink") && !files.contains_key("slow-symlink"));
    // The htree directory: all 150 entries.
    assert_eq!(
        parsed
            .files
            .iter()
            .filter(|f| f.path.starts_with("many/"))
            .count(),
        150
    );
    // Traversal order: depth-first, names sorted.
    let paths: Vec<&str> = parsed.files.iter().map(|f| f.path.as_str()).collect();
    let pos = |p: &str| paths.iter().position(|&q| q == p).unwrap();
    assert!(pos("big.txt") < pos("empty"));
    assert!(pos("many/file_with_a_fairly_long_name_number_99.txt") < pos("prealloc.bin"));
    assert!(pos("sub/deep/leaf.txt") < pos("sub/small.txt"));
    assert!(files["empty"].extents.is_empty());
    assert_eq!(files["big.txt"].size, 14 * 4096);
    // 8 data blocks separated by holes: 8 extents, more than the inode holds, so the tree has an
    // index level.
    let sparse = files["sparse.bin"];
    assert_eq!(sparse.extents.len(), 8);
    let logicals: Vec<u64> = sparse.extents.iter().map(|e| e.logical).collect();
    assert_eq!(logicals, vec![0, 3, 6, 9, 12, 15, 18, 21]);
    assert!(sparse.extents.iter().all(|e| e.len == 1));
    let ranges = parsed.file_ranges(sparse);
    assert_eq!(ranges.first().unwrap().1, 4096);
    assert_eq!(*ranges.last().unwrap(), (None, 18 * 4096 + 100));
    // Unwritten extents (blocks 2-5 of prealloc.bin) are left out: they read as zeros.
    let pre = files["prealloc.bin"];
    let covered: Vec<(u64, u64)> = pre.extents.iter().map(|e| (e.logical, e.len)).collect();
    let blocks: u64 = covered.iter().map(|c| c.1).sum();
    assert_eq!(blocks, 4);
    assert!(covered
        .iter()
        .all(|&(l, n)| (l + n <= 2) || (l >= 6 && l + n <= 8)));
    assert!(parsed.file_ranges(pre).contains(&(None, 4 * 4096)));

    // ext2, 1 KiB blocks: indirect blocks.
    let img = image("ext2-1k");
    let parsed = parse(&img).unwrap();
    assert_eq!(parsed.block_size, 1024);
    let files = by_path(&parsed);
    assert_eq!(
        files["single.txt"]
            .extents
            .iter()
            .map(|e| e.len)
            .sum::<u64>(),
        20
    );
    assert_eq!(
        files["dir/double.txt"]
            .extents
            .iter()
            .map(|e| e.len)
            .sum::<u64>(),
        300
    );
    // Data at 70 MiB is past 12 + 256 + 256² blocks: mapped through the triple indirect block.
    let triple = &files["triple.bin"].extents;
    assert_eq!(triple.len(), 2);
    assert_eq!((triple[0].logical, triple[0].len), (0, 1));
    const TRIPLE_START: u64 = 12 + 256 + 256 * 256;
    assert!(triple[1].logical > TRIPLE_START);
    assert_eq!((triple[1].logical, triple[1].len), (70 * 1024, 2));

    // ext4 with inline data.
    let img = image("inline");
    let parsed = parse(&img).unwrap();
    let files = by_path(&parsed);
    let tiny = files["tiny.txt"];
    assert!(tiny.extents.is_empty());
    assert_eq!(tiny.inline_data.len(), 1);
    assert_eq!(&img[tiny.inline_data[0].0 as usize..][..5], b"tiny\n");
    let medium = files["medium.txt"];
    assert!(medium.extents.is_empty());
    assert_eq!(
        medium.inline_data.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![60, 40]
    );
    assert!(!files["blocks.txt"].extents.is_empty());
    assert!(files["blocks.txt"].inline_data.is_empty());
    // Inline-data directories are not walked.
    assert!(!files.contains_key("dir/in-inline-dir.txt"));
}

/// A directory entry that points back at the root makes a loop: each directory is walked once.
#[test]
fn ext4_directory_loop_is_walked_once() {
    let mut img = image("ext2-1k");
    let clean = parse(&img).unwrap();
    // The root's entry "dir": inode u32, rec_len u16, name_len 3, file_type 2 (directory), "dir".
    let at = img
        .windows(5)
        .position(|w| w == b"\x03\x02dir")
        .expect("entry of dir")
        - 6;
    img[at..at + 4].copy_from_slice(&2u32.to_le_bytes());
    let parsed = parse(&img).unwrap();
    let paths: Vec<&str> = parsed.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths.len(), clean.files.len() - 1, "{paths:?}");
    assert!(paths.iter().all(|p| !p.starts_with("dir/")), "{paths:?}");
}

#[test]
fn ext4_not_an_image_is_an_error() {
    assert!(parse(&[]).is_err());
    assert!(parse(&[0u8; 4096]).is_err());
    let img = image("ext4-4k");
    assert!(parse(&img[..2000]).is_err());
    let mut bad = img.clone();
    bad[1024 + 0x38] ^= 0xFF; // magic
    assert!(parse(&bad).unwrap_err().contains("magic"));
    let mut bad = img.clone();
    bad[1024 + 0x18] = 30; // block size
    assert!(parse(&bad).is_err());
}

/// Checks what a successful parse of a damaged image promises.
fn check_invariants(img: &[u8], parsed: &Ext4Image) {
    for f in &parsed.files {
        assert!(!f.path.is_empty() && !f.path.starts_with('/'));
        let ranges = parsed.file_ranges(f);
        assert_eq!(ranges.iter().map(|r| r.1).sum::<u64>(), f.size);
        for (offset, len) in ranges {
            if let Some(o) = offset {
                assert!(o
                    .checked_add(len)
                    .is_some_and(|end| end <= img.len() as u64));
            }
        }
        for e in &f.extents {
            assert!(e.len > 0 && e.physical + e.len <= parsed.blocks_count);
        }
    }
}

/// Random byte damage in the metadata blocks (the non-zero blocks that hold no file data), and
/// truncations: an error or a consistent partial result, never a panic.
#[test]
fn ext4_damaged_images_do_not_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // EXT4_FUZZ_ROUNDS=100000 for a longer local run.
    let rounds: u32 = std::env::var("EXT4_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    for name in NAMES {
        let img = image(name);
        let clean = parse(&img).unwrap();
        let bs = clean.block_size as usize;
        let data: HashSet<u64> = clean
            .files
            .iter()
            .flat_map(|f| f.extents.iter())
            .flat_map(|e: &Extent| e.physical..e.physical + e.len)
            .collect();
        let meta: Vec<usize> = (0..img.len() / bs)
            .filter(|&b| !data.contains(&(b as u64)))
            .filter(|&b| img[b * bs..(b + 1) * bs].iter().any(|&x| x != 0))
            .collect();
        assert!(meta.len() > 3, "{name}: metadata blocks {meta:?}");
        let (mut ok, mut err, mut partial) = (0, 0, 0);
        for round in 0..rounds {
            let mut bad = img.clone();
            let edits = 1 + rng.below(16);
            for _ in 0..edits {
                let block = meta[rng.below(meta.len() as u64) as usize];
                // Half of the edits hit the first 256 bytes of a block, where headers live.
                let within = if rng.below(2) == 0 {
                    rng.below(256)
                } else {
                    rng.below(bs as u64)
                } as usize;
                let value = rng.next() as u8;
                bad[block * bs + within] = if round % 2 == 0 {
                    value
                } else {
                    bad[block * bs + within] ^ (1 << (value % 8))
                };
            }
            match parse(&bad) {
                Ok(parsed) => {
                    check_invariants(&bad, &parsed);
                    ok += 1;
                    if parsed.skipped > 0 || parsed.files.len() != clean.files.len() {
                        partial += 1;
                    }
                }
                Err(_) => err += 1,
            }
        }
        println!("{name}: {ok} parsed ({partial} with files skipped or lost), {err} rejected");
        for cut in [
            1024,
            2047,
            2048,
            4096,
            8192,
            img.len() / 3,
            img.len() / 2,
            img.len() - 1,
        ] {
            if let Ok(parsed) = parse(&img[..cut]) {
                check_invariants(&img[..cut], &parsed);
            }
        }
    }
}

/// An extent tree whose index entries all point at the same child (a DAG with 4·340⁴ paths to
/// one leaf) exhausts the work budget: an error, quickly, not a hang.
#[test]
fn ext4_extent_tree_dag_exhausts_budget() {
    let mut img = image("ext4-4k");
    let clean = parse(&img).unwrap();
    let bs = 4096usize;
    // sparse.bin's extent root in its inode: magic, 1 entry, max 4, depth 1, then the index
    // entry pointing at the leaf block.
    let root = img
        .windows(8)
        .position(|w| w == [0x0A, 0xF3, 1, 0, 4, 0, 1, 0])
        .expect("a depth-1 extent root");
    let leaf = u32::from_le_bytes(img[root + 16..root + 20].try_into().unwrap());
    // Four free (zero, unmapped) blocks at the end of the image for the new index levels.
    let used: HashSet<u64> = clean
        .files
        .iter()
        .flat_map(|f| f.extents.iter())
        .flat_map(|e| e.physical..e.physical + e.len)
        .collect();
    let free: Vec<u32> = (0..img.len() / bs)
        .rev()
        .filter(|&b| {
            !used.contains(&(b as u64)) && img[b * bs..(b + 1) * bs].iter().all(|&x| x == 0)
        })
        .take(4)
        .map(|b| b as u32)
        .collect();
    assert_eq!(free.len(), 4);
    let header = |entries: u16, max: u16, depth: u16| {
        let mut h = Vec::new();
        for v in [0xF30A, entries, max, depth] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h.extend_from_slice(&[0; 4]);
        h
    };
    let index = |child: u32| {
        let mut e = vec![0u8; 4];
        e.extend_from_slice(&child.to_le_bytes());
        e.extend_from_slice(&[0; 4]);
        e
    };
    // Root (depth 5, 4 entries) → free[0] (depth 4) → ... → free[3] (depth 1) → leaf.
    let mut node = header(4, 4, 5);
    for _ in 0..4 {
        node.extend(index(free[0]));
    }
    img[root..root + 60].copy_from_slice(&node);
    for level in 0..4 {
        let child = if level == 3 { leaf } else { free[level + 1] };
        let mut node = header(340, 340, 4 - level as u16);
        for _ in 0..340 {
            node.extend(index(child));
        }
        let at = free[level] as usize * bs;
        img[at..at + node.len()].copy_from_slice(&node);
    }
    let start = std::time::Instant::now();
    let err = parse(&img).unwrap_err();
    assert!(err.contains("work"), "{err}");
    assert!(start.elapsed().as_secs() < 20);
}
