//! Differential tests: `pardeflate` against stock zlib (libz-sys, bundled madler zlib).

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

#[path = "support/zlib_ref.rs"]
mod zlib_ref;

use adudiffapi::pardeflate::{deflate, Wrapper};
use zlib_ref::zlib_deflate;

const WRAPPERS: [Wrapper; 3] = [Wrapper::Raw, Wrapper::Zlib, Wrapper::Gzip];

fn check(data: &[u8], wrapper: Wrapper, level: u32, mem: u32, what: &str) {
    let want = zlib_deflate(data, wrapper, level as i32, mem as i32, usize::MAX);
    let got = deflate(data, wrapper, level, mem);
    if got != want {
        let first = got
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: mismatch level {level} mem {mem} {wrapper:?} len {}: got {} bytes, want {} bytes, first diff at {first}",
            data.len(),
            got.len(),
            want.len()
        );
    }
}

fn small_inputs() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("one".into(), b"a".to_vec()),
        ("two".into(), b"ab".to_vec()),
        ("three".into(), b"abc".to_vec()),
        ("hello".into(), b"hello hello hello hello world".to_vec()),
        ("zeros1k".into(), vec![0; 1000]),
        ("aaaa300".into(), vec![b'a'; 300]),
    ];
    let mut r = Rng(12345);
    let rnd: Vec<u8> = (0..5000).map(|_| r.next() as u8).collect();
    v.push(("random5k".into(), rnd));
    let text: Vec<u8> = (0..20000)
        .map(|i| {
            b"the quick brown fox jumps over the lazy dog "[i % 44]
                ^ if r.below(50) == 0 { 1 } else { 0 }
        })
        .collect();
    v.push(("text20k".into(), text));
    v
}

#[test]
fn small_inputs_all_levels_memlevels_wrappers() {
    for (name, data) in small_inputs() {
        for level in 1..=9 {
            let mems: &[u32] = if [1, 4, 6, 9].contains(&level) {
                &[1, 2, 3, 4, 5, 6, 7, 8, 9]
            } else {
                &[1, 8, 9]
            };
            for &mem in mems {
                for w in WRAPPERS {
                    check(&data, w, level, mem, &name);
                }
            }
        }
    }
}

/// An ext4-like image: 4 KiB blocks in runs of zero blocks, text blocks (pages from a small
/// pool with a unique label) and 5-bit-entropy "binary" blocks.
fn ext4_like(seed: u64, blocks: usize) -> Vec<u8> {
    let mut r = Rng(seed);
    let words: Vec<&[u8]> = b"lorem ipsum dolor sit amet kernel module firmware device update delta recipe chunk payload config partition rootfs ext4 inode block bitmap journal superblock"
        .split(|&c| c == b' ')
        .collect();
    let pool: Vec<Vec<u8>> = (0..16)
        .map(|_| {
            let mut p = Vec::new();
            while p.len() < 4096 {
                p.extend_from_slice(words[r.below(words.len() as u64) as usize]);
                p.push(if r.below(12) == 0 { b'\n' } else { b' ' });
            }
            p.truncate(4096);
            p
        })
        .collect();
    let mut out = Vec::with_capacity(blocks * 4096);
    while out.len() < blocks * 4096 {
        let kind = r.below(3);
        let run = 1 + (r.below(16) * r.below(16) / 8) as usize;
        for _ in 0..run {
            match kind {
                0 => out.extend_from_slice(&[0u8; 4096]),
                1 => {
                    let mut page = pool[r.below(16) as usize].clone();
                    let pos = r.below(4000) as usize;
                    let label = format!("blk{:08}", out.len() / 4096);
                    page[pos..pos + label.len()].copy_from_slice(label.as_bytes());
                    out.extend_from_slice(&page);
                }
                _ => out.extend((0..4096).map(|_| 0x40 | (r.next() as u8 & 0x1f))),
            }
        }
    }
    out.truncate(blocks * 4096);
    out
}

/// Bytes from a small alphabet with occasional repeats: many short, far matches.
fn low_entropy(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed);
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        if v.len() > 100 && r.below(4) == 0 {
            let back = 1 + r.below(v.len().min(40000) as u64) as usize;
            let n = 3 + r.below(20) as usize;
            let start = v.len() - back;
            for i in 0..n {
                let b = v[start + i];
                v.push(b);
            }
        } else {
            v.push(b"ACGT"[r.below(4) as usize]);
        }
    }
    v.truncate(len);
    v
}

fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed);
    (0..len).map(|_| r.next() as u8).collect()
}

#[test]
fn window_and_block_boundaries() {
    // Sizes around the window (32 KiB / 64 KiB / slide threshold) and symbol-buffer sizes.
    let base = ext4_like(7, 40);
    for len in [
        32_767, 32_768, 32_769, 65_273, 65_274, 65_275, 65_535, 65_536, 65_537, 98_042, 131_072,
    ] {
        for level in [1, 4, 6, 9] {
            for mem in [1, 9] {
                check(&base[..len], Wrapper::Raw, level, mem, "ext4 boundary");
            }
        }
    }
}

#[test]
fn mixed_data_all_levels() {
    let inputs = [
        ("ext4", ext4_like(1, 96)),
        ("lowent", low_entropy(2, 200_000)),
        ("random", random(3, 150_000)),
        ("zeros", vec![0u8; 300_000]),
    ];
    for (name, data) in &inputs {
        for level in 1..=9 {
            for mem in [1, 9] {
                check(data, Wrapper::Raw, level, mem, name);
            }
        }
        if *name == "ext4" {
            for mem in 2..=8 {
                check(data, Wrapper::Raw, 6, mem, name);
            }
        }
        check(data, Wrapper::Gzip, 9, 9, name);
        check(data, Wrapper::Zlib, 6, 8, name);
    }
}

#[test]
fn chunked_feeding_gives_same_bytes() {
    // Microsoft feeds zlib 4096-byte pieces; confirm that equals one-shot (and our output).
    let data = ext4_like(11, 64);
    for level in [1u32, 3, 5, 9] {
        let a = zlib_deflate(&data, Wrapper::Gzip, level as i32, 9, 4096);
        let b = zlib_deflate(&data, Wrapper::Gzip, level as i32, 9, usize::MAX);
        let c = zlib_deflate(&data, Wrapper::Gzip, level as i32, 9, 1000);
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(deflate(&data, Wrapper::Gzip, level, 9), a);
    }
}

#[test]
fn golden_vectors() {
    // tests/vectors/zlib_compression_*: target = Microsoft's output for the source slice the
    // delta names (the first 200000 bytes of the source, checked by inflating the target).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    for (case, wrapper, level) in [
        ("zlib_compression_raw_level_9", Wrapper::Raw, 9),
        ("zlib_compression_zlib_level_1", Wrapper::Zlib, 1),
        ("zlib_compression_gz_level_default", Wrapper::Gzip, 6),
    ] {
        let source = std::fs::read(dir.join(case).join("source")).unwrap();
        let target = std::fs::read(dir.join(case).join("target")).unwrap();
        let got = deflate(&source[..200_000], wrapper, level, 9);
        assert_eq!(got.len(), target.len(), "{case}: length");
        assert!(got == target, "{case}: bytes differ");
    }
}

/// Large differential test (a few seconds in release). Run with
/// `cargo test --release --test pardeflate_diff -- --ignored`.
#[test]
#[ignore]
fn large_structured_level9() {
    let data = ext4_like(99, 2048); // 8 MiB
    for mem in [8, 9] {
        check(&data, Wrapper::Gzip, 9, mem, "ext4 8MiB");
    }
    for level in 1..=8 {
        check(&data, Wrapper::Raw, level, 9, "ext4 8MiB");
    }
}

/// Inputs ending at every length around the first two window-slide thresholds (where zlib's
/// end-of-input slide can put `strstart` exactly at `w_size + MAX_DIST` and window index 0 is
/// `NIL`), with data that produces matches right up to the end. Run with
/// `cargo test --release --test pardeflate_diff -- --ignored`.
#[test]
#[ignore]
fn end_of_input_slide_sweep() {
    let lowent = low_entropy(21, 140_000);
    let zeros_tail: Vec<u8> = ext4_like(5, 40)
        .into_iter()
        .take(65_000)
        .chain(std::iter::repeat_n(0u8, 75_000))
        .collect();
    for data in [&lowent, &zeros_tail] {
        for end in (65_000..65_600).chain(97_800..98_400).step_by(3) {
            for level in [4, 9] {
                check(&data[..end], Wrapper::Raw, level, 9, "slide sweep");
            }
        }
    }
}

/// Extract the `*.gz` member of a cpio "newc" archive (an SWU image).
fn swu_gz_member(swu: &[u8]) -> Vec<u8> {
    let mut off = 0;
    loop {
        let h = &swu[off..off + 110];
        assert_eq!(&h[..6], b"070701", "cpio newc header");
        let field = |i: usize| {
            usize::from_str_radix(std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                .unwrap()
        };
        let (filesize, namesize) = (field(6), field(11));
        let name = &swu[off + 110..off + 110 + namesize - 1];
        let mut p = off + 110 + namesize;
        p += (4 - p % 4) % 4;
        if name.ends_with(b".gz") {
            return swu[p..p + filesize].to_vec();
        }
        assert_ne!(name, b"TRAILER!!!", "no .gz member");
        off = p + filesize;
        off += (4 - off % 4) % 4;
    }
}

/// The real 24 MiB ext4 images of `tests/vectors/swu_realistic_rootfs`: Microsoft's
/// `rootfs.ext4.gz` members (gzip, level 9, memLevel 9) must be reproduced exactly, by the
/// sequential and the parallel path. Run with
/// `cargo test --release --test pardeflate_diff -- --ignored`.
#[test]
#[ignore]
fn realistic_rootfs_gz_members() {
    use std::io::Read;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/swu_realistic_rootfs");
    for name in ["source", "target"] {
        let gz = swu_gz_member(&std::fs::read(dir.join(name)).unwrap());
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw.len(), 25_165_824);
        assert!(
            deflate(&raw, Wrapper::Gzip, 9, 9) == gz,
            "{name}: sequential"
        );
        for threads in [2, 3] {
            let par = adudiffapi::pardeflate::deflate_parallel(&raw, Wrapper::Gzip, 9, 9, threads);
            assert!(par == gz, "{name}: parallel {threads}");
        }
    }
}
