//! Byte-exact re-deflate with stock zlib (`zlib_compression` recipe, docs/FORMAT.md §6.4).
//!
//! Configuration: `deflateInit2_(level, Z_DEFLATED, windowBits, memLevel 9, Z_DEFAULT_STRATEGY)`
//! and, for gzip, `deflateSetHeader` with a zeroed header except `os = 3`. Input is fed with
//! `Z_NO_FLUSH` and finished with `Z_FINISH`; for levels 1–9 the output does not depend on how
//! the input is split.

use std::io::{self, Read};

use libz_sys as z;

use super::zstream::{Deflater, Step};
use super::{InputBuffer, StickyFailure};
use crate::codec::ZlibInit;
use crate::error::{code, Error, Result};

/// zlib `memLevel` used by upstream (not zlib's default 8).
pub const MEM_LEVEL: i32 = 9;

/// Input piece size for levels 1–9 (their output is independent of it).
const CHUNK: usize = 256 * 1024;

/// Input piece size for level 0, whose stored-block output depends on chunking; upstream feeds
/// pieces of at most 4096 bytes (best effort: output buffer sizes matter too).
const LEVEL0_CHUNK: usize = 4096;

/// Upstream's level order in `diff_get_zlib_compression_level`.
pub const LEVEL_SEARCH_ORDER: [i32; 10] = [9, 1, -1, 5, 2, 3, 4, 6, 7, 8];

/// Maps a recipe's level number to a zlib level: 0..=9, or exactly 0xFFFFFFFF for -1.
pub fn zlib_level_from_number(n: u64) -> Result<i32> {
    match n {
        0..=9 => Ok(n as i32),
        0xFFFF_FFFF => Ok(-1),
        _ => Err(Error::new(
            code::RECIPE_ZLIB_COMPRESSION_LEVEL_INVALID,
            format!("Invalid error message. Expected value from 0 to 9. Actual Value: {n}"),
        )),
    }
}

/// Error for a zlib `deflate()` failure.
fn deflate_failed(ret: i32) -> Error {
    Error::new(
        code::IO_ZLIB_WRITER_DEFLATE_FAILED,
        format!("deflate() failed. ret: {ret}"),
    )
}

/// Checks a deflate step's return code; `Ok(true)` at stream end.
fn check_step(step: &Step) -> Result<bool> {
    match step.ret {
        z::Z_STREAM_END => Ok(true),
        // Z_BUF_ERROR only means "no progress possible with these buffers".
        z::Z_OK | z::Z_BUF_ERROR => Ok(false),
        ret => Err(deflate_failed(ret)),
    }
}

/// Streaming deflate of `input`: yields exactly `output_len` compressed bytes, then `Ok(0)`.
pub struct DeflateReader<R: Read> {
    src: InputBuffer<R>,
    deflater: Deflater,
    piece: usize,
    stream_end: bool,
    produced: u64,
    output_len: u64,
    failed: StickyFailure,
}

impl<R: Read> DeflateReader<R> {
    /// Starts deflating `input` with the given framing and zlib level (-1..=9).
    pub fn new(input: R, init: ZlibInit, level: i32, output_len: u64) -> Result<Self> {
        let deflater = Deflater::new(level, init.window_bits(), MEM_LEVEL)?;
        Ok(DeflateReader {
            src: InputBuffer::new(input, CHUNK),
            deflater,
            piece: if level == 0 { LEVEL0_CHUNK } else { CHUNK },
            stream_end: false,
            produced: 0,
            output_len,
            failed: StickyFailure::default(),
        })
    }

    /// One deflate call into `out`; returns the bytes written (0 is possible).
    fn pump(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.src.refill()?;
        let piece = self.src.pending(self.piece);
        // Z_FINISH only once every input byte is handed over (zlib forbids new input after it).
        let finish = self.src.eof() && piece.len() == self.src.pending(usize::MAX).len();
        let step = self.deflater.step(piece, out, finish);
        self.src.consume(step.consumed);
        self.stream_end = check_step(&step)?;
        if step.consumed == 0 && step.produced == 0 && !self.stream_end && finish {
            // Finishing with output space must always progress; guard against a stall anyway.
            return Err(deflate_failed(step.ret).into_io());
        }
        Ok(step.produced)
    }

    /// Called once `output_len` bytes were delivered: the stream must end with no more output.
    fn check_no_surplus(&mut self) -> io::Result<()> {
        let mut probe = [0u8; 64];
        while !self.stream_end {
            if self.pump(&mut probe)? > 0 {
                return Err(Error::new(
                    code::IO_ZLIB_WRITER_DEFLATE_FAILED,
                    format!(
                        "deflate produced more than the expected {} bytes",
                        self.output_len
                    ),
                )
                .into_io());
            }
        }
        Ok(())
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let remaining = self.output_len - self.produced;
            if remaining == 0 {
                self.check_no_surplus()?;
                return Ok(0);
            }
            if self.stream_end {
                return Err(Error::short_read(self.output_len, self.produced).into_io());
            }
            let want = buf
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let n = self.pump(&mut buf[..want])?;
            if n > 0 {
                self.produced += n as u64;
                return Ok(n);
            }
        }
    }
}

impl<R: Read> Read for DeflateReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.failed.check()?;
        if buf.is_empty() {
            return Ok(0);
        }
        let result = self.read_inner(buf);
        self.failed
            .record(result, code::IO_ZLIB_WRITER_DEFLATE_FAILED)
    }
}

/// One-shot deflate of `data` with upstream's configuration.
pub fn deflate_exact(data: &[u8], init: ZlibInit, level: i32) -> Result<Vec<u8>> {
    let mut deflater = Deflater::new(level, init.window_bits(), MEM_LEVEL)?;
    let piece = if level == 0 { LEVEL0_CHUNK } else { CHUNK };
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut pos = 0;
    loop {
        let end = data.len().min(pos + piece);
        let finish = end == data.len();
        let step = deflater.step(&data[pos..end], &mut scratch, finish);
        pos += step.consumed;
        out.extend_from_slice(&scratch[..step.produced]);
        if check_step(&step)? {
            return Ok(out);
        }
        if step.consumed == 0 && step.produced == 0 && finish {
            return Err(deflate_failed(step.ret));
        }
    }
}

/// Whether deflating `uncompressed` at `level` yields exactly `compressed` (stops at the first
/// differing byte).
fn level_matches(uncompressed: &[u8], compressed: &[u8], init: ZlibInit, level: i32) -> bool {
    let Ok(mut deflater) = Deflater::new(level, init.window_bits(), MEM_LEVEL) else {
        return false;
    };
    let piece = if level == 0 { LEVEL0_CHUNK } else { CHUNK };
    let mut scratch = vec![0u8; 16 * 1024];
    let (mut pos, mut matched) = (0usize, 0usize);
    loop {
        let end = uncompressed.len().min(pos + piece);
        let finish = end == uncompressed.len();
        let step = deflater.step(&uncompressed[pos..end], &mut scratch, finish);
        pos += step.consumed;
        let produced = &scratch[..step.produced];
        if compressed.get(matched..matched + produced.len()) != Some(produced) {
            return false;
        }
        matched += produced.len();
        match check_step(&step) {
            Ok(true) => return matched == compressed.len(),
            Ok(false) if step.consumed == 0 && step.produced == 0 && finish => return false,
            Ok(false) => {}
            Err(_) => return false,
        }
    }
}

/// Finds the zlib level (upstream's search order) whose output reproduces `compressed` exactly.
pub fn find_zlib_level(uncompressed: &[u8], compressed: &[u8], init: ZlibInit) -> Option<i32> {
    LEVEL_SEARCH_ORDER
        .into_iter()
        .find(|&level| level_matches(uncompressed, compressed, init, level))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{err_code, read_all, vector, Dribble};

    /// The three golden cases deflate `source[0..200000]` (see each delta's slice recipe).
    const GOLDEN: [(&str, ZlibInit, i32); 3] = [
        ("zlib_compression_raw_level_9", ZlibInit::Raw, 9),
        ("zlib_compression_gz_level_default", ZlibInit::Gzip, -1),
        ("zlib_compression_zlib_level_1", ZlibInit::Zlib, 1),
    ];

    fn uncompressed(case: &str) -> Vec<u8> {
        let mut src = vector(case, "source");
        src.truncate(200_000);
        src
    }

    #[test]
    fn linked_zlib_is_the_bundled_madler_zlib() {
        let v = super::super::zstream::zlib_version();
        assert!(v.starts_with("1."), "unexpected zlib version {v}");
        assert!(!v.contains("zlib-ng"), "zlib-ng linked: {v}");
    }

    #[test]
    fn one_shot_matches_golden_vectors() {
        for (case, init, level) in GOLDEN {
            let expected = vector(case, "target");
            let got = deflate_exact(&uncompressed(case), init, level).unwrap();
            assert!(got == expected, "{case}: output differs");
        }
    }

    #[test]
    fn reader_matches_golden_vectors_with_odd_buffers() {
        for (case, init, level) in GOLDEN {
            let expected = vector(case, "target");
            let data = uncompressed(case);
            for (piece, dribble) in [(1usize, 1usize), (7, 4099), (4096, 1 << 20), (1 << 20, 17)] {
                // The input reader returns at most `dribble` bytes per call.
                let input = Dribble(&data[..], dribble);
                let r = DeflateReader::new(input, init, level, expected.len() as u64).unwrap();
                let got = read_all(r, piece).unwrap();
                assert!(got == expected, "{case} piece {piece}: output differs");
            }
        }
    }

    #[test]
    fn finds_levels_of_golden_vectors() {
        for (case, init, level) in GOLDEN {
            let found = find_zlib_level(&uncompressed(case), &vector(case, "target"), init);
            assert_eq!(found, Some(level), "{case}");
        }
        let data = uncompressed(GOLDEN[0].0);
        let mut bad = vector(GOLDEN[0].0, "target");
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(find_zlib_level(&data, &bad, ZlibInit::Raw), None);
        let short = &vector(GOLDEN[0].0, "target")[..1000];
        assert_eq!(find_zlib_level(&data, short, ZlibInit::Raw), None);
        // Level 6 output is found as the default level (-1), which comes first.
        let six = deflate_exact(&data, ZlibInit::Zlib, 6).unwrap();
        assert_eq!(find_zlib_level(&data, &six, ZlibInit::Zlib), Some(-1));
        let seven = deflate_exact(&data, ZlibInit::Gzip, 7).unwrap();
        assert_eq!(find_zlib_level(&data, &seven, ZlibInit::Gzip), Some(7));
    }

    #[test]
    fn gzip_header_xfl_and_os() {
        let data = b"hello hello hello hello";
        let head = |level| deflate_exact(data, ZlibInit::Gzip, level).unwrap()[..10].to_vec();
        assert_eq!(head(9), [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3]);
        assert_eq!(head(1), [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3]);
        assert_eq!(head(0), [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3]);
        assert_eq!(head(5), [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(head(-1), [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        let zlib_head = |level| deflate_exact(data, ZlibInit::Zlib, level).unwrap()[..2].to_vec();
        assert_eq!(zlib_head(1), [0x78, 0x01]);
        assert_eq!(zlib_head(4), [0x78, 0x5e]);
        assert_eq!(zlib_head(-1), [0x78, 0x9c]);
        assert_eq!(zlib_head(9), [0x78, 0xda]);
    }

    #[test]
    fn level_numbers() {
        assert_eq!(zlib_level_from_number(0).unwrap(), 0);
        assert_eq!(zlib_level_from_number(9).unwrap(), 9);
        assert_eq!(zlib_level_from_number(0xFFFF_FFFF).unwrap(), -1);
        for bad in [10u64, 0xFFFF_FFFE, 0x1_0000_0000, u64::MAX] {
            let e = zlib_level_from_number(bad).unwrap_err();
            assert_eq!(e.code, code::RECIPE_ZLIB_COMPRESSION_LEVEL_INVALID);
            assert_eq!(
                e.message,
                format!("Invalid error message. Expected value from 0 to 9. Actual Value: {bad}")
            );
        }
    }

    #[test]
    fn invalid_level_fails_init() {
        let e = DeflateReader::new(&b""[..], ZlibInit::Raw, 10, 1)
            .err()
            .unwrap();
        assert_eq!(e.code, code::IO_ZLIB_WRITER_INIT_FAILED);
    }

    #[test]
    fn short_and_surplus_output_are_errors() {
        let data = b"some data some data some data".to_vec();
        let full = deflate_exact(&data, ZlibInit::Zlib, 9).unwrap();
        let n = full.len() as u64;

        let r = DeflateReader::new(&data[..], ZlibInit::Zlib, 9, n + 5).unwrap();
        let e = read_all(r, 3).unwrap_err();
        assert_eq!(err_code(e), code::IO_READER_READ_FAILURE);

        let mut r = DeflateReader::new(&data[..], ZlibInit::Zlib, 9, n - 1).unwrap();
        let mut got = vec![0u8; full.len() - 1];
        r.read_exact(&mut got).unwrap();
        assert_eq!(got, full[..full.len() - 1]);
        let e = r.read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(err_code(e), code::IO_ZLIB_WRITER_DEFLATE_FAILED);
        // The error is sticky.
        let e = r.read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(err_code(e), code::IO_ZLIB_WRITER_DEFLATE_FAILED);

        // Exactly right: Ok(0) afterwards, repeatedly.
        let mut r = DeflateReader::new(&data[..], ZlibInit::Zlib, 9, n).unwrap();
        assert_eq!(read_all(&mut r, 1).unwrap(), full);
        assert_eq!(r.read(&mut [0u8; 4]).unwrap(), 0);
    }

    #[test]
    fn input_errors_pass_through() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(Error::new(code::IO_DEVICE_NEW_END_PAST_SIZE, "boom").into_io())
            }
        }
        let mut r = DeflateReader::new(Failing, ZlibInit::Raw, 9, 10).unwrap();
        let e = r.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err_code(e), code::IO_DEVICE_NEW_END_PAST_SIZE);
    }

    #[test]
    fn empty_input_and_reader_is_send() {
        fn assert_send<T: Send + 'static>(_: &T) {}
        let expected = deflate_exact(b"", ZlibInit::Gzip, 9).unwrap();
        assert_eq!(expected.len(), 20);
        let r = DeflateReader::new(io::empty(), ZlibInit::Gzip, 9, 20).unwrap();
        assert_send(&r);
        assert_eq!(read_all(r, 5).unwrap(), expected);
    }
}
