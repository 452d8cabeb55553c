//! The zstd structure codec against real producers: frames from Debian's zstd CLI (levels 1 to
//! `--ultra -22`, multithreaded jobs, `--long=27`, without checksum, concatenated) and from
//! PyPI `zstandard` builds of libzstd 1.4.8, 1.5.2, 1.5.5, 1.5.6 and 1.5.7 are parsed, their
//! content is checked against libzstd's decoder, and the structure is encoded back to the
//! exact bytes. The tools are required (`.ci/run` installs them): a missing one fails the test.

#[path = "support/rng.rs"]
mod rng;
#[path = "support/tool.rs"]
mod tool;

use std::path::PathBuf;

use adudiff_core::codec::zstd_structure::{self, BlockKind, Frame, LiteralsKind, TableMode};
use rng::Rng;
use tool::run_with_input;
use zstd_safe::{DCtx, DParameter, InBuffer, OutBuffer};

/// The libzstd versions of the PyPI `zstandard` releases `.ci/run` installs into
/// `/tmp/zstd-venv-<release>` (one virtual environment each).
const PYPI_RELEASES: [(&str, &str); 5] = [
    ("0.15.2", "1.4.8"),
    ("0.19.0", "1.5.2"),
    ("0.21.0", "1.5.5"),
    ("0.23.0", "1.5.6"),
    ("0.25.0", "1.5.7"),
];

/// Deterministic mixed content: text-like runs, random bytes, zero runs and edited copies of
/// earlier content (what makes literals, matches, raw and RLE blocks all appear).
fn mixed_content(length: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&[u8]; 8] = [
        b"kernel ",
        b"module ",
        b"0x7f3a ",
        b"lib/",
        b"usr/share/",
        b"\n",
        b"= ",
        b"config ",
    ];
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(length + 70_000);
    while out.len() < length {
        let run = 1 + rng.below(60_000) as usize;
        match rng.below(10) {
            0..=3 => {
                while out.len() < length && run > 0 && rng.below(run as u64 / 8 + 2) != 0 {
                    out.extend_from_slice(WORDS[rng.below(8) as usize]);
                }
            }
            4 => out.extend((0..run).map(|_| b'a' + (rng.below(26) * rng.below(26) / 25) as u8)),
            5 => out.extend((0..run * 3).map(|_| rng.next() as u8)),
            6 => out.resize(out.len() + run * 4, 0),
            _ if out.len() > run => {
                let start = rng.below((out.len() - run) as u64) as usize;
                out.extend_from_within(start..start + run);
                let edit = out.len() - 1 - rng.below(run as u64) as usize;
                out[edit] ^= 0x55;
            }
            _ => {}
        }
    }
    out.truncate(length);
    out
}

/// Debian's zstd CLI on `input`: through a file (content size known) or a pipe (unknown).
fn zstd_cli(args: &[&str], input: &[u8], through_file: bool) -> Vec<u8> {
    if !through_file {
        return run_with_input("zstd", &[&["-q", "-c"], args].concat(), input);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("input");
    std::fs::write(&path, input).expect("write input");
    let path = path.to_str().expect("utf-8 path");
    run_with_input("zstd", &[&["-q", "-c"], args, &[path]].concat(), b"")
}

/// A frame made by PyPI `zstandard` `release` (its bundled libzstd).
fn pypi_frame(release: &str, level: i32, threads: u32, input: &[u8]) -> Vec<u8> {
    let python: PathBuf = format!("/tmp/zstd-venv-{release}/bin/python").into();
    assert!(
        python.exists(),
        "{} is required (.ci/run creates it with PyPI zstandard=={release})",
        python.display()
    );
    let script = "import sys, zstandard as z\n\
        level, threads = int(sys.argv[1]), int(sys.argv[2])\n\
        p = z.ZstdCompressionParameters.from_level(level, threads=threads, job_size=524288 if threads else 0, write_checksum=1)\n\
        sys.stdout.buffer.write(z.ZstdCompressor(compression_params=p).compress(sys.stdin.buffer.read()))\n";
    let (level, threads) = (level.to_string(), threads.to_string());
    run_with_input(
        python.to_str().expect("utf-8"),
        &["-c", script, &level, &threads],
        input,
    )
}

/// libzstd's decoder (the bundled 1.5.7) on a stream of frames, window up to 2^27.
fn libzstd_decode(frames: &[u8]) -> Vec<u8> {
    let mut context = DCtx::create();
    context
        .set_parameter(DParameter::WindowLogMax(27))
        .expect("window log");
    let mut out = Vec::new();
    let mut input = InBuffer::around(frames);
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let mut output = OutBuffer::around(&mut chunk[..]);
        context
            .decompress_stream(&mut output, &mut input)
            .expect("libzstd decodes");
        let produced = output.pos();
        out.extend_from_slice(&chunk[..produced]);
        if input.pos == frames.len() && produced < chunk.len() {
            return out;
        }
    }
}

/// Parses `frames`, checks the content against libzstd's, encodes back and compares bytes;
/// on a difference, names the frame and block where it starts.
fn assert_round_trip(label: &str, frames: &[u8]) {
    let stream = zstd_structure::parse(frames, 256 << 20)
        .unwrap_or_else(|error| panic!("{label}: parse failed: {error}"));
    assert!(
        stream.content == libzstd_decode(frames),
        "{label}: content differs from libzstd's"
    );
    let encoded = zstd_structure::encode(&stream)
        .unwrap_or_else(|error| panic!("{label}: encode failed: {error}"));
    if encoded != frames {
        let at = encoded
            .iter()
            .zip(frames)
            .take_while(|(a, b)| a == b)
            .count();
        panic!(
            "{label}: re-encoded {} bytes differ from the {} original ones at byte {at}",
            encoded.len(),
            frames.len()
        );
    }
}

/// Counts of what the structure holds, to prove the inputs exercise every kind of section.
#[derive(Default, Debug)]
struct Coverage {
    blocks: [usize; 3],
    literals: [usize; 4],
    modes: [usize; 4],
}

fn coverage(frames: &[u8]) -> Coverage {
    let stream = zstd_structure::parse(frames, 256 << 20).expect("parse");
    let mut coverage = Coverage::default();
    for frame in &stream.frames {
        let Frame::Zstd(frame) = frame else { continue };
        for block in &frame.blocks {
            let BlockKind::Compressed(compressed) = &block.kind else {
                coverage.blocks[matches!(block.kind, BlockKind::Rle(_)) as usize] += 1;
                continue;
            };
            coverage.blocks[2] += 1;
            coverage.literals[match compressed.literals.kind {
                LiteralsKind::Raw => 0,
                LiteralsKind::Rle(_) => 1,
                LiteralsKind::Compressed { .. } => 2,
                LiteralsKind::Treeless => 3,
            }] += 1;
            for mode in compressed.sequences.modes.iter().flatten() {
                coverage.modes[match mode {
                    TableMode::Predefined => 0,
                    TableMode::Rle(_) => 1,
                    TableMode::Compressed(_) => 2,
                    TableMode::Repeat => 3,
                }] += 1;
            }
        }
    }
    coverage
}

#[test]
fn debian_cli_frames_round_trip() {
    let input = mixed_content(3 << 20, 0x5EED_0001);
    let cases: [(&[&str], bool); 10] = [
        (&["-1"], true),
        (&["-3"], false),
        (&["-9"], true),
        (&["-19"], false),
        (&["--ultra", "-22"], true),
        (&["-3", "-T0", "-B524288"], false),
        (&["-19", "-T2", "-B524288"], true),
        (&["-3", "-T2", "--long=27"], true),
        (&["-9", "--no-check"], false),
        (&["-1", "--no-check", "-T2", "-B524288"], true),
    ];
    for (args, through_file) in cases {
        let frame = zstd_cli(args, &input, through_file);
        assert_round_trip(&format!("zstd {args:?}"), &frame);
    }
}

#[test]
fn concatenated_and_skippable_frames_round_trip() {
    let first = zstd_cli(&["-3"], &mixed_content(700_000, 7), false);
    let second = zstd_cli(&["-19", "--no-check"], &mixed_content(300_000, 8), true);
    let mut skippable = vec![0x53, 0x2A, 0x4D, 0x18, 5, 0, 0, 0];
    skippable.extend_from_slice(b"hello");
    let stream = [first, skippable, second, zstd_cli(&["-1"], b"", true)].concat();
    assert_round_trip("concatenated frames", &stream);
}

#[test]
fn pypi_zstandard_frames_round_trip() {
    let input = mixed_content(2 << 20, 0x5EED_0002);
    for (release, libzstd) in PYPI_RELEASES {
        for (level, threads) in [(3, 0), (19, 2), (-5, 0)] {
            let frame = pypi_frame(release, level, threads, &input);
            assert_round_trip(
                &format!("libzstd {libzstd} level {level} threads {threads}"),
                &frame,
            );
        }
    }
}

#[test]
fn test_inputs_exercise_every_section_kind() {
    let input = mixed_content(3 << 20, 0x5EED_0001);
    let mut total = Coverage::default();
    for args in [&["-1"][..], &["-19"], &["-3", "-T2", "-B524288"]] {
        let found = coverage(&zstd_cli(args, &input, true));
        for (sum, part) in total.blocks.iter_mut().zip(found.blocks) {
            *sum += part;
        }
        for (sum, part) in total.literals.iter_mut().zip(found.literals) {
            *sum += part;
        }
        for (sum, part) in total.modes.iter_mut().zip(found.modes) {
            *sum += part;
        }
    }
    assert!(total.blocks.iter().all(|&count| count > 0), "{total:?}");
    assert!(total.literals[2] > 0 && total.literals[3] > 0, "{total:?}");
    assert!(total.modes.iter().all(|&count| count > 0), "{total:?}");
}

/// A real-size image: 40 MiB at `-19 -T2` with 4 MiB jobs (ten jobs, two workers).
#[test]
fn real_size_multithreaded_frame_round_trips() {
    let input = mixed_content(40 << 20, 0x5EED_0003);
    let frame = zstd_cli(&["-19", "-T2", "-B4194304"], &input, true);
    assert_round_trip("40 MiB at -19 -T2 -B4MiB", &frame);
}

#[test]
fn damaged_frames_are_refused_or_regenerate_what_they_describe() {
    let frame = zstd_cli(&["-19", "--no-check"], &mixed_content(200_000, 9), true);
    let mut rng = Rng(0x00DA_4A6E);
    for round in 0..400 {
        let mut damaged = frame.clone();
        if round % 4 == 0 {
            damaged.truncate(rng.below(frame.len() as u64) as usize);
        } else {
            let at = rng.below(frame.len() as u64) as usize;
            damaged[at] ^= 1 << rng.below(8);
        }
        if let Ok(stream) = zstd_structure::parse(&damaged, 1 << 20) {
            assert_eq!(zstd_structure::encode(&stream).expect("encode"), damaged);
        }
    }
}
