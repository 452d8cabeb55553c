//! The extended format's `zstd_compression_exact` recipe: bytes 0..40 are the recipe's five
//! numbers as given (little-endian u64s: every value goes through the applier's checks);
//! bytes 40..43 pick compressible parameters instead (level -7..=19, the flag bits, a window
//! log of 0 or 10..=24, one or two workers), bytes 43..46 the expected frame length
//! (≤ 16 MiB); the rest (≤ 64 KiB) is the content. A compression must end with bytes or an
//! error, never a panic, hang or a frame longer than the recipe says; a frame it completes
//! must decode to the content.
#![no_main]

use std::io::Read;

use adudiffapi::codec::zstd_compress::{ZstdParams, KNOWN_FLAGS};
use adudiffapi::codec::ZstdCompressReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 46 {
        return;
    }
    let numbers: Vec<u64> = data[..40]
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    // The numbers as a delta would give them: parsed or refused, never more.
    let _ = ZstdParams::from_numbers(&numbers);
    let (pick, rest) = (&data[40..46], &data[46..]);
    let content = &rest[..rest.len().min(64 << 10)];
    let window_log = match u32::from(pick[2] & 15) {
        0 => 0,
        w => 9 + w.min(15),
    };
    let params = ZstdParams {
        level: i32::from(pick[0] % 27) - 7,
        flags: u64::from(pick[1]) & KNOWN_FLAGS,
        window_log,
        job_size: 0,
    };
    if params.level == 0 {
        return;
    }
    let workers = 1 + u32::from(pick[2] >> 7);
    let output_len = u64::from(u32::from_le_bytes([pick[3], pick[4], pick[5], 0]));
    let Ok(mut reader) =
        ZstdCompressReader::new(content, content.len() as u64, params, workers, output_len)
    else {
        return;
    };
    let mut frame = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let complete = loop {
        match reader.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => frame.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    assert!(frame.len() as u64 <= output_len);
    if complete {
        assert_eq!(frame.len() as u64, output_len);
        let mut out = Vec::with_capacity(content.len());
        let n = zstd_safe::decompress(&mut out, &frame).expect("a frame that decodes");
        assert_eq!(&out[..n], content);
    }
});
