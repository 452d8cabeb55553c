//! Round trips of frames from the bundled libzstd (every level shape: fast, lazy, optimal,
//! multithreaded jobs, no checksum), small enough for the emulated test subset; real producers
//! are tested in tests/zstd_structure.rs.

use zstd_safe::{CCtx, CParameter, DCtx, InBuffer, OutBuffer};

use super::{encode, parse, BlockKind, Frame};

fn content(length: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(length);
    while out.len() < length {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        match state % 5 {
            0 => {
                let mut noise = state;
                for _ in 0..(state >> 40) % 300_000 {
                    noise ^= noise << 13;
                    noise ^= noise >> 7;
                    noise ^= noise << 17;
                    out.push(noise as u8);
                }
            }
            1 => out.resize(out.len() + ((state >> 20) % 200_000) as usize, 0),
            _ if out.len() > 5000 => {
                let start = (state >> 8) as usize % (out.len() - 4000);
                out.extend_from_within(start..start + (state >> 50) as usize % 4000);
            }
            _ => out.extend_from_slice(b"lorem ipsum dolor sit amet, "),
        }
    }
    out.truncate(length);
    out
}

fn compress(input: &[u8], parameters: &[CParameter]) -> Vec<u8> {
    let mut context = CCtx::create();
    for &parameter in parameters {
        context.set_parameter(parameter).expect("parameter");
    }
    let mut out = vec![0u8; zstd_safe::compress_bound(input.len())];
    let mut output = OutBuffer::around(&mut out[..]);
    let mut source = InBuffer::around(input);
    loop {
        let left = context
            .compress_stream2(
                &mut output,
                &mut source,
                zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_end,
            )
            .expect("compress");
        if left == 0 {
            break;
        }
    }
    let length = output.pos();
    out.truncate(length);
    out
}

fn decompress(frames: &[u8], length: usize) -> Vec<u8> {
    let mut out = vec![0u8; length + 1];
    let written = DCtx::create()
        .decompress(&mut out[..], frames)
        .expect("libzstd decodes");
    out.truncate(written);
    out
}

#[test]
fn libzstd_frames_round_trip_exactly() {
    let input = content(1_500_000);
    let mut shapes: Vec<Vec<CParameter>> = [-5, 1, 3, 12, 19]
        .iter()
        .map(|&level| {
            vec![
                CParameter::CompressionLevel(level),
                CParameter::ChecksumFlag(true),
            ]
        })
        .collect();
    shapes.push(vec![
        CParameter::CompressionLevel(19),
        CParameter::NbWorkers(2),
        CParameter::JobSize(512 << 10),
    ]);
    for shape in shapes {
        let frame = compress(&input, &shape);
        let stream = parse(&frame, 4 << 20).unwrap_or_else(|error| panic!("{shape:?}: {error}"));
        assert_eq!(stream.content, decompress(&frame, input.len()), "{shape:?}");
        assert_eq!(encode(&stream).expect("encode"), frame, "{shape:?}");
    }
}

#[test]
fn raw_rle_and_compressed_blocks_all_appear() {
    let frame = compress(&content(1_500_000), &[CParameter::CompressionLevel(3)]);
    let stream = parse(&frame, 4 << 20).expect("parse");
    let Frame::Zstd(frame) = &stream.frames[0] else {
        panic!("not a zstd frame")
    };
    let kinds = frame.blocks.iter().map(|block| match block.kind {
        BlockKind::Raw => 0,
        BlockKind::Rle(_) => 1,
        BlockKind::Compressed(_) => 2,
    });
    let mut seen = [false; 3];
    kinds.for_each(|kind| seen[kind] = true);
    assert_eq!(seen, [true, true, true]);
}

#[test]
fn hostile_streams_are_refused_cleanly() {
    let frame = compress(&content(300_000), &[CParameter::CompressionLevel(19)]);
    for length in [0, 3, 4, 5, 8, 12, frame.len() / 2, frame.len() - 1] {
        assert!(
            parse(&frame[..length], 1 << 20).is_err() || length == 0,
            "{length}"
        );
    }
    let mut state = 1u64;
    for round in 0..300 {
        let mut damaged = frame.clone();
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let at = (state >> 33) as usize % damaged.len();
        damaged[at] ^= 1 << (round % 8);
        if let Ok(stream) = parse(&damaged, 1 << 20) {
            assert_eq!(encode(&stream).expect("encode"), damaged);
        }
    }
    assert!(parse(&frame, 1000).is_err(), "content over the limit");
    // A window descriptor of 2^31 is refused before anything is allocated.
    assert!(parse(
        &[0x28, 0xB5, 0x2F, 0xFD, 0x00, 0xA8, 0x01, 0x00, 0x00],
        1 << 20
    )
    .is_err());
}
