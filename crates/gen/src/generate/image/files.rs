//! The first half of planning: which target blocks the source already holds, and where every
//! other byte of the target image goes — changed and new files into streams (gzip files as
//! their text), metadata blocks into the metadata stream.

use std::collections::HashMap;

use super::super::ext4::{Ext4Image, FileEntry};
use super::super::gzrebuild;
use super::super::sha;
use super::{ImageSettings, ImageStats};
use crate::tool::gzip;
use adudiff_core::format::ZlibInit;

/// How a gzip file is rebuilt from its text.
#[derive(Clone, Debug)]
pub(super) enum Regzip {
    /// `zlib_compression(gzip, level)`.
    Level(i32),
    /// Extended format: header/trailer literals and `deflate_reconstruct` pieces.
    Rebuild(std::sync::Arc<Vec<gzrebuild::Piece>>),
}

/// What a stream holds (and so how it is diffed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum StreamKind {
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
pub(super) struct Stream {
    /// What the stream holds.
    pub(super) kind: StreamKind,
    /// Its bytes so far.
    pub(super) bytes: Vec<u8>,
    /// Reference pieces: basis ranges `(offset, len)` or decompressed old gzip texts.
    pub(super) reference: Vec<RefPiece>,
}

/// Streams grow in chunks of at most this size (a larger file gets a chunk of its own): bounds
/// bsdiff's memory and zstd's windows and spreads large updates over the cores.
pub(super) const STREAM_CHUNK: usize = 32 << 20;

/// The growing streams, in chunks per kind.
#[derive(Default)]
pub(super) struct Streams {
    /// Every stream chunk, in creation order.
    pub(super) all: Vec<Stream>,
    /// The chunk each kind currently fills.
    open: HashMap<StreamKind, usize>,
}

impl Streams {
    /// The stream of `kind` that takes `len` more bytes, starting a new chunk when full.
    pub(super) fn take(&mut self, kind: StreamKind, len: usize) -> usize {
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

/// A piece of a stream's reference.
#[derive(Clone)]
pub(super) enum RefPiece {
    /// Basis bytes `(offset, len)`.
    Basis(u64, u64),
    /// The decompressed text of an old gzip file (its ranges in the basis).
    OldText {
        /// The old file's byte ranges in the basis.
        ranges: Ranges,
        /// Its decompressed text.
        text: std::sync::Arc<Vec<u8>>,
    },
}

/// Where a target file's bytes come from.
#[derive(Clone, Debug)]
pub(super) enum FilePlan {
    /// In a stream, raw: `(stream, offset)`.
    Raw(usize, u64),
    /// In a stream as text, re-gzipped: `(stream, offset, text length, how)`.
    Text(usize, u64, u64, Regzip),
}

/// A file's byte ranges in its image (`None` = hole).
pub(super) type Ranges = Vec<(Option<u64>, u64)>;

/// Per target block: whether the source holds the same bytes, or the block is zeros.
pub(super) struct BlockMap {
    /// Block size in bytes.
    pub(super) block_size: u64,
    /// Per target block: the source block with the same bytes (`u32::MAX`: none, or zeros).
    pub(super) copy_of: Vec<u32>,
    /// Per target block: all zeros.
    pub(super) zero: Vec<bool>,
}

/// A new file (no source file at its path), waiting to be placed in the new-files stream.
struct NewFile {
    /// Index in the target image's files.
    fi: usize,
    ranges: Ranges,
    /// Its bytes (its text when it is a gzip file rebuilt from it).
    data: Vec<u8>,
    /// How the gzip file is rebuilt from `data` (none: `data` are its bytes).
    level: Option<Regzip>,
    /// SHA-256 of its bytes in the image.
    key: [u8; 32],
}

/// Where the target's files and metadata go: the streams, each placed file and the blocks
/// that belong to files.
pub(super) struct FileLayout {
    /// The streams, filled.
    pub(super) streams: Streams,
    /// Per placed file: its index, where its bytes are, its ranges in the target image.
    pub(super) placed: Vec<(usize, FilePlan, Ranges)>,
    /// Per target block: whether a file owns it.
    pub(super) owned: Vec<bool>,
    /// Placement of each distinct content already in a stream, by SHA-256.
    seen: HashMap<[u8; 32], FilePlan>,
}

/// A run of metadata blocks in the metadata stream.
#[derive(Clone, Copy)]
pub(super) struct MetaRun {
    /// Offset in the target image.
    pub(super) offset: u64,
    /// Length in bytes.
    pub(super) len: u64,
    /// The stream holding it.
    pub(super) stream: usize,
    /// Offset in that stream.
    pub(super) stream_offset: u64,
}

impl BlockMap {
    /// Finds, for each target block, a source block with the same bytes: preferably the one
    /// after the previous match (runs stay runs), otherwise any (by content hash).
    pub(super) fn new(target: &[u8], basis: &[u8], block_size: u64) -> Self {
        let bs = block_size;
        let slen = basis.len() as u64;
        let mut src_blocks: HashMap<u64, u32> = HashMap::with_capacity((slen / bs) as usize);
        for (i, blk) in basis.chunks_exact(bs as usize).enumerate() {
            if blk.iter().any(|&x| x != 0) {
                src_blocks.entry(block_key(blk)).or_insert(i as u32);
            }
        }
        // Per target block: where the same bytes are in the source (u32::MAX = nowhere / zeros).
        let nblocks = (target.len() as u64 / bs) as usize;
        let mut copy_of: Vec<u32> = vec![u32::MAX; nblocks];
        let mut zero: Vec<bool> = vec![false; nblocks];
        let mut prev: Option<u32> = None;
        for (i, blk) in target.chunks_exact(bs as usize).enumerate() {
            if blk.iter().all(|&x| x == 0) {
                zero[i] = true;
                prev = None;
                continue;
            }
            let src_block =
                |j: u32| &basis[(j as u64 * bs) as usize..((j as u64 + 1) * bs) as usize];
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
        BlockMap {
            block_size,
            copy_of,
            zero,
        }
    }

    /// Number of blocks of the target image.
    pub(super) fn len(&self) -> usize {
        self.zero.len()
    }

    /// Whether target block `k` is zeros or held by the source.
    pub(super) fn known(&self, k: usize) -> bool {
        self.zero[k] || self.copy_of[k] != u32::MAX
    }
}

/// The text of a gzip file that is rebuilt from it, when the file is at least `min_gz` bytes
/// and one gzip member: zlib's level that reproduces it, or in the extended format its
/// `deflate_reconstruct` pieces (see [`rebuild_text`]).
fn gzip_text(
    bytes: &[u8],
    min_gz: u64,
    settings: &ImageSettings,
    stats: &mut ImageStats,
) -> Option<(Vec<u8>, Regzip)> {
    if (bytes.len() as u64) < min_gz || !gzip::is_gzip(bytes) {
        return None;
    }
    let (raw, used) = gzip::gunzip_member(bytes).ok()?;
    if used != bytes.len() {
        return None;
    }
    if let Some(level) = adudiff_core::codec::find_zlib_level(&raw, bytes, ZlibInit::Gzip) {
        Some((raw, Regzip::Level(level)))
    } else if settings.extended {
        rebuild_text(bytes, stats)
    } else {
        None
    }
}

impl FileLayout {
    /// Places the files of the target image that the source does not hold block for block:
    /// files whose path exists in the source go into the changed streams (diffed against their
    /// old versions), the others into the new-files stream (grouped by kind); identical
    /// contents are placed once.
    pub(super) fn place_files(
        target: &[u8],
        basis: &[u8],
        timg: &Ext4Image,
        simg: &Ext4Image,
        settings: &ImageSettings,
        blocks: &BlockMap,
        stats: &mut ImageStats,
    ) -> Self {
        let bs = blocks.block_size;
        let (tlen, slen) = (target.len() as u64, basis.len() as u64);
        let src_by_path: HashMap<&str, &FileEntry> =
            simg.files.iter().map(|f| (f.path.as_str(), f)).collect();
        let mut layout = FileLayout {
            streams: Streams::default(),
            placed: Vec::new(),
            owned: vec![false; blocks.len()],
            seen: HashMap::new(),
        };
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
                layout.owned[r].fill(true);
            }
            let copied = ranges
                .iter()
                .filter_map(blocks_of)
                .all(|mut r| r.all(|k| blocks.known(k)));
            if copied {
                stats.unchanged_files += 1;
                continue;
            }
            let bytes = file_bytes(target, &ranges);
            let key = sha(&bytes);
            if let Some(p) = layout.seen.get(&key) {
                layout.placed.push((fi, p.clone(), ranges));
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
            let text = gzip_text(&bytes, min_gz, settings, stats);
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
            let plan = layout.place_changed(&bytes, text, basis, oranges, stats);
            layout.seen.insert(key, plan.clone());
            layout.placed.push((fi, plan, ranges));
        }
        layout.place_new(new_files, timg, stats);
        layout
    }

    /// Appends a changed file (its text when `text` is given) to a changed stream and its old
    /// version (`oranges` in the basis; the old text when both are gzip) to that stream's
    /// reference.
    fn place_changed(
        &mut self,
        bytes: &[u8],
        text: Option<(Vec<u8>, Regzip)>,
        basis: &[u8],
        oranges: Ranges,
        stats: &mut ImageStats,
    ) -> FilePlan {
        let kind = if text.is_none() && is_elf(bytes) {
            StreamKind::ChangedElf
        } else {
            StreamKind::ChangedOther
        };
        let len = text.as_ref().map_or(bytes.len(), |(raw, _)| raw.len());
        let si = self.streams.take(kind, len);
        let s = &mut self.streams.all[si];
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
                s.bytes.extend_from_slice(bytes);
                FilePlan::Raw(si, off)
            }
        };
        stats.changed.0 += 1;
        stats.changed.1 += s.bytes.len() as u64 - off;
        plan
    }

    /// Appends the new files to the new-files streams, grouped by kind so that similar
    /// contents sit together.
    fn place_new(&mut self, mut new_files: Vec<NewFile>, timg: &Ext4Image, stats: &mut ImageStats) {
        new_files.sort_by_cached_key(|n| kind_key(&timg.files[n.fi].path));
        for n in new_files {
            if let Some(p) = self.seen.get(&n.key) {
                self.placed.push((n.fi, p.clone(), n.ranges));
                continue;
            }
            let si = self.streams.take(StreamKind::New, n.data.len());
            let s = &mut self.streams.all[si];
            let off = s.bytes.len() as u64;
            s.bytes.extend_from_slice(&n.data);
            let plan = match n.level {
                Some(how) => {
                    stats.regzipped_files += matches!(how, Regzip::Level(_)) as usize;
                    FilePlan::Text(si, off, n.data.len() as u64, how)
                }
                None => FilePlan::Raw(si, off),
            };
            self.seen.insert(n.key, plan.clone());
            self.placed.push((n.fi, plan, n.ranges));
        }
    }

    /// Appends the runs of blocks outside files that the source does not hold verbatim to the
    /// metadata streams, each referring to the source blocks at the same offsets.
    pub(super) fn place_metadata(
        &mut self,
        target: &[u8],
        basis_len: u64,
        blocks: &BlockMap,
    ) -> Vec<MetaRun> {
        let bs = blocks.block_size;
        let nblocks = blocks.len();
        let mut meta_runs: Vec<MetaRun> = Vec::new();
        let mut k = 0usize;
        while k < nblocks {
            if self.owned[k] || blocks.known(k) {
                k += 1;
                continue;
            }
            let start = k;
            while k < nblocks && !self.owned[k] && !blocks.known(k) {
                k += 1;
            }
            let (a, b) = (start as u64 * bs, k as u64 * bs);
            let si = self.streams.take(StreamKind::Meta, (b - a) as usize);
            let s = &mut self.streams.all[si];
            meta_runs.push(MetaRun {
                offset: a,
                len: b - a,
                stream: si,
                stream_offset: s.bytes.len() as u64,
            });
            s.bytes.extend_from_slice(&target[a as usize..b as usize]);
            if a < basis_len {
                s.reference.push(RefPiece::Basis(a, b.min(basis_len) - a));
            }
        }
        meta_runs
    }
}

/// Whether `bytes` start like an ELF executable.
pub(super) fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// A 64-bit hash of a block's bytes (8-byte words), to find equal blocks.
fn block_key(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for w in b.chunks_exact(8) {
        let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h
}

/// A file's bytes (holes as zeros); borrowed when the file is one range.
pub(super) fn file_bytes<'a>(
    img: &'a [u8],
    ranges: &[(Option<u64>, u64)],
) -> std::borrow::Cow<'a, [u8]> {
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
pub(super) fn kind_key(path: &str) -> (String, String) {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = match name.rsplit_once('.') {
        Some((_, e)) if !e.is_empty() && e.len() <= 8 => e.to_ascii_lowercase(),
        _ => String::new(),
    };
    (ext, path.to_string())
}

/// A gzip file zlib does not reproduce described as text + pieces, when the correction
/// bytes are small next to the file (otherwise it stays raw).
fn rebuild_text(gz: &[u8], stats: &mut ImageStats) -> Option<(Vec<u8>, Regzip)> {
    let r = gzrebuild::analyse(gz)?;
    let corrections = r.correction_bytes();
    if corrections > gz.len() / 8 {
        return None;
    }
    stats.reconstructed_files.0 += 1;
    stats.reconstructed_files.1 += corrections as u64;
    Some((r.plain, Regzip::Rebuild(std::sync::Arc::new(r.pieces))))
}
