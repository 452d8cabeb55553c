//! Streaming deflate on the caller's thread, in bounded memory: [`SequentialDeflateReader`].
//!
//! For levels 4–9 the parse at an iteration start depends only on the lazy state, the window
//! base and the 32 KiB before it (the argument of `parallel.rs`), so the input can be parsed in
//! segments: each segment's parser is primed from the preceding 32 KiB and continues with the
//! previous segment's exact state. Only the segment, 64 KiB of history (what a stored block or
//! the hash priming can need) and 66 KiB of lookahead (so that nothing near a segment's end
//! looks like the end of the input) are held; no thread, no spool, no mapping — the form for
//! processes under an address-space limit and single-core devices.

use std::io::{self, Read};

use super::bits::BitWriter;
use super::blocks::Encoder;
use super::matcher::{LazyState, Matcher, WSIZE};
use super::{check_encoder, header, BlockState, Check, Wrapper};

/// Input bytes parsed per segment.
const SEGMENT: usize = 4 << 20;
/// History kept before the parse position (stored blocks start in the window; priming reads
/// 32 KiB).
const HISTORY: usize = 2 * WSIZE;
/// Lookahead kept past a segment's end: the slide rule looks 64 KiB ahead, a match 258 bytes.
const LOOKAHEAD: usize = 2 * WSIZE + 1024;

/// A reader producing exactly the bytes [`super::deflate_as`] produces for an input stream of
/// known length, on the calling thread, holding about 4.2 MiB of input (levels 4–9; levels 1–3
/// cannot be parsed in segments and are refused with `InvalidInput` above 8 MiB, below which
/// they are compressed in one piece).
pub struct SequentialDeflateReader {
    input: Box<dyn Read + Send>,
    /// Input length (the end of the stream, absolute).
    len: usize,
    wrapper: Wrapper,
    level: u32,
    encoder: Encoder,
    /// Input bytes `[origin, origin + buf.len())`; `origin` is a multiple of 32 KiB.
    buf: Vec<u8>,
    origin: usize,
    /// Parse state at the next iteration start (absolute positions).
    strstart: usize,
    state: LazyState,
    base: usize,
    /// The block being built.
    blocks: BlockState,
    out: BitWriter,
    check: Check,
    pending: Vec<u8>,
    pending_pos: usize,
    /// The last block is encoded.
    finished: bool,
    /// The trailer has been handed out too.
    done: bool,
}

/// Levels 1–3 compress in one piece up to this many bytes.
const MAX_FAST_LEN: usize = 8 << 20;

impl SequentialDeflateReader {
    /// Compress `input` (exactly `input_len` bytes) like `encoder` at `level`.
    ///
    /// # Panics
    /// If `level` or the encoder's memLevel is outside 1..=9.
    pub fn new(
        input: Box<dyn Read + Send>,
        input_len: u64,
        wrapper: Wrapper,
        level: u32,
        encoder: Encoder,
    ) -> io::Result<Self> {
        check_encoder(level, encoder);
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        let len = usize::try_from(input_len).map_err(|_| invalid("input too large".into()))?;
        if level < 4 && len > MAX_FAST_LEN {
            return Err(invalid(format!(
                "level {level} deflate of {len} bytes cannot be streamed (at most {MAX_FAST_LEN})"
            )));
        }
        let oom = |_| io::Error::new(io::ErrorKind::OutOfMemory, "no memory for deflate buffers");
        let mut buf = Vec::new();
        let want = if level < 4 {
            len
        } else {
            len.min(SEGMENT + HISTORY + LOOKAHEAD)
        };
        // Slack so that `read_to_end` never has to grow the buffer.
        buf.try_reserve_exact(want + (64 << 10)).map_err(oom)?;
        let mut out = BitWriter::with_capacity(64 << 10);
        out.put_bytes(&header(wrapper, level));
        Ok(SequentialDeflateReader {
            input,
            len,
            wrapper,
            level,
            encoder,
            buf,
            origin: 0,
            strstart: 0,
            state: LazyState::INITIAL,
            base: 0,
            blocks: BlockState::new(encoder, level),
            out,
            check: Check::new(wrapper),
            pending: Vec::new(),
            pending_pos: 0,
            finished: false,
            done: false,
        })
    }

    /// Read input until the buffer holds `[origin, upto)` (or the whole input).
    fn fill(&mut self, upto: usize) -> io::Result<()> {
        let have = self.origin + self.buf.len();
        let want = upto.min(self.len);
        if want > have {
            let n = want - have;
            let start = self.buf.len();
            (&mut self.input)
                .take(n as u64)
                .read_to_end(&mut self.buf)?;
            if self.buf.len() - start < n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "deflate input ended after {} of {} bytes",
                        have + self.buf.len() - start,
                        self.len
                    ),
                ));
            }
            let c = Check::of(self.wrapper, &self.buf[start..]);
            self.check = self.check.then(c);
        }
        Ok(())
    }

    /// Forget input before the history the parse can still need.
    fn drop_history(&mut self) {
        let keep_from = self.strstart.saturating_sub(HISTORY) / WSIZE * WSIZE;
        if keep_from > self.origin {
            self.buf.drain(..keep_from - self.origin);
            self.origin = keep_from;
        }
    }

    /// Parse and encode the next segment (or the rest); sets `finished` at the end.
    fn step(&mut self) -> io::Result<()> {
        self.drop_history();
        let mut stop = self.strstart + SEGMENT;
        if self.level < 4 || stop + LOOKAHEAD >= self.len {
            // The last segment runs to the end (the end-of-input rules need one parser).
            stop = usize::MAX;
        }
        self.fill(stop.saturating_add(LOOKAHEAD))?;
        let origin = self.origin;
        let data = &self.buf[..];
        let mut m = Matcher::for_encoder(data, self.level, self.encoder).with_origin(origin);
        if self.strstart > 0 {
            let state = LazyState {
                match_start: self.state.match_start.saturating_sub(origin),
                ..self.state
            };
            m.reset(self.strstart - origin, state, self.base - origin);
        }
        let stop_rel = stop.saturating_sub(origin);
        self.finished = self
            .blocks
            .parse(&mut m, data, origin, stop_rel, &mut self.out);
        self.strstart = m.strstart + origin;
        self.state = LazyState {
            match_start: m.state.match_start + origin,
            ..m.state
        };
        self.base = m.base + origin;
        Ok(())
    }
}

impl Read for SequentialDeflateReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pending_pos == self.pending.len() {
            if self.done {
                return Ok(0);
            }
            if !self.finished {
                self.step()?;
            }
            self.pending = if self.finished {
                let writer = std::mem::replace(&mut self.out, BitWriter::with_capacity(0));
                let mut bytes = writer.finish();
                bytes.extend_from_slice(&self.check.trailer());
                self.done = true;
                bytes
            } else {
                self.out.take_bytes()
            };
            self.pending_pos = 0;
        }
        let n = out.len().min(self.pending.len() - self.pending_pos);
        out[..n].copy_from_slice(&self.pending[self.pending_pos..self.pending_pos + n]);
        self.pending_pos += n;
        Ok(n)
    }
}
