//! Checks the `dfast` parse port against a real frame: parses FRAME.zst with the structure
//! parser, recomputes every block's sequences from the content with
//! `adudiff_core::codec::zstd_parse`, and prints how many blocks and sequences are exact, the
//! first mismatch, the port's speed and the process's peak memory.
//!
//! `cargo run --release --example zstd_parse_check -- FRAME.zst [--single | --one-shot | -B BYTES] [--1.5.7 | --1.4.8] [--carry OUT]`
//! (default: libzstd's multithreaded level 3 with its default job size; `--single` for a
//! frame made by the CLI with `--single-thread`; `--1.5.7`, `--1.4.8` for those versions' rules; `--carry OUT` writes the block choices and
//! table descriptions a recipe would carry besides the content; `--one-shot` for a frame made by the library
//! without workers from the whole input at once; `-B` for the job size given to the producer).

use adudiff_core::codec::zstd_parse::{block_sequences, BlockShape, DfastVersion, Producer};
use adudiff_core::codec::zstd_structure::{self, Frame, Sequence, StructureError};
use std::time::Instant;

/// Largest content this tool regenerates.
const MAX_CONTENT: usize = 4 << 30;

#[derive(Default)]
struct Tally {
    blocks: usize,
    blocks_exact: usize,
    sequences: usize,
    sequences_exact: usize,
    first_mismatch: Option<String>,
}

impl Tally {
    fn compare(&mut self, block: usize, expected: &[Sequence], got: &[Sequence]) {
        self.blocks += 1;
        self.sequences += expected.len();
        let common = expected.iter().zip(got).take_while(|(a, b)| a == b).count();
        if expected == got {
            self.blocks_exact += 1;
            self.sequences_exact += expected.len();
            return;
        }
        // Sequences equal position by position (a rough measure once the parse diverged).
        self.sequences_exact += expected.iter().zip(got).filter(|(a, b)| a == b).count();
        if self.first_mismatch.is_none() {
            self.first_mismatch = Some(format!(
                "block {block}: {} sequences expected, {} recomputed; first difference at \
                 sequence {common}: expected {:?}, recomputed {:?}",
                expected.len(),
                got.len(),
                expected.get(common),
                got.get(common)
            ));
        }
    }
}

/// CPU seconds this process has used (user + system, from /proc/self/stat in the usual 100
/// ticks per second), so that the port's speed can be read on a loaded machine.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percent(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let path = arguments.first().ok_or(
        "usage: zstd_parse_check FRAME.zst [--single | --one-shot | -B BYTES] [--1.5.7 | --1.4.8] [--carry OUT]",
    )?;
    let single = arguments.iter().any(|argument| argument == "--single");
    let one_shot = arguments.iter().any(|argument| argument == "--one-shot");
    let version = if arguments.iter().any(|argument| argument == "--1.5.7") {
        DfastVersion::Libzstd157
    } else if arguments.iter().any(|argument| argument == "--1.4.8") {
        DfastVersion::Libzstd148
    } else {
        DfastVersion::Libzstd152To156
    };
    let job_size = arguments
        .iter()
        .position(|argument| argument == "-B")
        .and_then(|index| arguments.get(index + 1))
        .map(|value| value.parse::<usize>())
        .transpose()?;
    let carry_path = arguments
        .iter()
        .position(|argument| argument == "--carry")
        .and_then(|index| arguments.get(index + 1));
    let mut carried = Vec::new();
    let bytes = std::fs::read(path)?;
    let parse_start = Instant::now();
    let stream = zstd_structure::parse(&bytes, MAX_CONTENT)?;
    let parse_seconds = parse_start.elapsed().as_secs_f64();
    let mut tally = Tally::default();
    let mut content_start = 0;
    let mut port_seconds = 0.0;
    let mut port_cpu_seconds = 0.0;
    for frame in &stream.frames {
        let Frame::Zstd(frame) = frame else { continue };
        let length = frame.content_length();
        let content = &stream.content[content_start..content_start + length];
        content_start += length;
        let size = frame.header.content_size;
        let producer = if one_shot {
            Producer::level3_single(size)
        } else if single {
            Producer::level3_cli_single_thread(size)
        } else {
            Producer::level3_multithreaded_version(size, job_size, version)
        }
        .with_version(version);
        println!("frame: {length} B of content, producer {producer:?}");
        for block in &frame.blocks {
            block.write_choices(&mut carried);
        }
        let shapes = BlockShape::of_frame(frame);
        let start = Instant::now();
        let cpu_start = cpu_seconds();
        block_sequences(content, &shapes, &producer, |block, got| {
            let expected: &[Sequence] = match &frame.blocks[block].kind {
                zstd_structure::BlockKind::Compressed(compressed) => {
                    &compressed.sequences.sequences
                }
                _ => return Ok::<(), StructureError>(()),
            };
            tally.compare(block, expected, got);
            Ok(())
        })?;
        port_seconds += start.elapsed().as_secs_f64();
        port_cpu_seconds += cpu_seconds() - cpu_start;
    }
    if let Some(carry_path) = carry_path {
        std::fs::write(carry_path, &carried)?;
        println!(
            "block choices and table descriptions: {} B written to {carry_path}",
            carried.len()
        );
    }
    println!(
        "compressed blocks exact: {} of {} ({:.3} %)",
        tally.blocks_exact,
        tally.blocks,
        percent(tally.blocks_exact, tally.blocks)
    );
    println!(
        "sequences exact: {} of {} ({:.3} %)",
        tally.sequences_exact,
        tally.sequences,
        percent(tally.sequences_exact, tally.sequences)
    );
    println!(
        "first mismatch: {}",
        tally.first_mismatch.as_deref().unwrap_or("none")
    );
    println!(
        "parse (structure) {parse_seconds:.2} s; port {port_seconds:.2} s = {:.1} MB/s of content \
         ({port_cpu_seconds:.2} CPU s = {:.1} MB/s per CPU second); peak RSS of this process {} KiB \
         (content and parsed frame included)",
        stream.content.len() as f64 / 1e6 / port_seconds.max(1e-9),
        stream.content.len() as f64 / 1e6 / port_cpu_seconds.max(1e-9),
        peak_rss_kib()
    );
    Ok(())
}
