//! Execution of a [`Plan`]: turns nodes into byte streams (decompressors, patchers, the stock-zlib
//! re-compressor) and random-access views (mapped source and delta ranges, zeros), materializing a
//! stream into an unlinked temporary file only when something needs random access to it or uses
//! it more than once.

pub mod output;
pub mod stream;
pub mod view;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::codec::{BspatchReader, DeflateReader, InflateReader, ZstdReader};
use crate::error::{code, Error, Result};
use crate::format::model::{Delta, ZlibInit};
use crate::io::SharedBytes;
use crate::pardeflate::{ParallelDeflateReader, ParallelOptions, StreamOptions, Wrapper};
use crate::plan::{NodeId, Op, Plan};
use stream::{ExactLen, Pipe, Stream, VerifySha256};
use view::View;

/// Streams shorter than this are materialized in memory rather than in a temporary file.
pub const IN_MEMORY_MATERIALIZATION_LIMIT: u64 = 64 * 1024;

/// Producers shorter than this run inline rather than on a pipe thread.
const PIPE_THRESHOLD: u64 = 1 << 20;

/// zstd outputs at least this long decode into a mapped temporary file instead of a window
/// buffer in memory (see [`ZstdReader::with_mapped_window`]).
pub const MAPPED_ZSTD_WINDOW_THRESHOLD: u64 = 32 << 20;

/// Most pieces one random-access view may have (bounds hostile chain-of-chain deltas).
pub const MAX_VIEW_PIECES: usize = 1 << 20;

/// Copy buffer size for materialization.
const COPY_CHUNK: usize = 1 << 20;

/// Deflate inputs at least this long are compressed on all cores by
/// [`ParallelDeflateReader`] (levels 4–9, byte-identical to zlib); shorter ones, levels 0–3
/// and single-core machines use stock zlib.
pub const PARALLEL_DEFLATE_THRESHOLD: u64 = 4 << 20;

/// Whether the process runs under an address-space limit. Worker threads reserve stacks and
/// malloc arenas (virtual memory) and may fail to start under one; the parallel deflater is then
/// not used and stock zlib (one thread, O(1) memory) does the work. (A worker that still fails
/// to start is tolerated by the deflater as long as one runs.)
fn resources_limited() -> bool {
    let limited = |resource| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct we pass.
        let ok = unsafe { libc::getrlimit(resource, &mut limit) } == 0;
        ok && limit.rlim_cur != libc::RLIM_INFINITY
    };
    limited(libc::RLIMIT_AS)
}

/// Produces the bytes of plan nodes.
pub struct Executor<'a> {
    plan: &'a Plan,
    delta: &'a Delta,
    source: SharedBytes,
    temp_dir: PathBuf,
    views: HashMap<NodeId, View>,
    uses: Vec<u32>,
    active_pipes: Arc<AtomicUsize>,
}

impl<'a> Executor<'a> {
    /// An executor reading the mapped `source`, placing temporary files in `temp_dir`.
    pub fn new(plan: &'a Plan, delta: &'a Delta, source: SharedBytes, temp_dir: PathBuf) -> Self {
        let mut uses = vec![0u32; plan.nodes.len()];
        for node in &plan.nodes {
            for id in ingredients(&node.op) {
                uses[id] = uses[id].saturating_add(1);
            }
        }
        Executor {
            plan,
            delta,
            source,
            temp_dir,
            views: HashMap::new(),
            uses,
            active_pipes: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A stream of exactly the node's bytes.
    pub fn stream(&mut self, id: NodeId) -> Result<Stream> {
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

    /// The node's bytes as one contiguous mapped range (materialized if scattered).
    pub fn contiguous(&mut self, id: NodeId) -> Result<SharedBytes> {
        let view = self.random_access(id)?;
        if let Some(bytes) = view.as_contiguous() {
            return Ok(bytes);
        }
        let bytes = self.spill(Box::new(view.reader()), view.len())?;
        self.views.insert(id, View::bytes(bytes.clone()));
        Ok(bytes)
    }

    /// The node as a random-access view without running any producer, if it has one.
    fn direct_view(&mut self, id: NodeId) -> Result<Option<View>> {
        if let Some(view) = self.views.get(&id) {
            return Ok(Some(view.clone()));
        }
        let node = &self.plan.nodes[id];
        let length = node.item.length;
        let view = match &node.op {
            Op::Empty => View::default(),
            Op::Source => View::bytes(self.source.clone()),
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
                whole_view.slice(offset, length)
            }
            Op::Chain(parts) => {
                let parts = parts.clone();
                let mut view = View::default();
                for part in parts {
                    match self.direct_view(part)? {
                        Some(part_view) => view.append(&part_view),
                        None => return Ok(None),
                    }
                    if view.piece_count() > MAX_VIEW_PIECES {
                        return Err(Error::unresolvable(format!(
                            "an item is made of more than {MAX_VIEW_PIECES} pieces"
                        )));
                    }
                }
                view
            }
            Op::Bspatch { .. } | Op::Deflate { .. } | Op::Inflate { .. } | Op::Zstd { .. } => {
                return Ok(None)
            }
        };
        self.views.insert(id, view.clone());
        Ok(Some(view))
    }

    /// A fresh stream for a producing node (or a chain containing one): exact length, verified
    /// against the node's SHA-256, and run on its own thread when large.
    fn producer(&mut self, id: NodeId) -> Result<Stream> {
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
                    streams.push(self.stream(part)?);
                }
                return Ok(Box::new(ChainReader {
                    parts: streams.into_iter().rev().collect(),
                }));
            }
            Op::Bspatch { patch, old } => {
                let patch = self.contiguous(patch)?;
                let old = self.contiguous(old)?;
                Box::new(
                    BspatchReader::new(patch, old, length)
                        .map_err(|e| e.with_context(describe()))?,
                )
            }
            Op::Deflate { input, init, level } => {
                let input_len = self.plan.nodes[input].item.length;
                let zlib_level = if level == -1 { 6 } else { level };
                let parallel = (4..=9).contains(&zlib_level)
                    && input_len >= PARALLEL_DEFLATE_THRESHOLD
                    && std::thread::available_parallelism().map_or(1, |n| n.get()) > 1
                    && !resources_limited();
                let input = self.stream(input)?;
                if parallel {
                    let wrapper = match init {
                        ZlibInit::Raw => Wrapper::Raw,
                        ZlibInit::Zlib => Wrapper::Zlib,
                        ZlibInit::Gzip => Wrapper::Gzip,
                    };
                    let opts = StreamOptions {
                        parallel: ParallelOptions::default(),
                        temp_dir: Some(self.temp_dir.clone()),
                    };
                    let reader = ParallelDeflateReader::with_options(
                        input,
                        input_len,
                        wrapper,
                        zlib_level as u32,
                        crate::codec::zlib_deflate::MEM_LEVEL as u32,
                        &opts,
                    )
                    .map_err(|e| {
                        Error::from_io(e, code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN)
                            .with_context(describe())
                    })?;
                    Box::new(reader)
                } else {
                    Box::new(
                        DeflateReader::new(input, init, level, length)
                            .map_err(|e| e.with_context(describe()))?,
                    )
                }
            }
            Op::Inflate { input, init } => {
                let input = self.stream(input)?;
                Box::new(
                    InflateReader::new(input, init, length)
                        .map_err(|e| e.with_context(describe()))?,
                )
            }
            Op::Zstd { frame, prefix } => {
                let frame = self.stream(frame)?;
                let prefix = match prefix {
                    Some(p) => Some(self.contiguous(p)?),
                    None => None,
                };
                let reader = if length >= MAPPED_ZSTD_WINDOW_THRESHOLD {
                    let file = self.temp_file()?;
                    ZstdReader::with_mapped_window(frame, prefix, length, &file)
                } else {
                    ZstdReader::new(frame, prefix, length)
                };
                Box::new(reader.map_err(|e| e.with_context(describe()))?)
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
        if length >= PIPE_THRESHOLD {
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
        let bytes = self.spill(stream, length)?;
        let view = View::bytes(bytes);
        self.views.insert(id, view.clone());
        Ok(view)
    }

    /// A new unlinked temporary file in the temporary directory.
    fn temp_file(&self) -> Result<std::fs::File> {
        tempfile::tempfile_in(&self.temp_dir).map_err(|e| {
            Error::new(
                code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
                format!(
                    "Failed to create a temporary file in {}: {e}",
                    self.temp_dir.display()
                ),
            )
        })
    }

    /// Copies exactly `length` bytes of `stream` into memory (small) or a temporary file (mapped).
    fn spill(&self, stream: Stream, length: u64) -> Result<SharedBytes> {
        let mut stream = ExactLen::new(stream, length);
        if length <= IN_MEMORY_MATERIALIZATION_LIMIT {
            let mut buf = Vec::with_capacity(length as usize);
            stream
                .read_to_end(&mut buf)
                .map_err(|e| Error::from_io(e, code::IO_READER_READ_FAILURE))?;
            return Ok(SharedBytes::from_vec(buf));
        }
        let temp_error = |e: std::io::Error| {
            Error::new(
                code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
                format!(
                    "Failed to use a temporary file in {}: {e}",
                    self.temp_dir.display()
                ),
            )
        };
        let mut file = self.temp_file()?;
        let mut buf = vec![0u8; COPY_CHUNK];
        loop {
            let n = stream
                .read(&mut buf)
                .map_err(|e| Error::from_io(e, code::IO_READER_READ_FAILURE))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(temp_error)?;
        }
        SharedBytes::map_file(&file).map_err(temp_error)
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

/// Item ingredients of an operation.
pub fn ingredients(op: &Op) -> Vec<NodeId> {
    match op {
        Op::Empty | Op::Source | Op::Blob(_) | Op::Zeros => Vec::new(),
        Op::Chain(parts) => parts.clone(),
        Op::Slice { whole, .. } => vec![*whole],
        Op::Bspatch { patch, old } => vec![*patch, *old],
        Op::Deflate { input, .. } | Op::Inflate { input, .. } => vec![*input],
        Op::Zstd { frame, prefix } => std::iter::once(*frame).chain(*prefix).collect(),
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
    }
}
