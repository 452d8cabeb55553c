//! What a generation is asked for: the inputs and output, the delta format and the tuning.

use std::path::PathBuf;
use std::sync::Arc;

use crate::tool::{fail, ToolResult};

use super::{image, DiffSettings, TargetAnalysis};

/// Which delta format a generation writes ([`GenerateOptions::format`]; [`generate`](super::generate) makes the
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

/// What [`generate`](super::generate) needs: the inputs and output, the delta format, and optionally the target
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
    /// `adudiff release` does); `None`: [`generate`](super::generate) analyses `target` itself.
    pub target_analysis: Option<Arc<TargetAnalysis>>,
}
