//! A small safe wrapper around a stock-zlib `z_stream` (the bundled madler zlib of `libz-sys`).
//!
//! zlib keeps a pointer from its internal state back to the `z_stream`, so the stream must not
//! move after `deflateInit2_`/`inflateInit2_`: it lives in a `Box`. Likewise `deflateSetHeader`
//! keeps a pointer to the `gz_header` until the header has been written, so the header is boxed
//! and owned by the wrapper as well.

use std::os::raw::{c_int, c_uint};

use libz_sys as z;

use crate::error::{code, Error, Result};

/// zlib allocation callback: `calloc` checks `items * size` for overflow.
unsafe extern "C" fn zalloc(_opaque: z::voidpf, items: z::uInt, size: z::uInt) -> z::voidpf {
    // SAFETY: plain libc allocation; zlib frees it with `zfree` below.
    unsafe { libc::calloc(items as libc::size_t, size as libc::size_t) }
}

/// zlib deallocation callback matching [`zalloc`].
unsafe extern "C" fn zfree(_opaque: z::voidpf, address: z::voidpf) {
    // SAFETY: `address` was returned by `zalloc` (libc::calloc) or is NULL.
    unsafe { libc::free(address) }
}

/// A fresh, not yet initialised `z_stream` with our allocator callbacks.
fn blank_stream() -> Box<z::z_stream> {
    Box::new(z::z_stream {
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
    })
}

/// Size of `z_stream` as zlib's init functions expect it.
const STREAM_SIZE: c_int = std::mem::size_of::<z::z_stream>() as c_int;

/// The longest buffer handed to zlib in one call (`avail_in`/`avail_out` are 32-bit).
const MAX_CHUNK: usize = 1 << 30;

/// Outcome of one [`Deflater::step`] / [`Inflater::step`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// Input bytes consumed.
    pub consumed: usize,
    /// Output bytes written.
    pub produced: usize,
    /// zlib's return code (`Z_OK`, `Z_STREAM_END`, `Z_BUF_ERROR`, or an error).
    pub ret: c_int,
}

/// Runs one zlib call on `stream` with the given buffers and reports what happened.
fn run(
    stream: &mut z::z_stream,
    input: &[u8],
    output: &mut [u8],
    call: impl FnOnce(&mut z::z_stream) -> c_int,
) -> Step {
    let input = &input[..input.len().min(MAX_CHUNK)];
    let out_len = output.len().min(MAX_CHUNK);
    stream.next_in = input.as_ptr() as *mut u8;
    stream.avail_in = input.len() as c_uint;
    stream.next_out = output.as_mut_ptr();
    stream.avail_out = out_len as c_uint;
    let ret = call(stream);
    let consumed = input.len() - stream.avail_in as usize;
    let produced = out_len - stream.avail_out as usize;
    // Do not leave dangling pointers to the caller's buffers behind.
    stream.next_in = std::ptr::null_mut();
    stream.avail_in = 0;
    stream.next_out = std::ptr::null_mut();
    stream.avail_out = 0;
    Step {
        consumed,
        produced,
        ret,
    }
}

/// An initialised deflate stream (stock zlib), freed with `deflateEnd` on drop.
pub(crate) struct Deflater {
    stream: Box<z::z_stream>,
    /// Kept alive (and unmoved) while zlib may still read it.
    _header: Option<Box<z::gz_header>>,
}

// SAFETY: the stream and header are owned exclusively by this value; zlib's state holds no
// thread-affine resources, and every access goes through `&mut self`.
unsafe impl Send for Deflater {}

impl Deflater {
    /// `deflateInit2_(level, Z_DEFLATED, window_bits, mem_level, Z_DEFAULT_STRATEGY)`, plus for
    /// gzip (`window_bits > 15`) `deflateSetHeader` with a zeroed header except `os = 3`.
    pub fn new(level: i32, window_bits: i32, mem_level: i32) -> Result<Self> {
        let mut stream = blank_stream();
        // SAFETY: `stream` is a valid, boxed (so never moving) z_stream with valid allocator
        // callbacks; the version string is zlib's own static C string.
        let ret = unsafe {
            z::deflateInit2_(
                &mut *stream,
                level,
                z::Z_DEFLATED,
                window_bits,
                mem_level,
                z::Z_DEFAULT_STRATEGY,
                z::zlibVersion(),
                STREAM_SIZE,
            )
        };
        if ret != z::Z_OK {
            // On failure zlib has freed whatever it allocated; there is nothing to end.
            return Err(Error::new(
                code::IO_ZLIB_WRITER_INIT_FAILED,
                format!("deflateInit2() failed. ret: {ret}"),
            ));
        }
        let mut deflater = Deflater {
            stream,
            _header: None,
        };
        if window_bits > 15 {
            let mut header = Box::new(z::gz_header {
                text: 0,
                time: 0,
                xflags: 0,
                os: 3,
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
            // SAFETY: the stream is initialised; the header is boxed and stored in `deflater`
            // right after, so it outlives every deflate call that may read it.
            let ret = unsafe { z::deflateSetHeader(&mut *deflater.stream, &mut *header) };
            deflater._header = Some(header);
            if ret != z::Z_OK {
                return Err(Error::new(
                    code::IO_ZLIB_WRITER_DEFLATE_SET_HEADER_FAILED,
                    format!("deflateSetHeader() failed. ret: {ret}"),
                ));
            }
        }
        Ok(deflater)
    }

    /// One `deflate()` call (`Z_FINISH` if `finish`, else `Z_NO_FLUSH`).
    pub fn step(&mut self, input: &[u8], output: &mut [u8], finish: bool) -> Step {
        let flush = if finish { z::Z_FINISH } else { z::Z_NO_FLUSH };
        // SAFETY: the stream is initialised; `run` points it at live buffers whose lengths
        // bound avail_in/avail_out, and clears the pointers before returning.
        run(&mut self.stream, input, output, |s| unsafe {
            z::deflate(s, flush)
        })
    }
}

// Added in zlib 1.2.5.1 but not declared by libz-sys; the bundled static zlib defines it.
extern "C" {
    fn deflatePending(strm: z::z_streamp, pending: *mut c_uint, bits: *mut c_int) -> c_int;
}

impl Deflater {
    /// `deflateReset` then `deflateParams(level, Z_DEFAULT_STRATEGY)` (pigz's per-job setup).
    pub fn reset_with_level(&mut self, level: i32) -> c_int {
        // SAFETY: the stream is initialised and owned by `self`.
        unsafe {
            let ret = z::deflateReset(&mut *self.stream);
            if ret != z::Z_OK {
                return ret;
            }
            z::deflateParams(&mut *self.stream, level, z::Z_DEFAULT_STRATEGY)
        }
    }

    /// `deflateSetDictionary` with `dictionary` (at most 1 GiB; callers pass ≤ 32 KiB).
    pub fn set_dictionary(&mut self, dictionary: &[u8]) -> c_int {
        let len = dictionary.len().min(MAX_CHUNK);
        // SAFETY: the stream is initialised; zlib copies the dictionary before returning.
        unsafe { z::deflateSetDictionary(&mut *self.stream, dictionary.as_ptr(), len as c_uint) }
    }

    /// One `deflate(flush)` call with any flush mode.
    pub fn step_flush(&mut self, input: &[u8], output: &mut [u8], flush: c_int) -> Step {
        // SAFETY: as in `step`.
        run(&mut self.stream, input, output, |s| unsafe {
            z::deflate(s, flush)
        })
    }

    /// Bits waiting in zlib's bit buffer that do not yet fill a byte (`deflatePending`).
    pub fn pending_bits(&mut self) -> Result<u32> {
        let mut pending: c_uint = 0;
        let mut bits: c_int = 0;
        // SAFETY: the stream is initialised; both out-pointers are live locals.
        let ret = unsafe { deflatePending(&mut *self.stream, &mut pending, &mut bits) };
        if ret != z::Z_OK {
            return Err(Error::new(
                code::IO_ZLIB_WRITER_DEFLATE_FAILED,
                format!("deflatePending() failed. ret: {ret}"),
            ));
        }
        Ok(bits as u32)
    }

    /// `deflatePrime(bits, value)`: inserts `bits` bits of `value` into the output.
    pub fn prime(&mut self, bits: c_int, value: c_int) -> c_int {
        // SAFETY: the stream is initialised and owned by `self`.
        unsafe { z::deflatePrime(&mut *self.stream, bits, value) }
    }
}

impl Drop for Deflater {
    fn drop(&mut self) {
        // SAFETY: the stream was successfully initialised by deflateInit2_ and is ended once.
        unsafe {
            z::deflateEnd(&mut *self.stream);
        }
    }
}

/// An initialised inflate stream (stock zlib), freed with `inflateEnd` on drop.
pub(crate) struct Inflater {
    stream: Box<z::z_stream>,
}

// SAFETY: the stream is owned exclusively by this value and only used through `&mut self`.
unsafe impl Send for Inflater {}

impl Inflater {
    /// `inflateInit2_(window_bits)`.
    pub fn new(window_bits: i32) -> Result<Self> {
        let mut stream = blank_stream();
        // SAFETY: as in `Deflater::new`.
        let ret =
            unsafe { z::inflateInit2_(&mut *stream, window_bits, z::zlibVersion(), STREAM_SIZE) };
        if ret != z::Z_OK {
            return Err(Error::new(
                code::IO_ZLIB_READER_INIT_FAILED,
                format!("inflateInit2() failed. ret: {ret}"),
            ));
        }
        Ok(Inflater { stream })
    }

    /// One `inflate(Z_BLOCK)` call: stops at each deflate block boundary.
    pub fn step_block(&mut self, input: &[u8], output: &mut [u8]) -> Step {
        // SAFETY: as in `step`.
        run(&mut self.stream, input, output, |s| unsafe {
            z::inflate(s, z::Z_BLOCK)
        })
    }

    /// zlib's `data_type` after the last call: unused bits of the last input byte (low 3
    /// bits), +64 while in the last block, +128 right after a block's end.
    pub fn data_type(&self) -> i32 {
        self.stream.data_type
    }

    /// One `inflate(Z_NO_FLUSH)` call.
    pub fn step(&mut self, input: &[u8], output: &mut [u8]) -> Step {
        // SAFETY: the stream is initialised; `run` points it at live buffers whose lengths
        // bound avail_in/avail_out, and clears the pointers before returning.
        run(&mut self.stream, input, output, |s| unsafe {
            z::inflate(s, z::Z_NO_FLUSH)
        })
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: the stream was successfully initialised by inflateInit2_ and is ended once.
        unsafe {
            z::inflateEnd(&mut *self.stream);
        }
    }
}

/// The version string of the linked zlib (the bundled, statically built madler zlib).
pub fn zlib_version() -> &'static str {
    // SAFETY: zlibVersion returns a pointer to a static NUL-terminated ASCII string.
    let version = unsafe { std::ffi::CStr::from_ptr(z::zlibVersion()) };
    version.to_str().unwrap_or("?")
}
