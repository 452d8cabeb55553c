//! Stage 2 (analyse): how each target member is produced — a slice of the source, the
//! remainder, or built from its (decoded) content against the best-matching source basis; the
//! target's gzip/zstd members and the source bases are decoded in parallel.

use std::collections::HashMap;
use std::sync::Arc;

use adudiff_core::io::SharedBytes;

use crate::swu::cpio::CpioMember;
use crate::tool::gzip;

use super::progress::{self, Progress};
use super::source::SourceSide;
use super::target::{DecodedMember, RebuiltMember, ZstdMember};
use super::{
    gzrebuild, matching, pool, sha, zstdrebuild, DeltaFormat, MemberReport, Swu, TargetAnalysis,
    SMALL_MEMBER,
};

/// Content a delta is made against.
#[derive(Clone)]
pub(super) struct Basis {
    pub(super) member: usize,
    pub(super) decompressed: bool,
}

/// Plan for one target member's payload.
pub(super) enum Plan {
    Remainder(String),
    Slice { source_offset: u64 },
    Build(Box<BuildPlan>),
}

pub(super) struct BuildPlan {
    /// `Some(level)`: the payload is `zlib_compression(gzip, level)` of `content`.
    pub(super) gz_level: Option<i32>,
    /// Extended format: the payload is rebuilt piece by piece, its deflate streams by
    /// `deflate_reconstruct` of ranges of `content`.
    pub(super) rebuild: Option<Arc<Vec<gzrebuild::Piece>>>,
    /// Extended format: the payload is `zstd_compression_exact` of `content` with these
    /// parameters, or `zstd_reconstruct` of `content` with this structure.
    pub(super) zstd: Option<zstdrebuild::ZstdRecipe>,
    /// What must be produced (uncompressed content, or the payload itself).
    pub(super) content: SharedBytes,
    pub(super) basis: Option<Basis>,
}

/// Stage 2 (plan): how each target member is produced, with the decoded source bases.
pub(super) struct MemberPlans<'t> {
    pub(super) tmembers: Vec<&'t CpioMember>,
    pub(super) plans: Vec<Plan>,
    pub(super) reports: Vec<MemberReport>,
    pub(super) s_raw: HashMap<usize, SharedBytes>,
}

/// A target member before its content is decoded: settled already (`plan`), or to be built
/// from a basis (gzip or zstd members are decoded first).
struct PreMember {
    /// Settled without decoding: empty, unchanged, small or a signature.
    pub(super) plan: Option<Plan>,
    /// The payload is gzip.
    pub(super) gz: bool,
    /// The payload is one zstd frame.
    pub(super) zst: bool,
    /// The best-matching source member and the matching rule.
    pub(super) basis: Option<(usize, &'static str)>,
}

/// A decoding job's result (stage 2).
enum Decoded {
    /// A target gzip member decoded, and described for `deflate_reconstruct` (extended format,
    /// not reproducible by zlib).
    Target(usize, DecodedMember, RebuiltMember),
    /// A target zstd member decoded and its parameters searched (extended format).
    TargetZstd(usize, ZstdMember),
    /// A source basis decoded (gzip or zstd).
    Source(usize, Option<Vec<u8>>),
}

/// The decoded contents of stage 2, by member index.
#[derive(Default)]
struct DecodedContents {
    /// Target gzip members: content and reproducing zlib level.
    target_raw: HashMap<usize, (SharedBytes, Option<i32>)>,
    /// Target gzip members zlib does not reproduce, described for `deflate_reconstruct`.
    target_rebuilt: HashMap<usize, (SharedBytes, Arc<Vec<gzrebuild::Piece>>)>,
    /// Target zstd members (extended format).
    target_zstd: HashMap<usize, ZstdMember>,
    /// Decoded source bases.
    source_raw: HashMap<usize, SharedBytes>,
}

/// Uncompressed size of a member payload as far as its header or trailer tell: gzip ISIZE,
/// a zstd frame's content size, otherwise the stored length.
fn content_size(payload: &[u8], gz: bool, zst: bool, stored_len: u64) -> u64 {
    if gz {
        gz_isize(payload)
    } else if zst {
        zst_content_size(payload).unwrap_or(stored_len)
    } else {
        stored_len
    }
}

/// The source members as basis candidates (name and content size).
fn basis_candidates(src: &SourceSide) -> Vec<matching::Candidate<'_>> {
    src.members
        .iter()
        .zip(&src.gz)
        .zip(&src.zst)
        .map(|((m, gz), zst)| matching::Candidate {
            name: &m.name,
            size: content_size(&src.swu.payload(m), *gz, *zst, m.data_len),
        })
        .collect()
}

/// What can be settled about target member `m` before decoding anything.
fn pre_plan(
    m: &CpioMember,
    payload: &[u8],
    by_hash: &HashMap<[u8; 32], u64>,
    candidates: &[matching::Candidate<'_>],
) -> PreMember {
    let mut p = PreMember {
        plan: None,
        gz: false,
        zst: false,
        basis: None,
    };
    if m.data_len == 0 {
        p.plan = Some(Plan::Remainder("empty".into()));
    } else if let Some(&off) = by_hash.get(&sha(payload)) {
        p.plan = Some(Plan::Slice { source_offset: off });
    } else if m.data_len <= SMALL_MEMBER || m.name == "sw-description" {
        p.plan = Some(Plan::Remainder("small".into()));
    } else if m.name == "sw-description.sig" {
        p.plan = Some(Plan::Remainder("signature".into()));
    } else {
        p.gz = gzip::is_gzip(payload);
        p.zst = zstdrebuild::is_zstd(payload);
        let size = content_size(payload, p.gz, p.zst, m.data_len);
        p.basis = matching::best_basis(&m.name, size, candidates);
    }
    p
}

/// Source members used as a basis that must be decoded first (gzip or zstd), sorted, once each.
fn source_bases_to_decode(src: &SourceSide, pre: &[PreMember]) -> Vec<usize> {
    let mut needed: Vec<usize> = pre
        .iter()
        .filter_map(|p| p.basis.map(|(i, _)| i))
        .filter(|&i| src.gz[i] || src.zst[i])
        .collect();
    needed.sort_unstable();
    needed.dedup();
    needed
}

/// Stage 2's decoding jobs: target gzip members (with their zlib level, and in the extended
/// format their `deflate_reconstruct` description), target zstd frames (extended format) and
/// the source bases, each weighted by its cost.
fn decode_jobs<'j>(
    src: &'j SourceSide,
    target_analysis: &'j TargetAnalysis,
    tmembers: &[&CpioMember],
    pre: &[PreMember],
    src_needed: &[usize],
    format: DeltaFormat,
    counter: &progress::Counter,
) -> Vec<(u64, pool::Job<'j, Decoded>)> {
    let target = &target_analysis.swu;
    let mut jobs: Vec<(u64, pool::Job<'_, Decoded>)> = Vec::new();
    for (i, (p, m)) in pre.iter().zip(tmembers).enumerate() {
        if p.gz {
            let payload = target.payload(m);
            let counter = counter.clone();
            jobs.push((
                m.data_len,
                Box::new(move || {
                    let r = target_analysis.decoded(i, &payload);
                    // Extended format: what zlib does not reproduce travels as plain text and
                    // deflate corrections.
                    let rebuilt = match &r {
                        Some((_, None)) if format == DeltaFormat::Extended => {
                            target_analysis.rebuilt(i, &payload)
                        }
                        _ => None,
                    };
                    counter.add(payload.len() as u64);
                    Decoded::Target(i, r, rebuilt)
                }),
            ));
        }
    }
    for (i, (p, m)) in pre.iter().zip(tmembers).enumerate() {
        // Extended format: a zstd frame this library's libzstd makes travels as its content.
        if p.zst && format == DeltaFormat::Extended {
            let payload = target.payload(m);
            let counter = counter.clone();
            jobs.push((
                m.data_len * 4,
                Box::new(move || {
                    let r = target_analysis.zstd(i, &payload);
                    counter.add(payload.len() as u64);
                    Decoded::TargetZstd(i, r)
                }),
            ));
        }
    }
    for &si in src_needed {
        let payload = src.swu.payload(&src.members[si]);
        let counter = counter.clone();
        let zst = src.zst[si];
        jobs.push((
            payload.len() as u64,
            Box::new(move || {
                let r = if zst {
                    zstdrebuild::decode(&payload).ok()
                } else {
                    gzip::gunzip(&payload).ok()
                };
                counter.add(payload.len() as u64);
                Decoded::Source(si, r)
            }),
        ));
    }
    jobs
}

impl DecodedContents {
    /// Sorts the decoding jobs' results by kind (members that do not decode are left out).
    pub(super) fn collect(results: Vec<Decoded>) -> Self {
        let mut d = DecodedContents::default();
        for r in results {
            match r {
                Decoded::Target(i, Some((raw, level)), rebuilt) => {
                    d.target_raw.insert(i, (raw, level));
                    if let Some(rebuilt) = rebuilt {
                        d.target_rebuilt.insert(i, rebuilt);
                    }
                }
                Decoded::Target(_, None, _) => {}
                Decoded::TargetZstd(i, z) => {
                    d.target_zstd.insert(i, z);
                }
                Decoded::Source(i, Some(raw)) => {
                    d.source_raw.insert(i, SharedBytes::from_vec(raw));
                }
                Decoded::Source(_, None) => {}
            }
        }
        d
    }
}

/// Bytes of deflate corrections a member rebuilt by `deflate_reconstruct` carries.
fn correction_bytes(pieces: &[gzrebuild::Piece]) -> u64 {
    pieces
        .iter()
        .map(|p| match p {
            gzrebuild::Piece::Deflate { corrections, .. } => corrections.len() as u64,
            gzrebuild::Piece::Literal(_) => 0,
        })
        .sum()
}

/// The build plan of target member `i` (not settled before decoding), filling in its report:
/// what content is diffed (decoded gzip or zstd content, the plain text of a rebuilt gzip
/// member, or the payload itself), how the payload is made from it and against which basis.
fn build_plan(
    i: usize,
    p: &PreMember,
    m: &CpioMember,
    src: &SourceSide,
    target: &Swu,
    decoded: &mut DecodedContents,
    r: &mut MemberReport,
) -> Plan {
    let level = decoded.target_raw.get(&i).and_then(|(_, l)| *l);
    r.zlib_level = level;
    r.gzip_not_reproducible = p.gz && level.is_none();
    r.basis = p.basis.map(|(b, why)| (src.members[b].name.clone(), why));
    let mut zstd = None;
    match decoded.target_zstd.remove(&i) {
        Some((Some(content), Ok(params))) => {
            r.zstd_rebuilt = Some(params.describe());
            zstd = Some((content, params));
        }
        Some((_, Err(why))) => r.zstd_not_reproducible = Some(why),
        _ => {}
    }
    r.zstd_compressed = p.zst && zstd.is_none();
    let (content, gz_level, rebuild) = match (
        level,
        decoded.target_raw.get(&i),
        decoded.target_rebuilt.get(&i),
    ) {
        _ if zstd.is_some() => (zstd.as_ref().expect("some").0.clone(), None, None),
        (Some(l), Some((raw, _)), _) => (raw.clone(), Some(l), None),
        (None, _, Some((plain, pieces))) => {
            r.reconstructed = Some(correction_bytes(pieces));
            r.rebuilt_by = Some(gzrebuild::rebuilt_by(pieces));
            (plain.clone(), None, Some(pieces.clone()))
        }
        _ => (target.payload(m), None, None),
    };
    // A reproducible target is diffed uncompressed (against the uncompressed source
    // when it can be had); otherwise raw bytes against raw bytes.
    // (A zstd target carried compressed is diffed as its compressed bytes, against
    // the raw bytes of its basis.)
    let plain = gz_level.is_some() || rebuild.is_some() || zstd.is_some() || (!p.gz && !p.zst);
    let basis = p.basis.map(|(b, _)| Basis {
        member: b,
        decompressed: (src.gz[b] || src.zst[b]) && decoded.source_raw.contains_key(&b) && plain,
    });
    Plan::Build(Box::new(BuildPlan {
        gz_level,
        rebuild,
        zstd: zstd.map(|(_, params)| params),
        content,
        basis,
    }))
}

/// Stage 2 (analyse): how each target member is produced. Members settled without decoding
/// (empty, unchanged, small) are planned first; then target gzip/zstd members and the source
/// bases are decoded in parallel, and the remaining members get their build plans.
pub(super) fn plan_members<'t>(
    src: &SourceSide,
    target_analysis: &'t TargetAnalysis,
    threads: usize,
    progress: &Progress,
    format: DeltaFormat,
) -> MemberPlans<'t> {
    let target = &target_analysis.swu;
    let tarch = target.archive.as_ref().expect("target is cpio");
    let tmembers: Vec<&CpioMember> = tarch.files().collect();
    let candidates = basis_candidates(src);
    let pre: Vec<PreMember> = tmembers
        .iter()
        .map(|m| pre_plan(m, &target.payload(m), &src.by_hash, &candidates))
        .collect();

    // Decompress target gzip members (and find their level) and the source bases, in parallel.
    let src_needed = source_bases_to_decode(src, &pre);
    let total: u64 = pre
        .iter()
        .zip(&tmembers)
        .filter(|(p, _)| p.gz || (p.zst && format == DeltaFormat::Extended))
        .map(|(_, m)| m.data_len)
        .sum::<u64>()
        + src_needed
            .iter()
            .map(|&i| src.members[i].data_len)
            .sum::<u64>();
    let stage = progress.stage("analyse", total);
    let jobs = decode_jobs(
        src,
        target_analysis,
        &tmembers,
        &pre,
        &src_needed,
        format,
        &stage.counter,
    );
    let mut decoded = DecodedContents::collect(pool::run(threads, jobs));
    stage.finish();

    // Final plans.
    let mut reports: Vec<MemberReport> = Vec::new();
    let mut plans: Vec<Plan> = Vec::new();
    for (i, (p, m)) in pre.into_iter().zip(&tmembers).enumerate() {
        let mut r = MemberReport::new(&m.name, m.data_len);
        let plan = match p.plan {
            Some(plan) => plan,
            None => build_plan(i, &p, m, src, target, &mut decoded, &mut r),
        };
        reports.push(r);
        plans.push(plan);
    }
    MemberPlans {
        tmembers,
        plans,
        reports,
        s_raw: decoded.source_raw,
    }
}

/// Content size of a zstd frame, from its header (when it is there).
fn zst_content_size(zst: &[u8]) -> Option<u64> {
    zstd_safe::get_frame_content_size(zst).ok().flatten()
}

/// ISIZE of a gzip member (uncompressed length mod 2³²), from its trailer.
fn gz_isize(gz: &[u8]) -> u64 {
    if gz.len() < 18 {
        return 0;
    }
    u32::from_le_bytes(gz[gz.len() - 4..].try_into().expect("4 bytes")) as u64
}
