//! Measures how well a source zstd stream's structure predicts a target stream's: the numbers
//! behind the design of a structure-carrying recipe (docs/ZSTD-STRUCTURE.md).
//!
//! `cargo run --release --example zstd_prediction -- SOURCE.zst TARGET.zst`
//!
//! Both streams are parsed into their structure. Block level: each target block is aligned to
//! the source block with the same content (by hash), and the tool counts the target blocks
//! whose sequences (and whole structure) equal the aligned block's. Sequence level: every
//! 4 KiB-aligned piece of target content is located in the source by hash, which maps each
//! target position to a source position; a target sequence is predicted when the source has
//! the same sequence (literal length, offset value, match length) whose match starts at the
//! mapped position. The carried diff is, per block, runs of predicted sequences and the others
//! written out, zstd-compressed. Also reported: every target sequence carried without
//! prediction, the bytes of the table descriptions and of the blocks' other choices.

use std::collections::HashMap;

use adudiff_core::codec::zstd_structure::{
    self, Block, BlockKind, Frame, LiteralsKind, ParsedStream, Sequence, TableMode,
};

/// Granularity of the content map (ext4's block size).
const PIECE: usize = 4096;

/// A block with its place in the stream's content.
struct Placed<'a> {
    block: &'a Block,
    offset: usize,
}

fn placed_blocks(stream: &ParsedStream) -> Vec<Placed<'_>> {
    let mut offset = 0;
    let mut out = Vec::new();
    for frame in &stream.frames {
        let Frame::Zstd(frame) = frame else { continue };
        for block in &frame.blocks {
            out.push(Placed { block, offset });
            offset += block.content_length as usize;
        }
    }
    out
}

fn sequences(block: &Block) -> &[Sequence] {
    match &block.kind {
        BlockKind::Compressed(compressed) => &compressed.sequences.sequences,
        _ => &[],
    }
}

/// Every sequence of a stream keyed by the content position where its match starts (sorted).
fn match_starts(blocks: &[Placed<'_>]) -> Vec<(usize, Sequence)> {
    let mut out = Vec::new();
    for placed in blocks {
        let mut position = placed.offset;
        for sequence in sequences(placed.block) {
            position += sequence.literal_length as usize;
            out.push((position, *sequence));
            position += sequence.match_length as usize;
        }
    }
    out
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn write_sequence(sequence: &Sequence, out: &mut Vec<u8>) {
    varint(u64::from(sequence.literal_length), out);
    varint(u64::from(sequence.offset_value), out);
    varint(u64::from(sequence.match_length), out);
}

/// Maps target content positions to source positions through 4 KiB pieces of equal content.
struct ContentMap<'a> {
    source_pieces: HashMap<u64, usize>,
    target: &'a [u8],
}

impl<'a> ContentMap<'a> {
    fn new(source: &[u8], target: &'a [u8]) -> Self {
        let mut source_pieces = HashMap::new();
        for (index, piece) in source.chunks_exact(PIECE).enumerate() {
            source_pieces
                .entry(zstd_structure::xxh64(piece))
                .or_insert(index * PIECE);
        }
        Self {
            source_pieces,
            target,
        }
    }

    fn source_position(&self, target_position: usize) -> Option<usize> {
        let start = target_position / PIECE * PIECE;
        let piece = self.target.get(start..start + PIECE)?;
        let source_start = self.source_pieces.get(&zstd_structure::xxh64(piece))?;
        Some(source_start + target_position - start)
    }
}

/// Per block: alternating runs of predicted sequences and explicit ones.
fn sequence_diff(
    target: &[Placed<'_>],
    source_starts: &[(usize, Sequence)],
    map: &ContentMap<'_>,
) -> (Vec<u8>, usize) {
    let mut diff = Vec::new();
    let mut predicted_total = 0;
    for placed in target {
        let mut position = placed.offset;
        let mut run = 0u64;
        let mut explicit = Vec::new();
        for sequence in sequences(placed.block) {
            position += sequence.literal_length as usize;
            let predicted = map.source_position(position).is_some_and(|source| {
                source_starts
                    .binary_search_by_key(&source, |(start, _)| *start)
                    .is_ok_and(|index| source_starts[index].1 == *sequence)
            });
            position += sequence.match_length as usize;
            if predicted {
                run += 1;
                predicted_total += 1;
            } else {
                varint(run, &mut explicit);
                write_sequence(sequence, &mut explicit);
                run = 0;
            }
        }
        varint(run, &mut explicit);
        varint(sequences(placed.block).len() as u64, &mut diff);
        diff.extend_from_slice(&explicit);
    }
    (diff, predicted_total)
}

/// Bytes of the table descriptions a block carries.
fn description_bytes(block: &Block) -> usize {
    let BlockKind::Compressed(compressed) = &block.kind else {
        return 0;
    };
    let huffman = match &compressed.literals.kind {
        LiteralsKind::Compressed { description } => description.len(),
        _ => 0,
    };
    let modes = compressed.sequences.modes.iter().flatten();
    huffman
        + modes
            .map(|mode| match mode {
                TableMode::Compressed(description) => description.len(),
                _ => 0,
            })
            .sum::<usize>()
}

/// The block's choices besides its literals and sequences (what else must be carried).
fn choices(block: &Block, out: &mut Vec<u8>) {
    out.push(u8::from(block.last));
    varint(u64::from(block.content_length), out);
    let BlockKind::Compressed(compressed) = &block.kind else {
        out.push(matches!(block.kind, BlockKind::Rle(_)) as u8);
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

fn compressed_size(bytes: &[u8]) -> usize {
    let mut out = vec![0u8; zstd_safe::compress_bound(bytes.len())];
    zstd_safe::compress(&mut out[..], bytes, 19).expect("compress")
}

/// Target blocks whose content equals a source block's, and of those the ones with equal
/// sequences and with equal structure.
fn block_alignment(source: &ParsedStream, target: &ParsedStream) -> (usize, usize, usize) {
    let hash = |stream: &ParsedStream, placed: &Placed<'_>| {
        let end = placed.offset + placed.block.content_length as usize;
        zstd_structure::xxh64(&stream.content[placed.offset..end])
    };
    let source_blocks = placed_blocks(source);
    let by_hash: HashMap<u64, &Block> = source_blocks
        .iter()
        .map(|placed| (hash(source, placed), placed.block))
        .collect();
    let (mut content, mut sequences_equal, mut structure) = (0, 0, 0);
    for placed in placed_blocks(target) {
        let Some(aligned) = by_hash.get(&hash(target, &placed)) else {
            continue;
        };
        content += 1;
        sequences_equal += usize::from(sequences(aligned) == sequences(placed.block));
        structure += usize::from(*aligned == placed.block);
    }
    (content, sequences_equal, structure)
}

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    assert_eq!(
        paths.len(),
        2,
        "usage: zstd_prediction SOURCE.zst TARGET.zst"
    );
    let parse = |path: &str| {
        let bytes = std::fs::read(path).expect("read");
        zstd_structure::parse(&bytes, 1 << 30).expect("parse")
    };
    let (source, target) = (parse(&paths[0]), parse(&paths[1]));
    let target_blocks = placed_blocks(&target);
    let (same_content, same_sequences, same_structure) = block_alignment(&source, &target);
    println!("target blocks: {}", target_blocks.len());
    println!("  with a source block of equal content: {same_content}");
    println!(
        "  of those, with equal sequences: {same_sequences}; equal structure: {same_structure}"
    );
    let map = ContentMap::new(&source.content, &target.content);
    let source_starts = match_starts(&placed_blocks(&source));
    let (diff, predicted) = sequence_diff(&target_blocks, &source_starts, &map);
    let mut all = Vec::new();
    let (mut descriptions, mut carried_choices) = (0, Vec::new());
    for placed in &target_blocks {
        sequences(placed.block)
            .iter()
            .for_each(|sequence| write_sequence(sequence, &mut all));
        descriptions += description_bytes(placed.block);
        choices(placed.block, &mut carried_choices);
    }
    let total = match_starts(&target_blocks).len();
    println!("target sequences: {total}, predicted from the source: {predicted}");
    println!("sequence diff: {} B zstd -19", compressed_size(&diff));
    println!(
        "all sequences, no prediction: {} B zstd -19",
        compressed_size(&all)
    );
    println!("table descriptions: {descriptions} B");
    println!(
        "block choices with descriptions: {} B zstd -19",
        compressed_size(&carried_choices)
    );
}
