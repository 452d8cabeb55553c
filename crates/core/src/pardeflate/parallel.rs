//! Parallel driver producing exactly the bytes of the sequential [`super::deflate`].
//!
//! Why this works (levels 4–9, `deflate_slow`):
//!
//! * At the start of a loop iteration at position `s`, zlib has inserted every position
//!   `< s` into the hash chains, so the chains that can be searched (positions
//!   `> s − MAX_DIST`) are a function of the 32 KiB before `s`; a parser restarted at `s`
//!   with its tables primed from those 32 KiB searches exactly the same candidates in the
//!   same order.
//! * What remains is the lazy state (`match_length`, `match_start`, `match_available`) and
//!   the simulated window base. A chunk parser starts with the initial lazy state; as soon as
//!   its state at some iteration start equals the true parser's state at the same position,
//!   the two parses are identical from there on. We detect this at "canonical" iteration
//!   starts (`match_length < 3`, where the state is just `match_available`), which occur after
//!   every emitted match and every literal without a pending match.
//! * The window base only matters at the end of the input and for the stored-block test; a
//!   chunk parser starts with the lowest base zlib could have and catches up at its first
//!   iteration past the slide threshold, so after synchronisation its base is right too.
//! * Blocks end after every `lit_bufsize − 1` symbols (the final pending literal excepted),
//!   so once the true symbol stream is known, blocks can be cut and Huffman-coded
//!   independently and concatenated at bit level.
//!
//! Steps: (A) chunks are parsed in parallel, each recording where its canonical states are;
//! (B) one thread walks the chunk boundaries: starting from the previous chunk's (true) end
//! state it re-parses until it meets one of the next chunk's canonical states — usually after
//! a few hundred bytes — and splices the symbol streams (if no meeting point is found the
//! chunk is simply re-parsed, so the result is always exact); (C) blocks are cut and encoded
//! in parallel; (D) the pieces are concatenated.
//!
//! The argument, with measurements, is in `docs/PARDEFLATE.md` ("Parallel algorithm");
//! `tests/pardeflate_exactness.rs` states it as a property (no chunking changes a byte) and
//! checks it on generated inputs aimed at chunk boundaries, runs and the window limit.

use crate::sync::lock;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::bits::{BitBuf, BitWriter};
use super::blocks::{BlockRule, Encoder};
use super::feed::{Abort, Feed, POLL};
use super::matcher::{LazyState, Matcher, Observer, Stop, GZIP_END_ZONE};
use super::trees::{sym_len, write_stored_block, BlockEncoder, BlockKind, Sym};
use super::{check_encoder, header, Check, Wrapper};

/// Tuning knobs for [`deflate_parallel_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ParallelOptions {
    /// Number of worker threads; 0 means `std::thread::available_parallelism()`.
    pub threads: usize,
    /// Bytes per parse chunk; 0 picks a size from the input length and thread count.
    /// Any value gives the same output (it only affects speed).
    pub chunk_len: usize,
}

impl ParallelOptions {
    pub(crate) fn resolve(&self, len: usize) -> (usize, usize) {
        let threads = if self.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            self.threads
        };
        let chunk_len = if self.chunk_len == 0 {
            (len / (threads * 32)).clamp(256 << 10, 1 << 20)
        } else {
            self.chunk_len.max(1)
        };
        (threads, chunk_len)
    }
}

/// Compress `data` with `threads` threads (0 = all available cores); the output is
/// byte-identical to [`super::deflate`] and hence to stock zlib.
///
/// Levels 4–9 run in parallel; levels 1–3 (zlib's `deflate_fast`, whose hash chains depend
/// on earlier match decisions) and inputs too small to split run on the calling thread.
///
/// # Panics
/// If `level` or `mem_level` is outside 1..=9 (see [`super::is_supported`]).
pub fn deflate_parallel(
    data: &[u8],
    wrapper: Wrapper,
    level: u32,
    mem_level: u32,
    threads: usize,
) -> Vec<u8> {
    deflate_parallel_with(
        data,
        wrapper,
        level,
        mem_level,
        &ParallelOptions {
            threads,
            chunk_len: 0,
        },
    )
}

/// [`deflate_parallel`] with explicit [`ParallelOptions`].
///
/// # Panics
/// If `level` or `mem_level` is outside 1..=9 (see [`super::is_supported`]).
pub fn deflate_parallel_with(
    data: &[u8],
    wrapper: Wrapper,
    level: u32,
    mem_level: u32,
    opts: &ParallelOptions,
) -> Vec<u8> {
    deflate_parallel_as(data, wrapper, level, Encoder::Zlib { mem_level }, opts)
}

/// [`super::deflate_as`] on several threads: byte-identical output, levels 4–9 in parallel.
///
/// # Panics
/// If `level` or the encoder's memLevel is outside 1..=9.
pub fn deflate_parallel_as(
    data: &[u8],
    wrapper: Wrapper,
    level: u32,
    encoder: Encoder,
    opts: &ParallelOptions,
) -> Vec<u8> {
    check_encoder(level, encoder);
    let (threads, chunk_len) = opts.resolve(data.len());
    if threads <= 1 || level < 4 || data.len() < 2 * chunk_len {
        return super::deflate_as(data, wrapper, level, encoder);
    }
    let feed = Feed::complete(data.len());
    let mut bytes = Vec::with_capacity(data.len() / 3 + 64);
    let job = Job {
        data,
        feed: &feed,
        wrapper,
        level,
        encoder,
        threads,
        chunk_len,
        ahead: usize::MAX / 2,
    };
    let r = run(&job, &|_| {}, &mut |b: Vec<u8>| {
        bytes.extend_from_slice(&b);
        Ok(())
    });
    if r.is_err() {
        panic!("pardeflate worker panicked");
    }
    bytes
}

/// How far past a chunk's end its parse (and the coordinator's) may read: the last match
/// and the lazy evaluation after it read at most 2·258 + 2 bytes past the stop position.
const READ_MARGIN: usize = 4096;

/// Parameters of one run.
pub(crate) struct Job<'a> {
    /// The whole input (only `..feed.avail` may be read).
    pub(crate) data: &'a [u8],
    pub(crate) feed: &'a Feed,
    pub(crate) wrapper: Wrapper,
    pub(crate) level: u32,
    pub(crate) encoder: Encoder,
    pub(crate) threads: usize,
    pub(crate) chunk_len: usize,
    /// Chunks the workers may parse ahead of the one the coordinator waits for.
    pub(crate) ahead: usize,
}

/// Run the parallel deflate: `emit` receives the output bytes in order (header to trailer);
/// `release(pos)` is called from time to time with a position below which the input will not
/// be read again. Levels 4–9, `threads ≥ 1`.
pub(crate) fn run(
    job: &Job<'_>,
    release: &(dyn Fn(usize) + Sync),
    emit: &mut dyn FnMut(Vec<u8>) -> Result<(), Abort>,
) -> Result<(), Abort> {
    let ctx = Ctx {
        data: job.data,
        wrapper: job.wrapper,
        level: job.level,
        encoder: job.encoder,
        release,
    };
    let trace = std::env::var_os("PARDEFLATE_TRACE").is_some();
    let t0 = std::time::Instant::now();
    let shared = Shared {
        feed: job.feed,
        gen: Mutex::new(StartGen::new(
            job.chunk_len,
            sync_limit(job.encoder, job.data.len()),
        )),
        chunks: Mutex::new(HashMap::new()),
        chunks_cv: Condvar::new(),
        queue: Mutex::new(Queue::default()),
        queue_cv: Condvar::new(),
        results: Mutex::new(BTreeMap::new()),
        results_cv: Condvar::new(),
        failed: AtomicBool::new(false),
        ahead: job.ahead.max(1),
    };
    let stats = std::thread::scope(|sc| {
        // A worker that cannot be started (thread limits) is simply missing: the others take
        // its chunks. Without any worker nothing would parse, so that is an error.
        let mut started = 0;
        for _ in 0..job.threads {
            let spawned = std::thread::Builder::new()
                .name("pardeflate-worker".into())
                .spawn_scoped(sc, || shared.worker(&ctx));
            started += usize::from(spawned.is_ok());
        }
        if started == 0 {
            shared.abort();
            return Err(Abort);
        }
        let _guard = FailOnPanic(&shared);
        let r = ctx.coordinate(&shared, emit);
        if r.is_err() {
            shared.abort();
        } else {
            // Let idle workers go.
            lock(&shared.queue).closed = true;
            shared.queue_cv.notify_all();
        }
        r
    })?;
    if trace {
        let mut d = stats.sync_distances.clone();
        d.sort_unstable();
        eprintln!(
            "pardeflate: {} chunks of {} B, {} threads; {} B re-parsed in {} runs; sync distance \
             median {} B, 90% {} B, max {} B; {} chunks never met; {} blocks; parsed {:?}, done {:?}",
            stats.chunks,
            job.chunk_len,
            job.threads,
            stats.reparsed,
            stats.runs,
            d.get(d.len() / 2).copied().unwrap_or(0),
            d.get(d.len() * 9 / 10).copied().unwrap_or(0),
            d.last().copied().unwrap_or(0),
            stats.unsynced,
            stats.blocks,
            stats.parsed_at.map(|t| t - t0),
            t0.elapsed()
        );
    }
    Ok(())
}

/// Chunk start positions, about `chunk_len` apart. A boundary that falls inside a run of
/// identical bytes is moved to the start of the run, and a long run gets a boundary at its end
/// too (the run becomes one chunk, cheap to parse whatever its length): inside a run a chunk
/// parse stays out of phase with the true parse (both emit back-to-back 258-byte matches from
/// different offsets) until the run ends, whereas at the edges of a run the two meet within a
/// few bytes like anywhere else.
#[cfg(test)]
fn chunk_starts(data: &[u8], chunk_len: usize) -> Vec<usize> {
    let mut g = StartGen::new(chunk_len, data.len());
    g.advance(data, data.len(), usize::MAX);
    assert!(g.done);
    g.starts
}

/// Incremental [`chunk_starts`]: decides boundaries as the input arrives (a decision only
/// depends on bytes before the end of the run it is in, if any).
struct StartGen {
    chunk_len: usize,
    /// No chunk starts at or beyond this position.
    limit: usize,
    starts: Vec<usize>,
    /// Next tentative boundary.
    p: usize,
    /// End of the run scanned so far from `p` (when `> p`).
    run_end: usize,
    done: bool,
}

impl StartGen {
    fn new(chunk_len: usize, limit: usize) -> Self {
        StartGen {
            chunk_len,
            limit,
            starts: vec![0],
            p: chunk_len,
            run_end: 0,
            done: false,
        }
    }

    /// Decide the boundaries that `data[..avail]` determines, until chunk `want`'s start is
    /// known (scanning no further keeps the pages touched close to the parse).
    fn advance(&mut self, data: &[u8], avail: usize, want: usize) {
        const LONG_RUN: usize = 4096;
        let n = data.len();
        while !self.done && self.starts.len() <= want {
            let p = self.p;
            if p >= self.limit {
                self.done = true;
                break;
            }
            if p >= avail {
                break;
            }
            let prev = *self.starts.last().unwrap_or(&0);
            if data[p] != data[p - 1] {
                self.starts.push(p);
                self.p += self.chunk_len;
                continue;
            }
            let b = data[p];
            let mut e = self.run_end.max(p);
            while e < avail && data[e] == b {
                e += 1;
            }
            self.run_end = e;
            if e == avail && avail < n {
                break; // the run may go on
            }
            let mut r = p;
            while r > prev + 1 && data[r - 1] == b {
                r -= 1;
            }
            if data[r - 1] != b {
                self.starts.push(r);
            }
            if e == n || e >= self.limit {
                self.done = true; // the run reaches the end of the input (or the limit)
                break;
            }
            if e - r >= LONG_RUN {
                self.starts.push(e);
                self.p = e + self.chunk_len;
            } else {
                self.p += self.chunk_len;
            }
        }
    }
}

/// State shared by the coordinating thread and the workers.
struct Shared<'f> {
    feed: &'f Feed,
    gen: Mutex<StartGen>,
    /// Parsed chunks not yet taken by the coordinator.
    chunks: Mutex<HashMap<usize, ChunkParse>>,
    chunks_cv: Condvar,
    queue: Mutex<Queue>,
    queue_cv: Condvar,
    /// Encoded blocks not yet appended, by block index.
    results: Mutex<BTreeMap<usize, Done>>,
    results_cv: Condvar,
    failed: AtomicBool,
    ahead: usize,
}

/// Blocks waiting to be encoded, and chunk scheduling.
#[derive(Default)]
struct Queue {
    pending: VecDeque<(usize, Block)>,
    published: usize,
    closed: bool,
    next_chunk: usize,
    /// The chunk the coordinator needs next.
    frontier: usize,
    chunks_done: bool,
}

/// Marks the shared state as failed if a thread unwinds, so that nobody waits forever.
struct FailOnPanic<'a, 'f>(&'a Shared<'f>);

impl Drop for FailOnPanic<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abort();
        }
    }
}

enum Task {
    Encode(usize, Block),
    Parse(usize),
    Exit,
}

/// An encoded block with what the in-order concatenation needs.
struct Done {
    enc: Encoded,
    start: usize,
    end: usize,
    last: bool,
}

impl Shared<'_> {
    fn abort(&self) {
        self.failed.store(true, Ordering::SeqCst);
        lock(&self.queue).closed = true;
        self.queue_cv.notify_all();
        drop(lock(&self.chunks));
        self.chunks_cv.notify_all();
        drop(lock(&self.results));
        self.results_cv.notify_all();
    }

    fn check(&self) -> Result<(), Abort> {
        if self.failed.load(Ordering::SeqCst) || self.feed.failed() {
            Err(Abort)
        } else {
            Ok(())
        }
    }

    /// Start of chunk `k`, or `None` if the input has fewer chunks; waits for input as needed.
    fn start_of(&self, data: &[u8], k: usize) -> Result<Option<usize>, Abort> {
        loop {
            self.check()?;
            let avail = self.feed.avail();
            {
                let mut g = lock(&self.gen);
                g.advance(data, avail, k);
                if let Some(&s) = g.starts.get(k) {
                    return Ok(Some(s));
                }
                if g.done {
                    return Ok(None);
                }
            }
            self.feed.wait_beyond(avail)?;
        }
    }

    /// Wait for chunk `k`'s parse and take it.
    fn take_chunk(&self, k: usize) -> Result<ChunkParse, Abort> {
        let mut g = lock(&self.chunks);
        loop {
            if let Some(c) = g.remove(&k) {
                return Ok(c);
            }
            self.check()?;
            g = self
                .chunks_cv
                .wait_timeout(g, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn set_frontier(&self, k: usize) {
        lock(&self.queue).frontier = k;
        self.queue_cv.notify_all();
    }

    /// Worker loop: encode blocks whenever some are ready (so that encoding and the in-order
    /// concatenation keep pace with the parse), otherwise parse the next chunk (at most
    /// `ahead` chunks past the coordinator); exit when the coordinator closes the queue.
    fn worker(&self, ctx: &Ctx<'_>) {
        let _guard = FailOnPanic(self);
        let mut enc = BlockEncoder::new();
        loop {
            let task = {
                let mut q = lock(&self.queue);
                loop {
                    if self.check().is_err() {
                        break Task::Exit;
                    }
                    if let Some((i, b)) = q.pending.pop_front() {
                        break Task::Encode(i, b);
                    }
                    if !q.chunks_done && q.next_chunk < q.frontier.saturating_add(self.ahead) {
                        let k = q.next_chunk;
                        q.next_chunk += 1;
                        break Task::Parse(k);
                    }
                    if q.closed {
                        break Task::Exit;
                    }
                    q = self
                        .queue_cv
                        .wait_timeout(q, POLL)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            };
            match task {
                Task::Encode(i, block) => {
                    let enc = self.encode(ctx.data, &block, &mut enc);
                    let done = Done {
                        enc,
                        start: block.start_byte,
                        end: block.end_byte,
                        last: block.last,
                    };
                    drop(block);
                    lock(&self.results).insert(i, done);
                    self.results_cv.notify_all();
                }
                Task::Parse(k) => match ctx.parse_chunk(self, k) {
                    Ok(Some(c)) => {
                        lock(&self.chunks).insert(k, c);
                        self.chunks_cv.notify_all();
                    }
                    Ok(None) => {
                        lock(&self.queue).chunks_done = true;
                    }
                    Err(Abort) => {
                        self.abort();
                        return;
                    }
                },
                Task::Exit => return,
            }
        }
    }

    fn encode(&self, data: &[u8], b: &Block, enc: &mut BlockEncoder) -> Encoded {
        let mut w = BitWriter::with_capacity((b.end_byte - b.start_byte) / 2 + 64);
        let pieces = b.pieces.iter().map(|s| &s.parse.syms[s.from..s.to]);
        let raw = b.storable.then(|| &data[b.start_byte..b.end_byte]);
        match enc.encode_block(&mut w, pieces, raw, b.end_byte - b.start_byte, b.last) {
            BlockKind::Stored => Encoded::Stored,
            _ => Encoded::Bits(w.into_bitbuf()),
        }
    }

    fn publish(&self, blocks: Vec<Block>) {
        if blocks.is_empty() {
            return;
        }
        let mut q = lock(&self.queue);
        for b in blocks {
            let i = q.published;
            q.pending.push_back((i, b));
            q.published += 1;
        }
        drop(q);
        self.queue_cv.notify_all();
    }

    /// Append encoded blocks `*done..` to `out` in order: all that are ready, or (if `all`)
    /// every published block, waiting as needed. `appended_end` is the end of the last one.
    fn drain(
        &self,
        data: &[u8],
        out: &mut BitWriter,
        done: &mut usize,
        appended_end: &mut usize,
        all: bool,
    ) -> Result<(), Abort> {
        loop {
            let total = lock(&self.queue).published;
            if *done >= total {
                return Ok(());
            }
            let d = {
                let mut r = lock(&self.results);
                loop {
                    if let Some(d) = r.remove(done) {
                        break d;
                    }
                    if !all {
                        return Ok(());
                    }
                    self.check()?;
                    r = self
                        .results_cv
                        .wait_timeout(r, POLL)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            };
            match d.enc {
                Encoded::Bits(bits) => out.append(&bits),
                Encoded::Stored => write_stored_block(out, &data[d.start..d.end], d.last),
            }
            *done += 1;
            *appended_end = d.end;
        }
    }
}

/// Statistics of one parallel run (printed with `PARDEFLATE_TRACE=1`).
#[derive(Default)]
struct Stats {
    sync_distances: Vec<usize>,
    unsynced: usize,
    reparsed: usize,
    runs: usize,
    blocks: usize,
    chunks: usize,
    parsed_at: Option<std::time::Instant>,
}

struct Ctx<'a> {
    data: &'a [u8],
    wrapper: Wrapper,
    level: u32,
    encoder: Encoder,
    release: &'a (dyn Fn(usize) + Sync),
}

/// A parser run's output: symbols covering consecutive bytes from `start_byte`.
struct Parse {
    start_byte: usize,
    syms: Vec<Sym>,
    /// Byte position of symbol `i * SPARSE` for every `i`.
    sparse: Vec<usize>,
    /// Window-base changes of the parser that produced the symbols.
    base_events: Vec<(usize, usize)>,
}

const SPARSE: usize = 256;

impl Parse {
    fn new(start_byte: usize, syms: Vec<Sym>, base_events: Vec<(usize, usize)>) -> Self {
        let mut sparse = Vec::with_capacity(syms.len() / SPARSE + 1);
        let mut pos = start_byte;
        for (i, &s) in syms.iter().enumerate() {
            if i % SPARSE == 0 {
                sparse.push(pos);
            }
            pos += sym_len(s);
        }
        Parse {
            start_byte,
            syms,
            sparse,
            base_events,
        }
    }

    /// Byte position where symbol `i` starts (`i == syms.len()` gives the end).
    fn byte_of(&self, i: usize) -> usize {
        if self.syms.is_empty() {
            return self.start_byte;
        }
        let blk = (i / SPARSE).min(self.sparse.len() - 1);
        let mut pos = self.sparse[blk];
        for &s in &self.syms[blk * SPARSE..i] {
            pos += sym_len(s);
        }
        pos
    }

    /// Index of the symbol starting at byte `x` (or `syms.len()` if `x` is the end).
    fn index_at(&self, x: usize) -> usize {
        let blk = self.sparse.partition_point(|&p| p <= x).saturating_sub(1);
        let mut i = blk * SPARSE;
        let mut pos = self.sparse.get(blk).copied().unwrap_or(self.start_byte);
        while pos < x {
            pos += sym_len(self.syms[i]);
            i += 1;
        }
        assert_eq!(pos, x, "symbol boundary expected");
        i
    }
}

/// Result of parsing one chunk.
struct ChunkParse {
    parse: Arc<Parse>,
    /// First byte of the chunk.
    start: usize,
    /// Canonical states seen: bit `2·(pos − start) + match_available`.
    marks: Vec<u64>,
    end_pos: usize,
    end_state: LazyState,
    end_base: usize,
    finished: bool,
    finish_literal: bool,
    check: Check,
}

/// Where chunk parses may start and the true parse may meet them: anywhere for zlib; for GNU
/// gzip not within [`GZIP_END_ZONE`] of the end, whose parse depends on end-of-input rules a
/// chunk parser follows only once its window base is right.
fn sync_limit(encoder: Encoder, len: usize) -> usize {
    match encoder {
        Encoder::Zlib { .. } => len,
        Encoder::GnuGzip => len.saturating_sub(GZIP_END_ZONE),
    }
}

/// Records canonical states of a chunk parse (before `limit`).
struct Recorder<'m> {
    start: usize,
    limit: usize,
    marks: &'m mut Vec<u64>,
}

impl Observer for Recorder<'_> {
    const ACTIVE: bool = true;
    #[inline(always)]
    fn checkpoint(&mut self, pos: usize, match_available: bool) -> bool {
        if pos < self.limit {
            let bit = 2 * (pos - self.start) + usize::from(match_available);
            self.marks[bit / 64] |= 1 << (bit % 64);
        }
        false
    }
}

/// Stops the true parse when it meets a canonical state recorded by a chunk parse.
struct Checker<'m> {
    start: usize,
    marks: &'m [u64],
}

impl Observer for Checker<'_> {
    const ACTIVE: bool = true;
    #[inline(always)]
    fn checkpoint(&mut self, pos: usize, match_available: bool) -> bool {
        let bit = 2 * (pos - self.start) + usize::from(match_available);
        self.marks
            .get(bit / 64)
            .is_some_and(|w| w >> (bit % 64) & 1 != 0)
    }
}

/// A run of the true symbol stream: symbols `from..to` of `parse`.
#[derive(Clone)]
struct Segment {
    parse: Arc<Parse>,
    from: usize,
    to: usize,
}

/// One deflate block of the final stream.
struct Block {
    pieces: Vec<Segment>,
    start_byte: usize,
    end_byte: usize,
    /// zlib could still emit it stored (its first byte is in the window at flush time).
    storable: bool,
    last: bool,
}

enum Encoded {
    Bits(BitBuf),
    Stored,
}

/// Cuts the true symbol stream into the encoder's blocks as it grows (see `blocks.rs`: zlib
/// ends a block after every `lit_bufsize − 1` symbols, GNU gzip by its tally rule); the last
/// block holds the rest, including the final pending literal if any (which never ends a
/// block).
struct Cutter {
    rule: BlockRule,
    /// Segments not yet wholly cut (the first one partly, from `used_in_seg`).
    segs: VecDeque<Segment>,
    used_in_seg: usize,
    avail: usize,
    consumed: usize,
    /// Symbols of the current block already given to `rule`, and where the next one is:
    /// (index into `segs`, index into that segment's parse).
    tallied: usize,
    cursor: (usize, usize),
    start_byte: usize,
    blocks: usize,
}

impl Cutter {
    fn new(rule: BlockRule) -> Self {
        Cutter {
            rule,
            segs: VecDeque::new(),
            used_in_seg: 0,
            avail: 0,
            consumed: 0,
            tallied: 0,
            cursor: (0, 0),
            start_byte: 0,
            blocks: 0,
        }
    }

    fn push(&mut self, seg: Segment) {
        if seg.from < seg.to {
            self.avail += seg.to - seg.from;
            self.segs.push_back(seg);
        }
    }

    /// Take the next `need` symbols; returns the pieces and the last symbol taken.
    fn take(&mut self, mut need: usize) -> (Vec<Segment>, Option<(Arc<Parse>, usize)>) {
        let mut pieces = Vec::new();
        let mut last = None;
        self.consumed += need;
        while need > 0 {
            let s = &self.segs[0];
            let from = s.from + self.used_in_seg;
            let take = need.min(s.to - from);
            pieces.push(Segment {
                parse: Arc::clone(&s.parse),
                from,
                to: from + take,
            });
            last = Some((Arc::clone(&s.parse), from + take - 1));
            need -= take;
            self.used_in_seg += take;
            if from + take == s.to {
                self.segs.pop_front();
                self.used_in_seg = 0;
            }
        }
        (pieces, last)
    }

    fn block(&mut self, need: usize) -> Block {
        let (pieces, last_sym) = self.take(need);
        let (parse, i) = last_sym.expect("full block has symbols");
        let sym_start = parse.byte_of(i);
        let end_byte = sym_start + sym_len(parse.syms[i]);
        // deflate_slow emits the symbol for byte s−1 in the iteration starting at s, and the
        // window base in effect is the one after that iteration's slide check.
        let base = Matcher::base_at(&parse.base_events, sym_start + 1);
        let b = Block {
            pieces,
            start_byte: self.start_byte,
            end_byte,
            storable: self.start_byte >= base,
            last: false,
        };
        self.start_byte = end_byte;
        self.blocks += 1;
        self.tallied = 0;
        self.rule.reset();
        b
    }

    /// Give the rule the current block's symbols up to `upto` (counted from the block's
    /// start) and return the block's length if it ends at one of them. With `can_end_last`
    /// false the symbol at `upto` (the final pending literal) is tallied but cannot end it.
    fn tally(&mut self, upto: usize, can_end_last: bool) -> Option<usize> {
        // Symbol counts below the rule's next check cannot end the block: skip the walk.
        if let BlockRule::Every(n) = self.rule {
            let end = n.max(self.tallied + 1);
            if end < upto || (end == upto && can_end_last) {
                return Some(end);
            }
            self.tallied = upto;
            return None;
        }
        if self.tallied == 0 {
            self.cursor = (
                0,
                self.segs.front().map_or(0, |s| s.from + self.used_in_seg),
            );
        }
        while self.tallied < upto {
            let (mut k, mut i) = self.cursor;
            if i == self.segs[k].to {
                k += 1;
                i = self.segs[k].from;
            }
            let sym = self.segs[k].parse.syms[i];
            self.cursor = (k, i + 1);
            self.tallied += 1;
            let n = self.tallied;
            if self.rule.add(sym, n) && (n < upto || can_end_last) {
                return Some(n);
            }
        }
        None
    }

    /// Full blocks that are certainly not the last one.
    fn cut_ready(&mut self) -> Vec<Block> {
        let mut out = Vec::new();
        // The newest symbol may be the final pending literal: leave it for `cut_final`.
        while self.avail - self.consumed > 1 {
            let pending = self.avail - self.consumed - 1;
            match self.tally(pending, true) {
                Some(n) => out.push(self.block(n)),
                None => break,
            }
        }
        out
    }

    /// All remaining blocks, once the stream is complete.
    fn cut_final(
        &mut self,
        finish_literal: bool,
        final_parse: &Parse,
        total_len: usize,
    ) -> Vec<Block> {
        let mut out = Vec::new();
        while self.avail > self.consumed {
            let pending = self.avail - self.consumed;
            match self.tally(pending, !finish_literal) {
                Some(n) => out.push(self.block(n)),
                None => break,
            }
        }
        let rest = self.avail - self.consumed;
        let (pieces, _) = self.take(rest);
        let base = Matcher::base_at(&final_parse.base_events, total_len);
        out.push(Block {
            pieces,
            start_byte: self.start_byte,
            end_byte: total_len,
            storable: self.start_byte >= base,
            last: true,
        });
        self.blocks += 1;
        out
    }
}

/// Flush the output in pieces of about this size.
const EMIT_BYTES: usize = 256 << 10;
/// Published but not yet appended blocks beyond which the coordinator waits for encoders.
const MAX_OUTSTANDING_BLOCKS: usize = 64;

impl Ctx<'_> {
    fn parse_chunk(&self, sh: &Shared<'_>, k: usize) -> Result<Option<ChunkParse>, Abort> {
        let Some(start) = sh.start_of(self.data, k)? else {
            return Ok(None);
        };
        let next = sh.start_of(self.data, k + 1)?;
        let end = next.unwrap_or(self.data.len());
        sh.feed.wait_for(end.saturating_add(READ_MARGIN))?;
        let mut m = Matcher::for_encoder(self.data, self.level, self.encoder);
        if k > 0 {
            m.reset(start, LazyState::INITIAL, Matcher::base_guess(start));
        }
        let span = end - start + 2 * 258 + 64;
        let mut marks = vec![0u64; (2 * span).div_ceil(64)];
        let mut syms = Vec::with_capacity((end - start) / 4);
        let stop_at = if next.is_some() { end } else { usize::MAX };
        let stop = m.run(
            &mut syms,
            usize::MAX,
            stop_at,
            &mut Recorder {
                start,
                limit: sync_limit(self.encoder, self.data.len()),
                marks: &mut marks,
            },
        );
        let finished = stop == Stop::Finished;
        syms.shrink_to_fit();
        Ok(Some(ChunkParse {
            parse: Arc::new(Parse::new(start, syms, m.base_events.clone())),
            start,
            marks,
            end_pos: m.strstart,
            end_state: m.state,
            end_base: m.base,
            finished,
            finish_literal: m.finish_literal,
            check: Check::of(self.wrapper, &self.data[start..end]),
        }))
    }

    /// Walk the chunk boundaries in order (waiting for the chunks as needed), build the true
    /// symbol stream, publish its blocks for encoding, append the encoded blocks in order and
    /// emit the output bytes.
    fn coordinate(
        &self,
        sh: &Shared<'_>,
        emit: &mut dyn FnMut(Vec<u8>) -> Result<(), Abort>,
    ) -> Result<Stats, Abort> {
        let mut out = BitWriter::with_capacity(EMIT_BYTES + (64 << 10));
        out.put_bytes(&header(self.wrapper, self.level));
        let mut check = Check::new(self.wrapper);
        let mut cutter = Cutter::new(self.encoder.block_rule(self.level));
        let mut stats = Stats::default();
        let mut appended = 0usize;
        let mut appended_end = 0usize;
        let mut released = 0usize;
        let mut cur = sh.take_chunk(0)?; // the chunk whose end state is the true state
        stats.chunks = 1;
        check = check.then(cur.check);
        cutter.push(Segment {
            parse: Arc::clone(&cur.parse),
            from: 0,
            to: cur.parse.syms.len(),
        });
        let mut coord = Matcher::for_encoder(self.data, self.level, self.encoder);
        let mut finish_literal = cur.finish_literal;
        let mut final_parse = Arc::clone(&cur.parse);
        let mut next_k = (!cur.finished).then_some(1usize);
        'chunks: while let Some(mut k) = next_k {
            sh.publish(cutter.cut_ready());
            let outstanding = lock(&sh.queue).published - appended;
            let all = outstanding > MAX_OUTSTANDING_BLOCKS;
            sh.drain(self.data, &mut out, &mut appended, &mut appended_end, all)?;
            if out.byte_len() >= EMIT_BYTES {
                emit(out.take_bytes())?;
            }
            // Nothing before the oldest unappended block or the current chunk is read again
            // (a reset primes from at most 32 KiB before its position).
            let keep = appended_end.min(cur.start).saturating_sub(64 << 10);
            if keep >= released + (2 << 20) {
                (self.release)(keep);
                released = keep;
            }
            sh.set_frontier(k);
            let mut ck = sh.take_chunk(k)?;
            stats.chunks += 1;
            check = check.then(ck.check);
            coord.reset(cur.end_pos, cur.end_state, cur.end_base);
            let run_start = coord.emitted_end();
            let mut syms = Vec::new();
            loop {
                let next = sh.start_of(self.data, k + 1)?;
                let stop_at = next.unwrap_or(usize::MAX);
                let mut checker = Checker {
                    start: ck.start,
                    marks: &ck.marks,
                };
                let stop = coord.run(&mut syms, usize::MAX, stop_at, &mut checker);
                if stop == Stop::Position {
                    // No meeting point in chunk k: it is replaced by this parse.
                    stats.unsynced += 1;
                    k += 1;
                    sh.set_frontier(k);
                    ck = sh.take_chunk(k)?;
                    stats.chunks += 1;
                    check = check.then(ck.check);
                    continue;
                }
                let own_len = syms.len();
                let parse = Arc::new(Parse::new(run_start, syms, coord.base_events.clone()));
                stats.reparsed += parse.byte_of(own_len) - run_start;
                stats.runs += 1;
                cutter.push(Segment {
                    parse: Arc::clone(&parse),
                    from: 0,
                    to: own_len,
                });
                match stop {
                    Stop::Observer => {
                        let x = coord.emitted_end();
                        stats.sync_distances.push(coord.strstart - ck.start);
                        let j = ck.parse.index_at(x);
                        cutter.push(Segment {
                            parse: Arc::clone(&ck.parse),
                            from: j,
                            to: ck.parse.syms.len(),
                        });
                        finish_literal = ck.finish_literal;
                        final_parse = Arc::clone(&ck.parse);
                        if ck.finished {
                            break 'chunks;
                        }
                        cur = ck;
                        next_k = Some(k + 1);
                        continue 'chunks;
                    }
                    Stop::Finished => {
                        finish_literal = coord.finish_literal;
                        final_parse = parse;
                        break 'chunks;
                    }
                    Stop::Position | Stop::BlockFull => unreachable!("handled above / no limit"),
                }
            }
        }
        stats.parsed_at = Some(std::time::Instant::now());
        let mut last = cutter.cut_ready();
        last.extend(cutter.cut_final(finish_literal, &final_parse, self.data.len()));
        drop(final_parse);
        sh.publish(last);
        lock(&sh.queue).closed = true;
        sh.queue_cv.notify_all();
        sh.drain(self.data, &mut out, &mut appended, &mut appended_end, true)?;
        stats.blocks = cutter.blocks;
        let mut bytes = out.finish();
        bytes.extend_from_slice(&check.trailer());
        emit(bytes)?;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_starts;

    #[test]
    fn chunk_starts_are_increasing_and_avoid_runs() {
        let mut data = vec![7u8; 10_000];
        data.extend(std::iter::repeat_n(0u8, 50_000)); // long run across several boundaries
        data.extend((0..30_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
        data.extend(std::iter::repeat_n(0u8, 20_000)); // run reaching the end
        for chunk in [1usize, 100, 4_000, 9_999, 25_000] {
            let s = chunk_starts(&data, chunk);
            assert_eq!(s[0], 0);
            assert!(s.windows(2).all(|w| w[0] < w[1]), "increasing");
            assert!(s.iter().all(|&p| p < data.len()));
            // No boundary strictly inside the long zero runs.
            for &p in &s[1..] {
                let inside = p > 0 && data[p] == data[p - 1] && data[p] == 0;
                assert!(
                    !inside || (p > 10_000 && p < 10_001),
                    "boundary {p} inside a run (chunk {chunk})"
                );
            }
        }
    }
}
