//! The structure of zstd frames (RFC 8878), decoded and re-encoded bit-exact.
//!
//! [`parse`] decodes a stream of frames into what their producer chose — block boundaries and
//! types, per compressed block the literals section (raw, RLE, Huffman-coded with a new table
//! or the previous one, 1 or 4 streams, its size format) and the sequences section (the count's
//! width, the table mode of literal lengths, offsets and match lengths, and every sequence as
//! literal length, offset value and match length) — and regenerates the content, verifying
//! every frame's content size and checksum. [`encode`] writes the exact bytes back from that
//! structure with its own entropy coders: canonical Huffman codes from the described weights,
//! FSE tables and states as libzstd builds and initialises them, the bitstreams in libzstd's
//! order. Nothing is matched and no libzstd is needed: the encoder only codes what the
//! structure says, so any producer's frame (any zstd version, level, job layout) comes back as
//! it was.
//!
//! The entropy table descriptions (the Huffman tree header and the FSE normalized-count
//! headers) are carried as their bytes, since an encoder may write the same table in more than
//! one way; they are small.
//!
//! Hostile input is refused with a [`StructureError`], never a panic: windows are at most
//! [`MAX_WINDOW_SIZE`], blocks at most [`MAX_BLOCK_SIZE`], the content at most the caller's
//! limit, and every count is bounded before it is allocated. Frames that need a dictionary are
//! refused.

mod bits;
mod frame;
mod fse;
mod huffman;
mod literals;
mod sequences;
mod xxh64;

use std::fmt;

pub use frame::{
    encode_frame, repeat_coded_offset_value, resolve_offset, write_header, FrameEncoder,
};
pub use xxh64::xxh64;

/// The repeat offsets every frame starts with (RFC 8878 §3.1.2.5).
pub const INITIAL_REPEAT_OFFSETS: [usize; 3] = [1, 4, 8];
/// Largest window accepted: 128 MiB (`--long=27`, `--ultra -22`).
pub const MAX_WINDOW_SIZE: usize = 1 << 27;
/// Largest block, compressed or regenerated (`ZSTD_BLOCKSIZE_MAX`).
pub const MAX_BLOCK_SIZE: usize = 128 << 10;

/// Why a stream cannot be parsed or a structure cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructureError {
    reason: &'static str,
}

impl StructureError {
    /// An error with a fixed reason.
    pub fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// The reason, in words.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for StructureError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "zstd structure: {}", self.reason)
    }
}

impl std::error::Error for StructureError {}

/// A parsed stream: its frames and their regenerated content, concatenated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedStream {
    /// The frames in order.
    pub frames: Vec<Frame>,
    /// The content of every zstd frame, in order.
    pub content: Vec<u8>,
}

/// One frame of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A zstd frame.
    Zstd(ZstdFrame),
    /// A skippable frame: the low nibble of its magic number and its data.
    Skippable {
        /// Low 4 bits of the magic number (0x184D2A5?).
        magic_low: u8,
        /// The user data.
        data: Vec<u8>,
    },
}

/// A zstd frame's header and blocks (the checksum, when the header announces one, is the low
/// 32 bits of [`xxh64`] of the content).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZstdFrame {
    /// The frame header.
    pub header: FrameHeader,
    /// The blocks in order; the last has `last` set.
    pub blocks: Vec<Block>,
}

impl ZstdFrame {
    /// Bytes of content the frame regenerates.
    pub fn content_length(&self) -> usize {
        self.blocks
            .iter()
            .map(|block| block.content_length as usize)
            .sum()
    }
}

/// A frame header's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The frame header descriptor byte (content size flag, single segment, checksum flag,
    /// dictionary id flag).
    pub descriptor: u8,
    /// The window descriptor byte, absent in single-segment frames.
    pub window_descriptor: Option<u8>,
    /// The dictionary id (always 0: frames needing a dictionary are refused).
    pub dictionary_id: u32,
    /// The content size field's value, when present.
    pub content_size: Option<u64>,
}

/// One block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Whether this is the frame's last block.
    pub last: bool,
    /// The block type and its structure.
    pub kind: BlockKind,
    /// Bytes of content the block regenerates.
    pub content_length: u32,
}

impl Block {
    /// Appends the block's choices besides its content and sequences (what a recipe that
    /// recomputes the sequences must still carry): the last flag, the content length (LEB128),
    /// the type (0 raw, 1 RLE, 2 compressed), and for a compressed block the literals' size
    /// format, kind (0 raw, 1 RLE with its byte, 2 Huffman with the description's bytes, 3
    /// treeless), the sequence count's width and each table mode (0 predefined, 1 RLE with its
    /// symbol, 2 FSE with the description's bytes, 3 repeat).
    pub fn write_choices(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.last));
        let mut length = self.content_length;
        while length >= 0x80 {
            out.push(length as u8 | 0x80);
            length >>= 7;
        }
        out.push(length as u8);
        let BlockKind::Compressed(compressed) = &self.kind else {
            out.push(u8::from(matches!(self.kind, BlockKind::Rle(_))));
            return;
        };
        out.extend_from_slice(&[2, compressed.literals.size_format]);
        match &compressed.literals.kind {
            LiteralsKind::Raw => out.push(0),
            LiteralsKind::Rle(byte) => out.extend_from_slice(&[1, *byte]),
            LiteralsKind::Compressed { description } => {
                out.push(2);
                out.extend_from_slice(description);
            }
            LiteralsKind::Treeless => out.push(3),
        }
        out.push(compressed.sequences.count_bytes);
        for mode in compressed.sequences.modes.iter().flatten() {
            match mode {
                TableMode::Predefined => out.push(0),
                TableMode::Rle(symbol) => out.extend_from_slice(&[1, *symbol]),
                TableMode::Compressed(description) => {
                    out.push(2);
                    out.extend_from_slice(description);
                }
                TableMode::Repeat => out.push(3),
            }
        }
    }
}

/// A block's type and structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Stored content.
    Raw,
    /// One byte repeated `content_length` times.
    Rle(u8),
    /// Literals and sequences.
    Compressed(CompressedBlock),
}

/// A compressed block's two sections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompressedBlock {
    /// The literals section.
    pub literals: LiteralsSection,
    /// The sequences section.
    pub sequences: SequencesSection,
}

/// A literals section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiteralsSection {
    /// How the literals are stored.
    pub kind: LiteralsKind,
    /// The header's 2-bit size format: for Huffman-coded literals 0 means one stream with
    /// 10-bit sizes, 1/2/3 four streams with 10/14/18-bit sizes; for raw and RLE literals it
    /// selects a 1 (0 or 2), 2 (1) or 3 (3) byte header.
    pub size_format: u8,
    /// The literals themselves.
    pub literals: Vec<u8>,
}

/// How a literals section stores its literals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiteralsKind {
    /// Stored as they are.
    Raw,
    /// One byte repeated.
    Rle(u8),
    /// Huffman-coded with a new table, whose description's bytes are carried.
    Compressed {
        /// The Huffman tree description as it appears in the frame.
        description: Vec<u8>,
    },
    /// Huffman-coded with the previous compressed section's table.
    Treeless,
}

/// A sequences section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequencesSection {
    /// Bytes the sequence count takes (1, 2 or 3).
    pub count_bytes: u8,
    /// Table modes of literal lengths, offsets and match lengths (absent without sequences).
    pub modes: Option<[TableMode; 3]>,
    /// The sequences in order.
    pub sequences: Vec<Sequence>,
}

/// How a sequences section gets one of its three FSE tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableMode {
    /// The format's predefined distribution.
    Predefined,
    /// Every sequence has this code.
    Rle(u8),
    /// A new table, whose normalized-count description's bytes are carried.
    Compressed(Vec<u8>),
    /// The previous block's table.
    Repeat,
}

/// One sequence as coded: literals to copy, then a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sequence {
    /// Literals copied before the match.
    pub literal_length: u32,
    /// The coded offset value: 1–3 select a repeat offset, larger values are offset + 3.
    pub offset_value: u32,
    /// Bytes the match copies (at least 3).
    pub match_length: u32,
}

/// Parses every frame of `input` (zstd and skippable frames back to back), regenerating at
/// most `max_content` bytes of content.
pub fn parse(input: &[u8], max_content: usize) -> Result<ParsedStream, StructureError> {
    frame::parse(input, max_content)
}

/// Writes the exact bytes of every frame of `stream` from its structure and content.
pub fn encode(stream: &ParsedStream) -> Result<Vec<u8>, StructureError> {
    frame::encode(stream)
}

#[cfg(test)]
mod tests;
