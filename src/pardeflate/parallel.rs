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
    let starts: Vec<usize> = (0..data.len().div_ceil(chunk_len))
        .map(|k| k * chunk_len)
        .collect();
    let ctx = Ctx {
        data,
        wrapper,
        level,
        mem_level,
        starts,
        threads,
    };
    let trace = std::env::var_os("PARDEFLATE_TRACE").is_some();
    let t0 = std::time::Instant::now();

    // (A) parse the chunks in parallel while (B) this thread resolves the chunk boundaries
    // in order, as soon as the chunks it needs are done.
    let nchunks = ctx.starts.len();
    let chunk_slots = Slots::new(nchunks);
    let next = AtomicUsize::new(0);
    let resolved = std::thread::scope(|sc| {
        for _ in 0..threads.min(nchunks) {
            sc.spawn(|| {
                let _guard = FailOnPanic(&chunk_slots);
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= nchunks {
                        break;
                    }
                    chunk_slots.set(k, ctx.parse_chunk(k));
                }
            });
        }
        ctx.resolve(&chunk_slots)
    });
    let chunks = chunk_slots.into_vec();
    let t1 = t0.elapsed();
    let parses: Vec<&Parse> = chunks
        .iter()
        .map(|c| &c.parse)
        .chain(resolved.own.iter())
        .collect();
    // (C) cut the blocks, encode them in parallel, and (D) concatenate them in order on this
    // thread as they become ready.
    let blocks = cut_blocks(data.len(), &resolved, &parses, block_symbols(mem_level));
    let mut check = Check::new(wrapper);
    for c in &chunks {
        check = check.then(c.check);
    }
    let mut out = BitWriter::with_capacity(data.len() / 3 + 64);
    out.put_bytes(&header(wrapper, level));
    ctx.encode_blocks(&blocks, &parses, |b, e| match e {
        Encoded::Bits(bits) => out.append(bits),
        Encoded::Stored => write_stored_block(&mut out, &data[b.start_byte..b.end_byte], b.last),
    });
    let mut bytes = out.finish();
    bytes.extend_from_slice(&check.trailer());
    if trace {
        let own_bytes: usize = resolved
            .own
            .iter()
            .map(|p| p.byte_of(p.syms.len()) - p.start_byte)
            .sum();
        eprintln!(
            "pardeflate: {} chunks of {} B, {} threads; parsed+resolved {:?} ({} B re-parsed in {} runs), {} blocks, done {:?}",
            chunks.len(),
            chunk_len,
            threads,
            t1,
            own_bytes,
            resolved.own.len(),
            blocks.len(),
            t0.elapsed()
        );
    }
    bytes
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
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.cv.notify_all();
    }

    fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.cv.notify_all();
    }

    /// Wait for item `i`; panics if a worker panicked.
    fn wait(&self, i: usize) -> &T {
        let mut g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
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

    fn into_vec(self) -> Vec<T> {
        self.items
            .into_iter()
            .map(|c| c.into_inner().expect("all slots filled"))
            .collect()
    }
}

/// Marks the slots as failed if the owning worker thread unwinds, so waiters do not hang.
struct FailOnPanic<'a, T>(&'a Slots<T>);

impl<T> Drop for FailOnPanic<'_, T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail();
        }
    }
}

struct Ctx<'a> {
    data: &'a [u8],
    wrapper: Wrapper,
    level: u32,
    mem_level: u32,
    starts: Vec<usize>,
    threads: usize,
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

/// The true symbol stream, as produced by [`Ctx::resolve`].
struct Resolved {
    /// Runs of symbols; parse indices `< chunks` refer to chunk parses, the others to `own`.
    segments: Vec<Segment>,
    /// Parses made while resolving the boundaries.
    own: Vec<Parse>,
    /// The last symbol is zlib's final pending literal (it never triggers a block flush).
    finish_literal: bool,
    /// The parse that reached the end of the input.
    final_parse: usize,
}

/// A run of the true symbol stream: `parse` symbols `from..to`.
#[derive(Clone, Copy, Debug)]
struct Segment {
    parse: usize,
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

    /// Walk the chunk boundaries in order and build the true symbol stream. Returns the
    /// segments (indices `< chunks.len()` refer to chunk parses, the others to the returned
    /// parses made here) and the parses made here.
    fn resolve(&self, slots: &Slots<ChunkParse>) -> Resolved {
        let n = self.starts.len();
        let chunk = |k: usize| slots.wait(k);
        let mut segments = vec![Segment {
            parse: 0,
            from: 0,
            to: chunk(0).parse.syms.len(),
        }];
        let mut own: Vec<Parse> = Vec::new();
        let mut coord = Matcher::new(self.data, self.level, self.mem_level);
        let mut cur = 0usize; // chunk whose end state is the true state to continue from
        let mut finish_literal = chunk(0).finish_literal;
        let mut final_parse = 0usize;
        let mut k = if chunk(0).finished { n } else { 1 };
        'chunks: while k < n {
            let c = &chunk(cur);
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
                match stop {
                    Stop::Observer => {
                        let x = coord.emitted_end();
                        let idx = n + own.len();
                        segments.push(Segment {
                            parse: idx,
                            from: 0,
                            to: syms.len(),
                        });
                        own.push(Parse::new(run_start, syms, coord.base_events.clone()));
                        let j = chunk(k).parse.index_at(x);
                        segments.push(Segment {
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
                    Stop::Position => {
                        // No meeting point in chunk k: it is replaced by this parse.
                        k += 1;
                    }
                    Stop::Finished => {
                        let idx = n + own.len();
                        segments.push(Segment {
                            parse: idx,
                            from: 0,
                            to: syms.len(),
                        });
                        own.push(Parse::new(run_start, syms, coord.base_events.clone()));
                        finish_literal = coord.finish_literal;
                        final_parse = idx;
                        break 'chunks;
                    }
                    Stop::BlockFull => unreachable!("no symbol limit"),
                }
            }
        }
        segments.retain(|s| s.from < s.to);
        Resolved {
            segments,
            own,
            finish_literal,
            final_parse,
        }
    }

    /// Encode the blocks on the worker threads and hand the results, in block order, to
    /// `sink` on this thread as soon as each is ready.
    fn encode_blocks(
        &self,
        blocks: &[Block],
        parses: &[&Parse],
        mut sink: impl FnMut(&Block, &Encoded),
    ) {
        let data = self.data;
        // Blocks are small tasks; hand them out in batches to keep overhead low.
        const BATCH: usize = 4;
        let batches = blocks.len().div_ceil(BATCH);
        let slots: Slots<Vec<Encoded>> = Slots::new(batches);
        let next = AtomicUsize::new(0);
        let encode_batch = |bi: usize| -> Vec<Encoded> {
            let mut enc = BlockEncoder::new();
            blocks[bi * BATCH..((bi + 1) * BATCH).min(blocks.len())]
                .iter()
                .map(|b| {
                    let mut w = BitWriter::with_capacity((b.end_byte - b.start_byte) / 2 + 64);
                    let pieces = b.pieces.iter().map(|s| &parses[s.parse].syms[s.from..s.to]);
                    let raw = b.storable.then(|| &data[b.start_byte..b.end_byte]);
                    match enc.encode_block(&mut w, pieces, raw, b.end_byte - b.start_byte, b.last) {
                        BlockKind::Stored => Encoded::Stored,
                        _ => Encoded::Bits(w.into_bitbuf()),
                    }
                })
                .collect()
        };
        std::thread::scope(|sc| {
            for _ in 0..self.threads.min(batches) {
                sc.spawn(|| {
                    let _guard = FailOnPanic(&slots);
                    loop {
                        let bi = next.fetch_add(1, Ordering::Relaxed);
                        if bi >= batches {
                            break;
                        }
                        slots.set(bi, encode_batch(bi));
                    }
                });
            }
            for bi in 0..batches {
                for (b, e) in blocks[bi * BATCH..].iter().zip(slots.wait(bi)) {
                    sink(b, e);
                }
            }
        });
    }
}

/// Cut the true symbol stream into zlib's blocks: a block is flushed after every `nsyms`
/// symbols emitted inside the parse loop; the last block holds the rest, including the final
/// pending literal if any.
fn cut_blocks(
    total_len: usize,
    resolved: &Resolved,
    parses: &[&Parse],
    nsyms: usize,
) -> Vec<Block> {
    let finish_literal = resolved.finish_literal;
    let segs = &resolved.segments;
    let total: usize = segs.iter().map(|s| s.to - s.from).sum();
    let in_loop = total - usize::from(finish_literal);
    let full_blocks = in_loop / nsyms;
    let mut blocks = Vec::with_capacity(full_blocks + 1);
    let mut seg_i = 0usize;
    let mut seg_off = segs.first().map_or(0, |s| s.from);
    let mut start_byte = 0usize;
    for b in 0..=full_blocks {
        let last = b == full_blocks;
        let mut need = if last {
            total - full_blocks * nsyms
        } else {
            nsyms
        };
        let mut pieces = Vec::new();
        let mut last_sym: Option<(usize, usize)> = None;
        while need > 0 {
            let s = segs[seg_i];
            let take = need.min(s.to - seg_off);
            pieces.push(Segment {
                parse: s.parse,
                from: seg_off,
                to: seg_off + take,
            });
            last_sym = Some((s.parse, seg_off + take - 1));
            need -= take;
            seg_off += take;
            if seg_off == s.to && seg_i + 1 < segs.len() {
                seg_i += 1;
                seg_off = segs[seg_i].from;
            }
        }
        let (end_byte, flush_pos, parse) = if last {
            (total_len, total_len, resolved.final_parse)
        } else {
            let (p, i) = last_sym.expect("full block has symbols");
            let sym_start = parses[p].byte_of(i);
            // deflate_slow emits the symbol for byte s−1 in the iteration starting at s.
            (sym_start + sym_len(parses[p].syms[i]), sym_start + 1, p)
        };
        let base = Matcher::base_at(&parses[parse].base_events, flush_pos);
        blocks.push(Block {
            pieces,
            start_byte,
            end_byte,
            storable: start_byte >= base,
            last,
        });
        start_byte = end_byte;
    }
    blocks
}
