//! zstd frames rebuilt from their content and a structure blob (the extended format's
//! `zstd_reconstruct` recipe, docs/EXTENDED-FORMAT.md).
//!
//! A frame made by libzstd's level-3 compressor (`dfast`; the zstd CLI's default level, as
//! Yocto and Debian build images) is rebuilt without that libzstd: the device recomputes every
//! block's sequences with [`crate::codec::zstd_parse`], takes from the blob what the parse does
//! not decide — the frame header, each block's type and length, and for compressed blocks the
//! literals and sequences section modes with their entropy table descriptions — and writes the
//! block with [`crate::codec::zstd_structure`]'s encoder. Blocks whose sequences the port does
//! not find ("exceptions") carry them in full.
//!
//! Codec 1 ([`CODEC_DFAST`]), version 1 ([`VERSION_1`]): the blob ([`Structure::write`],
//! [`Structure::read`]) is a sequence of bytes and LEB128 numbers; every number and length in
//! it is untrusted and bounded before anything is allocated. A malformed blob, or a structure
//! that does not encode to a frame of the recipe's length, is [`code::EXT_ZSTD_REBUILD_FAILED`];
//! an unknown codec or version is [`code::EXT_ZSTD_REBUILD_UNSUPPORTED`].

use std::io::{Cursor, Read};

use super::zstd_parse::{self, BlockShape, DfastParams, DfastVersion, Producer, Threading};
use super::zstd_structure::{
    self as zs, Block, BlockKind, CompressedBlock, FrameEncoder, FrameHeader, LiteralsKind,
    LiteralsSection, Sequence, SequencesSection, StructureError, TableMode, MAX_BLOCK_SIZE,
};
use crate::error::{code, Error, Result};

/// Codec 1: libzstd's level-3 (`dfast`) parse, recomputed on the device.
pub const CODEC_DFAST: u64 = 1;
/// Version 1 of codec 1: the parse of libzstd 1.5.2–1.5.6 (the blob format of this module).
pub const VERSION_1: u64 = 1;
/// Number of the recipe's numbers (`[codec, version]`).
pub const NUMBER_COUNT: usize = 2;
/// Largest job size a blob may name (each job is compressed from memory).
pub const MAX_JOB_SIZE: u64 = 256 << 20;
/// Largest content a recipe may rebuild: the parse holds the content in memory.
pub const MAX_CONTENT: u64 = 1 << 30;
/// Memory besides the content, the frame and the parse's hash tables: one block's sequences,
/// literals and encoding buffers.
const BLOCK_MEMORY: u64 = 4 << 20;

/// Refuses a codec or version this applier does not know (39005; nothing is produced).
pub fn check_codec(codec: u64, version: u64) -> Result<()> {
    if codec == CODEC_DFAST && version == VERSION_1 {
        return Ok(());
    }
    Err(Error::new(
        code::EXT_ZSTD_REBUILD_UNSUPPORTED,
        format!(
            "zstd_reconstruct: codec {codec} version {version} is unknown to this applier; \
             update the delta processor or use the full image"
        ),
    ))
}

fn failed(detail: impl std::fmt::Display) -> Error {
    Error::new(
        code::EXT_ZSTD_REBUILD_FAILED,
        format!("zstd_reconstruct: {detail}"),
    )
}

/// A block's sequences: recomputed on the device, or carried (an exception).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockSequences {
    /// The port's parse gives them.
    Recomputed,
    /// Carried in full.
    Carried(Vec<Sequence>),
}

/// What a compressed block's encoding chose besides its sequences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompressedChoices {
    /// The literals section's kind (its literals come from the content and the sequences).
    pub literals: LiteralsKind,
    /// The literals header's size format.
    pub literals_size_format: u8,
    /// Bytes of the sequence count (1–3).
    pub count_bytes: u8,
    /// The three table modes (absent without sequences).
    pub modes: Option<[TableMode; 3]>,
    /// Where the sequences come from.
    pub sequences: BlockSequences,
}

/// One block of the structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockChoice {
    /// Bytes of content the block regenerates.
    pub content_length: u32,
    /// Its type: raw, RLE (the byte is the content's), or compressed with these choices.
    pub kind: BlockChoiceKind,
}

/// A block's type in the structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockChoiceKind {
    /// Stored.
    Raw,
    /// One byte repeated.
    Rle,
    /// Literals and sequences.
    Compressed(Box<CompressedChoices>),
}

/// Everything the blob carries: the producer, the frame header, the blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Structure {
    /// The producer whose parse is recomputed.
    pub producer: Producer,
    /// The frame header descriptor byte (no dictionary id).
    pub descriptor: u8,
    /// The window descriptor byte (absent in single-segment frames).
    pub window_descriptor: Option<u8>,
    /// The blocks in order.
    pub blocks: Vec<BlockChoice>,
}

const BLOCK_RAW: u8 = 0;
const BLOCK_RLE: u8 = 1;
const BLOCK_COMPRESSED: u8 = 2;
const BLOCK_CARRIED: u8 = 4;
const THREADING_SINGLE: u8 = 0;
const THREADING_STREAMING: u8 = 1;
const THREADING_JOBS: u8 = 2;

fn put_number(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_number(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

impl Structure {
    /// The structure of a parsed frame for `producer`, carrying in full the sequences of the
    /// blocks listed in `carried` (block numbers).
    pub fn of_frame(frame: &zs::ZstdFrame, producer: Producer, carried: &[usize]) -> Structure {
        let blocks = frame.blocks.iter().enumerate().map(|(number, block)| {
            let kind = match &block.kind {
                BlockKind::Raw => BlockChoiceKind::Raw,
                BlockKind::Rle(_) => BlockChoiceKind::Rle,
                BlockKind::Compressed(c) => {
                    let sequences = if carried.contains(&number) {
                        BlockSequences::Carried(c.sequences.sequences.clone())
                    } else {
                        BlockSequences::Recomputed
                    };
                    BlockChoiceKind::Compressed(Box::new(CompressedChoices {
                        literals: c.literals.kind.clone(),
                        literals_size_format: c.literals.size_format,
                        count_bytes: c.sequences.count_bytes,
                        modes: c.sequences.modes.clone(),
                        sequences,
                    }))
                }
            };
            BlockChoice {
                content_length: block.content_length,
                kind,
            }
        });
        Structure {
            producer,
            descriptor: frame.header.descriptor,
            window_descriptor: frame.header.window_descriptor,
            blocks: blocks.collect(),
        }
    }

    /// The blob's bytes (codec 1, version 1; docs/EXTENDED-FORMAT.md).
    pub fn write(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let p = self.producer.params;
        out.extend_from_slice(&[
            p.window_log as u8,
            p.hash_log as u8,
            p.chain_log as u8,
            p.min_match as u8,
        ]);
        match self.producer.threading {
            Threading::Single => out.push(THREADING_SINGLE),
            Threading::Streaming => out.push(THREADING_STREAMING),
            Threading::Jobs { job_size, overlap } => {
                out.push(THREADING_JOBS);
                put_number(&mut out, job_size as u64);
                put_number(&mut out, overlap as u64);
            }
        }
        out.push(self.descriptor);
        out.push(self.window_descriptor.unwrap_or(0));
        put_number(&mut out, self.blocks.len() as u64);
        for block in &self.blocks {
            write_block(block, &mut out);
        }
        out
    }

    /// Reads a blob; every count and length is checked against what is left of it before
    /// anything is allocated (39006).
    pub fn read(blob: &[u8]) -> Result<Structure> {
        let mut r = BlobReader { blob, at: 0 };
        let structure = r
            .structure()
            .map_err(|e| failed(format!("malformed blob: {e}")))?;
        if r.at != blob.len() {
            return Err(failed("malformed blob: bytes after the last block"));
        }
        Ok(structure)
    }

    /// The block shapes the parse needs.
    fn shapes(&self) -> Vec<BlockShape> {
        self.blocks
            .iter()
            .map(|b| BlockShape {
                content_length: b.content_length,
                compressed: matches!(b.kind, BlockChoiceKind::Compressed(_)),
            })
            .collect()
    }

    /// The content length the blocks add up to.
    pub fn content_length(&self) -> u64 {
        self.blocks
            .iter()
            .map(|b| u64::from(b.content_length))
            .sum()
    }

    /// The frame header for a content of `content_length` bytes.
    fn header(&self, content_length: u64) -> FrameHeader {
        let has_size = self.descriptor >> 6 != 0 || self.descriptor & 0x20 != 0;
        FrameHeader {
            descriptor: self.descriptor,
            window_descriptor: self.window_descriptor,
            dictionary_id: 0,
            content_size: has_size.then_some(content_length),
        }
    }
}

fn write_block(block: &BlockChoice, out: &mut Vec<u8>) {
    let tag_at = out.len();
    out.push(0);
    put_number(out, u64::from(block.content_length));
    let tag = match &block.kind {
        BlockChoiceKind::Raw => BLOCK_RAW,
        BlockChoiceKind::Rle => BLOCK_RLE,
        BlockChoiceKind::Compressed(c) => {
            let kind = match &c.literals {
                LiteralsKind::Raw => 0,
                LiteralsKind::Rle(_) => 1,
                LiteralsKind::Compressed { .. } => 2,
                LiteralsKind::Treeless => 3,
            };
            out.push(kind | (c.literals_size_format & 3) << 2);
            match &c.literals {
                LiteralsKind::Rle(byte) => out.push(*byte),
                LiteralsKind::Compressed { description } => put_bytes(out, description),
                _ => {}
            }
            out.push(c.count_bytes | u8::from(c.modes.is_some()) << 2);
            for mode in c.modes.iter().flatten() {
                match mode {
                    TableMode::Predefined => out.push(0),
                    TableMode::Rle(code) => out.extend_from_slice(&[1, *code]),
                    TableMode::Compressed(description) => {
                        out.push(2);
                        put_bytes(out, description);
                    }
                    TableMode::Repeat => out.push(3),
                }
            }
            match &c.sequences {
                BlockSequences::Recomputed => BLOCK_COMPRESSED,
                BlockSequences::Carried(sequences) => {
                    put_number(out, sequences.len() as u64);
                    for s in sequences {
                        put_number(out, u64::from(s.literal_length));
                        put_number(out, u64::from(s.offset_value));
                        put_number(out, u64::from(s.match_length));
                    }
                    BLOCK_COMPRESSED | BLOCK_CARRIED
                }
            }
        }
    };
    out[tag_at] = tag;
}

/// A cursor over an untrusted blob.
struct BlobReader<'b> {
    blob: &'b [u8],
    at: usize,
}

type Parsed<T> = std::result::Result<T, &'static str>;

impl BlobReader<'_> {
    fn byte(&mut self) -> Parsed<u8> {
        let b = *self.blob.get(self.at).ok_or("truncated")?;
        self.at += 1;
        Ok(b)
    }

    fn number(&mut self) -> Parsed<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if shift == 63 && b > 1 {
                    break;
                }
                return Ok(value);
            }
        }
        Err("number longer than 64 bits")
    }

    /// A number of at most `max`.
    fn bounded(&mut self, max: u64, what: &'static str) -> Parsed<u64> {
        let n = self.number()?;
        if n > max {
            return Err(what);
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Parsed<Vec<u8>> {
        let len = self.number()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.at.checked_add(len))
            .filter(|&end| end <= self.blob.len())
            .ok_or("a length beyond the blob")?;
        let bytes = self.blob[self.at..end].to_vec();
        self.at = end;
        Ok(bytes)
    }

    fn structure(&mut self) -> Parsed<Structure> {
        let params = DfastParams {
            window_log: u32::from(self.byte()?),
            hash_log: u32::from(self.byte()?),
            chain_log: u32::from(self.byte()?),
            min_match: u32::from(self.byte()?),
        };
        params.validate().map_err(|e| e.reason())?;
        let threading = match self.byte()? {
            THREADING_SINGLE => Threading::Single,
            THREADING_STREAMING => Threading::Streaming,
            THREADING_JOBS => {
                let job_size = self.bounded(MAX_JOB_SIZE, "job size too large")? as usize;
                let overlap = self.bounded(job_size as u64, "overlap beyond the job")? as usize;
                if job_size == 0 {
                    return Err("job size 0");
                }
                Threading::Jobs { job_size, overlap }
            }
            _ => return Err("unknown threading"),
        };
        let descriptor = self.byte()?;
        // Dictionary id flag, reserved and unused bits: never set by libzstd.
        if descriptor & 0x1b != 0 {
            return Err("frame header descriptor with a dictionary or reserved bit");
        }
        let window = self.byte()?;
        let window_descriptor = (descriptor & 0x20 == 0).then_some(window);
        // Every block takes at least two bytes of the blob.
        let left = (self.blob.len() - self.at) as u64;
        let count = self.bounded(left / 2, "more blocks than the blob can hold")?;
        let mut blocks = Vec::with_capacity(count as usize);
        for _ in 0..count {
            blocks.push(self.block()?);
        }
        Ok(Structure {
            // Version 1 of the codec is libzstd 1.5.2–1.5.6's level-3 parse.
            producer: Producer {
                params,
                threading,
                version: DfastVersion::Libzstd152To156,
            },
            descriptor,
            window_descriptor,
            blocks,
        })
    }

    fn block(&mut self) -> Parsed<BlockChoice> {
        let tag = self.byte()?;
        let content_length =
            self.bounded(MAX_BLOCK_SIZE as u64, "block longer than 128 KiB")? as u32;
        let kind = match tag {
            BLOCK_RAW => BlockChoiceKind::Raw,
            BLOCK_RLE => BlockChoiceKind::Rle,
            t if t & !BLOCK_CARRIED == BLOCK_COMPRESSED => {
                BlockChoiceKind::Compressed(Box::new(self.compressed(t & BLOCK_CARRIED != 0)?))
            }
            _ => return Err("unknown block tag"),
        };
        Ok(BlockChoice {
            content_length,
            kind,
        })
    }

    fn compressed(&mut self, carried: bool) -> Parsed<CompressedChoices> {
        let literals_byte = self.byte()?;
        if literals_byte >> 4 != 0 {
            return Err("unknown literals bits");
        }
        let literals = match literals_byte & 3 {
            0 => LiteralsKind::Raw,
            1 => LiteralsKind::Rle(self.byte()?),
            2 => LiteralsKind::Compressed {
                description: self.bytes()?,
            },
            _ => LiteralsKind::Treeless,
        };
        let sequences_byte = self.byte()?;
        let count_bytes = sequences_byte & 3;
        if sequences_byte >> 3 != 0 || count_bytes == 0 {
            return Err("bad sequences byte");
        }
        let modes = if sequences_byte & 4 != 0 {
            Some([self.mode()?, self.mode()?, self.mode()?])
        } else {
            None
        };
        let sequences = if carried {
            // Every sequence takes at least three bytes of the blob.
            let left = (self.blob.len() - self.at) as u64;
            let n = self.bounded(left / 3, "more sequences than the blob can hold")?;
            let mut list = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let field = |r: &mut Self| r.bounded(u64::from(u32::MAX), "sequence field");
                list.push(Sequence {
                    literal_length: field(self)? as u32,
                    offset_value: field(self)? as u32,
                    match_length: field(self)? as u32,
                });
            }
            BlockSequences::Carried(list)
        } else {
            BlockSequences::Recomputed
        };
        Ok(CompressedChoices {
            literals,
            literals_size_format: literals_byte >> 2 & 3,
            count_bytes,
            modes,
            sequences,
        })
    }

    fn mode(&mut self) -> Parsed<TableMode> {
        Ok(match self.byte()? {
            0 => TableMode::Predefined,
            1 => TableMode::Rle(self.byte()?),
            2 => TableMode::Compressed(self.bytes()?),
            3 => TableMode::Repeat,
            _ => return Err("unknown table mode"),
        })
    }
}

/// A compressed block from its content, its sequences and the blob's choices. The literals
/// are the bytes the sequences leave uncovered.
fn compressed_block(
    content: &[u8],
    sequences: &[Sequence],
    choices: &CompressedChoices,
) -> std::result::Result<CompressedBlock, StructureError> {
    let mut literals = Vec::with_capacity(content.len());
    let mut at = 0usize;
    for s in sequences {
        let lit_end = at + s.literal_length as usize;
        let next = lit_end + s.match_length as usize;
        if next > content.len() {
            return Err(StructureError::new("sequences longer than their block"));
        }
        literals.extend_from_slice(&content[at..lit_end]);
        at = next;
    }
    literals.extend_from_slice(&content[at..]);
    Ok(CompressedBlock {
        literals: LiteralsSection {
            kind: choices.literals.clone(),
            size_format: choices.literals_size_format,
            literals,
        },
        sequences: SequencesSection {
            count_bytes: choices.count_bytes,
            modes: choices.modes.clone(),
            sequences: sequences.to_vec(),
        },
    })
}

/// Writes the frame of `structure` for `content` (which the blocks must cover exactly); a frame
/// that grows beyond `max_len` bytes is refused as it grows.
pub fn rebuild(content: &[u8], structure: &Structure, max_len: u64) -> Result<Vec<u8>> {
    let structured = |e: StructureError| failed(format!("the structure does not encode: {e}"));
    if structure.content_length() != content.len() as u64 {
        return Err(failed(format!(
            "the blocks hold {} bytes, the content has {}",
            structure.content_length(),
            content.len()
        )));
    }
    // The whole frame at once: no reallocation copies it while it grows, and the memory taken
    // is what `Structure::memory` charged for it.
    let mut out = Vec::new();
    out.try_reserve_exact(usize::try_from(max_len).unwrap_or(usize::MAX))
        .map_err(|_| failed("out of memory for the frame"))?;
    zs::write_header(&structure.header(content.len() as u64), &mut out).map_err(structured)?;
    let mut encoder = FrameEncoder::default();
    let mut starts = Vec::with_capacity(structure.blocks.len());
    let mut position = 0usize;
    for block in &structure.blocks {
        starts.push(position);
        position += block.content_length as usize;
    }
    let last = structure.blocks.len().saturating_sub(1);
    let shapes = structure.shapes();
    zstd_parse::block_sequences(content, &shapes, &structure.producer, |number, found| {
        let choice = &structure.blocks[number];
        let start = starts[number];
        let block_content = &content[start..start + choice.content_length as usize];
        let kind = match &choice.kind {
            BlockChoiceKind::Raw => BlockKind::Raw,
            BlockChoiceKind::Rle => {
                let byte = *block_content.first().unwrap_or(&0);
                BlockKind::Rle(byte)
            }
            BlockChoiceKind::Compressed(c) => {
                let sequences = match &c.sequences {
                    BlockSequences::Recomputed => found,
                    BlockSequences::Carried(list) => list,
                };
                BlockKind::Compressed(compressed_block(block_content, sequences, c)?)
            }
        };
        let block = Block {
            last: number == last,
            kind,
            content_length: choice.content_length,
        };
        encoder.block(&block, block_content, &mut out)?;
        if out.len() as u64 > max_len {
            return Err(StructureError::new(
                "the frame is longer than its recipe says",
            ));
        }
        Ok(())
    })
    .map_err(structured)?;
    if structure.descriptor & 4 != 0 {
        out.extend_from_slice(&(zs::xxh64(content) as u32).to_le_bytes());
    }
    Ok(out)
}

impl Structure {
    /// The memory a rebuild of a `content_len`-byte content into a frame of `output_len`
    /// bytes takes at most: the content, the frame, the parse's two hash tables and one
    /// block's buffers.
    pub fn memory(&self, content_len: u64, output_len: u64) -> u64 {
        let p = self.producer.params;
        let tables = ((1u64 << p.hash_log) + (1u64 << p.chain_log)) * 4;
        content_len
            .saturating_add(output_len)
            .saturating_add(tables + BLOCK_MEMORY)
    }
}

/// The blocks of `frame` (whose content is `content`) whose sequences `producer`'s parse does
/// not reproduce: what a structure for this producer must carry.
pub fn mismatched_blocks(
    frame: &zs::ZstdFrame,
    content: &[u8],
    producer: &Producer,
) -> std::result::Result<Vec<usize>, StructureError> {
    let mut mismatched = Vec::new();
    let shapes = BlockShape::of_frame(frame);
    zstd_parse::block_sequences(content, &shapes, producer, |number, found| {
        if let BlockKind::Compressed(c) = &frame.blocks[number].kind {
            if c.sequences.sequences != found {
                mismatched.push(number);
            }
        }
        Ok(())
    })?;
    Ok(mismatched)
}

/// Checks the recipe's lengths before anything runs: a content beyond [`MAX_CONTENT`], or
/// more than a frame of `output_len` bytes can hold (each block ≥ 3 bytes, ≤ 128 KiB), 39006.
pub fn check_lengths(content_len: u64, output_len: u64) -> Result<()> {
    let blocks = output_len / 3 + 1;
    if content_len > MAX_CONTENT || content_len > blocks.saturating_mul(MAX_BLOCK_SIZE as u64) {
        return Err(failed(format!(
            "{content_len} bytes of content cannot be rebuilt into a {output_len}-byte frame"
        )));
    }
    Ok(())
}

/// The rebuilt frame of the content read from `content` (exactly `content_len` bytes) and the
/// structure read from the blob; the caller has charged [`Structure::memory`] to its budget.
/// The frame must be `output_len` bytes long (the caller checks its hash).
pub fn reader(
    mut content: Box<dyn Read + Send>,
    content_len: u64,
    structure: &Structure,
    output_len: u64,
) -> Result<Cursor<Vec<u8>>> {
    check_lengths(content_len, output_len)?;
    let mut data = Vec::new();
    data.try_reserve_exact(content_len as usize)
        .map_err(|_| failed("out of memory for the content"))?;
    (&mut content)
        .take(content_len)
        .read_to_end(&mut data)
        .map_err(|e| Error::from_io(e, code::EXT_ZSTD_REBUILD_FAILED))?;
    if data.len() as u64 != content_len {
        return Err(failed("the content is shorter than its recipe says"));
    }
    let frame = rebuild(&data, structure, output_len)?;
    if frame.len() as u64 != output_len {
        return Err(failed(format!(
            "the rebuilt frame has {} bytes, the recipe says {output_len}",
            frame.len()
        )));
    }
    Ok(Cursor::new(frame))
}

#[cfg(test)]
mod tests;
