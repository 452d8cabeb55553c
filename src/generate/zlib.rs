//! Byte-exact stock-zlib helpers used by the generator, the writer and `recompress`.
//!
//! Interim implementation on `libz-sys` (bundled madler zlib, memLevel 9) with the same
//! signatures as `codec::zlib_deflate`; it is replaced by a re-export once that module lands, so
//! that the generator and the applier share one compressor.

use std::io::Read;
use std::os::raw::c_int;

use libz_sys as z;

use crate::error::{code, Error, Result};
use crate::format::ZlibInit;

/// Levels tried by [`find_zlib_level`], in upstream's order (`diff_get_zlib_compression_level`).
pub const LEVEL_SEARCH_ORDER: [i32; 10] = [9, 1, -1, 5, 2, 3, 4, 6, 7, 8];

/// Deflates `data` exactly as upstream's `zlib_compression` recipe does: stock zlib, the given
/// level, memLevel 9, default strategy, windowBits of `init`, and for gzip a zeroed header with
/// OS byte 3.
pub fn deflate_exact(data: &[u8], init: ZlibInit, level: i32) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    let mut sink = |chunk: &[u8]| {
        out.extend_from_slice(chunk);
        true
    };
    deflate_with(data, init, level, &mut sink)?;
    Ok(out)
}

extern "C" fn zalloc_cb(_: z::voidpf, items: z::uInt, size: z::uInt) -> z::voidpf {
    // SAFETY: plain C allocation; zlib frees it with zfree_cb.
    unsafe { libc::calloc(items as libc::size_t, size as libc::size_t) }
}

extern "C" fn zfree_cb(_: z::voidpf, address: z::voidpf) {
    // SAFETY: `address` came from zalloc_cb.
    unsafe { libc::free(address) }
}

/// Streams the deflate of `data` into `sink`; the sink returns `false` to stop early (the
/// function then returns `Ok(false)`).
fn deflate_with(
    data: &[u8],
    init: ZlibInit,
    level: i32,
    sink: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<bool> {
    let mut strm: Box<z::z_stream> = Box::new(z::z_stream {
        next_in: std::ptr::null_mut(),
        avail_in: 0,
        total_in: 0,
        next_out: std::ptr::null_mut(),
        avail_out: 0,
        total_out: 0,
        msg: std::ptr::null_mut(),
        state: std::ptr::null_mut(),
        zalloc: zalloc_cb,
        zfree: zfree_cb,
        opaque: std::ptr::null_mut(),
        data_type: 0,
        adler: 0,
        reserved: 0,
    });
    let rc = unsafe {
        z::deflateInit2_(
            &mut *strm,
            level as c_int,
            z::Z_DEFLATED,
            init.window_bits() as c_int,
            9,
            z::Z_DEFAULT_STRATEGY,
            z::zlibVersion(),
            std::mem::size_of::<z::z_stream>() as c_int,
        )
    };
    if rc != z::Z_OK {
        return Err(Error::new(
            code::IO_ZLIB_WRITER_INIT_FAILED,
            format!("deflateInit2() failed. ret: {rc}"),
        ));
    }
    struct Guard(*mut z::z_stream);
    impl Drop for Guard {
        fn drop(&mut self) {
            // SAFETY: the stream was initialised by deflateInit2_.
            unsafe { z::deflateEnd(self.0) };
        }
    }
    let _guard = Guard(&mut *strm);
    // The header must outlive the stream's use of it (until deflateEnd).
    let mut header: Box<z::gz_header> = Box::new(z::gz_header {
        text: 0,
        time: 0,
        xflags: 0,
        os: 0,
        extra: std::ptr::null_mut(),
        extra_len: 0,
        extra_max: 0,
        name: std::ptr::null_mut(),
        name_max: 0,
        comment: std::ptr::null_mut(),
        comm_max: 0,
        hcrc: 0,
        done: 0,
    });
    if init == ZlibInit::Gzip {
        header.os = 3;
        // SAFETY: both pointers are valid for the stream's lifetime.
        let rc = unsafe { z::deflateSetHeader(&mut *strm, &mut *header) };
        if rc != z::Z_OK {
            return Err(Error::new(
                code::IO_ZLIB_WRITER_DEFLATE_SET_HEADER_FAILED,
                format!("deflateSetHeader() failed. ret: {rc}"),
            ));
        }
    }
    let mut buf = vec![0u8; 1 << 16];
    let mut pos = 0usize;
    loop {
        let take = (data.len() - pos).min(1 << 20);
        let finish = pos + take == data.len();
        strm.next_in = data[pos..].as_ptr() as *mut u8;
        strm.avail_in = take as u32;
        loop {
            strm.next_out = buf.as_mut_ptr();
            strm.avail_out = buf.len() as u32;
            let flush = if finish { z::Z_FINISH } else { z::Z_NO_FLUSH };
            // SAFETY: next_in/next_out point into live buffers of the stated sizes.
            let rc = unsafe { z::deflate(&mut *strm, flush) };
            if rc != z::Z_OK && rc != z::Z_STREAM_END && rc != z::Z_BUF_ERROR {
                return Err(Error::new(
                    code::IO_ZLIB_WRITER_DEFLATE_FAILED,
                    format!("deflate() failed. ret: {rc}"),
                ));
            }
            let produced = buf.len() - strm.avail_out as usize;
            if produced > 0 && !sink(&buf[..produced]) {
                return Ok(false);
            }
            if rc == z::Z_STREAM_END {
                return Ok(true);
            }
            if strm.avail_in == 0 && strm.avail_out != 0 && !finish {
                break;
            }
        }
        pos += take;
    }
}

/// Finds a zlib level (upstream's search order; −1 = default) whose byte-exact deflate of
/// `uncompressed` equals `compressed`. Each try stops at the first differing byte.
pub fn find_zlib_level(uncompressed: &[u8], compressed: &[u8], init: ZlibInit) -> Option<i32> {
    let mut tried_default = false;
    for level in LEVEL_SEARCH_ORDER {
        if level == 6 && tried_default {
            continue; // identical to -1
        }
        tried_default |= level == -1;
        let mut pos = 0usize;
        let mut sink = |chunk: &[u8]| {
            let end = pos + chunk.len();
            if end > compressed.len() || compressed[pos..end] != *chunk {
                return false;
            }
            pos = end;
            true
        };
        if let Ok(true) = deflate_with(uncompressed, init, level, &mut sink) {
            if pos == compressed.len() {
                return Some(level);
            }
        }
    }
    None
}

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

/// Inflates a raw deflate stream.
pub fn inflate_raw(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// Whether `data` starts with the gzip magic and deflate method.
pub fn is_gzip(data: &[u8]) -> bool {
    data.len() >= 18 && data[0] == 0x1f && data[1] == 0x8b && data[2] == 8
}

#[cfg(test)]
mod tests {
    use super::*;

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
