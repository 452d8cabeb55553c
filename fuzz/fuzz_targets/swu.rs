//! SWU (cpio newc/crc) parser and sw-description parser: any bytes must parse or fail with an
//! error. A parsed archive's `sw-description` member (or, if the bytes are not an archive, the
//! bytes themselves as text) goes through the sw-description parser.
#![no_main]

use adudiff_gen::swu::{description, CpioArchive};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match CpioArchive::parse(data) {
        Ok(archive) => {
            for member in &archive.members {
                assert!(member.end() <= archive.total_len);
            }
            if let Some(m) = archive.find("sw-description") {
                let start = m.data_offset as usize;
                let text = String::from_utf8_lossy(&data[start..start + m.data_len as usize]);
                let _ = description::entries(&text);
            }
        }
        Err(_) => {
            let _ = description::entries(&String::from_utf8_lossy(data));
        }
    }
});
