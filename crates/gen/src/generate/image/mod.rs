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

mod files;
mod frames;
mod graph;
mod streams;

use std::collections::HashMap;

use super::build::Assembly;
use super::diff::Method;
use super::ext4::Ext4Image;
use super::progress::Counter;
use crate::tool::error::ToolResult;
use adudiff_core::format::{Item, RecipeKind, ZlibInit};
use files::{BlockMap, FileLayout};
use frames::FramePlanner;
use graph::Builder;

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

/// Plans the file-aware delta of `target` (an image) against `basis` (the source image).
/// `progress` advances by target bytes. Errors only on diff failures; a planner that cannot
/// use the images returns `Ok(None)`.
///
/// Steps: which target blocks the source holds (`files::BlockMap`); the other files and
/// metadata placed into streams (`files::FileLayout`); each stream diffed against its
/// reference (`streams`); the target cut into frames whose windows chain what they copy
/// (`frames`).
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
    let clock = std::time::Instant::now();

    // ---- source indexes, then files: copied, changed (diffed against the old version), new;
    // then metadata: blocks outside files that the source does not hold verbatim
    let blocks = BlockMap::new(target, basis, bs);
    let mut layout =
        FileLayout::place_files(target, basis, timg, simg, settings, &blocks, &mut stats);
    let meta_runs = layout.place_metadata(target, basis.len() as u64, &blocks);
    stats.metadata.0 = meta_runs.iter().map(|r| r.len).sum();
    let mut all_streams = std::mem::take(&mut layout.streams.all);

    // ---- build the stream references and diff the streams (in parallel)
    let mut g = Builder::default();
    let refs = streams::stream_references(&mut g, &all_streams, basis);
    let new_prefix = streams::new_files_prefix(&mut g, &all_streams, &refs);
    stats.seconds.0 = clock.elapsed().as_secs_f64();
    let debug = std::env::var_os("ADUDIFF_DEBUG").is_some();
    streams::debug_streams(&g, &all_streams, &refs, debug);
    let stream_diff = streams::StreamDiff {
        refs: &refs,
        new_prefix,
        settings,
        threads,
        debug,
        clock,
    };
    let best = stream_diff.best_candidates(&g, &all_streams)?;
    progress.add(target.len() as u64 / 2);
    let stream_nodes = streams::stream_nodes(&mut g, &mut all_streams, best, &mut stats);
    stats.seconds.1 = clock.elapsed().as_secs_f64() - stats.seconds.0;

    // ---- frames: each target segment is a zstd frame over exactly what it copies
    let frame_list = FramePlanner {
        g: &mut g,
        target,
        basis,
        timg,
        blocks: &blocks,
        placed: &layout.placed,
        meta_runs: &meta_runs,
        stream_nodes: &stream_nodes,
        gz_nodes: HashMap::new(),
    }
    .frames(settings.frame_size);
    let parts = frames::compress_frames(
        &mut g,
        target,
        frame_list,
        settings.frame_level,
        threads,
        progress,
        &mut stats,
    )?;
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
    use super::files::{is_elf, kind_key, StreamKind, Streams, STREAM_CHUNK};
    use super::frames::coalesce;
    use super::graph::Content;
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
        let mut b = Builder::default();
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
