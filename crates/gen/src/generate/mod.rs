//! Delta generation: SWU-aware planning, member diffing (bsdiff / zstd patch-from), recipe
//! assembly, writing (standard v2) and verification with the crate's own applier.
//!
//! Pipeline: parse both cpio archives → members whose bytes exist in the source become slices of
//! it → gzip members that stock zlib reproduces become `zlib_compression` of their content →
//! changed content is diffed against the best-matching source content (bsdiff and zstd in
//! parallel, the smaller wins) → cpio headers, paddings, small and undiffable members go to the
//! remainder → write → apply and compare SHA-256 → size check.
//!
//! The stages live in their own modules: the target analysed once (`target`), stage 1 parse
//! (`source`), stage 2 analyse (`plan`), stage 3 diff (`candidates`), stage 4 assemble
//! (`assemble`); what is asked for and reported in `options` and `report`; this module runs
//! them, then writes and verifies.

mod assemble;
pub mod build;
mod candidates;
pub mod diff;
pub mod ext4;
pub mod gzrebuild;
pub mod image;
pub mod import_manifest;
pub mod manifest;
pub mod matching;
mod options;
mod plan;
pub mod pool;
pub mod progress;
pub mod release;
mod report;
pub mod segment;
mod source;
mod target;
pub mod zstdrebuild;

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::swu::cpio::{CpioArchive, CpioMember};
use crate::tool::{fail, write_atomically, ToolResult};
use adudiff_core::format::writer::{item_of, write_delta_to_vec};
use adudiff_core::format::{hex, Item};
use adudiff_core::io::SharedBytes;
use assemble::assemble;
use candidates::diff_members;
pub use diff::{DiffSettings, Method};
pub use options::{DeltaFormat, GenerateOptions};
use plan::plan_members;
use progress::Progress;
use report::write_log;
pub use report::{strategy_text, GenerateReport, Generated, MemberReport, SegmentLog, Strategy};
use source::parse_source;
pub use target::TargetAnalysis;

/// Basis window of the second-chance zstd candidate for poorly matching segments (the applier's
/// zstd window limit with a prefix is 2^28 for prefix + segment).
pub const WIDE_WINDOW: u64 = 200 << 20;

/// zstd level of the extra candidate for contents diffed in one piece.
pub const STRONG_ZSTD_LEVEL: i32 = 19;

/// Members up to this size that changed go to the remainder without diffing (upstream: 512).
pub const SMALL_MEMBER: u64 = 512;

fn map(path: &Path) -> ToolResult<SharedBytes> {
    let f = File::open(path).map_err(|e| fail(path.display(), e))?;
    SharedBytes::map_file(&f).map_err(|e| fail(path.display(), e))
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// An archive view: members with payload views, or the whole file as one member when the input
/// is not a cpio archive.
struct Swu {
    data: SharedBytes,
    archive: Option<CpioArchive>,
}

impl Swu {
    fn payload(&self, m: &CpioMember) -> SharedBytes {
        self.data
            .slice(m.data_offset, m.data_len)
            .expect("parsed bounds")
    }
}

/// Generates, verifies and writes the delta described by `opts` in `opts.format`, against
/// `opts.target_analysis` when given (otherwise `opts.target` is analysed here). A delta that is
/// not smaller than the target is verified and reported ([`Generated::NotSmaller`]) but not
/// written; [`Generated::written`] turns that into an error.
///
/// The extended format is written only when it is smaller: when the delta uses an extended
/// recipe, the standard delta is generated too and wins ties.
pub fn generate(opts: &GenerateOptions) -> ToolResult<Generated> {
    generate_delta(opts, None).map(|(written, _)| written)
}

/// [`generate`], and when the delta it chooses is extended, the standard delta it built and
/// verified to compare sizes with is finished too: written to `standard_output` when smaller
/// than the target (the same bytes as a [`DeltaFormat::Standard`] generation of the pair), and
/// returned second. A release's standard fallback for Microsoft's library so needs no second
/// generation. The second result is `None` when the delta chosen is standard (it then is the
/// standard delta). On error neither file is written.
pub fn generate_with_standard(
    opts: &GenerateOptions,
    standard_output: &Path,
) -> ToolResult<(Generated, Option<Generated>)> {
    generate_delta(opts, Some(standard_output))
}

/// [`generate`], keeping the standard delta built alongside an extended one that won when
/// `standard_output` is given (see [`generate_with_standard`]).
fn generate_delta(
    opts: &GenerateOptions,
    standard_output: Option<&Path>,
) -> ToolResult<(Generated, Option<Generated>)> {
    let opened;
    let target_analysis = match &opts.target_analysis {
        Some(analysis) => analysis.as_ref(),
        None => {
            opened = TargetAnalysis::open(&opts.target)?;
            &opened
        }
    };
    if opts.format == DeltaFormat::Standard {
        let standard = build_delta(opts, target_analysis, DeltaFormat::Standard)?;
        return Ok((finish_delta(opts, standard)?, None));
    }
    let extended = build_delta(opts, target_analysis, DeltaFormat::Extended)?;
    if extended.report.format == DeltaFormat::Standard {
        return Ok((finish_delta(opts, extended)?, None));
    }
    let mut standard = build_delta(opts, target_analysis, DeltaFormat::Standard)?;
    if standard.report.delta_size <= extended.report.delta_size {
        keep_zstd_findings(&mut standard.report, &extended.report);
        return Ok((finish_delta(opts, standard)?, None));
    }
    let written = finish_delta(opts, extended)?;
    let Some(output) = standard_output else {
        return Ok((written, None));
    };
    // The standard delta was verified by `build_delta` like the extended one; it is written
    // only when smaller than the target (then the extended one, smaller still, is written too).
    let to = GenerateOptions {
        output: output.to_path_buf(),
        log_dir: None,
        ..opts.clone()
    };
    match finish_delta(&to, standard) {
        Ok(standard) => Ok((written, Some(standard))),
        Err(e) => {
            // Nothing written on failure: the extended delta goes too.
            if matches!(written, Generated::Written(_)) {
                let _ = std::fs::remove_file(&opts.output);
            }
            Err(e)
        }
    }
}

/// What the extended run learnt about the zstd members stays in the standard report that won.
fn keep_zstd_findings(standard: &mut GenerateReport, extended: &GenerateReport) {
    for (s, e) in standard.members.iter_mut().zip(&extended.members) {
        if s.zstd_compressed {
            s.zstd_not_reproducible = match (&e.zstd_rebuilt, &e.zstd_not_reproducible) {
                (Some(_), _) => Some("rebuilt, but the extended delta was not smaller".into()),
                (None, why) => why.clone(),
            };
        }
    }
}

/// A verified delta, not written yet.
struct Built {
    report: GenerateReport,
    delta: Vec<u8>,
    verified: Verified,
}

/// Stage 6 for a built delta (see [`finish`]).
fn finish_delta(opts: &GenerateOptions, built: Built) -> ToolResult<Generated> {
    finish(opts, built.report, &built.delta, built.verified)
}

/// Stages 1–5: the delta in `format` (standard v2 when no extended recipe is used), verified.
fn build_delta(
    opts: &GenerateOptions,
    target_analysis: &TargetAnalysis,
    format: DeltaFormat,
) -> ToolResult<Built> {
    // The image planner rebuilds .gz files zlib does not reproduce only in the extended format.
    let mut with_format = opts.clone();
    with_format.image.extended = format == DeltaFormat::Extended;
    let opts = &with_format;
    let progress = Progress::new(opts.quiet);
    let mut timings = Vec::new();
    let threads = if opts.threads == 0 {
        pool::workers()
    } else {
        opts.threads
    };

    let t0 = Instant::now();
    let source = parse_source(opts, &progress)?;
    timings.push(("parse".to_string(), t0.elapsed().as_secs_f64()));

    let t1 = Instant::now();
    let mut planned = plan_members(&source, target_analysis, threads, &progress, format);
    timings.push(("analyse".to_string(), t1.elapsed().as_secs_f64()));

    let t2 = Instant::now();
    let diffs = diff_members(opts, &source, &mut planned, threads, &progress)?;
    timings.push(("diff".to_string(), t2.elapsed().as_secs_f64()));

    let t3 = Instant::now();
    let assembled = assemble(&source, target_analysis, &mut planned, diffs)?;
    let recipe_count = assembled.builder.recipes.len();
    let written_format = if assembled
        .builder
        .recipes
        .iter()
        .any(|r| r.kind.is_extended())
    {
        DeltaFormat::Extended
    } else {
        DeltaFormat::Standard
    };
    let delta = write_delta_to_vec(&assembled.builder)?;
    drop(assembled.builder);
    timings.push(("write".to_string(), t3.elapsed().as_secs_f64()));

    let t4 = Instant::now();
    let verified = verify(opts, &delta, &target_analysis.item, &progress)?;
    timings.push(("verify".to_string(), t4.elapsed().as_secs_f64()));

    let report = GenerateReport {
        source_size: source.swu.data.len() as u64,
        target_size: target_analysis.swu.data.len() as u64,
        delta_size: delta.len() as u64,
        delta_sha256: hex(&sha(&delta)),
        remainder_size: assembled.remainder_size,
        inline_size: assembled.inline_size,
        members: planned.reports,
        timings,
        recipe_count,
        format: written_format,
    };
    Ok(Built {
        report,
        delta,
        verified,
    })
}

/// Proof that the delta was applied and reproduced the target (only [`verify`] makes one, and
/// [`finish`] writes nothing without one).
struct Verified;

/// Stage 5 (verify): applies the delta with the library's applier and compares the result
/// with the target.
fn verify(
    opts: &GenerateOptions,
    delta: &[u8],
    target_item: &Item,
    progress: &Progress,
) -> ToolResult<Verified> {
    let stage = progress.stage("verify", 0);
    let work = match &opts.work_dir {
        Some(w) => w.clone(),
        None => adudiff_core::io::atomic::parent_dir(&opts.output),
    };
    std::fs::create_dir_all(&work).map_err(|e| fail(work.display(), e))?;
    let tmp = tempfile::tempdir_in(&work).map_err(|e| fail(work.display(), e))?;
    let delta_tmp = tmp.path().join("delta.tmp");
    let out_tmp = tmp.path().join("target.verify");
    std::fs::write(&delta_tmp, delta).map_err(|e| fail(delta_tmp.display(), e))?;
    adudiff_core::apply::apply_files(&opts.source, &delta_tmp, &out_tmp).map_err(|e| {
        fail(
            "verification",
            format!("applying the new delta failed: {e}; delta not written"),
        )
    })?;
    let produced = std::fs::read(&out_tmp).map_err(|e| fail(out_tmp.display(), e))?;
    if produced.len() as u64 != target_item.length || item_of(&produced) != *target_item {
        return Err(fail(
            "verification",
            "applying the new delta does not reproduce the target (SHA-256 differs); delta not written",
        ));
    }
    drop(produced);
    stage.finish();
    Ok(Verified)
}

/// Stage 6: the log, the size check and the output file.
fn finish(
    opts: &GenerateOptions,
    report: GenerateReport,
    delta: &[u8],
    _verified: Verified,
) -> ToolResult<Generated> {
    if let Some(dir) = &opts.log_dir {
        write_log(dir, opts, &report)?;
    }
    if report.delta_size >= report.target_size {
        return Ok(Generated::NotSmaller(report));
    }
    write_atomically(&opts.output, delta)?;
    Ok(Generated::Written(report))
}
