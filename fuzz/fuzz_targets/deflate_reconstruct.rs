//! Correction blobs of the extended format's `deflate_reconstruct` recipe (codec 1 version 1):
//! bytes 0..2 give the plain-text length P (≤ 64 KiB), bytes 2..5 the expected output length
//! (≤ 16 MiB); then P bytes of plain text (fewer if the input is short: a short plain stream);
//! the rest is the correction blob. The rebuild must end with bytes or an error, never a panic,
//! hang or allocation beyond the bounds. Seed with blobs from `tests/fixtures/extended`.
#![no_main]

use std::io::Read;

use adudiffapi::codec::deflate_reconstruct::{
    DeflateReconstructReader, CODEC_PREFLATE, CODEC_PREFLATE_VERSION,
};
use adudiffapi::io::SharedBytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let plain_len = u64::from(u16::from_le_bytes([data[0], data[1]]));
    let output_len = u64::from(u32::from_le_bytes([data[2], data[3], data[4], 0])) & 0xFF_FFFF;
    let rest = &data[5..];
    let split = (plain_len as usize).min(rest.len());
    let (plain, blob) = rest.split_at(split);
    let Ok(mut reader) = DeflateReconstructReader::new(
        plain,
        plain_len,
        SharedBytes::from_vec(blob.to_vec()),
        CODEC_PREFLATE,
        CODEC_PREFLATE_VERSION,
        output_len,
    ) else {
        return;
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n as u64,
        }
    }
    assert!(total <= output_len);
});
