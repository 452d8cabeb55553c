//! Execution of a [`Plan`]: turns nodes into byte streams (decompressors, patchers, the stock-zlib
//! re-compressor) and random-access views (source ranges read with `pread`, delta ranges, zeros),
//! materializing a stream into scratch space — a preallocated unlinked temporary file or a
//! budgeted heap buffer, see [`crate::io::scratch`] — only when something needs random access
//! to it or uses it more than once.
//!
//! Materialized bytes are cached only while some consumer still needs them: the executor counts
//! the consumers of every node (the nodes reachable from the plan's root that list it as an
//! ingredient) and forgets a node's cached view when its last consumer has taken its bytes.
//! Readers that took a view keep its bytes alive through their own reference-counted handles,
//! so a materialized temporary file is unmapped (and its pages leave the resident set) as soon
//! as the last reader of it finishes, not at the end of the apply.

pub mod output;
pub mod stream;
pub mod view;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::codec::{BspatchReader, DeflateReader, InflateReader, ZstdCompressReader, ZstdReader};
use crate::error::{code, Error, Result};
use crate::format::model::{Delta, ZlibInit};
use crate::io::scratch::{self, Charge, Need, Prefer, Room, Scratch};
use crate::io::{FileRange, SharedBytes};
use crate::pardeflate::{ParallelDeflateReader, ParallelOptions, StreamOptions, Wrapper};
use crate::plan::{NodeId, Op, Plan};
use stream::{ExactLen, Pipe, Stream, VerifySha256};
use view::View;

/// Streams shorter than this are materialized in memory rather than in a temporary file.
pub const IN_MEMORY_MATERIALIZATION_LIMIT: u64 = 64 * 1024;

/// Producers shorter than this run inline rather than on a pipe thread.
const PIPE_THRESHOLD: u64 = 1 << 20;

/// zstd outputs at least this long decode into a mapped, preallocated temporary file instead of
/// a window buffer in memory (see [`ZstdReader::with_mapped_window`]) when the scratch space
/// prefers disk and the file system has room; shorter ones decode in memory when the budget
/// has room.
pub const MAPPED_ZSTD_WINDOW_THRESHOLD: u64 = 32 << 20;

/// Longest zstd output decoded into a mapped window, which maps the whole output at once
/// ([`ZstdReader::with_mapped_window`]): unbounded on 64-bit targets (under an address-space
/// limit the scratch space's address-space budget decides). On 32-bit targets, whose processes
/// have 3 GiB of address space in all, a longer output decodes into libzstd's window buffer in
/// memory instead, which never exceeds [`zstd_window_memory`] (2^28 bytes and two blocks),
/// whatever the output length: a 2 GiB image as one frame would not even fit as a mapping.
pub const MAPPED_ZSTD_WINDOW_MAX: u64 = if cfg!(target_pointer_width = "32") {
    1 << crate::codec::zstd::PREFIX_WINDOW_LOG_MAX
} else {
    u64::MAX
};

/// Most memory libzstd's decoder allocates for a frame's window: the window limit with a prefix
/// (2^[`crate::codec::zstd::PREFIX_WINDOW_LOG_MAX`]) plus two blocks; less for shorter outputs.
pub fn zstd_window_memory(output_len: u64) -> u64 {
    output_len.min(1 << crate::codec::zstd::PREFIX_WINDOW_LOG_MAX) + (256 << 10)
}

/// Most pieces one random-access view may have (bounds hostile chain-of-chain deltas).
pub const MAX_VIEW_PIECES: usize = 1 << 20;

/// Copy buffer for the old file of a bsdiff patch read from a file (see [`View::at_random`]).
const OLD_READ_CHUNK: usize = 256 << 10;

/// Copy buffer size for materialization.
const COPY_CHUNK: usize = 1 << 20;

/// Deflate inputs at least this long (and at most [`PARALLEL_DEFLATE_MAX_INPUT`]) are
/// compressed on all cores by [`ParallelDeflateReader`] (levels 4–9, byte-identical to zlib);
/// other lengths, levels 0–3 and single-core machines use stock zlib.
pub const PARALLEL_DEFLATE_THRESHOLD: u64 = 4 << 20;

/// Longest deflate input given to [`ParallelDeflateReader`] (see
/// [`crate::pardeflate::MAX_SPOOLED_INPUT`]); longer inputs use stock zlib, which streams in
/// O(1) memory.
pub const PARALLEL_DEFLATE_MAX_INPUT: u64 = crate::pardeflate::MAX_SPOOLED_INPUT;

/// Whether the process runs under an address-space limit. Worker threads reserve stacks and
/// malloc arenas (virtual memory) and may fail to start under one; the parallel deflater and
/// the pipe threads are then not used: stock zlib (one thread, O(1) memory) does the work and
/// every stage runs on the apply's own thread, leaving the address space to the data.
pub fn resources_limited() -> bool {
    scratch::address_space_limit().is_some()
}

/// Produces the bytes of plan nodes.
///
/// The public methods ([`Executor::stream`], [`Executor::random_access`],
/// [`Executor::contiguous`]) are for callers outside the plan: they never count as one of a
/// node's consumers, so a node they materialize stays cached for as long as the executor lives
/// unless consumers inside the plan take it.
pub struct Executor<'a> {
    plan: &'a Plan,
    delta: &'a Delta,
    source: View,
    scratch: Scratch,
    /// Views of the nodes whose bytes are (or are cheaply) available, while a consumer still
    /// needs them.
    views: HashMap<NodeId, View>,
    /// How many times each node is an ingredient of a node reachable from the root.
    uses: Vec<u32>,
    /// Consumers that have not taken the node's bytes yet; its cached view is dropped at zero.
    remaining: Vec<u32>,
    active_pipes: Arc<AtomicUsize>,
}

impl<'a> Executor<'a> {
    /// An executor reading `source` (normally a [`View::file`] of the source file), keeping
    /// intermediates in `scratch`.
    pub fn new(plan: &'a Plan, delta: &'a Delta, source: View, scratch: Scratch) -> Self {
        let uses = consumer_counts(plan);
        Executor {
            plan,
            delta,
            source,
            scratch,
            views: HashMap::new(),
            remaining: uses.clone(),
            uses,
            active_pipes: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A stream of exactly the node's bytes.
    pub fn stream(&mut self, id: NodeId) -> Result<Stream> {
        crate::stack::check("the production plan")?;
        if let Some(view) = self.direct_view(id)? {
            return Ok(Box::new(view.reader()));
        }
        if self.uses[id] > 1 {
            let view = self.materialize(id)?;
            return Ok(Box::new(view.reader()));
        }
        self.producer(id)
    }

    /// Random access to the node's bytes, materializing a stream if needed (cached).
    pub fn random_access(&mut self, id: NodeId) -> Result<View> {
        match self.direct_view(id)? {
            Some(view) => Ok(view),
            None => self.materialize(id),
        }
    }

    /// The node's bytes as one contiguous range (copied into scratch space if scattered or in
    /// an input file).
    pub fn contiguous(&mut self, id: NodeId) -> Result<SharedBytes> {
        let view = self.random_access(id)?;
        if let Some(bytes) = one_piece(&view)? {
            return Ok(bytes);
        }
        let copy = self.spill(Box::new(view.reader()), view.len())?;
        let bytes = one_piece(&copy)?.expect("a spilled view is one piece");
        self.views.insert(id, View::bytes(bytes.clone()));
        Ok(bytes)
    }

    /// Whether the executor caches a view of `id` (for tests of the release logic).
    #[cfg(test)]
    fn cached(&self, id: NodeId) -> bool {
        self.views.contains_key(&id)
    }

    /// Records that one consumer inside the plan has taken the bytes of `id` (its stream, view
    /// or contiguous bytes); after the last one the cached view is forgotten. Whoever took it
    /// keeps the bytes alive as long as needed: views and readers hold their own references.
    fn consumed(&mut self, id: NodeId) {
        let left = &mut self.remaining[id];
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.views.remove(&id);
        }
    }

    /// [`Executor::stream`] for a consumer inside the plan.
    fn take_stream(&mut self, id: NodeId) -> Result<Stream> {
        let stream = self.stream(id)?;
        self.consumed(id);
        Ok(stream)
    }

    /// The node's bytes for a consumer inside the plan that needs them contiguous: as
    /// [`Executor::take_view`] when this consumer is the node's last (mapped or copied into one
    /// piece at its first read, [`Bytes::get`]); otherwise made contiguous (and cached) now for
    /// the other consumers.
    fn take_bytes(&mut self, id: NodeId) -> Result<Bytes> {
        if self.remaining[id] <= 1 {
            return self.take_view(id);
        }
        let bytes = Bytes::Ready(self.contiguous(id)?);
        self.consumed(id);
        Ok(bytes)
    }

    /// The node's bytes for a consumer inside the plan that reads them at random. When this
    /// consumer is the node's last, nothing is produced now: a producing node is spilled into
    /// scratch space at the consumer's first read ([`Bytes::view`]), so its bytes take scratch
    /// space only while that consumer runs — the executor builds the streams of the whole plan
    /// before any is read, and a chain of zstd frames (or bsdiff patches) would otherwise hold
    /// every frame's prefix (or old file) at once. Otherwise it is materialized (and cached) now.
    fn take_view(&mut self, id: NodeId) -> Result<Bytes> {
        let bytes = if self.remaining[id] <= 1 {
            match self.direct_view(id)? {
                Some(view) => Bytes::Later(view),
                None => Bytes::Produced {
                    stream: self.producer(id)?,
                    length: self.plan.nodes[id].item.length,
                },
            }
        } else {
            Bytes::Later(self.random_access(id)?)
        };
        self.consumed(id);
        Ok(bytes)
    }

    /// The node as a random-access view without running any producer, if it has one.
    fn direct_view(&mut self, id: NodeId) -> Result<Option<View>> {
        crate::stack::check("the production plan")?;
        if let Some(view) = self.views.get(&id) {
            return Ok(Some(view.clone()));
        }
        let node = &self.plan.nodes[id];
        let length = node.item.length;
        let view = match &node.op {
            Op::Empty => View::default(),
            Op::Source => self.source.clone(),
            Op::Blob(index) => View::bytes(self.delta.blobs[*index].bytes.clone()),
            Op::Zeros => View::zeros(length),
            Op::Slice { whole, offset } => {
                let (whole, offset) = (*whole, *offset);
                let whole_view = self.random_access(whole)?;
                if offset
                    .checked_add(length)
                    .is_none_or(|end| end > whole_view.len())
                {
                    return Err(Error::past_end(offset, length, whole_view.len()));
                }
                let view = whole_view.slice(offset, length);
                // The slice's view (cached below) now holds what it needs of the whole.
                self.consumed(whole);
                view
            }
            Op::Chain(parts) => {
                let parts = parts.clone();
                let mut view = View::default();
                for &part in &parts {
                    match self.direct_view(part)? {
                        Some(part_view) => view.append(&part_view),
                        // Not taken: the chain will be produced as a stream of its parts.
                        None => return Ok(None),
                    }
                    if view.piece_count() > MAX_VIEW_PIECES {
                        return Err(Error::unresolvable(format!(
                            "an item is made of more than {MAX_VIEW_PIECES} pieces"
                        )));
                    }
                }
                for part in parts {
                    self.consumed(part);
                }
                view
            }
            Op::Bspatch { .. }
            | Op::Deflate { .. }
            | Op::Inflate { .. }
            | Op::Zstd { .. }
            | Op::DeflateReconstruct { .. }
            | Op::ZstdCompress { .. }
            | Op::ZstdReconstruct { .. } => return Ok(None),
        };
        self.views.insert(id, view.clone());
        Ok(Some(view))
    }

    /// A fresh stream for a producing node (or a chain containing one): exact length, verified
    /// against the node's SHA-256, and run on its own thread when large.
    fn producer(&mut self, id: NodeId) -> Result<Stream> {
        crate::stack::check("the production plan")?;
        let node = &self.plan.nodes[id];
        let length = node.item.length;
        let describe = || {
            format!(
                "{} producing {}",
                op_name(&self.plan.nodes[id].op),
                self.plan.nodes[id].item.describe()
            )
        };
        let raw: Stream = match node.op.clone() {
            Op::Chain(parts) => {
                let mut streams = Vec::with_capacity(parts.len());
                for part in parts {
                    streams.push(self.take_stream(part)?);
                }
                return Ok(Box::new(ChainReader {
                    parts: streams.into_iter().rev().collect(),
                }));
            }
            Op::Bspatch { patch, old } => {
                let patch = self.take_bytes(patch)?;
                // The old file is read at random where it is (an input or temporary file with
                // `pread`), never copied or mapped in one piece: it can be a whole image.
                let old = self.take_view(old)?;
                let scratch = self.scratch.clone();
                deferred(move || {
                    let patch = patch.get(&scratch, "a bsdiff patch")?;
                    let old_view = old.view(&scratch, "the old file of a bsdiff patch")?;
                    let reader = match old_view.in_memory() {
                        Some(bytes) => BspatchReader::new(patch, bytes, length)?,
                        None => {
                            let old = old_view.at_random(OLD_READ_CHUNK).map_err(|e| {
                                Error::from_io(e, code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN)
                                    .with_context("reading the old file of a bsdiff patch")
                            })?;
                            BspatchReader::new(patch, old, length)?
                        }
                    };
                    Ok(Box::new(reader))
                })
            }
            Op::Deflate { input, init, level } => {
                let input_len = self.plan.nodes[input].item.length;
                let zlib_level = if level == -1 { 6 } else { level };
                let parallel = (4..=9).contains(&zlib_level)
                    && (PARALLEL_DEFLATE_THRESHOLD..=PARALLEL_DEFLATE_MAX_INPUT)
                        .contains(&input_len)
                    && std::thread::available_parallelism().map_or(1, |n| n.get()) > 1
                    && !resources_limited();
                let setup_error = |e: std::io::Error| {
                    let memory = e.kind() == std::io::ErrorKind::OutOfMemory;
                    Error::from_io(e, code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN).with_context(
                        if memory {
                            "setting up the parallel deflater: out of memory"
                        } else {
                            "setting up the parallel deflater"
                        },
                    )
                };
                let input = self.take_stream(input)?;
                if parallel {
                    let wrapper = match init {
                        ZlibInit::Raw => Wrapper::Raw,
                        ZlibInit::Zlib => Wrapper::Zlib,
                        ZlibInit::Gzip => Wrapper::Gzip,
                    };
                    // The input spool lives in memory (a memfd whose consumed range is punched
                    // out as the compressor moves on: a bounded window, no disk).
                    let opts = StreamOptions {
                        parallel: ParallelOptions::default(),
                        temp_dir: None,
                    };
                    deferred(move || {
                        let reader = ParallelDeflateReader::with_options(
                            input,
                            input_len,
                            wrapper,
                            zlib_level as u32,
                            crate::codec::zlib_deflate::MEM_LEVEL as u32,
                            &opts,
                        )
                        .map_err(setup_error)?;
                        Ok(Box::new(reader))
                    })
                } else {
                    deferred(move || Ok(Box::new(DeflateReader::new(input, init, level, length)?)))
                }
            }
            Op::Inflate { input, init } => {
                let input = self.take_stream(input)?;
                deferred(move || Ok(Box::new(InflateReader::new(input, init, length)?)))
            }
            Op::Zstd { frame, prefix } => {
                let frame = self.take_stream(frame)?;
                let prefix = match prefix {
                    Some(p) => Some(self.take_bytes(p)?),
                    None => None,
                };
                let scratch = self.scratch.clone();
                deferred(move || {
                    let prefix = match prefix {
                        Some(p) => Some(p.get(&scratch, "a zstd prefix")?),
                        None => None,
                    };
                    zstd_reader(&scratch, frame, prefix, length)
                })
            }
            Op::DeflateReconstruct {
                plain,
                corrections,
                codec,
                version,
            } => {
                let plain_len = self.plan.nodes[plain].item.length;
                let plain = self.take_stream(plain)?;
                let corrections = self.take_bytes(corrections)?;
                let scratch = self.scratch.clone();
                deferred(move || {
                    let blob = corrections.get(&scratch, "a deflate correction blob")?;
                    crate::codec::deflate_reconstruct::reader_in(
                        &scratch,
                        plain,
                        plain_len,
                        blob,
                        (codec, version),
                        length,
                    )
                })
            }
            Op::ZstdReconstruct { content, structure } => {
                let content_len = self.plan.nodes[content].item.length;
                let content = self.take_stream(content)?;
                let structure = self.take_bytes(structure)?;
                let scratch = self.scratch.clone();
                deferred(move || {
                    let blob = structure.get(&scratch, "a zstd structure blob")?;
                    zstd_rebuilder(&scratch, content, content_len, &blob, length)
                })
            }
            Op::ZstdCompress { input, params } => {
                let input_len = self.plan.nodes[input].item.length;
                let input = self.take_stream(input)?;
                let scratch = self.scratch.clone();
                deferred(move || zstd_compressor(&scratch, input, input_len, params, length))
            }
            Op::Empty | Op::Source | Op::Blob(_) | Op::Zeros | Op::Slice { .. } => {
                let view = self.random_access(id)?;
                return Ok(Box::new(view.reader()));
            }
        };
        let context = describe();
        let mut stream: Stream = Box::new(WithContext {
            inner: ExactLen::new(raw, length),
            context: context.clone(),
        });
        if let Some(expected) = self.plan.nodes[id].item.sha256 {
            stream = Box::new(VerifySha256::new(stream, expected, context));
        }
        if length >= PIPE_THRESHOLD && !resources_limited() {
            stream = Box::new(Pipe::new(stream, Arc::clone(&self.active_pipes)));
        }
        Ok(stream)
    }

    /// Produces a node once into memory or an unlinked temporary file, and caches the view.
    fn materialize(&mut self, id: NodeId) -> Result<View> {
        if let Some(view) = self.views.get(&id) {
            return Ok(view.clone());
        }
        let length = self.plan.nodes[id].item.length;
        let stream = self.producer(id)?;
        let view = self.spill(stream, length)?;
        self.views.insert(id, view.clone());
        Ok(view)
    }

    /// Copies exactly `length` bytes of `stream` into scratch space.
    fn spill(&self, stream: Stream, length: u64) -> Result<View> {
        spill(&self.scratch, stream, length, "an intermediate item")
    }
}

/// The view's bytes in one piece if it is one (a temporary file is mapped now), else `None`.
fn one_piece(view: &View) -> Result<Option<SharedBytes>> {
    view.as_contiguous().map_err(|e| {
        Error::new(
            code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
            format!(
                "Failed to map a temporary file of {} bytes: {e}",
                view.len()
            ),
        )
    })
}

/// A zstd decoder of `frame` producing `length` bytes, its window in a preallocated mapped
/// temporary file or in memory as the scratch space allows (see
/// [`MAPPED_ZSTD_WINDOW_THRESHOLD`] and [`MAPPED_ZSTD_WINDOW_MAX`]); the room stays taken until
/// the decoder is dropped.
fn zstd_reader(
    scratch: &Scratch,
    frame: Stream,
    prefix: Option<SharedBytes>,
    length: u64,
) -> Result<Stream> {
    const WHAT: &str = "the window of a zstd frame";
    if !(..=MAPPED_ZSTD_WINDOW_MAX).contains(&length) {
        let charge = scratch.memory_room(zstd_window_memory(length), WHAT)?;
        return Ok(Box::new(Holding {
            inner: ZstdReader::new(frame, prefix, length)?,
            _charge: charge,
        }));
    }
    let first = if length >= MAPPED_ZSTD_WINDOW_THRESHOLD {
        scratch.config().prefer
    } else {
        Prefer::Memory
    };
    // On disk the window is the whole output; in memory, libzstd's window buffer.
    let need = Need {
        disk: length,
        memory: zstd_window_memory(length),
        disk_mapped: true,
    };
    let room = scratch.room_for(first, need, WHAT)?;
    Ok(match room {
        Room::Disk(file, charge) => Box::new(Holding {
            inner: ZstdReader::with_mapped_window(frame, prefix, length, &file)?,
            _charge: charge,
        }),
        Room::Memory(charge) => Box::new(Holding {
            inner: ZstdReader::new(frame, prefix, length)?,
            _charge: charge,
        }),
    })
}

/// Workers of a job-mode zstd compression: both cores when the machine has them, the memory
/// budget allows it and no address-space limit is set, else one (the frame is the same).
fn zstd_workers() -> u32 {
    if resources_limited() {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(2) as u32)
    }
}

/// A zstd compressor of `input` (`input_len` bytes) giving the `length`-byte frame that
/// `params` describe, its memory charged to the scratch budget (with fewer workers when two
/// do not fit); the charge stays until the compressor is dropped.
fn zstd_compressor(
    scratch: &Scratch,
    input: Stream,
    input_len: u64,
    params: crate::codec::zstd_compress::ZstdParams,
    length: u64,
) -> Result<Stream> {
    let mut workers = zstd_workers();
    loop {
        // Under an address-space limit the worker threads' reservations count too.
        let memory = if resources_limited() {
            params.address_space(input_len, workers)
        } else {
            params.memory(input_len, workers)
        };
        let need = Need {
            // Memory only: libzstd's tables and buffers cannot live in a file.
            disk: u64::MAX,
            memory,
            disk_mapped: false,
        };
        match scratch.room_for(Prefer::Memory, need, "a zstd compressor") {
            Ok(Room::Memory(charge) | Room::Disk(_, charge)) => {
                return Ok(Box::new(Holding {
                    inner: ZstdCompressReader::new(input, input_len, params, workers, length)?,
                    _charge: charge,
                }))
            }
            Err(e) if workers <= 1 => return Err(e),
            Err(_) => workers -= 1,
        }
    }
}

/// The rebuilt frame of a `zstd_reconstruct` recipe, its memory charged first (20301 when it
/// does not fit).
fn zstd_rebuilder(
    scratch: &Scratch,
    content: Stream,
    content_len: u64,
    blob: &[u8],
    length: u64,
) -> Result<Stream> {
    use crate::codec::zstd_reconstruct::{reader, Structure};
    let structure = Structure::read(blob)?;
    let charge = scratch.memory_room(
        structure.memory(content_len, length),
        "a zstd frame rebuilt from its structure",
    )?;
    Ok(Box::new(Holding {
        inner: reader(content, content_len, &structure, length)?,
        _charge: charge,
    }))
}

/// A reader that keeps its scratch space charged until it is dropped.
struct Holding<R> {
    inner: R,
    _charge: Charge,
}

impl<R: Read> Read for Holding<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

/// Copies exactly `length` bytes of `stream` into memory (small items, or when the scratch
/// space has no disk room) or a preallocated temporary file (read with `pread`, mapped only
/// for a consumer that needs it in one piece). `what` names the item in errors.
fn spill(scratch: &Scratch, stream: Stream, length: u64, what: &str) -> Result<View> {
    let mut stream = ExactLen::new(stream, length);
    let read_error = |e| Error::from_io(e, code::IO_READER_READ_FAILURE);
    let room = if length <= IN_MEMORY_MATERIALIZATION_LIMIT {
        None
    } else {
        Some(scratch.room(length, what)?)
    };
    match room {
        None | Some(Room::Memory(_)) => {
            let charge = match room {
                Some(Room::Memory(charge)) => Some(charge),
                _ => None,
            };
            let len = usize::try_from(length).map_err(|_| scratch.no_room(length, what, None))?;
            let mut buf = Vec::new();
            if buf.try_reserve_exact(len).is_err() {
                return Err(Error::new(
                    code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
                    format!(
                        "Not enough memory: {what} needs {length} bytes, the allocation failed"
                    ),
                ));
            }
            stream.read_to_end(&mut buf).map_err(read_error)?;
            Ok(View::bytes(SharedBytes::from_vec_charged(buf, charge)))
        }
        Some(Room::Disk(mut file, charge)) => {
            let temp_error = |e: std::io::Error| {
                Error::new(
                    code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
                    format!(
                        "Failed to use a temporary file in {}: {e}",
                        scratch.config().dir.display()
                    ),
                )
            };
            let chunk = usize::try_from(length).map_or(COPY_CHUNK, |len| len.min(COPY_CHUNK));
            let mut buf =
                scratch::buffer(chunk, "copying into a temporary file").map_err(temp_error)?;
            loop {
                let n = stream.read(&mut buf).map_err(read_error)?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n]).map_err(temp_error)?;
            }
            Ok(View::file(FileRange::scratch(file, length, charge)))
        }
    }
}

/// Bytes a consumer needs: available now, or still to be produced, copied together or mapped
/// when the consumer starts (see [`Executor::take_bytes`] and [`Executor::take_view`]).
enum Bytes {
    /// One contiguous range.
    Ready(SharedBytes),
    /// A view to read at random, or to map (a temporary file's range) or copy into one buffer
    /// (scattered pieces, an input file's range) for a consumer that needs one piece.
    Later(View),
    /// A producer to spill into scratch space when the consumer starts.
    Produced {
        /// The node's verified stream.
        stream: Stream,
        /// Its exact length.
        length: u64,
    },
}

impl Bytes {
    /// The bytes as a random-access view, producing them into scratch space now if they are
    /// not yet (`what` names them in errors).
    fn view(self, scratch: &Scratch, what: &str) -> Result<View> {
        match self {
            Bytes::Ready(bytes) => Ok(View::bytes(bytes)),
            Bytes::Later(view) => Ok(view),
            Bytes::Produced { stream, length } => spill(scratch, stream, length, what),
        }
    }

    /// The bytes in one piece, producing, copying or mapping them now if they are not yet
    /// (`what` names them in errors).
    fn get(self, scratch: &Scratch, what: &str) -> Result<SharedBytes> {
        let view = self.view(scratch, what)?;
        if let Some(bytes) = one_piece(&view)? {
            return Ok(bytes);
        }
        let copy = spill(scratch, Box::new(view.reader()), view.len(), what)?;
        Ok(one_piece(&copy)?.expect("a spilled view is one piece"))
    }
}

/// A stream whose producer is set up by `setup` at the first read. Producers hold codec state
/// (zlib and zstd contexts, input buffers, temporary files) from their setup to their end;
/// the executor builds the streams of a whole plan before any is read, so without this every
/// producer of the plan would hold its state from the start of the apply.
fn deferred(setup: impl FnOnce() -> Result<Stream> + Send + 'static) -> Stream {
    Box::new(Deferred {
        setup: Some(Box::new(setup)),
        stream: None,
        failed: None,
    })
}

/// See [`deferred`].
struct Deferred {
    /// Until the first read.
    setup: Option<Box<dyn FnOnce() -> Result<Stream> + Send>>,
    /// After a successful setup.
    stream: Option<Stream>,
    /// After a failed setup (reported again by every later read).
    failed: Option<Error>,
}

impl Read for Deferred {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(setup) = self.setup.take() {
            match setup() {
                Ok(stream) => self.stream = Some(stream),
                Err(e) => self.failed = Some(e),
            }
        }
        match (&mut self.stream, &self.failed) {
            (Some(stream), _) => stream.read(buf),
            (None, Some(e)) => Err(e.clone().into_io()),
            (None, None) => Ok(0),
        }
    }
}

/// Concatenation of part streams.
struct ChainReader {
    /// Remaining parts, last first.
    parts: Vec<Stream>,
}

impl Read for ChainReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(part) = self.parts.last_mut() {
            let n = part.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.parts.pop();
        }
        Ok(0)
    }
}

/// Adds a context frame to errors of the wrapped stream.
struct WithContext<R> {
    inner: R,
    context: String,
}

impl<R: Read> Read for WithContext<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            Error::from_io(e, code::IO_READER_READ_FAILURE)
                .with_context(self.context.clone())
                .into_io()
        })
    }
}

/// How many times each node is an ingredient of a node reachable from the plan's root (nodes
/// the resolver added for recipes it then abandoned are nobody's consumers).
fn consumer_counts(plan: &Plan) -> Vec<u32> {
    let mut uses = vec![0u32; plan.nodes.len()];
    if plan.root >= plan.nodes.len() {
        return uses;
    }
    let mut reached = vec![false; plan.nodes.len()];
    reached[plan.root] = true;
    let mut stack = vec![plan.root];
    while let Some(id) = stack.pop() {
        for ingredient in ingredients(&plan.nodes[id].op) {
            uses[ingredient] = uses[ingredient].saturating_add(1);
            if !reached[ingredient] {
                reached[ingredient] = true;
                stack.push(ingredient);
            }
        }
    }
    uses
}

/// Item ingredients of an operation.
pub fn ingredients(op: &Op) -> Vec<NodeId> {
    match op {
        Op::Empty | Op::Source | Op::Blob(_) | Op::Zeros => Vec::new(),
        Op::Chain(parts) => parts.clone(),
        Op::Slice { whole, .. } => vec![*whole],
        Op::Bspatch { patch, old } => vec![*patch, *old],
        Op::Deflate { input, .. } | Op::Inflate { input, .. } | Op::ZstdCompress { input, .. } => {
            vec![*input]
        }
        Op::Zstd { frame, prefix } => std::iter::once(*frame).chain(*prefix).collect(),
        Op::DeflateReconstruct {
            plain, corrections, ..
        } => vec![*plain, *corrections],
        Op::ZstdReconstruct { content, structure } => vec![*content, *structure],
    }
}

/// Short name of an operation for messages.
pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Empty => "empty",
        Op::Source => "source",
        Op::Blob(_) => "delta blob",
        Op::Zeros => "all_zeros",
        Op::Chain(_) => "chain",
        Op::Slice { .. } => "slice",
        Op::Bspatch { .. } => "bspatch_decompression",
        Op::Deflate { .. } => "zlib_compression",
        Op::Inflate { .. } => "zlib_decompression",
        Op::Zstd { .. } => "zstd_decompression",
        Op::DeflateReconstruct { .. } => "deflate_reconstruct",
        Op::ZstdCompress { .. } => "zstd_compression_exact",
        Op::ZstdReconstruct { .. } => "zstd_reconstruct",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::model::{DeltaBlob, Format, Item};
    use crate::plan::Node;
    use sha2::{Digest, Sha256};

    fn item(bytes: &[u8]) -> Item {
        Item::with_sha256(bytes.len() as u64, Sha256::digest(bytes).into())
    }

    fn node(bytes: &[u8], op: Op) -> Node {
        Node {
            item: item(bytes),
            op,
        }
    }

    fn delta(blobs: &[&[u8]]) -> Delta {
        Delta {
            format: Format::StandardV2,
            target: Item::empty(),
            source: Item::empty(),
            recipes: Vec::new(),
            blobs: blobs
                .iter()
                .map(|b| DeltaBlob {
                    item: item(b),
                    offset: 0,
                    bytes: SharedBytes::from_vec(b.to_vec()),
                })
                .collect(),
            nested_archives: 0,
            legacy_nested: Vec::new(),
        }
    }

    /// Compressible, position-dependent test bytes.
    fn data(len: usize, seed: u32) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i / 7).wrapping_mul(seed).rotate_left(i % 5) as u8 & 0x3f)
            .collect()
    }

    fn read_all(mut stream: Stream) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        stream
            .read_to_end(&mut out)
            .map_err(|e| Error::from_io(e, 0))?;
        Ok(out)
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn consumer_counts_ignore_abandoned_nodes() {
        let plan = Plan {
            nodes: vec![
                node(b"ab", Op::Blob(0)),
                node(
                    b"a",
                    Op::Slice {
                        whole: 0,
                        offset: 0,
                    },
                ),
                node(
                    b"b",
                    Op::Slice {
                        whole: 0,
                        offset: 1,
                    },
                ),
                node(b"ba", Op::Chain(vec![2, 1, 2])),
            ],
            root: 3,
        };
        // Node 1 is abandoned when the root only uses node 2.
        let mut abandoned = plan.clone();
        abandoned.nodes[3].op = Op::Chain(vec![2, 2]);
        assert_eq!(consumer_counts(&plan), vec![2, 1, 2, 0]);
        assert_eq!(consumer_counts(&abandoned), vec![1, 0, 2, 0]);
    }

    /// A stream materialized because two slices read it is forgotten after the second took its
    /// view; what the first took stays readable.
    #[test]
    fn materialized_node_is_forgotten_after_its_last_consumer() {
        let whole = data(300_000, 2_654_435_761);
        let (head, tail) = whole.split_at(100_000);
        let target = [tail, head].concat();
        let compressed = gzip(&whole);
        let delta = delta(&[&compressed]);
        let plan = Plan {
            nodes: vec![
                node(&compressed, Op::Blob(0)),
                node(
                    &whole,
                    Op::Inflate {
                        input: 0,
                        init: ZlibInit::Gzip,
                    },
                ),
                node(
                    head,
                    Op::Slice {
                        whole: 1,
                        offset: 0,
                    },
                ),
                node(
                    tail,
                    Op::Slice {
                        whole: 1,
                        offset: 100_000,
                    },
                ),
                node(&target, Op::Chain(vec![3, 2])),
            ],
            root: 4,
        };
        let temp = tempfile::tempdir().unwrap();
        let mut executor =
            Executor::new(&plan, &delta, View::default(), Scratch::in_dir(temp.path()));
        let head_view = executor.random_access(2).unwrap();
        assert!(executor.cached(1), "the second slice still needs the whole");
        executor.random_access(3).unwrap();
        assert!(!executor.cached(1), "no consumer of the whole is left");
        let mut got = Vec::new();
        head_view.reader().read_to_end(&mut got).unwrap();
        assert_eq!(got, head);

        let stream = executor.stream(plan.root).unwrap();
        assert!(
            !executor.cached(2) && !executor.cached(3),
            "taken by the chain"
        );
        assert_eq!(read_all(stream).unwrap(), target);
    }

    /// A scattered zstd prefix is copied into one buffer only when its frame is read, and the
    /// executor keeps neither the copy nor the pieces; a prefix two frames share is copied once
    /// and kept until the second takes it.
    #[test]
    fn zstd_prefixes_are_not_kept() {
        let source = data(200_000, 40_503);
        let prefix = [&source[120_000..170_000], &source[10_000..60_000]].concat();
        let output = [&prefix[30_000..90_000], &data(5_000, 7)[..]].concat();
        let mut cctx = zstd_safe::CCtx::create();
        cctx.ref_prefix(&prefix).unwrap();
        let mut frame = Vec::with_capacity(zstd_safe::compress_bound(output.len()));
        cctx.compress2(&mut frame, &output).unwrap();
        drop(cctx);
        let delta = delta(&[&frame]);
        let zstd = || Op::Zstd {
            frame: 4,
            prefix: Some(3),
        };
        let mut plan = Plan {
            nodes: vec![
                node(&source, Op::Source),
                node(
                    &source[120_000..170_000],
                    Op::Slice {
                        whole: 0,
                        offset: 120_000,
                    },
                ),
                node(
                    &source[10_000..60_000],
                    Op::Slice {
                        whole: 0,
                        offset: 10_000,
                    },
                ),
                node(&prefix, Op::Chain(vec![1, 2])),
                node(&frame, Op::Blob(0)),
                node(&output, zstd()),
            ],
            root: 5,
        };
        let temp = tempfile::tempdir().unwrap();
        let source_bytes = SharedBytes::from_vec(source.clone());
        let mut executor = Executor::new(
            &plan,
            &delta,
            View::bytes(source_bytes.clone()),
            Scratch::in_dir(temp.path()),
        );
        let stream = executor.stream(plan.root).unwrap();
        assert!(!executor.cached(3), "the prefix is left to its frame");
        assert!(!executor.cached(1) && !executor.cached(2));
        assert_eq!(read_all(stream).unwrap(), output);

        // Two frames sharing the prefix (the output twice).
        let twice = [&output[..], &output[..]].concat();
        plan.nodes.push(node(&output, zstd()));
        plan.nodes.push(node(&twice, Op::Chain(vec![5, 6])));
        plan.root = 7;
        let mut executor = Executor::new(
            &plan,
            &delta,
            View::bytes(source_bytes),
            Scratch::in_dir(temp.path()),
        );
        let first = executor.stream(5).unwrap();
        assert!(executor.cached(3), "made contiguous once, for both frames");
        drop(first);
        let stream = executor.stream(plan.root).unwrap();
        assert!(!executor.cached(3), "both frames took it");
        assert_eq!(read_all(stream).unwrap(), twice);
    }

    /// A chain of zstd frames whose prefixes must be produced (here inflated from the delta)
    /// holds one prefix at a time: building the streams of the plan produces, copies and
    /// charges nothing, and a memory budget with room for one frame's prefix and window, not
    /// for two prefixes, is enough. (Before, every prefix of the chain was produced when the
    /// chain was built: the corpus minor apply held three 15–40 MB prefixes mapped at once
    /// and failed under a 128 MiB address-space limit.)
    #[test]
    fn a_chain_of_zstd_frames_holds_one_prefix_at_a_time() {
        const PREFIX: usize = 300_000;
        const OUTPUT: usize = 100_000;
        let prefixes = [data(PREFIX, 40_503), data(PREFIX, 9_001)];
        let mut blobs = Vec::new();
        let mut outputs = Vec::new();
        for (i, prefix) in prefixes.iter().enumerate() {
            let output = [
                &prefix[1_000..1_000 + OUTPUT - 4_000],
                &data(4_000, i as u32)[..],
            ]
            .concat();
            let mut cctx = zstd_safe::CCtx::create();
            cctx.ref_prefix(prefix).unwrap();
            let mut frame = Vec::with_capacity(zstd_safe::compress_bound(output.len()));
            cctx.compress2(&mut frame, &output).unwrap();
            blobs.push(gzip(prefix));
            blobs.push(frame);
            outputs.push(output);
        }
        let delta = delta(&blobs.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let mut nodes = Vec::new();
        for (i, prefix) in prefixes.iter().enumerate() {
            let base = nodes.len();
            nodes.push(node(&blobs[2 * i], Op::Blob(2 * i)));
            nodes.push(node(
                prefix,
                Op::Inflate {
                    input: base,
                    init: ZlibInit::Gzip,
                },
            ));
            nodes.push(node(&blobs[2 * i + 1], Op::Blob(2 * i + 1)));
            nodes.push(node(
                &outputs[i],
                Op::Zstd {
                    frame: base + 2,
                    prefix: Some(base + 1),
                },
            ));
        }
        let target = outputs.concat();
        nodes.push(node(&target, Op::Chain(vec![3, 7])));
        let plan = Plan {
            root: nodes.len() - 1,
            nodes,
        };
        let one_frame = PREFIX as u64 + zstd_window_memory(OUTPUT as u64);
        assert!(
            one_frame + PREFIX as u64 > 800_000,
            "two prefixes must not fit"
        );
        let temp = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(scratch::ScratchConfig {
            dir: temp.path().to_path_buf(),
            prefer: Prefer::Memory,
            memory_budget: 800_000,
            disk_budget: Some(0),
            address_space_budget: None,
        });
        let mut executor = Executor::new(&plan, &delta, View::default(), scratch.clone());
        let stream = executor.stream(plan.root).unwrap();
        assert_eq!(
            scratch.memory_used(),
            0,
            "nothing is held before the first read"
        );
        assert_eq!(read_all(stream).unwrap(), target);
        assert_eq!(scratch.memory_used(), 0, "everything is given back");
    }

    /// A bsdiff patch's old file that lies in an input file is read there with `pread`: no
    /// scratch space at all (none is allowed here), and the output is right.
    #[test]
    fn bspatch_reads_its_old_file_in_place() {
        let source = data(300_000, 77);
        let old = &source[50_000..250_000];
        let mut new = old.to_vec();
        for at in (0..new.len()).step_by(997) {
            new[at] ^= 0x5a;
        }
        let mut patch = Vec::new();
        qbsdiff::Bsdiff::new(old, &new).compare(&mut patch).unwrap();
        let delta = delta(&[&patch]);
        let plan = Plan {
            nodes: vec![
                node(&source, Op::Source),
                node(
                    old,
                    Op::Slice {
                        whole: 0,
                        offset: 50_000,
                    },
                ),
                node(&patch, Op::Blob(0)),
                node(&new, Op::Bspatch { patch: 2, old: 1 }),
            ],
            root: 3,
        };
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("source");
        std::fs::write(&path, &source).unwrap();
        let scratch = Scratch::new(scratch::ScratchConfig {
            dir: temp.path().to_path_buf(),
            prefer: Prefer::Disk,
            memory_budget: 0,
            disk_budget: Some(0),
            address_space_budget: None,
        });
        let view = View::file(FileRange::open(&path).unwrap());
        let mut executor = Executor::new(&plan, &delta, view, scratch.clone());
        let stream = executor.stream(plan.root).unwrap();
        assert_eq!(read_all(stream).unwrap(), new);
        assert_eq!((scratch.disk_used(), scratch.memory_used()), (0, 0));
    }

    /// Codec state is set up at the first read, so errors of the setup come from the stream.
    #[test]
    fn producers_are_set_up_at_first_read() {
        let garbage = vec![0x55u8; 100];
        let old = data(1_000, 3);
        let delta = delta(&[&garbage, &old]);
        let plan = Plan {
            nodes: vec![
                node(&garbage, Op::Blob(0)),
                node(&old, Op::Blob(1)),
                node(&[7u8; 500], Op::Bspatch { patch: 0, old: 1 }),
            ],
            root: 2,
        };
        let temp = tempfile::tempdir().unwrap();
        let mut executor =
            Executor::new(&plan, &delta, View::default(), Scratch::in_dir(temp.path()));
        let stream = executor.stream(plan.root).expect("nothing is set up yet");
        let direct = BspatchReader::new(
            SharedBytes::from_vec(garbage.clone()),
            SharedBytes::from_vec(old.clone()),
            500,
        )
        .err()
        .expect("not a patch");
        let err = read_all(stream).unwrap_err();
        assert_eq!(err.code, direct.code);
        assert!(err.text().contains("bspatch_decompression producing"));
    }
}
