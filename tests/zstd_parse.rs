//! The level-3 parse port (`adudiff_core::codec::zstd_parse`) against real producers: frames
//! made by Debian's zstd CLI (multithreaded with several jobs, with the default job size,
//! through a pipe, and `--single-thread` past the point where its input buffer wraps), by
//! PyPI `zstandard` builds of libzstd 1.4.8, 1.5.2, 1.5.5, 1.5.6 and 1.5.7 (two workers, and without
//! workers) and by the bundled libzstd 1.5.7 are parsed, and every block's recomputed
//! sequences must equal the frame's. The tools are
//! required (`.ci/run` installs them): a missing one fails the test.

#[path = "support/rng.rs"]
mod rng;
#[path = "support/tool.rs"]
mod tool;

use adudiff_core::codec::zstd_parse::{block_sequences, BlockShape, DfastVersion, Producer};
use adudiff_core::codec::zstd_structure::{self, BlockKind, Frame};
use rng::Rng;
use tool::run_with_input;

/// Content size: several 512 KiB jobs, and more than the single-threaded CLI's input buffer
/// (2 MiB window + 128 KiB block), so that it wraps around.
const CONTENT_SIZE: usize = 3 << 20;

/// A file-system-like image: 4 KiB blocks that are empty, text-like records, random (already
/// compressed data), or earlier blocks with a few bytes changed.
fn image_like_content(length: usize, seed: u64) -> Vec<u8> {
    const FIELDS: [&[u8]; 6] = [
        b"/usr/lib/",
        b"libfoo.so.",
        b" 0644 ",
        b"root",
        b"\n",
        b"#!",
    ];
    let mut rng = Rng(seed);
    let mut out: Vec<u8> = Vec::with_capacity(length + 4096);
    while out.len() < length {
        let start = out.len();
        match rng.below(8) {
            0 => out.resize(start + 4096, 0),
            1 | 2 => {
                while out.len() < start + 4096 {
                    out.extend_from_slice(FIELDS[rng.below(6) as usize]);
                    let number = rng.below(100_000).to_string();
                    out.extend_from_slice(number.as_bytes());
                }
                out.truncate(start + 4096);
            }
            3 => out.extend((0..4096).map(|_| rng.next() as u8)),
            _ if start >= 4096 => {
                let from = rng.below((start / 4096) as u64) as usize * 4096;
                out.extend_from_within(from..from + 4096);
                for _ in 0..rng.below(4) {
                    let at = start + rng.below(4096) as usize;
                    out[at] = rng.next() as u8;
                }
            }
            _ => out.resize(start + 4096, 0x20),
        }
    }
    out.truncate(length);
    out
}

/// Debian's zstd CLI on `input` given as a file (the content size is known and pledged).
fn zstd_cli_file(args: &[&str], input: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("image");
    std::fs::write(&path, input).expect("write input");
    let path = path.to_str().expect("utf-8 path");
    run_with_input("zstd", &[&["-q", "-c"], args, &[path]].concat(), b"")
}

/// A level-3 frame from PyPI `zstandard` `release` with `threads` workers (512 KiB jobs).
fn pypi_frame(release: &str, threads: u32, input: &[u8]) -> Vec<u8> {
    let python = format!("/tmp/zstd-venv-{release}/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is required (.ci/run creates it with PyPI zstandard=={release})"
    );
    let script = "import sys, zstandard as z\n\
        threads = int(sys.argv[1])\n\
        p = z.ZstdCompressionParameters.from_level(3, threads=threads, job_size=524288 if threads else 0)\n\
        sys.stdout.buffer.write(z.ZstdCompressor(compression_params=p).compress(sys.stdin.buffer.read()))\n";
    run_with_input(&python, &["-c", script, &threads.to_string()], input)
}

/// Parses `frame` (one zstd frame of `content`) and asserts that `producer(content size)`
/// recomputes every compressed block's sequences; returns the number of sequences checked.
fn assert_parse_reproduced(
    label: &str,
    frame: &[u8],
    content: &[u8],
    producer: impl Fn(Option<u64>) -> Producer,
) -> usize {
    let stream = zstd_structure::parse(frame, 64 << 20).expect("frame parses");
    assert_eq!(stream.content, content, "{label}: content");
    let [Frame::Zstd(parsed)] = stream.frames.as_slice() else {
        panic!("{label}: expected one zstd frame");
    };
    let producer = producer(parsed.header.content_size);
    let mut checked = 0;
    let mut compressed_blocks = 0;
    block_sequences(
        content,
        &BlockShape::of_frame(parsed),
        &producer,
        |number, got| {
            if let BlockKind::Compressed(block) = &parsed.blocks[number].kind {
                let expected = &block.sequences.sequences;
                let same = expected.iter().zip(got).take_while(|(a, b)| a == b).count();
                assert!(
                    expected.as_slice() == got,
                    "{label}: block {number} differs at sequence {same}: frame {:?}, port {:?}",
                    expected.get(same),
                    got.get(same)
                );
                checked += expected.len();
                compressed_blocks += 1;
            }
            Ok(())
        },
    )
    .expect("recomputation succeeds");
    assert!(
        compressed_blocks >= 20,
        "{label}: too few compressed blocks"
    );
    checked
}

#[test]
fn debian_cli_level3_parse_is_reproduced() {
    let content = image_like_content(CONTENT_SIZE, 0x3d5);
    let jobs = zstd_cli_file(&["-3", "-T0", "-B512K"], &content);
    let checked = assert_parse_reproduced("-3 -T0 -B512K", &jobs, &content, |size| {
        Producer::level3_multithreaded(size, Some(512 << 10))
    });
    assert!(checked > 10_000, "only {checked} sequences");
    let default_jobs = zstd_cli_file(&["-3", "-T2"], &content);
    assert_parse_reproduced("-3 -T2", &default_jobs, &content, |size| {
        Producer::level3_multithreaded(size, None)
    });
    let piped = run_with_input("zstd", &["-q", "-c", "-3", "-T0", "-B512K"], &content);
    assert_parse_reproduced("-3 -T0 -B512K (pipe)", &piped, &content, |size| {
        assert_eq!(size, None, "a pipe has no content size");
        Producer::level3_multithreaded(size, Some(512 << 10))
    });
    let single = zstd_cli_file(&["-3", "--single-thread"], &content);
    assert_parse_reproduced(
        "-3 --single-thread",
        &single,
        &content,
        Producer::level3_cli_single_thread,
    );
}

#[test]
fn pypi_libzstd_1_4_8_to_1_5_7_level3_parse_is_reproduced() {
    let content = image_like_content(CONTENT_SIZE, 0x1e7);
    let releases = [
        ("0.15.2", DfastVersion::Libzstd148),
        ("0.19.0", DfastVersion::Libzstd152To156),
        ("0.21.0", DfastVersion::Libzstd152To156),
        ("0.23.0", DfastVersion::Libzstd152To156),
        ("0.25.0", DfastVersion::Libzstd157),
    ];
    for (release, version) in releases {
        let threaded = pypi_frame(release, 2, &content);
        assert_parse_reproduced(
            &format!("zstandard {release}, 2 workers"),
            &threaded,
            &content,
            |size| Producer::level3_multithreaded_version(size, Some(512 << 10), version),
        );
        let one_shot = pypi_frame(release, 0, &content);
        assert_parse_reproduced(
            &format!("zstandard {release}, no workers"),
            &one_shot,
            &content,
            |size| Producer::level3_single(size).with_version(version),
        );
    }
}

#[test]
fn bundled_libzstd_1_5_7_level3_parse_is_reproduced() {
    use zstd_safe::{CCtx, CParameter};
    let content = image_like_content(CONTENT_SIZE, 0x157);
    for workers in [2, 0] {
        let mut context = CCtx::create();
        context
            .set_parameter(CParameter::CompressionLevel(3))
            .expect("level");
        context
            .set_parameter(CParameter::NbWorkers(workers))
            .expect("workers");
        context
            .set_parameter(CParameter::JobSize(512 << 10))
            .expect("job size");
        let mut frame = vec![0u8; zstd_safe::compress_bound(content.len())];
        let length = context
            .compress2(&mut frame[..], &content)
            .expect("compress");
        frame.truncate(length);
        assert_parse_reproduced(
            &format!("bundled libzstd, {workers} workers"),
            &frame,
            &content,
            |size| {
                let producer = if workers == 0 {
                    Producer::level3_single(size)
                } else {
                    Producer::level3_multithreaded(size, Some(512 << 10))
                };
                producer.with_version(DfastVersion::Libzstd157)
            },
        );
    }
}
