//! pigz's deflate streams, rebuilt exactly with stock zlib (encoder 2 of the
//! `deflate_reconstruct` recipe's codec 2, docs/EXTENDED-FORMAT.md).
//!
//! pigz (2.6–2.8, levels 1–9) cuts its input into *jobs* of `-b` KiB (128 by default) and
//! compresses each with zlib on its own thread: `deflateReset`, `deflateParams(level)`, the
//! preceding 32 KiB of plain text as dictionary (none for the first job, none with `-i`), then
//! the job's *sub-blocks* (one per job, or with `--rsyncable` the pieces between two hits of
//! its rolling hash) each with `deflate(Z_BLOCK)` followed by a byte alignment —
//! `Z_SYNC_FLUSH` (an empty stored block) when zlib's pending bit count is odd or with `-i`,
//! else 10-bit empty static blocks (`deflatePrime(10, 2)`) then `deflate(Z_BLOCK)` — and with
//! `-i` a further `Z_FULL_FLUSH`. The very last sub-block ends with `Z_FINISH`. Jobs are
//! byte-aligned, so the stream is their concatenation and its bytes do not depend on `-p`.
//!
//! The blob names the level, the `-i` flag and the job layout: fixed-size jobs, or (for
//! `--rsyncable`, whose job and sub-block lengths come from a rolling hash the applier does
//! not recompute) every sub-block's length. [`PigzReader`] re-encodes job by job on two
//! threads, each job needing only its own text and the 32 KiB before it, with a few jobs in
//! flight (bounded memory). Every field is untrusted and checked before anything is allocated.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use libz_sys as z;

use super::zstream::{Deflater, Inflater};
use crate::error::{code, Error, Result};
use crate::io::scratch::Charge;

/// Codec-2 encoder byte for pigz.
pub const ENCODER_PIGZ: u8 = 2;
/// Flag bit: `-i` / `--independent` (no dictionary, two markers after each sub-block).
pub const FLAG_INDEPENDENT: u8 = 1;
/// Flag bit: the blob lists every sub-block (`--rsyncable`); else jobs have a fixed size.
pub const FLAG_EXPLICIT: u8 = 2;
/// Smallest job size (pigz refuses `-b` below 32).
pub const MIN_BLOCK: u64 = 32 << 10;
/// Largest job size this applier accepts (its memory holds a few jobs at once).
pub const MAX_BLOCK: u64 = 8 << 20;
/// pigz's dictionary: the 32 KiB of plain text before a job.
const DICT: usize = 32 << 10;
/// First bytes of every codec-2 blob.
const MAGIC: &[u8; 4] = b"ADEX";
/// zlib's deflate state at pigz's settings (windowBits 15, memLevel 8):
/// `(1 << (15 + 2)) + (1 << (8 + 9))` bytes plus the state structure, rounded up.
pub const DEFLATE_STATE: u64 = 272 << 10;
/// Output bytes a sub-block may add beyond its text: the block header, the alignment
/// markers (an empty stored block, up to three 10-bit static blocks) and with `-i` a full
/// flush (zlib writes at most 5 + 5 + 4 + 2 bytes of them).
const MARKERS_PER_SUB_BLOCK: u64 = 32;
/// The best ratio any deflate stream reaches: 258 bytes for a 2-bit match (1032:1); a stream
/// shorter than its plain text over this cannot be a deflate stream of it.
const BEST_RATIO: u64 = 1032;

fn failed(detail: impl std::fmt::Display) -> Error {
    Error::new(
        code::EXT_RECONSTRUCT_FAILED,
        format!("deflate_reconstruct (pigz): {detail}"),
    )
}

/// How pigz cut the plain text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Jobs of this many bytes (the last one shorter), one sub-block each.
    Fixed(u32),
    /// Every sub-block's length and whether it ends its job, in order; jobs are at most
    /// `block` bytes.
    Explicit {
        /// pigz's `-b` in bytes (a bound on each job).
        block: u32,
        /// (length, ends its job) per sub-block.
        pieces: Vec<(u32, bool)>,
    },
}

/// What a pigz blob says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PigzParams {
    /// zlib level 1..=9.
    pub level: u32,
    /// `-i`: no dictionary, a full flush after each sub-block.
    pub independent: bool,
    /// The job layout.
    pub layout: Layout,
}

impl PigzParams {
    /// The job size bound (`-b` in bytes).
    pub fn block(&self) -> u32 {
        match &self.layout {
            Layout::Fixed(b) => *b,
            Layout::Explicit { block, .. } => *block,
        }
    }

    /// The longest job of a `plain_len`-byte text (bytes) and the most sub-blocks one job has.
    fn largest_job(&self, plain_len: u64) -> (u64, u64) {
        match &self.layout {
            Layout::Fixed(block) => (u64::from(*block).min(plain_len), 1),
            Layout::Explicit { pieces, .. } => {
                let (mut most, mut subs, mut len, mut count) = (0u64, 1u64, 0u64, 0u64);
                for &(piece, ends_job) in pieces {
                    len += u64::from(piece);
                    count += 1;
                    if ends_job {
                        most = most.max(len);
                        subs = subs.max(count);
                        (len, count) = (0, 0);
                    }
                }
                (most, subs)
            }
        }
    }

    /// Jobs in flight at once on `threads` workers (0: the caller's thread, one job).
    pub fn max_in_flight(&self, threads: usize) -> u64 {
        if threads == 0 {
            1
        } else if self.block() <= 1 << 20 {
            2 * threads as u64
        } else {
            threads as u64
        }
    }

    /// Peak memory of the rebuild of a `plain_len`-byte text on `threads` workers (0: on the
    /// caller's thread), in bytes: per job in flight its text, its dictionary and its output
    /// buffer (at most [`job_output_bound`] of the longest job), one more output being read
    /// out, the 32 KiB window of plain text, and one zlib deflate state per worker.
    pub fn memory(&self, plain_len: u64, threads: usize) -> u64 {
        let (job, subs) = self.largest_job(plain_len);
        let out = job_output_bound(job, subs);
        let per_job = job + DICT as u64 + out;
        let states = threads.max(1) as u64 * DEFLATE_STATE;
        self.max_in_flight(threads) * per_job + out + DICT as u64 + states
    }

    /// The codec-2 blob (`"ADEX" 2 level flags varint:block [varint:count varint:piece*]`).
    pub fn to_blob(&self) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        let mut flags = 0u8;
        if self.independent {
            flags |= FLAG_INDEPENDENT;
        }
        if matches!(self.layout, Layout::Explicit { .. }) {
            flags |= FLAG_EXPLICIT;
        }
        b.extend_from_slice(&[ENCODER_PIGZ, self.level as u8, flags]);
        put_varint(&mut b, u64::from(self.block()));
        if let Layout::Explicit { pieces, .. } = &self.layout {
            put_varint(&mut b, pieces.len() as u64);
            for &(len, ends_job) in pieces {
                put_varint(&mut b, u64::from(len) << 1 | u64::from(ends_job));
            }
        }
        b
    }

    /// Parses and checks a pigz blob against the plain text's length.
    pub fn from_blob(blob: &[u8], plain_len: u64) -> Result<Self> {
        let mut pos = 0usize;
        let head = blob
            .get(..7)
            .ok_or_else(|| failed(format!("blob of {} bytes is too short", blob.len())))?;
        if head[..4] != MAGIC[..] || head[4] != ENCODER_PIGZ {
            return Err(failed("blob does not start with \"ADEX\" 2"));
        }
        let (level, flags) = (u32::from(head[5]), head[6]);
        pos += 7;
        if !(1..=9).contains(&level) {
            return Err(failed(format!("level {level} is outside 1..=9")));
        }
        if flags & !(FLAG_INDEPENDENT | FLAG_EXPLICIT) != 0 {
            return Err(failed(format!("unknown flags {flags:#04x}")));
        }
        let block = get_varint(blob, &mut pos)?;
        if !(MIN_BLOCK..=MAX_BLOCK).contains(&block) {
            return Err(failed(format!(
                "job size {block} is outside {MIN_BLOCK}..={MAX_BLOCK}"
            )));
        }
        let block = block as u32;
        let layout = if flags & FLAG_EXPLICIT == 0 {
            Layout::Fixed(block)
        } else {
            Layout::Explicit {
                block,
                pieces: parse_pieces(blob, &mut pos, block, plain_len)?,
            }
        };
        if pos != blob.len() {
            return Err(failed("bytes after the end of the blob"));
        }
        Ok(PigzParams {
            level,
            independent: flags & FLAG_INDEPENDENT != 0,
            layout,
        })
    }
}

/// The explicit sub-block list, checked: each job at most `block` bytes, the last piece ends
/// a job, no empty piece (but for an empty text), lengths adding up to `plain_len`.
fn parse_pieces(
    blob: &[u8],
    pos: &mut usize,
    block: u32,
    plain_len: u64,
) -> Result<Vec<(u32, bool)>> {
    let count = get_varint(blob, pos)?;
    // Each piece takes at least one byte of the blob: the count is bounded by its size.
    if count == 0 || count > (blob.len() - *pos) as u64 {
        return Err(failed(format!("{count} sub-blocks do not fit the blob")));
    }
    let mut pieces = Vec::new();
    pieces
        .try_reserve_exact(count as usize)
        .map_err(|_| failed("out of memory for the sub-block list"))?;
    let (mut total, mut job) = (0u64, 0u64);
    for index in 0..count {
        let v = get_varint(blob, pos)?;
        let (len, ends_job) = (v >> 1, v & 1 == 1);
        job += len;
        total += len;
        if job > u64::from(block) || (len == 0 && plain_len != 0) {
            return Err(failed(format!(
                "sub-block {index} of {len} bytes makes a job over {block} bytes or is empty"
            )));
        }
        if ends_job {
            job = 0;
        }
        pieces.push((len as u32, ends_job));
    }
    if job != 0 || !pieces.last().is_some_and(|p| p.1) {
        return Err(failed("the last sub-block does not end a job"));
    }
    if total != plain_len {
        return Err(failed(format!(
            "the sub-blocks cover {total} bytes, the plain text has {plain_len}"
        )));
    }
    Ok(pieces)
}

/// The most bytes zlib writes for a job of `len` bytes cut into `subs` sub-blocks: a block
/// never exceeds its stored form (5 bytes of header per block, a block per ≥ 16 Ki symbols at
/// memLevel 8, bounded here by one per 2 KiB), plus the markers of each sub-block.
pub fn job_output_bound(len: u64, subs: u64) -> u64 {
    len + (len >> 11) + 64 + MARKERS_PER_SUB_BLOCK * subs
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(blob: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *blob.get(*pos).ok_or_else(|| failed("blob is truncated"))?;
        *pos += 1;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return Err(failed("a number overflows 64 bits"));
        }
        v |= bits << shift;
        if byte & 0x80 == 0 {
            // One encoding per number (the shortest), so a blob that parses is the blob the
            // generator writes for those parameters.
            if byte == 0 && shift > 0 {
                return Err(failed("a number is not in its shortest form"));
            }
            return Ok(v);
        }
    }
    Err(failed("a number overflows 64 bits"))
}

/// One job: its sub-block lengths (adding up to the job's length).
pub type Job = Vec<u32>;

/// The jobs of a layout, in order (computed as they are taken: a fixed layout over a long
/// text is never held as a list).
pub struct Jobs {
    layout: Layout,
    remaining: u64,
    next_piece: usize,
    started: bool,
}

impl Jobs {
    /// The jobs `layout` cuts `plain_len` bytes into (an empty text is one empty job).
    pub fn new(layout: Layout, plain_len: u64) -> Self {
        Jobs {
            layout,
            remaining: plain_len,
            next_piece: 0,
            started: false,
        }
    }
}

impl Iterator for Jobs {
    type Item = Job;

    fn next(&mut self) -> Option<Job> {
        match &self.layout {
            Layout::Fixed(block) => {
                if self.started && self.remaining == 0 {
                    return None;
                }
                self.started = true;
                let len = self.remaining.min(u64::from(*block));
                self.remaining -= len;
                Some(vec![len as u32])
            }
            Layout::Explicit { pieces, .. } => {
                let mut job = Vec::new();
                for &(len, ends_job) in pieces.get(self.next_piece..)? {
                    self.next_piece += 1;
                    job.push(len);
                    if ends_job {
                        break;
                    }
                }
                (!job.is_empty()).then_some(job)
            }
        }
    }
}

/// Runs one `deflate(flush)` over `input` (possibly empty) to completion, appending to `out`,
/// which never grows beyond `cap` bytes (the job's bound: more is an error, not an allocation).
fn run(
    deflater: &mut Deflater,
    mut input: &[u8],
    flush: c_int,
    out: &mut Vec<u8>,
    cap: usize,
) -> Result<()> {
    const ROOM: usize = 64 << 10;
    loop {
        if out.capacity() - out.len() < ROOM && out.capacity() < cap {
            let grow = ROOM.max(out.len() / 2).min(cap - out.capacity());
            out.try_reserve_exact(grow)
                .map_err(|_| failed("out of memory for a job's output"))?;
        }
        if out.capacity() == out.len() {
            return Err(failed(format!(
                "a job's output exceeds its bound of {cap} bytes"
            )));
        }
        let start = out.len();
        let spare = out.capacity() - start;
        out.resize(out.capacity(), 0);
        let step = deflater.step_flush(input, &mut out[start..], flush);
        out.truncate(start + step.produced);
        if ![z::Z_OK, z::Z_BUF_ERROR, z::Z_STREAM_END].contains(&step.ret) {
            return Err(failed(format!("deflate() failed. ret: {}", step.ret)));
        }
        input = &input[step.consumed..];
        if input.is_empty() && step.produced < spare {
            return Ok(());
        }
    }
}

/// Compresses one job exactly as pigz does: `dictionary` is the plain text before it (empty
/// for the first job and with `-i`), `subs` its sub-block lengths, `last` whether it ends the
/// stream.
pub(crate) fn encode_job(
    deflater: &mut Deflater,
    params: &PigzParams,
    dictionary: &[u8],
    input: &[u8],
    subs: &[u32],
    last: bool,
) -> Result<Vec<u8>> {
    let zcheck = |ret: c_int, what: &str| {
        if ret == z::Z_OK {
            Ok(())
        } else {
            Err(failed(format!("{what} failed. ret: {ret}")))
        }
    };
    zcheck(
        deflater.reset_with_level(params.level as i32),
        "deflateReset/deflateParams",
    )?;
    if !dictionary.is_empty() {
        let d = &dictionary[dictionary.len().saturating_sub(DICT)..];
        zcheck(deflater.set_dictionary(d), "deflateSetDictionary")?;
    }
    let cap = usize::try_from(job_output_bound(input.len() as u64, subs.len() as u64))
        .map_err(|_| failed("a job too long for this machine"))?;
    let mut out = Vec::new();
    out.try_reserve_exact((input.len() / 2 + 1024).min(cap))
        .map_err(|_| failed("out of memory for a job's output"))?;
    let mut pos = 0usize;
    for (i, &len) in subs.iter().enumerate() {
        let piece = input
            .get(pos..pos + len as usize)
            .ok_or_else(|| failed("sub-blocks longer than their job"))?;
        pos += len as usize;
        if last && i + 1 == subs.len() {
            run(deflater, piece, z::Z_FINISH, &mut out, cap)?;
            continue;
        }
        run(deflater, piece, z::Z_BLOCK, &mut out, cap)?;
        let mut bits = deflater.pending_bits()?;
        if bits & 1 == 1 || params.independent {
            run(deflater, &[], z::Z_SYNC_FLUSH, &mut out, cap)?;
        } else if bits & 7 != 0 {
            while bits & 7 != 0 {
                zcheck(deflater.prime(10, 2), "deflatePrime")?;
                bits = deflater.pending_bits()?;
            }
            run(deflater, &[], z::Z_BLOCK, &mut out, cap)?;
        }
        if params.independent {
            run(deflater, &[], z::Z_FULL_FLUSH, &mut out, cap)?;
        }
    }
    if pos != input.len() {
        return Err(failed("sub-blocks shorter than their job"));
    }
    Ok(out)
}

/// A fresh deflate stream set up as pigz's (raw, memLevel 8).
pub(crate) fn new_deflater() -> Result<Deflater> {
    Deflater::new(6, -15, 8)
}

/// Refuses a stream length no pigz stream of `plain_len` bytes has: shorter than the best
/// deflate ratio allows, or longer than every job's bound together. Checked before any job
/// runs, so a length that lies costs nothing.
fn check_lengths(params: &PigzParams, plain_len: u64, output_len: u64) -> Result<()> {
    let block = u64::from(params.block());
    let jobs = plain_len.div_ceil(block).max(1);
    let subs = match &params.layout {
        Layout::Fixed(_) => jobs,
        Layout::Explicit { pieces, .. } => pieces.len() as u64,
    };
    let most = job_output_bound(plain_len, subs).saturating_add(64 * jobs);
    if output_len < plain_len / BEST_RATIO || output_len > most {
        return Err(failed(format!(
            "a stream of {output_len} bytes cannot hold {plain_len} bytes of plain text \
             (a pigz stream of them has {}..={most} bytes)",
            plain_len / BEST_RATIO
        )));
    }
    Ok(())
}

/// One job handed to a worker.
struct Work {
    dictionary: Vec<u8>,
    input: Vec<u8>,
    subs: Job,
    last: bool,
    reply: SyncSender<Result<Vec<u8>>>,
}

/// Encodes jobs from `queue` until it closes.
fn worker(params: Arc<PigzParams>, queue: Arc<Mutex<Receiver<Work>>>) {
    let mut deflater: Option<Deflater> = None;
    loop {
        let work = match queue.lock() {
            Ok(q) => match q.recv() {
                Ok(w) => w,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            if deflater.is_none() {
                deflater = Some(new_deflater()?);
            }
            let d = deflater.as_mut().expect("set above");
            encode_job(
                d,
                &params,
                &work.dictionary,
                &work.input,
                &work.subs,
                work.last,
            )
        }))
        .unwrap_or_else(|_| Err(failed("the encoder panicked")));
        let _ = work.reply.send(result);
    }
}

/// Streaming rebuild of a pigz stream: yields exactly its bytes, then `Ok(0)`.
pub struct PigzReader {
    plain: Box<dyn Read + Send>,
    params: Arc<PigzParams>,
    /// Jobs still to read.
    jobs: std::iter::Peekable<Jobs>,
    /// The last ≤ 32 KiB of plain text read.
    window: Vec<u8>,
    in_flight: VecDeque<Receiver<Result<Vec<u8>>>>,
    max_in_flight: usize,
    queue: Option<SyncSender<Work>>,
    /// Encoder on the caller's thread (one core or an address-space limit).
    local: Option<Deflater>,
    out: Vec<u8>,
    out_pos: usize,
    produced: u64,
    output_len: u64,
    failed: Option<Error>,
    /// This reader's memory, charged to the apply's scratch budget while it lives.
    _charge: Option<Charge>,
}

impl PigzReader {
    /// Rebuilds the `output_len`-byte stream from `plain` (`plain_len` bytes) and `blob`, on
    /// `threads` worker threads (0: on the caller's thread).
    pub fn new(
        plain: Box<dyn Read + Send>,
        plain_len: u64,
        blob: &[u8],
        output_len: u64,
        threads: usize,
    ) -> Result<Self> {
        let params = PigzParams::from_blob(blob, plain_len)?;
        Self::with_params(plain, plain_len, params, output_len, threads)
    }

    /// [`PigzReader::new`] with the blob already parsed (by [`PigzParams::from_blob`] with
    /// the same `plain_len`).
    pub fn with_params(
        plain: Box<dyn Read + Send>,
        plain_len: u64,
        params: PigzParams,
        output_len: u64,
        threads: usize,
    ) -> Result<Self> {
        let params = Arc::new(params);
        check_lengths(&params, plain_len, output_len)?;
        let jobs = Jobs::new(params.layout.clone(), plain_len).peekable();
        // Each job in flight holds its text, its dictionary and its output (≈ 2 × block).
        let max_in_flight = params.max_in_flight(threads) as usize;
        let (queue, local) = if threads == 0 {
            (None, Some(new_deflater()?))
        } else {
            let (tx, rx) = sync_channel::<Work>(max_in_flight);
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..threads {
                let (p, q) = (Arc::clone(&params), Arc::clone(&rx));
                std::thread::Builder::new()
                    .name(format!("pigz-rebuild-{i}"))
                    .stack_size(1 << 20)
                    .spawn(move || worker(p, q))
                    .map_err(|e| {
                        Error::new(
                            code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
                            format!("deflate_reconstruct (pigz): cannot start a thread: {e}"),
                        )
                    })?;
            }
            (Some(tx), None)
        };
        Ok(PigzReader {
            plain,
            params,
            jobs,
            window: Vec::new(),
            in_flight: VecDeque::new(),
            max_in_flight,
            queue,
            local,
            out: Vec::new(),
            out_pos: 0,
            produced: 0,
            output_len,
            failed: None,
            _charge: None,
        })
    }

    /// Keeps `charge` (this reader's memory in the scratch budget) until the reader is dropped.
    pub fn holding(mut self, charge: Charge) -> Self {
        self._charge = Some(charge);
        self
    }

    /// Reads the next job's text and starts it (false: no job left).
    fn start_next(&mut self) -> Result<bool> {
        let Some(subs) = self.jobs.next() else {
            return Ok(false);
        };
        let last = self.jobs.peek().is_none();
        let len: u64 = subs.iter().map(|&l| u64::from(l)).sum();
        let mut input = Vec::new();
        input
            .try_reserve_exact(len as usize)
            .map_err(|_| failed(format!("out of memory for a {len}-byte job")))?;
        (&mut self.plain)
            .take(len)
            .read_to_end(&mut input)
            .map_err(|e| Error::from_io(e, code::IO_READER_READ_FAILURE))?;
        if input.len() as u64 != len {
            return Err(Error::short_read(len, input.len() as u64));
        }
        let dictionary = if self.params.independent {
            Vec::new()
        } else {
            self.window.clone()
        };
        // The next job's dictionary: the last 32 KiB of all text so far.
        let keep = DICT.saturating_sub(input.len()).min(self.window.len());
        self.window.drain(..self.window.len() - keep);
        self.window
            .extend_from_slice(&input[input.len().saturating_sub(DICT)..]);
        let (tx, rx) = sync_channel(1);
        if let Some(deflater) = self.local.as_mut() {
            let r = encode_job(deflater, &self.params, &dictionary, &input, &subs, last);
            tx.send(r).expect("receiver alive");
        } else {
            let work = Work {
                dictionary,
                input,
                subs,
                last,
                reply: tx,
            };
            let queue = self.queue.as_ref().expect("threads started");
            queue
                .send(work)
                .map_err(|_| failed("the rebuild threads stopped"))?;
        }
        self.in_flight.push_back(rx);
        Ok(true)
    }

    fn next_output(&mut self) -> Result<bool> {
        while self.in_flight.len() < self.max_in_flight && self.start_next()? {}
        let Some(rx) = self.in_flight.pop_front() else {
            return Ok(false);
        };
        let bytes = rx
            .recv()
            .map_err(|_| failed("the rebuild threads stopped"))??;
        self.produced += bytes.len() as u64;
        if self.produced > self.output_len {
            return Err(failed(format!(
                "the rebuilt stream is longer than its {} bytes",
                self.output_len
            )));
        }
        self.out = bytes;
        self.out_pos = 0;
        Ok(true)
    }
}

impl Read for PigzReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(e.clone().into_io());
        }
        while self.out_pos == self.out.len() {
            let step: Result<()> = match self.next_output() {
                Ok(true) => continue,
                Ok(false) if self.produced == self.output_len => return Ok(0),
                Ok(false) => Err(failed(format!(
                    "the rebuilt stream has {} bytes, the recipe {}",
                    self.produced, self.output_len
                ))),
                Err(e) => Err(e),
            };
            if let Err(e) = step {
                self.failed = Some(e.clone());
                return Err(e.into_io());
            }
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// Encodes the jobs of `params` over `plain` serially until at least `min_out` bytes are
/// written or the text ends (generator side: a quick test of a guess against a stream's
/// start). Returns the bytes.
pub fn encode_prefix(plain: &[u8], params: &PigzParams, min_out: usize) -> Result<Vec<u8>> {
    let mut deflater = new_deflater()?;
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut jobs = Jobs::new(params.layout.clone(), plain.len() as u64).peekable();
    while let Some(subs) = jobs.next() {
        let len: usize = subs.iter().map(|&l| l as usize).sum();
        let end = start + len;
        let input = plain
            .get(start..end)
            .ok_or_else(|| failed("layout too long"))?;
        let dictionary = if params.independent {
            &[][..]
        } else {
            &plain[start.saturating_sub(DICT)..start]
        };
        let last = jobs.peek().is_none();
        out.extend(encode_job(
            &mut deflater,
            params,
            dictionary,
            input,
            &subs,
            last,
        )?);
        start = end;
        if out.len() >= min_out {
            break;
        }
    }
    Ok(out)
}

/// pigz's `--rsyncable` jobs over `plain` with `-b` of `block` bytes: the sub-block lengths
/// of each job, computed with pigz's own rolling hash and buffer logic (generator side; the
/// blob carries the result).
pub fn rsyncable_jobs(plain: &[u8], block: usize) -> Vec<Job> {
    const MASK: u32 = (1 << 12) - 1;
    const HIT: u32 = MASK >> 1;
    let n = plain.len();
    let mut rd = 0usize;
    let read = |rd: &mut usize| {
        let seg = (*rd, block.min(n - *rd));
        *rd += seg.1;
        seg
    };
    // Segments (start, len) of pigz's `curr`, `next` and `hold` buffers: always contiguous.
    let mut next = read(&mut rd);
    let mut hold: Option<(usize, usize)> = None;
    let (mut scan, mut hash, mut left) = (0usize, HIT, 0usize);
    let mut jobs = Vec::new();
    loop {
        let mut curr = next;
        next = hold.take().unwrap_or_else(|| read(&mut rd));
        let mut hits: Vec<u32> = Vec::new();
        if curr.1 > 0 {
            if left == 0 {
                let mut last = curr.0;
                while scan < curr.0 + curr.1 {
                    hash = ((hash << 1) ^ u32::from(plain[scan])) & MASK;
                    scan += 1;
                    if hash == HIT {
                        hits.push((scan - last) as u32);
                        last = scan;
                    }
                }
                left = scan - last;
                scan = next.0;
            }
            let mut last = next.0;
            let end = next.0 + (block - curr.1).min(next.1);
            while scan < end {
                hash = ((hash << 1) ^ u32::from(plain[scan])) & MASK;
                scan += 1;
                if hash == HIT {
                    hits.push((scan - last + left) as u32);
                    left = 0;
                    last = scan;
                }
            }
            let len = if hits.is_empty() { scan } else { last } - next.0;
            if len > 0 {
                curr.1 += len;
                next = (next.0 + len, next.1 - len);
                left = 0;
            } else if !hits.is_empty() && left > 0 && next.1 > 0 {
                hold = Some(next);
                curr.1 -= left;
                next = (curr.0 + curr.1, left);
            } else {
                left = 0;
            }
        }
        // The job's sub-blocks: the hits, then the rest.
        let mut subs = Vec::new();
        let mut rest = curr.1;
        for h in hits {
            if rest == 0 {
                break;
            }
            subs.push(h);
            rest -= h as usize;
        }
        if rest > 0 || subs.is_empty() {
            subs.push(rest as u32);
        }
        jobs.push(subs);
        if next.1 == 0 {
            return jobs;
        }
    }
}

/// The plain-text offsets at which a raw deflate stream has an empty block (pigz's flush
/// markers), and the stream's length in bytes; `None` if `data` does not start with a valid
/// raw deflate stream of at most `max_plain` bytes of text.
pub fn empty_block_offsets(data: &[u8], max_plain: u64) -> Option<(Vec<u64>, usize)> {
    let mut inflater = Inflater::new(-15).ok()?;
    let mut buf = vec![0u8; 256 << 10];
    let (mut total_in, mut total_out) = (0usize, 0u64);
    let mut last = (0u64, 0u64); // (plain offset, bit position) of the last block boundary
    let mut offsets = Vec::new();
    loop {
        let step = inflater.step_block(&data[total_in..], &mut buf);
        total_in += step.consumed;
        total_out += step.produced as u64;
        if total_out > max_plain {
            return None;
        }
        match step.ret {
            z::Z_STREAM_END => return Some((offsets, total_in)),
            z::Z_OK => {}
            z::Z_BUF_ERROR if step.consumed + step.produced > 0 => {}
            _ => return None,
        }
        let data_type = inflater.data_type();
        if data_type & 128 != 0 {
            let bit = (total_in as u64) * 8 - (data_type & 7) as u64;
            if bit != last.1 {
                if total_out == last.0 && offsets.last() != Some(&total_out) {
                    offsets.push(total_out);
                }
                last = (total_out, bit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// Deterministic, partly compressible text: words, numbers and a few random runs.
    pub(crate) fn sample(len: usize, seed: u32) -> Vec<u8> {
        let words = [
            "kernel ", "module ", "usr/lib ", "0000 ", "config\n", "etc ",
        ];
        let mut x = seed;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            match x >> 29 {
                0 => out.extend((0..(x >> 20) % 64).map(|i| (x >> (i % 24)) as u8)),
                1 => out.extend(std::iter::repeat_n(0u8, (x >> 16) as usize % 3000)),
                _ => out.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes()),
            }
        }
        out.truncate(len);
        out
    }

    /// The raw deflate stream of `pigz args` over `plain` (gzip header and trailer removed).
    fn pigz(plain: &[u8], args: &[&str]) -> Vec<u8> {
        let mut child = Command::new("pigz")
            .args(args)
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("pigz must be installed (apt-get install pigz)");
        let mut stdin = child.stdin.take().unwrap();
        let input = plain.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(out.status.success());
        let gz = out.stdout;
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
        assert_eq!(gz[3], 0, "pigz -n writes no name");
        gz[10..gz.len() - 8].to_vec()
    }

    fn rebuild(
        plain: &[u8],
        params: &PigzParams,
        out_len: usize,
        threads: usize,
    ) -> Result<Vec<u8>> {
        let mut r = PigzReader::new(
            Box::new(std::io::Cursor::new(plain.to_vec())),
            plain.len() as u64,
            &params.to_blob(),
            out_len as u64,
            threads,
        )?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .map_err(|e| Error::from_io(e, code::EXT_RECONSTRUCT_FAILED))?;
        Ok(out)
    }

    #[test]
    fn rebuilds_real_pigz_streams() {
        let plain = sample(1_500_000, 7);
        // (pigz arguments, level, -i, -b in bytes, --rsyncable)
        type Case<'a> = (&'a [&'a str], u32, bool, Option<u32>, bool);
        let cases: [Case; 7] = [
            (&["-9", "-n"], 9, false, None, false),
            (&["-6", "-n", "-p", "1"], 6, false, None, false),
            (&["-1", "-n"], 1, false, None, false),
            (&["-9", "-n", "-b", "32"], 9, false, Some(32 << 10), false),
            (&["-6", "-n", "-i"], 6, true, None, false),
            (&["-9", "-n", "--rsyncable"], 9, false, None, true),
            (
                &["-9", "-n", "--rsyncable", "-i", "-b", "64"],
                9,
                true,
                Some(64 << 10),
                true,
            ),
        ];
        for (args, level, independent, block, rsync) in cases {
            let stream = pigz(&plain, args);
            let block = block.unwrap_or(128 << 10);
            let layout = if rsync {
                let pieces = rsyncable_jobs(&plain, block as usize)
                    .into_iter()
                    .flat_map(|job| {
                        let n = job.len();
                        job.into_iter()
                            .enumerate()
                            .map(move |(i, l)| (l, i + 1 == n))
                    })
                    .collect();
                Layout::Explicit { block, pieces }
            } else {
                Layout::Fixed(block)
            };
            let params = PigzParams {
                level,
                independent,
                layout,
            };
            let blob = params.to_blob();
            assert_eq!(
                PigzParams::from_blob(&blob, plain.len() as u64).unwrap(),
                params
            );
            for threads in [0, 2] {
                let out = rebuild(&plain, &params, stream.len(), threads).unwrap();
                assert!(out == stream, "pigz {args:?}, {threads} threads");
            }
            let markers = empty_block_offsets(&stream, u64::MAX).unwrap();
            assert_eq!(markers.1, stream.len());
            if !rsync {
                assert!(
                    markers.0.iter().all(|&o| o % u64::from(block) == 0),
                    "{args:?}"
                );
            }
        }
        // Empty input.
        let stream = pigz(b"", &["-n"]);
        let params = PigzParams {
            level: 6,
            independent: false,
            layout: Layout::Fixed(128 << 10),
        };
        assert_eq!(rebuild(b"", &params, stream.len(), 2).unwrap(), stream);
    }

    /// Incompressible text (stored blocks, the largest output per byte) with many small
    /// sub-blocks and `-i` (the most markers) stays within the output bounds the applier
    /// enforces, and the memory estimate covers the largest job.
    #[test]
    fn incompressible_streams_fit_their_bounds() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let plain: Vec<u8> = (0..400_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for (args, independent) in [
            (&["-9", "-n", "-i", "-b", "32"][..], true),
            (&["-1", "-n"][..], false),
        ] {
            let stream = pigz(&plain, args);
            let block = if args.contains(&"32") {
                32 << 10
            } else {
                128 << 10
            };
            let params = PigzParams {
                level: if args[0] == "-9" { 9 } else { 1 },
                independent,
                layout: Layout::Fixed(block),
            };
            assert_eq!(
                rebuild(&plain, &params, stream.len(), 2).unwrap(),
                stream,
                "{args:?}"
            );
            let job = job_output_bound(u64::from(block), 1);
            assert!(stream.len() as u64 <= job * plain.len().div_ceil(block as usize) as u64);
            assert!(params.memory(plain.len() as u64, 2) > 4 * (u64::from(block) + job));
        }
    }

    /// Lengths that cannot belong together are refused before any job runs.
    #[test]
    fn lying_lengths_are_refused_up_front() {
        let params = PigzParams {
            level: 9,
            independent: false,
            layout: Layout::Fixed(128 << 10),
        };
        let blob = params.to_blob();
        for (plain_len, output_len) in [(1u64 << 40, 1000u64), (1000, 1 << 40), (0, 1 << 20)] {
            let e = PigzReader::new(Box::new(std::io::empty()), plain_len, &blob, output_len, 2)
                .err()
                .unwrap();
            assert_eq!(e.code, code::EXT_RECONSTRUCT_FAILED, "{e}");
            assert!(e.message.contains("cannot hold"), "{e}");
        }
    }

    #[test]
    fn hostile_blobs_fail_cleanly() {
        let plain = sample(300_000, 3);
        let good = PigzParams {
            level: 9,
            independent: false,
            layout: Layout::Explicit {
                block: 128 << 10,
                pieces: vec![
                    (100_000, false),
                    (31_072, true),
                    (131_072, true),
                    (37_856, true),
                ],
            },
        };
        let blob = good.to_blob();
        let stream = encode_prefix(&plain, &good, usize::MAX).unwrap();
        assert_eq!(rebuild(&plain, &good, stream.len(), 2).unwrap(), stream);
        let mut bad: Vec<Vec<u8>> = (0..blob.len()).map(|n| blob[..n].to_vec()).collect();
        let mut with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = blob.clone();
            f(&mut b);
            bad.push(b);
        };
        with(&|b| b[4] = 3); // unknown encoder
        with(&|b| b[5] = 0); // level 0
        with(&|b| b[5] = 10); // level 10
        with(&|b| b[6] |= 4); // unknown flag
        with(&|b| b.push(0)); // trailing byte
        with(&|b| b[8] = 0x7f); // job size too small (the varint ends early)
        with(&|b| drop(b.splice(10..11, [0xff; 11]))); // count overflows 64 bits
        with(&|b| drop(b.splice(10..11, [0xff, 0xff, 0xff, 0x7f]))); // huge count
        with(&|b| drop(b.splice(7..10, [0x80, 0x80, 0x80, 0x80, 0x01]))); // job size 2^28
        with(&|b| {
            let i = b.len() - 3; // the last piece's varint (3 bytes)
            b[i] &= !1; // the last piece does not end its job
        });
        let mut lens = good.clone();
        if let Layout::Explicit { pieces, .. } = &mut lens.layout {
            pieces[0].0 += 1; // lengths do not add up
        }
        bad.push(lens.to_blob());
        let mut huge = good.clone();
        huge.layout = Layout::Explicit {
            block: 128 << 10,
            pieces: vec![(u32::MAX >> 1, true)],
        };
        bad.push(huge.to_blob());
        for b in &bad {
            let e = PigzReader::new(
                Box::new(std::io::Cursor::new(plain.clone())),
                plain.len() as u64,
                b,
                stream.len() as u64,
                2,
            )
            .err()
            .unwrap_or_else(|| panic!("accepted {b:?}"));
            assert_eq!(e.code, code::EXT_RECONSTRUCT_FAILED, "{b:?}: {e}");
        }
        // A well-formed blob that describes another stream: the length check catches it.
        let mut other = good.clone();
        other.level = 1;
        let e = rebuild(&plain, &other, stream.len(), 2).unwrap_err();
        assert_eq!(e.code, code::EXT_RECONSTRUCT_FAILED);
        // A short plain text is a read failure, not a wrong success.
        assert!(rebuild(&plain[1..], &good, stream.len(), 0).is_err());
    }
}
