//! Parallel mode: byte equality with stock zlib (libz-sys) and with the sequential port,
//! for thread counts 1–4 and chunk sizes small enough to put many chunk boundaries in
//! every interesting place.

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

#[path = "support/zlib_ref.rs"]
mod zlib_ref;

use adudiffapi::pardeflate::{
    deflate, deflate_parallel, deflate_parallel_with, ParallelOptions, Wrapper,
};
use zlib_ref::zlib_deflate;

/// Mixed data: zero runs, repeated text with edits, 5-bit "binary", random bytes, and
/// periodic patterns, in runs of varying length.
fn mixed(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed);
    let text = b"delta update payload recipe chunk partition rootfs journal inode bitmap ";
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        let n = 1 + r.below(20_000) as usize;
        match r.below(6) {
            0 => v.resize(v.len() + n, 0),
            1 => {
                for i in 0..n {
                    let c = text[(i + 7 * v.len()) % text.len()];
                    v.push(if r.below(200) == 0 { c ^ 0x20 } else { c });
                }
            }
            2 => v.extend((0..n).map(|_| 0x40 | (r.next() as u8 & 0x1f))),
            3 => v.extend((0..n).map(|_| r.next() as u8)),
            4 => {
                let p = 1 + r.below(7) as usize;
                let pat: Vec<u8> = (0..p).map(|_| r.next() as u8).collect();
                v.extend((0..n).map(|i| pat[i % p]));
            }
            _ => {
                // copy of earlier data (long matches at various distances)
                if v.len() > 1000 {
                    let from = r.below(v.len() as u64 - 500) as usize;
                    let n = n.min(v.len() - from);
                    for i in 0..n {
                        let b = v[from + i];
                        v.push(b);
                    }
                }
            }
        }
    }
    v.truncate(len);
    v
}

/// Thread counts × chunk sizes tried by the exhaustive (ignored) tests.
const ALL_CONFIGS: [(usize, usize); 12] = [
    (1, 3_000),
    (1, 40_000),
    (1, 100_003),
    (2, 3_000),
    (2, 40_000),
    (2, 100_003),
    (3, 3_000),
    (3, 40_000),
    (3, 100_003),
    (4, 3_000),
    (4, 40_000),
    (4, 100_003),
];

fn check_par_with(
    data: &[u8],
    wrapper: Wrapper,
    level: u32,
    mem: u32,
    want: &[u8],
    what: &str,
    configs: &[(usize, usize)],
) {
    for &(threads, chunk_len) in configs {
        let got = deflate_parallel_with(
            data,
            wrapper,
            level,
            mem,
            &ParallelOptions { threads, chunk_len },
        );
        assert!(
            got == want,
            "{what}: parallel mismatch level {level} mem {mem} {wrapper:?} threads {threads} chunk {chunk_len}"
        );
    }
}

/// Two configurations, rotating through all thread counts and chunk sizes with `i`.
fn some_configs(i: usize) -> [(usize, usize); 2] {
    [ALL_CONFIGS[i % 12], ALL_CONFIGS[(i + 7) % 12]]
}

#[test]
fn parallel_equals_zlib_levels_4_to_9() {
    let data = mixed(5, 300_000);
    let mut i = 0;
    for level in 4..=9 {
        for mem in [1, 8, 9] {
            let want = zlib_deflate(&data, Wrapper::Raw, level as i32, mem as i32, usize::MAX);
            check_par_with(
                &data,
                Wrapper::Raw,
                level,
                mem,
                &want,
                "mixed",
                &some_configs(i),
            );
            i += 1;
        }
    }
}

#[test]
fn parallel_all_mem_levels() {
    let data = mixed(8, 200_000);
    for mem in 1..=9u32 {
        let level = [4, 5, 6, 7, 8, 9][mem as usize % 6];
        let want = zlib_deflate(&data, Wrapper::Gzip, level as i32, mem as i32, 4096);
        check_par_with(
            &data,
            Wrapper::Gzip,
            level,
            mem,
            &want,
            "mem levels",
            &some_configs(mem as usize),
        );
    }
}

#[test]
fn parallel_wrappers_and_small_inputs() {
    let mut i = 0;
    for len in [0usize, 1, 2, 3, 100, 5_000, 9_000, 70_000] {
        let data = mixed(len as u64 + 1, len);
        for w in [Wrapper::Raw, Wrapper::Zlib, Wrapper::Gzip] {
            for level in [1, 3, 4, 6, 9] {
                let want = zlib_deflate(&data, w, level as i32, 9, 4096);
                check_par_with(&data, w, level, 9, &want, "small", &some_configs(i));
                i += 1;
            }
        }
    }
}

fn random_then_zeros() -> Vec<u8> {
    let mut r = Rng(77);
    let mut data: Vec<u8> = (0..300_000).map(|_| r.next() as u8).collect();
    data.resize(data.len() + 400_000, 0);
    data.extend((0..100_000).map(|_| r.next() as u8));
    data
}

#[test]
fn parallel_incompressible_and_runs() {
    // Random data makes stored blocks (whose eligibility depends on the window base);
    // long zero runs keep chunk parses out of phase with the true parse for a long time.
    let data = random_then_zeros();
    for (i, mem) in [1u32, 8, 9].into_iter().enumerate() {
        let want = zlib_deflate(&data, Wrapper::Gzip, 9, mem as i32, usize::MAX);
        check_par_with(
            &data,
            Wrapper::Gzip,
            9,
            mem,
            &want,
            "random+zeros",
            &some_configs(i),
        );
    }
}

#[test]
fn default_options_use_parallel_path() {
    let data = mixed(9, 1_500_000);
    let want = zlib_deflate(&data, Wrapper::Gzip, 9, 9, 4096);
    for threads in [0, 2, 3] {
        assert!(
            deflate_parallel(&data, Wrapper::Gzip, 9, 9, threads) == want,
            "threads {threads}"
        );
    }
}

/// Every level 4–9 × memLevel {1, 8, 9} × threads 1–4 × three chunk sizes, on 600 KB of
/// mixed data, zero runs and random data; and the sequential port on the same inputs.
/// Run with `cargo test --release --test pardeflate_parallel -- --ignored`.
#[test]
#[ignore]
fn exhaustive_parallel_matrix() {
    for (name, data) in [
        ("mixed", mixed(5, 600_000)),
        ("random+zeros", random_then_zeros()),
    ] {
        for level in 4..=9 {
            for mem in [1, 8, 9] {
                let want = zlib_deflate(&data, Wrapper::Raw, level as i32, mem as i32, usize::MAX);
                assert!(
                    deflate(&data, Wrapper::Raw, level, mem) == want,
                    "sequential {name}"
                );
                check_par_with(&data, Wrapper::Raw, level, mem, &want, name, &ALL_CONFIGS);
            }
        }
    }
}
