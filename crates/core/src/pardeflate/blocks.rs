//! Where deflate blocks end: the rule of the encoder being reproduced.
//!
//! The LZ77 parse of stock zlib (`deflate_slow` / `deflate_fast` with 15 hash bits) and of GNU
//! gzip 1.x (`deflate()` / `deflate_fast()` in its `deflate.c`) is the same symbol for symbol:
//! zlib grew out of gzip's compressor and kept its configuration table, hash function, lazy
//! evaluation and window handling. The two differ in when they end a block:
//!
//! * **zlib** flushes when its symbol buffer is full: after every `lit_bufsize − 1` symbols
//!   (`2^(memLevel + 6) − 1`);
//! * **GNU gzip** (its `trees.c`, `ct_tally`) keeps up to `LIT_BUFSIZE − 1 = 32767` symbols,
//!   and at levels 3–9 also checks after every 4096th symbol of a block whether the block
//!   already compresses well: it ends the block there when fewer than half of the symbols are
//!   matches and an upper estimate of the compressed size — 8 bits per symbol plus 5 + extra
//!   bits per distance — is under half the input bytes the block covers so far.
//!
//! The "input bytes so far" is gzip's `strstart − block_start` at the tally, which is the
//! symbol's first byte + 1 for the lazy levels (the tally happens one position after the
//! symbol starts) and the symbol's first byte for the fast levels 1–3. The final pending
//! literal that lazy evaluation emits at the end of the input never ends a block (gzip ignores
//! that tally's answer), in either encoder.
//!
//! Measured: GNU gzip 1.12 at `-1`…`-9` on file-system images, text and binaries gives the same
//! bytes as [`super::deflate_as`] with [`Encoder::GnuGzip`] (tests/pardeflate_gzip.rs).

use super::tables::{d_code, D_CODES, EXTRA_DBITS};
use super::trees::{sym_len, Sym};

/// Whose deflate implementation the output reproduces, byte for byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoder {
    /// madler zlib 1.2.x/1.3.x, `deflateInit2(level, Z_DEFLATED, ±15/31, mem_level,
    /// Z_DEFAULT_STRATEGY)`, `mem_level` in 1..=9.
    Zlib {
        /// zlib's `memLevel`: hash table size and symbol buffer (block) size.
        mem_level: u32,
    },
    /// GNU gzip 1.x's own deflate (`gzip -1` … `gzip -9`), not the zlib library.
    GnuGzip,
}

impl Encoder {
    /// The zlib `memLevel` whose hash table the encoder's parse uses (GNU gzip's 15 hash bits
    /// are zlib's memLevel 8).
    pub(crate) fn mem_level(self) -> u32 {
        match self {
            Encoder::Zlib { mem_level } => mem_level,
            Encoder::GnuGzip => 8,
        }
    }

    /// The block rule of this encoder at `level`.
    pub(crate) fn block_rule(self, level: u32) -> BlockRule {
        match self {
            Encoder::Zlib { mem_level } => BlockRule::Every((1usize << (mem_level + 6)) - 1),
            Encoder::GnuGzip => BlockRule::Gzip(GzipTally::new(level)),
        }
    }
}

/// GNU gzip's `LIT_BUFSIZE`: a block holds at most `LIT_BUFSIZE − 1` symbols.
const GZIP_LIT_BUFSIZE: usize = 0x8000;
/// GNU gzip checks whether to end a block early after every this many symbols.
const GZIP_CHECK_EVERY: usize = 0x1000;

/// A block-ending rule, fed the symbols of the current block in order.
#[derive(Clone, Debug)]
pub(crate) enum BlockRule {
    /// zlib: a block ends after exactly this many symbols.
    Every(usize),
    /// GNU gzip's `ct_tally` rule.
    Gzip(GzipTally),
}

impl BlockRule {
    /// The smallest symbol count of the current block at which [`BlockRule::add`] may answer
    /// `true` (the parser can run that far without looking at the symbols).
    pub(crate) fn next_check(&self) -> usize {
        match self {
            BlockRule::Every(n) => *n,
            BlockRule::Gzip(t) => t.next_check(),
        }
    }

    /// Tally the next symbol of the current block, the `count`-th (1-based); returns whether
    /// the block ends after it.
    #[inline]
    pub(crate) fn add(&mut self, s: Sym, count: usize) -> bool {
        match self {
            BlockRule::Every(n) => count >= *n,
            BlockRule::Gzip(t) => t.add(s),
        }
    }

    /// Start a new block.
    pub(crate) fn reset(&mut self) {
        if let BlockRule::Gzip(t) = self {
            t.reset();
        }
    }
}

/// The counters GNU gzip's `ct_tally` keeps for the current block.
#[derive(Clone, Debug)]
pub(crate) struct GzipTally {
    /// Lazy levels (4–9) tally one position after the symbol's start.
    lazy: bool,
    /// The early-end estimate runs at levels 3–9.
    estimate: bool,
    /// Symbols in the block (`last_lit`).
    symbols: usize,
    /// Matches in the block (`last_dist`).
    matches: usize,
    /// Input bytes covered by the block's symbols.
    bytes: usize,
    /// Distance code frequencies (`dyn_dtree[].Freq`).
    dist_freq: [u32; D_CODES],
}

impl GzipTally {
    fn new(level: u32) -> Self {
        GzipTally {
            lazy: level >= 4,
            estimate: level > 2,
            symbols: 0,
            matches: 0,
            bytes: 0,
            dist_freq: [0; D_CODES],
        }
    }

    fn reset(&mut self) {
        self.symbols = 0;
        self.matches = 0;
        self.bytes = 0;
        self.dist_freq = [0; D_CODES];
    }

    fn next_check(&self) -> usize {
        let full = GZIP_LIT_BUFSIZE - 1;
        if self.estimate {
            ((self.symbols / GZIP_CHECK_EVERY + 1) * GZIP_CHECK_EVERY).min(full)
        } else {
            full
        }
    }

    #[inline]
    fn add(&mut self, s: Sym) -> bool {
        let start = self.bytes;
        self.symbols += 1;
        self.bytes += sym_len(s);
        let dist = (s >> 8) as usize;
        if dist != 0 {
            self.matches += 1;
            self.dist_freq[d_code(dist - 1)] += 1;
        }
        if self.estimate && self.symbols % GZIP_CHECK_EVERY == 0 && self.ends_early(start) {
            return true;
        }
        self.symbols == GZIP_LIT_BUFSIZE - 1
    }

    /// gzip's estimate after the symbol starting `start` bytes into the block.
    #[cold]
    fn ends_early(&self, start: usize) -> bool {
        let mut out_bits = self.symbols as u64 * 8;
        for (freq, extra) in self.dist_freq.iter().zip(EXTRA_DBITS) {
            out_bits += u64::from(*freq) * (5 + u64::from(extra));
        }
        let in_length = (start + usize::from(self.lazy)) as u64;
        self.matches < self.symbols / 2 && (out_bits >> 3) < in_length / 2
    }
}

#[cfg(test)]
mod tests {
    use super::super::trees::{sym_lit, sym_match};
    use super::*;

    #[test]
    fn zlib_rule_ends_every_n_symbols() {
        let mut r = Encoder::Zlib { mem_level: 8 }.block_rule(9);
        assert_eq!(r.next_check(), 16383);
        assert!(!r.add(sym_lit(1), 16382));
        assert!(r.add(sym_lit(1), 16383));
    }

    #[test]
    fn gzip_rule_checks_every_4096_and_ends_at_32767() {
        // Incompressible-looking literals: the estimate (8 bits per symbol, one byte each)
        // never ends the block early, the buffer limit does.
        let mut r = Encoder::GnuGzip.block_rule(9);
        let mut ended = None;
        for i in 1..=40_000usize {
            assert!(i > 32767 || r.next_check() >= i);
            if r.add(sym_lit(7), i) {
                ended = Some(i);
                break;
            }
        }
        assert_eq!(ended, Some(32767));
        // Long close matches compress far below half: the first check ends the block, unless
        // half or more of the symbols are matches.
        let mut r = Encoder::GnuGzip.block_rule(6);
        let ends: Vec<bool> = (1..=4096)
            .map(|i| {
                let s = if i % 3 == 0 {
                    sym_match(1, 258)
                } else {
                    sym_lit(0)
                };
                r.add(s, i)
            })
            .collect();
        assert_eq!(ends.iter().position(|&e| e), Some(4095));
        let mut r = Encoder::GnuGzip.block_rule(6);
        assert!(!(1..=4096).any(|i| r.add(sym_match(1, 258), i)));
        // Levels 1–2 never end early.
        let mut r = Encoder::GnuGzip.block_rule(2);
        assert_eq!(r.next_check(), 32767);
        assert!(!(1..=4096).any(|i| r.add(
            if i % 3 == 0 {
                sym_match(1, 258)
            } else {
                sym_lit(0)
            },
            i
        )));
    }
}
