//! BSDIFF40 patch reader: a fuzzed patch applied to a fixed 4 KiB old file. The output length is
//! the one the patch announces (capped at 4 MiB); every failure must be an error (30900).
#![no_main]

use std::io::Read;

use adudiffapi::codec::bspatch::PatchHeader;
use adudiffapi::codec::BspatchReader;
use adudiffapi::io::SharedBytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let old: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let new_len = match PatchHeader::parse(data) {
        Ok(h) if h.new_len <= 4 << 20 => h.new_len,
        Ok(_) => return,
        Err(_) => 16,
    };
    let patch = SharedBytes::from_vec(data.to_vec());
    if let Ok(mut reader) = BspatchReader::new(patch, SharedBytes::from_vec(old), new_len) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
        assert!(total <= new_len);
    }
});
