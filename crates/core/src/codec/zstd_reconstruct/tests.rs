//! Round trips of real frames (the bundled libzstd at level 3, whose blocks the port mostly
//! reproduces; the others are carried) and hostile blobs. Frames of Debian's zstd CLI are
//! tested end to end in tests/extended_zstd_dfast.rs.

use super::*;
use crate::codec::zstd_structure::{parse, Frame, ZstdFrame};

fn content(length: usize) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::with_capacity(length);
    while out.len() < length {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        match state % 4 {
            0 => out.extend((0..(state >> 44) % 3000).map(|i| (state >> (i % 57)) as u8)),
            1 => out.resize(out.len() + ((state >> 20) % 20_000) as usize, 0),
            _ if out.len() > 5000 => {
                let start = (state >> 8) as usize % (out.len() - 4000);
                out.extend_from_within(start..start + (state >> 50) as usize % 4000);
            }
            _ => out.extend_from_slice(b"block literals sequences window "),
        }
    }
    out.truncate(length);
    out
}

/// A level-3 frame of the bundled libzstd, given the whole input at once (size pledged).
fn level3_frame(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(content.len()));
    zstd_safe::compress(&mut out, content, 3).expect("compress");
    out
}

fn zstd_frame(frame: &[u8]) -> ZstdFrame {
    let parsed = parse(frame, 1 << 26).expect("parse");
    match parsed.frames.into_iter().next() {
        Some(Frame::Zstd(f)) => f,
        other => panic!("not a zstd frame: {other:?}"),
    }
}

fn rebuilt(content: &[u8], blob: &[u8], output_len: u64) -> Result<Vec<u8>> {
    let structure = Structure::read(blob)?;
    let mut out = Vec::new();
    reader(
        Box::new(Cursor::new(content.to_vec())),
        content.len() as u64,
        &structure,
        output_len,
    )?
    .read_to_end(&mut out)
    .expect("read");
    Ok(out)
}

#[test]
fn frames_come_back_from_content_and_structure() {
    let content = content(700_000);
    let frame = level3_frame(&content);
    let parsed = zstd_frame(&frame);
    let producer = Producer::level3_single(Some(content.len() as u64));
    let carried = mismatched_blocks(&parsed, &content, &producer).unwrap();
    let compressed = parsed
        .blocks
        .iter()
        .filter(|b| matches!(b.kind, BlockKind::Compressed(_)))
        .count();
    assert!(compressed >= 5, "{compressed} compressed blocks");
    let structure = Structure::of_frame(&parsed, producer, &carried);
    let blob = structure.write();
    assert_eq!(Structure::read(&blob).unwrap(), structure);
    assert!(rebuilt(&content, &blob, frame.len() as u64).unwrap() == frame);
    // The blob holds only the choices (and any carried blocks), far less than the frame.
    if carried.is_empty() {
        assert!(
            blob.len() * 10 < frame.len(),
            "{} vs {}",
            blob.len(),
            frame.len()
        );
    }
}

/// Every block carried: the frame comes back whatever the producer; nothing carried with a
/// producer that parses differently: another frame, or a refusal, never a panic.
#[test]
fn carried_sequences_override_the_parse() {
    let content = content(300_000);
    let frame = level3_frame(&content);
    let parsed = zstd_frame(&frame);
    let mut other = Producer::level3_single(Some(content.len() as u64));
    other.params.min_match = 7;
    other.params.hash_log = 12;
    let all: Vec<usize> = (0..parsed.blocks.len()).collect();
    let blob = Structure::of_frame(&parsed, other, &all).write();
    assert!(rebuilt(&content, &blob, frame.len() as u64).unwrap() == frame);
    let mismatched = mismatched_blocks(&parsed, &content, &other).unwrap();
    assert!(!mismatched.is_empty());
    let blob = Structure::of_frame(&parsed, other, &[]).write();
    match rebuilt(&content, &blob, frame.len() as u64) {
        Ok(bytes) => assert!(bytes != frame),
        Err(e) => assert_eq!(e.code, code::EXT_ZSTD_REBUILD_FAILED, "{e}"),
    }
}

#[test]
fn hostile_blobs_are_refused_cleanly() {
    let content = content(200_000);
    let frame = level3_frame(&content);
    let parsed = zstd_frame(&frame);
    let producer = Producer::level3_single(Some(content.len() as u64));
    let all: Vec<usize> = (0..parsed.blocks.len()).collect();
    let blob = Structure::of_frame(&parsed, producer, &all).write();
    let len = frame.len() as u64;
    // Every truncation.
    for cut in 0..blob.len() {
        let e = rebuilt(&content, &blob[..cut], len).unwrap_err();
        assert_eq!(e.code, code::EXT_ZSTD_REBUILD_FAILED, "cut {cut}: {e}");
    }
    // Every byte changed: a refusal or another frame.
    for at in 0..blob.len().min(4000) {
        for value in [0u8, 0x7f, 0xff] {
            let mut bad = blob.clone();
            if bad[at] == value {
                continue;
            }
            bad[at] = value;
            match rebuilt(&content, &bad, len) {
                Ok(bytes) => assert!(bytes.len() as u64 == len),
                Err(e) => assert_eq!(e.code, code::EXT_ZSTD_REBUILD_FAILED, "{at}: {e}"),
            }
        }
    }
    // Huge counts: blocks, description lengths, sequences, job sizes.
    let huge = |prefix: &[u8]| {
        let mut b = prefix.to_vec();
        b.extend_from_slice(&[0xff; 9]);
        b.push(0x01);
        Structure::read(&b).unwrap_err().code
    };
    let params = &blob[..4];
    for tail in [&[0u8, 0x64, 0x00][..], &[2], &[2, 0x80, 0x80, 0x20]] {
        let prefix = [params, tail].concat();
        assert_eq!(huge(&prefix), code::EXT_ZSTD_REBUILD_FAILED);
    }
    // A carried block claiming a billion sequences in a few bytes.
    let mut many = blob[..7].to_vec();
    many.extend_from_slice(&[
        1,
        BLOCK_COMPRESSED | BLOCK_CARRIED,
        0x10,
        0,
        1,
        0x80,
        0x80,
        0x80,
        4,
    ]);
    assert_eq!(
        Structure::read(&many).unwrap_err().code,
        code::EXT_ZSTD_REBUILD_FAILED
    );
    // Wrong lengths: the recipe's frame length, the content.
    for wrong in [len - 1, len + 1, 3] {
        let e = rebuilt(&content, &blob, wrong).unwrap_err();
        assert_eq!(e.code, code::EXT_ZSTD_REBUILD_FAILED, "{wrong}: {e}");
    }
    let e = rebuilt(&content[1..], &blob, len).unwrap_err();
    assert_eq!(e.code, code::EXT_ZSTD_REBUILD_FAILED);
    assert!(check_lengths(1 << 40, 100).is_err());
}

#[test]
fn unknown_codecs_are_refused() {
    assert!(check_codec(CODEC_DFAST, VERSION_1).is_ok());
    for (codec, version) in [(0, 1), (2, 1), (1, 0), (1, 2), (u64::MAX, u64::MAX)] {
        let e = check_codec(codec, version).unwrap_err();
        assert_eq!(e.code, code::EXT_ZSTD_REBUILD_UNSUPPORTED);
    }
}

/// A blob written by hand from the format's description (docs/EXTENDED-FORMAT.md): level 3's
/// parameters for a small content, one-shot, a single-segment frame with a 1-byte content
/// size, one raw block. The frame is the header, the block header and the content.
#[test]
fn a_hand_written_blob_gives_its_frame() {
    let text: Vec<u8> = (0..200u32)
        .map(|i| b"zstd block "[i as usize % 11])
        .collect();
    let mut blob = vec![14, 8, 8, 4, THREADING_SINGLE, 0x20, 0, 1, BLOCK_RAW];
    put_number(&mut blob, 200);
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x20, 200];
    frame.extend_from_slice(&((200u32 << 3) | 1).to_le_bytes()[..3]);
    frame.extend_from_slice(&text);
    assert!(rebuilt(&text, &blob, frame.len() as u64).unwrap() == frame);
    let decoded = zstd_safe::decompress(&mut Vec::with_capacity(200), &frame[..]);
    assert_eq!(decoded, Ok(200));
}
