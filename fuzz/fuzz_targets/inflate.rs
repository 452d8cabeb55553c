//! gzip/zlib/raw inflate paths: byte 0 selects the init type (0 raw, 1 gzip, 2 zlib), bytes 1..4
//! the expected output length (≤ 16 MiB), the rest is the compressed stream.
#![no_main]

use std::io::Read;

use adudiffapi::codec::InflateReader;
use adudiffapi::format::ZlibInit;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let Some(init) = ZlibInit::from_number(u64::from(data[0] % 3)) else {
        return;
    };
    let len = u64::from(u32::from_le_bytes([data[1], data[2], data[3], 0])) & 0xFF_FFFF;
    let Ok(mut reader) = InflateReader::new(&data[4..], init, len) else {
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
