//! The literals section of a compressed block (RFC 8878 §3.1.1.3.1): raw, RLE, Huffman-coded
//! with a new table (whose description is carried as its bytes) or with the previous one.

use super::huffman::HuffmanTable;
use super::{LiteralsKind, LiteralsSection, StructureError, MAX_BLOCK_SIZE};

/// Widths of (regenerated, compressed) size fields and the header length per size format of a
/// Huffman-coded section.
fn coded_layout(size_format: u8) -> (u32, usize) {
    match size_format {
        0 | 1 => (10, 3),
        2 => (14, 4),
        _ => (18, 5),
    }
}

/// Header length of a raw or RLE section per size format.
fn plain_header_length(size_format: u8) -> usize {
    match size_format {
        1 => 2,
        3 => 3,
        _ => 1,
    }
}

fn read_header(bytes: &[u8], length: usize) -> Result<u64, StructureError> {
    let header = bytes
        .get(..length)
        .ok_or(StructureError::new("literals header truncated"))?;
    Ok(header
        .iter()
        .rev()
        .fold(0u64, |value, &byte| (value << 8) | u64::from(byte)))
}

/// Parses a literals section; returns it and its length. `huffman` is the table in use (set by
/// a section with a new table, used by a treeless one).
pub fn parse(
    bytes: &[u8],
    huffman: &mut Option<HuffmanTable>,
) -> Result<(LiteralsSection, usize), StructureError> {
    let first = *bytes
        .first()
        .ok_or(StructureError::new("literals section missing"))?;
    let size_format = (first >> 2) & 3;
    if first & 3 < 2 {
        return parse_plain(bytes, first & 3 == 1, size_format);
    }
    let (width, header_length) = coded_layout(size_format);
    let header = read_header(bytes, header_length)?;
    let mask = (1u64 << width) - 1;
    let regenerated = ((header >> 4) & mask) as usize;
    let compressed = ((header >> (4 + width)) & mask) as usize;
    if regenerated > MAX_BLOCK_SIZE {
        return Err(StructureError::new("literals larger than a block"));
    }
    let body = bytes
        .get(header_length..header_length + compressed)
        .ok_or(StructureError::new("literals section truncated"))?;
    let (kind, streams) = if first & 3 == 2 {
        let (table, used) = HuffmanTable::read(body)?;
        *huffman = Some(table);
        let kind = LiteralsKind::Compressed {
            description: body[..used].to_vec(),
        };
        (kind, &body[used..])
    } else {
        (LiteralsKind::Treeless, body)
    };
    let table = huffman.as_ref().ok_or(StructureError::new(
        "treeless literals without a previous table",
    ))?;
    let literals = table.decode(streams, regenerated, size_format != 0)?;
    let section = LiteralsSection {
        kind,
        size_format,
        literals,
    };
    Ok((section, header_length + compressed))
}

fn parse_plain(
    bytes: &[u8],
    rle: bool,
    size_format: u8,
) -> Result<(LiteralsSection, usize), StructureError> {
    let length = plain_header_length(size_format);
    let header = read_header(bytes, length)?;
    let size = (header >> if length == 1 { 3 } else { 4 }) as usize;
    if size > MAX_BLOCK_SIZE {
        return Err(StructureError::new("literals larger than a block"));
    }
    let (kind, literals, used) = if rle {
        let byte = *bytes
            .get(length)
            .ok_or(StructureError::new("literals section truncated"))?;
        (LiteralsKind::Rle(byte), vec![byte; size], length + 1)
    } else {
        let literals = bytes
            .get(length..length + size)
            .ok_or(StructureError::new("literals section truncated"))?;
        (LiteralsKind::Raw, literals.to_vec(), length + size)
    };
    let section = LiteralsSection {
        kind,
        size_format,
        literals,
    };
    Ok((section, used))
}

/// Writes a literals section; a section with a new table installs it in `huffman`.
pub fn encode(
    section: &LiteralsSection,
    huffman: &mut Option<HuffmanTable>,
    out: &mut Vec<u8>,
) -> Result<(), StructureError> {
    let size_format = section.size_format & 3;
    let size = section.literals.len() as u64;
    let (type_number, body) = match &section.kind {
        LiteralsKind::Raw => (0u8, section.literals.clone()),
        LiteralsKind::Rle(byte) => (1, vec![*byte]),
        LiteralsKind::Compressed { description } => {
            let (table, used) = HuffmanTable::read(description)?;
            if used != description.len() {
                return Err(StructureError::new(
                    "Huffman description of the wrong length",
                ));
            }
            let mut body = description.clone();
            body.extend_from_slice(&table.encode(&section.literals, size_format != 0)?);
            *huffman = Some(table);
            (2, body)
        }
        LiteralsKind::Treeless => {
            let table = huffman.as_ref().ok_or(StructureError::new(
                "treeless literals without a previous table",
            ))?;
            (3, table.encode(&section.literals, size_format != 0)?)
        }
    };
    let first = u64::from(type_number) | (u64::from(size_format) << 2);
    let (header, length) = if type_number < 2 {
        let length = plain_header_length(size_format);
        let shift = if length == 1 { 3 } else { 4 };
        check_fits(size, 8 * length as u32 - shift)?;
        (first | (size << shift), length)
    } else {
        let (width, length) = coded_layout(size_format);
        check_fits(size, width)?;
        check_fits(body.len() as u64, width)?;
        (
            first | (size << 4) | ((body.len() as u64) << (4 + width)),
            length,
        )
    };
    out.extend_from_slice(&header.to_le_bytes()[..length]);
    out.extend_from_slice(&body);
    Ok(())
}

fn check_fits(value: u64, width: u32) -> Result<(), StructureError> {
    if value >> width != 0 {
        return Err(StructureError::new("literals size does not fit its field"));
    }
    Ok(())
}
