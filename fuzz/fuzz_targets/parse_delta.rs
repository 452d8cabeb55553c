//! Delta parser, both serializations (standard v2/v1 and legacy v0, both byte orders): any input
//! must parse or fail with an error, never panic, hang or allocate beyond its size.
#![no_main]

use adudiffapi::format::parse_delta;
use adudiffapi::io::SharedBytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_delta(SharedBytes::from_vec(data.to_vec()));
});
