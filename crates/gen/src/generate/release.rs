//! `adudiff release`: from a target SWU and up to four source SWUs to an importable update — the
//! target (optionally recompressed and re-signed), one verified delta per source, and the
//! version 5.0 import manifest `<name>.importmanifest.json` naming them.
//!
//! The target is analysed once ([`TargetAnalysis`]) and shared by every source's generation;
//! sources are generated [`ReleaseOptions::jobs`] at a time (default from the available memory,
//! see [`default_jobs`]). Each delta is verified by applying it with the library's applier
//! (inside [`generate`]); a delta that is not smaller than the target is left out of
//! the manifest (devices on that source then download the full target) and reported.
//!
//! For a fleet where some devices run Microsoft's library: a source whose delta is extended
//! (written only where it is smaller than the standard one) gets a standard [`Fallback`] delta
//! listed right after it, with the same source hash, while the target's related files have
//! places left — the sources' own deltas first, then the fallbacks in source order
//! ([`ReleaseOptions::fallback`]; docs/RELEASE.md). A fallback is the standard delta the
//! source's own generation built to compare the extended one with
//! ([`generate_with_standard`]), so it costs no second generation.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Map, Value};

use super::import_manifest::{
    self, DeltaFile, FileInfo, ImportManifest, UpdateId, MAX_FILES, MAX_RELATED_FILES,
};
use super::manifest::hash_file;
use super::{
    generate, generate_with_standard, image, pool, DiffSettings, GenerateOptions, Generated,
    TargetAnalysis,
};
use crate::tool::error::{fail, ToolError, ToolResult};
use crate::tool::write_atomically;

pub use super::DeltaFormat;

/// Rough peak memory of one generation besides the inputs' sizes (bytes).
pub const JOB_MEMORY_BASE: u64 = 512 << 20;
/// Rough peak memory of one generation per byte of source plus target (decompressed images,
/// diff candidates, the delta and its verification).
pub const JOB_MEMORY_FACTOR: u64 = 6;

/// Sources generated at once by default: as many as fit in the available memory at
/// [`JOB_MEMORY_BASE`] + [`JOB_MEMORY_FACTOR`] × (largest source + target) each, at least one,
/// at most one per source and one per core.
pub fn default_jobs(sources: usize, largest_source: u64, target: u64) -> usize {
    let per_job = JOB_MEMORY_BASE + JOB_MEMORY_FACTOR * (largest_source + target);
    let by_memory = available_memory().map_or(1, |m| (m / per_job.max(1)) as usize);
    by_memory.clamp(1, sources.max(1)).min(pool::workers())
}

/// `MemAvailable` of /proc/meminfo, in bytes.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What `release` needs.
#[derive(Clone, Debug)]
pub struct ReleaseOptions {
    /// Target SWU (the update).
    pub target: PathBuf,
    /// Source SWUs (versions devices run now), 1 to 4.
    pub sources: Vec<PathBuf>,
    /// Output folder.
    pub out_dir: PathBuf,
    /// Update identity.
    pub update_id: UpdateId,
    /// Optional update description.
    pub description: Option<String>,
    /// Compatibility sets.
    pub compatibility: Vec<Vec<(String, String)>>,
    /// Step handler.
    pub handler: String,
    /// Step handler properties (e.g. `installedCriteria`).
    pub handler_properties: Map<String, Value>,
    /// Further payload files of the step (e.g. an install script), copied as they are.
    pub extra_files: Vec<PathBuf>,
    /// Delta format.
    pub format: DeltaFormat,
    /// Recompress the target (see [`crate::recompress`]) and ship the result.
    pub recompress: bool,
    /// Signing command for the recompressed target's sw-description.
    pub sign_command: Option<String>,
    /// Sources generated at once (0 = [`default_jobs`]).
    pub jobs: usize,
    /// Worker threads per generation (0 = cores / jobs).
    pub threads: usize,
    /// No progress output.
    pub quiet: bool,
    /// Diff tuning.
    pub settings: DiffSettings,
    /// Diff ext2/3/4 images file by file.
    pub files: bool,
    /// Tuning of the file-aware image planner.
    pub image: image::ImageSettings,
    /// With [`DeltaFormat::Extended`]: after each extended delta, ship a standard delta to the
    /// same target for devices on Microsoft's library, as far as the related files allow
    /// ([`Fallback`]; docs/RELEASE.md).
    pub fallback: bool,
}

/// Outcome for one source.
#[derive(Clone, Debug)]
pub struct SourceOutcome {
    /// Source path.
    pub source: PathBuf,
    /// Source size.
    pub source_size: u64,
    /// Source SHA-256.
    pub source_sha256: [u8; 32],
    /// Delta file name in the output folder (present only when shipped).
    pub delta_filename: String,
    /// Delta size (also when not shipped).
    pub delta_size: u64,
    /// Delta SHA-256 (shipped deltas).
    pub delta_sha256: Option<[u8; 32]>,
    /// Delta format.
    pub format: DeltaFormat,
    /// Wall-clock seconds of the generation (including verification).
    pub seconds: f64,
    /// Whether devices running Microsoft's libadudiffapi.so can apply the delta.
    pub microsoft_applies: bool,
    /// Whether the delta is in the manifest (false: not smaller than the target).
    pub shipped: bool,
    /// The standard fallback delta listed after an extended delta (see [`Fallback`]).
    pub fallback: Fallback,
}

/// A standard delta listed right after a source's extended delta in `relatedFiles`, with the
/// same source hash: the agent's delta download handler tries related files in order until one
/// applies, so a device on Microsoft's library, which refuses the extended delta with 30001,
/// applies this one instead of downloading the full image.
#[derive(Clone, Debug, PartialEq)]
pub enum Fallback {
    /// None needed: the source's delta is one Microsoft's library applies, or none is shipped.
    NotNeeded,
    /// Not asked for ([`ReleaseOptions::fallback`] off).
    NotAsked,
    /// No place left: the related files of the target went to the sources' own deltas and to
    /// the fallbacks of earlier sources (at most [`MAX_RELATED_FILES`]).
    NoPlace,
    /// The standard delta (this many bytes) is not smaller than the target: left out.
    NotSmaller(u64),
    /// Shipped.
    Shipped(FallbackDelta),
}

/// A shipped standard fallback delta.
#[derive(Clone, Debug, PartialEq)]
pub struct FallbackDelta {
    /// File name in the output folder.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256.
    pub sha256: [u8; 32],
    /// Seconds its source's generation spent building and verifying it (part of
    /// [`SourceOutcome::seconds`]: the extended generation builds the standard delta anyway, to
    /// compare sizes).
    pub seconds: f64,
}

/// What one kind of device on a source downloads to install the update, when the service
/// hands the related files to the agent in the manifest's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    /// Bytes downloaded in total.
    pub bytes: u64,
    /// The files, in the order downloaded.
    pub what: String,
}

impl SourceOutcome {
    /// What a device running this library downloads: the first delta, which it applies; the
    /// full target (`target_size` bytes) when no delta is shipped.
    pub fn download_this_library(&self, target_size: u64) -> Download {
        if !self.shipped {
            return full_image_only(target_size);
        }
        Download {
            bytes: self.delta_size,
            what: format!("the {} delta", self.format.name()),
        }
    }

    /// What a device running Microsoft's libadudiffapi.so 3.0.0 downloads: the agent downloads
    /// each related file of its source before handing it to the library, so an extended delta
    /// is downloaded, refused (30001, nothing written) and followed by the standard fallback,
    /// or by the full target when there is none.
    pub fn download_microsoft(&self, target_size: u64) -> Download {
        if !self.shipped {
            return full_image_only(target_size);
        }
        if self.microsoft_applies {
            return Download {
                bytes: self.delta_size,
                what: "the standard delta".into(),
            };
        }
        let refused = "the extended delta (refused: 30001), then";
        match &self.fallback {
            Fallback::Shipped(f) => Download {
                bytes: self.delta_size + f.size,
                what: format!("{refused} the standard fallback"),
            },
            _ => Download {
                bytes: self.delta_size + target_size,
                what: format!("{refused} the full image"),
            },
        }
    }
}

fn full_image_only(target_size: u64) -> Download {
    Download {
        bytes: target_size,
        what: "the full image (no delta)".into(),
    }
}

/// Outcome of a release.
#[derive(Clone, Debug)]
pub struct ReleaseReport {
    /// The shipped target in the output folder.
    pub target: FileInfo,
    /// Whether the target was recompressed (and changed by it).
    pub recompressed: bool,
    /// Per source, in the order given.
    pub sources: Vec<SourceOutcome>,
    /// Path of the written import manifest.
    pub manifest_path: PathBuf,
    /// The manifest.
    pub manifest: Value,
    /// Warnings (deltas left out, sources without a fallback, missing handler properties).
    pub warnings: Vec<String>,
}

fn file_name(p: &Path) -> ToolResult<String> {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| fail(p.display(), "no file name"))
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map_or("file".into(), |n| n.to_string_lossy().into_owned())
}

/// The manifest for `opts` with the given files, checked against the schema rules.
fn manifest_for(
    opts: &ReleaseOptions,
    target: FileInfo,
    extra_files: Vec<FileInfo>,
    deltas: Vec<DeltaFile>,
    created: String,
) -> ToolResult<Value> {
    let m = ImportManifest {
        update_id: opts.update_id.clone(),
        description: opts.description.clone(),
        compatibility: opts.compatibility.clone(),
        handler: opts.handler.clone(),
        handler_properties: opts.handler_properties.clone(),
        target,
        extra_files,
        deltas,
        created,
    }
    .to_json();
    let errors = import_manifest::validate(&m);
    if errors.is_empty() {
        Ok(m)
    } else {
        Err(ToolError(format!(
            "the import manifest would break Device Update's schema:\n  {}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        )))
    }
}

/// Checks what can be checked before any heavy work: counts, formats, the identity,
/// compatibility, handler and file sizes (through the manifest's schema rules, on a manifest with
/// the real sizes and placeholder hashes).
fn precheck(opts: &ReleaseOptions) -> ToolResult<()> {
    if opts.sources.is_empty() {
        return Err(fail("sources", "give at least one source .swu"));
    }
    if opts.sources.len() > MAX_RELATED_FILES {
        return Err(fail(
            "sources",
            format!(
                "{} given; Device Update allows at most {MAX_RELATED_FILES} related files (deltas) per file",
                opts.sources.len()
            ),
        ));
    }
    if 1 + opts.extra_files.len() > MAX_FILES {
        return Err(fail(
            "files",
            format!(
                "the target and {} more files; Device Update allows at most {MAX_FILES}",
                opts.extra_files.len()
            ),
        ));
    }
    opts.format.check_available()?;
    let size = |p: &Path| -> ToolResult<u64> {
        Ok(std::fs::metadata(p)
            .map_err(|e| fail(p.display(), e))?
            .len())
    };
    let info = |p: &Path| -> ToolResult<FileInfo> {
        Ok(FileInfo {
            filename: file_name(p)?,
            size: size(p)?,
            sha256: [0; 32],
        })
    };
    let target = info(&opts.target)?;
    let extra = opts
        .extra_files
        .iter()
        .map(|p| info(p))
        .collect::<ToolResult<Vec<_>>>()?;
    let mut deltas = Vec::new();
    for (i, s) in opts.sources.iter().enumerate() {
        size(s)?;
        deltas.push(DeltaFile {
            file: FileInfo {
                filename: format!("placeholder-{i}.delta"),
                size: 1,
                sha256: [0; 32],
            },
            source_sha256: [i as u8; 32],
        });
    }
    manifest_for(opts, target, extra, deltas, import_manifest::iso8601_utc(0)).map(|_| ())
}

/// Whether Microsoft's applier 3.0.0 reads the delta at `path`: standard format (v1/v2) without
/// `zstd_compression` recipes.
pub fn microsoft_applies(path: &Path) -> bool {
    use adudiff_core::format::{Format, RecipeKind};
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(bytes) = adudiff_core::io::SharedBytes::map_file(&f) else {
        return false;
    };
    adudiff_core::format::parse_delta(bytes).is_ok_and(|d| {
        matches!(d.format, Format::StandardV2 | Format::StandardV1BigEndian)
            && d.recipes
                .iter()
                .all(|r| r.kind != RecipeKind::ZstdCompression)
    })
}

/// A generation's result (with the standard delta built alongside an extended one, when asked
/// for: see [`generate_with_standard`]) and its wall-clock seconds.
type JobOutcome = (ToolResult<(Generated, Option<Generated>)>, f64);

/// Progress line on stderr (unless quiet).
fn note(quiet: bool, msg: &str) {
    if !quiet {
        eprintln!("adudiff release: {msg}");
    }
}

/// Copies (or recompresses) the target and copies the extra files into the output folder;
/// returns the shipped target's path, whether recompression changed it, and the extra files.
fn ship_files(opts: &ReleaseOptions) -> ToolResult<(PathBuf, bool, Vec<FileInfo>)> {
    let out = &opts.out_dir;
    let target_name = file_name(&opts.target)?;
    let shipped_target = out.join(&target_name);
    let same_file = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    let mut recompressed = false;
    if opts.recompress {
        note(
            opts.quiet,
            &format!("recompressing {}", opts.target.display()),
        );
        let input = if same_file(&opts.target, &shipped_target) {
            // Recompressing in place: read from a copy.
            let tmp = out.join(format!(".{target_name}.orig"));
            std::fs::copy(&opts.target, &tmp).map_err(|e| fail(tmp.display(), e))?;
            tmp
        } else {
            opts.target.clone()
        };
        let r = crate::recompress::recompress_file(
            &input,
            &shipped_target,
            opts.sign_command.as_deref(),
        );
        if input != opts.target {
            let _ = std::fs::remove_file(&input);
        }
        recompressed = r?.changed;
    } else if !same_file(&opts.target, &shipped_target) {
        std::fs::copy(&opts.target, &shipped_target)
            .map_err(|e| fail(shipped_target.display(), e))?;
    }
    let mut extra_infos = Vec::new();
    for p in &opts.extra_files {
        let name = file_name(p)?;
        let dest = out.join(&name);
        if !same_file(p, &dest) {
            std::fs::copy(p, &dest).map_err(|e| fail(dest.display(), e))?;
        }
        let (size, sha256) = hash_file(&dest)?;
        extra_infos.push(FileInfo {
            filename: name,
            size,
            sha256,
        });
    }
    Ok((shipped_target, recompressed, extra_infos))
}

/// Size and SHA-256 of each source, refusing a source identical to the target or to another
/// source.
fn hash_sources(
    opts: &ReleaseOptions,
    target_sha256: &[u8; 32],
) -> ToolResult<Vec<(u64, [u8; 32])>> {
    let hashes: Vec<ToolResult<(u64, [u8; 32])>> = std::thread::scope(|s| {
        let handles: Vec<_> = opts
            .sources
            .iter()
            .map(|p| s.spawn(move || hash_file(p)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("hash thread"))
            .collect()
    });
    let mut sources: Vec<(u64, [u8; 32])> = Vec::new();
    for (i, h) in hashes.into_iter().enumerate() {
        let (size, sha) = h?;
        let label = opts.sources[i].display();
        if sha == *target_sha256 {
            return Err(fail(label, "is identical to the target; nothing to update"));
        }
        if let Some(j) = sources.iter().position(|(_, s)| *s == sha) {
            return Err(fail(
                label,
                format!(
                    "is identical to source {} ({}); give each source once",
                    j + 1,
                    opts.sources[j].display()
                ),
            ));
        }
        sources.push((size, sha));
    }
    Ok(sources)
}

/// Delta file names, per source: `<source stem>-to-<target stem><suffix>.delta`, unique among
/// `taken` (which they join).
fn delta_names(opts: &ReleaseOptions, suffix: &str, taken: &mut Vec<String>) -> Vec<String> {
    let mut names = Vec::new();
    for s in &opts.sources {
        let base = format!("{}-to-{}{suffix}", stem(s), stem(&opts.target));
        let mut name = format!("{base}.delta");
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{base}-{n}.delta");
            n += 1;
        }
        taken.push(name.clone());
        names.push(name);
    }
    names
}

/// What every generation of a release shares.
struct Generations<'a> {
    opts: &'a ReleaseOptions,
    analysis: &'a std::sync::Arc<TargetAnalysis>,
    shipped_target: &'a Path,
    /// Size and SHA-256 per source.
    sources: &'a [(u64, [u8; 32])],
}

impl Generations<'_> {
    /// Generates the delta of each `(source index, output name)` in [`ReleaseOptions::format`],
    /// as many at a time as [`ReleaseOptions::jobs`] (or [`default_jobs`]) allows; results in
    /// the order given. With `standard_names` (by source index), an extended delta comes with
    /// the standard one built alongside it, written under that name (see
    /// [`generate_with_standard`]).
    fn run(&self, work: &[(usize, String)], standard_names: Option<&[String]>) -> Vec<JobOutcome> {
        let opts = self.opts;
        let format = opts.format;
        let largest = self.sources.iter().map(|(s, _)| *s).max().unwrap_or(0);
        let jobs = if opts.jobs == 0 {
            default_jobs(work.len(), largest, self.analysis.size())
        } else {
            opts.jobs.min(work.len()).max(1)
        };
        let threads = if opts.threads == 0 {
            (pool::workers() / jobs).max(1)
        } else {
            opts.threads
        };
        note(
            opts.quiet,
            &format!(
                "generating {} {} delta(s), {jobs} at a time, {threads} thread(s) each",
                work.len(),
                format.name()
            ),
        );
        let total = opts.sources.len();
        let jobs_list: Vec<(u64, pool::Job<'_, JobOutcome>)> = work
            .iter()
            .map(|(i, name)| {
                let (i, src) = (*i, &opts.sources[*i]);
                let g = GenerateOptions {
                    source: src.clone(),
                    target: self.shipped_target.to_path_buf(),
                    output: opts.out_dir.join(name),
                    log_dir: None,
                    work_dir: None,
                    settings: opts.settings,
                    threads,
                    quiet: opts.quiet || jobs > 1,
                    files: opts.files,
                    image: opts.image,
                    format,
                    target_analysis: Some(self.analysis.clone()),
                };
                let standard_output = standard_names.map(|names| opts.out_dir.join(&names[i]));
                let quiet = opts.quiet;
                let job: pool::Job<'_, _> = Box::new(move || {
                    let label =
                        format!("[{}/{total}] {} ({})", i + 1, src.display(), format.name());
                    note(quiet, &format!("{label}: generating"));
                    let t = Instant::now();
                    let r = match &standard_output {
                        Some(path) => generate_with_standard(&g, path),
                        None => generate(&g).map(|written| (written, None)),
                    };
                    let secs = t.elapsed().as_secs_f64();
                    let what = match &r {
                        Ok((written, standard)) => {
                            let mut what = match written {
                                Generated::Written(rep) => {
                                    format!("verified, {} bytes", rep.delta_size)
                                }
                                Generated::NotSmaller(rep) => {
                                    format!("{} bytes, not smaller than the target", rep.delta_size)
                                }
                            };
                            if let Some(standard) = standard {
                                what += &format!(
                                    "; standard delta for a fallback {} bytes",
                                    standard.report().delta_size
                                );
                            }
                            what
                        }
                        Err(e) => format!("failed: {e}"),
                    };
                    note(quiet, &format!("{label}: {what} ({secs:.1} s)"));
                    (r, secs)
                });
                (self.sources[i].0, job)
            })
            .collect();
        pool::run(jobs, jobs_list)
    }
}

/// The failures of `results` (with their sources) as one error, if any.
fn no_failures(
    opts: &ReleaseOptions,
    work: &[(usize, String)],
    results: &[JobOutcome],
) -> ToolResult<()> {
    let failures: Vec<String> = work
        .iter()
        .zip(results)
        .filter_map(|((i, _), (r, _))| {
            r.as_ref()
                .err()
                .map(|e| format!("{}: {e}", opts.sources[*i].display()))
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(ToolError(format!(
            "no manifest written; delta generation failed:\n  {}",
            failures.join("\n  ")
        )))
    }
}

/// The sources' own deltas: generated, hashed, and the ones not smaller than the target left
/// out (with a warning); second, per source, the standard delta built alongside an extended one
/// (written under its name in `fallback_names` when smaller than the target), when fallbacks are
/// asked for.
fn source_deltas(
    gens: &Generations<'_>,
    names: &[String],
    fallback_names: &[String],
    warnings: &mut Vec<String>,
) -> ToolResult<(Vec<SourceOutcome>, Vec<Option<Generated>>)> {
    let opts = gens.opts;
    let work: Vec<(usize, String)> = names.iter().cloned().enumerate().collect();
    let with_standard = opts.fallback && opts.format == DeltaFormat::Extended;
    let results = gens.run(&work, with_standard.then_some(fallback_names));
    no_failures(opts, &work, &results)?;
    let mut outcomes = Vec::new();
    let mut standards = Vec::new();
    for (i, (r, seconds)) in results.into_iter().enumerate() {
        let (r, standard) = r?;
        standards.push(standard);
        let src = &opts.sources[i];
        let mut o = SourceOutcome {
            source: src.clone(),
            source_size: gens.sources[i].0,
            source_sha256: gens.sources[i].1,
            delta_filename: names[i].clone(),
            delta_size: 0,
            delta_sha256: None,
            format: opts.format,
            seconds,
            microsoft_applies: false,
            shipped: false,
            fallback: Fallback::NotNeeded,
        };
        match r {
            Generated::NotSmaller(rep) => {
                o.delta_size = rep.delta_size;
                warnings.push(format!(
                    "{}: the delta ({} bytes) is not smaller than the target ({} bytes); left out of the manifest, so devices on this version download the full target",
                    src.display(),
                    rep.delta_size,
                    rep.target_size
                ));
            }
            Generated::Written(rep) => {
                o.format = rep.format;
                let path = opts.out_dir.join(&names[i]);
                let (size, sha256) = hash_file(&path)?;
                o.delta_size = size;
                o.delta_sha256 = Some(sha256);
                o.microsoft_applies = microsoft_applies(&path);
                o.shipped = true;
                if !o.microsoft_applies && !opts.fallback {
                    o.fallback = Fallback::NotAsked;
                }
            }
        }
        outcomes.push(o);
    }
    Ok((outcomes, standards))
}

/// Standard fallbacks for the sources whose shipped delta Microsoft's library refuses, in
/// source order, while related-file places are left (a fallback not smaller than the target
/// takes no place, and the next source is tried); the sources left without one are named in
/// a warning. A source's fallback is its entry in `standards`: the standard delta its own
/// generation built and verified alongside the extended one, written under its name in `names`
/// when smaller than the target; a written one left without a place is removed.
fn add_fallbacks(
    opts: &ReleaseOptions,
    outcomes: &mut [SourceOutcome],
    names: &[String],
    mut standards: Vec<Option<Generated>>,
    warnings: &mut Vec<String>,
) -> ToolResult<()> {
    let mut places = MAX_RELATED_FILES - outcomes.iter().filter(|o| o.shipped).count();
    let mut left = Vec::new();
    for (i, o) in outcomes.iter_mut().enumerate() {
        let Some(standard) = standards[i].take() else {
            continue;
        };
        if !o.shipped || o.microsoft_applies {
            remove_unused(opts, &names[i], &standard)?;
            continue;
        }
        if places == 0 {
            remove_unused(opts, &names[i], &standard)?;
            o.fallback = Fallback::NoPlace;
            left.push(opts.sources[i].display().to_string());
            continue;
        }
        let seconds = standard.report().timings.iter().map(|(_, s)| s).sum();
        o.fallback = match standard {
            Generated::NotSmaller(rep) => {
                warnings.push(format!(
                    "{}: the standard fallback ({} bytes) is not smaller than the target ({} bytes); left out, so devices on this version running Microsoft's library download the full target after the extended delta",
                    opts.sources[i].display(),
                    rep.delta_size,
                    rep.target_size
                ));
                Fallback::NotSmaller(rep.delta_size)
            }
            Generated::Written(_) => {
                let (size, sha256) = hash_file(&opts.out_dir.join(&names[i]))?;
                places -= 1;
                Fallback::Shipped(FallbackDelta {
                    filename: names[i].clone(),
                    size,
                    sha256,
                    seconds,
                })
            }
        };
    }
    if !left.is_empty() {
        warnings.push(format!(
            "no place for a standard fallback of {} (Device Update allows {MAX_RELATED_FILES} related files per file; each source's own delta comes first, fallbacks follow in source order): devices on these versions running Microsoft's library download the full target after the extended delta",
            left.join(", ")
        ));
    }
    Ok(())
}

/// Removes the standard delta `standard` written as `name` when it is not shipped.
fn remove_unused(opts: &ReleaseOptions, name: &str, standard: &Generated) -> ToolResult<()> {
    if let Generated::Written(_) = standard {
        let path = opts.out_dir.join(name);
        std::fs::remove_file(&path).map_err(|e| fail(path.display(), e))?;
    }
    Ok(())
}

/// The related files of the target: per source in order, its delta, then its fallback.
fn related_files(outcomes: &[SourceOutcome]) -> Vec<DeltaFile> {
    let mut deltas = Vec::new();
    for o in outcomes.iter().filter(|o| o.shipped) {
        deltas.push(DeltaFile {
            file: FileInfo {
                filename: o.delta_filename.clone(),
                size: o.delta_size,
                sha256: o.delta_sha256.unwrap_or_default(),
            },
            source_sha256: o.source_sha256,
        });
        if let Fallback::Shipped(f) = &o.fallback {
            deltas.push(DeltaFile {
                file: FileInfo {
                    filename: f.filename.clone(),
                    size: f.size,
                    sha256: f.sha256,
                },
                source_sha256: o.source_sha256,
            });
        }
    }
    deltas
}

/// Runs a release (see the module documentation).
pub fn release(opts: &ReleaseOptions) -> ToolResult<ReleaseReport> {
    precheck(opts)?;
    let created = import_manifest::created_date_time()?;
    let out = &opts.out_dir;
    std::fs::create_dir_all(out).map_err(|e| fail(out.display(), e))?;
    let mut warnings = Vec::new();
    let (shipped_target, recompressed, extra_infos) = ship_files(opts)?;

    // ---- analyse the target once; hash the sources
    let t = Instant::now();
    let target_name = file_name(&opts.target)?;
    note(opts.quiet, &format!("analysing target {target_name}"));
    let analysis = std::sync::Arc::new(TargetAnalysis::open(&shipped_target)?);
    let target_info = FileInfo {
        filename: target_name.clone(),
        size: analysis.size(),
        sha256: analysis.sha256(),
    };
    let sources = hash_sources(opts, &target_info.sha256)?;
    note(
        opts.quiet,
        &format!(
            "target analysed, sources hashed in {:.1} s",
            t.elapsed().as_secs_f64()
        ),
    );

    // ---- the deltas, then the fallbacks
    let mut taken: Vec<String> = std::iter::once(target_name)
        .chain(extra_infos.iter().map(|f| f.filename.clone()))
        .collect();
    let names = delta_names(opts, "", &mut taken);
    let fallback_names = delta_names(opts, "-standard", &mut taken);
    let gens = Generations {
        opts,
        analysis: &analysis,
        shipped_target: &shipped_target,
        sources: &sources,
    };
    let (mut outcomes, standards) = source_deltas(&gens, &names, &fallback_names, &mut warnings)?;
    add_fallbacks(
        opts,
        &mut outcomes,
        &fallback_names,
        standards,
        &mut warnings,
    )?;
    let deltas = related_files(&outcomes);
    if deltas.is_empty() {
        warnings.push(
            "no delta is smaller than the target: the manifest names the target alone".into(),
        );
    }
    if opts.handler.starts_with("microsoft/swupdate:")
        && !opts.handler_properties.contains_key("installedCriteria")
    {
        warnings.push(format!(
            "handler {} without an installedCriteria property: the agent cannot tell whether the update is installed",
            opts.handler
        ));
    }

    // ---- manifest
    let manifest = manifest_for(opts, target_info.clone(), extra_infos, deltas, created)?;
    let manifest_path = out.join(format!("{}.importmanifest.json", opts.update_id.name));
    write_atomically(
        &manifest_path,
        import_manifest::to_pretty_json(&manifest).as_bytes(),
    )?;
    Ok(ReleaseReport {
        target: target_info,
        recompressed,
        sources: outcomes,
        manifest_path,
        manifest,
        warnings,
    })
}
