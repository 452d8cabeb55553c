//! Byte-exact re-implementation of stock zlib's deflate, with a parallel mode.
//!
//! [`deflate`] produces exactly the bytes that madler zlib (1.2.x/1.3.x) produces with
//! `deflateInit2(level, Z_DEFLATED, windowBits, memLevel, Z_DEFAULT_STRATEGY)` when the whole
//! input is compressed with `Z_NO_FLUSH` and then `Z_FINISH` (the result does not depend on
//! how the input is split for levels 1–9), for levels 1–9, memLevel 1–9, window bits 15, and
//! the raw (`windowBits = −15`), zlib (`15`) and gzip (`31`, header as written by zlib without
//! `deflateSetHeader` or with an all-zero `gz_header` except `os = 3`) wrappers.
//!
//! [`deflate_parallel`] produces the *same bytes* using several threads (levels 4–9; levels
//! 1–3 run single-threaded). It splits the input into chunks, parses each chunk on its own
//! thread from a hash table primed with the preceding 32 KiB, finds where each chunk's parse
//! re-synchronises with the true (sequential) parse, splices the symbol streams, cuts blocks
//! exactly where zlib's symbol buffer would fill, Huffman-codes the blocks in parallel and
//! concatenates them at bit level. See `docs/PARDEFLATE.md` for the argument and numbers.
//!
//! [`deflate_as`] / [`deflate_parallel_as`] / [`ParallelDeflateReader::with_encoder`] also
//! reproduce GNU gzip's own deflate ([`Encoder::GnuGzip`]: zlib's parse with gzip's block rule
//! and end-of-input rules, see `docs/PARDEFLATE.md`).
//!
//! The compression algorithm is zlib's, by Jean-loup Gailly and Mark Adler (zlib license);
//! this is an independent Rust implementation of it, written to be output-identical.
//! The algorithm code uses no `unsafe`; `stream.rs` uses it for its spool file only (creating,
//! mapping and releasing consumed pages), each block with a `SAFETY:` note.
//!
//! Licence: an altered port of zlib's deflate, under the zlib licence — notice kept in
//! `crates/core/src/pardeflate/LICENSE-zlib`.

mod bits;
mod blocks;
pub mod checksum;
mod feed;
mod matcher;
mod parallel;
mod sequential;
mod stream;
mod tables;
mod trees;

use bits::BitWriter;
use blocks::BlockRule;
use matcher::{Matcher, NoObserver, Stop};
use trees::BlockEncoder;
use trees::Sym;

pub use blocks::Encoder;
pub use parallel::{deflate_parallel, deflate_parallel_as, deflate_parallel_with, ParallelOptions};
pub use sequential::SequentialDeflateReader;
pub use stream::{ParallelDeflateReader, StreamOptions, MAX_SPOOLED_INPUT};

/// The container around the deflate stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wrapper {
    /// Bare deflate stream (zlib `windowBits = −15`).
    Raw,
    /// zlib wrapper: 2-byte header, Adler-32 trailer (`windowBits = 15`).
    Zlib,
    /// gzip wrapper: 10-byte header (mtime 0, no name, OS 3), CRC-32 and size trailer
    /// (`windowBits = 31`).
    Gzip,
}

/// Whether `level` and `mem_level` are supported by [`deflate`] / [`deflate_parallel`]
/// (both must be in 1..=9; level 0 and zlib's `Z_DEFAULT_COMPRESSION` (−1, i.e. 6) must be
/// mapped by the caller).
pub fn is_supported(level: u32, mem_level: u32) -> bool {
    (1..=9).contains(&level) && (1..=9).contains(&mem_level)
}

fn check_encoder(level: u32, encoder: Encoder) {
    check_params(level, encoder.mem_level());
}

fn check_params(level: u32, mem_level: u32) {
    assert!(
        is_supported(level, mem_level),
        "pardeflate supports levels 1..=9 and memLevel 1..=9 (got level {level}, memLevel {mem_level})"
    );
}

/// The wrapper header zlib writes for `level`.
fn header(wrapper: Wrapper, level: u32) -> Vec<u8> {
    match wrapper {
        Wrapper::Raw => Vec::new(),
        Wrapper::Zlib => {
            let flags = match level {
                0 | 1 => 0,
                2..=5 => 1,
                6 => 2,
                _ => 3,
            };
            let mut h: u16 = (8 + ((15 - 8) << 4)) << 8;
            h |= flags << 6;
            h += 31 - (h % 31);
            h.to_be_bytes().to_vec()
        }
        Wrapper::Gzip => {
            let xfl = if level == 9 {
                2
            } else if level < 2 {
                4
            } else {
                0
            };
            vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]
        }
    }
}

/// Checksum state for the wrapper trailer.
#[derive(Clone, Copy, Debug)]
struct Check {
    wrapper: Wrapper,
    value: u32,
    len: u64,
}

impl Check {
    fn new(wrapper: Wrapper) -> Self {
        let value = if wrapper == Wrapper::Zlib { 1 } else { 0 };
        Check {
            wrapper,
            value,
            len: 0,
        }
    }

    fn of(wrapper: Wrapper, data: &[u8]) -> Self {
        let mut c = Check::new(wrapper);
        c.value = match wrapper {
            Wrapper::Raw => 0,
            Wrapper::Zlib => checksum::adler32(1, data),
            Wrapper::Gzip => checksum::crc32(0, data),
        };
        c.len = data.len() as u64;
        c
    }

    /// The checksum of the concatenation `self ‖ next`.
    fn then(self, next: Check) -> Check {
        let value = match self.wrapper {
            Wrapper::Raw => 0,
            Wrapper::Zlib => checksum::adler32_combine(self.value, next.value, next.len),
            Wrapper::Gzip => checksum::crc32_combine(self.value, next.value, next.len),
        };
        Check {
            wrapper: self.wrapper,
            value,
            len: self.len + next.len,
        }
    }

    fn trailer(self) -> Vec<u8> {
        match self.wrapper {
            Wrapper::Raw => Vec::new(),
            Wrapper::Zlib => self.value.to_be_bytes().to_vec(),
            Wrapper::Gzip => {
                let mut t = self.value.to_le_bytes().to_vec();
                t.extend_from_slice(&(self.len as u32).to_le_bytes());
                t
            }
        }
    }
}

/// Compress `data` exactly like stock zlib's deflate, on the calling thread.
///
/// Equivalent to `deflateInit2(level, Z_DEFLATED, ±15/31, mem_level, Z_DEFAULT_STRATEGY)`
/// followed by `deflate(Z_FINISH)` over the whole input.
///
/// # Panics
/// If `level` or `mem_level` is outside 1..=9 (see [`is_supported`]).
pub fn deflate(data: &[u8], wrapper: Wrapper, level: u32, mem_level: u32) -> Vec<u8> {
    deflate_as(data, wrapper, level, Encoder::Zlib { mem_level })
}

/// Compress `data` exactly like `encoder` at `level` (1..=9), on the calling thread.
///
/// With [`Encoder::GnuGzip`] and [`Wrapper::Raw`] the result is the deflate stream inside
/// the member `gzip -<level>` writes for the same input (GNU gzip's header and trailer are the
/// caller's business: its header carries a name and time stamp zlib's does not).
///
/// # Panics
/// If `level` or the encoder's memLevel is outside 1..=9.
pub fn deflate_as(data: &[u8], wrapper: Wrapper, level: u32, encoder: Encoder) -> Vec<u8> {
    check_encoder(level, encoder);
    let mut out = BitWriter::with_capacity(data.len() / 3 + 64);
    out.put_bytes(&header(wrapper, level));
    let mut m = Matcher::for_encoder(data, level, encoder);
    let finished = BlockState::new(encoder, level).parse(&mut m, data, 0, usize::MAX, &mut out);
    debug_assert!(finished);
    let mut bytes = out.finish();
    bytes.extend_from_slice(&Check::of(wrapper, data).trailer());
    bytes
}

/// The block being built by a sequential parse, and the rule that ends it.
pub(crate) struct BlockState {
    rule: BlockRule,
    syms: Vec<Sym>,
    enc: BlockEncoder,
    /// Absolute position of the block's first byte.
    block_start: usize,
}

impl BlockState {
    pub(crate) fn new(encoder: Encoder, level: u32) -> Self {
        BlockState {
            rule: encoder.block_rule(level),
            syms: Vec::new(),
            enc: BlockEncoder::new(),
            block_start: 0,
        }
    }

    /// Parse with `m` — whose `data` starts at absolute position `origin` — until an iteration
    /// would start at `stop_at` (a position in `data`) or the input ends, encoding every block
    /// that ends into `out`. Returns whether the input ended (the last block is written).
    pub(crate) fn parse(
        &mut self,
        m: &mut Matcher<'_>,
        data: &[u8],
        origin: usize,
        stop_at: usize,
        out: &mut BitWriter,
    ) -> bool {
        loop {
            let tallied = self.syms.len();
            let why = m.run(
                &mut self.syms,
                self.rule.next_check(),
                stop_at,
                &mut NoObserver,
            );
            let last = why == Stop::Finished;
            let mut end_block = last;
            for (i, &s) in self.syms.iter().enumerate().skip(tallied) {
                end_block |= self.rule.add(s, i + 1) && !last;
            }
            if end_block {
                let block_end = m.emitted_end() + origin;
                debug_assert!(!last || block_end == origin + data.len());
                let base = m.base + origin;
                let stored = (self.block_start >= base)
                    .then(|| &data[self.block_start - origin..block_end - origin]);
                self.enc.encode_block(
                    out,
                    std::iter::once(&self.syms[..]),
                    stored,
                    block_end - self.block_start,
                    last,
                );
                self.syms.clear();
                self.rule.reset();
                self.block_start = block_end;
            }
            if last {
                return true;
            }
            if why == Stop::Position {
                return false;
            }
        }
    }
}
