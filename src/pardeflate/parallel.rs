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

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use super::bits::{BitBuf, BitWriter};
use super::matcher::{LazyState, Matcher, Observer, Stop};
use super::trees::{sym_len, write_stored_block, BlockEncoder, BlockKind, Sym};
use super::{block_symbols, check_params, header, Check, Wrapper};

/// Tuning knobs for [`deflate_parallel_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ParallelOptions {
    /// Number of worker threads; 0 means `std::thread::available_parallelism()`.
    pub threads: usize,
    /// Bytes per parse chunk; 0 picks a size from the input length and thread count.
    /// Any value gives the same output (it only affects speed).
    pub chunk_len: usize,
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
    check_params(level, mem_level);
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        opts.threads
    };
    let chunk_len = if opts.chunk_len == 0 {
        (data.len() / (threads * 32)).clamp(256 << 10, 1 << 20)
    } else {
        opts.chunk_len.max(1)
    };
    if threads <= 1 || level < 4 || data.len() < 2 * chunk_len {
        return super::deflate(data, wrapper, level, mem_level);
    }
    let starts = chunk_starts(data, chunk_len);
    let ctx = Ctx {
        data,
        wrapper,
        level,
        mem_level,
        starts,
    };
    let trace = std::env::var_os("PARDEFLATE_TRACE").is_some();
    let t0 = std::time::Instant::now();
    let nchunks = ctx.starts.len();
    let shared = Shared {
        chunks: Slots::new(nchunks),
        own: Slots::new(nchunks),
        next_chunk: AtomicUsize::new(0),
        queue: Mutex::new(Queue::default()),
        queue_cv: Condvar::new(),
        results: Mutex::new(Vec::new()),
        results_cv: Condvar::new(),
        failed: AtomicBool::new(false),
    };
    let mut out = BitWriter::with_capacity(data.len() / 3 + 64);
    out.put_bytes(&header(wrapper, level));
    // Workers parse chunks, then encode blocks. This thread resolves the chunk boundaries in
    // order as the chunks complete, cuts blocks as soon as the true symbol stream is known,
    // and appends encoded blocks to the output in order.
    let stats = std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| shared.worker(&ctx));
        }
        let _guard = FailOnPanic(&shared);
        ctx.coordinate(&shared, &mut out)
    });
    let mut check = Check::new(wrapper);
    for k in 0..nchunks {
        check = check.then(shared.chunks.get(k).check);
    }
    let mut bytes = out.finish();
    bytes.extend_from_slice(&check.trailer());
    if trace {
        let mut d = stats.sync_distances.clone();
        d.sort_unstable();
        eprintln!(
            "pardeflate: {} chunks of {} B, {} threads; {} B re-parsed in {} runs; sync distance \
             median {} B, 90% {} B, max {} B; {} chunks never met; {} blocks; parsed {:?}, done {:?}",
            nchunks,
            chunk_len,
            threads,
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
    bytes
}

/// Chunk start positions, about `chunk_len` apart. A boundary that falls inside a run of
/// identical bytes is moved to the start of the run, and a long run gets a boundary at its end
/// too (the run becomes one chunk, cheap to parse whatever its length): inside a run a chunk
/// parse stays out of phase with the true parse (both emit back-to-back 258-byte matches from
/// different offsets) until the run ends, whereas at the edges of a run the two meet within a
/// few bytes like anywhere else.
fn chunk_starts(data: &[u8], chunk_len: usize) -> Vec<usize> {
    const LONG_RUN: usize = 4096;
    let n = data.len();
    let mut starts = vec![0usize];
    let mut p = chunk_len;
    while p < n {
        let prev = *starts.last().unwrap_or(&0);
        if data[p] != data[p - 1] {
            starts.push(p);
            p += chunk_len;
            continue;
        }
        let b = data[p];
        let mut r = p;
        while r > prev + 1 && data[r - 1] == b {
            r -= 1;
        }
        if data[r - 1] != b {
            starts.push(r);
        }
        let mut e = p;
        while e < n && data[e] == b {
            e += 1;
        }
        if e == n {
            break; // the run reaches the end of the input
        }
        if e - r >= LONG_RUN {
            starts.push(e);
            p = e + chunk_len;
        } else {
            p += chunk_len;
        }
    }
    starts
}

/// Results of parallel work items that can be waited for one by one, in any order, while
/// the work continues.
struct Slots<T> {
    items: Vec<OnceLock<T>>,
    failed: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

impl<T> Slots<T> {
    fn new(n: usize) -> Self {
        Slots {
            items: (0..n).map(|_| OnceLock::new()).collect(),
            failed: AtomicBool::new(false),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    fn set(&self, i: usize, v: T) {
        if self.items[i].set(v).is_err() {
            unreachable!("slot {i} set twice");
        }
        let _g = lock(&self.lock);
        self.cv.notify_all();
    }

    fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        let _g = lock(&self.lock);
        self.cv.notify_all();
    }

    /// Wait for item `i`; panics if a worker panicked.
    fn wait(&self, i: usize) -> &T {
        let mut g = lock(&self.lock);
        loop {
            if let Some(v) = self.items[i].get() {
                return v;
            }
            assert!(
                !self.failed.load(Ordering::SeqCst),
                "pardeflate worker panicked"
            );
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Item `i`, which must have been set.
    fn get(&self, i: usize) -> &T {
        self.items[i].get().expect("slot filled")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// State shared by the coordinating thread and the workers.
struct Shared {
    chunks: Slots<ChunkParse>,
    /// Parses made by the coordinator (at most one per chunk boundary plus one).
    own: Slots<Parse>,
    next_chunk: AtomicUsize,
    queue: Mutex<Queue>,
    queue_cv: Condvar,
    results: Mutex<Vec<Option<Encoded>>>,
    results_cv: Condvar,
    failed: AtomicBool,
}

/// Blocks waiting to be encoded.
#[derive(Default)]
struct Queue {
    blocks: Vec<Block>,
    next: usize,
    closed: bool,
}

/// Marks the shared state as failed if a thread unwinds, so that nobody waits forever.
struct FailOnPanic<'a>(&'a Shared);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let sh = self.0;
            sh.failed.store(true, Ordering::SeqCst);
            sh.chunks.fail();
            sh.own.fail();
            lock(&sh.queue).closed = true;
            sh.queue_cv.notify_all();
            let _g = lock(&sh.results);
            sh.results_cv.notify_all();
        }
    }
}

impl Shared {
    /// Parse index `p`: chunk parses first, then the coordinator's.
    fn parse(&self, p: usize) -> &Parse {
        let n = self.chunks.items.len();
        if p < n {
            &self.chunks.get(p).parse
        } else {
            self.own.get(p - n)
        }
    }

    /// Worker loop: encode blocks whenever some are ready (so that encoding and the in-order
    /// concatenation keep pace with the parse), otherwise parse the next chunk; when all chunks
    /// are taken, wait for blocks until the coordinator closes the queue.
    fn worker(&self, ctx: &Ctx<'_>) {
        let _guard = FailOnPanic(self);
        let n = self.chunks.items.len();
        let mut enc = BlockEncoder::new();
        let mut chunks_left = true;
        loop {
            let task = {
                let mut q = lock(&self.queue);
                loop {
                    if q.next < q.blocks.len() {
                        let i = q.next;
                        q.next += 1;
                        break Some((i, q.blocks[i].clone()));
                    }
                    if q.closed || chunks_left {
                        break None;
                    }
                    q = self.queue_cv.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            match task {
                Some((i, block)) => {
                    let e = self.encode(ctx.data, &block, &mut enc);
                    let mut r = lock(&self.results);
                    if r.len() <= i {
                        r.resize_with(i + 1, || None);
                    }
                    r[i] = Some(e);
                    self.results_cv.notify_all();
                }
                None if chunks_left => {
                    let k = self.next_chunk.fetch_add(1, Ordering::Relaxed);
                    if k < n {
                        self.chunks.set(k, ctx.parse_chunk(k));
                    } else {
                        chunks_left = false;
                    }
                }
                None => break,
            }
        }
    }

    fn encode(&self, data: &[u8], b: &Block, enc: &mut BlockEncoder) -> Encoded {
        let mut w = BitWriter::with_capacity((b.end_byte - b.start_byte) / 2 + 64);
        let pieces = b
            .pieces
            .iter()
            .map(|s| &self.parse(s.parse).syms[s.from..s.to]);
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
        lock(&self.queue).blocks.extend(blocks);
        self.queue_cv.notify_all();
    }

    /// Append encoded blocks `*done..` to `out` in order: all that are ready, or (if `all`)
    /// every published block, waiting as needed.
    fn drain(&self, data: &[u8], out: &mut BitWriter, done: &mut usize, all: bool) {
        loop {
            let total = lock(&self.queue).blocks.len();
            if *done >= total {
                return;
            }
            let e = {
                let mut r = lock(&self.results);
                loop {
                    if let Some(e) = r.get_mut(*done).and_then(Option::take) {
                        break e;
                    }
                    if !all {
                        return;
                    }
                    assert!(
                        !self.failed.load(Ordering::SeqCst),
                        "pardeflate worker panicked"
                    );
                    r = self.results_cv.wait(r).unwrap_or_else(|e| e.into_inner());
                }
            };
            let (start, end, last) = {
                let q = lock(&self.queue);
                let b = &q.blocks[*done];
                (b.start_byte, b.end_byte, b.last)
            };
            match e {
                Encoded::Bits(bits) => out.append(&bits),
                Encoded::Stored => write_stored_block(out, &data[start..end], last),
            }
            *done += 1;
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
    parsed_at: Option<std::time::Instant>,
}

struct Ctx<'a> {
    data: &'a [u8],
    wrapper: Wrapper,
    level: u32,
    mem_level: u32,
    starts: Vec<usize>,
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
    parse: Parse,
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

/// Records canonical states of a chunk parse.
struct Recorder<'m> {
    start: usize,
    marks: &'m mut Vec<u64>,
}

impl Observer for Recorder<'_> {
    const ACTIVE: bool = true;
    #[inline(always)]
    fn checkpoint(&mut self, pos: usize, match_available: bool) -> bool {
        let bit = 2 * (pos - self.start) + usize::from(match_available);
        self.marks[bit / 64] |= 1 << (bit % 64);
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

/// A run of the true symbol stream: `parse` symbols `from..to`.
#[derive(Clone, Copy, Debug)]
struct Segment {
    parse: usize,
    from: usize,
    to: usize,
}

/// One deflate block of the final stream.
#[derive(Clone)]
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

/// Cuts the true symbol stream into zlib's blocks as it grows: a block is flushed after
/// every `nsyms` symbols emitted inside the parse loop; the last block holds the rest,
/// including zlib's final pending literal if any (which never triggers a flush).
struct Cutter {
    nsyms: usize,
    segs: Vec<Segment>,
    seg_i: usize,
    used_in_seg: usize,
    avail: usize,
    consumed: usize,
    start_byte: usize,
    blocks: usize,
}

impl Cutter {
    fn new(nsyms: usize) -> Self {
        Cutter {
            nsyms,
            segs: Vec::new(),
            seg_i: 0,
            used_in_seg: 0,
            avail: 0,
            consumed: 0,
            start_byte: 0,
            blocks: 0,
        }
    }

    fn push(&mut self, seg: Segment) {
        if seg.from < seg.to {
            self.avail += seg.to - seg.from;
            self.segs.push(seg);
        }
    }

    /// Take the next `need` symbols; returns the pieces and the last symbol taken.
    fn take(&mut self, mut need: usize) -> (Vec<Segment>, Option<(usize, usize)>) {
        let mut pieces = Vec::new();
        let mut last = None;
        self.consumed += need;
        while need > 0 {
            let s = self.segs[self.seg_i];
            let from = s.from + self.used_in_seg;
            let take = need.min(s.to - from);
            pieces.push(Segment {
                parse: s.parse,
                from,
                to: from + take,
            });
            last = Some((s.parse, from + take - 1));
            need -= take;
            self.used_in_seg += take;
            if from + take == s.to {
                self.seg_i += 1;
                self.used_in_seg = 0;
            }
        }
        (pieces, last)
    }

    fn block(&mut self, sh: &Shared, need: usize) -> Block {
        let (pieces, last_sym) = self.take(need);
        let (p, i) = last_sym.expect("full block has symbols");
        let parse = sh.parse(p);
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
        b
    }

    /// Full blocks that are certainly not the last one.
    fn cut_ready(&mut self, sh: &Shared) -> Vec<Block> {
        let mut out = Vec::new();
        while self.avail - self.consumed > self.nsyms {
            out.push(self.block(sh, self.nsyms));
        }
        out
    }

    /// All remaining blocks, once the stream is complete.
    fn cut_final(
        &mut self,
        sh: &Shared,
        finish_literal: bool,
        final_parse: usize,
        total_len: usize,
    ) -> Vec<Block> {
        let rest = self.avail - self.consumed;
        let full = (rest - usize::from(finish_literal)) / self.nsyms;
        let mut out: Vec<Block> = (0..full).map(|_| self.block(sh, self.nsyms)).collect();
        let (pieces, _) = self.take(rest - full * self.nsyms);
        let base = Matcher::base_at(&sh.parse(final_parse).base_events, total_len);
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

impl Ctx<'_> {
    fn chunk_end(&self, k: usize) -> usize {
        self.starts.get(k + 1).copied().unwrap_or(self.data.len())
    }

    fn parse_chunk(&self, k: usize) -> ChunkParse {
        let start = self.starts[k];
        let end = self.chunk_end(k);
        let mut m = Matcher::new(self.data, self.level, self.mem_level);
        if k > 0 {
            m.reset(start, LazyState::INITIAL, Matcher::base_guess(start));
        }
        let span = end - start + 2 * 258 + 64;
        let mut marks = vec![0u64; (2 * span).div_ceil(64)];
        let mut syms = Vec::with_capacity((end - start) / 2);
        let stop_at = if k + 1 < self.starts.len() {
            end
        } else {
            usize::MAX
        };
        let stop = m.run(
            &mut syms,
            usize::MAX,
            stop_at,
            &mut Recorder {
                start,
                marks: &mut marks,
            },
        );
        let finished = stop == Stop::Finished;
        ChunkParse {
            parse: Parse::new(start, syms, m.base_events.clone()),
            start,
            marks,
            end_pos: m.strstart,
            end_state: m.state,
            end_base: m.base,
            finished,
            finish_literal: m.finish_literal,
            check: Check::of(self.wrapper, &self.data[start..end]),
        }
    }

    /// Walk the chunk boundaries in order (waiting for the chunks as needed), build the true
    /// symbol stream, publish its blocks for encoding and append the encoded blocks to `out`.
    fn coordinate(&self, sh: &Shared, out: &mut BitWriter) -> Stats {
        let n = self.starts.len();
        let chunk = |k: usize| sh.chunks.wait(k);
        let mut cutter = Cutter::new(block_symbols(self.mem_level));
        let mut stats = Stats::default();
        let mut appended = 0usize;
        cutter.push(Segment {
            parse: 0,
            from: 0,
            to: chunk(0).parse.syms.len(),
        });
        let mut coord = Matcher::new(self.data, self.level, self.mem_level);
        let mut cur = 0usize; // chunk whose end state is the true state to continue from
        let mut finish_literal = chunk(0).finish_literal;
        let mut final_parse = 0usize;
        let mut k = if chunk(0).finished { n } else { 1 };
        'chunks: while k < n {
            sh.publish(cutter.cut_ready(sh));
            sh.drain(self.data, out, &mut appended, false);
            let c = chunk(cur);
            coord.reset(c.end_pos, c.end_state, c.end_base);
            let run_start = coord.emitted_end();
            let mut syms = Vec::new();
            loop {
                let stop_at = if k + 1 < n {
                    self.starts[k + 1]
                } else {
                    usize::MAX
                };
                let mut checker = Checker {
                    start: chunk(k).start,
                    marks: &chunk(k).marks,
                };
                let stop = coord.run(&mut syms, usize::MAX, stop_at, &mut checker);
                if stop == Stop::Position {
                    // No meeting point in chunk k: it is replaced by this parse.
                    stats.unsynced += 1;
                    k += 1;
                    continue;
                }
                let idx = n + stats.runs;
                let own_len = syms.len();
                let parse = Parse::new(run_start, syms, coord.base_events.clone());
                stats.reparsed += parse.byte_of(own_len) - run_start;
                sh.own.set(stats.runs, parse);
                stats.runs += 1;
                cutter.push(Segment {
                    parse: idx,
                    from: 0,
                    to: own_len,
                });
                match stop {
                    Stop::Observer => {
                        let x = coord.emitted_end();
                        stats.sync_distances.push(coord.strstart - self.starts[k]);
                        let j = chunk(k).parse.index_at(x);
                        cutter.push(Segment {
                            parse: k,
                            from: j,
                            to: chunk(k).parse.syms.len(),
                        });
                        finish_literal = chunk(k).finish_literal;
                        final_parse = k;
                        if chunk(k).finished {
                            break 'chunks;
                        }
                        cur = k;
                        k += 1;
                        continue 'chunks;
                    }
                    Stop::Finished => {
                        finish_literal = coord.finish_literal;
                        final_parse = idx;
                        break 'chunks;
                    }
                    Stop::Position | Stop::BlockFull => unreachable!("handled above / no limit"),
                }
            }
        }
        stats.parsed_at = Some(std::time::Instant::now());
        let mut last = cutter.cut_ready(sh);
        last.extend(cutter.cut_final(sh, finish_literal, final_parse, self.data.len()));
        sh.publish(last);
        lock(&sh.queue).closed = true;
        sh.queue_cv.notify_all();
        sh.drain(self.data, out, &mut appended, true);
        stats.blocks = cutter.blocks;
        stats
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
