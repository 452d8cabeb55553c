//! Fuzz target: `pardeflate` (sequential and parallel) must produce exactly stock zlib's bytes
//! for arbitrary input and parameters.
//!
//! Run: `cd fuzz && cargo +nightly fuzz run pardeflate_vs_zlib`
//!
//! Input layout: byte 0 → level 1..=9, byte 1 → memLevel 1..=9, byte 2 → wrapper, byte 3 →
//! threads 1..=4, byte 4 → chunk length (×97 + 1 bytes, so chunk boundaries land everywhere);
//! the rest is the data, optionally expanded (byte 5 bit 7) by repeating it so that matches,
//! window slides and multi-block streams are reached from small inputs.
#![no_main]

#[path = "../../tests/support/zlib_ref.rs"]
mod zlib_ref;

use adudiffapi::pardeflate::{deflate, deflate_parallel_with, ParallelOptions, Wrapper};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    if input.len() < 6 {
        return;
    }
    let level = u32::from(input[0] % 9) + 1;
    let mem = u32::from(input[1] % 9) + 1;
    let wrapper = [Wrapper::Raw, Wrapper::Zlib, Wrapper::Gzip][usize::from(input[2] % 3)];
    let threads = usize::from(input[3] % 4) + 1;
    // At least 64 bytes: 1-byte chunks of a 200 KB input (200k chunk parsers) take seconds
    // even optimized and only time the fuzzer out; 64..24799 still splits everywhere.
    let chunk_len = usize::from(input[4]) * 97 + 64;
    let mut data = input[6..].to_vec();
    if input[5] & 0x80 != 0 && !data.is_empty() {
        // Repeat with small mutations up to ~200 KB.
        let reps = usize::from(input[5] & 0x7f) * 1500 / data.len().max(1) + 1;
        let seed = data.clone();
        for r in 0..reps {
            for (i, &b) in seed.iter().enumerate() {
                data.push(if (i + r) % 251 == 0 { b.wrapping_add(r as u8) } else { b });
            }
            if data.len() > 200_000 {
                break;
            }
        }
    }
    let want = zlib_ref::zlib_deflate(&data, wrapper, level as i32, mem as i32, 4096);
    assert!(deflate(&data, wrapper, level, mem) == want, "sequential");
    let par = deflate_parallel_with(&data, wrapper, level, mem, &ParallelOptions { threads, chunk_len });
    assert!(par == want, "parallel");
});
