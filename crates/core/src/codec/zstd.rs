//! Streaming zstd decompression (`zstd_decompression` recipe, docs/FORMAT.md §6.5).
//!
//! With a prefix, its raw bytes are referenced with `ZSTD_DCtx_refPrefix` (never parsed as a
//! trained dictionary) and the window limit is raised to 2^28; without one, libzstd's default
//! limit applies. Decoding stops as soon as `output_len` bytes are produced (frame end, checksum,
//! trailing data and further frames are not examined); concatenated frames decode in sequence.

use std::io::{self, Read};

use zstd_safe::{get_error_name, DCtx, DParameter, InBuffer, OutBuffer};

use super::{InputBuffer, StickyFailure};
use crate::error::{code, Error, Result};
use crate::io::SharedBytes;

/// `ZSTD_d_windowLogMax` used when a prefix is referenced (upstream's value).
pub const PREFIX_WINDOW_LOG_MAX: u32 = 28;

/// Upper bound of the input buffer size.
const MAX_IN_CHUNK: usize = 128 * 1024;

/// Whether a libzstd error code is a failed allocation (its window or workspace under a
/// memory limit): the apply reports those as 20301, like every other allocation the budget
/// could not cover.
pub fn is_allocation_failure(code: usize) -> bool {
    get_error_name(code) == "Allocation error : not enough memory"
}

/// Upstream's error for a failed `ZSTD_decompressStream()` call. A failed allocation inside
/// libzstd is the apply's out-of-memory code, 20301 ([`is_allocation_failure`]); the text stays
/// libzstd's.
fn stream_failed(code: usize) -> Error {
    Error::new(
        if is_allocation_failure(code) {
            code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN
        } else {
            code::IO_ZSTD_DECOMPRESS_STREAM_FAILED
        },
        format!(
            "ZSTD_decompressStream() failed. ret: {code} error_name: {}",
            get_error_name(code)
        ),
    )
}

/// Error for a failed context setup step (parameter or prefix).
fn setup_failed(what: &str, code: usize) -> Error {
    Error::new(
        code::IO_ZSTD_DECOMPRESS_STREAM_FAILED,
        format!(
            "{what} failed. ret: {code} error_name: {}",
            get_error_name(code)
        ),
    )
}

/// Streaming zstd decoder of `input`: yields exactly `output_len` bytes, then `Ok(0)`.
pub struct ZstdReader<R: Read> {
    // Field order matters: `dctx` borrows the bytes of `_prefix` and must be dropped first
    // (struct fields drop in declaration order).
    dctx: DCtx<'static>,
    src: InputBuffer<R>,
    produced: u64,
    output_len: u64,
    failed: StickyFailure,
    /// Output window in a mapped temporary file (large outputs only), see
    /// [`ZstdReader::with_mapped_window`]. Declared after `dctx`, which references it.
    window: Option<MappedWindow>,
    /// Output produced when the prefix's pages were last released (in-memory window mode;
    /// the mapped window releases them with its own).
    prefix_released_at: u64,
    /// Keeps the prefix bytes referenced by `dctx` alive.
    _prefix: Option<SharedBytes>,
}

/// Decoded output kept in a shared mapping of a temporary file: zstd references earlier output
/// there (`ZSTD_d_stableOutBuffer`) instead of allocating a window buffer as large as the frame's
/// window, and already-consumed pages can leave the process's resident set.
struct MappedWindow {
    map: memmap2::MmapMut,
    /// Bytes handed to the caller so far.
    served: usize,
    /// Output produced when pages were last released.
    released_at: u64,
}

/// Compressed input handed to one decode call in mapped-window mode.
const MAPPED_INPUT_STEP: usize = 32;

/// Output produced between two releases of the window's and the prefix's resident pages. Small,
/// because the kernel maps up to 16 neighbouring pages on each fault ("fault-around"), so the
/// scattered prefix reads of a few MiB of output can map far more than they touch.
const WINDOW_RELEASE_STEP: u64 = 1 << 20;

impl<R: Read> ZstdReader<R> {
    /// Starts decoding `input`, optionally against the raw-content `prefix`.
    pub fn new(input: R, prefix: Option<SharedBytes>, output_len: u64) -> Result<Self> {
        let mut dctx = DCtx::try_create().ok_or_else(|| {
            Error::new(
                code::IO_ZSTD_DECOMPRESS_STREAM_FAILED,
                "ZSTD_createDCtx() failed",
            )
        })?;
        if let Some(prefix) = &prefix {
            dctx.set_parameter(DParameter::WindowLogMax(PREFIX_WINDOW_LOG_MAX))
                .map_err(|c| setup_failed("ZSTD_DCtx_setParameter(windowLogMax)", c))?;
            // SAFETY: the bytes of a SharedBytes live in an Arc'd heap buffer or memory map whose
            // address does not change when the SharedBytes value moves. A clone of `prefix` is
            // stored in the reader next to `dctx` and declared after it, so the bytes outlive
            // every use by `dctx` (which is dropped first). The 'static lifetime never escapes:
            // `dctx` is private and only used through `&mut self`.
            let bytes: &'static [u8] =
                unsafe { std::slice::from_raw_parts(prefix.as_ptr(), prefix.len()) };
            dctx.ref_prefix(bytes)
                .map_err(|c| setup_failed("ZSTD_DCtx_refPrefix()", c))?;
        }
        let in_size = DCtx::in_size().clamp(4096, MAX_IN_CHUNK);
        Ok(ZstdReader {
            dctx,
            src: InputBuffer::new(input, in_size),
            produced: 0,
            output_len,
            failed: StickyFailure::default(),
            window: None,
            prefix_released_at: 0,
            _prefix: prefix,
        })
    }

    /// Like [`ZstdReader::new`], but decodes into a shared mapping of `file` (resized to
    /// `output_len`; normally an unlinked temporary file). Peak memory then stays bounded by the
    /// pages recently touched instead of the frame's window (up to 256 MiB with a prefix).
    pub fn with_mapped_window(
        input: R,
        prefix: Option<SharedBytes>,
        output_len: u64,
        file: &std::fs::File,
    ) -> Result<Self> {
        let mut reader = Self::new(input, prefix, output_len)?;
        let temp_failed = |e: io::Error| {
            Error::new(
                code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
                format!("Failed to prepare the zstd output window file: {e}"),
            )
        };
        let len = usize::try_from(output_len).map_err(|_| {
            Error::new(
                code::IO_ZSTD_DECOMPRESS_STREAM_FAILED,
                format!("zstd output of {output_len} bytes cannot be addressed"),
            )
        })?;
        if len == 0 {
            return Ok(reader);
        }
        file.set_len(output_len).map_err(temp_failed)?;
        // SAFETY: the file is private to this reader (an unlinked temporary file), so nobody
        // else resizes or writes it while mapped.
        let map =
            unsafe { memmap2::MmapOptions::new().len(len).map_mut(file) }.map_err(temp_failed)?;
        reader
            .dctx
            .set_parameter(DParameter::StableOutBuffer(true))
            .map_err(|c| setup_failed("ZSTD_DCtx_setParameter(stableOutBuffer)", c))?;
        reader.window = Some(MappedWindow {
            map,
            served: 0,
            released_at: 0,
        });
        Ok(reader)
    }

    /// Serves `buf` from the mapped window, decoding more output into it when needed.
    fn read_mapped(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let served = self.window.as_ref().map_or(0, |w| w.served) as u64;
        if served == self.produced {
            if self.produced == self.output_len {
                return Ok(0);
            }
            self.decode_into_window()?;
        }
        let window = self.window.as_mut().expect("mapped mode");
        let available = self.produced as usize - window.served;
        let n = buf.len().min(available);
        buf[..n].copy_from_slice(&window.map[window.served..window.served + n]);
        window.served += n;
        Ok(n)
    }

    /// Decodes until the mapped window holds more output, releasing resident pages regularly.
    fn decode_into_window(&mut self) -> io::Result<()> {
        loop {
            self.src.refill()?;
            let window = self.window.as_mut().expect("mapped mode");
            let before = self.produced as usize;
            let mut output = OutBuffer::around_pos(&mut window.map[..], before);
            // The output buffer must stay the whole mapping (stableOutBuffer), so the amount
            // decoded per call is bounded through the input instead: a few blocks at most.
            let mut input = InBuffer::around(self.src.pending(MAPPED_INPUT_STEP));
            let ret = self.dctx.decompress_stream(&mut output, &mut input);
            let (consumed, now) = (input.pos(), output.pos());
            ret.map_err(|c| stream_failed(c).into_io())?;
            self.src.consume(consumed);
            if now > before {
                self.produced = now as u64;
                break;
            }
            if consumed == 0 && self.src.exhausted() {
                return Err(self.ended_early().into_io());
            }
        }
        let window = self.window.as_mut().expect("mapped mode");
        if self.produced - window.released_at >= WINDOW_RELEASE_STEP {
            window.released_at = self.produced;
            // SAFETY: a shared file mapping: MADV_DONTNEED only unmaps pages (dirty ones stay in
            // the page cache and are faulted back in if zstd references them again).
            let _ = unsafe {
                window
                    .map
                    .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
            };
            if let Some(prefix) = &self._prefix {
                prefix.release(0, prefix.len() as u64);
            }
        }
        Ok(())
    }

    /// The error for input that ends before `output_len` bytes were produced.
    fn ended_early(&self) -> Error {
        Error::new(
            code::IO_ZSTD_DECOMPRESS_CANNOT_FINISH,
            format!(
                "zstd input ended after {} of {} bytes",
                self.produced, self.output_len
            ),
        )
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.window.is_some() {
            return self.read_mapped(buf);
        }
        let remaining = self.output_len - self.produced;
        if remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let out = &mut buf[..want];
        loop {
            self.src.refill()?;
            let mut output = OutBuffer::around(&mut *out);
            let mut input = InBuffer::around(self.src.pending(usize::MAX));
            let ret = self.dctx.decompress_stream(&mut output, &mut input);
            let (consumed, produced) = (input.pos(), output.pos());
            ret.map_err(|c| stream_failed(c).into_io())?;
            self.src.consume(consumed);
            if produced > 0 {
                self.produced += produced as u64;
                if self.produced - self.prefix_released_at >= WINDOW_RELEASE_STEP {
                    self.prefix_released_at = self.produced;
                    if let Some(prefix) = &self._prefix {
                        prefix.release(0, prefix.len() as u64);
                    }
                }
                return Ok(produced);
            }
            if consumed == 0 && self.src.exhausted() {
                // All input given and nothing more comes out: the data ends too early.
                return Err(self.ended_early().into_io());
            }
            // Otherwise zstd consumed input (or has input pending): keep going. zstd always
            // progresses when it has both input and output space.
        }
    }
}

impl<R: Read> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.failed.check()?;
        if buf.is_empty() {
            return Ok(0);
        }
        let result = self.read_inner(buf);
        self.failed
            .record(result, code::IO_ZSTD_DECOMPRESS_STREAM_FAILED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{err_code, read_all, vector, Dribble};

    const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

    /// The zstd frame(s) of a golden delta: from the first frame magic, as many whole frames as
    /// follow each other (the delta continues with other sections).
    fn frames(case: &str) -> Vec<u8> {
        let delta = vector(case, "delta");
        let start = delta.windows(4).position(|w| w == MAGIC).expect("magic");
        let mut end = start;
        while delta[end..].starts_with(&MAGIC) {
            end += zstd_safe::find_frame_compressed_size(&delta[end..]).expect("whole frame");
        }
        delta[start..end].to_vec()
    }

    fn decode(
        frames: &[u8],
        prefix: Option<SharedBytes>,
        len: u64,
        piece: usize,
        dribble: usize,
    ) -> io::Result<Vec<u8>> {
        read_all(
            ZstdReader::new(Dribble(frames, dribble), prefix, len).unwrap(),
            piece,
        )
    }

    #[test]
    fn golden_without_prefix_and_two_frames() {
        for case in ["zstd_no_dictionary", "zstd_two_concatenated_frames"] {
            let expected = vector(case, "target");
            let data = frames(case);
            for (piece, dribble) in [(1usize, 1usize), (1000, 7), (1 << 20, 1 << 20)] {
                let got = decode(&data, None, expected.len() as u64, piece, dribble).unwrap();
                assert!(got == expected, "{case} piece {piece}: output differs");
            }
        }
    }

    #[test]
    fn golden_with_prefix() {
        let case = "zstd_patch_from_source";
        let expected = vector(case, "target");
        let prefix = SharedBytes::from_vec(vector(case, "source"));
        let data = frames(case);
        for (piece, dribble) in [(3usize, 5usize), (1 << 20, 1 << 20)] {
            let got = decode(
                &data,
                Some(prefix.clone()),
                expected.len() as u64,
                piece,
                dribble,
            );
            assert!(got.unwrap() == expected, "piece {piece}: output differs");
        }
        // Without the prefix the frame cannot be decoded (its matches reach into the prefix).
        let e = decode(&data, None, expected.len() as u64, 1 << 16, 1 << 16).unwrap_err();
        assert_eq!(err_code(e), code::IO_ZSTD_DECOMPRESS_STREAM_FAILED);
    }

    #[test]
    fn corrupt_payload_decodes_like_microsoft() {
        // One corrupted byte in a literal block: no checksum, so zstd "succeeds" with wrong
        // bytes; Microsoft's output hash is recorded in case.json.
        use sha2::{Digest, Sha256};
        let case = "malformed_corrupt_zstd_payload";
        let source = vector(case, "source");
        let prefix = SharedBytes::from_vec(source[..100_000].to_vec());
        let got = decode(&frames(case), Some(prefix), 99_655, 4096, 4096).unwrap();
        assert_eq!(
            crate::format::model::hex(&Sha256::digest(&got)),
            "b8edb2cd317461a1b97a259258e171a9cc5a160e4010f2da5b6d61fc3949bcf3"
        );
    }

    #[test]
    fn truncated_input_and_errors() {
        let case = "zstd_two_concatenated_frames";
        let expected = vector(case, "target");
        let data = frames(case);
        let n = expected.len() as u64;

        // Input runs out before output_len → 20202.
        let e = decode(&data[..data.len() / 2], None, n, 4096, 4096).unwrap_err();
        assert_eq!(err_code(e), code::IO_ZSTD_DECOMPRESS_CANNOT_FINISH);
        // Frames end before output_len → 20202.
        let e = decode(&data, None, n + 1, 4096, 4096).unwrap_err();
        assert_eq!(err_code(e), code::IO_ZSTD_DECOMPRESS_CANNOT_FINISH);
        // Empty input → 20202.
        let e = decode(&[], None, 1, 4096, 4096).unwrap_err();
        assert_eq!(err_code(e), code::IO_ZSTD_DECOMPRESS_CANNOT_FINISH);

        // Not zstd at all → 20201 with upstream's text.
        let mut r = ZstdReader::new(&b"definitely not zstd"[..], None, 10).unwrap();
        let e = Error::from_io(r.read(&mut [0u8; 10]).unwrap_err(), 0);
        assert_eq!(e.code, code::IO_ZSTD_DECOMPRESS_STREAM_FAILED);
        assert!(
            e.message
                .starts_with("ZSTD_decompressStream() failed. ret: ")
                && e.message.contains("error_name: Unknown frame descriptor"),
            "{}",
            e.message
        );
        // Sticky.
        assert_eq!(
            err_code(r.read(&mut [0u8; 10]).unwrap_err()),
            code::IO_ZSTD_DECOMPRESS_STREAM_FAILED
        );

        // Stops after output_len; garbage after that is never looked at.
        let mut garbage = data.clone();
        garbage.extend_from_slice(b"garbage");
        let mut r = ZstdReader::new(&garbage[..], None, n).unwrap();
        assert!(read_all(&mut r, 4096).unwrap() == expected);
        let mut r = ZstdReader::new(&data[..], None, 100).unwrap();
        assert_eq!(read_all(&mut r, 64).unwrap(), expected[..100]);
        assert_eq!(r.read(&mut [0u8; 4]).unwrap(), 0);
    }

    #[test]
    fn garbage_never_panics_and_reader_is_send() {
        fn assert_send<T: Send + 'static>(_: &T) {}
        let r = ZstdReader::new(io::empty(), Some(SharedBytes::from_vec(vec![1, 2])), 1).unwrap();
        assert_send(&r);
        let mut data = frames("zstd_no_dictionary");
        assert_eq!(zstd_safe::find_frame_compressed_size(&data), Ok(data.len()));
        let two = frames("zstd_two_concatenated_frames");
        let first = zstd_safe::find_frame_compressed_size(&two).unwrap();
        assert!(
            first == 59311 - 444 && two.len() > first,
            "two frames expected"
        );
        let mut seed = 99u32;
        for i in 0..200 {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let at = (seed as usize >> 8) % data.len().min(4000);
            data[at] ^= (seed >> 3) as u8 | 1;
            let res = decode(&data, None, 300_000, 1 << 16, 1 << (16 - (i % 7)));
            if let Err(e) = res {
                let c = err_code(e);
                assert!(
                    c == code::IO_ZSTD_DECOMPRESS_STREAM_FAILED
                        || c == code::IO_ZSTD_DECOMPRESS_CANNOT_FINISH
                );
            }
        }
    }

    #[test]
    fn mapped_window_mode_decodes_identically_and_reports_errors() {
        for (case, with_prefix) in [
            ("zstd_patch_from_source", true),
            ("zstd_no_dictionary", false),
            ("zstd_two_concatenated_frames", false),
        ] {
            let expected = vector(case, "target");
            let prefix = with_prefix.then(|| SharedBytes::from_vec(vector(case, "source")));
            let data = frames(case);
            for (piece, dribble) in [(7usize, 3usize), (1 << 20, 1 << 20)] {
                let file = tempfile::tempfile().unwrap();
                let reader = ZstdReader::with_mapped_window(
                    Dribble(&data, dribble),
                    prefix.clone(),
                    expected.len() as u64,
                    &file,
                )
                .unwrap();
                let got = read_all(reader, piece).unwrap();
                assert!(got == expected, "{case}: mapped output differs");
            }
        }
        // Truncated input: same error as the in-memory mode.
        let data = frames("zstd_no_dictionary");
        let file = tempfile::tempfile().unwrap();
        let reader =
            ZstdReader::with_mapped_window(&data[..data.len() / 2], None, 300_000, &file).unwrap();
        let err = read_all(reader, 4096).unwrap_err();
        assert_eq!(err_code(err), code::IO_ZSTD_DECOMPRESS_CANNOT_FINISH);
    }
}
