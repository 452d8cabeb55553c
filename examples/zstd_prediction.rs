//! Measures how well a source zstd stream's structure predicts a target stream's: the numbers
//! behind the design of a structure-carrying recipe (docs/ZSTD-STRUCTURE.md).
//!
//! `cargo run --release --example zstd_prediction -- SOURCE.zst TARGET.zst`
//!
//! Both streams are parsed into their structure and content. Block level: each target block is
//! aligned to the source block with the same content (by hash), and the tool counts the target
//! blocks whose sequences (and whole structure) equal the aligned block's.
//!
//! Sequence level: a content map (copy regions: target bytes equal to source bytes, found by a
//! rolling hash over 32-byte windows) maps each target position to a source position. A target
//! sequence starting at position `p` (its literals start there) is predicted by the first
//! source match at or after the mapped position (usually a source sequence starts exactly
//! there; otherwise this resynchronises after a difference): the literals up to that match,
//! its match length, and its resolved offset translated through the map (the source position
//! it references, mapped back into the target before the match). Three predictors are
//! counted: the coded sequence equal, the resolved offset equal, the translated offset equal;
//! repeat codes are compared by the offset they resolve to, and a sequence whose producer
//! coded its offset otherwise than the first matching repeat code is an exception.
//!
//! The carried stream this suggests replaces the content delta: the content map, per block the
//! runs of fully predicted sequences and the others written out (each field only where it
//! differs from the prediction), the literal bytes the map does not cover, and the blocks'
//! choices and table descriptions. Each part is zstd -19 compressed and summed; the same
//! matcher's content-only delta (map plus every uncovered target byte) is the reference.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use adudiff_core::codec::zstd_structure::{
    self, Block, BlockKind, Frame, LiteralsKind, ParsedStream, Sequence, TableMode,
    INITIAL_REPEAT_OFFSETS,
};

/// Bytes hashed per window of the content matcher.
const WINDOW: usize = 32;
/// Source positions indexed: every STRIDE-th (any common run of WINDOW + STRIDE - 1 is found).
const STRIDE: usize = 16;
/// Literals a prediction may skip to the next source match.
const MAX_RESYNC_LITERALS: usize = 1 << 16;
/// Regions sorted by source start examined when a source position is mapped back.
const INVERSE_SCAN: usize = 64;

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

/// A sequence at its place: where its literals start, its resolved offset and the repeat
/// offsets before it.
#[derive(Clone, Copy)]
struct Located {
    start: usize,
    sequence: Sequence,
    offset: usize,
    repeats: [usize; 3],
}

/// Every sequence of a stream in order, with the index range of each block's.
fn locate(stream: &ParsedStream) -> (Vec<Located>, Vec<std::ops::Range<usize>>) {
    let (mut located, mut ranges, mut position) = (Vec::new(), Vec::new(), 0);
    for frame in &stream.frames {
        let Frame::Zstd(frame) = frame else { continue };
        let mut repeats = INITIAL_REPEAT_OFFSETS;
        for block in &frame.blocks {
            let first = located.len();
            let mut start = position;
            for sequence in sequences(block) {
                let before = repeats;
                let offset = zstd_structure::resolve_offset(sequence, &mut repeats)
                    .expect("parsed offsets resolve");
                located.push(Located {
                    start,
                    sequence: *sequence,
                    offset,
                    repeats: before,
                });
                start += (sequence.literal_length + sequence.match_length) as usize;
            }
            ranges.push(first..located.len());
            position += block.content_length as usize;
        }
    }
    (located, ranges)
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn signed_varint(value: i64, out: &mut Vec<u8>) {
    varint(((value << 1) ^ (value >> 63)) as u64, out);
}

/// Target bytes `target..target + length` equal source bytes `source..source + length`.
#[derive(Clone, Copy)]
struct Region {
    target: usize,
    source: usize,
    length: usize,
}

/// A hasher for keys that are already mixed hashes.
#[derive(Default)]
struct PremixedHasher(u64);

impl Hasher for PremixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

const ROLL_BASE: u64 = 0x100_0000_01b3;

fn mix(hash: u64) -> u64 {
    let hash = (hash ^ (hash >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    hash ^ (hash >> 29)
}

/// A polynomial hash of one window, rolled a byte at a time.
struct Rolling {
    hash: u64,
    outgoing_factor: u64,
}

impl Rolling {
    fn new(window: &[u8]) -> Self {
        let hash = window.iter().fold(0u64, |hash, &byte| {
            hash.wrapping_mul(ROLL_BASE).wrapping_add(u64::from(byte))
        });
        let outgoing_factor = (1..WINDOW).fold(1u64, |factor, _| factor.wrapping_mul(ROLL_BASE));
        Self {
            hash,
            outgoing_factor,
        }
    }

    fn roll(&mut self, outgoing: u8, incoming: u8) {
        self.hash = self
            .hash
            .wrapping_sub(u64::from(outgoing).wrapping_mul(self.outgoing_factor))
            .wrapping_mul(ROLL_BASE)
            .wrapping_add(u64::from(incoming));
    }
}

/// The content map: copy regions of the target from the source, sorted by target position.
struct ContentMap {
    regions: Vec<Region>,
    /// Indices into `regions`, sorted by source position.
    by_source: Vec<u32>,
}

impl ContentMap {
    /// Greedy matcher: source windows indexed every STRIDE bytes; the target scanned byte by
    /// byte outside regions, trying the previous region's displacement first; every hit is
    /// extended both ways.
    fn new(source: &[u8], target: &[u8]) -> Self {
        let mut index: HashMap<u64, u32, BuildHasherDefault<PremixedHasher>> = HashMap::default();
        if source.len() >= WINDOW {
            let mut rolling = Rolling::new(&source[..WINDOW]);
            for start in 0..=source.len() - WINDOW {
                if start > 0 {
                    rolling.roll(source[start - 1], source[start + WINDOW - 1]);
                }
                if start % STRIDE == 0 {
                    index.entry(mix(rolling.hash)).or_insert(start as u32);
                }
            }
        }
        let mut regions: Vec<Region> = Vec::new();
        let (mut position, mut covered_to, mut displacement) = (0usize, 0usize, 0isize);
        while position + WINDOW <= target.len() {
            let mut rolling = Rolling::new(&target[position..position + WINDOW]);
            let found = loop {
                let window = &target[position..position + WINDOW];
                let continued = position as isize + displacement;
                if continued >= 0
                    && source.get(continued as usize..continued as usize + WINDOW) == Some(window)
                {
                    break Some(continued as usize);
                }
                if let Some(&start) = index.get(&mix(rolling.hash)) {
                    let start = start as usize;
                    if &source[start..start + WINDOW] == window {
                        break Some(start);
                    }
                }
                if position + WINDOW >= target.len() {
                    break None;
                }
                rolling.roll(target[position], target[position + WINDOW]);
                position += 1;
            };
            let Some(mut source_start) = found else { break };
            let mut target_start = position;
            while target_start > covered_to
                && source_start > 0
                && target[target_start - 1] == source[source_start - 1]
            {
                target_start -= 1;
                source_start -= 1;
            }
            let mut length = position - target_start + WINDOW;
            while target_start + length < target.len()
                && source_start + length < source.len()
                && target[target_start + length] == source[source_start + length]
            {
                length += 1;
            }
            regions.push(Region {
                target: target_start,
                source: source_start,
                length,
            });
            displacement = source_start as isize - target_start as isize;
            covered_to = target_start + length;
            position = covered_to;
        }
        let mut by_source: Vec<u32> = (0..regions.len() as u32).collect();
        by_source.sort_by_key(|&index| regions[index as usize].source);
        Self { regions, by_source }
    }

    fn region_at(&self, target_position: usize) -> Option<&Region> {
        let index = self
            .regions
            .partition_point(|region| region.target <= target_position);
        let region = self.regions.get(index.checked_sub(1)?)?;
        (target_position < region.target + region.length).then_some(region)
    }

    fn source_position(&self, target_position: usize) -> Option<usize> {
        let region = self.region_at(target_position)?;
        Some(region.source + target_position - region.target)
    }

    /// The target position, before `limit`, whose content the map takes from `source_position`:
    /// the one at the same distance when it maps there, otherwise the latest target copy among
    /// the regions that start nearest before it in the source.
    fn target_position(
        &self,
        source_position: usize,
        same_distance: usize,
        limit: usize,
    ) -> Option<usize> {
        if self.source_position(same_distance) == Some(source_position) {
            return Some(same_distance);
        }
        let end = self
            .by_source
            .partition_point(|&index| self.regions[index as usize].source <= source_position);
        self.by_source[end.saturating_sub(INVERSE_SCAN)..end]
            .iter()
            .map(|&index| &self.regions[index as usize])
            .filter(|region| source_position < region.source + region.length)
            .map(|region| region.target + source_position - region.source)
            .filter(|&position| position < limit)
            .max()
    }

    /// The map as carried: per region the gap since the previous one, the displacement change
    /// and the length.
    fn serialized(&self) -> Vec<u8> {
        let (mut out, mut target_end, mut displacement) = (Vec::new(), 0usize, 0i64);
        for region in &self.regions {
            varint((region.target - target_end) as u64, &mut out);
            let region_displacement = region.source as i64 - region.target as i64;
            signed_varint(region_displacement - displacement, &mut out);
            varint(region.length as u64, &mut out);
            target_end = region.target + region.length;
            displacement = region_displacement;
        }
        out
    }

    /// Every target byte in `range` the map does not cover, appended to `out`.
    fn uncovered(&self, target: &[u8], range: std::ops::Range<usize>, out: &mut Vec<u8>) {
        let mut position = range.start;
        let mut index = self
            .regions
            .partition_point(|region| region.target + region.length <= position);
        while position < range.end {
            match self.regions.get(index) {
                Some(region) if region.target <= position => {
                    position = position.max(region.target + region.length);
                    index += 1;
                }
                Some(region) => {
                    let end = region.target.min(range.end);
                    out.extend_from_slice(&target[position..end]);
                    position = end;
                }
                None => {
                    out.extend_from_slice(&target[position..range.end]);
                    position = range.end;
                }
            }
        }
    }
}

/// What the source predicts for one target sequence.
struct Prediction {
    /// Whether a source sequence starts at the mapped position (otherwise the next source
    /// match is predicted, with the literals up to it).
    exact_start: bool,
    literal_length: u32,
    match_length: u32,
    /// The source sequence as coded (same offset value).
    coded: Sequence,
    /// The source's resolved offset, untranslated.
    source_offset: usize,
    /// The source's referenced position mapped into the target, as an offset.
    translated_offset: Option<usize>,
}

fn predict(target: &Located, source: &[Located], map: &ContentMap) -> Option<Prediction> {
    let source_start = map.source_position(target.start)?;
    let index = source.partition_point(|located| {
        located.start + (located.sequence.literal_length as usize) < source_start
    });
    let located = source.get(index)?;
    let literal_length = (located.start - source_start) as u32 + located.sequence.literal_length;
    if literal_length as usize >= MAX_RESYNC_LITERALS {
        return None;
    }
    let match_start = target.start + literal_length as usize;
    let referenced = (source_start + literal_length as usize).checked_sub(located.offset);
    let translated_offset = referenced
        .and_then(|referenced| {
            map.target_position(
                referenced,
                match_start.checked_sub(located.offset)?,
                match_start,
            )
        })
        .map(|position| match_start - position);
    Some(Prediction {
        exact_start: located.start == source_start,
        literal_length,
        match_length: located.sequence.match_length,
        coded: Sequence {
            literal_length,
            ..located.sequence
        },
        source_offset: located.offset,
        translated_offset,
    })
}

/// Counts per predictor and the carried streams of the translated-offset one.
#[derive(Default)]
struct Accounting {
    with_prediction: usize,
    exact_start: usize,
    coded_equal: usize,
    resolved_equal: usize,
    translated_equal: usize,
    lengths_equal: usize,
    repeat_exceptions: usize,
    fully_predicted: usize,
    runs: Vec<u8>,
    flags: Vec<u8>,
    literal_lengths: Vec<u8>,
    match_lengths: Vec<u8>,
    offsets: Vec<u8>,
}

impl Accounting {
    /// Adds one target sequence: counted, and carried as part of a run or written out.
    fn add(&mut self, target: &Located, prediction: Option<Prediction>, run: &mut u64) {
        let sequence = &target.sequence;
        let mut flags = 0u8;
        if let Some(prediction) = &prediction {
            self.with_prediction += 1;
            self.exact_start += usize::from(prediction.exact_start);
            flags |= 1;
            self.coded_equal += usize::from(prediction.coded == *sequence);
            let lengths = prediction.literal_length == sequence.literal_length
                && prediction.match_length == sequence.match_length;
            self.lengths_equal += usize::from(lengths);
            self.resolved_equal +=
                usize::from(lengths && prediction.source_offset == target.offset);
            if prediction.literal_length == sequence.literal_length {
                flags |= 2;
            }
            if prediction.match_length == sequence.match_length {
                flags |= 4;
            }
            if prediction.translated_offset == Some(target.offset) {
                flags |= 8;
                self.translated_equal += usize::from(lengths);
                let canonical = zstd_structure::repeat_coded_offset_value(
                    target.offset,
                    sequence.literal_length,
                    &target.repeats,
                );
                if canonical != sequence.offset_value as usize {
                    flags |= 16;
                    self.repeat_exceptions += 1;
                }
            }
        }
        if flags == 15 {
            self.fully_predicted += 1;
            *run += 1;
            return;
        }
        varint(*run, &mut self.runs);
        *run = 0;
        self.flags.push(flags);
        if flags & 2 == 0 {
            varint(
                u64::from(sequence.literal_length),
                &mut self.literal_lengths,
            );
        }
        if flags & 4 == 0 {
            varint(u64::from(sequence.match_length), &mut self.match_lengths);
        }
        if flags & 8 == 0 || flags & 16 != 0 {
            varint(u64::from(sequence.offset_value), &mut self.offsets);
        }
    }
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

/// The literal bytes of a block the map does not cover (for raw and RLE blocks: the content).
fn uncovered_literals(
    placed: &Placed<'_>,
    located: &[Located],
    map: &ContentMap,
    content: &[u8],
    out: &mut Vec<u8>,
) {
    let end = placed.offset + placed.block.content_length as usize;
    match placed.block.kind {
        BlockKind::Rle(byte) => {
            out.push(byte);
            return;
        }
        BlockKind::Raw => {
            map.uncovered(content, placed.offset..end, out);
            return;
        }
        BlockKind::Compressed(_) => {}
    }
    let mut match_end = placed.offset;
    for sequence in located {
        let literal_end = sequence.start + sequence.sequence.literal_length as usize;
        map.uncovered(content, sequence.start..literal_end, out);
        match_end = literal_end + sequence.sequence.match_length as usize;
    }
    map.uncovered(content, match_end..end, out);
}

fn report(name: &str, bytes: &[u8]) -> usize {
    let size = compressed_size(bytes);
    println!("  {name}: {} B raw, {size} B zstd -19", bytes.len());
    size
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
    let covered: usize = map.regions.iter().map(|region| region.length).sum();
    println!(
        "content map: {} regions covering {covered} of {} target bytes",
        map.regions.len(),
        target.content.len()
    );
    let (source_located, _) = locate(&source);
    let (target_located, block_ranges) = locate(&target);
    let mut accounting = Accounting::default();
    let (mut literals, mut carried_choices, mut descriptions) = (Vec::new(), Vec::new(), 0);
    for (placed, range) in target_blocks.iter().zip(&block_ranges) {
        let block_sequences = &target_located[range.clone()];
        varint(block_sequences.len() as u64, &mut accounting.runs);
        let mut run = 0;
        for located in block_sequences {
            let prediction = predict(located, &source_located, &map);
            accounting.add(located, prediction, &mut run);
        }
        varint(run, &mut accounting.runs);
        uncovered_literals(
            placed,
            block_sequences,
            &map,
            &target.content,
            &mut literals,
        );
        descriptions += description_bytes(placed.block);
        placed.block.write_choices(&mut carried_choices);
    }
    let total = target_located.len();
    let percent = |count: usize| format!("{count} ({:.1} %)", 100.0 * count as f64 / total as f64);
    println!("target sequences: {total}");
    println!(
        "  a source match at or after the mapped start: {}",
        percent(accounting.with_prediction)
    );
    println!(
        "  of those, a source sequence starting there: {}",
        percent(accounting.exact_start)
    );
    println!(
        "  predicted as coded (same offset value): {}",
        percent(accounting.coded_equal)
    );
    println!("  lengths equal: {}", percent(accounting.lengths_equal));
    println!(
        "  lengths and resolved offset equal: {}",
        percent(accounting.resolved_equal)
    );
    println!(
        "  lengths and translated offset equal: {}",
        percent(accounting.translated_equal)
    );
    println!(
        "  of those coded otherwise than repeat-first: {}",
        accounting.repeat_exceptions
    );
    println!(
        "  fully predicted (carried in runs): {}",
        percent(accounting.fully_predicted)
    );
    println!("table descriptions: {descriptions} B");
    println!("carried (translated-offset predictor):");
    let carried = [
        report("content map", &map.serialized()),
        report("runs", &accounting.runs),
        report("flags", &accounting.flags),
        report("literal lengths", &accounting.literal_lengths),
        report("match lengths", &accounting.match_lengths),
        report("offsets", &accounting.offsets),
        report("uncovered literal bytes", &literals),
        report("block choices with descriptions", &carried_choices),
    ];
    println!("  total: {} B", carried.iter().sum::<usize>());
    let mut uncovered = Vec::new();
    map.uncovered(&target.content, 0..target.content.len(), &mut uncovered);
    println!("content-only delta of the same matcher:");
    let content_only =
        report("content map", &map.serialized()) + report("uncovered bytes", &uncovered);
    println!("  total: {content_only} B");
}
