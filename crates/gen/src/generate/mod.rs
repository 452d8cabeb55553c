//! Delta generation: SWU-aware planning, member diffing (bsdiff / zstd patch-from), recipe
//! assembly, writing (standard v2) and verification with the crate's own applier.
//!
//! Pipeline: parse both cpio archives → members whose bytes exist in the source become slices of
//! it → gzip members that stock zlib reproduces become `zlib_compression` of their content →
//! changed content is diffed against the best-matching source content (bsdiff and zstd in
//! parallel, the smaller wins) → cpio headers, paddings, small and undiffable members go to the
//! remainder → write → apply and compare SHA-256 → size check.

pub mod build;
pub mod diff;
pub mod ext4;
pub mod gzrebuild;
pub mod image;
pub mod import_manifest;
pub mod manifest;
pub mod matching;
pub mod pool;
pub mod progress;
pub mod release;
pub mod segment;
pub mod zstdrebuild;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::swu::cpio::{CpioArchive, CpioMember};
use crate::tool::gzip;
use crate::tool::{fail, write_atomically, ToolError, ToolResult};
use adudiff_core::codec::zstd_reconstruct as zr;
use adudiff_core::format::writer::{item_of, write_delta_to_vec};
use adudiff_core::format::{hex, Item, RecipeKind, ZlibInit};
use adudiff_core::io::SharedBytes;
use build::Assembly;
pub use diff::{DiffSettings, Method};
use progress::Progress;

/// Basis window of the second-chance zstd candidate for poorly matching segments (the applier's
/// zstd window limit with a prefix is 2^28 for prefix + segment).
pub const WIDE_WINDOW: u64 = 200 << 20;

/// zstd level of the extra candidate for contents diffed in one piece.
pub const STRONG_ZSTD_LEVEL: i32 = 19;

/// Members up to this size that changed go to the remainder without diffing (upstream: 512).
pub const SMALL_MEMBER: u64 = 512;

/// Which delta format a generation writes ([`GenerateOptions::format`]; [`generate`] makes the
/// choice).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeltaFormat {
    /// PAMZ standard v2: what Microsoft's libadudiffapi.so 3.0.0 applies.
    #[default]
    Standard,
    /// The extended format (docs/EXTENDED-FORMAT.md): gzip data that zlib does not reproduce
    /// travels as plain text + corrections, so the target needs no recompression or
    /// re-signing. Only this library applies it; devices on Microsoft's library fail with
    /// 30001 and fall back to the full image. A delta that needs none of its recipes, or is
    /// not smaller with them, is written as standard v2.
    Extended,
}

impl DeltaFormat {
    /// Parses `standard` or `extended`.
    pub fn parse(s: &str) -> ToolResult<Self> {
        match s {
            "standard" => Ok(DeltaFormat::Standard),
            "extended" => Ok(DeltaFormat::Extended),
            other => Err(fail(
                "--format",
                format!("{other:?} is not a delta format (standard, extended)"),
            )),
        }
    }

    /// Name as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DeltaFormat::Standard => "standard",
            DeltaFormat::Extended => "extended",
        }
    }

    /// Whether this build can generate the format.
    pub fn check_available(self) -> ToolResult<()> {
        Ok(())
    }
}

/// What [`generate`] needs: the inputs and output, the delta format, and optionally the target
/// already analysed.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Source SWU (what the device has).
    pub source: PathBuf,
    /// Target SWU (what the device must end up with).
    pub target: PathBuf,
    /// Where the delta goes.
    pub output: PathBuf,
    /// Folder for `diff.json` (none = no log).
    pub log_dir: Option<PathBuf>,
    /// Folder for temporary files (none = next to the output).
    pub work_dir: Option<PathBuf>,
    /// Candidate tuning.
    pub settings: DiffSettings,
    /// Threads for diffing (0 = all cores).
    pub threads: usize,
    /// No progress bars.
    pub quiet: bool,
    /// Diff ext2/3/4 images file by file (see [`image`]).
    pub files: bool,
    /// Tuning of the file-aware image planner.
    pub image: image::ImageSettings,
    /// The delta format. The extended format is written only when it is smaller: when the
    /// delta uses an extended recipe, the standard delta is generated too and wins ties.
    pub format: DeltaFormat,
    /// `target` already analysed, shared between several generations to the same target (as
    /// `adudiff release` does); `None`: [`generate`] analyses `target` itself.
    pub target_analysis: Option<Arc<TargetAnalysis>>,
}

/// How one target member is produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Identical bytes exist in the source: a slice of it.
    SourceSlice,
    /// Stored in the deflated remainder (small, new, or no usable delta).
    Remainder(String),
    /// A delta of the (uncompressed) content.
    Delta(Method),
    /// The content is identical to the basis (only the compression differs).
    SameContent,
    /// Segment-wise deltas mixing bsdiff and zstd.
    Mixed,
    /// File-aware delta of an ext2/3/4 image (see [`image`]).
    Files,
}

/// Per-member outcome.
#[derive(Clone, Debug)]
pub struct MemberReport {
    /// Member name.
    pub name: String,
    /// Stored size in the target SWU.
    pub size: u64,
    /// zlib level that reproduces the member (gzip members only).
    pub zlib_level: Option<i32>,
    /// Whether the member is gzip that zlib does not reproduce.
    pub gzip_not_reproducible: bool,
    /// Extended format: the member travels as plain text + this many bytes of deflate
    /// corrections (`deflate_reconstruct`).
    pub reconstructed: Option<u64>,
    /// Extended format: how the member's deflate streams are rebuilt ("GNU gzip -9" when
    /// re-encoded exactly, "preflate" when corrections are needed).
    pub rebuilt_by: Option<String>,
    /// The member is a zstd frame and changed, and it travels as compressed bytes (the
    /// standard format has no recipe that rebuilds a zstd frame; in the extended format,
    /// [`MemberReport::zstd_not_reproducible`] says why it was not rebuilt).
    pub zstd_compressed: bool,
    /// Extended format: the member is a zstd frame rebuilt from its content by
    /// `zstd_compression_exact` with these parameters (described).
    pub zstd_rebuilt: Option<String>,
    /// Extended format: why this library's libzstd does not rebuild the member's zstd frame.
    pub zstd_not_reproducible: Option<String>,
    /// Source member used as basis, with the matching rule.
    pub basis: Option<(String, &'static str)>,
    /// Candidate sizes (method, bytes).
    pub candidates: Vec<(Method, u64)>,
    /// Chosen strategy.
    pub strategy: Strategy,
    /// Bytes this member costs in the delta (payload or remainder bytes before deflate).
    pub cost: u64,
    /// Number of segments the content was diffed in.
    pub segments: usize,
    /// CPU seconds spent per candidate method.
    pub cpu_seconds: Vec<(Method, f64)>,
    /// Per segment: (start, length, window, candidate sizes, chosen method; none = all zeros).
    pub segment_log: Vec<SegmentLog>,
    /// File-aware image statistics, when the member was diffed file by file.
    pub image: Option<image::ImageStats>,
}

/// What happened to one segment of a member's content.
#[derive(Clone, Debug)]
pub struct SegmentLog {
    /// Offset in the content.
    pub start: u64,
    /// Length.
    pub len: u64,
    /// Basis window (offset, length).
    pub window: Option<(u64, u64)>,
    /// Candidate sizes.
    pub candidates: Vec<(Method, u64)>,
    /// Chosen method (none: all zeros or the window itself).
    pub chosen: Option<Method>,
}

/// Outcome of a generation.
#[derive(Clone, Debug)]
pub struct GenerateReport {
    /// Source size.
    pub source_size: u64,
    /// Target size.
    pub target_size: u64,
    /// Delta size.
    pub delta_size: u64,
    /// Delta SHA-256 (hex).
    pub delta_sha256: String,
    /// Uncompressed remainder size.
    pub remainder_size: u64,
    /// Inline assets size.
    pub inline_size: u64,
    /// Per member, in target order.
    pub members: Vec<MemberReport>,
    /// Stage timings (name, seconds).
    pub timings: Vec<(String, f64)>,
    /// Number of recipes written.
    pub recipe_count: usize,
    /// The format the delta was written in.
    pub format: DeltaFormat,
}

impl GenerateReport {
    /// gzip members zlib cannot reproduce and that travel compressed (the target would need
    /// `adudiff recompress`, or the extended format).
    pub fn not_reproducible(&self) -> Vec<&str> {
        self.members
            .iter()
            .filter(|m| m.gzip_not_reproducible && m.reconstructed.is_none())
            .map(|m| m.name.as_str())
            .collect()
    }

    /// zstd members that travel compressed (changed, and not rebuilt from their content).
    pub fn zstd_carried_compressed(&self) -> Vec<&str> {
        self.members
            .iter()
            .filter(|m| m.zstd_compressed)
            .map(|m| m.name.as_str())
            .collect()
    }
}

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

/// Content a delta is made against.
#[derive(Clone)]
struct Basis {
    member: usize,
    decompressed: bool,
}

/// Plan for one target member's payload.
enum Plan {
    Remainder(String),
    Slice { source_offset: u64 },
    Build(Box<BuildPlan>),
}

struct BuildPlan {
    /// `Some(level)`: the payload is `zlib_compression(gzip, level)` of `content`.
    gz_level: Option<i32>,
    /// Extended format: the payload is rebuilt piece by piece, its deflate streams by
    /// `deflate_reconstruct` of ranges of `content`.
    rebuild: Option<Arc<Vec<gzrebuild::Piece>>>,
    /// Extended format: the payload is `zstd_compression_exact` of `content` with these
    /// parameters, or `zstd_reconstruct` of `content` with this structure.
    zstd: Option<zstdrebuild::ZstdRecipe>,
    /// What must be produced (uncompressed content, or the payload itself).
    content: SharedBytes,
    basis: Option<Basis>,
}

type DiffOutcome = (usize, usize, Method, ToolResult<Vec<u8>>, f64);
/// A delta payload with the method that applies it.
type Candidate = (Method, Vec<u8>);
/// The chosen candidate of a segment, its basis window and the segment.
type Pick<'a> = (Option<Candidate>, Option<(u64, u64)>, &'a segment::Segment);

/// A target member decoded from gzip, with the zlib level that reproduces it (`None`: not
/// reproducible); `None` as a whole when the member does not decode.
type DecodedMember = Option<(SharedBytes, Option<i32>)>;

/// A gzip member that zlib does not reproduce described for `deflate_reconstruct`: its plain
/// text and pieces (`None`: the codec cannot describe it).
type RebuiltMember = Option<(SharedBytes, Arc<Vec<gzrebuild::Piece>>)>;

/// A target SWU read and analysed once, so that deltas from several sources to it
/// (`adudiff release`) share the work: the file mapping, the cpio parse, the target's identity
/// (length and SHA-256) and each gzip member's decompressed content and reproducing zlib level.
///
/// Members are decoded on first use by any generation (and only once, also when several
/// generations run in parallel); the decoded contents stay in memory as long as the analysis
/// lives, which a single generation would need anyway.
pub struct TargetAnalysis {
    swu: Swu,
    item: Item,
    decoded: Vec<OnceLock<DecodedMember>>,
    rebuilt: Vec<OnceLock<RebuiltMember>>,
    zstd: Vec<OnceLock<ZstdMember>>,
}

/// A zstd member decoded, with the parameters that make its frame again (`Err`: why it is not
/// rebuilt; the content is `None` when the member does not decode).
type ZstdMember = (Option<SharedBytes>, Result<zstdrebuild::ZstdRecipe, String>);

impl TargetAnalysis {
    /// Maps and parses the target SWU at `path` and hashes it.
    pub fn open(path: &Path) -> ToolResult<Self> {
        let data = map(path)?;
        if data.is_empty() {
            return Err(fail(path.display(), "empty target"));
        }
        let archive = CpioArchive::parse(&data)
            .map_err(|e| fail(path.display(), format!("not a cpio newc/crc SWU ({e})")))?;
        let members = archive.files().count();
        let item = item_of(&data);
        Ok(TargetAnalysis {
            swu: Swu {
                data,
                archive: Some(archive),
            },
            item,
            decoded: (0..members).map(|_| OnceLock::new()).collect(),
            rebuilt: (0..members).map(|_| OnceLock::new()).collect(),
            zstd: (0..members).map(|_| OnceLock::new()).collect(),
        })
    }

    /// Size of the target in bytes.
    pub fn size(&self) -> u64 {
        self.item.length
    }

    /// SHA-256 of the target.
    pub fn sha256(&self) -> [u8; 32] {
        self.item.sha256.expect("item_of hashes")
    }

    /// The gzip member at `index` described for `deflate_reconstruct`, computed on first use.
    fn rebuilt(&self, index: usize, payload: &[u8]) -> RebuiltMember {
        self.rebuilt[index]
            .get_or_init(|| {
                gzrebuild::analyse(payload)
                    .map(|r| (SharedBytes::from_vec(r.plain), Arc::new(r.pieces)))
            })
            .clone()
    }

    /// The zstd member at `index` decoded and its parameters searched, computed on first use.
    fn zstd(&self, index: usize, payload: &[u8]) -> ZstdMember {
        self.zstd[index]
            .get_or_init(|| match zstdrebuild::decode(payload) {
                Err(why) => (None, Err(why)),
                Ok(content) => {
                    let found = zstdrebuild::find_recipe(&content, payload);
                    (Some(SharedBytes::from_vec(content)), found)
                }
            })
            .clone()
    }

    /// The gzip member at `index` (in archive order) decoded, computed on first use.
    fn decoded(&self, index: usize, payload: &[u8]) -> DecodedMember {
        self.decoded[index]
            .get_or_init(|| {
                gzip::gunzip(payload).ok().map(|raw| {
                    let level = gzip::find_gzip_level(&raw, payload);
                    (SharedBytes::from_vec(raw), level)
                })
            })
            .clone()
    }
}

impl std::fmt::Debug for TargetAnalysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetAnalysis")
            .field("size", &self.size())
            .field("sha256", &hex(&self.sha256()))
            .finish_non_exhaustive()
    }
}

/// What a generation produced.
#[derive(Clone, Debug)]
pub enum Generated {
    /// The delta was verified and written to the output path.
    Written(GenerateReport),
    /// The delta was verified but is not smaller than the target, so it was not written.
    NotSmaller(GenerateReport),
}

impl Generated {
    /// The report of the written delta; a delta that was not written because it is not
    /// smaller than the target is an error saying so.
    pub fn written(self) -> ToolResult<GenerateReport> {
        match self {
            Generated::Written(r) => Ok(r),
            Generated::NotSmaller(r) => Err(ToolError(format!(
                "delta ({} bytes) is not smaller than the target archive ({} bytes); not written",
                r.delta_size, r.target_size
            ))),
        }
    }

    /// The report, whether the delta was written or not.
    pub fn report(&self) -> &GenerateReport {
        match self {
            Generated::Written(r) | Generated::NotSmaller(r) => r,
        }
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
        return finish_delta(opts, standard);
    }
    let extended = build_delta(opts, target_analysis, DeltaFormat::Extended)?;
    if extended.report.format == DeltaFormat::Standard {
        return finish_delta(opts, extended);
    }
    let mut standard = build_delta(opts, target_analysis, DeltaFormat::Standard)?;
    if standard.report.delta_size <= extended.report.delta_size {
        keep_zstd_findings(&mut standard.report, &extended.report);
        finish_delta(opts, standard)
    } else {
        finish_delta(opts, extended)
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

/// Stage 1 (parse): the source archive, its members, which are gzip, and where each payload
/// first occurs by SHA-256.
struct SourceSide {
    swu: Swu,
    item: Item,
    members: Vec<CpioMember>,
    gz: Vec<bool>,
    /// Which members are one zstd frame (their content is a basis, decoded by the standard
    /// `zstd_decompression` recipe on the device).
    zst: Vec<bool>,
    by_hash: HashMap<[u8; 32], u64>,
}

impl SourceSide {
    /// The bytes a delta is made against.
    fn basis_bytes(&self, s_raw: &HashMap<usize, SharedBytes>, b: &Basis) -> SharedBytes {
        if b.decompressed {
            s_raw[&b.member].clone()
        } else {
            self.swu.payload(&self.members[b.member])
        }
    }
}

/// Stage 2 (plan): how each target member is produced, with the decoded source bases.
struct MemberPlans<'t> {
    tmembers: Vec<&'t CpioMember>,
    plans: Vec<Plan>,
    reports: Vec<MemberReport>,
    s_raw: HashMap<usize, SharedBytes>,
}

/// Stage 3 (diff): the candidates of every segment and the file-aware image plans.
struct Diffs {
    segments: HashMap<usize, Vec<segment::Segment>>,
    images: HashMap<usize, (image::Graph, image::ImageStats)>,
    found: HashMap<(usize, usize), Vec<Candidate>>,
    wide: HashMap<(usize, usize), Vec<u8>>,
    wide_windows: HashMap<(usize, usize), (u64, u64)>,
}

/// Stage 4 (assemble): what the writer serializes.
struct Assembled {
    builder: adudiff_core::format::writer::DeltaBuilder,
    remainder_size: u64,
    inline_size: u64,
}

/// Proof that the delta was applied and reproduced the target (only [`verify`] makes one, and
/// [`finish`] writes nothing without one).
struct Verified;

fn parse_source(opts: &GenerateOptions, progress: &Progress) -> ToolResult<SourceSide> {
    let stage = progress.stage("parse", 0);
    let src = map(&opts.source)?;
    let source = Swu {
        archive: CpioArchive::parse(&src).ok(),
        data: src,
    };
    let source_item = item_of(&source.data);
    let src_members: Vec<CpioMember> = source
        .archive
        .as_ref()
        .map(|a| a.files().filter(|m| m.data_len > 0).cloned().collect())
        .unwrap_or_else(|| {
            vec![CpioMember {
                name: opts
                    .source
                    .file_name()
                    .map_or("source".into(), |n| n.to_string_lossy().into_owned()),
                header: Default::default(),
                header_offset: 0,
                header_len: 0,
                data_offset: 0,
                data_len: source.data.len() as u64,
                data_pad: 0,
            }]
        });
    let mut by_hash: HashMap<[u8; 32], u64> = HashMap::new();
    let src_gz: Vec<bool> = src_members
        .iter()
        .map(|m| gzip::is_gzip(&source.payload(m)))
        .collect();
    let src_zst: Vec<bool> = src_members
        .iter()
        .map(|m| zstdrebuild::is_zstd(&source.payload(m)))
        .collect();
    for m in &src_members {
        by_hash
            .entry(sha(&source.payload(m)))
            .or_insert(m.data_offset);
    }
    stage.finish();
    Ok(SourceSide {
        swu: source,
        item: source_item,
        members: src_members,
        gz: src_gz,
        zst: src_zst,
        by_hash,
    })
}

/// A target member before its content is decoded: settled already (`plan`), or to be built
/// from a basis (gzip or zstd members are decoded first).
struct PreMember {
    /// Settled without decoding: empty, unchanged, small or a signature.
    plan: Option<Plan>,
    /// The payload is gzip.
    gz: bool,
    /// The payload is one zstd frame.
    zst: bool,
    /// The best-matching source member and the matching rule.
    basis: Option<(usize, &'static str)>,
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
    fn collect(results: Vec<Decoded>) -> Self {
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

impl MemberReport {
    /// A report with nothing known yet but the member's name and stored size.
    fn new(name: &str, size: u64) -> Self {
        MemberReport {
            name: name.to_string(),
            size,
            zlib_level: None,
            gzip_not_reproducible: false,
            reconstructed: None,
            rebuilt_by: None,
            zstd_compressed: false,
            zstd_rebuilt: None,
            zstd_not_reproducible: None,
            basis: None,
            candidates: vec![],
            strategy: Strategy::Remainder(String::new()),
            cost: 0,
            segments: 0,
            cpu_seconds: vec![],
            segment_log: vec![],
            image: None,
        }
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
fn plan_members<'t>(
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
fn diff_members(
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

/// Stage 4's state: the recipes being assembled and the basis items made so far.
struct Assembler<'s> {
    src: &'s SourceSide,
    s_raw: &'s HashMap<usize, SharedBytes>,
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
    fn member(
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

    /// The payload from the content: `zstd_compression_exact` or `zlib_compression` when the
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
fn assemble(
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

/// `diff.json`: inputs, output, per-member strategy and timings.
fn write_log(dir: &Path, opts: &GenerateOptions, r: &GenerateReport) -> ToolResult<()> {
    use serde_json::json;
    std::fs::create_dir_all(dir).map_err(|e| fail(dir.display(), e))?;
    let members: Vec<_> = r
        .members
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "size": m.size,
                "strategy": strategy_text(&m.strategy),
                "zlib_level": m.zlib_level,
                "gzip_not_reproducible": m.gzip_not_reproducible,
                "zstd_rebuilt": m.zstd_rebuilt,
                "zstd_not_reproducible": m.zstd_not_reproducible,
                "basis": m.basis.as_ref().map(|(n, why)| json!({"name": n, "match": why})),
                "candidates": m.candidates.iter().map(|(k, s)| json!({"method": k.name(), "size": s})).collect::<Vec<_>>(),
                "cost": m.cost,
                "segments": m.segment_log.iter().map(|g| json!({
                    "start": g.start, "len": g.len,
                    "window": g.window.map(|(o, l)| json!({"offset": o, "len": l})),
                    "candidates": g.candidates.iter().map(|(k, s)| json!({"method": k.name(), "size": s})).collect::<Vec<_>>(),
                    "chosen": g.chosen.map(|c| c.name()),
                })).collect::<Vec<_>>(),
                "image": m.image.as_ref().map(|s| json!({
                    "files": s.files, "unchanged_files": s.unchanged_files,
                    "changed": {"files": s.changed.0, "bytes": s.changed.1, "payload": s.changed.2, "method": s.changed.3.map(|m| m.name())},
                    "new": {"files": s.new.0, "bytes": s.new.1, "payload": s.new.2},
                    "metadata": {"bytes": s.metadata.0, "payload": s.metadata.1, "method": s.metadata.2.map(|m| m.name())},
                    "regzipped_files": s.regzipped_files,
                    "reconstructed_files": {"count": s.reconstructed_files.0, "corrections": s.reconstructed_files.1},
                    "frames": {"count": s.frames.0, "payload": s.frames.1},
                    "seconds": {"index": s.seconds.0, "streams": s.seconds.1, "frames": s.seconds.2},
                })),
                "cpu_seconds": m.cpu_seconds.iter().map(|(k, s)| json!({"method": k.name(), "seconds": s})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let log = json!({
        "tool": concat!("adudiff ", env!("CARGO_PKG_VERSION")),
        "source": {"path": opts.source.display().to_string(), "size": r.source_size},
        "target": {"path": opts.target.display().to_string(), "size": r.target_size},
        "delta": {"path": opts.output.display().to_string(), "size": r.delta_size, "sha256": r.delta_sha256,
                  "recipes": r.recipe_count, "inline_assets": r.inline_size, "remainder_uncompressed": r.remainder_size},
        "settings": {"zstd_level": opts.settings.zstd_level, "bsdiff_max": opts.settings.bsdiff_max},
        "members": members,
        "timings_s": r.timings.iter().map(|(k, v)| json!({"stage": k, "seconds": v})).collect::<Vec<_>>(),
        "not_reproducible": r.not_reproducible(),
    });
    let path = dir.join("diff.json");
    let text = serde_json::to_string_pretty(&log).map_err(|e| fail(path.display(), e))?;
    std::fs::write(&path, text).map_err(|e| fail(path.display(), e))
}

/// Human-readable strategy.
pub fn strategy_text(s: &Strategy) -> String {
    match s {
        Strategy::SourceSlice => "unchanged (slice of source)".into(),
        Strategy::Remainder(why) if why.is_empty() => "remainder".into(),
        Strategy::Remainder(why) => format!("remainder ({why})"),
        Strategy::Delta(m) => format!("{} delta", m.name()),
        Strategy::SameContent => "same content, recompressed".into(),
        Strategy::Mixed => "bsdiff+zstd segments".into(),
        Strategy::Files => "ext4 file-aware".into(),
    }
}
