//! gzip helpers of the generator and `recompress`.
//!
//! Compression that must be byte-exact is the applier's own ([`adudiff_core::codec::deflate_exact`],
//! [`find_zlib_level`]), so a recipe the generator verified is reproduced by the same code on the
//! device; decompression of inputs uses flate2 (any correct inflater will do there).

use std::io::Read;

use adudiff_core::codec::find_zlib_level;

/// Decompresses the first gzip member of `gz` (any header options), checking its trailer.
pub fn gunzip(gz: &[u8]) -> std::io::Result<Vec<u8>> {
    Ok(gunzip_member(gz)?.0)
}

/// Decompresses the first gzip member of `gz`; also returns how many input bytes it used.
pub fn gunzip_member(gz: &[u8]) -> std::io::Result<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    if gz.len() >= 18 {
        let isize = u32::from_le_bytes(gz[gz.len() - 4..].try_into().expect("4 bytes"));
        out.reserve(isize as usize);
    }
    let mut dec = flate2::bufread::GzDecoder::new(gz);
    dec.read_to_end(&mut out)?;
    let rest = dec.into_inner().len();
    Ok((out, gz.len() - rest))
}

/// Inputs at least this large have their level checked with the parallel deflater first.
pub const PARALLEL_CHECK_MIN: usize = 4 << 20;

/// [`find_zlib_level`] for gzip members, checking level 9 (what `adudiff recompress` and most
/// reproducible builds use) with the byte-exact parallel deflater first when the input is large:
/// the same answer in about half the time on two cores.
pub fn find_gzip_level(uncompressed: &[u8], compressed: &[u8]) -> Option<i32> {
    if uncompressed.len() >= PARALLEL_CHECK_MIN && compressed.get(8) == Some(&2) {
        let gz = adudiff_core::pardeflate::deflate_parallel(
            uncompressed,
            adudiff_core::pardeflate::Wrapper::Gzip,
            9,
            adudiff_core::codec::MEM_LEVEL as u32,
            0,
        );
        if gz == compressed {
            return Some(9);
        }
    }
    find_zlib_level(
        uncompressed,
        compressed,
        adudiff_core::format::ZlibInit::Gzip,
    )
}

/// Whether `data` starts with the gzip magic and deflate method.
pub fn is_gzip(data: &[u8]) -> bool {
    data.len() >= 18 && data[0] == 0x1f && data[1] == 0x8b && data[2] == 8
}

#[cfg(test)]
mod tests {
    use super::*;
    use adudiff_core::codec::{deflate_exact, ZlibInit};

    #[test]
    fn raw_deflate_matches_spec_worked_example() {
        let out = deflate_exact(b"ABCDEFGHIJABCDEFGHIJ", ZlibInit::Raw, 9).unwrap();
        assert_eq!(
            out,
            [0x73, 0x74, 0x72, 0x76, 0x71, 0x75, 0x73, 0xF7, 0xF0, 0xF4, 0x72, 0x84, 0xB3, 0x00]
        );
        assert_eq!(deflate_exact(b"", ZlibInit::Raw, 9).unwrap(), [0x03, 0x00]);
    }

    #[test]
    fn gzip_header_is_fixed_and_level_is_found() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i * 7 % 251) as u8 ^ (i >> 9) as u8)
            .collect();
        for level in [9, 1, -1, 4] {
            let gz = deflate_exact(&data, ZlibInit::Gzip, level).unwrap();
            let xfl = match level {
                9 => 2,
                1 => 4,
                _ => 0,
            };
            assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]);
            assert_eq!(gunzip(&gz).unwrap(), data);
            let found = find_zlib_level(&data, &gz, ZlibInit::Gzip).unwrap();
            // Levels producing identical bytes are interchangeable; the found one must reproduce.
            assert_eq!(deflate_exact(&data, ZlibInit::Gzip, found).unwrap(), gz);
        }
        let mut other = deflate_exact(&data, ZlibInit::Gzip, 9).unwrap();
        other[4] = 1; // an mtime: not reproducible
        assert_eq!(find_zlib_level(&data, &other, ZlibInit::Gzip), None);
    }
}
