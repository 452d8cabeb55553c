//! Stage 4 (assemble): the recipes of the whole target, member by member in archive order —
//! the best candidate per segment, source slices and decoded bases, recompression or deflate
//! rebuild of the payload; cpio headers, paddings and small members go to the remainder.

use std::collections::HashMap;

use adudiff_core::codec::zstd_reconstruct as zr;
use adudiff_core::format::writer::item_of;
use adudiff_core::format::{Item, RecipeKind, ZlibInit};
use adudiff_core::io::SharedBytes;

use crate::tool::{fail, ToolResult};

use super::build::Assembly;
use super::candidates::{Candidate, Diffs};
use super::plan::{Basis, BuildPlan, MemberPlans, Plan};
use super::source::SourceSide;
use super::{
    gzrebuild, image, segment, zstdrebuild, MemberReport, Method, SegmentLog, Strategy,
    TargetAnalysis,
};

/// The chosen candidate of a segment, its basis window and the segment.
type Pick<'a> = (Option<Candidate>, Option<(u64, u64)>, &'a segment::Segment);

/// Stage 4 (assemble): what the writer serializes.
pub(super) struct Assembled {
    pub(super) builder: adudiff_core::format::writer::DeltaBuilder,
    pub(super) remainder_size: u64,
    pub(super) inline_size: u64,
}

/// Stage 4's state: the recipes being assembled and the basis items made so far.
struct Assembler<'s> {
    pub(super) src: &'s SourceSide,
    pub(super) s_raw: &'s HashMap<usize, SharedBytes>,
    asm: Assembly,
    /// Items of the bases already produced, by (source member, decompressed).
    basis_items: HashMap<(usize, bool), Item>,
}

/// The chosen candidate of every segment of one content.
struct SegmentPicks<'a> {
    picks: Vec<Pick<'a>>,
    /// Sum of the chosen payloads.
    best_total: u64,
    /// Whether every non-zero segment has a candidate.
    complete: bool,
}

/// Chooses the best candidate of each segment of member `i` (the smallest; ties keep bsdiff;
/// the wide-window zstd candidate when strictly smaller) and logs them in `r`
/// (`segment_log`, and per method the candidate sizes summed in `candidates`).
fn pick_segments<'a>(
    i: usize,
    segs: &'a [segment::Segment],
    diffs: &mut Diffs,
    r: &mut MemberReport,
) -> SegmentPicks<'a> {
    let mut picks: Vec<Pick<'_>> = Vec::new();
    let mut sums: HashMap<Method, u64> = HashMap::new();
    let mut best_total = 0u64;
    let mut complete = true;
    for (k, seg) in segs.iter().enumerate() {
        let mut cands = diffs.found.remove(&(i, k)).unwrap_or_default();
        for (m, d) in &cands {
            *sums.entry(*m).or_default() += d.len() as u64;
        }
        cands.sort_by_key(|(m, d)| (d.len(), *m != Method::Bsdiff));
        let mut window = seg.window;
        let mut log_window = seg.window;
        let mut pick = cands.first().cloned();
        let wide_cand = diffs.wide.remove(&(i, k));
        if let Some(wd) = &wide_cand {
            let better = match &pick {
                None => true,
                Some((_, d)) => wd.len() < d.len(),
            };
            if better {
                window = diffs.wide_windows.get(&(i, k)).copied();
                log_window = window;
                pick = Some((Method::Zstd, wd.clone()));
            }
        }
        let mut logged: Vec<(Method, u64)> =
            cands.iter().map(|(m, d)| (*m, d.len() as u64)).collect();
        if let Some(wd) = &wide_cand {
            logged.push((Method::Zstd, wd.len() as u64));
        }
        r.segment_log.push(SegmentLog {
            start: seg.start,
            len: seg.len,
            window: log_window,
            candidates: logged,
            chosen: pick.as_ref().map(|(m, _)| *m),
        });
        match &pick {
            Some((_, d)) => best_total += d.len() as u64,
            None if seg.zeros => {}
            None => complete = false,
        }
        picks.push((pick, window, seg));
    }
    let mut sums: Vec<(Method, u64)> = sums.into_iter().collect();
    sums.sort_by_key(|(m, n)| (*n, *m != Method::Bsdiff));
    r.candidates = sums;
    SegmentPicks {
        picks,
        best_total,
        complete,
    }
}

impl Assembler<'_> {
    /// A `slice` recipe of the source at `offset` producing `bytes`; returns its item.
    fn source_slice(&mut self, offset: u64, bytes: &[u8]) -> Item {
        let item = item_of(bytes);
        self.asm.recipe(
            RecipeKind::Slice,
            &item,
            vec![offset],
            vec![self.src.item.clone()],
        );
        item
    }

    /// The item of basis `bs`: a slice of the source, decompressed (`zstd_decompression` or
    /// `zlib_decompression`) when the basis is the decoded content; made once per basis.
    fn basis_item(&mut self, bs: &Basis) -> Item {
        let key = (bs.member, bs.decompressed);
        if let Some(it) = self.basis_items.get(&key) {
            return it.clone();
        }
        let src = self.src;
        let sm = &src.members[bs.member];
        let raw_item = self.source_slice(sm.data_offset, &src.swu.payload(sm));
        let it = if bs.decompressed {
            let unz = item_of(&self.s_raw[&bs.member]);
            let (kind, numbers) = if src.zst[bs.member] {
                (RecipeKind::ZstdDecompression, vec![])
            } else {
                (RecipeKind::ZlibDecompression, vec![ZlibInit::Gzip as u64])
            };
            self.asm.recipe(kind, &unz, numbers, vec![raw_item]);
            unz
        } else {
            raw_item
        };
        self.basis_items.insert(key, it.clone());
        it
    }

    /// Emits the recipes of target member `i`'s payload (plan `plan`) and adds it to the
    /// target's parts, recording the strategy and cost in `r`.
    pub(super) fn member(
        &mut self,
        i: usize,
        plan: &Plan,
        payload: &[u8],
        diffs: &mut Diffs,
        r: &mut MemberReport,
    ) -> ToolResult<()> {
        match plan {
            Plan::Remainder(why) => {
                self.asm.literal(payload);
                r.strategy = Strategy::Remainder(why.clone());
                r.cost = payload.len() as u64;
            }
            Plan::Slice { source_offset } => {
                let item = self.source_slice(*source_offset, payload);
                self.asm.part(item);
                r.strategy = Strategy::SourceSlice;
            }
            Plan::Build(b) => self.built_member(i, b, payload, diffs, r)?,
        }
        Ok(())
    }

    /// A member built from its content: the content is produced (same as the basis, from
    /// the file-aware image plan, or from segment deltas) and then compressed or rebuilt into
    /// the payload. A content no delta makes smaller than the payload goes to the remainder.
    fn built_member(
        &mut self,
        i: usize,
        b: &BuildPlan,
        payload: &[u8],
        diffs: &mut Diffs,
        r: &mut MemberReport,
    ) -> ToolResult<()> {
        let basis = b.basis.as_ref().map(|bs| self.basis_item(bs));
        let content_item = item_of(&b.content);
        let same = basis.as_ref().is_some_and(|bi| bi.same_as(&content_item));
        let planned_image = diffs.images.remove(&i);
        let segs = diffs.segments.remove(&i).unwrap_or_default();
        let picked = pick_segments(i, &segs, diffs, r);
        let image_cost = planned_image.as_ref().map(|(g, _)| image::payload_bytes(g));
        let usable = same
            || image_cost.is_some()
            || (picked.complete && !segs.is_empty() && picked.best_total < payload.len() as u64);
        if !usable {
            self.asm.literal(payload);
            r.strategy = Strategy::Remainder("no smaller delta".into());
            r.cost = payload.len() as u64;
            return Ok(());
        }
        if same {
            r.strategy = Strategy::SameContent;
        } else if let Some((graph, stats)) = planned_image {
            let root = image::emit(&graph, &mut self.asm, basis.as_ref().expect("basis"));
            if !root.same_as(&content_item) {
                return Err(fail(&r.name, "image plan does not rebuild the image"));
            }
            r.cost = image_cost.unwrap_or(0);
            r.candidates = vec![(Method::Zstd, r.cost)];
            r.strategy = Strategy::Files;
            r.image = Some(stats);
        } else {
            self.segment_deltas(b, basis.as_ref(), &content_item, picked.picks, r);
            r.segments = segs.len();
        }
        match &b.rebuild {
            Some(pieces) => self.rebuilt_payload(b, pieces, payload, &content_item, r),
            None => {
                let part = self.compressed_payload(b, payload, content_item);
                self.asm.part(part);
                if let Some(zstdrebuild::ZstdRecipe::Rebuild { blob, .. }) = &b.zstd {
                    r.cost += blob.len() as u64;
                }
            }
        }
        Ok(())
    }

    /// The content of `b` from its segments' chosen deltas (`all_zeros` for zero segments,
    /// each delta against its basis window), chained when there are several; sets the
    /// strategy and adds the payload bytes to the cost.
    fn segment_deltas(
        &mut self,
        b: &BuildPlan,
        basis: Option<&Item>,
        content_item: &Item,
        picks: Vec<Pick<'_>>,
        r: &mut MemberReport,
    ) {
        let mut parts = Vec::new();
        let mut methods: Vec<Method> = Vec::new();
        for (pick, window, seg) in picks {
            let bytes = b.content.slice(seg.start, seg.len).expect("segment");
            let seg_item = if parts.is_empty() && seg.len == b.content.len() as u64 {
                content_item.clone()
            } else {
                item_of(&bytes)
            };
            if seg.zeros {
                self.asm
                    .recipe(RecipeKind::AllZeros, &seg_item, vec![], vec![]);
                parts.push(seg_item);
                continue;
            }
            let (method, delta) = pick.expect("complete");
            let window_item = self.window_item(b, basis, window);
            if window_item.as_ref().is_some_and(|w| w.same_as(&seg_item)) {
                parts.push(seg_item); // the window already is this segment
                continue;
            }
            let asset = self.asm.inline_asset(&delta);
            let mut items = vec![asset];
            items.extend(window_item);
            let kind = match method {
                Method::Bsdiff => RecipeKind::BspatchDecompression,
                Method::Zstd => RecipeKind::ZstdDecompression,
            };
            self.asm.recipe(kind, &seg_item, vec![], items);
            r.cost += delta.len() as u64;
            if !methods.contains(&method) {
                methods.push(method);
            }
            parts.push(seg_item);
        }
        if !(parts.len() == 1 && parts[0].same_as(content_item)) {
            self.asm
                .recipe(RecipeKind::Chain, content_item, vec![], parts);
        }
        r.strategy = match methods.as_slice() {
            [m] => Strategy::Delta(*m),
            _ => Strategy::Mixed,
        };
    }

    /// The item of a segment's basis window `(offset, length)`: the basis itself when the
    /// window is all of it, otherwise a slice of it.
    fn window_item(
        &mut self,
        b: &BuildPlan,
        basis: Option<&Item>,
        window: Option<(u64, u64)>,
    ) -> Option<Item> {
        match (basis, window) {
            (Some(bi), Some((off, len))) if len == bi.length && off == 0 => Some(bi.clone()),
            (Some(bi), Some((off, len))) => {
                let bb = self
                    .src
                    .basis_bytes(self.s_raw, b.basis.as_ref().expect("basis"));
                let w = item_of(&bb[off as usize..(off + len) as usize]);
                self.asm
                    .recipe(RecipeKind::Slice, &w, vec![off], vec![bi.clone()]);
                Some(w)
            }
            _ => None,
        }
    }

    /// Extended format: the payload rebuilt piece by piece, literal pieces from the remainder
    /// and deflate streams by `deflate_reconstruct` of their plain text (a slice of the
    /// content) and corrections; adds the corrections to the cost.
    fn rebuilt_payload(
        &mut self,
        b: &BuildPlan,
        pieces: &[gzrebuild::Piece],
        payload: &[u8],
        content_item: &Item,
        r: &mut MemberReport,
    ) {
        for piece in pieces {
            match piece {
                gzrebuild::Piece::Literal(range) => self.asm.literal(&payload[range.clone()]),
                gzrebuild::Piece::Deflate {
                    plain,
                    stream,
                    codec,
                    corrections,
                } => {
                    let plain_item = if plain.len() == b.content.len() {
                        content_item.clone()
                    } else {
                        let it = item_of(&b.content[plain.clone()]);
                        self.asm.recipe(
                            RecipeKind::Slice,
                            &it,
                            vec![plain.start as u64],
                            vec![content_item.clone()],
                        );
                        it
                    };
                    let corrections_item = self.asm.inline_asset(corrections);
                    let stream_item = item_of(&payload[stream.clone()]);
                    self.asm.recipe(
                        RecipeKind::DeflateReconstruct,
                        &stream_item,
                        vec![codec.0, codec.1],
                        vec![plain_item, corrections_item],
                    );
                    self.asm.part(stream_item);
                    r.cost += corrections.len() as u64;
                }
            }
        }
    }

    /// The payload from the content: `zstd_compression_exact`, `zstd_reconstruct` or
    /// `zlib_compression` when the
    /// plan compresses it, otherwise the content itself.
    fn compressed_payload(&mut self, b: &BuildPlan, payload: &[u8], content_item: Item) -> Item {
        match (b.gz_level, &b.zstd) {
            (_, Some(zstdrebuild::ZstdRecipe::Exact(params))) => {
                let zst_item = item_of(payload);
                self.asm.recipe(
                    RecipeKind::ZstdCompressionExact,
                    &zst_item,
                    params.to_numbers(),
                    vec![content_item],
                );
                zst_item
            }
            (_, Some(zstdrebuild::ZstdRecipe::Rebuild { blob, .. })) => {
                let zst_item = item_of(payload);
                let blob_item = self.asm.inline_asset(blob);
                self.asm.recipe(
                    RecipeKind::ZstdReconstruct,
                    &zst_item,
                    vec![zr::CODEC_DFAST, zr::VERSION_1],
                    vec![content_item, blob_item],
                );
                zst_item
            }
            (Some(level), None) => {
                let gz_item = item_of(payload);
                let level_number = if level < 0 { 0xFFFF_FFFF } else { level as u64 };
                self.asm.recipe(
                    RecipeKind::ZlibCompression,
                    &gz_item,
                    vec![ZlibInit::Gzip as u64, level_number],
                    vec![content_item],
                );
                gz_item
            }
            (None, None) => content_item,
        }
    }
}

/// Stage 4 (assemble): the recipes of the whole target, member by member in archive order;
/// cpio headers, paddings and the trailer go to the remainder.
pub(super) fn assemble(
    src: &SourceSide,
    target_analysis: &TargetAnalysis,
    planned: &mut MemberPlans<'_>,
    mut diffs: Diffs,
) -> ToolResult<Assembled> {
    let target = &target_analysis.swu;
    let mut asm = Assembler {
        src,
        s_raw: &planned.s_raw,
        asm: Assembly::default(),
        basis_items: HashMap::new(),
    };
    let mut cursor = 0u64;
    let tdata = &target.data;
    for (i, (m, plan)) in planned.tmembers.iter().zip(&planned.plans).enumerate() {
        // Header chunk (and anything before it) from the remainder.
        asm.asm
            .literal(&tdata[cursor as usize..m.data_offset as usize]);
        let payload = target.payload(m);
        asm.member(i, plan, &payload, &mut diffs, &mut planned.reports[i])?;
        cursor = m.data_offset + m.data_len;
    }
    let mut asm = asm.asm;
    asm.literal(&tdata[cursor as usize..]);
    let remainder_size = asm.remainder_len() as u64;
    let inline_size = asm.inline_len() as u64;
    let builder = asm.finish(target_analysis.item.clone(), src.item.clone());
    Ok(Assembled {
        builder,
        remainder_size,
        inline_size,
    })
}
