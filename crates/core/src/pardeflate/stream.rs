//! Streaming, bounded-memory parallel deflate: [`ParallelDeflateReader`].
//!
//! A feeder thread copies the input into a spool file — an anonymous in-memory file
//! (`memfd_create`) or, when a directory is given, an unlinked temporary file there — written
//! with `pwrite` and read through a read-only shared mapping, and publishes how many bytes are
//! final; the parallel driver's workers wait for the bytes a chunk needs, run at most a few
//! chunks ahead of the coordinator, and the coordinator hands the output to the reader through
//! a bounded channel. Behind the coordinator the input is never read again: its pages leave the
//! mapping (`MADV_DONTNEED`) and its blocks leave the spool (`FALLOC_FL_PUNCH_HOLE`), so the
//! spool holds only a window of the input (about `max(12 MiB, 8 chunks)` plus the chunks in
//! flight), whatever the input's length.

use crate::sync::lock;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::feed::{Abort, Feed};
use super::parallel::{run, Job, ParallelOptions};
use super::{check_encoder, Encoder, Wrapper};

/// Longest input the applier gives [`ParallelDeflateReader`], which spools and maps its whole
/// input at once: unbounded on 64-bit targets; on 32-bit ones (3 GiB of address space in all)
/// 256 MiB — a 2 GiB image inside a gzip member would otherwise need a 2 GiB mapping. Longer
/// inputs go to a streaming single-thread encoder (stock zlib, or
/// [`super::SequentialDeflateReader`] for GNU gzip).
pub const MAX_SPOOLED_INPUT: u64 = if cfg!(target_pointer_width = "32") {
    256 << 20
} else {
    u64::MAX
};

/// Options of [`ParallelDeflateReader::with_options`].
#[derive(Clone, Debug, Default)]
pub struct StreamOptions {
    /// Threads and chunk length, as for [`super::deflate_parallel_with`].
    pub parallel: ParallelOptions,
    /// Directory of the temporary file holding the input window (default: none, an anonymous
    /// in-memory file; `std::env::temp_dir()` where `memfd_create` is unavailable).
    pub temp_dir: Option<PathBuf>,
}

/// A reader producing exactly the bytes of stock zlib's deflate (or another [`Encoder`]'s)
/// of an input stream of known length, compressed on several threads with bounded memory
/// (levels 4–9; levels 1–3, inputs shorter than two chunks, and for zlib a single thread, are
/// read into memory and compressed by [`super::deflate_parallel_as`]).
///
/// Errors of the input stream are returned by [`Read::read`] as the same `io::Error`.
/// Dropping the reader stops the worker threads.
pub struct ParallelDeflateReader {
    inner: Inner,
    buf: Vec<u8>,
    pos: usize,
}

enum Inner {
    Small {
        input: Option<Box<dyn Read + Send>>,
        len: u64,
        wrapper: Wrapper,
        level: u32,
        encoder: Encoder,
        opts: ParallelOptions,
    },
    Stream {
        rx: Option<Receiver<io::Result<Vec<u8>>>>,
        feed: Arc<Input>,
        coordinator: Option<JoinHandle<()>>,
    },
    Done,
}

/// The input as it arrives.
struct Input {
    feed: Feed,
    /// The input stream's error, returned by `read`.
    error: Mutex<Option<io::Error>>,
}

/// The mapping of the temporary file.
struct Mapped {
    map: memmap2::Mmap,
    _file: File,
}

impl ParallelDeflateReader {
    /// Compress `input` (exactly `input_len` bytes) like `deflateInit2(level, 8, ±15/31,
    /// mem_level, 0)` would, on `threads` threads (0 = all cores).
    ///
    /// # Panics
    /// If `level` or `mem_level` is outside 1..=9.
    pub fn new(
        input: Box<dyn Read + Send>,
        input_len: u64,
        wrapper: Wrapper,
        level: u32,
        mem_level: u32,
        threads: usize,
    ) -> io::Result<Self> {
        let opts = StreamOptions {
            parallel: ParallelOptions {
                threads,
                chunk_len: 0,
            },
            temp_dir: None,
        };
        Self::with_options(input, input_len, wrapper, level, mem_level, &opts)
    }

    /// [`ParallelDeflateReader::new`] with explicit options.
    ///
    /// # Panics
    /// If `level` or `mem_level` is outside 1..=9.
    pub fn with_options(
        input: Box<dyn Read + Send>,
        input_len: u64,
        wrapper: Wrapper,
        level: u32,
        mem_level: u32,
        opts: &StreamOptions,
    ) -> io::Result<Self> {
        let encoder = Encoder::Zlib { mem_level };
        Self::with_encoder(input, input_len, wrapper, level, encoder, opts)
    }

    /// A reader producing exactly what `encoder` writes at `level` for `input` (see
    /// [`super::deflate_as`]), with explicit options.
    ///
    /// # Panics
    /// If `level` or the encoder's memLevel is outside 1..=9.
    pub fn with_encoder(
        mut input: Box<dyn Read + Send>,
        input_len: u64,
        wrapper: Wrapper,
        level: u32,
        encoder: Encoder,
        opts: &StreamOptions,
    ) -> io::Result<Self> {
        check_encoder(level, encoder);
        let len = usize::try_from(input_len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "input too large"))?;
        let (threads, chunk_len) = opts.parallel.resolve(len);
        // One thread streams too for GNU gzip (zlib callers have stock zlib for that case).
        let one_thread = threads <= 1 && matches!(encoder, Encoder::Zlib { .. });
        let small = one_thread || level < 4 || len < 2 * chunk_len;
        let inner = if small {
            Inner::Small {
                input: Some(input),
                len: input_len,
                wrapper,
                level,
                encoder,
                opts: opts.parallel,
            }
        } else {
            let file = spool_file(opts.temp_dir.as_deref())?;
            file.set_len(input_len)?;
            // SAFETY: the file is an unlinked temporary file private to this reader. The map is
            // read-only; the feeder writes the file with `pwrite` only at offsets at or beyond
            // the published watermark, and readers only read bytes below it (published under a
            // mutex after the write returned), so no byte is read while it changes.
            let map = unsafe { memmap2::MmapOptions::new().len(len).map(&file)? };
            let mapped = Arc::new(Mapped { map, _file: file });
            let shared = Arc::new(Input {
                feed: Feed::new(len),
                error: Mutex::new(None),
            });
            let writer = mapped._file.try_clone()?;
            let feeder_in = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("pardeflate-feed".into())
                .spawn(move || feed(&mut *input, &writer, len, chunk_len, &feeder_in))?;
            let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(4);
            let coord_in = Arc::clone(&shared);
            let coordinator = std::thread::Builder::new()
                .name("pardeflate".into())
                .spawn(move || {
                    let job = Job {
                        data: &mapped.map[..],
                        feed: &coord_in.feed,
                        wrapper,
                        level,
                        encoder,
                        threads,
                        chunk_len,
                        ahead: threads + 2,
                    };
                    let released = Mutex::new(0usize);
                    let release = |upto: usize| {
                        coord_in.feed.set_low(upto);
                        release_pages(&mapped, &released, upto);
                    };
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run(&job, &release, &mut |b| tx.send(Ok(b)).map_err(|_| Abort))
                    }));
                    let err = match r {
                        Ok(Ok(())) => return,
                        Ok(Err(Abort)) => lock(&coord_in.error)
                            .take()
                            .unwrap_or_else(|| io::Error::other("parallel deflate abandoned")),
                        Err(p) => {
                            coord_in.feed.fail();
                            io::Error::other(format!(
                                "parallel deflate failed: {}",
                                crate::error::panic_text(&*p)
                            ))
                        }
                    };
                    let _ = tx.send(Err(err));
                })?;
            Inner::Stream {
                rx: Some(rx),
                feed: shared,
                coordinator: Some(coordinator),
            }
        };
        Ok(ParallelDeflateReader {
            inner,
            buf: Vec::new(),
            pos: 0,
        })
    }
}

/// The spool file: an anonymous in-memory file, or a temporary file in `dir`.
fn spool_file(dir: Option<&std::path::Path>) -> io::Result<File> {
    if let Some(dir) = dir {
        return tempfile::tempfile_in(dir);
    }
    // SAFETY: the name is a NUL-terminated string literal; on success the kernel returns a new
    // descriptor that nothing else owns, which `File` takes over.
    let fd = unsafe { libc::memfd_create(c"adudiff-deflate-input".as_ptr(), libc::MFD_CLOEXEC) };
    if fd >= 0 {
        use std::os::unix::io::FromRawFd;
        // SAFETY: see above.
        return Ok(unsafe { File::from_raw_fd(fd) });
    }
    tempfile::tempfile_in(std::env::temp_dir())
}

/// Drop the input `[released, upto)` (rounded down to 2 MiB) from the resident set and from
/// the spool: nothing reads it again.
fn release_pages(mapped: &Mapped, released: &Mutex<usize>, upto: usize) {
    use std::os::unix::io::AsRawFd;
    let map = &mapped.map;
    let mut r = lock(released);
    let upto = upto & !((2 << 20) - 1);
    if upto > *r && upto <= map.len() {
        // SAFETY: the mapping is file-backed, shared and read-only: MADV_DONTNEED discards no
        // data, it only unmaps pages (re-read from the file on a later access, which the
        // caller guarantees does not happen). The range is inside the mapping and page aligned.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, *r, upto - *r)
        };
        // Give the blocks back (memory for a memfd, disk for a temporary file). The file keeps
        // its size, so the mapping stays valid: a read there would see zeros, not fault. Best
        // effort: a file system without hole punching keeps the blocks.
        // SAFETY: a plain system call on a descriptor the mapping's owner keeps open.
        let _ = unsafe {
            libc::fallocate(
                mapped._file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                *r as libc::off_t,
                (upto - *r) as libc::off_t,
            )
        };
        *r = upto;
    }
}

/// Feeder thread: copy `len` bytes of `input` into `file`, publishing progress.
fn feed(input: &mut dyn Read, file: &File, len: usize, chunk_len: usize, shared: &Input) {
    const PIECE: usize = 1 << 20;
    const PUBLISH: usize = 64 << 10;
    let mut buf = match crate::io::scratch::buffer(PIECE.min(len.max(1)), "deflate input") {
        Ok(buf) => buf,
        Err(e) => {
            *lock(&shared.error) = Some(e);
            shared.feed.fail();
            return;
        }
    };
    let mut off = 0usize;
    let fail = |e: io::Error| {
        *lock(&shared.error) = Some(e);
        shared.feed.fail();
    };
    // How far the input may run ahead of the consumers (bounds the mapped pages touched by
    // the chunk boundary scan, and the temporary file's dirty pages).
    let window = (12 << 20).max(8 * chunk_len);
    while off < len {
        if shared.feed.wait_room(off, window).is_err() {
            return;
        }
        let want = buf.len().min(len - off);
        let mut filled = 0;
        while filled < want.min(PUBLISH) {
            match input.read(&mut buf[filled..want]) {
                Ok(0) => {
                    return fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("deflate input ended after {} of {len} bytes", off + filled),
                    ))
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return fail(e),
            }
            if shared.feed.failed() {
                return;
            }
        }
        if let Err(e) = file.write_all_at(&buf[..filled], off as u64) {
            return fail(e);
        }
        off += filled;
        shared.feed.publish(off);
    }
}

impl Read for ParallelDeflateReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.buf.len() {
            match &mut self.inner {
                Inner::Done => return Ok(0),
                Inner::Small {
                    input,
                    len,
                    wrapper,
                    level,
                    encoder,
                    opts,
                } => {
                    let Some(inp) = input.take() else {
                        return Ok(0);
                    };
                    let (len, wrapper, level, encoder, opts) =
                        (*len, *wrapper, *level, *encoder, *opts);
                    self.inner = Inner::Done;
                    let mut data = Vec::new();
                    data.try_reserve_exact(len as usize).map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::OutOfMemory,
                            format!("no memory for {len} bytes of deflate input"),
                        )
                    })?;
                    inp.take(len).read_to_end(&mut data)?;
                    if (data.len() as u64) < len {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("deflate input ended after {} of {len} bytes", data.len()),
                        ));
                    }
                    self.buf = super::deflate_parallel_as(&data, wrapper, level, encoder, &opts);
                    self.pos = 0;
                }
                Inner::Stream { rx, .. } => {
                    let msg = rx.as_ref().and_then(|r| r.recv().ok());
                    match msg {
                        Some(Ok(b)) => {
                            self.buf = b;
                            self.pos = 0;
                        }
                        Some(Err(e)) => {
                            *rx = None;
                            return Err(e);
                        }
                        None => {
                            if rx.is_none() {
                                return Err(io::Error::other("parallel deflate failed earlier"));
                            }
                            return Ok(0);
                        }
                    }
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for ParallelDeflateReader {
    fn drop(&mut self) {
        if let Inner::Stream {
            rx,
            feed,
            coordinator,
        } = &mut self.inner
        {
            feed.feed.fail();
            drop(rx.take());
            if let Some(h) = coordinator.take() {
                let _ = h.join();
            }
        }
    }
}
