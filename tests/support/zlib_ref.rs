//! Reference oracle: stock zlib (madler, bundled and statically linked by `libz-sys`).
//! Shared by the differential tests and the benchmark example.
#![allow(dead_code)]

use adudiffapi::pardeflate::Wrapper;
use libz_sys as z;
use std::os::raw::{c_int, c_void};

unsafe extern "C" fn zalloc(_opaque: *mut c_void, items: z::uInt, size: z::uInt) -> *mut c_void {
    // SAFETY: plain libc allocation (calloc checks `items * size` for overflow); zlib frees it
    // with `zfree` below.
    unsafe { libc::calloc(items as usize, size as usize) }
}

unsafe extern "C" fn zfree(_opaque: *mut c_void, p: *mut c_void) {
    // SAFETY: zlib passes back a pointer `zalloc` returned (libc::calloc), or NULL.
    unsafe { libc::free(p) }
}

/// Compress `data` with stock zlib: `deflateInit2_(level, 8, wbits, mem_level, 0)`,
/// `deflateSetHeader` (all zero, os = 3) for gzip, input fed in pieces of `piece` bytes with
/// `Z_NO_FLUSH`, then `Z_FINISH`.
pub fn zlib_deflate(
    data: &[u8],
    wrapper: Wrapper,
    level: i32,
    mem_level: i32,
    piece: usize,
) -> Vec<u8> {
    let wbits: c_int = match wrapper {
        Wrapper::Raw => -15,
        Wrapper::Zlib => 15,
        Wrapper::Gzip => 31,
    };
    // SAFETY: the z_stream lives on this frame for the whole use and is initialised by
    // deflateInit2_ before any other call; next_in/next_out point into `data` and `out`, which
    // outlive the stream, with avail_in/avail_out within their lengths (`out` is deflateBound
    // + 64 bytes, enough for the whole stream); deflateEnd frees zlib's state.
    unsafe {
        let mut strm = z::z_stream {
            next_in: std::ptr::null_mut(),
            avail_in: 0,
            total_in: 0,
            next_out: std::ptr::null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: std::ptr::null_mut(),
            state: std::ptr::null_mut(),
            zalloc,
            zfree,
            opaque: std::ptr::null_mut(),
            data_type: 0,
            adler: 0,
            reserved: 0,
        };
        let rc = z::deflateInit2_(
            &mut strm,
            level,
            8,
            wbits,
            mem_level,
            0,
            z::zlibVersion(),
            std::mem::size_of::<z::z_stream>() as c_int,
        );
        assert_eq!(rc, z::Z_OK, "deflateInit2_");
        let mut head: z::gz_header = std::mem::zeroed();
        head.os = 3;
        if wrapper == Wrapper::Gzip {
            assert_eq!(z::deflateSetHeader(&mut strm, &mut head), z::Z_OK);
        }
        let bound = z::deflateBound(&mut strm, data.len() as z::uLong) as usize + 64;
        let mut out = vec![0u8; bound];
        strm.next_out = out.as_mut_ptr();
        strm.avail_out = bound as z::uInt;
        let piece = piece.max(1);
        let mut fed = 0usize;
        loop {
            let n = piece.min(data.len() - fed);
            strm.next_in = data.as_ptr().add(fed) as *mut u8;
            strm.avail_in = n as z::uInt;
            fed += n;
            let flush = if fed == data.len() {
                z::Z_FINISH
            } else {
                z::Z_NO_FLUSH
            };
            let rc = z::deflate(&mut strm, flush);
            assert_eq!(strm.avail_in, 0);
            if flush == z::Z_FINISH {
                assert_eq!(rc, z::Z_STREAM_END, "deflate finish");
                break;
            }
            assert_eq!(rc, z::Z_OK);
        }
        let len = strm.total_out as usize;
        z::deflateEnd(&mut strm);
        out.truncate(len);
        out
    }
}
