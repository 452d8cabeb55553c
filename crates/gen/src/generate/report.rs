//! What a generation reports: per member, how it is produced and what it costs; per delta, the
//! sizes, timings and format ([`GenerateReport`]); whether it was written ([`Generated`]); and
//! the `diff.json` log written from it.

use std::path::Path;

use crate::tool::{fail, ToolError, ToolResult};

use super::{image, DeltaFormat, GenerateOptions, Method};

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

impl MemberReport {
    /// A report with nothing known yet but the member's name and stored size.
    pub(super) fn new(name: &str, size: u64) -> Self {
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

/// `diff.json`: inputs, output, per-member strategy and timings.
pub(super) fn write_log(dir: &Path, opts: &GenerateOptions, r: &GenerateReport) -> ToolResult<()> {
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
