//! Unit tests without external tools: the recomputed parse is a valid parse of the content
//! (decoding the sequences regenerates it) within each producer's window and job limits, and
//! bad shapes or parameters are refused without panicking. Exactness against real libzstd
//! frames is tested in `tests/zstd_parse.rs`.

use super::*;
use crate::codec::zstd_structure::{resolve_offset, INITIAL_REPEAT_OFFSETS};

/// Deterministic content with repeats at many distances, runs and noise.
fn content(length: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(length + 1024);
    while out.len() < length {
        let run = 1 + (next() % 700) as usize;
        match next() % 4 {
            0 => out.extend((0..run).map(|_| next() as u8)),
            1 => out.resize(out.len() + run, (next() % 3) as u8),
            _ if out.len() > run => {
                let distance = 1 + (next() % out.len().min(3 << 20) as u64) as usize;
                let start = out.len() - distance.max(run).min(out.len());
                out.extend_from_within(start..start + run);
            }
            _ => out.extend_from_slice(b"lorem ipsum dolor "),
        }
    }
    out.truncate(length);
    out
}

/// Blocks of 128 KiB within jobs of `job_size` (the last of each job shorter).
fn shapes(length: usize, job_size: usize) -> Vec<BlockShape> {
    let mut blocks = Vec::new();
    let mut job_start = 0;
    while job_start < length {
        let job_end = (job_start + job_size).min(length);
        let mut position = job_start;
        while position < job_end {
            let block = (job_end - position).min(MAX_BLOCK_SIZE);
            blocks.push(BlockShape {
                content_length: block as u32,
                compressed: true,
            });
            position += block;
        }
        job_start = job_end;
    }
    blocks
}

/// Decodes the recomputed sequences and checks they regenerate `data`, that no match reaches
/// further than the window, and (for jobs) no further back than the job's overlap.
fn assert_valid_parse(data: &[u8], blocks: &[BlockShape], producer: &Producer) -> usize {
    let mut decoded = Vec::with_capacity(data.len());
    let mut repeats = INITIAL_REPEAT_OFFSETS;
    let mut sequence_count = 0;
    let window = 1usize << producer.params.window_log;
    block_sequences(data, blocks, producer, |number, sequences| {
        let block_end = decoded.len() + blocks[number].content_length as usize;
        let lowest = match producer.threading {
            Threading::Jobs { job_size, overlap } => {
                (decoded.len() / job_size * job_size).saturating_sub(overlap)
            }
            _ => 0,
        };
        for sequence in sequences {
            let literals = sequence.literal_length as usize;
            decoded.extend_from_slice(&data[decoded.len()..decoded.len() + literals]);
            let offset = resolve_offset(sequence, &mut repeats)?;
            assert!(
                offset <= window && offset <= decoded.len() - lowest,
                "offset {offset}"
            );
            for _ in 0..sequence.match_length {
                decoded.push(decoded[decoded.len() - offset]);
            }
            assert!(decoded.len() <= block_end, "match past the block");
        }
        decoded.extend_from_slice(&data[decoded.len()..block_end]);
        sequence_count += sequences.len();
        Ok(())
    })
    .expect("recomputation");
    assert!(
        decoded == data,
        "the sequences do not regenerate the content"
    );
    sequence_count
}

#[test]
fn every_producer_finds_a_valid_parse() {
    // Natively past the single-threaded stream's buffer wrap (2 MiB + 128 KiB); smaller under
    // emulation, still several jobs.
    let emulated = std::env::var_os("ADUDIFFAPI_TEST_RUNNER").is_some();
    let data = content(if emulated { 3 << 19 } else { 5 << 20 }, 7);
    let size = Some(data.len() as u64);
    let jobs = Producer::level3_multithreaded(size, Some(512 << 10));
    let Threading::Jobs { job_size, .. } = jobs.threading else {
        panic!("a 5 MiB input is compressed in jobs");
    };
    let whole = shapes(data.len(), data.len());
    for version in [
        DfastVersion::Libzstd148,
        DfastVersion::Libzstd152To156,
        DfastVersion::Libzstd157,
    ] {
        let jobs = jobs.with_version(version);
        assert!(assert_valid_parse(&data, &shapes(data.len(), job_size), &jobs) > 1000);
        for producer in [
            Producer::level3_single(size),
            Producer::level3_cli_single_thread(size),
        ] {
            let producer = producer.with_version(version);
            assert!(assert_valid_parse(&data, &whole, &producer) > 1000);
        }
    }
}

#[test]
fn level3_parameters_follow_the_content_size() {
    let large = DfastParams::level3(Some(200 << 20));
    assert_eq!(large, DfastParams::level3(None));
    assert_eq!(
        (large.window_log, large.hash_log, large.chain_log),
        (21, 17, 16)
    );
    let small = DfastParams::level3(Some(1000));
    assert_eq!(
        small.window_log, 10,
        "window shrunk to the content, at least 1 KiB"
    );
    assert_eq!(small.hash_log, 11, "hash table at most twice the window");
    assert_eq!(small.chain_log, 10, "short table at most the window");
    for size in [0, 1, 100, 16 << 10, (128 << 10) + 1, 3 << 20] {
        DfastParams::level3(Some(size))
            .validate()
            .expect("libzstd's parameters are valid");
    }
    let small_input = Producer::level3_multithreaded(Some(MIN_JOB_SIZE as u64), None);
    assert_eq!(small_input.threading, Threading::Streaming);
}

#[test]
fn small_and_odd_blocks_do_not_panic() {
    let data = content(300, 3);
    for split in 0..=20u32 {
        let blocks = [
            BlockShape {
                content_length: split,
                compressed: split % 2 == 0,
            },
            BlockShape {
                content_length: 0,
                compressed: false,
            },
            BlockShape {
                content_length: 300 - split,
                compressed: true,
            },
        ];
        for producer in [
            Producer::level3_single(None),
            Producer::level3_cli_single_thread(Some(300)),
            Producer::level3_multithreaded(None, None),
        ] {
            assert_valid_parse(&data, &blocks, &producer);
        }
    }
    let empty = [BlockShape {
        content_length: 0,
        compressed: false,
    }];
    assert_eq!(
        assert_valid_parse(&[], &empty, &Producer::level3_single(None)),
        0
    );
}

#[test]
fn bad_shapes_and_parameters_are_refused() {
    let data = content(4 << 20, 5);
    let producer = Producer::level3_multithreaded(None, Some(512 << 10));
    let ignore = |_: usize, _: &[Sequence]| Ok(());
    let mut short = shapes(data.len(), 512 << 10);
    short.pop();
    assert!(block_sequences(&data, &short, &producer, ignore).is_err());
    let oversized = [BlockShape {
        content_length: MAX_BLOCK_SIZE as u32 + 1,
        compressed: true,
    }];
    let slice = &data[..MAX_BLOCK_SIZE + 1];
    assert!(block_sequences(slice, &oversized, &producer, ignore).is_err());
    let crossing = shapes(data.len(), 500 << 10);
    assert!(block_sequences(&data, &crossing, &producer, ignore).is_err());
    for params in [
        DfastParams {
            hash_log: 30,
            ..producer.params
        },
        DfastParams {
            chain_log: 2,
            ..producer.params
        },
        DfastParams {
            window_log: 31,
            ..producer.params
        },
        DfastParams {
            min_match: 9,
            ..producer.params
        },
    ] {
        let bad = Producer { params, ..producer };
        let whole = shapes(data.len(), 512 << 10);
        assert!(block_sequences(&data, &whole, &bad, ignore).is_err());
    }
    let huge_jobs = Producer {
        threading: Threading::Jobs {
            job_size: usize::MAX,
            overlap: 1,
        },
        ..producer
    };
    let whole = shapes(data.len(), data.len());
    assert!(block_sequences(&data, &whole, &huge_jobs, ignore).is_err());
    let stop = |_: usize, _: &[Sequence]| Err(StructureError::new("stop"));
    assert!(block_sequences(&data, &whole, &Producer::level3_single(None), stop).is_err());
}
