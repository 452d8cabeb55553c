//! File-aware deltas of ext2/3/4 images.
//!
//! Whole-image diffing wastes bytes on what a file system hides from it: new files are spread
//! among unchanged ones, `.gz` files (man pages, changelogs) change completely when one line of
//! their text changes, and the old version of a changed file may lie far from the new one. This
//! planner works on the files instead and builds the target image in two levels:
//!
//! 1. **Streams** — three byte strings decoded from small delta payloads:
//!    * *changed*: the new contents of files whose path exists in the source, each diffed against
//!      the old contents (bsdiff or zstd, whichever is smaller); gzip files that zlib reproduces
//!      appear as their *uncompressed* text, diffed against the old uncompressed text;
//!    * *new*: files without a source counterpart, grouped by kind (extension) so that similar
//!      files compress together, zstd at the strongest level;
//!    * *metadata*: image blocks outside files (inode tables, directories, bitmaps) that the source
//!      does not hold verbatim, diffed against the source blocks at the same offsets.
//! 2. **Assembly** — the image is cut into segments; each is one zstd frame whose prefix is a
//!    chain of exactly what the segment copies: the source ranges its unchanged blocks come from,
//!    the stream ranges its files come from, and the re-gzipped files (`zlib_compression` of
//!    stream text). Those frames are almost only long matches, so they cost little.
//!
//! Every node of the resulting graph becomes one recipe (`slice`, `chain`, `all_zeros`,
//! `bspatch_decompression`, `zstd_decompression`, `zlib_compression`, `zlib_decompression`), so
//! the deltas stay within what Microsoft's applier 3.0.0 reads.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::build::Assembly;
use super::diff::{bsdiff_delta, zstd_delta, Method};
use super::ext4::{Ext4Image, FileEntry};
use super::pool;
use super::progress::Counter;
use super::sha;
use crate::tool::error::{ToolError, ToolResult};
use crate::tool::gzip;
use adudiff_core::format::{Item, RecipeKind, ZlibInit};

/// Index of a node in a [`Graph`].
pub type NodeId = usize;

/// How the applier produces a node's bytes.
#[derive(Clone, Debug)]
pub enum NodeKind {
    /// Bytes `[offset, offset + len)` of the basis (the source image).
    Basis {
        /// Offset in the basis.
        offset: u64,
    },
    /// Zero bytes.
    Zeros,
    /// Concatenation of other nodes.
    Chain(Vec<NodeId>),
    /// Bytes `[offset, offset + len)` of another node.
    Slice {
        /// The node sliced.
        whole: NodeId,
        /// Offset in it.
        offset: u64,
    },
    /// A delta payload applied to an optional reference node.
    Delta {
        /// bspatch or zstd.
        method: Method,
        /// The payload (goes to the inline assets).
        payload: Vec<u8>,
        /// The old file / zstd prefix.
        reference: Option<NodeId>,
    },
    /// `zlib_compression(gzip, level)` of a node.
    Gzip {
        /// zlib level that reproduces the file.
        level: i32,
        /// The uncompressed text.
        raw: NodeId,
    },
    /// `zlib_decompression(gzip)` of a node.
    Gunzip {
        /// The gzip file.
        gz: NodeId,
    },
    /// Bytes stored in the delta (inline assets): gzip headers and trailers of files rebuilt
    /// by `deflate_reconstruct`.
    Literal {
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Extended format: `deflate_reconstruct(plain, corrections)`.
    Reconstruct {
        /// The deflate stream's plain text.
        plain: NodeId,
        /// The codec and codec version (recipe numbers).
        codec: (u64, u64),
        /// The codec's blob (goes to the inline assets).
        corrections: Vec<u8>,
    },
}

/// How a gzip file is rebuilt from its text.
#[derive(Clone, Debug)]
enum Regzip {
    /// `zlib_compression(gzip, level)`.
    Level(i32),
    /// Extended format: header/trailer literals and `deflate_reconstruct` pieces.
    Rebuild(std::sync::Arc<Vec<super::gzrebuild::Piece>>),
}

/// A byte string the applier builds: how, its length and its SHA-256.
#[derive(Clone, Debug)]
pub struct Node {
    /// Recipe.
    pub kind: NodeKind,
    /// Length in bytes.
    pub len: u64,
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
}

/// The recipe graph of one image; `root` produces the target image.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Nodes, each only referring to earlier ones.
    pub nodes: Vec<Node>,
    /// The node producing the whole target image.
    pub root: NodeId,
}

/// Sizes and counts for the log.
#[derive(Clone, Debug, Default)]
pub struct ImageStats {
    /// Files in the target image.
    pub files: usize,
    /// Files whose contents exist verbatim in the source.
    pub unchanged_files: usize,
    /// Changed files (path also in the source): count, bytes, payload bytes, method.
    pub changed: (usize, u64, u64, Option<Method>),
    /// New files: count, bytes, payload bytes.
    pub new: (usize, u64, u64),
    /// Metadata blocks: bytes, payload bytes, method.
    pub metadata: (u64, u64, Option<Method>),
    /// gzip files rebuilt from their text by `zlib_compression`.
    pub regzipped_files: usize,
    /// gzip files zlib does not reproduce, rebuilt from their text by `deflate_reconstruct`
    /// (extended format), and their correction bytes.
    pub reconstructed_files: (usize, u64),
    /// Assembly frames: count and payload bytes.
    pub frames: (usize, u64),
    /// Seconds spent: indexing, stream diffs, frames.
    pub seconds: (f64, f64, f64),
}

/// Tuning of the image planner.
#[derive(Clone, Copy, Debug)]
pub struct ImageSettings {
    /// zstd level of the changed and metadata candidates.
    pub diff_level: i32,
    /// zstd level of the new-files stream.
    pub new_level: i32,
    /// zstd level of the assembly frames.
    pub frame_level: i32,
    /// Target bytes per assembly frame.
    pub frame_size: u64,
    /// qbsdiff small-match threshold.
    pub bsdiff_small_match: usize,
    /// Smallest changed gzip file worth re-gzipping from its text (recipes cost ~0.5 KB).
    pub min_changed_gz: u64,
    /// Smallest new gzip file worth re-gzipping from its text.
    pub min_new_gz: u64,
    /// Extended format: gzip files zlib does not reproduce are rebuilt from their text with
    /// `deflate_reconstruct` (set by the generator from the delta format).
    pub extended: bool,
}

impl Default for ImageSettings {
    fn default() -> Self {
        ImageSettings {
            diff_level: 19,
            new_level: 22,
            frame_level: 9,
            frame_size: 32 << 20,
            // Per-file streams align well: short exact matches help (24, the whole-image
            // default, gives +1 % on the corpus).
            bsdiff_small_match: 12,
            min_changed_gz: 1024,
            min_new_gz: 512,
            extended: false,
        }
    }
}

/// Where a node's bytes come from, for hashing and for materialising windows at generation time.
enum Content<'a> {
    /// Bytes of the basis or the target image.
    Borrowed(&'a [u8]),
    Owned(std::sync::Arc<Vec<u8>>),
    Zeros(u64),
    Parts(Vec<NodeId>),
    Slice(NodeId, u64, u64),
}

struct Builder<'a> {
    graph: Graph,
    contents: Vec<Content<'a>>,
}

impl<'a> Builder<'a> {
    fn add(&mut self, kind: NodeKind, content: Content<'a>) -> NodeId {
        let len = self.content_len(&content);
        let mut h = Sha256::new();
        self.feed(&content, 0, len, &mut |b| h.update(b));
        self.graph.nodes.push(Node {
            kind,
            len,
            sha256: h.finalize().into(),
        });
        self.contents.push(content);
        self.graph.nodes.len() - 1
    }

    fn content_len(&self, c: &Content<'a>) -> u64 {
        match c {
            Content::Borrowed(b) => b.len() as u64,
            Content::Owned(v) => v.len() as u64,
            Content::Zeros(n) => *n,
            Content::Parts(p) => p.iter().map(|&i| self.graph.nodes[i].len).sum(),
            Content::Slice(_, _, len) => *len,
        }
    }

    /// Calls `out` with the bytes `[from, from + len)` of `c`, in order.
    fn feed(&self, c: &Content<'a>, from: u64, len: u64, out: &mut dyn FnMut(&[u8])) {
        if len == 0 {
            return;
        }
        let (a, b) = (from as usize, (from + len) as usize);
        match c {
            Content::Borrowed(x) => out(&x[a..b]),
            Content::Owned(v) => out(&v[a..b]),
            Content::Zeros(_) => {
                let zeros = [0u8; 65536];
                let mut left = len as usize;
                while left > 0 {
                    let n = left.min(zeros.len());
                    out(&zeros[..n]);
                    left -= n;
                }
            }
            Content::Parts(parts) => {
                let mut pos = 0u64;
                for &p in parts {
                    let plen = self.graph.nodes[p].len;
                    let lo = from.max(pos);
                    let hi = (from + len).min(pos + plen);
                    if lo < hi {
                        self.feed(&self.contents[p], lo - pos, hi - lo, out);
                    }
                    pos += plen;
                }
            }
            Content::Slice(whole, off, _) => {
                self.feed(&self.contents[*whole], off + from, len, out)
            }
        }
    }

    fn bytes(&self, id: NodeId) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.graph.nodes[id].len as usize);
        self.feed(&self.contents[id], 0, self.graph.nodes[id].len, &mut |b| {
            v.extend_from_slice(b)
        });
        v
    }

    fn basis(&mut self, s: &'a [u8], offset: u64, len: u64) -> NodeId {
        let bytes = &s[offset as usize..(offset + len) as usize];
        self.add(NodeKind::Basis { offset }, Content::Borrowed(bytes))
    }

    fn chain(&mut self, parts: Vec<NodeId>) -> Option<NodeId> {
        let parts: Vec<NodeId> = parts
            .into_iter()
            .filter(|&p| self.graph.nodes[p].len > 0)
            .collect();
        match parts.len() {
            0 => None,
            1 => Some(parts[0]),
            _ => Some(self.add(NodeKind::Chain(parts.clone()), Content::Parts(parts))),
        }
    }

    fn slice(&mut self, whole: NodeId, offset: u64, len: u64) -> NodeId {
        if offset == 0 && len == self.graph.nodes[whole].len {
            return whole;
        }
        self.add(
            NodeKind::Slice { whole, offset },
            Content::Slice(whole, offset, len),
        )
    }
}

/// What a stream holds (and so how it is diffed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum StreamKind {
    /// Changed executables (ELF), diffed against their old versions.
    ChangedElf,
    /// Other changed files (texts, data, re-gzipped texts), with their own method choice.
    ChangedOther,
    /// New files.
    New,
    /// Metadata blocks.
    Meta,
}

/// A byte stream under construction and the reference it is diffed against.
struct Stream {
    kind: StreamKind,
    bytes: Vec<u8>,
    /// Reference pieces: basis ranges `(offset, len)` or decompressed old gzip texts.
    reference: Vec<RefPiece>,
}

/// Streams grow in chunks of at most this size (a larger file gets a chunk of its own): bounds
/// bsdiff's memory and zstd's windows and spreads large updates over the cores.
const STREAM_CHUNK: usize = 32 << 20;

/// The growing streams, in chunks per kind.
#[derive(Default)]
struct Streams {
    all: Vec<Stream>,
    open: HashMap<StreamKind, usize>,
}

impl Streams {
    /// The stream of `kind` that takes `len` more bytes, starting a new chunk when full.
    fn take(&mut self, kind: StreamKind, len: usize) -> usize {
        if let Some(&i) = self.open.get(&kind) {
            let n = self.all[i].bytes.len();
            if n == 0 || n + len <= STREAM_CHUNK {
                return i;
            }
        }
        self.all.push(Stream {
            kind,
            bytes: Vec::new(),
            reference: Vec::new(),
        });
        self.open.insert(kind, self.all.len() - 1);
        self.all.len() - 1
    }
}

#[derive(Clone)]
enum RefPiece {
    Basis(u64, u64),
    OldText {
        ranges: Vec<(Option<u64>, u64)>,
        text: std::sync::Arc<Vec<u8>>,
    },
}

/// Where a target file's bytes come from.
#[derive(Clone, Debug)]
enum FilePlan {
    /// In a stream, raw: `(stream, offset)`.
    Raw(usize, u64),
    /// In a stream as text, re-gzipped: `(stream, offset, text length, how)`.
    Text(usize, u64, u64, Regzip),
}

/// A file's byte ranges in its image (`None` = hole).
type Ranges = Vec<(Option<u64>, u64)>;

/// A stream's chosen candidate: method, reference used, payload.
type Chosen = (Method, Option<NodeId>, Vec<u8>);

/// A frame's payload (none: the segment is all zeros).
type FrameOutcome = ToolResult<Option<Vec<u8>>>;

/// Largest zstd prefix the new-files streams get from the changed files' old versions.
const NEW_PREFIX_MAX: u64 = 64 << 20;

fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

fn block_key(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for w in b.chunks_exact(8) {
        let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h
}

/// A file's bytes (holes as zeros); borrowed when the file is one range.
fn file_bytes<'a>(img: &'a [u8], ranges: &[(Option<u64>, u64)]) -> std::borrow::Cow<'a, [u8]> {
    if let [(Some(off), len)] = ranges {
        return std::borrow::Cow::Borrowed(&img[*off as usize..(*off + *len) as usize]);
    }
    let mut v = Vec::new();
    for (off, len) in ranges {
        match off {
            Some(o) => v.extend_from_slice(&img[*o as usize..(*o + *len) as usize]),
            None => v.resize(v.len() + *len as usize, 0),
        }
    }
    std::borrow::Cow::Owned(v)
}

/// Valid byte ranges of a file inside an image of `img_len` bytes (none when any is out of
/// bounds).
fn checked_ranges(
    image: &Ext4Image,
    f: &FileEntry,
    img_len: u64,
) -> Option<Vec<(Option<u64>, u64)>> {
    let r = image.file_ranges(f);
    let ok = r
        .iter()
        .all(|(o, l)| o.is_none_or(|o| o.checked_add(*l).is_some_and(|e| e <= img_len)));
    let total: u64 = r.iter().map(|(_, l)| *l).sum();
    (ok && total == f.size).then_some(r)
}

/// Sort key grouping similar files in the new-files stream: extension, then path.
fn kind_key(path: &str) -> (String, String) {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = match name.rsplit_once('.') {
        Some((_, e)) if !e.is_empty() && e.len() <= 8 => e.to_ascii_lowercase(),
        _ => String::new(),
    };
    (ext, path.to_string())
}

/// Coalesces `(offset, len)` ranges (sorted by offset) whose gaps are at most `gap`.
fn coalesce(mut r: Vec<(u64, u64)>, gap: u64) -> Vec<(u64, u64)> {
    r.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (o, l) in r {
        if let Some(last) = out.last_mut() {
            if o <= last.0 + last.1 + gap {
                let end = (last.0 + last.1).max(o + l);
                last.1 = end - last.0;
                continue;
            }
        }
        out.push((o, l));
    }
    out
}

/// Plans the file-aware delta of `target` (an image) against `basis` (the source image).
/// `progress` advances by target bytes. Errors only on diff failures; a planner that cannot
/// use the images returns `Ok(None)`.
pub fn plan(
    target: &[u8],
    basis: &[u8],
    timg: &Ext4Image,
    simg: &Ext4Image,
    settings: &ImageSettings,
    threads: usize,
    progress: &Counter,
) -> ToolResult<Option<(Graph, ImageStats)>> {
    let bs = timg.block_size;
    if bs != simg.block_size || bs < 1024 || (target.len() as u64) % bs != 0 {
        return Ok(None);
    }
    let mut stats = ImageStats {
        files: timg.files.len(),
        ..Default::default()
    };
    let (tlen, slen) = (target.len() as u64, basis.len() as u64);
    let clock = std::time::Instant::now();

    // ---- source indexes: files by path and by content, blocks by content
    let src_by_path: HashMap<&str, &FileEntry> =
        simg.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut src_blocks: HashMap<u64, u32> = HashMap::with_capacity((slen / bs) as usize);
    for (i, blk) in basis.chunks_exact(bs as usize).enumerate() {
        if blk.iter().any(|&x| x != 0) {
            src_blocks.entry(block_key(blk)).or_insert(i as u32);
        }
    }
    // Per target block: where the same bytes are in the source (u32::MAX = nowhere / zeros).
    let nblocks = (tlen / bs) as usize;
    let mut copy_of: Vec<u32> = vec![u32::MAX; nblocks];
    let mut zero: Vec<bool> = vec![false; nblocks];
    let mut prev: Option<u32> = None;
    for (i, blk) in target.chunks_exact(bs as usize).enumerate() {
        if blk.iter().all(|&x| x == 0) {
            zero[i] = true;
            prev = None;
            continue;
        }
        let src_block = |j: u32| &basis[(j as u64 * bs) as usize..((j as u64 + 1) * bs) as usize];
        // Prefer continuing the current run, then any block with the same bytes.
        let next = prev.map(|p| p + 1).filter(|&j| (j as u64 + 1) * bs <= slen);
        let found = match next {
            Some(j) if src_block(j) == blk => Some(j),
            _ => src_blocks
                .get(&block_key(blk))
                .copied()
                .filter(|&j| src_block(j) == blk),
        };
        if let Some(j) = found {
            copy_of[i] = j;
        }
        prev = found;
    }

    // ---- files: copied, changed (diffed against the old version), new
    let mut owned: Vec<bool> = vec![false; nblocks];
    let mut streams = Streams::default();
    let mut placed: Vec<(usize, FilePlan, Ranges)> = Vec::new();
    let mut seen: HashMap<[u8; 32], FilePlan> = HashMap::new();
    struct NewFile {
        fi: usize,
        ranges: Vec<(Option<u64>, u64)>,
        data: Vec<u8>,
        level: Option<Regzip>,
        key: [u8; 32],
    }
    let mut new_files: Vec<NewFile> = Vec::new();
    let mut order: Vec<usize> = (0..timg.files.len()).collect();
    order.sort_by_key(|&i| {
        timg.files[i]
            .extents
            .first()
            .map_or(u64::MAX, |e| e.physical)
    });
    for &fi in &order {
        let f = &timg.files[fi];
        if f.size == 0 || !f.inline_data.is_empty() {
            continue; // inline data lives in the inode table: the metadata stream has it
        }
        let Some(ranges) = checked_ranges(timg, f, tlen) else {
            continue; // its blocks go to the metadata stream
        };
        let blocks_of = |(o, l): &(Option<u64>, u64)| {
            o.map(|o| (o / bs) as usize..(o + l).div_ceil(bs) as usize)
        };
        for r in ranges.iter().filter_map(blocks_of) {
            owned[r].fill(true);
        }
        let copied = ranges
            .iter()
            .filter_map(blocks_of)
            .all(|mut r| r.all(|k| zero[k] || copy_of[k] != u32::MAX));
        if copied {
            stats.unchanged_files += 1;
            continue;
        }
        let bytes = file_bytes(target, &ranges);
        let key = sha(&bytes);
        if let Some(p) = seen.get(&key) {
            placed.push((fi, p.clone(), ranges));
            continue;
        }
        let old = src_by_path
            .get(f.path.as_str())
            .and_then(|sf| checked_ranges(simg, sf, slen));
        let min_gz = if old.is_some() {
            settings.min_changed_gz
        } else {
            settings.min_new_gz
        };
        let mut text: Option<(Vec<u8>, Regzip)> = None;
        if bytes.len() as u64 >= min_gz && gzip::is_gzip(&bytes) {
            if let Ok((raw, used)) = gzip::gunzip_member(&bytes) {
                if used == bytes.len() {
                    if let Some(level) =
                        adudiff_core::codec::find_zlib_level(&raw, &bytes, ZlibInit::Gzip)
                    {
                        text = Some((raw, Regzip::Level(level)));
                    } else if settings.extended {
                        text = rebuild_text(&bytes, &mut stats);
                    }
                }
            }
        }
        let Some(oranges) = old else {
            stats.new.0 += 1;
            let (data, level) = match text {
                Some((raw, how)) => (raw, Some(how)),
                None => (bytes.into_owned(), None),
            };
            stats.new.1 += data.len() as u64;
            new_files.push(NewFile {
                fi,
                ranges,
                data,
                level,
                key,
            });
            continue;
        };
        let kind = if text.is_none() && is_elf(&bytes) {
            StreamKind::ChangedElf
        } else {
            StreamKind::ChangedOther
        };
        let len = text.as_ref().map_or(bytes.len(), |(raw, _)| raw.len());
        let si = streams.take(kind, len);
        let s = &mut streams.all[si];
        let off = s.bytes.len() as u64;
        let old_bytes = file_bytes(basis, &oranges);
        let old_text = match &text {
            Some(_) if gzip::is_gzip(&old_bytes) => gzip::gunzip(&old_bytes).ok(),
            _ => None,
        };
        match old_text {
            Some(t) => s.reference.push(RefPiece::OldText {
                ranges: oranges,
                text: std::sync::Arc::new(t),
            }),
            None => s.reference.extend(
                oranges
                    .iter()
                    .filter_map(|(o, l)| o.map(|o| RefPiece::Basis(o, *l))),
            ),
        }
        let plan = match text {
            Some((raw, how)) => {
                s.bytes.extend_from_slice(&raw);
                stats.regzipped_files += matches!(how, Regzip::Level(_)) as usize;
                FilePlan::Text(si, off, raw.len() as u64, how)
            }
            None => {
                s.bytes.extend_from_slice(&bytes);
                FilePlan::Raw(si, off)
            }
        };
        stats.changed.0 += 1;
        stats.changed.1 += s.bytes.len() as u64 - off;
        seen.insert(key, plan.clone());
        placed.push((fi, plan, ranges));
    }
    // New files, grouped by kind so that similar contents sit together.
    new_files.sort_by_cached_key(|n| kind_key(&timg.files[n.fi].path));
    for n in new_files {
        if let Some(p) = seen.get(&n.key) {
            placed.push((n.fi, p.clone(), n.ranges));
            continue;
        }
        let si = streams.take(StreamKind::New, n.data.len());
        let s = &mut streams.all[si];
        let off = s.bytes.len() as u64;
        s.bytes.extend_from_slice(&n.data);
        let plan = match n.level {
            Some(how) => {
                stats.regzipped_files += matches!(how, Regzip::Level(_)) as usize;
                FilePlan::Text(si, off, n.data.len() as u64, how)
            }
            None => FilePlan::Raw(si, off),
        };
        seen.insert(n.key, plan.clone());
        placed.push((n.fi, plan, n.ranges));
    }

    // ---- metadata: blocks outside files that the source does not hold verbatim
    // (target offset, len, stream, stream offset)
    let mut meta_runs: Vec<(u64, u64, usize, u64)> = Vec::new();
    let mut k = 0usize;
    while k < nblocks {
        if owned[k] || zero[k] || copy_of[k] != u32::MAX {
            k += 1;
            continue;
        }
        let start = k;
        while k < nblocks && !owned[k] && !zero[k] && copy_of[k] == u32::MAX {
            k += 1;
        }
        let (a, b) = (start as u64 * bs, k as u64 * bs);
        let si = streams.take(StreamKind::Meta, (b - a) as usize);
        let s = &mut streams.all[si];
        meta_runs.push((a, b - a, si, s.bytes.len() as u64));
        s.bytes.extend_from_slice(&target[a as usize..b as usize]);
        if a < slen {
            s.reference.push(RefPiece::Basis(a, b.min(slen) - a));
        }
    }
    stats.metadata.0 = meta_runs.iter().map(|r| r.1).sum();
    let mut streams = streams.all;

    // ---- build the stream references and diff the streams (in parallel)
    let mut g = Builder {
        graph: Graph::default(),
        contents: Vec::new(),
    };
    let mut refs: Vec<Option<NodeId>> = vec![None; streams.len()];
    for (si, s) in streams.iter().enumerate() {
        let mut basis_ranges = Vec::new();
        let mut texts = Vec::new();
        for p in &s.reference {
            match p {
                RefPiece::Basis(o, l) => basis_ranges.push((*o, *l)),
                RefPiece::OldText { ranges, text } => {
                    let parts: Vec<NodeId> = ranges
                        .iter()
                        .map(|(o, l)| match o {
                            Some(o) => g.basis(basis, *o, *l),
                            None => g.add(NodeKind::Zeros, Content::Zeros(*l)),
                        })
                        .collect();
                    let Some(gz) = g.chain(parts) else { continue };
                    texts.push(g.add(NodeKind::Gunzip { gz }, Content::Owned(text.clone())));
                }
            }
        }
        let mut parts: Vec<NodeId> = coalesce(basis_ranges, 1 << 20)
            .into_iter()
            .map(|(o, l)| g.basis(basis, o, l))
            .collect();
        parts.extend(texts);
        refs[si] = g.chain(parts);
    }
    // New files also try the old versions of the changed files as zstd prefix: new packages
    // share code and strings with the updated ones (-2 % on the corpus).
    let mut prefix_parts = Vec::new();
    let mut prefix_len = 0u64;
    for (si, s) in streams.iter().enumerate() {
        let Some(r) = refs[si] else { continue };
        let len = g.graph.nodes[r].len;
        if s.kind != StreamKind::New
            && s.kind != StreamKind::Meta
            && prefix_len + len <= NEW_PREFIX_MAX
        {
            prefix_parts.push(r);
            prefix_len += len;
        }
    }
    let new_prefix = g.chain(prefix_parts);
    stats.seconds.0 = clock.elapsed().as_secs_f64();
    let debug = std::env::var_os("ADUDIFF_DEBUG").is_some();
    if let Some(dir) = std::env::var_os("ADUDIFF_DUMP_STREAMS") {
        for (si, s) in streams.iter().enumerate() {
            let dir = std::path::Path::new(&dir);
            let _ = std::fs::write(dir.join(format!("stream{si}")), &s.bytes);
            if let Some(r) = refs[si] {
                let _ = std::fs::write(dir.join(format!("ref{si}")), g.bytes(r));
            }
        }
    }
    if debug {
        for (si, s) in streams.iter().enumerate() {
            eprintln!(
                "stream {si} ({:?}): {} bytes, reference {:?} bytes in {} pieces",
                s.kind,
                s.bytes.len(),
                refs[si].map(|r| g.graph.nodes[r].len),
                s.reference.len()
            );
        }
    }
    // Candidates: zstd (against the reference; new files: plain and with the prefix) and bsdiff
    // (against the reference). References are materialized inside the jobs, so only the
    // running jobs' copies are in memory.
    /// Stream, method, reference used, payload.
    type Outcome = (usize, Method, Option<NodeId>, ToolResult<Vec<u8>>);
    let builder = &g;
    let mut jobs: Vec<(u64, pool::Job<'_, Outcome>)> = Vec::new();
    for (si, s) in streams.iter().enumerate() {
        if s.bytes.is_empty() {
            continue;
        }
        let data: &[u8] = &s.bytes;
        let is_new = s.kind == StreamKind::New;
        let level = if is_new {
            settings.new_level
        } else {
            settings.diff_level
        };
        let mut zstd_refs = vec![refs[si]];
        if is_new && new_prefix.is_some() {
            zstd_refs.push(new_prefix);
        }
        for reference in zstd_refs {
            let weight = data.len() as u64 * if is_new { 4 } else { 2 }
                + reference.map_or(0, |r| builder.graph.nodes[r].len);
            jobs.push((
                weight,
                Box::new(move || {
                    let r = reference.map(|r| builder.bytes(r));
                    let payload = zstd_delta(data, r.as_deref(), level, &Counter::default());
                    (si, Method::Zstd, reference, payload)
                }),
            ));
        }
        if let (Some(reference), false) = (refs[si], is_new) {
            let small = settings.bsdiff_small_match;
            jobs.push((
                data.len() as u64 * 3 + builder.graph.nodes[reference].len,
                Box::new(move || {
                    let r = builder.bytes(reference);
                    let payload = bsdiff_delta(data, &r, small, &Counter::default());
                    (si, Method::Bsdiff, Some(reference), payload)
                }),
            ));
        }
    }
    let mut best: Vec<Option<Chosen>> = vec![None; streams.len()];
    for (si, method, reference, r) in pool::run(threads, jobs) {
        let payload =
            r.map_err(|e| ToolError(format!("image stream {si} ({}): {e}", method.name())))?;
        if debug {
            eprintln!(
                "stream {si} {}{}: {} bytes at {:.1} s",
                method.name(),
                if reference.is_some() && reference == new_prefix && refs[si] != new_prefix {
                    " (prefix)"
                } else {
                    ""
                },
                payload.len(),
                clock.elapsed().as_secs_f64()
            );
        }
        let better = best[si].as_ref().is_none_or(|(m, _, p)| {
            (payload.len(), method != Method::Bsdiff) < (p.len(), *m != Method::Bsdiff)
        });
        if better {
            best[si] = Some((method, reference, payload));
        }
    }
    progress.add(tlen / 2);
    let mut stream_nodes: Vec<Option<NodeId>> = vec![None; streams.len()];
    let mut changed_best = 0u64;
    for (si, s) in streams.iter_mut().enumerate() {
        let Some((method, reference, payload)) = best[si].take() else {
            continue;
        };
        let plen = payload.len() as u64;
        match s.kind {
            StreamKind::ChangedElf | StreamKind::ChangedOther => {
                // The method reported is the one of the largest changed payload.
                if plen > changed_best {
                    changed_best = plen;
                    stats.changed.3 = Some(method);
                }
                stats.changed.2 += plen;
            }
            StreamKind::New => stats.new.2 += plen,
            StreamKind::Meta => {
                stats.metadata.1 += plen;
                stats.metadata.2 = Some(method);
            }
        }
        let bytes = std::sync::Arc::new(std::mem::take(&mut s.bytes));
        stream_nodes[si] = Some(g.add(
            NodeKind::Delta {
                method,
                payload,
                reference,
            },
            Content::Owned(bytes),
        ));
    }

    stats.seconds.1 = clock.elapsed().as_secs_f64() - stats.seconds.0;
    // ---- frames: each target segment is a zstd frame over exactly what it copies
    let seg_len = (settings.frame_size / bs).max(1) * bs;
    let mut gz_nodes: HashMap<usize, NodeId> = HashMap::new();
    let mut frames: Vec<(u64, u64, Option<NodeId>)> = Vec::new(); // (start, len, window)
    let mut start = 0u64;
    while start < tlen {
        let mut end = (start + seg_len).min(tlen);
        if tlen - end < seg_len / 4 {
            end = tlen;
        }
        let (fb, lb) = ((start / bs) as usize, (end / bs) as usize);
        if zero[fb..lb].iter().all(|&z| z) {
            frames.push((start, end - start, None));
            start = end;
            continue;
        }
        let copies: Vec<(u64, u64)> = (fb..lb)
            .filter(|&k| copy_of[k] != u32::MAX)
            .map(|k| (copy_of[k] as u64 * bs, bs))
            .collect();
        let mut gap = 1u64 << 20;
        let mut basis_ranges = coalesce(copies.clone(), gap);
        while basis_ranges.len() > 16 {
            gap *= 2;
            basis_ranges = coalesce(copies.clone(), gap);
        }
        let mut used: Vec<(u64, u64)> = vec![(u64::MAX, 0); stream_nodes.len()];
        let mut take = |si: usize, a: u64, b: u64| {
            used[si].0 = used[si].0.min(a);
            used[si].1 = used[si].1.max(b);
        };
        let mut gz_here: Vec<NodeId> = Vec::new();
        for (fi, plan, ranges) in &placed {
            let overlaps = ranges
                .iter()
                .any(|(o, l)| o.is_some_and(|o| o < end && o + l > start));
            if !overlaps {
                continue;
            }
            match plan {
                FilePlan::Raw(si, off) => take(*si, *off, off + timg.files[*fi].size),
                FilePlan::Text(si, off, len, how) => {
                    let Some(stream) = stream_nodes[*si] else {
                        continue;
                    };
                    let node = match gz_nodes.get(fi) {
                        Some(&node) => node,
                        None => {
                            let raw = g.slice(stream, *off, *len);
                            let bytes = file_bytes(target, ranges).into_owned();
                            let node = match how {
                                Regzip::Level(level) => g.add(
                                    NodeKind::Gzip { level: *level, raw },
                                    Content::Owned(std::sync::Arc::new(bytes)),
                                ),
                                Regzip::Rebuild(pieces) => {
                                    rebuilt_file(&mut g, raw, &bytes, pieces)
                                }
                            };
                            gz_nodes.insert(*fi, node);
                            node
                        }
                    };
                    if !gz_here.contains(&node) {
                        gz_here.push(node);
                    }
                }
            }
        }
        for &(a, l, si, so) in &meta_runs {
            if a < end && a + l > start {
                take(si, so, so + l);
            }
        }
        let mut parts: Vec<NodeId> = Vec::new();
        let mut budget: u64 = (1u64 << 28) - (end - start) - (1 << 20);
        for (si, &(a, b)) in used.iter().enumerate() {
            if let (Some(stream), true) = (stream_nodes[si], a < b) {
                parts.push(g.slice(stream, a, b - a));
                budget = budget.saturating_sub(b - a);
            }
        }
        for &n in &gz_here {
            budget = budget.saturating_sub(g.graph.nodes[n].len);
        }
        parts.extend(gz_here);
        let mut basis_parts = Vec::new();
        for (o, l) in basis_ranges {
            let l = l.min(budget);
            if l == 0 {
                break;
            }
            budget -= l;
            basis_parts.push(g.basis(basis, o, l));
        }
        basis_parts.extend(parts);
        frames.push((start, end - start, g.chain(basis_parts)));
        start = end;
    }
    let builder = &g;
    let level = settings.frame_level;
    let jobs: Vec<(u64, pool::Job<'_, FrameOutcome>)> = frames
        .iter()
        .map(|&(a, l, w)| {
            let job: pool::Job<'_, FrameOutcome> = Box::new(move || {
                let seg = &target[a as usize..(a + l) as usize];
                if w.is_none() && seg.iter().all(|&x| x == 0) {
                    progress.add(l / 2);
                    return Ok(None);
                }
                let window = w.map(|w| builder.bytes(w));
                let r = zstd_delta(seg, window.as_deref(), level, &Counter::default());
                progress.add(l / 2);
                r.map(Some)
            });
            (l, job)
        })
        .collect();
    let payloads = pool::run(threads, jobs);
    let mut parts = Vec::new();
    for ((a, l, w), p) in frames.into_iter().zip(payloads) {
        let seg = &target[a as usize..(a + l) as usize];
        let node = match p? {
            None => g.add(NodeKind::Zeros, Content::Zeros(l)),
            Some(payload) => {
                stats.frames.0 += 1;
                stats.frames.1 += payload.len() as u64;
                g.add(
                    NodeKind::Delta {
                        method: Method::Zstd,
                        payload,
                        reference: w,
                    },
                    Content::Borrowed(seg),
                )
            }
        };
        parts.push(node);
    }
    let Some(root) = g.chain(parts) else {
        return Ok(None);
    };
    g.graph.root = root;
    stats.seconds.2 = clock.elapsed().as_secs_f64() - stats.seconds.0 - stats.seconds.1;
    Ok(Some((g.graph, stats)))
}

/// Emits the recipes of `graph` into `asm`, `basis` being the item of the basis the graph's
/// `Basis` nodes slice; returns the item of the root. A node whose bytes an earlier node already
/// produces gets no recipe of its own (no duplicate work, no cycles).
pub fn emit(graph: &Graph, asm: &mut Assembly, basis: &Item) -> Item {
    let mut items: Vec<Item> = Vec::with_capacity(graph.nodes.len());
    let mut made: std::collections::HashSet<(u64, [u8; 32])> = std::collections::HashSet::new();
    made.insert((basis.length, basis.sha256.unwrap_or_default()));
    for node in &graph.nodes {
        let item = Item::with_sha256(node.len, node.sha256);
        items.push(item.clone());
        if !made.insert((node.len, node.sha256)) {
            continue;
        }
        let (kind, numbers, ingredients) = match &node.kind {
            NodeKind::Basis { offset } => (RecipeKind::Slice, vec![*offset], vec![basis.clone()]),
            NodeKind::Zeros => (RecipeKind::AllZeros, vec![], vec![]),
            NodeKind::Chain(parts) => (
                RecipeKind::Chain,
                vec![],
                parts.iter().map(|&p| items[p].clone()).collect(),
            ),
            NodeKind::Slice { whole, offset } => (
                RecipeKind::Slice,
                vec![*offset],
                vec![items[*whole].clone()],
            ),
            NodeKind::Delta {
                method,
                payload,
                reference,
            } => {
                let mut v = vec![asm.inline_asset(payload)];
                v.extend(reference.map(|r| items[r].clone()));
                let kind = match method {
                    Method::Bsdiff => RecipeKind::BspatchDecompression,
                    Method::Zstd => RecipeKind::ZstdDecompression,
                };
                (kind, vec![], v)
            }
            NodeKind::Gzip { level, raw } => {
                let level_number = if *level < 0 {
                    0xFFFF_FFFF
                } else {
                    *level as u64
                };
                (
                    RecipeKind::ZlibCompression,
                    vec![ZlibInit::Gzip as u64, level_number],
                    vec![items[*raw].clone()],
                )
            }
            NodeKind::Gunzip { gz } => (
                RecipeKind::ZlibDecompression,
                vec![ZlibInit::Gzip as u64],
                vec![items[*gz].clone()],
            ),
            NodeKind::Literal { bytes } => {
                // The inline-assets piece is this very item: no recipe needed.
                asm.inline_asset(bytes);
                continue;
            }
            NodeKind::Reconstruct {
                plain,
                codec,
                corrections,
            } => (
                RecipeKind::DeflateReconstruct,
                vec![codec.0, codec.1],
                vec![items[*plain].clone(), asm.inline_asset(corrections)],
            ),
        };
        asm.recipe(kind, &item, numbers, ingredients);
    }
    items[graph.root].clone()
}

/// A gzip file zlib does not reproduce described as text + pieces, when the correction
/// bytes are small next to the file (otherwise it stays raw).
fn rebuild_text(gz: &[u8], stats: &mut ImageStats) -> Option<(Vec<u8>, Regzip)> {
    let r = super::gzrebuild::analyse(gz)?;
    let corrections = r.correction_bytes();
    if corrections > gz.len() / 8 {
        return None;
    }
    stats.reconstructed_files.0 += 1;
    stats.reconstructed_files.1 += corrections as u64;
    Some((r.plain, Regzip::Rebuild(std::sync::Arc::new(r.pieces))))
}

/// The node of a gzip file rebuilt piece by piece from its text node `raw`.
fn rebuilt_file(
    g: &mut Builder<'_>,
    raw: NodeId,
    bytes: &[u8],
    pieces: &[super::gzrebuild::Piece],
) -> NodeId {
    use super::gzrebuild::Piece;
    let mut parts = Vec::new();
    for piece in pieces {
        let node = match piece {
            Piece::Literal(range) => {
                let b = bytes[range.clone()].to_vec();
                g.add(
                    NodeKind::Literal { bytes: b.clone() },
                    Content::Owned(std::sync::Arc::new(b)),
                )
            }
            Piece::Deflate {
                plain,
                stream,
                codec,
                corrections,
            } => {
                let plain = g.slice(raw, plain.start as u64, plain.len() as u64);
                g.add(
                    NodeKind::Reconstruct {
                        plain,
                        codec: *codec,
                        corrections: corrections.clone(),
                    },
                    Content::Owned(std::sync::Arc::new(bytes[stream.clone()].to_vec())),
                )
            }
        };
        parts.push(node);
    }
    g.chain(parts).expect("a gzip file has bytes")
}

/// Payload bytes of a graph (what it adds to the inline assets, before de-duplication).
pub fn payload_bytes(graph: &Graph) -> u64 {
    graph
        .nodes
        .iter()
        .map(|n| match &n.kind {
            NodeKind::Delta { payload, .. } => payload.len() as u64,
            NodeKind::Literal { bytes } => bytes.len() as u64,
            NodeKind::Reconstruct { corrections, .. } => corrections.len() as u64,
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesce_merges_close_ranges_only() {
        let r = vec![(100, 10), (0, 10), (15, 5), (5000, 1)];
        assert_eq!(
            coalesce(r.clone(), 0),
            vec![(0, 10), (15, 5), (100, 10), (5000, 1)]
        );
        assert_eq!(coalesce(r.clone(), 5), vec![(0, 20), (100, 10), (5000, 1)]);
        assert_eq!(coalesce(r, 100), vec![(0, 110), (5000, 1)]);
    }

    #[test]
    fn streams_grow_in_chunks_per_kind() {
        let mut st = Streams::default();
        let a = st.take(StreamKind::New, 10);
        st.all[a].bytes.resize(STREAM_CHUNK - 5, 0);
        assert_eq!(st.take(StreamKind::New, 5), a, "fits exactly");
        let m = st.take(StreamKind::Meta, 100);
        assert_ne!(m, a, "one stream per kind");
        let b = st.take(StreamKind::New, 6);
        assert_ne!(b, a, "a full chunk starts a new one");
        // A file larger than a chunk gets a chunk of its own, even when the open one is empty.
        assert_eq!(st.take(StreamKind::New, 2 * STREAM_CHUNK), b);
        assert_eq!(st.all.len(), 3);
    }

    #[test]
    fn new_files_group_by_extension() {
        let mut paths = vec![
            "usr/share/locale/uk/LC_MESSAGES/a.mo",
            "usr/bin/tool",
            "usr/share/locale/de/LC_MESSAGES/a.mo",
            "usr/lib/libx.so.1.2",
            "usr/share/man/man1/tool.1.gz",
        ];
        paths.sort_by_key(|p| kind_key(p));
        assert_eq!(
            paths,
            [
                "usr/bin/tool",
                "usr/lib/libx.so.1.2",
                "usr/share/man/man1/tool.1.gz",
                "usr/share/locale/de/LC_MESSAGES/a.mo",
                "usr/share/locale/uk/LC_MESSAGES/a.mo",
            ],
            "no extension first, then by the last suffix (grouping versioned .so files measured \
             0.1 % worse on the corpus)"
        );
        assert!(is_elf(b"\x7fELF\x02\x01"));
        assert!(!is_elf(b"#!/bin/sh"));
    }

    #[test]
    fn emitted_graph_skips_duplicate_nodes() {
        let basis = b"0123456789abcdef".to_vec();
        let mut b = Builder {
            graph: Graph::default(),
            contents: Vec::new(),
        };
        let x = b.basis(&basis, 4, 4);
        let y = b.basis(&basis, 4, 4); // same bytes: no second recipe
        let z = b.add(NodeKind::Zeros, Content::Zeros(3));
        let root = b.chain(vec![x, y, z]).unwrap();
        b.graph.root = root;
        assert_eq!(b.bytes(root), b"45674567\0\0\0");
        let mut asm = Assembly::default();
        let basis_item = adudiff_core::format::writer::item_of(&basis);
        let item = emit(&b.graph, &mut asm, &basis_item);
        assert_eq!(
            item,
            adudiff_core::format::writer::item_of(b"45674567\0\0\0")
        );
        let kinds: Vec<RecipeKind> = asm.recipes.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [RecipeKind::Slice, RecipeKind::AllZeros, RecipeKind::Chain]
        );
    }
}
