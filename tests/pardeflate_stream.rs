//! Streaming parallel deflate (`ParallelDeflateReader`): byte equality with stock zlib
//! (libz-sys) for every level, wrapper and a few thread counts, with inputs delivered in odd
//! piece sizes; input errors; early drop.

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

#[path = "support/zlib_ref.rs"]
mod zlib_ref;

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adudiffapi::pardeflate::{ParallelDeflateReader, ParallelOptions, StreamOptions, Wrapper};
use zlib_ref::zlib_deflate;

/// ext4-like image: zero pages, text pages with block labels, 5-bit "binary" pages.
fn ext4_like(seed: u64, blocks: usize) -> Vec<u8> {
    let mut r = Rng(seed);
    let words: Vec<&[u8]> = b"lorem ipsum dolor sit amet kernel module firmware device update delta recipe chunk payload config partition rootfs ext4 inode block bitmap journal superblock"
        .split(|&c| c == b' ')
        .collect();
    let pool: Vec<Vec<u8>> = (0..16)
        .map(|_| {
            let mut p = Vec::new();
            while p.len() < 4096 {
                p.extend_from_slice(words[r.below(words.len() as u64) as usize]);
                p.push(if r.below(12) == 0 { b'\n' } else { b' ' });
            }
            p.truncate(4096);
            p
        })
        .collect();
    let mut out = Vec::with_capacity(blocks * 4096);
    while out.len() < blocks * 4096 {
        let kind = r.below(4);
        let run = 1 + (r.below(16) * r.below(16) / 8) as usize;
        for _ in 0..run {
            match kind {
                0 => out.extend_from_slice(&[0u8; 4096]),
                1 => {
                    let mut page = pool[r.below(16) as usize].clone();
                    let pos = r.below(4000) as usize;
                    let label = format!("blk{:08}", out.len() / 4096);
                    page[pos..pos + label.len()].copy_from_slice(label.as_bytes());
                    out.extend_from_slice(&page);
                }
                2 => out.extend((0..4096).map(|_| r.next() as u8)),
                _ => out.extend((0..4096).map(|_| 0x40 | (r.next() as u8 & 0x1f))),
            }
        }
    }
    out.truncate(blocks * 4096);
    out
}

/// Delivers `data` in pieces of at most `piece` bytes, pausing now and then; optionally
/// fails with an error after `fail_at` bytes; records when it is dropped.
struct SlowReader {
    data: Arc<Vec<u8>>,
    pos: usize,
    piece: usize,
    reads: usize,
    pause_every: usize,
    fail_at: Option<usize>,
    dropped: Option<Arc<AtomicBool>>,
}

impl SlowReader {
    fn new(data: Arc<Vec<u8>>, piece: usize) -> Self {
        SlowReader {
            data,
            pos: 0,
            piece,
            reads: 0,
            pause_every: 0,
            fail_at: None,
            dropped: None,
        }
    }
}

#[derive(Debug)]
struct Marker(&'static str);
impl std::fmt::Display for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for Marker {}

impl Read for SlowReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        if self.pause_every > 0 && self.reads % self.pause_every == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut end = self.data.len().min(self.pos + self.piece.min(buf.len()));
        if let Some(f) = self.fail_at {
            if self.pos >= f {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    Marker("input broke"),
                ));
            }
            end = end.min(f);
        }
        let n = end - self.pos;
        buf[..n].copy_from_slice(&self.data[self.pos..end]);
        self.pos = end;
        Ok(n)
    }
}

impl Drop for SlowReader {
    fn drop(&mut self) {
        if let Some(d) = &self.dropped {
            d.store(true, Ordering::SeqCst);
        }
    }
}

fn opts(threads: usize, chunk_len: usize) -> StreamOptions {
    StreamOptions {
        parallel: ParallelOptions { threads, chunk_len },
        temp_dir: None,
    }
}

fn stream(
    input: SlowReader,
    len: usize,
    wrapper: Wrapper,
    level: u32,
    mem: u32,
    o: &StreamOptions,
    out_piece: usize,
) -> io::Result<Vec<u8>> {
    let mut r =
        ParallelDeflateReader::with_options(Box::new(input), len as u64, wrapper, level, mem, o)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; out_piece];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[allow(clippy::too_many_arguments)]
fn check(
    data: &Arc<Vec<u8>>,
    wrapper: Wrapper,
    level: u32,
    mem: u32,
    threads: usize,
    chunk: usize,
    piece: usize,
    what: &str,
) {
    let mut input = SlowReader::new(Arc::clone(data), piece);
    input.pause_every = 97;
    let got = stream(
        input,
        data.len(),
        wrapper,
        level,
        mem,
        &opts(threads, chunk),
        7919,
    )
    .unwrap();
    let want = zlib_deflate(data, wrapper, level as i32, mem as i32, 4096);
    assert!(
        got == want,
        "{what}: level {level} mem {mem} {wrapper:?} threads {threads} chunk {chunk} piece {piece}: \
         {} vs zlib {} bytes",
        got.len(),
        want.len()
    );
}

const WRAPPERS: [Wrapper; 3] = [Wrapper::Raw, Wrapper::Zlib, Wrapper::Gzip];

#[test]
fn levels_wrappers_threads_equal_zlib() {
    let data = Arc::new(ext4_like(1, 90)); // 368,640 bytes
    let mut i = 0;
    for level in 1..=9 {
        for wrapper in WRAPPERS {
            for threads in [1, 2, 3] {
                i += 1;
                let piece = [4097, 65536, 1000][i % 3];
                let mem = [9, 8, 1][i % 3];
                check(
                    &data,
                    wrapper,
                    level,
                    mem,
                    threads,
                    20_000,
                    piece,
                    "ext4-like",
                );
            }
        }
    }
}

#[test]
fn tiny_empty_and_chunk_boundary_sizes() {
    let full = ext4_like(2, 20);
    let chunk = 10_000;
    for len in [
        0,
        1,
        2,
        3,
        258,
        4095,
        2 * chunk - 1,
        2 * chunk,
        2 * chunk + 1,
        3 * chunk,
        65_536,
        65_537,
    ] {
        let data = Arc::new(full[..len].to_vec());
        for (level, wrapper) in [
            (9, Wrapper::Gzip),
            (6, Wrapper::Zlib),
            (4, Wrapper::Raw),
            (1, Wrapper::Gzip),
        ] {
            check(&data, wrapper, level, 9, 2, chunk, 4097, "small");
        }
    }
}

#[test]
fn one_byte_reads() {
    let data = Arc::new(ext4_like(3, 50));
    for threads in [2, 3] {
        check(
            &data,
            Wrapper::Gzip,
            9,
            9,
            threads,
            15_000,
            1,
            "1-byte reads",
        );
    }
}

#[test]
fn few_megabytes_default_chunks() {
    let data = Arc::new(ext4_like(4, 1024)); // 4 MiB
    check(&data, Wrapper::Gzip, 9, 9, 2, 0, 4097, "4 MiB");
    check(&data, Wrapper::Zlib, 6, 8, 3, 0, 1 << 20, "4 MiB");
}

#[test]
fn input_error_propagates() {
    let data = Arc::new(ext4_like(5, 100));
    for (threads, chunk) in [(2, 20_000), (1, 0), (2, 0)] {
        for fail_at in [0, 1, 100_000, 399_999] {
            let mut input = SlowReader::new(Arc::clone(&data), 4097);
            input.fail_at = Some(fail_at);
            let err = stream(
                input,
                data.len(),
                Wrapper::Gzip,
                9,
                9,
                &opts(threads, chunk),
                4096,
            )
            .expect_err("input error must surface");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
            let inner = err.get_ref().and_then(|e| e.downcast_ref::<Marker>());
            assert!(inner.is_some(), "same error expected, got {err:?}");
        }
    }
}

#[test]
fn short_input_is_an_error() {
    let data = Arc::new(ext4_like(6, 30));
    for (threads, chunk) in [(2, 10_000), (1, 0)] {
        let input = SlowReader::new(Arc::clone(&data), 4097);
        let err = stream(
            input,
            data.len() + 10,
            Wrapper::Raw,
            9,
            9,
            &opts(threads, chunk),
            4096,
        )
        .expect_err("short input must fail");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }
}

#[test]
fn early_drop_stops_threads() {
    let data = Arc::new(ext4_like(7, 2048)); // 8 MiB
    for read_first in [0usize, 1, 100_000] {
        let dropped = Arc::new(AtomicBool::new(false));
        let mut input = SlowReader::new(Arc::clone(&data), 4097);
        input.pause_every = 5;
        input.dropped = Some(Arc::clone(&dropped));
        let mut r = ParallelDeflateReader::with_options(
            Box::new(input),
            data.len() as u64,
            Wrapper::Gzip,
            9,
            9,
            &opts(2, 100_000),
        )
        .unwrap();
        let mut buf = vec![0u8; read_first];
        r.read_exact(&mut buf).unwrap();
        let t = Instant::now();
        drop(r);
        // The feeder lets go of the input once it notices.
        while !dropped.load(Ordering::SeqCst) {
            assert!(t.elapsed() < Duration::from_secs(20), "feeder did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(t.elapsed() < Duration::from_secs(20));
    }
}
