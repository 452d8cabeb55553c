//! Exact deflate streams from their plain text plus a correction blob (the extended format's
//! `deflate_reconstruct` recipe, docs/EXTENDED-FORMAT.md).
//!
//! Any deflate encoder (GNU gzip, pigz, busybox, zlib at any setting) makes choices the plain
//! text does not determine; the correction codec records only where a predicting encoder's
//! choices differ from the original. Codec 1 is Microsoft's preflate (the `preflate-rs` crate,
//! pinned to an exact version because its correction bytes are part of our format), applied
//! chunk by chunk so that memory stays bounded whatever the stream's length:
//!
//! ```text
//! blob   = "ADPF" u32:chunk_count chunk*            (big-endian)
//! chunk  = u64:plain_len u64:deflate_len u64:corrections_len corrections
//! ```
//!
//! Chunk k rebuilds `deflate_len` bytes of the stream from the next `plain_len` bytes of the
//! plain text and its corrections; the rebuilder keeps the preceding 32 KiB window and its
//! predictor state from chunk to chunk. The plain text of one chunk is at most
//! [`MAX_CHUNK_PLAIN`], its output at most [`MAX_CHUNK_DEFLATE`]; both are checked before any
//! allocation, and allocations are fallible.
//!
//! Codec 2 needs no corrections at all: the stream is what a known encoder writes, and the
//! applier runs that encoder ([`crate::pardeflate`], byte-exact, on all cores, streaming).
//! Its blob only names the encoder and level (GNU gzip's own deflate, which the corpus's
//! `rootfs.ext4.gz` and Debian's `.gz` files are made with):
//!
//! ```text
//! blob   = "ADEX" u8:encoder u8:level            (encoder 1 = GNU gzip 1.x, level 1..=9)
//! ```

use std::io::{self, Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::error::{code, Error, Result};
use crate::io::SharedBytes;

/// Codec id (recipe number 0) of preflate corrections in [`MAGIC`] chunk framing.
pub const CODEC_PREFLATE: u64 = 1;
/// Codec version (recipe number 1): preflate-rs 0.7.6's correction bitstream, framing 1.
pub const CODEC_PREFLATE_VERSION: u64 = 1;
/// First bytes of a codec-1 correction blob.
pub const MAGIC: &[u8; 4] = b"ADPF";
/// Most plain-text bytes one chunk may have.
pub const MAX_CHUNK_PLAIN: u64 = 32 << 20;
/// Most deflate bytes one chunk may rebuild.
pub const MAX_CHUNK_DEFLATE: u64 = 32 << 20;
/// Plain text the generator lets one chunk have (at most; a chunk ends at a deflate block
/// boundary before this much). It must hold the longest block: one zlib block of long matches
/// (64 Ki symbols of 258 bytes at memLevel 9) is 16.9 MB, GNU gzip's 8.5 MB — runs of zeros in
/// file-system images make such blocks. Chunks are normally far shorter: the analyser is
/// offered 1 MiB of compressed input at a time (see [`analyse`] for the exception).
pub const GENERATOR_CHUNK_PLAIN: usize = MAX_CHUNK_PLAIN as usize;
/// Compressed bytes the generator offers the analyser at a time (grown when one deflate block
/// is longer).
const GENERATOR_CHUNK_INPUT: usize = 1 << 20;

fn failed(detail: impl std::fmt::Display) -> Error {
    Error::new(
        code::EXT_RECONSTRUCT_FAILED,
        format!("deflate_reconstruct: {detail}"),
    )
}

/// Codec id (recipe number 0) of an exact re-encoder: the blob names the encoder.
pub const CODEC_EXACT: u64 = 2;
/// Codec version (recipe number 1) of [`CODEC_EXACT`]: [`EXACT_MAGIC`] blob, encoder 1.
pub const CODEC_EXACT_VERSION: u64 = 1;
/// Codec version of [`CODEC_EXACT`] that also knows encoder 2, pigz
/// ([`crate::codec::pigz`]); appliers that know only version 1 refuse it cleanly.
pub const CODEC_EXACT_VERSION_PIGZ: u64 = 2;
/// First bytes of a codec-2 blob.
pub const EXACT_MAGIC: &[u8; 4] = b"ADEX";
/// Codec-2 encoder byte: GNU gzip 1.x's deflate ([`crate::pardeflate::Encoder::GnuGzip`]).
pub const EXACT_GNU_GZIP: u8 = 1;
/// Plain text a codec-2 stream at levels 1–3 may have: those levels compress on one thread
/// from memory (their parse cannot be split), so their size is bounded (≈ 1.4× this in RAM).
pub const MAX_EXACT_FAST_PLAIN: u64 = 8 << 20;

/// Checks that this applier knows codec `codec` at version `version`.
pub fn check_codec(codec: u64, version: u64) -> Result<()> {
    if (codec, version) == (CODEC_PREFLATE, CODEC_PREFLATE_VERSION)
        || (codec == CODEC_EXACT
            && (CODEC_EXACT_VERSION..=CODEC_EXACT_VERSION_PIGZ).contains(&version))
    {
        return Ok(());
    }
    Err(Error::new(
        code::EXT_CODEC_UNSUPPORTED,
        format!(
            "deflate_reconstruct: correction codec {codec} version {version} is not supported \
             by this applier (it knows codec {CODEC_PREFLATE} version {CODEC_PREFLATE_VERSION} \
             and codec {CODEC_EXACT} versions {CODEC_EXACT_VERSION}..={CODEC_EXACT_VERSION_PIGZ}); \
             update the delta processor \
             or use the full image"
        ),
    ))
}

/// The codec-2 blob for GNU gzip at `level`.
pub fn exact_gnu_gzip_blob(level: u32) -> Vec<u8> {
    let mut b = EXACT_MAGIC.to_vec();
    b.extend_from_slice(&[EXACT_GNU_GZIP, level as u8]);
    b
}

/// The level named by a codec-2 blob (encoder 1 is the only one).
fn parse_exact_blob(blob: &[u8], plain_len: u64) -> Result<u32> {
    let [m0, m1, m2, m3, encoder, level] = blob else {
        return Err(failed(format!(
            "a codec-2 blob has 6 bytes, this one {}",
            blob.len()
        )));
    };
    if [*m0, *m1, *m2, *m3] != *EXACT_MAGIC {
        return Err(failed("codec-2 blob does not start with \"ADEX\""));
    }
    if *encoder != EXACT_GNU_GZIP {
        return Err(failed(format!("codec-2 encoder {encoder} is not known")));
    }
    let level = u32::from(*level);
    if !(1..=9).contains(&level) {
        return Err(failed(format!("codec-2 level {level} is outside 1..=9")));
    }
    if level < 4 && plain_len > MAX_EXACT_FAST_PLAIN {
        return Err(failed(format!(
            "codec-2 level {level} with {plain_len} plain bytes (levels 1–3 allow \
             {MAX_EXACT_FAST_PLAIN})"
        )));
    }
    Ok(level)
}

/// The rebuilt deflate stream for any known codec: codec 1 through
/// [`DeflateReconstructReader`], codec 2 by re-encoding with bounded memory — on all cores
/// (`crate::pardeflate::ParallelDeflateReader`: the plain text passes through an in-memory
/// spool of ~12–16 MiB, mapped at its full length), or under an address-space limit and on
/// one core on the caller's thread (`crate::pardeflate::SequentialDeflateReader`, ~4.3 MiB).
/// No memory is charged to any budget (the generator's checks, tools); an apply uses
/// [`reader_in`].
pub fn reader(
    plain: Box<dyn Read + Send>,
    plain_len: u64,
    blob: SharedBytes,
    codec: u64,
    version: u64,
    output_len: u64,
) -> Result<Box<dyn Read + Send>> {
    reader_with(plain, plain_len, blob, (codec, version), output_len, None)
}

/// [`reader`] inside an apply: the pigz re-encoder's memory
/// ([`crate::codec::pigz::PigzParams::memory`]) is charged to `scratch`'s memory budget
/// (and address-space budget) before anything is allocated and stays charged while the
/// reader lives — two workers when both cores are free and the budget has room for them,
/// else the caller's thread, else a clean [`code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN`].
pub fn reader_in(
    scratch: &crate::io::Scratch,
    plain: Box<dyn Read + Send>,
    plain_len: u64,
    blob: SharedBytes,
    (codec, version): (u64, u64),
    output_len: u64,
) -> Result<Box<dyn Read + Send>> {
    reader_with(
        plain,
        plain_len,
        blob,
        (codec, version),
        output_len,
        Some(scratch),
    )
}

fn reader_with(
    plain: Box<dyn Read + Send>,
    plain_len: u64,
    blob: SharedBytes,
    (codec, version): (u64, u64),
    output_len: u64,
    scratch: Option<&crate::io::Scratch>,
) -> Result<Box<dyn Read + Send>> {
    check_codec(codec, version)?;
    if codec == CODEC_PREFLATE {
        return Ok(Box::new(DeflateReconstructReader::new(
            plain, plain_len, blob, codec, version, output_len,
        )?));
    }
    use crate::pardeflate::{
        Encoder, ParallelDeflateReader, SequentialDeflateReader, StreamOptions, Wrapper,
    };
    if version == CODEC_EXACT_VERSION_PIGZ && blob.get(4) == Some(&crate::codec::pigz::ENCODER_PIGZ)
    {
        return pigz_reader(plain, plain_len, &blob, output_len, scratch);
    }
    let level = parse_exact_blob(&blob, plain_len)?;
    let setup = |e: io::Error| {
        Error::from_io(e, code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN)
            .with_context("deflate_reconstruct: setting up the GNU gzip encoder")
    };
    // Under an address-space limit, on one core, or for an input longer than a 32-bit process
    // should map (`MAX_SPOOLED_INPUT`): the caller's thread, ~4.3 MiB of input held,
    // no spool mapping. Otherwise all cores through the spooled parallel reader.
    if one_core()
        || crate::io::scratch::address_space_limit().is_some()
        || !(..=crate::pardeflate::MAX_SPOOLED_INPUT).contains(&plain_len)
    {
        let r =
            SequentialDeflateReader::new(plain, plain_len, Wrapper::Raw, level, Encoder::GnuGzip)
                .map_err(setup)?;
        return Ok(Box::new(r));
    }
    let reader = ParallelDeflateReader::with_encoder(
        plain,
        plain_len,
        Wrapper::Raw,
        level,
        Encoder::GnuGzip,
        &StreamOptions::default(),
    )
    .map_err(setup)?;
    Ok(Box::new(reader))
}

/// The pigz re-encoder ([`crate::codec::pigz::PigzReader`]): two workers when both cores are
/// free to use (no address-space limit, more than one core) and `scratch`'s budget has room
/// for them, else the caller's thread; its memory charged to `scratch` when there is one.
fn pigz_reader(
    plain: Box<dyn Read + Send>,
    plain_len: u64,
    blob: &[u8],
    output_len: u64,
    scratch: Option<&crate::io::Scratch>,
) -> Result<Box<dyn Read + Send>> {
    use crate::codec::pigz::{PigzParams, PigzReader};
    let params = PigzParams::from_blob(blob, plain_len)?;
    let mut threads = if one_core() || crate::io::scratch::address_space_limit().is_some() {
        0
    } else {
        2
    };
    let Some(scratch) = scratch else {
        let r = PigzReader::with_params(plain, plain_len, params, output_len, threads)?;
        return Ok(Box::new(r));
    };
    let charge = loop {
        match scratch.memory_room(params.memory(plain_len, threads), "the pigz re-encoder") {
            Ok(charge) => break charge,
            Err(e) if threads == 0 => return Err(e),
            Err(_) => threads = 0,
        }
    };
    let r = PigzReader::with_params(plain, plain_len, params, output_len, threads)?;
    Ok(Box::new(r.holding(charge)))
}

/// Whether this machine offers one core only.
fn one_core() -> bool {
    std::thread::available_parallelism().map_or(1, |n| n.get()) == 1
}

/// One chunk's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ChunkHeader {
    plain_len: u64,
    deflate_len: u64,
    corrections: (usize, usize),
}

/// The chunk table of a correction blob, checked against the plain text's and the output's
/// lengths.
fn parse_blob(blob: &[u8], plain_len: u64, output_len: u64) -> Result<Vec<ChunkHeader>> {
    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize| -> Result<&[u8]> {
        let end = pos
            .checked_add(n)
            .filter(|&e| e <= blob.len())
            .ok_or_else(|| failed("correction blob is truncated"))?;
        let s = &blob[*pos..end];
        *pos = end;
        Ok(s)
    };
    if take(&mut pos, 4)? != MAGIC {
        return Err(failed("correction blob does not start with \"ADPF\""));
    }
    let count = u32::from_be_bytes(take(&mut pos, 4)?.try_into().expect("4 bytes"));
    let mut chunks = Vec::new();
    // Each chunk header takes 24 bytes of the blob: the count is bounded by the blob's size.
    chunks
        .try_reserve_exact((count as usize).min(blob.len() / 24))
        .map_err(|_| failed("out of memory for the chunk table"))?;
    let (mut plain_total, mut out_total) = (0u64, 0u64);
    for index in 0..count {
        let u64_at = |pos: &mut usize| -> Result<u64> {
            Ok(u64::from_be_bytes(
                take(pos, 8)?.try_into().expect("8 bytes"),
            ))
        };
        let (p, d, c) = (u64_at(&mut pos)?, u64_at(&mut pos)?, u64_at(&mut pos)?);
        if p > MAX_CHUNK_PLAIN || d > MAX_CHUNK_DEFLATE || d == 0 {
            return Err(failed(format!(
                "chunk {index}: {p} plain bytes → {d} deflate bytes is outside the bounds \
                 (≤ {MAX_CHUNK_PLAIN}, 1..={MAX_CHUNK_DEFLATE})"
            )));
        }
        let c = usize::try_from(c).map_err(|_| failed("corrections too long"))?;
        let start = pos;
        take(&mut pos, c)?;
        plain_total = plain_total.saturating_add(p);
        out_total = out_total.saturating_add(d);
        chunks.push(ChunkHeader {
            plain_len: p,
            deflate_len: d,
            corrections: (start, c),
        });
    }
    if pos != blob.len() {
        return Err(failed("bytes after the last chunk of the correction blob"));
    }
    if plain_total != plain_len || out_total != output_len {
        return Err(failed(format!(
            "the chunks describe {plain_total} plain bytes → {out_total} deflate bytes, \
             the recipe {plain_len} → {output_len}"
        )));
    }
    Ok(chunks)
}

/// Rebuilds one chunk after another on its own thread (preflate's state is not `Send`, and the
/// thread lets reading the plain text overlap with rebuilding).
fn rebuild_worker(jobs: Receiver<(Vec<u8>, SharedBytes)>, results: SyncSender<Result<Vec<u8>>>) {
    let mut processor: Option<preflate_rs::RecreateStreamProcessor> = None;
    for (plain, corrections) in jobs {
        let p = processor.get_or_insert_with(preflate_rs::RecreateStreamProcessor::new);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            p.recompress(&mut Cursor::new(&plain[..]), &corrections[..])
        }));
        let result = match outcome {
            Ok(Ok((bytes, _blocks))) => Ok(bytes),
            Ok(Err(e)) => Err(failed(format!("corrections do not apply: {e}"))),
            Err(_) => Err(failed("corrections do not apply (codec panicked)")),
        };
        let stop = result.is_err();
        if results.send(result).is_err() || stop {
            return;
        }
    }
}

/// Streaming rebuild: yields exactly the deflate stream's bytes, then `Ok(0)`.
pub struct DeflateReconstructReader<R: Read> {
    plain: R,
    blob: SharedBytes,
    chunks: std::vec::IntoIter<ChunkHeader>,
    /// Chunks sent to the worker, in order, whose output has not been taken yet.
    in_flight: std::collections::VecDeque<u64>,
    jobs: Option<SyncSender<(Vec<u8>, SharedBytes)>>,
    results: Receiver<Result<Vec<u8>>>,
    out: Vec<u8>,
    out_pos: usize,
    failed: Option<Error>,
}

impl<R: Read> DeflateReconstructReader<R> {
    /// Rebuilds the `output_len`-byte deflate stream from `plain` (exactly `plain_len` bytes)
    /// and the codec-`codec`/`version` correction `blob`.
    pub fn new(
        plain: R,
        plain_len: u64,
        blob: SharedBytes,
        codec: u64,
        version: u64,
        output_len: u64,
    ) -> Result<Self> {
        check_codec(codec, version)?;
        let chunks = parse_blob(&blob, plain_len, output_len)?;
        let (job_tx, job_rx) = sync_channel(1);
        let (res_tx, res_rx) = sync_channel(1);
        std::thread::Builder::new()
            .name("deflate-rebuild".into())
            .stack_size(2 << 20)
            .spawn(move || rebuild_worker(job_rx, res_tx))
            .map_err(|e| {
                Error::new(
                    code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
                    format!("deflate_reconstruct: cannot start its thread: {e}"),
                )
            })?;
        Ok(DeflateReconstructReader {
            plain,
            blob,
            chunks: chunks.into_iter(),
            in_flight: Default::default(),
            jobs: Some(job_tx),
            results: res_rx,
            out: Vec::new(),
            out_pos: 0,
            failed: None,
        })
    }

    /// Reads the next chunk's plain text and hands it to the worker (false: none left).
    fn send_next(&mut self) -> Result<bool> {
        let Some(chunk) = self.chunks.next() else {
            self.jobs = None; // the worker ends when it has done the rest
            return Ok(false);
        };
        let len = chunk.plain_len as usize; // ≤ MAX_CHUNK_PLAIN
        let mut plain = Vec::new();
        plain
            .try_reserve_exact(len)
            .map_err(|_| failed(format!("out of memory for a {len}-byte chunk")))?;
        (&mut self.plain)
            .take(chunk.plain_len)
            .read_to_end(&mut plain)
            .map_err(|e| Error::from_io(e, code::IO_READER_READ_FAILURE))?;
        if plain.len() != len {
            return Err(Error::short_read(chunk.plain_len, plain.len() as u64));
        }
        let (start, n) = chunk.corrections;
        let corrections = self
            .blob
            .slice(start as u64, n as u64)
            .expect("checked by parse_blob");
        let jobs = self.jobs.as_ref().expect("chunks left");
        jobs.send((plain, corrections))
            .map_err(|_| failed("the rebuild thread stopped"))?;
        self.in_flight.push_back(chunk.deflate_len);
        Ok(true)
    }

    fn next_output(&mut self) -> Result<bool> {
        // Keep one chunk queued behind the one being rebuilt.
        while self.in_flight.len() < 2 && self.send_next()? {}
        let Some(expected) = self.in_flight.pop_front() else {
            return Ok(false);
        };
        let bytes = match self.results.recv() {
            Ok(r) => r?,
            Err(_) => return Err(failed("the rebuild thread stopped")),
        };
        if bytes.len() as u64 != expected {
            return Err(failed(format!(
                "a chunk rebuilt {} bytes, its header says {expected}",
                bytes.len()
            )));
        }
        self.out = bytes;
        self.out_pos = 0;
        Ok(true)
    }
}

impl<R: Read> Read for DeflateReconstructReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(e.clone().into_io());
        }
        while self.out_pos == self.out.len() {
            match self.next_output() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(e) => {
                    self.failed = Some(e.clone());
                    return Err(e.into_io());
                }
            }
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// What the generator learns from one raw deflate stream.
#[derive(Debug)]
pub struct Analysis {
    /// The plain text.
    pub plain: Vec<u8>,
    /// The codec-1 correction blob.
    pub corrections: Vec<u8>,
    /// Length of the deflate stream (bytes after it are not part of it: a gzip trailer, say).
    pub deflate_len: usize,
}

/// Analyses the raw deflate stream at the start of `data` (generator side). `None` when the
/// codec cannot describe it (not deflate, non-zero padding, a parameter set it does not model,
/// more plain text than `max_plain`).
///
/// preflate-rs 0.7.6's incremental mode loses track of some encoders at chunk boundaries (on
/// the corpus rootfs, GNU gzip -9: "PredictionFailure: Didnt find a match" at the 7th or 8th
/// 1 MiB chunk, while the whole stream in one piece analyses fine). So a stream that fails in
/// chunks is tried again in one piece, which the applier accepts while its plain text fits one
/// chunk ([`MAX_CHUNK_PLAIN`]); longer ones are then not describable (carried compressed).
pub fn analyse(data: &[u8], max_plain: usize) -> Option<Analysis> {
    let attempt = |window: usize| {
        catch_unwind(|| {
            analyse_inner(data, max_plain, window)
                .map_err(|e| {
                    if std::env::var_os("ADUDIFF_DEBUG").is_some() {
                        eprintln!("deflate analysis (window {window}): {e}");
                    }
                })
                .ok()
        })
        .ok()
        .flatten()
    };
    attempt(GENERATOR_CHUNK_INPUT).or_else(|| {
        (data.len() > GENERATOR_CHUNK_INPUT)
            .then(|| attempt(data.len()))
            .flatten()
    })
}

fn analyse_inner(data: &[u8], max_plain: usize, first_window: usize) -> Result<Analysis> {
    use preflate_rs::{ExitCode, PreflateConfig, PreflateStreamProcessor};
    let config = PreflateConfig {
        max_chain_length: 4096,
        plain_text_limit: GENERATOR_CHUNK_PLAIN,
        // The generator checks the result with the applier's own rebuild instead.
        verify_compression: false,
    };
    let mut processor = PreflateStreamProcessor::new(&config);
    let mut plain = Vec::new();
    let mut blob = MAGIC.to_vec();
    blob.extend_from_slice(&[0; 4]);
    let mut count = 0u32;
    let mut pos = 0usize;
    let mut window = first_window;
    while !processor.is_done() {
        let end = pos.saturating_add(window).min(data.len());
        let chunk = match processor.decompress(&data[pos..end]) {
            Ok(chunk) => chunk,
            Err(e) if e.exit_code() == ExitCode::ShortRead && end < data.len() => {
                window = window.saturating_mul(2);
                continue;
            }
            Err(e) => return Err(failed(format!("chunk {count} at {pos}: {e}"))),
        };
        window = first_window;
        let text = processor.plain_text().text();
        if chunk.compressed_size == 0 && text.is_empty() {
            return Err(failed("no progress"));
        }
        if chunk.compressed_size as u64 > MAX_CHUNK_DEFLATE
            || text.len() as u64 > MAX_CHUNK_PLAIN
            || plain.len() + text.len() > max_plain
        {
            return Err(failed("chunk or stream too large"));
        }
        blob.extend_from_slice(&(text.len() as u64).to_be_bytes());
        blob.extend_from_slice(&(chunk.compressed_size as u64).to_be_bytes());
        blob.extend_from_slice(&(chunk.corrections.len() as u64).to_be_bytes());
        blob.extend_from_slice(&chunk.corrections);
        plain.extend_from_slice(text);
        processor.shrink_to_dictionary();
        pos += chunk.compressed_size;
        count += 1;
    }
    blob[4..8].copy_from_slice(&count.to_be_bytes());
    Ok(Analysis {
        plain,
        corrections: blob,
        deflate_len: pos,
    })
}

/// Rebuilds a whole stream in memory with the applier's reader (tests and the generator's
/// check of each choice).
pub fn rebuild(plain: &[u8], corrections: &[u8], output_len: u64) -> Result<Vec<u8>> {
    rebuild_with(
        plain,
        CODEC_PREFLATE,
        CODEC_PREFLATE_VERSION,
        corrections,
        output_len,
    )
}

/// [`rebuild`] with any codec: the applier's [`reader`].
pub fn rebuild_with(
    plain: &[u8],
    codec: u64,
    version: u64,
    blob: &[u8],
    output_len: u64,
) -> Result<Vec<u8>> {
    let mut reader = reader(
        Box::new(Cursor::new(plain.to_vec())),
        plain.len() as u64,
        SharedBytes::from_vec(blob.to_vec()),
        codec,
        version,
        output_len,
    )?;
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .map_err(|e| Error::from_io(e, code::EXT_RECONSTRUCT_FAILED))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn text(len: usize) -> Vec<u8> {
        let words = ["alpha ", "beta ", "gamma\n", "delta ", "epsilon ", "zeta\t"];
        let mut x = 12345u32;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            out.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
            if x % 7 == 0 {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn raw_deflate(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn round_trip_chunked() {
        for (len, level) in [(0, 6), (1, 9), (100_000, 1), (3 << 20, 9), (5 << 20, 4)] {
            let plain = text(len);
            let deflated = raw_deflate(&plain, level);
            let a = analyse(&deflated, usize::MAX).expect("analysable");
            assert_eq!(a.plain, plain);
            assert_eq!(a.deflate_len, deflated.len());
            let rebuilt = rebuild(&a.plain, &a.corrections, deflated.len() as u64).unwrap();
            assert!(rebuilt == deflated, "len {len} level {level}");
        }
    }

    #[test]
    fn unknown_codec_version_is_refused() {
        let err =
            DeflateReconstructReader::new(&b""[..], 0, SharedBytes::from_vec(vec![]), 1, 2, 1)
                .err()
                .unwrap();
        assert_eq!(err.code, code::EXT_CODEC_UNSUPPORTED);
        let err = check_codec(7, 1).unwrap_err();
        assert_eq!(err.code, code::EXT_CODEC_UNSUPPORTED);
    }

    #[test]
    fn gnu_gzip_codec_rebuilds_and_refuses_bad_blobs() {
        use crate::pardeflate::{deflate_as, Encoder, Wrapper};
        let plain = text(3 << 20);
        for level in [1, 6, 9] {
            let stream = deflate_as(&plain, Wrapper::Raw, level, Encoder::GnuGzip);
            let blob = exact_gnu_gzip_blob(level);
            let out = rebuild_with(&plain, CODEC_EXACT, CODEC_EXACT_VERSION, &blob, 0).unwrap();
            assert!(out == stream, "level {level}");
        }
        let bad_blobs: [&[u8]; 6] = [
            b"",
            b"ADEX\x01",
            b"ADEX\x01\x09\x00",
            b"ADPF\x01\x09",
            b"ADEX\x02\x09",
            b"ADEX\x01\x0a",
        ];
        for blob in bad_blobs {
            let err = rebuild_with(&plain, CODEC_EXACT, CODEC_EXACT_VERSION, blob, 0).unwrap_err();
            assert_eq!(err.code, code::EXT_RECONSTRUCT_FAILED, "{blob:?}");
        }
        // Levels 1–3 compress from memory: a plain-text length from the delta beyond the bound
        // is refused before anything is read or allocated.
        let huge = 1u64 << 50;
        let err = reader(
            Box::new(std::io::empty()),
            huge,
            SharedBytes::from_vec(exact_gnu_gzip_blob(2)),
            CODEC_EXACT,
            CODEC_EXACT_VERSION,
            1,
        )
        .err()
        .unwrap();
        assert_eq!(err.code, code::EXT_RECONSTRUCT_FAILED);
        // Codec 2 at a later version is unknown; version 2 (pigz) reads version-1 blobs.
        assert_eq!(
            check_codec(CODEC_EXACT, CODEC_EXACT_VERSION_PIGZ + 1)
                .unwrap_err()
                .code,
            code::EXT_CODEC_UNSUPPORTED
        );
        let blob = exact_gnu_gzip_blob(6);
        let stream = deflate_as(&plain, Wrapper::Raw, 6, Encoder::GnuGzip);
        let out = rebuild_with(&plain, CODEC_EXACT, CODEC_EXACT_VERSION_PIGZ, &blob, 0).unwrap();
        assert!(out == stream);
    }

    #[test]
    fn damaged_blobs_fail_cleanly() {
        let plain = text(200_000);
        let deflated = raw_deflate(&plain, 9);
        let a = analyse(&deflated, usize::MAX).unwrap();
        let n = deflated.len() as u64;
        // Truncations, and one flipped bit at every byte of the blob.
        for cut in (0..a.corrections.len()).step_by(3) {
            let e = rebuild(&plain, &a.corrections[..cut], n).unwrap_err();
            assert_eq!(e.code, code::EXT_RECONSTRUCT_FAILED);
        }
        for i in (0..a.corrections.len()).step_by(7) {
            let mut bad = a.corrections.clone();
            bad[i] ^= 0x10;
            match rebuild(&plain, &bad, n) {
                Ok(out) => assert_eq!(out.len() as u64, n), // wrong bytes are caught by hashes
                Err(e) => assert!(
                    [code::EXT_RECONSTRUCT_FAILED, code::IO_READER_READ_FAILURE].contains(&e.code),
                    "{e}"
                ),
            }
        }
        // Lengths that do not add up.
        assert!(rebuild(&plain[1..], &a.corrections, n).is_err());
        assert!(rebuild(&plain, &a.corrections, n + 1).is_err());
    }
}
