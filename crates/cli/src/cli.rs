//! The command line, declared with clap's derive: every subcommand, option, alias and default
//! that `adudiff` accepts, and the help text, usage errors, completions and man page derived
//! from them.
//!
//! Conventions (clap's and cargo's; tests/cli.rs checks each form): `--opt VALUE` and
//! `--opt=VALUE`; the last of a repeated single-value option or flag wins; upper-case value
//! names; an option never takes the next option as its value (`--out --quiet` is an error; a
//! value that starts with `-` is written `--description=-beta`); a number outside an option's
//! range is a usage error that names the range; sizes are whole MiB, in options named `…-mib`
//! (the earlier `--bsdiff-max`, `--segment-mb`, `--margin-mb` and `--files-frame-mb` are hidden
//! aliases); usage errors exit with status 2.

use std::ffi::OsStr;
use std::path::PathBuf;

use adudiff_gen::generate::image::ImageSettings;
use adudiff_gen::generate::import_manifest::DEFAULT_HANDLER;
use adudiff_gen::generate::{DeltaFormat, DiffSettings};
use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};

/// Examples shown after the top-level help.
const EXAMPLES: &str = "\
Examples:
  adudiff recompress v2.swu v2-repro.swu \"sh sign.sh\"
  adudiff generate v1.swu v2-repro.swu update.delta
  adudiff generate v1.swu v2-repro.swu update.delta work        (DiffGenTool 3.0.0 form)
  adudiff apply v1.swu update.delta out.swu
  adudiff dump update.delta
  adudiff manifest --provider Contoso v1.swu
  adudiff release --out rel --provider Contoso --name Toaster --version 2.0 \\
                  --compat manufacturer=Contoso,model=Toaster v2.swu v1.swu v1.5.swu
  adudiff completions bash > /etc/bash_completion.d/adudiff
  adudiff man --dir /usr/local/share/man/man1

Run `adudiff <command> --help` for details.";

/// Make, apply and inspect delta updates for Azure Device Update
///
/// Makes, applies and inspects the delta updates that Microsoft's libadudiffapi.so and this
/// project's drop-in replacement apply on devices, and turns build output into an importable
/// update (deltas + import manifest).
#[derive(Debug, Parser)]
#[command(
    name = "adudiff",
    version,
    arg_required_else_help = true,
    after_help = EXAMPLES
)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a verified standard-v2 delta from <SOURCE> to <TARGET>.
    ///
    /// Makes a standard-v2 delta that turns <SOURCE> into <TARGET>, verifies it with the
    /// library's applier (SHA-256 of the result must equal the target) and writes it to <DELTA>.
    ///
    /// Positional forms (DiffGenTool 3.0.0 compatible): with one folder after <DELTA>, it is the
    /// working folder and the log folder is <WORK_DIR>/logs/<n> (the smallest unused n); with
    /// two, they are the log folder and the working folder. --log-dir and --work-dir override
    /// the positional folders.
    #[command(
        args_override_self = true,
        override_usage = "\
adudiff generate [OPTIONS] <SOURCE> <TARGET> <DELTA>
       adudiff generate [OPTIONS] <SOURCE> <TARGET> <DELTA> <WORK_DIR>
       adudiff generate [OPTIONS] <SOURCE> <TARGET> <DELTA> <LOG_DIR> <WORK_DIR>",
        after_help = "Exit status: 0 delta written; 1 failure (including a delta not smaller \
                      than the target); 2 usage."
    )]
    Generate(GenerateArgs),

    /// From build output to an importable update: deltas from 1–4 sources + import manifest.
    ///
    /// Generates one delta per source (1 to 4 sources; the target is analysed once, sources run
    /// in parallel as memory allows), verifies each by applying it, and writes to <DIR> (--out): the
    /// target (recompressed with --recompress), the deltas (<source>-to-<target>.delta) and
    /// <name>.importmanifest.json (Device Update import manifest 5.0, checked against the
    /// schema's rules before it is written). A delta that is not smaller than the target is left
    /// out of the manifest with a warning: devices on that source download the target. Import
    /// with `az iot du update import` or the Azure portal, uploading every file of <DIR>.
    #[command(
        args_override_self = true,
        mut_arg("provider", |a| a.required(true)),
        mut_arg("name", |a| a.required(true)),
        mut_arg("version", |a| a.required(true)),
        mut_arg("compat", |a| a.required(true)),
        after_help = "SOURCE_DATE_EPOCH, when set, is the manifest's createdDateTime \
                      (reproducible releases).\n\
                      Exit status: 0 manifest written; 1 failure (nothing is written to the \
                      manifest); 2 usage."
    )]
    Release(ReleaseArgs),

    /// Re-gzip an SWU's images reproducibly (zlib level 9, memLevel 9, OS 3) and re-sign it.
    ///
    /// Re-gzips every gzip image listed in sw-description with zlib level 9, memLevel 9 and a
    /// fixed header (OS byte 3) so that deltas can rebuild it byte-exactly, updates the images'
    /// sha256 in sw-description (nothing else is re-formatted) and keeps the cpio newc/crc
    /// headers correct. With a signing command, `<command> <path>/sw-description
    /// <path>/sw-description.sig` is run through the shell and the .sig it writes is placed
    /// right after sw-description (added if missing); without one, a stale sw-description.sig
    /// is removed.
    #[command(after_help = "Exit status: 0 written; 1 failure; 2 usage.")]
    Recompress(RecompressArgs),

    /// Apply a delta with the library (the same code as libadudiffapi.so).
    ///
    /// Applies a delta with the library (same code as libadudiffapi.so); prints the error code
    /// and text and exits 1 on failure. No partial target is left behind.
    #[command(after_help = "Exit status: 0 target written; 1 failure; 2 usage.")]
    Apply(ApplyArgs),

    /// Print a delta as JSON: format, target/source items, recipes, blobs and sizes.
    Dump(DumpArgs),

    /// Print import-manifest data for a delta: relatedFiles properties or the whole manifest.
    ///
    /// Without --target and --delta: prints the import-manifest relatedFiles properties for a
    /// delta made against <SOURCE> (microsoft.sourceFileHashAlgorithm,
    /// microsoft.sourceFileHash = base64 SHA-256) and the path where the Device Update agent
    /// caches that source (/var/lib/adu/sdc/<provider>/sha256-<encoded hash>).
    ///
    /// With --target and --delta: prints the whole version 5.0 import manifest for <TARGET>
    /// with <DELTA> as its related file for <SOURCE> (files are hashed, nothing is
    /// generated), checked against Device Update's schema rules; --provider, --name, --version
    /// and --compat are then required, the other identity options are as for `adudiff release`.
    #[command(
        args_override_self = true,
        override_usage = "\
adudiff manifest [--provider <PROVIDER>] <SOURCE>
       adudiff manifest --target <TARGET> --delta <DELTA> --provider <PROVIDER> --name <NAME> \
--version <VERSION> --compat <NAME=VALUE,…> [IDENTITY OPTIONS] <SOURCE>"
    )]
    Manifest(ManifestArgs),

    /// Print a shell completion script for adudiff.
    ///
    /// Install it where the shell looks, for example:
    /// `adudiff completions bash > /etc/bash_completion.d/adudiff`,
    /// `adudiff completions zsh > "${fpath[1]}/_adudiff"`,
    /// `adudiff completions fish > ~/.config/fish/completions/adudiff.fish`.
    Completions(CompletionsArgs),

    /// Print adudiff's man page (roff), or write one page per command into a folder.
    ///
    /// `adudiff man | man -l -` shows it; `adudiff man --dir <DIR>` writes adudiff.1 and
    /// adudiff-<command>.1 for every command into <DIR> (e.g. /usr/local/share/man/man1).
    Man(ManArgs),
}

/// `adudiff generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What the device has
    #[arg(value_name = "SOURCE")]
    pub source: PathBuf,
    /// What the device must end up with
    #[arg(value_name = "TARGET")]
    pub target: PathBuf,
    /// Where the delta is written
    #[arg(value_name = "DELTA")]
    pub delta: PathBuf,
    /// Alone: DiffGenTool's working folder (log folder <WORK_DIR>/logs/<n>); followed by a work
    /// dir: the log folder
    #[arg(value_name = "LOG_DIR|WORK_DIR")]
    pub first_dir: Option<PathBuf>,
    /// The working folder, after the log folder
    #[arg(value_name = "WORK_DIR")]
    pub second_dir: Option<PathBuf>,
    /// Delta format
    #[arg(long, value_name = "FORMAT", value_parser = FormatParser, default_value = "standard")]
    pub format: DeltaFormat,
    /// Write diff.json there
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Temporary files (default: the delta's folder)
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// zstd level for patch-from candidates (1–22)
    #[arg(long, value_name = "N", value_parser = zstd_level_value(),
          default_value_t = DiffSettings::default().zstd_level)]
    pub zstd_level: i32,
    /// Skip bsdiff for segments/windows larger than this many MiB
    #[arg(long, value_name = "MIB", alias = "bsdiff-max", value_parser = mib_value(),
          default_value_t = mib(DiffSettings::default().bsdiff_max))]
    pub bsdiff_max_mib: u32,
    /// Diff large contents in segments of this many MiB (0 = whole)
    #[arg(long, value_name = "MIB", alias = "segment-mb", value_parser = mib_value(),
          default_value_t = mib(DiffSettings::default().segment_size))]
    pub segment_mib: u32,
    /// Basis window margin around each aligned segment, in MiB
    #[arg(long, value_name = "MIB", alias = "margin-mb", value_parser = mib_value(),
          default_value_t = mib(DiffSettings::default().segment_margin))]
    pub margin_mib: u32,
    /// qbsdiff's small-match threshold
    #[arg(long, value_name = "N",
          default_value_t = DiffSettings::default().bsdiff_small_match)]
    pub bsdiff_small_match: usize,
    /// Diff ext2/3/4 images as a whole instead of file by file
    #[arg(long)]
    pub no_files: bool,
    /// zstd level for changed files and metadata (1–22)
    #[arg(long, value_name = "N", value_parser = zstd_level_value(),
          default_value_t = ImageSettings::default().diff_level)]
    pub files_diff_level: i32,
    /// zstd level for new files (1–22)
    #[arg(long, value_name = "N", value_parser = zstd_level_value(),
          default_value_t = ImageSettings::default().new_level)]
    pub files_new_level: i32,
    /// zstd level of the image assembly frames (1–22)
    #[arg(long, value_name = "N", value_parser = zstd_level_value(),
          default_value_t = ImageSettings::default().frame_level)]
    pub files_frame_level: i32,
    /// Image bytes per assembly frame, in MiB (1–128)
    #[arg(long, value_name = "MIB", alias = "files-frame-mb",
          value_parser = clap::value_parser!(u32).range(1..=128),
          default_value_t = mib(ImageSettings::default().frame_size))]
    pub files_frame_mib: u32,
    /// Worker threads (0 = all cores)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// No progress bars
    #[arg(short, long)]
    pub quiet: bool,
}

/// `adudiff release`.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The update's identity and installation step.
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Output folder (created)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Delta format (written per source only where smaller than standard)
    #[arg(long, value_name = "FORMAT", value_parser = FormatParser, default_value = "standard")]
    pub format: DeltaFormat,
    /// With --format extended: no standard fallback delta after the extended ones (by default
    /// each source's extended delta is followed by a standard delta for devices on Microsoft's
    /// library, as long as the 4 related files of the update allow)
    #[arg(long)]
    pub no_fallback: bool,
    /// Recompress the target (as `adudiff recompress`) and ship that
    #[arg(long)]
    pub recompress: bool,
    /// Signing command for the recompressed sw-description (see `adudiff recompress`)
    #[arg(long, value_name = "COMMAND", requires = "recompress")]
    pub sign: Option<String>,
    /// Sources generated at once (0: by available memory, estimated as 512 MiB + 6 x (source +
    /// target size) per job)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub jobs: usize,
    /// Worker threads per generation (0 = cores / jobs)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// zstd level for patch-from candidates (1–22)
    #[arg(long, value_name = "N", value_parser = zstd_level_value(),
          default_value_t = DiffSettings::default().zstd_level)]
    pub zstd_level: i32,
    /// Diff ext2/3/4 images as a whole instead of file by file
    #[arg(long)]
    pub no_files: bool,
    /// No progress on stderr
    #[arg(short, long)]
    pub quiet: bool,
    /// The update
    #[arg(value_name = "TARGET")]
    pub target: PathBuf,
    /// Versions devices run now (1 to 4)
    #[arg(value_name = "SOURCE", required = true, num_args = 1..)]
    pub sources: Vec<PathBuf>,
}

/// Options naming the update (shared by `release` and the whole-manifest form of `manifest`).
/// All optional here; `release` makes the first four required, `manifest --target` requires
/// them.
#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// updateId.provider (letters, digits, '.', '-'; 1-64)
    #[arg(long, help_heading = "Identity", value_name = "PROVIDER")]
    pub provider: Option<String>,
    /// updateId.name (same rules); also names the manifest file
    #[arg(long, help_heading = "Identity", value_name = "NAME")]
    pub name: Option<String>,
    /// updateId.version (2-4 numbers, e.g. 1.2.0)
    #[arg(long, help_heading = "Identity", value_name = "VERSION")]
    pub version: Option<String>,
    /// One compatibility set (1-5 properties); repeat for more sets (≤ 10)
    #[arg(long, help_heading = "Identity", value_name = "NAME=VALUE,…", value_parser = parse_compat)]
    pub compat: Vec<CompatSet>,
    /// Update description (≤ 512 characters)
    #[arg(long, help_heading = "Identity", value_name = "TEXT")]
    pub description: Option<String>,
    /// Step handler
    #[arg(long, help_heading = "Identity", value_name = "HANDLER", default_value = DEFAULT_HANDLER)]
    pub handler: String,
    /// A string handler property; repeatable
    #[arg(long, help_heading = "Identity", value_name = "NAME=VALUE", value_parser = parse_property)]
    pub handler_property: Vec<(String, String)>,
    /// Handler properties as a JSON object (merged; later options win)
    #[arg(long, help_heading = "Identity", value_name = "JSON", value_parser = parse_properties)]
    pub handler_properties: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Shorthand for --handler-property installedCriteria=<s>
    #[arg(long, help_heading = "Identity", value_name = "CRITERIA")]
    pub installed_criteria: Vec<String>,
    /// Another payload file of the step (e.g. an install script); repeatable
    #[arg(long, help_heading = "Identity", value_name = "PATH")]
    pub file: Vec<PathBuf>,
}

/// `adudiff recompress`.
#[derive(Debug, Args)]
pub struct RecompressArgs {
    /// The SWU as built
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Where the recompressed SWU is written
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// Shell command that signs sw-description (one argument: quote it)
    #[arg(value_name = "SIGN_COMMAND")]
    pub sign: Option<String>,
}

/// `adudiff apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The file the device has
    #[arg(value_name = "SOURCE")]
    pub source: PathBuf,
    /// The delta
    #[arg(value_name = "DELTA")]
    pub delta: PathBuf,
    /// Where the result is written
    #[arg(value_name = "TARGET")]
    pub target: PathBuf,
}

/// `adudiff dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The delta to describe
    #[arg(value_name = "DELTA")]
    pub delta: PathBuf,
}

/// `adudiff manifest`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The update (whole-manifest form)
    #[arg(long, value_name = "TARGET",
          requires_all = ["delta", "provider", "name", "version", "compat"])]
    pub target: Option<PathBuf>,
    /// The delta from <SOURCE> to the target (whole-manifest form)
    #[arg(long, value_name = "DELTA", requires = "target")]
    pub delta: Option<PathBuf>,
    /// The update's identity and installation step.
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// The version the delta applies to
    #[arg(value_name = "SOURCE")]
    pub source: PathBuf,
}

/// `adudiff completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `adudiff man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write adudiff.1 and adudiff-<command>.1 into this folder instead of printing adudiff.1
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// One `--compat` set: `name=value` pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompatSet(pub Vec<(String, String)>);

/// `k=v[,k=v…]` (blank entries skipped, names and values trimmed).
fn parse_compat(v: &str) -> Result<CompatSet, String> {
    let mut set = Vec::new();
    for pair in v.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("expected name=value[,name=value…], got {pair:?}"))?;
        set.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(CompatSet(set))
}

/// `k=v` (split at the first `=`, nothing trimmed).
fn parse_property(v: &str) -> Result<(String, String), String> {
    v.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected name=value, got {v:?}"))
}

/// A JSON object.
fn parse_properties(v: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_str::<serde_json::Value>(v) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(format!("expected a JSON object, got {v:?}")),
    }
}

/// Bytes → whole MiB, for the defaults shown in the help.
fn mib(bytes: u64) -> u32 {
    u32::try_from(bytes >> 20).unwrap_or(u32::MAX)
}

/// The largest MiB value an option takes (1 TiB): far above any image, and its byte count
/// fits every platform's `u64` arithmetic with room to spare.
const MAX_MIB: i64 = 1 << 20;

/// A MiB option: 0 to [`MAX_MIB`]; anything else is a usage error that names the range.
fn mib_value() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(0..=MAX_MIB)
}

/// A zstd compression level option: 1–22; anything else is a usage error that names the range.
fn zstd_level_value() -> clap::builder::RangedI64ValueParser<i32> {
    clap::value_parser!(i32).range(1..=22)
}

/// `--format`: the library's [`DeltaFormat::parse`] (and its message), with the possible values
/// listed for the help and the completions.
#[derive(Clone, Debug)]
pub struct FormatParser;

impl TypedValueParser for FormatParser {
    type Value = DeltaFormat;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<DeltaFormat, clap::Error> {
        let text = value.to_string_lossy();
        DeltaFormat::parse(&text).map_err(|e| cmd.clone().error(ErrorKind::InvalidValue, e))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            [
                PossibleValue::new(DeltaFormat::Standard.name()).help(
                    "the format Microsoft's delta processor reads: applies on every device \
                     (Microsoft's libadudiffapi.so or this one)",
                ),
                PossibleValue::new(DeltaFormat::Extended.name()).help(
                    "the target as built (no recompress, no re-sign): gzip data zlib does not \
                     reproduce travels as text and is rebuilt exactly (GNU gzip re-encoded, \
                     others by deflate corrections), zstd frames this build's libzstd makes as \
                     their content. Only adudiffapi applies \
                     it; devices on Microsoft's library fall back to the full image. Written \
                     only where it is smaller than standard",
                ),
            ]
            .into_iter(),
        ))
    }
}
