//! Huffman-coded literals (RFC 8878 §4.2): the tree description (weights, direct or
//! FSE-compressed), the canonical code every conforming coder derives from the weights, and the
//! 1- or 4-stream bitstreams.

use super::bits::{BackwardBits, BitWriter};
use super::fse::{read_description, DecodeTable};
use super::StructureError;

/// Largest code length the decoder accepts (libzstd's `HUF_TABLELOG_MAX`).
const MAX_TABLE_LOG: u32 = 12;
/// Largest accuracy log of the FSE table that compresses weights.
const WEIGHTS_MAX_LOG: u32 = 6;
/// Most weights a description can hold (the last symbol's weight is implied).
const MAX_WEIGHTS: usize = 255;

/// A Huffman table: the code length and code of every symbol, and the decoding lookup.
#[derive(Clone, Debug)]
pub struct HuffmanTable {
    table_log: u32,
    lengths: [u8; 256],
    codes: [u16; 256],
    lookup: Vec<(u8, u8)>,
}

impl HuffmanTable {
    /// Reads a tree description; returns the table and the description's length in bytes.
    pub fn read(bytes: &[u8]) -> Result<(Self, usize), StructureError> {
        let header = *bytes
            .first()
            .ok_or(StructureError::new("missing Huffman description"))?;
        let (weights, used) = if header < 128 {
            let end = 1 + header as usize;
            let body = bytes
                .get(1..end)
                .ok_or(StructureError::new("Huffman description truncated"))?;
            (fse_weights(body)?, end)
        } else {
            direct_weights(bytes, header as usize - 127)?
        };
        Ok((Self::from_weights(&weights)?, used))
    }

    /// Builds the table from the described weights (the last symbol's weight is implied).
    fn from_weights(weights: &[u8]) -> Result<Self, StructureError> {
        let mut total: u32 = 0;
        for &weight in weights {
            if u32::from(weight) > MAX_TABLE_LOG {
                return Err(StructureError::new("Huffman weight too large"));
            }
            if weight > 0 {
                total += 1 << (weight - 1);
            }
        }
        if total == 0 || weights.len() >= 256 {
            return Err(StructureError::new("Huffman weights describe no tree"));
        }
        let table_log = 32 - total.leading_zeros();
        if table_log > MAX_TABLE_LOG {
            return Err(StructureError::new("Huffman code too long"));
        }
        let rest = (1u32 << table_log) - total;
        if !rest.is_power_of_two() {
            return Err(StructureError::new(
                "Huffman weights do not complete a tree",
            ));
        }
        let mut all = weights.to_vec();
        all.push((32 - rest.leading_zeros()) as u8);
        if all.iter().filter(|&&weight| weight == 1).count() % 2 != 0
            || all.iter().all(|&weight| weight != 1)
        {
            return Err(StructureError::new(
                "Huffman weights do not complete a tree",
            ));
        }
        Ok(Self::canonical(&all, table_log))
    }

    /// Canonical assignment: weight 1 (longest codes) first, symbols in order within a weight.
    fn canonical(weights: &[u8], table_log: u32) -> Self {
        let mut table = Self {
            table_log,
            lengths: [0; 256],
            codes: [0; 256],
            lookup: vec![(0, 0); 1 << table_log],
        };
        let mut start = 0usize;
        for weight in 1..=table_log as u8 {
            for (symbol, _) in weights.iter().enumerate().filter(|(_, &w)| w == weight) {
                let span = 1usize << (weight - 1);
                let length = (table_log + 1 - u32::from(weight)) as u8;
                table.lengths[symbol] = length;
                table.codes[symbol] = (start >> (weight - 1)) as u16;
                table.lookup[start..start + span].fill((symbol as u8, length));
                start += span;
            }
        }
        table
    }

    /// Decodes the literals of a compressed literals section: `streams` is the bytes after the
    /// description (with the jump table when there are four streams).
    pub fn decode(
        &self,
        streams: &[u8],
        size: usize,
        four: bool,
    ) -> Result<Vec<u8>, StructureError> {
        let mut out = Vec::with_capacity(size);
        if !four {
            self.decode_stream(streams, size, &mut out)?;
            return Ok(out);
        }
        let segment = size.div_ceil(4);
        let last = size
            .checked_sub(3 * segment)
            .ok_or(StructureError::new("too few literals for four streams"))?;
        let lengths = jump_table(streams)?;
        let mut offset = 6;
        for (index, length) in lengths.into_iter().enumerate() {
            let stream = streams
                .get(offset..offset + length)
                .ok_or(StructureError::new("Huffman stream past its section"))?;
            self.decode_stream(stream, if index == 3 { last } else { segment }, &mut out)?;
            offset += length;
        }
        Ok(out)
    }

    fn decode_stream(
        &self,
        stream: &[u8],
        count: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), StructureError> {
        let mut bits = BackwardBits::new(stream)?;
        for _ in 0..count {
            let (symbol, length) = self.lookup[bits.peek(self.table_log) as usize];
            bits.skip(u32::from(length));
            out.push(symbol);
        }
        if !bits.finished_exactly() {
            return Err(StructureError::new("Huffman stream not consumed exactly"));
        }
        Ok(())
    }

    /// Encodes `literals` as 1 or 4 streams (with the jump table), as the decoder reads them.
    pub fn encode(&self, literals: &[u8], four: bool) -> Result<Vec<u8>, StructureError> {
        if !four {
            return self.encode_stream(literals);
        }
        let segment = literals.len().div_ceil(4);
        if literals.len() < 3 * segment {
            return Err(StructureError::new("too few literals for four streams"));
        }
        let mut streams = Vec::with_capacity(4);
        for index in 0..4 {
            let end = if index == 3 {
                literals.len()
            } else {
                (index + 1) * segment
            };
            streams.push(self.encode_stream(&literals[index * segment..end])?);
        }
        let mut out = Vec::new();
        for stream in &streams[..3] {
            let length = u16::try_from(stream.len())
                .map_err(|_| StructureError::new("Huffman stream over 64 KiB"))?;
            out.extend_from_slice(&length.to_le_bytes());
        }
        for stream in streams {
            out.extend_from_slice(&stream);
        }
        Ok(out)
    }

    fn encode_stream(&self, symbols: &[u8]) -> Result<Vec<u8>, StructureError> {
        let mut writer = BitWriter::new();
        for &symbol in symbols.iter().rev() {
            let length = self.lengths[symbol as usize];
            if length == 0 {
                return Err(StructureError::new("literal absent from its Huffman table"));
            }
            writer.add(u64::from(self.codes[symbol as usize]), u32::from(length));
        }
        Ok(writer.close())
    }
}

/// Lengths of the four streams from the 6-byte jump table (the fourth takes the rest).
fn jump_table(streams: &[u8]) -> Result<[usize; 4], StructureError> {
    let table = streams
        .get(..6)
        .ok_or(StructureError::new("Huffman jump table truncated"))?;
    let first = [0, 2, 4].map(|at| usize::from(u16::from_le_bytes([table[at], table[at + 1]])));
    let rest = (streams.len() - 6)
        .checked_sub(first.iter().sum())
        .ok_or(StructureError::new("Huffman jump table past its section"))?;
    Ok([first[0], first[1], first[2], rest])
}

/// Weights stored as 4-bit numbers, two per byte, high nibble first.
fn direct_weights(bytes: &[u8], count: usize) -> Result<(Vec<u8>, usize), StructureError> {
    let used = 1 + count.div_ceil(2);
    let packed = bytes
        .get(1..used)
        .ok_or(StructureError::new("Huffman description truncated"))?;
    let weights = (0..count)
        .map(|index| {
            let byte = packed[index / 2];
            if index % 2 == 0 {
                byte >> 4
            } else {
                byte & 15
            }
        })
        .collect();
    Ok((weights, used))
}

/// Weights compressed with FSE: a table description, then two interleaved states sharing the
/// table, decoded until the bitstream is overrun (libzstd's `FSE_decompress` tail loop).
fn fse_weights(body: &[u8]) -> Result<Vec<u8>, StructureError> {
    let (norm, used) = read_description(body, 255, WEIGHTS_MAX_LOG)?;
    let table = DecodeTable::new(&norm)?;
    let mut bits = BackwardBits::new(&body[used..])?;
    let mut states = [table.init(&mut bits), table.init(&mut bits)];
    let mut weights = Vec::new();
    let mut current = 0;
    loop {
        if weights.len() + 2 > MAX_WEIGHTS {
            return Err(StructureError::new("too many Huffman weights"));
        }
        weights.push(table.symbol(&states[current]));
        table.update(&mut states[current], &mut bits);
        if bits.overflowed() {
            weights.push(table.symbol(&states[1 - current]));
            return Ok(weights);
        }
        current = 1 - current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_weights_make_a_canonical_code() {
        // Three described weights 2, 1, 1 (2 + 1 + 1 = 4 of 8), so symbol 3's implied weight is
        // 3 (the remaining 4).
        let (table, used) = HuffmanTable::read(&[127 + 3, 0x21, 0x10]).unwrap();
        assert_eq!(used, 3);
        assert_eq!(table.table_log, 3);
        assert_eq!(&table.lengths[..4], &[2, 3, 3, 1]);
        assert_eq!(&table.codes[..4], &[1, 0, 1, 1]);
        let literals = b"\x03\x00\x01\x02\x03\x03\x00";
        for four in [false, true] {
            let streams = table.encode(literals, four).unwrap();
            assert_eq!(
                table.decode(&streams, literals.len(), four).unwrap(),
                literals
            );
        }
    }

    #[test]
    fn weights_that_do_not_make_a_tree_are_refused() {
        assert!(HuffmanTable::read(&[128 + 2, 0x33]).is_err());
        assert!(HuffmanTable::read(&[128 + 4]).is_err());
        assert!(HuffmanTable::read(&[]).is_err());
    }
}
