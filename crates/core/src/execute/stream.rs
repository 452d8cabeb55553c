//! Stream adaptors of the executor: exact length, hash verification, and a pipe that runs a
//! producer on its own thread so stages overlap.

use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{code, Error};

/// A boxed byte stream that can move to another thread.
pub type Stream = Box<dyn Read + Send>;

/// Reads exactly `len` bytes of `inner`: stops there (any surplus is the producer's business) and
/// turns an early end into upstream's 20000 error.
pub struct ExactLen {
    inner: Stream,
    len: u64,
    done: u64,
}

impl ExactLen {
    /// Wraps `inner`, which must yield `len` bytes.
    pub fn new(inner: Stream, len: u64) -> Self {
        ExactLen {
            inner,
            len,
            done: 0,
        }
    }
}

impl Read for ExactLen {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len - self.done;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let cap = (buf.len() as u64).min(left) as usize;
        let n = self.inner.read(&mut buf[..cap])?;
        if n == 0 {
            return Err(Error::short_read(self.len, self.done).into_io());
        }
        self.done += n as u64;
        Ok(n)
    }
}

/// Hashes a stream as it passes and fails at its end if the SHA-256 differs from the expected one.
pub struct VerifySha256 {
    inner: Stream,
    hasher: Sha256,
    expected: [u8; 32],
    label: String,
    finished: bool,
}

impl VerifySha256 {
    /// Wraps `inner` (which must be length-exact) expecting `expected`.
    pub fn new(inner: Stream, expected: [u8; 32], label: String) -> Self {
        VerifySha256 {
            inner,
            hasher: Sha256::new(),
            expected,
            label,
            finished: false,
        }
    }
}

impl Read for VerifySha256 {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.finished {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.finished = true;
            let actual: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
            if actual != self.expected {
                return Err(Error::new(
                    code::DIFF_VERIFY_HASH_FAILURE,
                    format!("Produced data does not match its SHA-256: {}", self.label),
                )
                .into_io());
            }
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Chunk size moved through a [`Pipe`].
const PIPE_CHUNK: usize = 1 << 20;
/// Chunks buffered between producer and consumer.
const PIPE_DEPTH: usize = 3;
/// Most producer threads one apply runs at once; beyond it producers run inline.
pub const MAX_PIPE_THREADS: usize = 4;

/// Runs a producer on a worker thread (started at the first read) and hands its output over in
/// chunks through a bounded channel, so decompression, re-compression and writing overlap.
pub struct Pipe {
    pending: Option<Stream>,
    rx: Option<Receiver<io::Result<Vec<u8>>>>,
    chunk: Vec<u8>,
    pos: usize,
    active: Arc<AtomicUsize>,
    finished: bool,
}

impl Pipe {
    /// Wraps `producer`; `active` counts running pipe threads of this apply.
    pub fn new(producer: Stream, active: Arc<AtomicUsize>) -> Self {
        Pipe {
            pending: Some(producer),
            rx: None,
            chunk: Vec::new(),
            pos: 0,
            active,
            finished: false,
        }
    }

    fn start(&mut self) {
        let Some(mut producer) = self.pending.take() else {
            return;
        };
        if self.active.fetch_add(1, Ordering::SeqCst) >= MAX_PIPE_THREADS {
            self.active.fetch_sub(1, Ordering::SeqCst);
            self.pending = Some(producer);
            return;
        }
        let (tx, rx) = sync_channel(PIPE_DEPTH);
        let active = Arc::clone(&self.active);
        let spawned = std::thread::Builder::new()
            .name("adudiff-pipe".into())
            .stack_size(1 << 20)
            .spawn(move || {
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loop {
                    let mut buf = match crate::io::scratch::buffer(PIPE_CHUNK, "a pipe chunk") {
                        Ok(buf) => buf,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            break;
                        }
                    };
                    let mut filled = 0;
                    let result = loop {
                        match producer.read(&mut buf[filled..]) {
                            Ok(0) => break Ok(()),
                            Ok(n) => {
                                filled += n;
                                if filled == buf.len() {
                                    break Ok(());
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => break Err(e),
                        }
                    };
                    let end = filled == 0;
                    buf.truncate(filled);
                    let message = match result {
                        Ok(()) => Ok(buf),
                        Err(e) => Err(e),
                    };
                    let failed = message.is_err();
                    if tx.send(message).is_err() || end || failed {
                        break;
                    }
                }));
                if let Err(payload) = run {
                    let text = crate::error::panic_text(&*payload);
                    let _ = tx.send(Err(Error::new(
                        code::STANDARD_LIBRARY_EXCEPTION,
                        format!("Failed to apply diff. Exception: internal error: {text}"),
                    )
                    .into_io()));
                }
                active.fetch_sub(1, Ordering::SeqCst);
            });
        match spawned {
            Ok(_) => self.rx = Some(rx),
            Err(_) => {
                // Could not start a thread: run inline instead.
                self.active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_some() && self.rx.is_none() {
            self.start();
            if let Some(inline) = self.pending.as_mut() {
                return inline.read(buf);
            }
        }
        loop {
            if self.pos < self.chunk.len() {
                let n = buf.len().min(self.chunk.len() - self.pos);
                buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.finished {
                return Ok(0);
            }
            let Some(rx) = self.rx.as_ref() else {
                return Ok(0);
            };
            match rx.recv() {
                Ok(Ok(chunk)) => {
                    if chunk.is_empty() {
                        self.finished = true;
                    }
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.finished = true;
                    return Err(e);
                }
                Err(_) => {
                    self.finished = true;
                    return Ok(0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_len_reports_short_producers() {
        let mut r = ExactLen::new(Box::new(&b"abc"[..]), 5);
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(Error::from_io(err, 0).code, code::IO_READER_READ_FAILURE);
        let mut r = ExactLen::new(Box::new(&b"abcdef"[..]), 4);
        out.clear();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn verify_detects_wrong_bytes() {
        let good: [u8; 32] = Sha256::digest(b"hello").into();
        let mut out = Vec::new();
        VerifySha256::new(Box::new(&b"hello"[..]), good, "x".into())
            .read_to_end(&mut out)
            .unwrap();
        let err = VerifySha256::new(Box::new(&b"hellO"[..]), good, "x".into())
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(Error::from_io(err, 0).code, code::DIFF_VERIFY_HASH_FAILURE);
    }

    #[test]
    fn pipe_moves_everything_and_errors() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let active = Arc::new(AtomicUsize::new(0));
        let mut out = Vec::new();
        Pipe::new(Box::new(io::Cursor::new(data.clone())), Arc::clone(&active))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        let failing = ExactLen::new(Box::new(io::Cursor::new(vec![1u8; 10])), 20);
        let err = Pipe::new(Box::new(failing), Arc::clone(&active))
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(Error::from_io(err, 0).code, code::IO_READER_READ_FAILURE);
    }
}
