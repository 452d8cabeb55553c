//! The LZ77 parser: zlib's `deflate_fast` (levels 1–3) and `deflate_slow` (levels 4–9) with
//! `longest_match`, hash chains and lazy evaluation.
//!
//! The algorithm is zlib's (deflate.c, Jean-loup Gailly and Mark Adler); the data layout is
//! ours. zlib keeps a 64 KiB sliding window and 16-bit window positions; we index the whole
//! input with absolute positions instead and *simulate* the window only where it can change
//! a decision:
//!
//! * the window base `B` (absolute position of `window[0]`) advances by 32 KiB exactly when
//!   zlib's `fill_window` would slide, i.e. at the first iteration start `s` with
//!   `s ≥ max(B + 65274, min(E, B + 65536) − 261)` (lookahead short of `MIN_LOOKAHEAD` and
//!   `strstart ≥ w_size + MAX_DIST`);
//! * `window[0]` is zlib's `NIL`: a hash head equal to `B` is never searched, and chain walks
//!   stop at `limit = max(s − MAX_DIST, B)`;
//! * a block may only be stored if its first byte is still in the window (`block_start ≥ B`).
//!
//! Everything else zlib does with the window (sliding the hash tables, zeroing the bytes past
//! the input, re-seeding the rolling hash in `fill_window`) provably does not change its
//! output: the hash of a position is a function of its three bytes, chain order is insertion
//! order, and a match can never be extended past the end of the input.
//!
//! Like zlib, hash table entries are 16-bit window positions (`pos − B`, 0 = `NIL`) and are
//! slid down by 32 KiB (saturating at `NIL`) whenever the window base advances, so inputs of
//! any size work and the tables stay as small as zlib's.

use super::blocks::Encoder;
use super::tables::{MAX_MATCH, MIN_MATCH};
use super::trees::{sym_lit, sym_match, Sym};

/// zlib's `w_size` (windowBits 15).
pub(crate) const WSIZE: usize = 1 << 15;
const WMASK: usize = WSIZE - 1;
/// zlib's `MIN_LOOKAHEAD`.
const MIN_LOOKAHEAD: usize = MAX_MATCH + MIN_MATCH + 1;
/// zlib's `MAX_DIST`: farthest match distance.
const MAX_DIST: usize = WSIZE - MIN_LOOKAHEAD;
/// Length-3 matches farther than this are dropped by `deflate_slow`.
const TOO_FAR: usize = 4096;
/// Largest hash table (memLevel 9).
const HASH_MAX: usize = 1 << 16;

/// One row of zlib's `configuration_table`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    good: usize,
    lazy: usize,
    nice: usize,
    chain: usize,
    slow: bool,
}

/// zlib's `configuration_table` for levels 1..=9 (index 0 unused).
const CONFIG: [Config; 10] = [
    Config {
        good: 0,
        lazy: 0,
        nice: 0,
        chain: 0,
        slow: false,
    },
    Config {
        good: 4,
        lazy: 4,
        nice: 8,
        chain: 4,
        slow: false,
    },
    Config {
        good: 4,
        lazy: 5,
        nice: 16,
        chain: 8,
        slow: false,
    },
    Config {
        good: 4,
        lazy: 6,
        nice: 32,
        chain: 32,
        slow: false,
    },
    Config {
        good: 4,
        lazy: 4,
        nice: 16,
        chain: 16,
        slow: true,
    },
    Config {
        good: 8,
        lazy: 16,
        nice: 32,
        chain: 32,
        slow: true,
    },
    Config {
        good: 8,
        lazy: 16,
        nice: 128,
        chain: 128,
        slow: true,
    },
    Config {
        good: 8,
        lazy: 32,
        nice: 128,
        chain: 256,
        slow: true,
    },
    Config {
        good: 32,
        lazy: 128,
        nice: 258,
        chain: 1024,
        slow: true,
    },
    Config {
        good: 32,
        lazy: 258,
        nice: 258,
        chain: 4096,
        slow: true,
    },
];

/// The lazy-evaluation state at the start of a loop iteration. Together with the position and
/// the window contents it determines everything the parser does next (levels 4–9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LazyState {
    /// zlib's `match_length` (becomes `prev_length` in the iteration).
    pub match_length: usize,
    /// zlib's `match_start` (meaningful only when `match_length ≥ 3`).
    pub match_start: usize,
    /// zlib's `match_available`: the byte before `strstart` is not yet emitted.
    pub match_available: bool,
}

impl LazyState {
    /// The state at the start of a stream.
    pub(crate) const INITIAL: LazyState = LazyState {
        match_length: MIN_MATCH - 1,
        match_start: 0,
        match_available: false,
    };
}

/// Why [`Matcher::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The symbol buffer reached `max_syms` (zlib would flush a block here).
    BlockFull,
    /// An iteration was about to start at or beyond `stop_at`.
    Position,
    /// The observer asked to stop at the start of an iteration.
    Observer,
    /// The input is exhausted; the stream is finished.
    Finished,
}

/// Hook called at the start of every loop iteration whose state is "canonical"
/// (`match_length < 3`, so the state is just `match_available`). Used by the parallel driver
/// to record and detect synchronisation points.
pub(crate) trait Observer {
    /// Whether the hook is used at all (lets the compiler drop the calls).
    const ACTIVE: bool;
    /// Called at iteration start `pos`; return `true` to stop before the iteration.
    fn checkpoint(&mut self, pos: usize, match_available: bool) -> bool;
}

/// An observer that does nothing.
pub(crate) struct NoObserver;

impl Observer for NoObserver {
    const ACTIVE: bool = false;
    #[inline(always)]
    fn checkpoint(&mut self, _pos: usize, _match_available: bool) -> bool {
        false
    }
}

/// The LZ77 parser over a whole input buffer.
pub(crate) struct Matcher<'a> {
    data: &'a [u8],
    head: Box<[u16; HASH_MAX]>,
    prev: Box<[u16; WSIZE]>,
    hash_size: usize,
    hash_shift: u32,
    hash_mask: u32,
    cfg: Config,
    /// zlib's `strstart` (absolute).
    pub(crate) strstart: usize,
    /// Lazy state at `strstart`.
    pub(crate) state: LazyState,
    /// Simulated window base `B`.
    pub(crate) base: usize,
    slide_at: usize,
    /// `(position, new base)` for every change of `base`, including the one set by `reset`.
    pub(crate) base_events: Vec<(usize, usize)>,
    /// Set when the final pending literal was emitted at the end of the input.
    pub(crate) finish_literal: bool,
    /// GNU gzip's end-of-input behaviour (see [`Matcher::gnu_gzip`]).
    gzip_end: bool,
    /// GNU gzip has seen the end of its input (no more window slides).
    eof_seen: bool,
    /// Absolute position of `data[0]` (a multiple of 32 KiB) when `data` is a piece of the
    /// input (see [`Matcher::with_origin`]).
    origin: usize,
}

/// GNU gzip searches for matches only while `strstart ≤ window_size − MIN_LOOKAHEAD` in
/// window coordinates.
const GZIP_MAX_SEARCH_START: usize = 2 * WSIZE - MIN_LOOKAHEAD;

/// Parallel parsers for GNU gzip must not start (or synchronise) this close to the end of the
/// input: the end-of-input rules depend on the window base, which a chunk parser knows only
/// once it has run past its first slide (within 64 KiB of its start).
pub(crate) const GZIP_END_ZONE: usize = 4 * WSIZE;

impl<'a> Matcher<'a> {
    /// A parser for `data` at `level` (1..=9) and `mem_level` (1..=9), positioned at 0.
    pub(crate) fn new(data: &'a [u8], level: u32, mem_level: u32) -> Self {
        assert!((1..=9).contains(&level) && (1..=9).contains(&mem_level));
        let hash_bits = mem_level + 7;
        let mut m = Matcher {
            data,
            head: vec![0u16; HASH_MAX]
                .into_boxed_slice()
                .try_into()
                .expect("size"),
            prev: vec![0u16; WSIZE]
                .into_boxed_slice()
                .try_into()
                .expect("size"),
            hash_size: 1 << hash_bits,
            hash_shift: hash_bits.div_ceil(3),
            hash_mask: (1 << hash_bits) - 1,
            cfg: CONFIG[level as usize],
            strstart: 0,
            state: LazyState::INITIAL,
            base: 0,
            slide_at: 0,
            base_events: Vec::new(),
            finish_literal: false,
            gzip_end: false,
            eof_seen: false,
            origin: 0,
        };
        m.set_base(0, 0);
        m
    }

    /// A parser for `data` that reproduces `encoder` at `level`, positioned at 0.
    pub(crate) fn for_encoder(data: &'a [u8], level: u32, encoder: Encoder) -> Self {
        let m = Matcher::new(data, level, encoder.mem_level());
        match encoder {
            Encoder::Zlib { .. } => m,
            Encoder::GnuGzip => m.gnu_gzip(),
        }
    }

    /// `data` is the input from absolute position `origin` (a multiple of 32 KiB) to its end:
    /// positions stay relative to `data`, which preserves every window computation; only GNU
    /// gzip's stale window bytes depend on the absolute position.
    pub(crate) fn with_origin(mut self, origin: usize) -> Self {
        debug_assert_eq!(origin % WSIZE, 0);
        self.origin = origin;
        self
    }

    /// Follow GNU gzip rather than zlib at the end of the input. The parse differs only in the
    /// last 261 bytes: gzip reads its input until `read` returns 0 and then never slides the
    /// window again (zlib keeps sliding), does not search for matches past window position
    /// 65274, and compares candidates up to 258 bytes whatever the lookahead — reading the
    /// stale window bytes beyond the input ([`Matcher::gzip_byte`]) — then cuts the match to
    /// the lookahead. See `blocks.rs` for the block rule.
    pub(crate) fn gnu_gzip(mut self) -> Self {
        self.gzip_end = true;
        let base = self.base;
        self.base_events.clear();
        self.set_base(0, base);
        self
    }

    fn set_base(&mut self, pos: usize, base: usize) {
        self.base = base;
        self.base_events.push((pos, base));
        let end = self.data.len();
        self.slide_at = if self.gzip_end && self.eof_seen {
            usize::MAX
        } else if self.gzip_end && end <= base + 2 * WSIZE {
            // The whole input is in the window: the next fill call finds its end.
            end.saturating_sub(MIN_LOOKAHEAD - 1)
        } else {
            (base + 2 * WSIZE - MIN_LOOKAHEAD)
                .max(end.min(base + 2 * WSIZE).saturating_sub(MIN_LOOKAHEAD - 1))
        };
    }

    /// GNU gzip's `fill_window` calls at iteration start `s` (called when `s ≥ slide_at`):
    /// while the window is full a call slides it exactly like zlib; the first call after the
    /// whole input is in the window finds the end of the input (sliding once more if
    /// `strstart ≥ 65274`) and is the last one.
    #[cold]
    fn gzip_fill(&mut self, s: usize) {
        let end = self.data.len();
        if end > self.base + 2 * WSIZE {
            self.slide(s);
            if s < self.slide_at {
                return;
            }
        }
        self.eof_seen = true;
        if s >= self.base + 2 * WSIZE - MIN_LOOKAHEAD {
            self.slide(s);
        } else {
            self.slide_at = usize::MAX;
        }
    }

    /// The byte GNU gzip's window holds at absolute position `p`: the input, or past its end
    /// two zeros (gzip clears `MIN_MATCH − 1` bytes at end of input) followed by what the
    /// window slot held before — the byte 32 KiB earlier once the window has slid, else the
    /// zero of a never-written slot.
    fn gzip_byte(&self, p: usize) -> u8 {
        let end = self.data.len();
        if p < end {
            self.data[p]
        } else if p < end + MIN_MATCH - 1 || self.origin + p < 2 * WSIZE {
            0
        } else {
            self.data[p - WSIZE]
        }
    }

    /// The window bookkeeping of `fill_window` at iteration start `s ≥ slide_at`.
    #[cold]
    fn fill(&mut self, s: usize) {
        if self.gzip_end {
            self.gzip_fill(s);
        } else {
            self.slide(s);
        }
    }

    /// zlib's `fill_window` slide at iteration start `s`: advance the window base by 32 KiB
    /// and slide the hash tables (`slide_hash`).
    #[cold]
    fn slide(&mut self, s: usize) {
        self.set_base(s, self.base + WSIZE);
        fn slide_table(t: &mut [u16]) {
            for e in t {
                *e = e.saturating_sub(WSIZE as u16);
            }
        }
        slide_table(&mut self.head[..self.hash_size]);
        slide_table(&mut self.prev[..]);
    }

    /// Restart the parser at `pos` with lazy state `state` and window base `base`, rebuilding
    /// the hash chains from the 32 KiB before `pos` (for levels 4–9 every position before an
    /// iteration start has been inserted, so this reproduces zlib's tables exactly).
    pub(crate) fn reset(&mut self, pos: usize, state: LazyState, base: usize) {
        self.head.iter_mut().for_each(|e| *e = 0);
        // GNU gzip parses are never restarted after the fill call that found the end.
        debug_assert!(!self.gzip_end || pos + MIN_LOOKAHEAD <= self.data.len() || pos == 0);
        self.eof_seen = false;
        self.set_base(pos, base);
        // Positions before the window base are NIL in zlib's tables; leaving them out gives
        // the same chains.
        let from = pos.saturating_sub(WSIZE).max(base);
        let upto = pos.min(self.data.len().saturating_sub(MIN_MATCH - 1));
        let mut h = self.hash_seed(from);
        for p in from..upto {
            self.insert(p, &mut h);
        }
        self.strstart = pos;
        self.state = state;
        self.finish_literal = false;
    }

    /// The lowest window base zlib can have at an iteration start `pos` (see the module docs:
    /// the true base is this or one slide more, and the parser catches up at its first
    /// iteration start past the slide threshold).
    pub(crate) fn base_guess(pos: usize) -> usize {
        let lowest = pos.saturating_sub(WSIZE - 2);
        lowest / WSIZE * WSIZE
    }

    /// Window base in effect at iteration start `pos`, from `base_events`.
    pub(crate) fn base_at(events: &[(usize, usize)], pos: usize) -> usize {
        let i = events.partition_point(|&(p, _)| p <= pos);
        events[i.saturating_sub(1)].1
    }

    /// The rolling hash primed with the first two bytes at `p` (zlib's hash re-seeding):
    /// the next [`Matcher::insert`] must be for position `p`.
    #[inline(always)]
    fn hash_seed(&self, p: usize) -> u32 {
        let d = self.data;
        if p + 1 < d.len() {
            ((u32::from(d[p]) << self.hash_shift) ^ u32::from(d[p + 1])) & self.hash_mask
        } else {
            0
        }
    }

    /// zlib's INSERT_STRING: link `p` into its hash chain; returns the previous head
    /// (window position, 0 = NIL). `ins_h` is the rolling hash of the previous position
    /// (or a [`Matcher::hash_seed`] for `p`); as in zlib, after three updates the hash
    /// depends only on the three bytes at `p`.
    #[inline(always)]
    fn insert(&mut self, p: usize, ins_h: &mut u32) -> u16 {
        *ins_h = ((*ins_h << self.hash_shift) ^ u32::from(self.data[p + 2])) & self.hash_mask;
        let h = *ins_h as usize & (HASH_MAX - 1);
        let old = self.head[h];
        self.prev[p & WMASK] = old;
        self.head[h] = (p - self.base) as u16;
        old
    }

    /// zlib's `longest_match`. Returns the match length (≥ `prev_length`, ≤ lookahead) and
    /// updates `match_start` only when a longer match than `prev_length` is found.
    #[inline(always)]
    fn longest_match(
        &self,
        s: usize,
        cur_head: u16,
        prev_length: usize,
        lookahead: usize,
        match_start: &mut usize,
    ) -> usize {
        let data = self.data;
        let (mut chain, limit) = self.chain_bounds(s, prev_length);
        let nice = self.cfg.nice.min(lookahead);
        let cap = MAX_MATCH.min(lookahead);
        let mut best_len = prev_length;
        if best_len >= cap {
            return best_len.min(lookahead);
        }
        let base = self.base;
        let scan = &data[s..s + cap];
        // Every candidate byte read below lies before s + cap (m < s, best_len < cap).
        // Table entries are window positions: they index `win` directly, `prev` by their low
        // bits (the base is a multiple of WSIZE).
        let win = &data[base..s + cap];
        let load16 = |i: usize| -> u16 { u16::from_le_bytes(win[i..i + 2].try_into().unwrap()) };
        let start16 = u16::from_le_bytes([scan[0], scan[1]]);
        let mut end16 = u16::from_le_bytes([scan[best_len - 1], scan[best_len]]);
        let prev = &*self.prev;
        let mut cur = cur_head;
        loop {
            let m = cur as usize;
            // Quick rejection of candidates that cannot beat best_len (zlib's scan_end
            // test, two bytes at a time).
            if load16(m + best_len - 1) == end16 && load16(m) == start16 {
                let len = common_prefix(scan, &win[m..m + cap]);
                if len > best_len {
                    *match_start = base + m;
                    best_len = len;
                    if len >= nice {
                        break;
                    }
                    end16 = u16::from_le_bytes([scan[best_len - 1], scan[best_len]]);
                }
            }
            cur = prev[m & WMASK];
            if cur <= limit {
                break;
            }
            chain -= 1;
            if chain == 0 {
                break;
            }
        }
        best_len.min(lookahead)
    }

    /// The chain walk's length (a quarter once `prev_length` is already good) and its limit:
    /// window positions at or below it are farther than `MAX_DIST` from `s` (or `NIL`).
    #[inline(always)]
    fn chain_bounds(&self, s: usize, prev_length: usize) -> (usize, u16) {
        let mut chain = self.cfg.chain;
        if prev_length >= self.cfg.good {
            chain >>= 2;
        }
        let s_w = s - self.base;
        let limit = if s_w > MAX_DIST {
            (s_w - MAX_DIST) as u16
        } else {
            0
        };
        (chain, limit)
    }

    /// GNU gzip's `longest_match` within 258 bytes of the end of the input: candidates are
    /// compared over 258 bytes including the stale bytes past the end, `nice_match` is not
    /// cut to the lookahead; the result is cut to the lookahead afterwards (by gzip's caller).
    #[cold]
    fn longest_match_gzip_end(
        &self,
        s: usize,
        cur_head: u16,
        prev_length: usize,
        lookahead: usize,
        match_start: &mut usize,
    ) -> usize {
        let (mut chain, limit) = self.chain_bounds(s, prev_length);
        let nice = self.cfg.nice;
        let mut scan = [0u8; MAX_MATCH];
        for (i, b) in scan.iter_mut().enumerate() {
            *b = self.gzip_byte(s + i);
        }
        let mut best_len = prev_length;
        let base = self.base;
        let mut cur = cur_head;
        loop {
            let m = base + cur as usize;
            if self.gzip_byte(m + best_len) == scan[best_len]
                && self.gzip_byte(m + best_len - 1) == scan[best_len - 1]
                && self.gzip_byte(m) == scan[0]
                && self.gzip_byte(m + 1) == scan[1]
            {
                // Byte 2 matches by the hash; gzip compares from byte 3 on.
                let mut len = 3;
                while len < MAX_MATCH && self.gzip_byte(m + len) == scan[len] {
                    len += 1;
                }
                if len > best_len {
                    *match_start = m;
                    best_len = len;
                    if len >= nice {
                        break;
                    }
                }
            }
            cur = self.prev[cur as usize & WMASK];
            if cur <= limit {
                break;
            }
            chain -= 1;
            if chain == 0 {
                break;
            }
        }
        best_len.min(lookahead)
    }

    /// The match search of the encoder at iteration start `s`.
    #[inline(always)]
    fn find_match(
        &self,
        s: usize,
        cur_head: u16,
        prev_length: usize,
        lookahead: usize,
        match_start: &mut usize,
    ) -> usize {
        if self.gzip_end {
            if s - self.base > GZIP_MAX_SEARCH_START {
                return MIN_MATCH - 1;
            }
            if lookahead < MAX_MATCH {
                return self.longest_match_gzip_end(
                    s,
                    cur_head,
                    prev_length,
                    lookahead,
                    match_start,
                );
            }
        }
        self.longest_match(s, cur_head, prev_length, lookahead, match_start)
    }

    /// Is `head` (window position) a usable hash head for position `s`?
    #[inline(always)]
    fn usable_head(&self, s: usize, head: u16) -> bool {
        head != 0 && s - (self.base + head as usize) <= MAX_DIST
    }

    /// Parse from `strstart`, appending symbols to `syms`, until `syms.len() == max_syms`
    /// after an emission, an iteration would start at or beyond `stop_at`, the observer
    /// stops, or the input ends.
    pub(crate) fn run<O: Observer>(
        &mut self,
        syms: &mut Vec<Sym>,
        max_syms: usize,
        stop_at: usize,
        obs: &mut O,
    ) -> Stop {
        if self.cfg.slow {
            self.run_slow(syms, max_syms, stop_at, obs)
        } else {
            self.run_fast(syms, max_syms, stop_at, obs)
        }
    }

    fn run_slow<O: Observer>(
        &mut self,
        syms: &mut Vec<Sym>,
        max_syms: usize,
        stop_at: usize,
        obs: &mut O,
    ) -> Stop {
        let data = self.data;
        let end = data.len();
        let mut s = self.strstart;
        let mut ml = self.state.match_length;
        let mut ms = self.state.match_start;
        let mut avail = self.state.match_available;
        let lazy = self.cfg.lazy;
        // Positions are inserted consecutively from `s` (until the last two bytes).
        let mut ins_h = self.hash_seed(s);
        let stop = loop {
            if s >= stop_at {
                break Stop::Position;
            }
            if O::ACTIVE && ml < MIN_MATCH && obs.checkpoint(s, avail) {
                break Stop::Observer;
            }
            if s >= self.slide_at {
                self.fill(s);
            }
            let lookahead = end - s;
            if lookahead == 0 {
                if avail {
                    syms.push(sym_lit(data[s - 1]));
                    avail = false;
                    self.finish_literal = true;
                }
                break Stop::Finished;
            }
            let mut head = 0;
            if lookahead >= MIN_MATCH {
                head = self.insert(s, &mut ins_h);
            }
            let prev_length = ml;
            let prev_match = ms;
            ml = MIN_MATCH - 1;
            if prev_length < lazy && self.usable_head(s, head) {
                ml = self.find_match(s, head, prev_length, lookahead, &mut ms);
                if ml == MIN_MATCH && s - ms > TOO_FAR {
                    ml = MIN_MATCH - 1;
                }
            }
            if prev_length >= MIN_MATCH && ml <= prev_length {
                let max_insert = end - MIN_MATCH;
                syms.push(sym_match(s - 1 - prev_match, prev_length));
                let last = (s + prev_length - 2).min(max_insert);
                let mut p = s + 1;
                while p <= last {
                    self.insert(p, &mut ins_h);
                    p += 1;
                }
                s += prev_length - 1;
                avail = false;
                ml = MIN_MATCH - 1;
                if syms.len() >= max_syms {
                    break Stop::BlockFull;
                }
            } else if avail {
                syms.push(sym_lit(data[s - 1]));
                s += 1;
                if syms.len() >= max_syms {
                    break Stop::BlockFull;
                }
            } else {
                avail = true;
                s += 1;
            }
        };
        self.strstart = s;
        self.state = LazyState {
            match_length: ml,
            match_start: ms,
            match_available: avail,
        };
        stop
    }

    fn run_fast<O: Observer>(
        &mut self,
        syms: &mut Vec<Sym>,
        max_syms: usize,
        stop_at: usize,
        obs: &mut O,
    ) -> Stop {
        let data = self.data;
        let end = data.len();
        let mut s = self.strstart;
        let max_insert_length = self.cfg.lazy;
        let mut ms = self.state.match_start;
        let mut ins_h = self.hash_seed(s);
        let stop = loop {
            if s >= stop_at {
                break Stop::Position;
            }
            if O::ACTIVE && obs.checkpoint(s, false) {
                break Stop::Observer;
            }
            if s >= self.slide_at {
                self.fill(s);
            }
            let lookahead = end - s;
            if lookahead == 0 {
                break Stop::Finished;
            }
            let mut head = 0;
            if lookahead >= MIN_MATCH {
                head = self.insert(s, &mut ins_h);
            }
            let mut ml = MIN_MATCH - 1;
            if self.usable_head(s, head) {
                ml = self.find_match(s, head, MIN_MATCH - 1, lookahead, &mut ms);
            }
            if ml >= MIN_MATCH {
                syms.push(sym_match(s - ms, ml));
                let rest = lookahead - ml;
                if ml <= max_insert_length && rest >= MIN_MATCH {
                    for p in s + 1..s + ml {
                        self.insert(p, &mut ins_h);
                    }
                    s += ml;
                } else {
                    s += ml;
                    ins_h = self.hash_seed(s);
                }
            } else {
                syms.push(sym_lit(data[s]));
                s += 1;
            }
            if syms.len() >= max_syms {
                break Stop::BlockFull;
            }
        };
        self.strstart = s;
        self.state = LazyState {
            match_length: MIN_MATCH - 1,
            match_start: ms,
            match_available: false,
        };
        stop
    }

    /// First byte not yet covered by an emitted symbol.
    pub(crate) fn emitted_end(&self) -> usize {
        if self.state.match_available {
            self.strstart - 1
        } else {
            self.strstart
        }
    }
}

/// Length of the common prefix of `a` and `b` (equal lengths, ≤ 258).
#[inline(always)]
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().unwrap())
            ^ u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        if x != 0 {
            return i + (x.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}
