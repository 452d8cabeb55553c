//! Blobs of the pigz encoder (codec 2, encoder 2) of the extended format's
//! `deflate_reconstruct` recipe: the parser and the job-by-job rebuild.
//!
//! Input layout: bytes 0..2 give the plain-text length P (≤ 64 KiB), bytes 2..5 the expected
//! output length (≤ 16 MiB), byte 5 the worker threads (0–2); then P bytes of plain text (fewer
//! if the input is short: a short plain stream); the rest is the blob. Parsing must end with
//! parameters or error 39001, the rebuild with at most the expected bytes or an error — never
//! a panic, a hang, or an allocation beyond the bounds. `fuzz/seed.py` seeds it from the
//! committed pigz fixture delta.
#![no_main]

use std::io::{Cursor, Read};

use adudiffapi::codec::pigz::{PigzParams, PigzReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let plain_len = u64::from(u16::from_le_bytes([data[0], data[1]]));
    let output_len = u64::from(u32::from_le_bytes([data[2], data[3], data[4], 0]));
    let threads = usize::from(data[5] % 3);
    let rest = &data[6..];
    let split = (plain_len as usize).min(rest.len());
    let (plain, blob) = rest.split_at(split);
    if let Ok(params) = PigzParams::from_blob(blob, plain_len) {
        // What parses writes back to the same bytes.
        assert_eq!(params.to_blob(), blob, "blob round trip");
    }
    let Ok(mut rebuilt) = PigzReader::new(
        Box::new(Cursor::new(plain.to_vec())),
        plain_len,
        blob,
        output_len,
        threads,
    ) else {
        return;
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match rebuilt.read(&mut buf) {
            Ok(0) => {
                assert_eq!(total, output_len, "ended early without an error");
                break;
            }
            Err(_) => break,
            Ok(n) => total += n as u64,
        }
    }
    assert!(total <= output_len, "{total} bytes from a {output_len}-byte recipe");
});
