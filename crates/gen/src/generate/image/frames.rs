//! The last part of planning: the target image cut into segments, each one zstd frame whose
//! prefix (window) is a chain of exactly what the segment copies — source ranges, stream
//! ranges and re-gzipped files.

use std::collections::HashMap;

use super::super::diff::{zstd_delta, Method};
use super::super::ext4::Ext4Image;
use super::super::pool;
use super::super::progress::Counter;
use super::files::{file_bytes, BlockMap, FilePlan, MetaRun, Ranges, Regzip};
use super::graph::{rebuilt_file, Builder, Content};
use super::{ImageStats, NodeId, NodeKind};
use crate::tool::error::ToolResult;

/// A frame's payload (none: the segment is all zeros).
type FrameOutcome = ToolResult<Option<Vec<u8>>>;

/// A segment of the target image: `(start, len, window)`; no window when it is all zeros.
type Frame = (u64, u64, Option<NodeId>);

/// Most basis ranges a frame's window takes (closer ranges are merged until they fit).
const MAX_BASIS_RANGES: usize = 16;

/// Coalesces `(offset, len)` ranges (sorted by offset) whose gaps are at most `gap`.
pub(super) fn coalesce(mut r: Vec<(u64, u64)>, gap: u64) -> Vec<(u64, u64)> {
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

/// Everything a frame's window is made of, and the re-gzipped file nodes made so far.
pub(super) struct FramePlanner<'p, 'a> {
    /// The graph (windows are added to it).
    pub(super) g: &'p mut Builder<'a>,
    /// The target image.
    pub(super) target: &'a [u8],
    /// The source image.
    pub(super) basis: &'a [u8],
    /// The target image's files.
    pub(super) timg: &'p Ext4Image,
    /// Which target blocks the source holds.
    pub(super) blocks: &'p BlockMap,
    /// Where each placed file's bytes are.
    pub(super) placed: &'p [(usize, FilePlan, Ranges)],
    /// The metadata runs.
    pub(super) meta_runs: &'p [MetaRun],
    /// The node of each stream.
    pub(super) stream_nodes: &'p [Option<NodeId>],
    /// The re-gzipped file nodes made so far, by file index.
    pub(super) gz_nodes: HashMap<usize, NodeId>,
}

impl FramePlanner<'_, '_> {
    /// Cuts the target into segments of `frame_size` (rounded to blocks; a short tail joins
    /// the last segment) and makes each one's window.
    pub(super) fn frames(&mut self, frame_size: u64) -> Vec<Frame> {
        let bs = self.blocks.block_size;
        let tlen = self.target.len() as u64;
        let seg_len = (frame_size / bs).max(1) * bs;
        let mut frames: Vec<Frame> = Vec::new();
        let mut start = 0u64;
        while start < tlen {
            let mut end = (start + seg_len).min(tlen);
            if tlen - end < seg_len / 4 {
                end = tlen;
            }
            let (fb, lb) = ((start / bs) as usize, (end / bs) as usize);
            if self.blocks.zero[fb..lb].iter().all(|&z| z) {
                frames.push((start, end - start, None));
                start = end;
                continue;
            }
            let window = self.window(start, end);
            frames.push((start, end - start, window));
            start = end;
        }
        frames
    }

    /// The window of segment `[start, end)`: the source ranges its blocks are copied from
    /// (at most [`MAX_BASIS_RANGES`], within zstd's 256 MiB prefix budget), then the stream
    /// ranges of its files and metadata, then its re-gzipped files.
    fn window(&mut self, start: u64, end: u64) -> Option<NodeId> {
        let basis_ranges = self.copied_ranges(start, end);
        let (used, gz_here) = self.stream_spans(start, end);
        let g = &mut *self.g;
        let mut parts: Vec<NodeId> = Vec::new();
        let mut budget: u64 = (1u64 << 28) - (end - start) - (1 << 20);
        for (si, &(a, b)) in used.iter().enumerate() {
            if let (Some(stream), true) = (self.stream_nodes[si], a < b) {
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
            basis_parts.push(g.basis(self.basis, o, l));
        }
        basis_parts.extend(parts);
        g.chain(basis_parts)
    }

    /// The source ranges segment `[start, end)` copies blocks from, merged across ever larger
    /// gaps until at most [`MAX_BASIS_RANGES`] are left.
    fn copied_ranges(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let bs = self.blocks.block_size;
        let (fb, lb) = ((start / bs) as usize, (end / bs) as usize);
        let copies: Vec<(u64, u64)> = (fb..lb)
            .filter(|&k| self.blocks.copy_of[k] != u32::MAX)
            .map(|k| (self.blocks.copy_of[k] as u64 * bs, bs))
            .collect();
        let mut gap = 1u64 << 20;
        let mut basis_ranges = coalesce(copies.clone(), gap);
        while basis_ranges.len() > MAX_BASIS_RANGES {
            gap *= 2;
            basis_ranges = coalesce(copies.clone(), gap);
        }
        basis_ranges
    }

    /// What segment `[start, end)` takes from the streams: per stream the span `(from, to)` of
    /// its raw files and metadata runs overlapping the segment (`(u64::MAX, 0)`: none), and the
    /// nodes of its re-gzipped files.
    fn stream_spans(&mut self, start: u64, end: u64) -> (Vec<(u64, u64)>, Vec<NodeId>) {
        let mut used: Vec<(u64, u64)> = vec![(u64::MAX, 0); self.stream_nodes.len()];
        let mut take = |si: usize, a: u64, b: u64| {
            used[si].0 = used[si].0.min(a);
            used[si].1 = used[si].1.max(b);
        };
        let mut gz_here: Vec<NodeId> = Vec::new();
        for (fi, plan, ranges) in self.placed {
            let overlaps = ranges
                .iter()
                .any(|(o, l)| o.is_some_and(|o| o < end && o + l > start));
            if !overlaps {
                continue;
            }
            match plan {
                FilePlan::Raw(si, off) => take(*si, *off, off + self.timg.files[*fi].size),
                FilePlan::Text(si, off, len, how) => {
                    let Some(stream) = self.stream_nodes[*si] else {
                        continue;
                    };
                    let node = self.regzipped_file(*fi, ranges, stream, *off, *len, how);
                    if !gz_here.contains(&node) {
                        gz_here.push(node);
                    }
                }
            }
        }
        for run in self.meta_runs {
            if run.offset < end && run.offset + run.len > start {
                take(run.stream, run.stream_offset, run.stream_offset + run.len);
            }
        }
        (used, gz_here)
    }

    /// The node of re-gzipped file `fi` (made once): `zlib_compression` or the rebuilt pieces
    /// of its text, bytes `[off, off + len)` of `stream`.
    fn regzipped_file(
        &mut self,
        fi: usize,
        ranges: &Ranges,
        stream: NodeId,
        off: u64,
        len: u64,
        how: &Regzip,
    ) -> NodeId {
        if let Some(&node) = self.gz_nodes.get(&fi) {
            return node;
        }
        let g = &mut *self.g;
        let raw = g.slice(stream, off, len);
        let bytes = file_bytes(self.target, ranges).into_owned();
        let node = match how {
            Regzip::Level(level) => g.add(
                NodeKind::Gzip { level: *level, raw },
                Content::Owned(std::sync::Arc::new(bytes)),
            ),
            Regzip::Rebuild(pieces) => rebuilt_file(g, raw, &bytes, pieces),
        };
        self.gz_nodes.insert(fi, node);
        node
    }
}

/// Compresses every frame (in parallel) and returns their nodes in target order: zstd deltas
/// against their windows, or zeros; frame counts and payload sizes go to `stats`.
pub(super) fn compress_frames<'a>(
    g: &mut Builder<'a>,
    target: &'a [u8],
    frames: Vec<Frame>,
    level: i32,
    threads: usize,
    progress: &Counter,
    stats: &mut ImageStats,
) -> ToolResult<Vec<NodeId>> {
    let builder = &*g;
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
    Ok(parts)
}
