//! zstd decompression (with and without a raw-content prefix): byte 0 bit 0 selects a fixed
//! 4 KiB prefix, bytes 1..4 the expected output length (≤ 16 MiB), the rest is the frame data.
#![no_main]

use std::io::Read;

use adudiffapi::codec::ZstdReader;
use adudiffapi::io::SharedBytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let prefix = (data[0] & 1 == 1)
        .then(|| SharedBytes::from_vec((0..4096u32).map(|i| (i * 13 % 251) as u8).collect()));
    let len = u64::from(u32::from_le_bytes([data[1], data[2], data[3], 0])) & 0xFF_FFFF;
    let Ok(mut reader) = ZstdReader::new(&data[4..], prefix, len) else {
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
    assert!(total <= len);
});
