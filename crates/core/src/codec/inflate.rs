//! Streaming inflate (`zlib_decompression` recipe, docs/FORMAT.md §6.3).
//!
//! Decodes the first stream/member only and stops as soon as `output_len` bytes are produced
//! (the trailer is then never examined). Errors follow upstream: corrupt or truncated data →
//! `20104` ("inflate() failed. ret: R", truncated input gives `Z_BUF_ERROR` = -5); a stream that
//! ends before `output_len` bytes → `20000`.

use std::io::{self, Read};

use libz_sys as z;

use super::zstream::Inflater;
use super::{InputBuffer, StickyFailure};
use crate::codec::ZlibInit;
use crate::error::{code, Error, Result};

/// Input buffer size.
const CHUNK: usize = 64 * 1024;

/// Upstream's error for a failed `inflate()` call.
fn inflate_failed(ret: i32) -> Error {
    Error::new(
        code::IO_ZLIB_READER_INFLATE_FAILED,
        format!("inflate() failed. ret: {ret}"),
    )
}

/// Streaming inflate of `input`: yields exactly `output_len` bytes, then `Ok(0)`.
pub struct InflateReader<R: Read> {
    src: InputBuffer<R>,
    inflater: Inflater,
    stream_end: bool,
    produced: u64,
    output_len: u64,
    failed: StickyFailure,
}

impl<R: Read> InflateReader<R> {
    /// Starts inflating `input` with the given framing (gzip accepts only gzip).
    pub fn new(input: R, init: ZlibInit, output_len: u64) -> Result<Self> {
        Ok(InflateReader {
            src: InputBuffer::new(input, CHUNK),
            inflater: Inflater::new(init.window_bits())?,
            stream_end: false,
            produced: 0,
            output_len,
            failed: StickyFailure::default(),
        })
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let remaining = self.output_len - self.produced;
            if remaining == 0 {
                return Ok(0);
            }
            if self.stream_end {
                return Err(Error::short_read(self.output_len, self.produced).into_io());
            }
            self.src.refill()?;
            let want = buf
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let step = self
                .inflater
                .step(self.src.pending(usize::MAX), &mut buf[..want]);
            self.src.consume(step.consumed);
            self.produced += step.produced as u64;
            match step.ret {
                z::Z_STREAM_END => self.stream_end = true,
                z::Z_OK => {}
                // No progress: with output space, that means the input ran out mid-stream.
                z::Z_BUF_ERROR if !self.src.exhausted() => {}
                ret => return Err(inflate_failed(ret).into_io()),
            }
            if step.produced > 0 {
                return Ok(step.produced);
            }
            if step.consumed == 0 && !self.stream_end && self.src.exhausted() {
                // Defensive: zlib reports this as Z_BUF_ERROR, handled above.
                return Err(inflate_failed(z::Z_BUF_ERROR).into_io());
            }
        }
    }
}

impl<R: Read> Read for InflateReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.failed.check()?;
        if buf.is_empty() {
            return Ok(0);
        }
        let result = self.read_inner(buf);
        self.failed
            .record(result, code::IO_ZLIB_READER_INFLATE_FAILED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::deflate_exact;
    use crate::codec::test_util::{err_code, read_all, vector, Dribble};

    const GOLDEN: [(&str, ZlibInit); 3] = [
        ("zlib_decompression_gz", ZlibInit::Gzip),
        ("zlib_decompression_raw", ZlibInit::Raw),
        ("zlib_decompression_zlib", ZlibInit::Zlib),
    ];

    #[test]
    fn golden_vectors() {
        for (case, init) in GOLDEN {
            // The compressed stream is a slice of the source at offset 4096.
            let source = vector(case, "source");
            let expected = vector(case, "target");
            for (piece, dribble) in [(1usize, 1usize), (4096, 3), (1 << 20, 1 << 20)] {
                let input = Dribble(&source[4096..], dribble);
                let r = InflateReader::new(input, init, expected.len() as u64).unwrap();
                let got = read_all(r, piece).unwrap();
                assert!(got == expected, "{case} piece {piece}: output differs");
            }
        }
    }

    #[test]
    fn gzip_read_as_raw_is_data_error() {
        let case = "malformed_zlib_decompress_gzip_as_raw";
        let source = vector(case, "source");
        let r = InflateReader::new(&source[..], ZlibInit::Raw, 1 << 20).unwrap();
        let e = Error::from_io(read_all(r, 4096).unwrap_err(), 0);
        assert_eq!(e.code, code::IO_ZLIB_READER_INFLATE_FAILED);
        assert_eq!(e.message, "inflate() failed. ret: -3");
        // Whereas as gzip it decodes.
        let r = InflateReader::new(&source[..], ZlibInit::Gzip, 10).unwrap();
        assert_eq!(read_all(r, 4096).unwrap().len(), 10);
    }

    #[test]
    fn gzip_mode_rejects_zlib_framing() {
        let data = deflate_exact(b"abcabcabc", ZlibInit::Zlib, 9).unwrap();
        let r = InflateReader::new(&data[..], ZlibInit::Gzip, 9).unwrap();
        assert_eq!(
            err_code(read_all(r, 64).unwrap_err()),
            code::IO_ZLIB_READER_INFLATE_FAILED
        );
    }

    #[test]
    fn short_truncated_and_trailing() {
        let plain: Vec<u8> = (0..100_000u64).map(|i| (i * i % 251) as u8).collect();
        let gz = deflate_exact(&plain, ZlibInit::Gzip, 6).unwrap();
        let n = plain.len() as u64;

        // Stream ends before output_len → short read.
        let r = InflateReader::new(&gz[..], ZlibInit::Gzip, n + 1).unwrap();
        let e = Error::from_io(read_all(r, 1000).unwrap_err(), 0);
        assert_eq!(e, Error::short_read(n + 1, n));

        // Truncated input → Z_BUF_ERROR.
        let r = InflateReader::new(&gz[..gz.len() / 2], ZlibInit::Gzip, n).unwrap();
        let e = Error::from_io(read_all(r, 1000).unwrap_err(), 0);
        assert_eq!(e.message, "inflate() failed. ret: -5");
        assert_eq!(e.code, code::IO_ZLIB_READER_INFLATE_FAILED);

        // Missing trailer is fine once output_len bytes are out; a second member is never read.
        let r = InflateReader::new(&gz[..gz.len() - 8], ZlibInit::Gzip, n).unwrap();
        assert!(read_all(r, 1000).unwrap() == plain);
        let mut two = gz.clone();
        two.extend_from_slice(&gz);
        let r = InflateReader::new(&two[..], ZlibInit::Gzip, n).unwrap();
        assert!(read_all(r, 1000).unwrap() == plain);

        // Fewer than output_len wanted: stops early, then Ok(0).
        let mut r = InflateReader::new(&gz[..], ZlibInit::Gzip, 10).unwrap();
        assert_eq!(read_all(&mut r, 3).unwrap(), plain[..10]);
        assert_eq!(r.read(&mut [0u8; 4]).unwrap(), 0);
    }

    #[test]
    fn chained_deflate_inflate_round_trip_all_levels() {
        use crate::codec::DeflateReader;
        let plain: Vec<u8> = (0..300_000u64)
            .map(|i| {
                if i % 1000 < 500 {
                    (i % 7) as u8
                } else {
                    (i * 31 % 253) as u8
                }
            })
            .collect();
        for init in [ZlibInit::Raw, ZlibInit::Gzip, ZlibInit::Zlib] {
            for level in -1..=9 {
                let packed = deflate_exact(&plain, init, level).unwrap();
                let deflate =
                    DeflateReader::new(&plain[..], init, level, packed.len() as u64).unwrap();
                let r = InflateReader::new(deflate, init, plain.len() as u64).unwrap();
                assert!(
                    read_all(r, 10_000).unwrap() == plain,
                    "{init:?} level {level}"
                );
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u32;
        for len in [0usize, 1, 2, 10, 100, 5000] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 24) as u8
                })
                .collect();
            for init in [ZlibInit::Raw, ZlibInit::Gzip, ZlibInit::Zlib] {
                let r = InflateReader::new(&data[..], init, 1000).unwrap();
                match read_all(r, 64) {
                    Ok(out) => assert_eq!(out.len(), 1000),
                    Err(e) => {
                        let e = err_code(e);
                        assert!(
                            e == code::IO_ZLIB_READER_INFLATE_FAILED
                                || e == code::IO_READER_READ_FAILURE
                        );
                    }
                }
            }
        }
    }
}
