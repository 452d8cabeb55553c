//! Stage 3 (diff): the file-aware plans of ext2/3/4 image members, and the bsdiff/zstd
//! candidates of every segment of the other changed contents, with a second zstd try against a
//! wide basis window for segments that matched poorly.

use std::collections::HashMap;
use std::time::Instant;

use adudiff_core::io::SharedBytes;

use crate::tool::{fail, ToolResult};

use super::plan::{Basis, BuildPlan, MemberPlans, Plan};
use super::progress::{self, Progress};
use super::source::SourceSide;
use super::{
    diff, ext4, image, pool, segment, sha, DiffSettings, GenerateOptions, MemberReport, Method,
    STRONG_ZSTD_LEVEL, WIDE_WINDOW,
};

type DiffOutcome = (usize, usize, Method, ToolResult<Vec<u8>>, f64);

/// A delta payload with the method that applies it.
pub(super) type Candidate = (Method, Vec<u8>);

/// Stage 3 (diff): the candidates of every segment and the file-aware image plans.
pub(super) struct Diffs {
    pub(super) segments: HashMap<usize, Vec<segment::Segment>>,
    pub(super) images: HashMap<usize, (image::Graph, image::ImageStats)>,
    pub(super) found: HashMap<(usize, usize), Vec<Candidate>>,
    pub(super) wide: HashMap<(usize, usize), Vec<u8>>,
    pub(super) wide_windows: HashMap<(usize, usize), (u64, u64)>,
}

/// Diff jobs of one stage-3 pass.
type DiffJobs<'a> = Vec<(u64, pool::Job<'a, DiffOutcome>)>;

/// A diff job's payload: member, segment, method, payload.
type DiffPayload = (usize, usize, Method, Vec<u8>);

/// Queues the diff candidates of every non-zero segment of member `i` (content `b.content`,
/// basis bytes `basis`): zstd at the configured level (and at [`STRONG_ZSTD_LEVEL`] when the
/// content is one segment), and bsdiff when the segment has a basis window small enough.
fn queue_segment_diffs<'a>(
    i: usize,
    b: &BuildPlan,
    basis: Option<&SharedBytes>,
    segs: &[segment::Segment],
    settings: &DiffSettings,
    counter: &progress::Counter,
    diff_jobs: &mut DiffJobs<'a>,
) {
    for (k, seg) in segs.iter().enumerate() {
        let content = b
            .content
            .slice(seg.start, seg.len)
            .expect("segment inside content");
        if seg.zeros {
            counter.add(seg.len * 2);
            continue;
        }
        let window = match (basis, seg.window) {
            (Some(bb), Some((off, len))) => Some(bb.slice(off, len).expect("window inside basis")),
            _ => None,
        };
        // Unsegmented contents (≤ 1.5 segments) also get a strong zstd try: cheap at that
        // size, and it wins on already-compressed payloads such as kernels.
        let mut levels = vec![settings.zstd_level];
        if segs.len() == 1 && settings.zstd_level < STRONG_ZSTD_LEVEL {
            levels.push(STRONG_ZSTD_LEVEL);
        }
        for level in levels {
            let counter = counter.clone();
            let (c, w) = (content.clone(), window.clone());
            diff_jobs.push((
                seg.len * 3 + window.as_ref().map_or(0, |w| w.len() as u64),
                Box::new(move || {
                    let t = Instant::now();
                    let r = diff::zstd_delta(&c, w.as_deref(), level, &counter);
                    (i, k, Method::Zstd, r, t.elapsed().as_secs_f64())
                }),
            ));
        }
        match window {
            Some(w)
                if seg.len <= settings.bsdiff_max && (w.len() as u64) <= settings.bsdiff_max =>
            {
                let counter = counter.clone();
                let small_match = settings.bsdiff_small_match;
                diff_jobs.push((
                    seg.len + w.len() as u64 * 2,
                    Box::new(move || {
                        let t = Instant::now();
                        let r = diff::bsdiff_delta(&content, &w, small_match, &counter);
                        (i, k, Method::Bsdiff, r, t.elapsed().as_secs_f64())
                    }),
                ));
            }
            _ => counter.add(seg.len),
        }
    }
}

/// Runs diff jobs and returns their payloads as `(member, segment, method, payload)` in job
/// order, adding each job's CPU time to `cpu`; the first failure names its member.
fn run_diff_jobs(
    threads: usize,
    jobs: DiffJobs<'_>,
    reports: &[MemberReport],
    cpu: &mut HashMap<(usize, Method), f64>,
) -> ToolResult<Vec<DiffPayload>> {
    let mut payloads = Vec::new();
    for (i, k, method, r, secs) in pool::run(threads, jobs) {
        *cpu.entry((i, method)).or_default() += secs;
        match r {
            Ok(bytes) => payloads.push((i, k, method, bytes)),
            Err(e) => return Err(fail(format!("{} ({})", reports[i].name, method.name()), e)),
        }
    }
    Ok(payloads)
}

/// The wide basis window `(offset, length)` a poorly matching segment gets a second zstd try
/// against: [`WIDE_WINDOW`] bytes (at most the basis) centred on its aligned window. `None`
/// when the segment matched well (best candidate under a quarter of it), has no window or its
/// window is not clearly smaller than the wide one.
fn wide_window(seg: &segment::Segment, best: Option<u64>, basis_len: u64) -> Option<(u64, u64)> {
    let (Some(best), Some((woff, wlen))) = (best, seg.window) else {
        return None;
    };
    if best * 4 < seg.len {
        return None;
    }
    let want = WIDE_WINDOW.min(basis_len);
    if want < wlen + wlen / 2 {
        return None;
    }
    let center = woff + wlen / 2;
    let lo = center.saturating_sub(want / 2).min(basis_len - want);
    Some((lo, want))
}

/// Stage 3 (diff): the file-aware plans of image members, and the diff candidates of every
/// segment of the other changed contents; then a second zstd try against a wide basis window
/// for segments that matched poorly in their aligned window.
pub(super) fn diff_members(
    opts: &GenerateOptions,
    src: &SourceSide,
    planned: &mut MemberPlans<'_>,
    threads: usize,
    progress: &Progress,
) -> ToolResult<Diffs> {
    let (plans, reports, s_raw) = (&planned.plans, &mut planned.reports, &planned.s_raw);
    let basis_bytes = |b: &Basis| src.basis_bytes(s_raw, b);

    let mut diff_jobs: DiffJobs<'_> = Vec::new();
    let mut segments: HashMap<usize, Vec<segment::Segment>> = HashMap::new();
    let mut images: HashMap<usize, (image::Graph, image::ImageStats)> = HashMap::new();
    let total: u64 = plans
        .iter()
        .map(|p| match p {
            Plan::Build(b) => b.content.len() as u64 * 2,
            _ => 0,
        })
        .sum();
    let stage = progress.stage("diff", total);
    for (i, plan) in plans.iter().enumerate() {
        let Plan::Build(b) = plan else { continue };
        let basis = b.basis.as_ref().map(&basis_bytes);
        if let Some(bb) = &basis {
            if bb.len() == b.content.len() && sha(bb) == sha(&b.content) {
                continue; // same content: no delta needed
            }
        }
        if let Some(bb) = &basis {
            if let Some(planned) = plan_image(&b.content, bb, opts, threads, &stage.counter)
                .map_err(|e| fail(&reports[i].name, e))?
            {
                images.insert(i, planned);
                continue;
            }
        }
        let segs = segment::split(&b.content, basis.as_deref(), &opts.settings);
        queue_segment_diffs(
            i,
            b,
            basis.as_ref(),
            &segs,
            &opts.settings,
            &stage.counter,
            &mut diff_jobs,
        );
        segments.insert(i, segs);
    }
    let mut found: HashMap<(usize, usize), Vec<Candidate>> = HashMap::new();
    let mut cpu: HashMap<(usize, Method), f64> = HashMap::new();
    for (i, k, method, bytes) in run_diff_jobs(threads, diff_jobs, reports, &mut cpu)? {
        found.entry((i, k)).or_default().push((method, bytes));
    }
    // Second pass: segments that matched poorly in their aligned window (major rewrites move
    // content far) get one more zstd try against a wide window of the basis.
    let mut wide_jobs: DiffJobs<'_> = Vec::new();
    let mut wide_windows: HashMap<(usize, usize), (u64, u64)> = HashMap::new();
    for (i, plan) in plans.iter().enumerate() {
        let (Plan::Build(b), Some(segs)) = (plan, segments.get(&i)) else {
            continue;
        };
        let Some(basis) = b.basis.as_ref().map(&basis_bytes) else {
            continue;
        };
        if segs.len() < 2 {
            continue;
        }
        for (k, seg) in segs.iter().enumerate() {
            let best = found
                .get(&(i, k))
                .and_then(|c| c.iter().map(|(_, d)| d.len() as u64).min());
            let Some((lo, want)) = wide_window(seg, best, basis.len() as u64) else {
                continue;
            };
            wide_windows.insert((i, k), (lo, want));
            let c = b.content.slice(seg.start, seg.len).expect("segment");
            let w = basis.slice(lo, want).expect("window");
            let level = opts.settings.zstd_level;
            let counter = stage.counter.clone();
            wide_jobs.push((
                seg.len + want,
                Box::new(move || {
                    let t = Instant::now();
                    let r = diff::zstd_delta(&c, Some(&w), level, &counter);
                    (i, k, Method::Zstd, r, t.elapsed().as_secs_f64())
                }),
            ));
        }
    }
    let mut wide: HashMap<(usize, usize), Vec<u8>> = HashMap::new();
    for (i, k, _, bytes) in run_diff_jobs(threads, wide_jobs, reports, &mut cpu)? {
        wide.insert((i, k), bytes);
    }
    for ((i, m), secs) in cpu {
        reports[i].cpu_seconds.push((m, secs));
    }
    stage.finish();
    Ok(Diffs {
        segments,
        images,
        found,
        wide,
        wide_windows,
    })
}

/// The file-aware plan of an image member, when both it and its basis are ext2/3/4 images
/// with the same block size (`None` otherwise, or when disabled).
fn plan_image(
    content: &[u8],
    basis: &[u8],
    opts: &GenerateOptions,
    threads: usize,
    progress: &progress::Counter,
) -> ToolResult<Option<(image::Graph, image::ImageStats)>> {
    if !opts.files {
        return Ok(None);
    }
    let (Ok(timg), Ok(simg)) = (ext4::parse(content), ext4::parse(basis)) else {
        return Ok(None);
    };
    image::plan(content, basis, &timg, &simg, &opts.image, threads, progress)
}
