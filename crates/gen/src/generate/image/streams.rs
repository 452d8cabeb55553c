//! The middle of planning: each stream's reference (the old versions it is diffed against),
//! its diff candidates computed in parallel, and the node of the best one.

use super::super::diff::{bsdiff_delta, zstd_delta, Method};
use super::super::pool;
use super::super::progress::Counter;
use super::files::{RefPiece, Stream, StreamKind};
use super::frames::coalesce;
use super::graph::{Builder, Content};
use super::{ImageSettings, ImageStats, NodeId, NodeKind};
use crate::tool::error::{ToolError, ToolResult};

/// Largest zstd prefix the new-files streams get from the changed files' old versions.
const NEW_PREFIX_MAX: u64 = 64 << 20;

/// A stream's chosen candidate: method, reference used, payload.
type Chosen = (Method, Option<NodeId>, Vec<u8>);

/// A stream diff job's result: stream, method, reference used, payload.
type StreamOutcome = (usize, Method, Option<NodeId>, ToolResult<Vec<u8>>);

/// The reference node of each stream: its basis ranges (coalesced across gaps up to 1 MiB)
/// followed by the decompressed old texts of its re-gzipped files (`None`: no reference).
pub(super) fn stream_references<'a>(
    g: &mut Builder<'a>,
    streams: &[Stream],
    basis: &'a [u8],
) -> Vec<Option<NodeId>> {
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
    refs
}

/// The zstd prefix new files also try: the changed streams' references, in order, up to
/// [`NEW_PREFIX_MAX`] bytes. New packages share code and strings with the updated ones
/// (-2 % on the corpus).
pub(super) fn new_files_prefix(
    g: &mut Builder<'_>,
    streams: &[Stream],
    refs: &[Option<NodeId>],
) -> Option<NodeId> {
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
    g.chain(prefix_parts)
}

/// Debugging aids: with `ADUDIFF_DUMP_STREAMS=<dir>` each stream and its reference are written
/// there; with `ADUDIFF_DEBUG` their sizes are printed.
pub(super) fn debug_streams(
    g: &Builder<'_>,
    streams: &[Stream],
    refs: &[Option<NodeId>],
    debug: bool,
) {
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
}

/// What diffing the streams needs besides the streams.
pub(super) struct StreamDiff<'s> {
    /// Each stream's reference.
    pub(super) refs: &'s [Option<NodeId>],
    /// The prefix new files also try.
    pub(super) new_prefix: Option<NodeId>,
    /// Levels and bsdiff tuning.
    pub(super) settings: &'s ImageSettings,
    /// Worker threads.
    pub(super) threads: usize,
    /// Print each candidate (`ADUDIFF_DEBUG`).
    pub(super) debug: bool,
    /// Started when planning started (for the debug output).
    pub(super) clock: std::time::Instant,
}

impl StreamDiff<'_> {
    /// The best candidate of each stream (the smallest; ties keep bsdiff): zstd against the
    /// reference (new files: at their own level, plain and with the prefix) and bsdiff against
    /// the reference (not for new files). References are materialized inside the jobs, so
    /// only the running jobs' copies are in memory.
    pub(super) fn best_candidates(
        &self,
        g: &Builder<'_>,
        streams: &[Stream],
    ) -> ToolResult<Vec<Option<Chosen>>> {
        let jobs = self.jobs(g, streams);
        let mut best: Vec<Option<Chosen>> = vec![None; streams.len()];
        for (si, method, reference, r) in pool::run(self.threads, jobs) {
            let payload =
                r.map_err(|e| ToolError(format!("image stream {si} ({}): {e}", method.name())))?;
            if self.debug {
                eprintln!(
                    "stream {si} {}{}: {} bytes at {:.1} s",
                    method.name(),
                    if reference.is_some()
                        && reference == self.new_prefix
                        && self.refs[si] != self.new_prefix
                    {
                        " (prefix)"
                    } else {
                        ""
                    },
                    payload.len(),
                    self.clock.elapsed().as_secs_f64()
                );
            }
            let better = best[si].as_ref().is_none_or(|(m, _, p)| {
                (payload.len(), method != Method::Bsdiff) < (p.len(), *m != Method::Bsdiff)
            });
            if better {
                best[si] = Some((method, reference, payload));
            }
        }
        Ok(best)
    }

    /// The diff jobs of every non-empty stream, weighted by their cost.
    fn jobs<'j>(
        &self,
        builder: &'j Builder<'_>,
        streams: &'j [Stream],
    ) -> Vec<(u64, pool::Job<'j, StreamOutcome>)> {
        let mut jobs: Vec<(u64, pool::Job<'_, StreamOutcome>)> = Vec::new();
        for (si, s) in streams.iter().enumerate() {
            if s.bytes.is_empty() {
                continue;
            }
            let data: &[u8] = &s.bytes;
            let is_new = s.kind == StreamKind::New;
            let level = if is_new {
                self.settings.new_level
            } else {
                self.settings.diff_level
            };
            let mut zstd_refs = vec![self.refs[si]];
            if is_new && self.new_prefix.is_some() {
                zstd_refs.push(self.new_prefix);
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
            if let (Some(reference), false) = (self.refs[si], is_new) {
                let small = self.settings.bsdiff_small_match;
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
        jobs
    }
}

/// The node of each stream: its chosen delta (the stream's bytes move into the node), with
/// the payload sizes and methods added to `stats`.
pub(super) fn stream_nodes(
    g: &mut Builder<'_>,
    streams: &mut [Stream],
    mut best: Vec<Option<Chosen>>,
    stats: &mut ImageStats,
) -> Vec<Option<NodeId>> {
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
    stream_nodes
}
