//! `pardeflate` with `Encoder::GnuGzip` against the real GNU gzip: the deflate stream inside
//! `gzip -<level> -n` must be reproduced byte for byte, sequentially and in parallel with
//! chunk sizes that put chunk boundaries everywhere, for inputs that end at every interesting
//! distance from GNU gzip's window edges (its end-of-input rules read stale window bytes).

#[path = "support/rng.rs"]
mod rng;

use std::io::Write;
use std::process::{Command, Stdio};

use std::io::Read;

use adudiffapi::pardeflate::{
    deflate, deflate_as, deflate_parallel_as, Encoder, ParallelOptions, SequentialDeflateReader,
    Wrapper,
};
use rng::Rng;

/// The raw deflate stream GNU gzip writes for `data` at `level`.
fn gnu_gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg(format!("-{level}"))
        .args(["-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("GNU gzip must be installed (Debian: package gzip)");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("gzip runs");
    writer.join().expect("writer").expect("write to gzip");
    assert!(out.status.success(), "gzip failed");
    let gz = out.stdout;
    assert_eq!(&gz[..3], &[0x1f, 0x8b, 8], "a gzip member");
    assert_eq!(gz[3], 0, "no name with -n");
    gz[10..gz.len() - 8].to_vec()
}

/// Compressible data with structure: words, repeats at all distances, runs, binary noise.
fn sample(rng: &mut Rng, len: usize) -> Vec<u8> {
    const WORDS: [&[u8]; 8] = [
        b"deflate ",
        b"window ",
        b"gzip ",
        b"\x00\x00\x00\x00",
        b"block ",
        b"lazy\n",
        b"\xff\xfe",
        b"match ",
    ];
    let mut d = Vec::with_capacity(len + 300);
    while d.len() < len {
        match rng.below(10) {
            0..=4 => d.extend_from_slice(WORDS[rng.below(8) as usize]),
            5 | 6 if d.len() > 300 => {
                let dist = 1 + rng.below(d.len().min(40_000) as u64) as usize;
                let n = 3 + rng.below(300) as usize;
                for _ in 0..n {
                    d.push(d[d.len() - dist]);
                }
            }
            7 => d.extend(std::iter::repeat_n(
                rng.below(3) as u8,
                rng.below(700) as usize,
            )),
            _ => d.extend((0..rng.below(40)).map(|_| rng.next() as u8)),
        }
    }
    d.truncate(len);
    d
}

/// [`SequentialDeflateReader`]'s output for `data`.
fn streamed(data: &[u8], wrapper: Wrapper, level: u32, encoder: Encoder) -> Vec<u8> {
    let input = Box::new(std::io::Cursor::new(data.to_vec()));
    let mut r = SequentialDeflateReader::new(input, data.len() as u64, wrapper, level, encoder)
        .expect("reader");
    let mut out = Vec::new();
    r.read_to_end(&mut out).expect("stream");
    out
}

fn check(data: &[u8], level: u32, what: &str) {
    let want = gnu_gzip(data, level);
    let got = deflate_as(data, Wrapper::Raw, level, Encoder::GnuGzip);
    assert!(
        got == want,
        "{what}, level {level}: sequential differs from GNU gzip"
    );
    // Levels 1–3 stream only up to 8 MiB (they cannot be parsed in segments).
    if level >= 4 || data.len() <= 8 << 20 {
        let got = streamed(data, Wrapper::Raw, level, Encoder::GnuGzip);
        assert!(
            got == want,
            "{what}, level {level}: streamed differs from GNU gzip"
        );
    }
    for chunk_len in [4096, 50_000] {
        let opts = ParallelOptions {
            threads: 3,
            chunk_len,
        };
        let par = deflate_parallel_as(data, Wrapper::Raw, level, Encoder::GnuGzip, &opts);
        assert!(
            par == want,
            "{what}, level {level}, chunks of {chunk_len}: parallel differs from GNU gzip"
        );
    }
}

#[test]
fn lengths_around_window_edges_all_levels() {
    let mut rng = Rng(0x5eed_9219);
    let big = sample(&mut rng, 300_000);
    // Ends just before, at and after the points where GNU gzip slides its window or finds
    // the end of its input.
    let mut lens = vec![0, 1, 2, 3, 5, 258, 261, 262, 1000];
    for edge in [
        32_768usize,
        65_274,
        65_536,
        98_042,
        98_304,
        131_072,
        196_608,
    ] {
        for d in [-300i64, -262, -258, -5, -1, 0, 1, 2, 259, 400] {
            lens.push((edge as i64 + d) as usize);
        }
    }
    for level in 1..=9 {
        for (i, &len) in lens.iter().enumerate() {
            // Odd levels get every length, even levels every third (keeps the test short).
            if level % 2 == 0 && i % 3 != 0 {
                continue;
            }
            check(&big[..len], level, &format!("{len} bytes"));
        }
    }
}

#[test]
fn repetitive_tails_and_long_inputs() {
    let mut rng = Rng(77);
    // Inputs whose last kilobytes repeat earlier text 32 KiB back (what gzip's stale window
    // bytes hold), long runs of zeros, and a few MB of mixed data.
    let mut a = sample(&mut rng, 200_000);
    let tail: Vec<u8> = a[200_000 - 32_768..200_000 - 32_768 + 600].to_vec();
    a.extend_from_slice(&tail);
    let mut zeros = sample(&mut rng, 70_000);
    zeros.extend(std::iter::repeat_n(0u8, 500_000));
    // Longer than two of the streaming reader's 4 MiB segments.
    let long = sample(&mut rng, 9_500_000);
    for level in [1, 3, 4, 6, 9] {
        check(&a, level, "stale-window tail");
        check(&zeros, level, "zero run to the end");
        check(&long, level, "9.5 MB");
    }
}

#[test]
fn streamed_zlib_matches_zlib_port() {
    let mut rng = Rng(4242);
    let data = sample(&mut rng, 9_000_000);
    for (level, mem_level) in [(4, 8), (6, 8), (9, 9), (9, 1)] {
        for wrapper in [Wrapper::Raw, Wrapper::Gzip, Wrapper::Zlib] {
            let want = deflate(&data, wrapper, level, mem_level);
            let got = streamed(&data, wrapper, level, Encoder::Zlib { mem_level });
            assert!(
                got == want,
                "level {level} memLevel {mem_level} {wrapper:?}: streamed differs"
            );
        }
    }
    // A short input stream is an error, not a short output.
    let input = Box::new(std::io::Cursor::new(data[..1000].to_vec()));
    let mut r =
        SequentialDeflateReader::new(input, 5000, Wrapper::Raw, 6, Encoder::GnuGzip).unwrap();
    let err = r.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}
