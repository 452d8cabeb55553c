//! Exact zstd frames from their content (the extended format's `zstd_compression_exact`
//! recipe, docs/EXTENDED-FORMAT.md).
//!
//! A zstd frame is reproducible from its content when the same libzstd, at the same level and
//! with the same frame parameters, made it: the encoder is deterministic, and its output does
//! not depend on how the input is fed (only on the parameters, on whether the content size was
//! pledged up front, and on single-threaded versus multi-threaded job mode; the job mode's
//! output does not depend on the number of workers). The recipe's numbers record exactly
//! those: `[encoder, level, flags, window_log, job_size]` ([`ZstdParams`]).
//!
//! The encoder number is the libzstd version that made the frame (`ZSTD_versionNumber()`);
//! an applier linked with another libzstd refuses the recipe (39002) rather than risk other
//! bytes. Memory is bounded before anything is allocated: the window log is at most
//! [`MAX_WINDOW_LOG`], the job size at most [`MAX_JOB_SIZE`], and the caller charges
//! [`ZstdParams::memory`] to its budget; libzstd's own allocations fail cleanly.

use std::io::{self, Read};

use zstd_safe::zstd_sys::{self, ZSTD_EndDirective};
use zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer};

use crate::error::{code, Error, Result};

/// Flag bit: the frame carries a content checksum (`ZSTD_c_checksumFlag`).
pub const FLAG_CHECKSUM: u64 = 1;
/// Flag bit: the frame header carries the content size when it was pledged
/// (`ZSTD_c_contentSizeFlag`).
pub const FLAG_CONTENT_SIZE: u64 = 2;
/// Flag bit: the content size was pledged before compressing (`ZSTD_CCtx_setPledgedSrcSize`;
/// libzstd then also tunes its parameters to the size).
pub const FLAG_PLEDGED: u64 = 4;
/// Flag bit: multi-threaded job mode (`ZSTD_c_nbWorkers` ≥ 1; the output is the same for any
/// number of workers, and differs from single-threaded mode).
pub const FLAG_JOBS: u64 = 8;
/// Flag bit: long-distance matching enabled (`ZSTD_c_enableLongDistanceMatching`, `zstd --long`).
pub const FLAG_LONG: u64 = 16;
/// Every flag bit this applier knows; any other bit is refused (39002).
pub const KNOWN_FLAGS: u64 =
    FLAG_CHECKSUM | FLAG_CONTENT_SIZE | FLAG_PLEDGED | FLAG_JOBS | FLAG_LONG;
/// Smallest explicit window log (`ZSTD_WINDOWLOG_MIN`).
pub const MIN_WINDOW_LOG: u64 = 10;
/// Largest window log accepted: 128 MiB, libzstd's default decoder limit (frames with larger
/// windows need a special decoder setting anyway); bounds the compressor's memory.
pub const MAX_WINDOW_LOG: u64 = 27;
/// Smallest explicit job size (`ZSTDMT_JOBSIZE_MIN`).
pub const MIN_JOB_SIZE: u64 = 512 << 10;
/// Largest job size accepted (each job's input is buffered whole).
pub const MAX_JOB_SIZE: u64 = 256 << 20;
/// Largest content of one zstd block: every block of the frame costs at least 3 bytes of
/// output (its header), which bounds the content a frame of a given length can have.
pub const BLOCK_CONTENT_MAX: u64 = 128 << 10;
/// Address space one job-mode worker thread reserves besides the memory it uses: its stack
/// and the malloc arena its allocations open (64 MiB of address space with glibc). It counts
/// under an address-space limit ([`ZstdParams::address_space`]).
pub const WORKER_ADDRESS_SPACE: u64 = 72 << 20;
/// Number of the recipe's numbers.
pub const NUMBER_COUNT: usize = 5;

/// The libzstd version linked into this library (`ZSTD_versionNumber()`, e.g. 10507 for
/// 1.5.7): the only encoder number this applier accepts.
pub fn encoder_version() -> u64 {
    u64::from(zstd_safe::version_number())
}

/// Everything that determines a frame besides its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ZstdParams {
    /// Compression level (negative: the fast levels).
    pub level: i32,
    /// [`FLAG_CHECKSUM`] and the other flag bits.
    pub flags: u64,
    /// Window log; 0 = the level's default for the content size.
    pub window_log: u32,
    /// Job size in job mode; 0 = libzstd's default.
    pub job_size: u32,
}

fn unsupported(detail: impl std::fmt::Display) -> Error {
    Error::new(
        code::EXT_ZSTD_UNSUPPORTED,
        format!(
            "zstd_compression_exact: {detail}; update the delta processor or use the full image"
        ),
    )
}

fn failed(detail: impl std::fmt::Display) -> Error {
    Error::new(
        code::EXT_ZSTD_FAILED,
        format!("zstd_compression_exact: {detail}"),
    )
}

fn zstd_failed(what: &str, c: usize) -> Error {
    failed(format!("{what} failed: {}", zstd_safe::get_error_name(c)))
}

impl ZstdParams {
    /// Parameters from a recipe's numbers `[encoder, level, flags, window_log, job_size]`
    /// (level as a two's-complement 64-bit integer). Anything this applier cannot reproduce
    /// exactly — another encoder version, an unknown flag, a value out of range — is 39002.
    pub fn from_numbers(numbers: &[u64]) -> Result<Self> {
        let &[encoder, level, flags, window_log, job_size] = numbers else {
            return Err(Error::new(
                code::DIFF_RECIPE_INVALID_PARAMETER_COUNT,
                format!(
                    "zstd_compression_exact recipe: invalid number ingredient count (numbers: {})",
                    numbers.len()
                ),
            ));
        };
        if encoder != encoder_version() {
            return Err(unsupported(format!(
                "the frame was made by libzstd {}, this applier has {}",
                version_text(encoder),
                version_text(encoder_version())
            )));
        }
        let level = level as i64;
        let (min, max) = (
            i64::from(zstd_safe::min_c_level()),
            i64::from(zstd_safe::max_c_level()),
        );
        if !(min..=max).contains(&level) {
            return Err(unsupported(format!(
                "level {level} is outside {min}..={max}"
            )));
        }
        if flags & !KNOWN_FLAGS != 0 {
            return Err(unsupported(format!("unknown flag bits {flags:#x}")));
        }
        if window_log != 0 && !(MIN_WINDOW_LOG..=MAX_WINDOW_LOG).contains(&window_log) {
            return Err(unsupported(format!(
                "window log {window_log} is outside {MIN_WINDOW_LOG}..={MAX_WINDOW_LOG}"
            )));
        }
        if job_size != 0
            && (flags & FLAG_JOBS == 0 || !(MIN_JOB_SIZE..=MAX_JOB_SIZE).contains(&job_size))
        {
            return Err(unsupported(format!(
                "job size {job_size} (needs job mode and {MIN_JOB_SIZE}..={MAX_JOB_SIZE})"
            )));
        }
        Ok(ZstdParams {
            level: level as i32,
            flags,
            window_log: window_log as u32,
            job_size: job_size as u32,
        })
    }

    /// The recipe's numbers for these parameters (this library's encoder).
    pub fn to_numbers(&self) -> Vec<u64> {
        vec![
            encoder_version(),
            i64::from(self.level) as u64,
            self.flags,
            u64::from(self.window_log),
            u64::from(self.job_size),
        ]
    }

    /// Whether flag bit `flag` is set.
    pub fn has(&self, flag: u64) -> bool {
        self.flags & flag != 0
    }

    /// libzstd's compression parameters for a content of `content_len` bytes.
    fn cparams(&self, content_len: u64) -> zstd_sys::ZSTD_compressionParameters {
        let hint = if self.has(FLAG_PLEDGED) {
            content_len
        } else {
            0
        };
        // SAFETY: a pure function of its arguments.
        let mut p = unsafe { zstd_sys::ZSTD_getCParams(self.level, hint, 0) };
        if self.window_log != 0 {
            p.windowLog = self.window_log;
        } else if self.has(FLAG_LONG) {
            p.windowLog = p.windowLog.max(MAX_WINDOW_LOG as u32);
        }
        p
    }

    /// Window log libzstd will use for a content of `content_len` bytes (generator's filter).
    pub fn effective_window_log(&self, content_len: u64) -> u32 {
        self.cparams(content_len).windowLog
    }

    /// An upper estimate of the memory compressing `content_len` bytes takes with `workers`
    /// job-mode workers (ignored in single-threaded mode).
    pub fn memory(&self, content_len: u64, workers: u32) -> u64 {
        let p = self.cparams(content_len);
        let window = 1u64 << p.windowLog.min(MAX_WINDOW_LOG as u32);
        // SAFETY: a pure function of its argument.
        let stream = unsafe { zstd_sys::ZSTD_estimateCStreamSize_usingCParams(p) } as u64;
        // Long-distance matching: its hash table (8-byte entries, 2^(windowLog-7) of them by
        // default) and the window it searches.
        let ldm = if self.has(FLAG_LONG) || p.windowLog >= 27 {
            (window >> 7) * 8 + window
        } else {
            0
        };
        let one = stream + ldm;
        if !self.has(FLAG_JOBS) {
            return one;
        }
        let job = match self.job_size {
            0 => (window * 4).clamp(1 << 20, MAX_JOB_SIZE),
            n => u64::from(n),
        };
        let workers = u64::from(workers.max(1));
        workers * one + (workers + 1) * job + window
    }

    /// [`ZstdParams::memory`] plus the address space the worker threads reserve
    /// ([`WORKER_ADDRESS_SPACE`] each): what the compressor needs under an address-space limit.
    pub fn address_space(&self, content_len: u64, workers: u32) -> u64 {
        let threads = if self.has(FLAG_JOBS) {
            u64::from(workers.max(1))
        } else {
            0
        };
        self.memory(content_len, workers) + threads * WORKER_ADDRESS_SPACE
    }

    /// The configured compression context (`workers` job-mode workers).
    fn context(&self, content_len: u64, workers: u32) -> Result<CCtx<'static>> {
        let mut cctx = CCtx::try_create().ok_or_else(|| failed("out of memory for the context"))?;
        let set = |cctx: &mut CCtx<'static>, p: CParameter, what: &str| {
            cctx.set_parameter(p)
                .map(|_| ())
                .map_err(|c| zstd_failed(what, c))
        };
        set(
            &mut cctx,
            CParameter::CompressionLevel(self.level),
            "setting the level",
        )?;
        set(
            &mut cctx,
            CParameter::ChecksumFlag(self.has(FLAG_CHECKSUM)),
            "setting the checksum flag",
        )?;
        set(
            &mut cctx,
            CParameter::ContentSizeFlag(self.has(FLAG_CONTENT_SIZE)),
            "setting the content size flag",
        )?;
        if self.window_log != 0 {
            set(
                &mut cctx,
                CParameter::WindowLog(self.window_log),
                "setting the window log",
            )?;
        }
        if self.has(FLAG_LONG) {
            set(
                &mut cctx,
                CParameter::EnableLongDistanceMatching(true),
                "enabling long-distance matching",
            )?;
        }
        if self.has(FLAG_JOBS) {
            set(
                &mut cctx,
                CParameter::NbWorkers(workers.max(1)),
                "starting the job mode",
            )?;
            if self.job_size != 0 {
                set(
                    &mut cctx,
                    CParameter::JobSize(self.job_size),
                    "setting the job size",
                )?;
            }
        }
        if self.has(FLAG_PLEDGED) {
            cctx.set_pledged_src_size(Some(content_len))
                .map_err(|c| zstd_failed("pledging the content size", c))?;
        }
        Ok(cctx)
    }
}

/// `10507` → `1.5.7`.
fn version_text(v: u64) -> String {
    format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
}

/// Checks that a frame of `output_len` bytes can hold `content_len` bytes of content: every
/// block holds at most [`BLOCK_CONTENT_MAX`] bytes and costs at least 3, so a longer content
/// is a hostile recipe that would only make work (39003, before anything runs).
pub fn check_lengths(content_len: u64, output_len: u64) -> Result<()> {
    let blocks = output_len / 3 + 1;
    if content_len > blocks.saturating_mul(BLOCK_CONTENT_MAX) {
        return Err(failed(format!(
            "{content_len} bytes of content cannot compress to a {output_len}-byte frame"
        )));
    }
    Ok(())
}

/// Input piece handed to libzstd at a time. The reader always hands libzstd whole pieces of
/// this size (the last one shorter), however its input arrives, so the calls libzstd sees —
/// and with them the frame — are the same on the device as in the generator's check.
const IN_CHUNK: usize = 128 << 10;

/// Streaming compression: yields exactly the frame's `output_len` bytes, then `Ok(0)`.
pub struct ZstdCompressReader<R: Read> {
    src: R,
    /// The current input piece and how much of it libzstd has taken.
    chunk: Vec<u8>,
    chunk_pos: usize,
    eof: bool,
    cctx: CCtx<'static>,
    out: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    /// Whether libzstd has been called at least once (the first call never ends the frame:
    /// an end at the first call would make libzstd pledge the size on its own).
    started: bool,
    finished: bool,
    consumed: u64,
    content_len: u64,
    produced: u64,
    output_len: u64,
    failed: Option<Error>,
}

fn try_buffer(len: usize, what: &str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| failed(format!("out of memory for {what}")))?;
    Ok(v)
}

impl<R: Read> ZstdCompressReader<R> {
    /// Compresses `input` (exactly `content_len` bytes) with `params` into a frame of
    /// `output_len` bytes, with `workers` workers in job mode. The caller has charged
    /// [`ZstdParams::memory`] to its budget.
    pub fn new(
        input: R,
        content_len: u64,
        params: ZstdParams,
        workers: u32,
        output_len: u64,
    ) -> Result<Self> {
        check_lengths(content_len, output_len)?;
        let chunk = try_buffer(IN_CHUNK, "the input piece")?;
        let out_size = CCtx::out_size().clamp(4096, 1 << 20);
        let mut out = try_buffer(out_size, "the output buffer")?;
        out.resize(out_size, 0);
        let cctx = params.context(content_len, workers)?;
        Ok(ZstdCompressReader {
            src: input,
            chunk,
            chunk_pos: 0,
            eof: false,
            cctx,
            out,
            out_pos: 0,
            out_len: 0,
            started: false,
            finished: false,
            consumed: 0,
            content_len,
            produced: 0,
            output_len,
            failed: None,
        })
    }

    /// Content bytes handed to libzstd so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Reads the next whole input piece once the current one is used up.
    fn next_piece(&mut self) -> Result<()> {
        if self.chunk_pos < self.chunk.len() || self.eof {
            return Ok(());
        }
        self.chunk.clear();
        self.chunk_pos = 0;
        while self.chunk.len() < IN_CHUNK {
            let want = (IN_CHUNK - self.chunk.len()) as u64;
            let n = (&mut self.src)
                .take(want)
                .read_to_end(&mut self.chunk)
                .map_err(|e| Error::from_io(e, code::IO_READER_READ_FAILURE))?;
            if n == 0 {
                self.eof = true;
                break;
            }
        }
        self.consumed += self.chunk.len() as u64;
        if self.consumed > self.content_len {
            return Err(failed(format!(
                "the content is longer than the recipe's {} bytes",
                self.content_len
            )));
        }
        Ok(())
    }

    /// Runs libzstd until it has output or the frame is complete.
    fn fill(&mut self) -> Result<()> {
        while self.out_pos == self.out_len && !self.finished {
            self.next_piece()?;
            let end = self.eof && self.chunk_pos == self.chunk.len() && self.started;
            let mut input = InBuffer::around(&self.chunk[self.chunk_pos..]);
            let mut output = OutBuffer::around(&mut self.out[..]);
            let directive = if end {
                ZSTD_EndDirective::ZSTD_e_end
            } else {
                ZSTD_EndDirective::ZSTD_e_continue
            };
            let left = self
                .cctx
                .compress_stream2(&mut output, &mut input, directive)
                .map_err(|c| zstd_failed("compressing", c))?;
            let (taken, written) = (input.pos(), output.pos());
            self.chunk_pos += taken;
            self.started = true;
            self.out_pos = 0;
            self.out_len = written;
            self.produced += written as u64;
            if self.produced > self.output_len {
                return Err(failed(format!(
                    "the frame is longer than the recipe's {} bytes",
                    self.output_len
                )));
            }
            if end && left == 0 {
                self.finished = true;
            }
        }
        if self.finished && self.out_pos == self.out_len {
            if self.consumed != self.content_len {
                return Err(failed(format!(
                    "the content has {} bytes, the recipe {}",
                    self.consumed, self.content_len
                )));
            }
            if self.produced != self.output_len {
                return Err(failed(format!(
                    "the frame has {} bytes, the recipe {}",
                    self.produced, self.output_len
                )));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for ZstdCompressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(e.clone().into_io());
        }
        if let Err(e) = self.fill() {
            self.failed = Some(e.clone());
            return Err(e.into_io());
        }
        let n = buf.len().min(self.out_len - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// Whether compressing `content` with `params` through [`ZstdCompressReader`] gives exactly
/// `frame`, compared as the output comes (the first differing byte ends the attempt; generator
/// side). `budget` is decreased by the content bytes consumed; `None` when it runs out before
/// an answer, or libzstd fails.
pub fn reproduces(
    content: &[u8],
    frame: &[u8],
    params: ZstdParams,
    workers: u32,
    budget: &mut u64,
) -> Option<bool> {
    let len = content.len() as u64;
    let mut reader =
        ZstdCompressReader::new(content, len, params, workers, frame.len() as u64).ok()?;
    let mut buf = vec![0u8; 64 << 10];
    let mut matched = 0usize;
    let mut counted = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            // A frame of another length than this one.
            Err(e) => return (Error::from_io(e, 0).code == code::EXT_ZSTD_FAILED).then_some(false),
        };
        *budget = budget.checked_sub(reader.consumed() - counted)?;
        counted = reader.consumed();
        if n == 0 {
            return Some(matched == frame.len());
        }
        if frame.get(matched..matched + n) != Some(&buf[..n]) {
            return Some(false);
        }
        matched += n;
    }
}

/// Compresses `content` whole with `params` through [`ZstdCompressReader`] (tests and the
/// generator's checks); `output_len` is the expected frame length.
pub fn compress(content: &[u8], params: ZstdParams, output_len: u64) -> Result<Vec<u8>> {
    let mut reader = ZstdCompressReader::new(content, content.len() as u64, params, 2, output_len)?;
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .map_err(|e| Error::from_io(e, code::EXT_ZSTD_FAILED))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9u32;
        let words = [
            "zstd ", "frame ", "block\n", "window ", "match ", "literal ",
        ];
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            out.extend_from_slice(words[x as usize % words.len()].as_bytes());
            if x % 11 == 0 {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    /// A frame made by libzstd's one-shot API (which pledges the size itself). Its stable
    /// input buffer changes the negative levels' frames, so only others are compared.
    fn reference(content: &[u8], p: ZstdParams) -> Vec<u8> {
        let mut cctx = p.context(content.len() as u64, 1).unwrap();
        let mut out = Vec::with_capacity(zstd_safe::compress_bound(content.len()));
        cctx.compress2(&mut out, content).unwrap();
        out
    }

    fn params(level: i32, flags: u64) -> ZstdParams {
        ZstdParams {
            level,
            flags,
            window_log: 0,
            job_size: 0,
        }
    }

    #[test]
    fn streaming_reproduces_one_shot_frames() {
        let content = text(700_000);
        for (level, flags) in [
            (3, FLAG_CHECKSUM | FLAG_CONTENT_SIZE | FLAG_PLEDGED),
            (19, FLAG_CHECKSUM | FLAG_CONTENT_SIZE | FLAG_PLEDGED),
            (1, FLAG_CONTENT_SIZE | FLAG_PLEDGED),
            (12, FLAG_PLEDGED),
        ] {
            let p = params(level, flags);
            let frame = reference(&content, p);
            let got = compress(&content, p, frame.len() as u64).unwrap();
            assert!(got == frame, "level {level} flags {flags:#x}");
            let mut budget = u64::MAX;
            assert_eq!(reproduces(&content, &frame, p, 1, &mut budget), Some(true));
            // Another checksum flag: another last block.
            let other = params(level, flags ^ FLAG_CHECKSUM);
            assert_eq!(
                reproduces(&content, &frame, other, 1, &mut budget),
                Some(false)
            );
        }
    }

    /// Job mode: the same frame with one or two workers, and however the input arrives (the
    /// reader hands libzstd whole pieces); it decodes to the content.
    #[test]
    fn job_mode_frames_do_not_depend_on_workers_or_input_reads() {
        use crate::codec::test_util::Dribble;
        let content = text(3 << 20);
        let p = ZstdParams {
            level: 3,
            flags: FLAG_CHECKSUM | FLAG_CONTENT_SIZE | FLAG_PLEDGED | FLAG_JOBS,
            window_log: 0,
            job_size: 1 << 20,
        };
        let read = |workers: u32, piece: usize| {
            let mut out = Vec::new();
            let len = content.len() as u64;
            ZstdCompressReader::new(Dribble(&content, piece), len, p, workers, u64::MAX >> 8)
                .unwrap()
                .take(u64::MAX >> 8)
                .read_to_end(&mut out)
                .ok();
            out
        };
        let one = read(1, 1 << 20);
        assert!(one.len() > 1000);
        assert!(one == read(2, 1 << 20));
        assert!(one == read(2, 4097));
        let decoded = zstd_safe::decompress(&mut Vec::with_capacity(content.len()), &one[..]);
        assert_eq!(decoded, Ok(content.len()));
        let st = params(3, p.flags & !FLAG_JOBS);
        let mut budget = u64::MAX;
        assert_eq!(reproduces(&content, &one, st, 1, &mut budget), Some(false));
        assert_eq!(reproduces(&content, &one, p, 2, &mut budget), Some(true));
        // A budget that runs out before the answer.
        let mut small = 1 << 20;
        assert_eq!(reproduces(&content, &one, p, 2, &mut small), None);
    }

    #[test]
    fn numbers_round_trip_and_bad_numbers_are_refused() {
        let p = ZstdParams {
            level: -7,
            flags: FLAG_JOBS | FLAG_CHECKSUM,
            window_log: 24,
            job_size: 1 << 20,
        };
        assert_eq!(ZstdParams::from_numbers(&p.to_numbers()).unwrap(), p);
        let good = p.to_numbers();
        let bad = |i: usize, v: u64| {
            let mut n = good.clone();
            n[i] = v;
            ZstdParams::from_numbers(&n).unwrap_err().code
        };
        for (i, v) in [
            (0, 10504),
            (0, u64::MAX),
            (1, 23),
            (1, (-(1i64 << 20)) as u64),
            (2, 32),
            (2, 1 << 63),
            (3, 9),
            (3, 28),
            (3, 31),
            (4, 1 << 40),
            (4, 1024),
        ] {
            assert_eq!(bad(i, v), code::EXT_ZSTD_UNSUPPORTED, "number {i} = {v}");
        }
        let mut no_jobs = good.clone();
        no_jobs[2] = 0;
        assert_eq!(
            ZstdParams::from_numbers(&no_jobs).unwrap_err().code,
            code::EXT_ZSTD_UNSUPPORTED
        );
        assert_eq!(
            ZstdParams::from_numbers(&good[..4]).unwrap_err().code,
            code::DIFF_RECIPE_INVALID_PARAMETER_COUNT
        );
    }

    #[test]
    fn wrong_lengths_fail_cleanly() {
        let content = text(300_000);
        let p = params(3, FLAG_PLEDGED | FLAG_CONTENT_SIZE);
        let frame = reference(&content, p);
        let n = frame.len() as u64;
        for len in [n - 1, n + 1, 1] {
            let e = compress(&content, p, len).unwrap_err();
            assert_eq!(e.code, code::EXT_ZSTD_FAILED, "{len}: {e}");
        }
        // A content far longer than any frame of the length can hold: refused up front.
        let e = check_lengths(1 << 40, 100).unwrap_err();
        assert_eq!(e.code, code::EXT_ZSTD_FAILED);
        assert!(check_lengths(content.len() as u64, n).is_ok());
        // Pledged size and real content differ: libzstd's own check.
        let mut reader =
            ZstdCompressReader::new(&content[1..], content.len() as u64, p, 1, n).unwrap();
        let e = reader.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(crate::Error::from_io(e, 0).code, code::EXT_ZSTD_FAILED);
    }

    #[test]
    fn memory_estimate_grows_with_level_and_jobs() {
        let size = 1 << 30;
        let small = params(3, FLAG_PLEDGED).memory(size, 1);
        let big = params(22, FLAG_PLEDGED).memory(size, 1);
        assert!(small < 64 << 20, "{small}");
        assert!(big > 512 << 20, "{big}");
        let one = params(19, FLAG_PLEDGED | FLAG_JOBS).memory(size, 1);
        let two = params(19, FLAG_PLEDGED | FLAG_JOBS).memory(size, 2);
        assert!(one < two && one > params(19, FLAG_PLEDGED).memory(size, 1));
    }
}
