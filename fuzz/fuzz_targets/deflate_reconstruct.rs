//! Correction blobs of the extended format's `deflate_reconstruct` recipe, both codecs.
//!
//! Input layout: byte 0 picks the codec (even: codec 1 version 1, preflate; odd: codec 2
//! version 1, the exact GNU gzip re-encoder); bytes 1..3 give the plain-text length P
//! (≤ 64 KiB), bytes 3..6 the expected output length (≤ 16 MiB); then P bytes of plain text
//! (fewer if the input is short: a short plain stream); the rest is the correction blob. The
//! rebuild must end with bytes (for codec 1 at most the expected number) or an error — never a panic of ours, a
//! hang, or an allocation beyond the bounds. `fuzz/seed.py` seeds it from the fixture deltas of
//! `tests/fixtures/extended*`.
//!
//! Panics raised *inside preflate-rs* are the one exception: that crate trusts its correction
//! data (e.g. `1 << window_bits` with a hostile `window_bits` overflows), and the library
//! contains it on purpose — the rebuild thread runs it under `catch_unwind` and the reader then
//! reports error 39001 (`crates/core/src/codec/deflate_reconstruct.rs`, `rebuild_worker`). libFuzzer's hook
//! aborts on every panic, caught or not, so this target tolerates exactly those (by source
//! location) and still aborts on a panic anywhere else; the reader's result is checked as usual.
#![no_main]

use std::io::{Cursor, Read};
use std::sync::Once;

use adudiffapi::codec::deflate_reconstruct::{
    reader, CODEC_EXACT, CODEC_EXACT_VERSION, CODEC_PREFLATE, CODEC_PREFLATE_VERSION,
};
use adudiffapi::io::SharedBytes;
use libfuzzer_sys::fuzz_target;

/// Wraps libFuzzer's abort-on-panic hook: a panic whose location is in preflate-rs's sources
/// only prints its message (the library's `catch_unwind` turns it into an error).
fn contain_preflate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_preflate = info
                .location()
                .is_some_and(|l| l.file().contains("preflate-rs-"));
            if in_preflate {
                eprintln!("contained panic inside preflate-rs: {info}");
            } else {
                abort_hook(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    contain_preflate_panics();
    if data.len() < 6 {
        return;
    }
    let (codec, version) = if data[0] & 1 == 0 {
        (CODEC_PREFLATE, CODEC_PREFLATE_VERSION)
    } else {
        (CODEC_EXACT, CODEC_EXACT_VERSION)
    };
    let plain_len = u64::from(u16::from_le_bytes([data[1], data[2]]));
    let output_len = u64::from(u32::from_le_bytes([data[3], data[4], data[5], 0]));
    let rest = &data[6..];
    let split = (plain_len as usize).min(rest.len());
    let (plain, blob) = rest.split_at(split);
    let Ok(mut rebuilt) = reader(
        Box::new(Cursor::new(plain.to_vec())),
        plain_len,
        SharedBytes::from_vec(blob.to_vec()),
        codec,
        version,
        output_len,
    ) else {
        return;
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match rebuilt.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n as u64,
        }
    }
    // Codec 1 checks the output length itself (its chunk table must add up to it); codec 2's
    // encoder produces what the plain text compresses to, and the executor's `ExactLen` holds
    // it to the recipe's length.
    if codec == CODEC_PREFLATE {
        assert!(total <= output_len, "{total} bytes from a {output_len}-byte recipe");
    }
});
