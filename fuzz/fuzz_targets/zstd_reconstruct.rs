//! Structure blobs of the extended format's `zstd_reconstruct` recipe (codec 1, version 1):
//! the blob reader and the rebuild of the frame from content and structure.
//!
//! Input layout: bytes 0..2 give the content length C (≤ 64 KiB), bytes 2..5 the expected
//! frame length (≤ 16 MiB); then C bytes of content (fewer if the input is short: a short
//! content stream); the rest is the blob. Reading must end with a structure or error 39006, and
//! what it reads must write back to a blob that reads the same; the rebuild must give exactly
//! the expected length or an error — never a panic, a hang, or an allocation beyond the bounds.
//! `fuzz/seed.py` seeds it with small raw-block and compressed-block structures.
#![no_main]

use std::io::{Cursor, Read};

use adudiffapi::codec::zstd_reconstruct::{reader, Structure};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let content_len = u64::from(u16::from_le_bytes([data[0], data[1]]));
    let output_len = u64::from(u32::from_le_bytes([data[2], data[3], data[4], 0]));
    let rest = &data[5..];
    let split = (content_len as usize).min(rest.len());
    let (content, blob) = rest.split_at(split);
    let Ok(structure) = Structure::read(blob) else {
        return;
    };
    assert_eq!(
        Structure::read(&structure.write()).as_ref(),
        Ok(&structure),
        "blob round trip"
    );
    let content = Box::new(Cursor::new(content.to_vec()));
    if let Ok(mut frame) = reader(content, content_len, &structure, output_len) {
        let mut out = Vec::new();
        frame.read_to_end(&mut out).expect("an in-memory frame");
        assert_eq!(out.len() as u64, output_len, "a frame of another length");
    }
});
