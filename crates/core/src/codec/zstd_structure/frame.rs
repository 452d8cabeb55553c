//! Frames and blocks: parsing a stream of frames into their structure while regenerating the
//! content, and writing the exact bytes back from the structure.

use super::huffman::HuffmanTable;
use super::sequences::{self, DecodeTables, EncodeTables};
use super::xxh64::xxh64;
use super::{
    literals, Block, BlockKind, CompressedBlock, Frame, FrameHeader, ParsedStream, Sequence,
    StructureError, ZstdFrame, MAX_BLOCK_SIZE, MAX_WINDOW_SIZE,
};

const ZSTD_MAGIC: u32 = 0xFD2F_B528;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// A cursor over the input.
struct Input<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Input<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], StructureError> {
        let end = self
            .position
            .checked_add(count)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(StructureError::new("input truncated"))?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn number(&mut self, count: usize) -> Result<u64, StructureError> {
        let bytes = self.take(count)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |value, &byte| (value << 8) | u64::from(byte)))
    }
}

/// Per-frame decoding state: the entropy tables in use and the repeat offsets.
struct FrameDecoder {
    huffman: Option<HuffmanTable>,
    tables: DecodeTables,
    repeats: [usize; 3],
    window: usize,
    start: usize,
}

/// Parses every frame of `input`; the content may not exceed `max_content` bytes.
pub fn parse(input: &[u8], max_content: usize) -> Result<ParsedStream, StructureError> {
    let mut cursor = Input {
        bytes: input,
        position: 0,
    };
    let mut stream = ParsedStream {
        frames: Vec::new(),
        content: Vec::new(),
    };
    while cursor.position < input.len() {
        let magic = cursor.number(4)? as u32;
        let frame = if magic & 0xFFFF_FFF0 == SKIPPABLE_MAGIC {
            let length = cursor.number(4)? as usize;
            Frame::Skippable {
                magic_low: (magic & 15) as u8,
                data: cursor.take(length)?.to_vec(),
            }
        } else if magic == ZSTD_MAGIC {
            Frame::Zstd(parse_frame(&mut cursor, &mut stream.content, max_content)?)
        } else {
            return Err(StructureError::new("not a zstd frame"));
        };
        stream.frames.push(frame);
    }
    Ok(stream)
}

fn parse_header(cursor: &mut Input<'_>) -> Result<(FrameHeader, usize), StructureError> {
    let descriptor = cursor.number(1)? as u8;
    if descriptor & 8 != 0 {
        return Err(StructureError::new("reserved frame header bit set"));
    }
    let single_segment = descriptor & 0x20 != 0;
    let window_descriptor = if single_segment {
        None
    } else {
        Some(cursor.number(1)? as u8)
    };
    let dictionary_id = cursor.number([0, 1, 2, 4][usize::from(descriptor & 3)])? as u32;
    if dictionary_id != 0 {
        return Err(StructureError::new(
            "frames that need a dictionary are not supported",
        ));
    }
    let content_size = match (descriptor >> 6, single_segment) {
        (0, false) => None,
        (0, true) => Some(cursor.number(1)?),
        (1, _) => Some(cursor.number(2)? + 256),
        (2, _) => Some(cursor.number(4)?),
        _ => Some(cursor.number(8)?),
    };
    let window = match window_descriptor {
        Some(byte) => {
            let log = 10 + u32::from(byte >> 3);
            let base = 1u64 << log;
            base + (base / 8) * u64::from(byte & 7)
        }
        None => content_size.unwrap_or(0),
    };
    if window > MAX_WINDOW_SIZE as u64 {
        return Err(StructureError::new("window larger than 128 MiB"));
    }
    let header = FrameHeader {
        descriptor,
        window_descriptor,
        dictionary_id,
        content_size,
    };
    Ok((header, window as usize))
}

fn parse_frame(
    cursor: &mut Input<'_>,
    content: &mut Vec<u8>,
    max_content: usize,
) -> Result<ZstdFrame, StructureError> {
    let (header, window) = parse_header(cursor)?;
    let mut decoder = FrameDecoder {
        huffman: None,
        tables: DecodeTables::default(),
        repeats: super::INITIAL_REPEAT_OFFSETS,
        window,
        start: content.len(),
    };
    let mut blocks = Vec::new();
    loop {
        let block = parse_block(cursor, content, max_content, &mut decoder)?;
        let last = block.last;
        blocks.push(block);
        if last {
            break;
        }
    }
    let produced = (content.len() - decoder.start) as u64;
    if header.content_size.is_some_and(|size| size != produced) {
        return Err(StructureError::new(
            "content size differs from the frame header's",
        ));
    }
    if header.descriptor & 4 != 0 {
        let stored = cursor.number(4)? as u32;
        if stored != xxh64(&content[decoder.start..]) as u32 {
            return Err(StructureError::new("content checksum mismatch"));
        }
    }
    Ok(ZstdFrame { header, blocks })
}

fn parse_block(
    cursor: &mut Input<'_>,
    content: &mut Vec<u8>,
    max_content: usize,
    decoder: &mut FrameDecoder,
) -> Result<Block, StructureError> {
    let header = cursor.number(3)? as u32;
    let size = (header >> 3) as usize;
    if size > MAX_BLOCK_SIZE {
        return Err(StructureError::new("block larger than 128 KiB"));
    }
    content
        .try_reserve(MAX_BLOCK_SIZE)
        .map_err(|_| StructureError::new("out of memory for the content"))?;
    let before = content.len();
    let kind = match (header >> 1) & 3 {
        0 => {
            content.extend_from_slice(cursor.take(size)?);
            BlockKind::Raw
        }
        1 => {
            let byte = cursor.take(1)?[0];
            content.resize(before + size, byte);
            BlockKind::Rle(byte)
        }
        2 => BlockKind::Compressed(parse_compressed(cursor.take(size)?, content, decoder)?),
        _ => return Err(StructureError::new("reserved block type")),
    };
    if content.len() > max_content {
        return Err(StructureError::new("content larger than allowed"));
    }
    Ok(Block {
        last: header & 1 != 0,
        kind,
        content_length: (content.len() - before) as u32,
    })
}

fn parse_compressed(
    bytes: &[u8],
    content: &mut Vec<u8>,
    decoder: &mut FrameDecoder,
) -> Result<CompressedBlock, StructureError> {
    let (literals, used) = literals::parse(bytes, &mut decoder.huffman)?;
    let sequences = sequences::parse(&bytes[used..], &mut decoder.tables)?;
    let block = CompressedBlock {
        literals,
        sequences,
    };
    execute(&block, content, decoder)?;
    Ok(block)
}

/// Regenerates a block's content from its literals and sequences.
fn execute(
    block: &CompressedBlock,
    content: &mut Vec<u8>,
    decoder: &mut FrameDecoder,
) -> Result<(), StructureError> {
    let literals = &block.literals.literals;
    let block_start = content.len();
    let mut next_literal = 0usize;
    for sequence in &block.sequences.sequences {
        let literal_end = next_literal + sequence.literal_length as usize;
        let run = literals
            .get(next_literal..literal_end)
            .ok_or(StructureError::new(
                "sequence takes more literals than present",
            ))?;
        content.extend_from_slice(run);
        next_literal = literal_end;
        let offset = resolve_offset(sequence, &mut decoder.repeats)?;
        let length = sequence.match_length as usize;
        if content.len() - block_start + length > MAX_BLOCK_SIZE {
            return Err(StructureError::new("block content larger than 128 KiB"));
        }
        if offset > content.len() - decoder.start || offset > decoder.window.max(1) {
            return Err(StructureError::new("match offset beyond the window"));
        }
        copy_match(content, offset, length);
    }
    content.extend_from_slice(&literals[next_literal..]);
    if content.len() - block_start > MAX_BLOCK_SIZE {
        return Err(StructureError::new("block content larger than 128 KiB"));
    }
    Ok(())
}

/// The offset of a sequence, updating the repeat offsets (RFC 8878 §3.1.2.5). A frame starts
/// with [`INITIAL_REPEAT_OFFSETS`](super::INITIAL_REPEAT_OFFSETS).
pub fn resolve_offset(
    sequence: &Sequence,
    repeats: &mut [usize; 3],
) -> Result<usize, StructureError> {
    let value = sequence.offset_value as usize;
    if value > 3 {
        *repeats = [value - 3, repeats[0], repeats[1]];
        return Ok(value - 3);
    }
    let index = if sequence.literal_length == 0 {
        value
    } else {
        value - 1
    };
    let offset = match index {
        0 => return Ok(repeats[0]),
        1 | 2 => repeats[index],
        _ => repeats[0]
            .checked_sub(1)
            .filter(|&offset| offset > 0)
            .ok_or(StructureError::new("repeat offset 0"))?,
    };
    if index == 1 {
        repeats[1] = repeats[0];
    } else {
        repeats[2] = repeats[1];
        repeats[1] = repeats[0];
    }
    repeats[0] = offset;
    Ok(offset)
}

/// The offset value an encoder writes for `offset` given the repeat offsets: the repeat code
/// when the offset equals a repeat offset (for a sequence without literals: the second, the
/// third, or the first minus one), otherwise `offset + 3`. This is the inverse of
/// [`resolve_offset`] that libzstd's match finders use; a producer may still code a repeated
/// offset explicitly.
pub fn repeat_coded_offset_value(
    offset: usize,
    literal_length: u32,
    repeats: &[usize; 3],
) -> usize {
    let candidates = if literal_length == 0 {
        [repeats[1], repeats[2], repeats[0].wrapping_sub(1)]
    } else {
        *repeats
    };
    match candidates.iter().position(|&candidate| candidate == offset) {
        Some(index) => index + 1,
        None => offset + 3,
    }
}

fn copy_match(content: &mut Vec<u8>, offset: usize, mut length: usize) {
    while length > 0 {
        let start = content.len() - offset;
        let chunk = length.min(offset);
        content.extend_from_within(start..start + chunk);
        length -= chunk;
    }
}

/// Per-frame encoding state: the entropy tables in use. A frame written block by block
/// ([`write_header`], then [`FrameEncoder::block`] for each block in order) comes out as
/// [`encode_frame`] writes it.
#[derive(Default)]
pub struct FrameEncoder {
    huffman: Option<HuffmanTable>,
    tables: EncodeTables,
}

/// Writes every frame of `stream` back to bytes.
pub fn encode(stream: &ParsedStream) -> Result<Vec<u8>, StructureError> {
    let mut out = Vec::new();
    let mut content_position = 0usize;
    for frame in &stream.frames {
        match frame {
            Frame::Skippable { magic_low, data } => {
                out.extend_from_slice(
                    &(SKIPPABLE_MAGIC | u32::from(*magic_low & 15)).to_le_bytes(),
                );
                let length = u32::try_from(data.len())
                    .map_err(|_| StructureError::new("skippable frame over 4 GiB"))?;
                out.extend_from_slice(&length.to_le_bytes());
                out.extend_from_slice(data);
            }
            Frame::Zstd(frame) => {
                let length = frame.content_length();
                let content = stream
                    .content
                    .get(content_position..content_position + length)
                    .ok_or(StructureError::new("frame content missing"))?;
                encode_frame(frame, content, &mut out)?;
                content_position += length;
            }
        }
    }
    Ok(out)
}

/// Writes one zstd frame from its structure and content.
pub fn encode_frame(
    frame: &ZstdFrame,
    content: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), StructureError> {
    write_header(&frame.header, out)?;
    let mut encoder = FrameEncoder::default();
    let mut position = 0usize;
    for block in &frame.blocks {
        let end = position + block.content_length as usize;
        let block_content = content
            .get(position..end)
            .ok_or(StructureError::new("block content missing"))?;
        encode_block(block, block_content, &mut encoder, out)?;
        position = end;
    }
    if frame.header.descriptor & 4 != 0 {
        out.extend_from_slice(&(xxh64(content) as u32).to_le_bytes());
    }
    Ok(())
}

/// Writes a frame's magic number and header.
pub fn write_header(header: &FrameHeader, out: &mut Vec<u8>) -> Result<(), StructureError> {
    out.extend_from_slice(&ZSTD_MAGIC.to_le_bytes());
    out.push(header.descriptor);
    let single_segment = header.descriptor & 0x20 != 0;
    if let Some(window) = header.window_descriptor.filter(|_| !single_segment) {
        out.push(window);
    }
    let id_length = [0, 1, 2, 4][usize::from(header.descriptor & 3)];
    out.extend_from_slice(&header.dictionary_id.to_le_bytes()[..id_length]);
    let size = header.content_size.unwrap_or(0);
    let (value, length) = match (header.descriptor >> 6, single_segment) {
        (0, false) => (0, 0),
        (0, true) => (size, 1),
        (1, _) => (
            size.checked_sub(256).ok_or(StructureError::new(
                "content size under 256 in a 2-byte field",
            ))?,
            2,
        ),
        (2, _) => (size, 4),
        _ => (size, 8),
    };
    out.extend_from_slice(&value.to_le_bytes()[..length]);
    Ok(())
}

impl FrameEncoder {
    /// Writes the frame's next block (`content`: its regenerated content).
    pub fn block(
        &mut self,
        block: &Block,
        content: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), StructureError> {
        encode_block(block, content, self, out)
    }
}

/// Writes one block: its header, then its payload from the structure (`content` is the block's
/// regenerated content, needed by raw blocks).
fn encode_block(
    block: &Block,
    content: &[u8],
    encoder: &mut FrameEncoder,
    out: &mut Vec<u8>,
) -> Result<(), StructureError> {
    let header_at = out.len();
    out.extend_from_slice(&[0, 0, 0]);
    let (type_number, size) = match &block.kind {
        BlockKind::Raw => {
            out.extend_from_slice(content);
            (0u32, content.len())
        }
        BlockKind::Rle(byte) => {
            out.push(*byte);
            (1, content.len())
        }
        BlockKind::Compressed(compressed) => {
            literals::encode(&compressed.literals, &mut encoder.huffman, out)?;
            sequences::encode(&compressed.sequences, &mut encoder.tables, out)?;
            (2, out.len() - header_at - 3)
        }
    };
    if size > MAX_BLOCK_SIZE {
        return Err(StructureError::new("block larger than 128 KiB"));
    }
    let header = ((size as u32) << 3) | (type_number << 1) | u32::from(block.last);
    out[header_at..header_at + 3].copy_from_slice(&header.to_le_bytes()[..3]);
    Ok(())
}
