//! The sequences section of a compressed block (RFC 8878 §3.1.1.3.2): the count, the three
//! table modes with their descriptions, and the FSE bitstream written in libzstd's order.

use super::bits::{BackwardBits, BitWriter};
use super::fse::{read_description, DecodeTable, EncodeTable, NormalizedCounts};
use super::{Sequence, SequencesSection, StructureError, TableMode, MAX_BLOCK_SIZE};

/// Literal-length codes: (baseline, extra bits).
const LITERAL_LENGTH_CODES: [(u32, u32); 36] = [
    (0, 0),
    (1, 0),
    (2, 0),
    (3, 0),
    (4, 0),
    (5, 0),
    (6, 0),
    (7, 0),
    (8, 0),
    (9, 0),
    (10, 0),
    (11, 0),
    (12, 0),
    (13, 0),
    (14, 0),
    (15, 0),
    (16, 1),
    (18, 1),
    (20, 1),
    (22, 1),
    (24, 2),
    (28, 2),
    (32, 3),
    (40, 3),
    (48, 4),
    (64, 6),
    (128, 7),
    (256, 8),
    (512, 9),
    (1024, 10),
    (2048, 11),
    (4096, 12),
    (8192, 13),
    (16384, 14),
    (32768, 15),
    (65536, 16),
];

/// Match-length codes: (baseline, extra bits).
const MATCH_LENGTH_CODES: [(u32, u32); 53] = [
    (3, 0),
    (4, 0),
    (5, 0),
    (6, 0),
    (7, 0),
    (8, 0),
    (9, 0),
    (10, 0),
    (11, 0),
    (12, 0),
    (13, 0),
    (14, 0),
    (15, 0),
    (16, 0),
    (17, 0),
    (18, 0),
    (19, 0),
    (20, 0),
    (21, 0),
    (22, 0),
    (23, 0),
    (24, 0),
    (25, 0),
    (26, 0),
    (27, 0),
    (28, 0),
    (29, 0),
    (30, 0),
    (31, 0),
    (32, 0),
    (33, 0),
    (34, 0),
    (35, 1),
    (37, 1),
    (39, 1),
    (41, 1),
    (43, 2),
    (47, 2),
    (51, 3),
    (59, 3),
    (67, 4),
    (83, 4),
    (99, 5),
    (131, 7),
    (259, 8),
    (515, 9),
    (1027, 10),
    (2051, 11),
    (4099, 12),
    (8195, 13),
    (16387, 14),
    (32771, 15),
    (65539, 16),
];

/// Predefined literal-length distribution (accuracy log 6).
const LITERAL_LENGTH_DEFAULT: [i16; 36] = [
    4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
    -1, -1, -1, -1,
];
/// Predefined match-length distribution (accuracy log 6).
const MATCH_LENGTH_DEFAULT: [i16; 53] = [
    1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1,
];
/// Predefined offset-code distribution (accuracy log 5).
const OFFSET_DEFAULT: [i16; 29] = [
    1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1,
];

/// Largest offset code (31 extra bits).
const MAX_OFFSET_CODE: u8 = 31;

/// The three sequence fields in stream order of their tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// Literal lengths.
    LiteralLength = 0,
    /// Offset values.
    Offset = 1,
    /// Match lengths.
    MatchLength = 2,
}

impl Field {
    const ALL: [Field; 3] = [Field::LiteralLength, Field::Offset, Field::MatchLength];

    fn max_symbol(self) -> usize {
        match self {
            Field::LiteralLength => 35,
            Field::Offset => MAX_OFFSET_CODE as usize,
            Field::MatchLength => 52,
        }
    }

    fn max_log(self) -> u32 {
        match self {
            Field::Offset => 8,
            _ => 9,
        }
    }

    fn predefined(self) -> NormalizedCounts {
        let (table_log, counts): (u32, &[i16]) = match self {
            Field::LiteralLength => (6, &LITERAL_LENGTH_DEFAULT),
            Field::Offset => (5, &OFFSET_DEFAULT),
            Field::MatchLength => (6, &MATCH_LENGTH_DEFAULT),
        };
        NormalizedCounts {
            table_log,
            counts: counts.to_vec(),
        }
    }

    /// The code and its extra bits (value, count) of a sequence's field.
    fn code_of(self, sequence: &Sequence) -> Result<(u8, u64, u32), StructureError> {
        match self {
            Field::LiteralLength => length_code(&LITERAL_LENGTH_CODES, sequence.literal_length),
            Field::MatchLength => length_code(&MATCH_LENGTH_CODES, sequence.match_length),
            Field::Offset => {
                let code = 31u32
                    .checked_sub(sequence.offset_value.leading_zeros())
                    .ok_or(StructureError::new("offset value 0"))?;
                let extra = sequence.offset_value - (1 << code);
                Ok((code as u8, u64::from(extra), code))
            }
        }
    }

    /// The field's value from its code and extra bits.
    fn value_of(self, code: u8, bits: &mut BackwardBits<'_>) -> Result<u32, StructureError> {
        let (baseline, extra) = match self {
            Field::LiteralLength => LITERAL_LENGTH_CODES.get(code as usize).copied(),
            Field::MatchLength => MATCH_LENGTH_CODES.get(code as usize).copied(),
            Field::Offset if code <= MAX_OFFSET_CODE => Some((1u32 << code, u32::from(code))),
            Field::Offset => None,
        }
        .ok_or(StructureError::new("sequence code out of range"))?;
        Ok(baseline + bits.read(extra) as u32)
    }
}

fn length_code(codes: &[(u32, u32)], value: u32) -> Result<(u8, u64, u32), StructureError> {
    let code = codes
        .partition_point(|&(baseline, _)| baseline <= value)
        .checked_sub(1)
        .ok_or(StructureError::new("match length under 3"))?;
    let (baseline, extra) = codes[code];
    let rest = value - baseline;
    if u64::from(rest) >> extra != 0 {
        return Err(StructureError::new("length beyond its largest code"));
    }
    Ok((code as u8, u64::from(rest), extra))
}

/// The three tables in use (the previous block's, for the repeat mode).
#[derive(Clone, Default)]
pub struct DecodeTables([Option<DecodeTable>; 3]);

/// The three encoding tables in use (the previous block's, for the repeat mode).
#[derive(Clone, Default)]
pub struct EncodeTables([Option<EncodeTable>; 3]);

/// Parses a sequences section (`bytes` runs to the end of the block).
pub fn parse(bytes: &[u8], tables: &mut DecodeTables) -> Result<SequencesSection, StructureError> {
    let (count, count_bytes) = read_count(bytes)?;
    if count == 0 {
        if bytes.len() != count_bytes {
            return Err(StructureError::new(
                "bytes after an empty sequences section",
            ));
        }
        return Ok(SequencesSection {
            count_bytes: count_bytes as u8,
            modes: None,
            sequences: Vec::new(),
        });
    }
    let modes_byte = *bytes
        .get(count_bytes)
        .ok_or(StructureError::new("sequences section truncated"))?;
    if modes_byte & 3 != 0 {
        return Err(StructureError::new(
            "reserved bits of the sequence modes set",
        ));
    }
    let mut offset = count_bytes + 1;
    let mut modes = Vec::with_capacity(3);
    for field in Field::ALL {
        let shift = 6 - 2 * field as u32;
        let (mode, used) = read_mode(field, (modes_byte >> shift) & 3, &bytes[offset..], tables)?;
        offset += used;
        modes.push(mode);
    }
    let sequences = decode_sequences(&bytes[offset..], count, tables)?;
    Ok(SequencesSection {
        count_bytes: count_bytes as u8,
        modes: Some([modes[0].clone(), modes[1].clone(), modes[2].clone()]),
        sequences,
    })
}

fn read_count(bytes: &[u8]) -> Result<(usize, usize), StructureError> {
    let byte = |index: usize| {
        bytes
            .get(index)
            .map(|&byte| usize::from(byte))
            .ok_or(StructureError::new("sequences section truncated"))
    };
    let first = byte(0)?;
    let (count, used) = match first {
        0..=127 => (first, 1),
        128..=254 => (((first - 128) << 8) + byte(1)?, 2),
        _ => (byte(1)? + (byte(2)? << 8) + 0x7F00, 3),
    };
    if count > MAX_BLOCK_SIZE / 3 {
        return Err(StructureError::new("more sequences than a block can hold"));
    }
    Ok((count, used))
}

fn read_mode(
    field: Field,
    mode: u8,
    bytes: &[u8],
    tables: &mut DecodeTables,
) -> Result<(TableMode, usize), StructureError> {
    let slot = &mut tables.0[field as usize];
    match mode {
        0 => {
            *slot = Some(DecodeTable::new(&field.predefined())?);
            Ok((TableMode::Predefined, 0))
        }
        1 => {
            let symbol = *bytes
                .first()
                .ok_or(StructureError::new("sequences section truncated"))?;
            if symbol as usize > field.max_symbol() {
                return Err(StructureError::new("RLE symbol out of range"));
            }
            *slot = Some(DecodeTable::rle(symbol));
            Ok((TableMode::Rle(symbol), 1))
        }
        2 => {
            let (norm, used) = read_description(bytes, field.max_symbol(), field.max_log())?;
            *slot = Some(DecodeTable::new(&norm)?);
            Ok((TableMode::Compressed(bytes[..used].to_vec()), used))
        }
        _ => match slot {
            Some(_) => Ok((TableMode::Repeat, 0)),
            None => Err(StructureError::new("repeat mode without a previous table")),
        },
    }
}

fn decode_sequences(
    stream: &[u8],
    count: usize,
    tables: &DecodeTables,
) -> Result<Vec<Sequence>, StructureError> {
    let [Some(ll), Some(of), Some(ml)] = &tables.0 else {
        return Err(StructureError::new("sequence table missing"));
    };
    let mut bits = BackwardBits::new(stream)?;
    let mut ll_state = ll.init(&mut bits);
    let mut of_state = of.init(&mut bits);
    let mut ml_state = ml.init(&mut bits);
    let mut sequences = Vec::with_capacity(count);
    for index in 0..count {
        let offset_value = Field::Offset.value_of(of.symbol(&of_state), &mut bits)?;
        let match_length = Field::MatchLength.value_of(ml.symbol(&ml_state), &mut bits)?;
        let literal_length = Field::LiteralLength.value_of(ll.symbol(&ll_state), &mut bits)?;
        sequences.push(Sequence {
            literal_length,
            offset_value,
            match_length,
        });
        if index + 1 < count {
            ll.update(&mut ll_state, &mut bits);
            ml.update(&mut ml_state, &mut bits);
            of.update(&mut of_state, &mut bits);
        }
        if bits.overflowed() {
            return Err(StructureError::new("sequence bitstream overrun"));
        }
    }
    if !bits.finished_exactly() {
        return Err(StructureError::new(
            "sequence bitstream not consumed exactly",
        ));
    }
    Ok(sequences)
}

/// Writes a sequences section: the count, the modes and descriptions, then the bitstream as
/// libzstd's `ZSTD_encodeSequences` writes it.
pub fn encode(
    section: &SequencesSection,
    tables: &mut EncodeTables,
    out: &mut Vec<u8>,
) -> Result<(), StructureError> {
    write_count(section.sequences.len(), section.count_bytes, out)?;
    let Some(modes) = &section.modes else {
        return if section.sequences.is_empty() {
            Ok(())
        } else {
            Err(StructureError::new("sequences without table modes"))
        };
    };
    let mut modes_byte = 0u8;
    for field in Field::ALL {
        let mode = &modes[field as usize];
        modes_byte |= mode.number() << (6 - 2 * field as u32);
    }
    out.push(modes_byte);
    for field in Field::ALL {
        install_table(field, &modes[field as usize], tables, out)?;
    }
    out.extend_from_slice(&encode_bitstream(&section.sequences, tables)?);
    Ok(())
}

fn write_count(count: usize, width: u8, out: &mut Vec<u8>) -> Result<(), StructureError> {
    let fits = match width {
        1 => count < 128,
        2 => count < 0x8000 && (count >> 8) < 127,
        3 => (0x7F00..0x7F00 + 0x10000).contains(&count),
        _ => false,
    };
    if !fits {
        return Err(StructureError::new("sequence count does not fit its field"));
    }
    match width {
        1 => out.push(count as u8),
        2 => out.extend_from_slice(&[(count >> 8) as u8 + 128, count as u8]),
        _ => {
            let rest = count - 0x7F00;
            out.extend_from_slice(&[255, rest as u8, (rest >> 8) as u8]);
        }
    }
    Ok(())
}

fn install_table(
    field: Field,
    mode: &TableMode,
    tables: &mut EncodeTables,
    out: &mut Vec<u8>,
) -> Result<(), StructureError> {
    let slot = &mut tables.0[field as usize];
    match mode {
        TableMode::Predefined => *slot = Some(EncodeTable::new(&field.predefined())?),
        TableMode::Rle(symbol) => {
            out.push(*symbol);
            *slot = Some(EncodeTable::rle());
        }
        TableMode::Compressed(description) => {
            let (norm, used) = read_description(description, field.max_symbol(), field.max_log())?;
            if used != description.len() {
                return Err(StructureError::new("FSE description of the wrong length"));
            }
            out.extend_from_slice(description);
            *slot = Some(EncodeTable::new(&norm)?);
        }
        TableMode::Repeat if slot.is_some() => {}
        TableMode::Repeat => {
            return Err(StructureError::new("repeat mode without a previous table"))
        }
    }
    Ok(())
}

fn encode_bitstream(
    sequences: &[Sequence],
    tables: &EncodeTables,
) -> Result<Vec<u8>, StructureError> {
    let [Some(ll), Some(of), Some(ml)] = &tables.0 else {
        return Err(StructureError::new("sequence table missing"));
    };
    let coded = sequences
        .iter()
        .map(|sequence| {
            Ok([
                Field::LiteralLength.code_of(sequence)?,
                Field::Offset.code_of(sequence)?,
                Field::MatchLength.code_of(sequence)?,
            ])
        })
        .collect::<Result<Vec<_>, StructureError>>()?;
    let Some(last) = coded.last() else {
        return Err(StructureError::new("no sequences to encode"));
    };
    let mut writer = BitWriter::new();
    let mut ml_state = ml.init(last[2].0)?;
    let mut of_state = of.init(last[1].0)?;
    let mut ll_state = ll.init(last[0].0)?;
    write_extra_bits(last, &mut writer);
    for codes in coded[..coded.len() - 1].iter().rev() {
        of.encode(&mut of_state, codes[1].0, &mut writer)?;
        ml.encode(&mut ml_state, codes[2].0, &mut writer)?;
        ll.encode(&mut ll_state, codes[0].0, &mut writer)?;
        write_extra_bits(codes, &mut writer);
    }
    ml.flush(ml_state, &mut writer);
    of.flush(of_state, &mut writer);
    ll.flush(ll_state, &mut writer);
    Ok(writer.close())
}

/// Extra bits of one sequence: literal length, match length, offset.
fn write_extra_bits(codes: &[(u8, u64, u32); 3], writer: &mut BitWriter) {
    for field in [Field::LiteralLength, Field::MatchLength, Field::Offset] {
        let (_, value, count) = codes[field as usize];
        writer.add(value, count);
    }
}

impl TableMode {
    fn number(&self) -> u8 {
        match self {
            TableMode::Predefined => 0,
            TableMode::Rle(_) => 1,
            TableMode::Compressed(_) => 2,
            TableMode::Repeat => 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_codes_are_found_by_value() {
        let code = |codes: &[(u32, u32)], value| length_code(codes, value).unwrap();
        assert_eq!(code(&LITERAL_LENGTH_CODES, 15), (15, 0, 0));
        assert_eq!(code(&LITERAL_LENGTH_CODES, 17), (16, 1, 1));
        assert_eq!(code(&LITERAL_LENGTH_CODES, 70000), (35, 70000 - 65536, 16));
        assert_eq!(code(&MATCH_LENGTH_CODES, 3), (0, 0, 0));
        assert_eq!(code(&MATCH_LENGTH_CODES, 130), (42, 31, 5));
        assert!(length_code(&MATCH_LENGTH_CODES, 2).is_err());
        assert!(length_code(&LITERAL_LENGTH_CODES, 1 << 17).is_err());
    }

    #[test]
    fn predefined_tables_are_complete() {
        for field in Field::ALL {
            assert!(DecodeTable::new(&field.predefined()).is_ok());
        }
    }

    #[test]
    fn counts_round_trip_in_every_width() {
        for (count, width) in [
            (0, 1),
            (127, 1),
            (128, 2),
            (0x7EFF, 2),
            (0x7F00, 3),
            (40000, 3),
        ] {
            let mut out = Vec::new();
            write_count(count, width, &mut out).unwrap();
            assert_eq!(
                read_count(&out).unwrap(),
                (count, width as usize),
                "{count}"
            );
        }
        assert!(write_count(200, 1, &mut Vec::new()).is_err());
    }
}
