//! The exactness argument of the parallel deflater (`docs/PARDEFLATE.md`, "Parallel
//! algorithm"), stated as a property and checked on generated inputs.
//!
//! **The argument.** zlib's parse (levels 4–9, `deflate_slow`) is a deterministic machine whose
//! next step depends only on the position, the lazy state, the window base and the hash chains
//! of the preceding 32 KiB. At an iteration start where the previous match length is below 3
//! (a *canonical* start), the lazy state is just the `match_available` bit. A worker parses its
//! chunk from the 32 KiB before it and records, for every canonical start, that bit; the
//! coordinator runs the true parse from the previous chunk's true end state until it reaches a
//! canonical start where the chunk recorded the same state — from there both machines are in
//! the same state over the same input, so the chunk's symbols *are* the true symbols — or, if
//! they never meet, re-parses the chunk itself. Blocks are cut from the true symbol stream by
//! the encoder's own rule (zlib: every `lit_bufsize` symbols; GNU gzip: its `ct_tally` rule),
//! so the block structure is the sequential one too.
//!
//! **The property.** For every input, level 4–9, memLevel, encoder, thread count ≥ 2 and chunk
//! length ≥ 1, the parallel output equals the sequential output — and, for the zlib encoder,
//! stock zlib's (libz-sys). No chunking may change a byte. A counterexample to the argument
//! (a state the worker does not record, a meeting point that is not one) shows up as a chunk
//! boundary where the outputs differ.
//!
//! **The inputs** aim at the places the argument could break: chunk lengths drawn from 64 B to
//! 40 KB so boundaries fall everywhere (inside lazy matches, inside runs and at their edges,
//! within 258 bytes of a window slide), and data built from literals, short and long runs, and
//! copies from distances around the 32 KiB window limit (`MAX_DIST` = 32,506) and beyond,
//! where zlib's `too far` and lazy rules decide.
//!
//! `PARDEFLATE_PROPERTY_SEED=<n>` reproduces one case; `PARDEFLATE_PROPERTY_CASES=<n>` runs more
//! (the default is sized for debug builds; `--release` makes thousands cheap).

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

#[path = "support/zlib_ref.rs"]
mod zlib_ref;

use adudiffapi::pardeflate::{deflate_as, deflate_parallel_as, Encoder, ParallelOptions, Wrapper};
use zlib_ref::zlib_deflate;

/// zlib's farthest match distance (`WSIZE − MIN_LOOKAHEAD`).
const MAX_DIST: u64 = 32_768 - 262;

/// An input of about `len` bytes from the grammar above.
fn generate(r: &mut Rng, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = Vec::with_capacity(len + 300);
    let alphabet = 2 + r.below(30) as u8; // small alphabets make lazy matches likely
    while v.len() < len {
        match r.below(7) {
            0 => {
                let n = 1 + r.below(600);
                v.extend((0..n).map(|_| b'a' + (r.below(u64::from(alphabet)) as u8)));
            }
            1 => {
                // Runs around the maximum match length and long ones (boundaries are moved to
                // run edges, runs ≥ 4 KiB get a boundary at their end).
                let n = [1, 3, 257, 258, 259, 516, 4096, 4097, 9000][r.below(9) as usize];
                let b = r.next() as u8;
                v.extend(std::iter::repeat_n(b, n));
            }
            2 | 3 if v.len() > 300 => {
                // A copy from a distance chosen around the window limit, or anywhere.
                let d = match r.below(4) {
                    0 => MAX_DIST - 3 + r.below(7),
                    1 => 32_768 - 3 + r.below(7),
                    2 => 1 + r.below(300),
                    _ => 1 + r.below(v.len() as u64),
                };
                let d = d.min(v.len() as u64) as usize;
                let n = 3 + r.below(400) as usize;
                let from = v.len() - d;
                for k in 0..n {
                    let b = v[from + k];
                    v.push(b);
                }
            }
            4 => {
                // A copy with one byte changed: a match that ends early, then a lazy choice.
                if v.len() > 64 {
                    let from = r.below(v.len() as u64 - 32) as usize;
                    let n = 4 + r.below(28) as usize;
                    let cut = r.below(n as u64) as usize;
                    for k in 0..n {
                        let b = v[from + k];
                        v.push(if k == cut { b ^ 1 } else { b });
                    }
                }
            }
            _ => {
                let n = 1 + r.below(2_000);
                v.extend((0..n).map(|_| r.next() as u8));
            }
        }
    }
    v.truncate(len);
    v
}

/// One case: an input, an encoder, a level and two chunkings; panics with the seed on a
/// counterexample.
fn check_case(seed: u64) {
    let mut r = Rng(seed | 1);
    let len = 1 + r.below(160_000) as usize;
    let data = generate(&mut r, len);
    let level = 4 + r.below(6) as u32;
    let encoder = if r.below(3) == 0 {
        Encoder::GnuGzip
    } else {
        Encoder::Zlib {
            mem_level: 1 + r.below(9) as u32,
        }
    };
    let wrapper = [Wrapper::Raw, Wrapper::Zlib, Wrapper::Gzip][r.below(3) as usize];
    let sequential = deflate_as(&data, wrapper, level, encoder);
    if let Encoder::Zlib { mem_level } = encoder {
        let zlib = zlib_deflate(&data, wrapper, level as i32, mem_level as i32, usize::MAX);
        assert!(
            sequential == zlib,
            "seed {seed}: sequential port ≠ zlib ({len} B, level {level}, {encoder:?})"
        );
    }
    for _ in 0..2 {
        let opts = ParallelOptions {
            threads: 2 + r.below(3) as usize,
            chunk_len: 64 + r.below(40_000) as usize,
        };
        let parallel = deflate_parallel_as(&data, wrapper, level, encoder, &opts);
        assert!(
            parallel == sequential,
            "seed {seed}: parallel ≠ sequential ({len} B, level {level}, {encoder:?}, \
             {wrapper:?}, {opts:?}); reproduce with PARDEFLATE_PROPERTY_SEED={seed}"
        );
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn no_chunking_changes_a_byte() {
    if let Some(seed) = env_u64("PARDEFLATE_PROPERTY_SEED") {
        check_case(seed);
        return;
    }
    let cases = env_u64("PARDEFLATE_PROPERTY_CASES").unwrap_or(64);
    let mut seeds = Rng(0x005E_ED0F_A11C_4A5E);
    for _ in 0..cases {
        check_case(seeds.next());
    }
}

/// The generator reaches what the argument is about: long runs, copies from just inside and
/// just outside the window, and inputs where the parallel path really runs (several chunks).
#[test]
fn the_generator_reaches_the_window_limit() {
    let mut r = Rng(7);
    let data = generate(&mut r, 400_000);
    let has_run = data.windows(4097).any(|w| w.iter().all(|&b| b == w[0]));
    assert!(has_run, "no run of 4097 bytes");
    // Some 32-byte string reappears at a distance in (MAX_DIST − 3, 32768 + 3].
    let far = (40_000..data.len() - 32).step_by(97).any(|p| {
        let probe = &data[p..p + 32];
        ((MAX_DIST - 3) as usize..=32_771).any(|d| p >= d && &data[p - d..p - d + 32] == probe)
    });
    assert!(far, "no copy near the window limit");
}
