//! High-level apply: source file + delta file → target file, in upstream's order of checks.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{code, Error, Result};
use crate::execute::output::{ensure_free_space, target_dir, PendingTarget};
use crate::execute::Executor;
use crate::format::model::Delta;
use crate::format::{self, legacy, Item, Recipe, RecipeKind};
use crate::io::SharedBytes;
use crate::plan;

/// Stack size of the apply worker thread: resolution and execution recurse over the recipe tree
/// (bounded depth), and the caller's thread may have a small stack.
const APPLY_STACK_SIZE: usize = 64 << 20;

/// How long each phase of a successful apply took, and what it handled.
#[derive(Clone, Debug, Default)]
pub struct ApplyReport {
    /// Mapping and parsing the delta.
    pub parse: Duration,
    /// Mapping and hashing the source.
    pub source_hash: Duration,
    /// Resolving the target (including legacy nested deltas).
    pub plan: Duration,
    /// Producing, verifying and writing the target.
    pub produce: Duration,
    /// Size of the target written.
    pub target_bytes: u64,
    /// Number of production steps in the plan.
    pub plan_nodes: usize,
}

impl std::fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes, {} steps; parse {:.3}s, source hash {:.3}s, plan {:.3}s, produce+write {:.3}s",
            self.target_bytes,
            self.plan_nodes,
            self.parse.as_secs_f64(),
            self.source_hash.as_secs_f64(),
            self.plan.as_secs_f64(),
            self.produce.as_secs_f64()
        )
    }
}

/// Applies the delta at `delta` to the file at `source`, writing `target` atomically.
///
/// Runs on a dedicated worker thread; a panic inside is reported as code 1, never propagated.
pub fn apply_files(source: &Path, delta: &Path, target: &Path) -> Result<()> {
    apply_files_with_report(source, delta, target).map(|_| ())
}

/// [`apply_files`], also reporting phase timings.
pub fn apply_files_with_report(source: &Path, delta: &Path, target: &Path) -> Result<ApplyReport> {
    let (source, delta, target) = (
        source.to_path_buf(),
        delta.to_path_buf(),
        target.to_path_buf(),
    );
    let worker = std::thread::Builder::new()
        .name("adudiff-apply".into())
        .stack_size(APPLY_STACK_SIZE)
        .spawn(move || std::panic::catch_unwind(|| apply_on_this_thread(&source, &delta, &target)))
        .map_err(|e| {
            Error::new(
                code::STANDARD_LIBRARY_EXCEPTION,
                format!("Failed to apply diff. Exception: cannot start worker thread: {e}"),
            )
        })?;
    match worker.join() {
        Ok(Ok(result)) => result,
        Ok(Err(payload)) | Err(payload) => Err(Error::new(
            code::STANDARD_LIBRARY_EXCEPTION,
            format!(
                "Failed to apply diff. Exception: internal error: {}",
                crate::error::panic_text(&*payload)
            ),
        )),
    }
}

/// Opens and maps an input file (upstream's 20300 on failure).
pub fn map_input(path: &Path) -> Result<SharedBytes> {
    let open_error = |e: std::io::Error| {
        Error::new(
            code::IO_BINARY_FILE_READER_FAILED_OPEN,
            format!(
                "Failed to open file: {}. errno: {}",
                path.display(),
                e.raw_os_error().unwrap_or(0)
            ),
        )
        .with_context(e.to_string())
    };
    let file = File::open(path).map_err(open_error)?;
    if file.metadata().map_err(open_error)?.is_dir() {
        return Err(open_error(std::io::Error::from_raw_os_error(libc::EISDIR)));
    }
    SharedBytes::map_file(&file).map_err(open_error)
}

/// Identity (length, SHA-256) of bytes.
pub fn identify(bytes: &[u8]) -> Item {
    Item::with_sha256(bytes.len() as u64, Sha256::digest(bytes).into())
}

/// The apply itself, on the calling thread.
pub fn apply_on_this_thread(source: &Path, delta: &Path, target: &Path) -> Result<ApplyReport> {
    #[cfg(feature = "fault-injection")]
    if delta.as_os_str().to_string_lossy().ends_with(".panic-test") {
        panic!("fault injection: forced panic for {}", delta.display());
    }
    let mut report = ApplyReport::default();
    let mut clock = Instant::now();
    let mut lap = |slot: &mut Duration| {
        *slot = clock.elapsed();
        clock = Instant::now();
    };
    let delta_bytes = map_input(delta)?;
    let parsed = format::parse_delta(delta_bytes)?;
    lap(&mut report.parse);

    let source_bytes = map_input(source)?;
    let source_item = identify(&source_bytes);
    source_bytes.release(0, source_bytes.len() as u64);
    if parsed.source.length != 0 && !parsed.source.same_as(&source_item) {
        return Err(Error::unresolvable(format!(
            "the source file {} is not the delta's source: expected {}, found {}",
            source.display(),
            parsed.source.describe(),
            source_item.describe()
        )));
    }

    lap(&mut report.source_hash);

    ensure_free_space(target, parsed.target.length)?;
    let pending = PendingTarget::create(target)?;
    let mut parsed = parsed;
    expand_legacy_nested(&mut parsed, &target_dir(target))?;
    let plan = crate::plan::plan(&parsed, &source_item)?;
    report.plan_nodes = plan.nodes.len();
    lap(&mut report.plan);

    // Building the target's stream materializes what needs random access; the executor (and its
    // cache) goes before the stream runs, so only the readers keep the materialized bytes alive,
    // each until it has finished.
    let stream =
        Executor::new(&plan, &parsed, source_bytes, target_dir(target)).stream(plan.root)?;
    pending.write_and_commit(stream, &parsed.target)?;
    report.target_bytes = parsed.target.length;
    lap(&mut report.produce);
    Ok(report)
}

/// Deepest nesting of legacy nested deltas (a nested delta containing nested deltas…).
pub const MAX_LEGACY_NESTING: usize = 8;

/// Most legacy nested deltas one delta may embed in total.
pub const MAX_LEGACY_NESTED_DELTAS: usize = 4096;

/// Merges every legacy `nested_diff_recipe` into `delta` (upstream does this at load time): the
/// embedded delta blob is produced from the delta alone, parsed, and its recipes and blobs join
/// the cookbook and pantry; its target stands for the recipe's result and its source for the
/// recipe's basis. Temporary files go to `temp_dir`.
pub fn expand_legacy_nested(delta: &mut Delta, temp_dir: &Path) -> Result<()> {
    let mut depths = vec![1usize; delta.legacy_nested.len()];
    let mut next_internal_id = legacy::FIRST_NESTED_INTERNAL_ID;
    let mut index = 0;
    while index < delta.legacy_nested.len() {
        if index >= MAX_LEGACY_NESTED_DELTAS {
            return Err(Error::unresolvable(format!(
                "more than {MAX_LEGACY_NESTED_DELTAS} nested legacy deltas"
            )));
        }
        let nested = delta.legacy_nested[index].clone();
        let depth = depths[index];
        if depth > MAX_LEGACY_NESTING {
            return Err(Error::unresolvable(format!(
                "legacy nested deltas deeper than {MAX_LEGACY_NESTING} levels"
            )));
        }
        let context = format!("nested legacy delta {}", nested.delta_blob.describe());
        let blob_plan =
            plan::plan_item(delta, &Item::empty(), &nested.delta_blob)?.ok_or_else(|| {
                Error::unresolvable("its delta blob cannot be produced from the delta alone")
                    .with_context(context.clone())
            })?;
        let bytes = Executor::new(
            &blob_plan,
            delta,
            SharedBytes::from_vec(Vec::new()),
            temp_dir.to_path_buf(),
        )
        .contiguous(blob_plan.root)
        .map_err(|e| e.with_context(context.clone()))?;
        if bytes.len() < 12 || &bytes[..4] != b"PAMZ" || bytes[4..12].iter().any(|&b| b != 0) {
            return Err(Error::unresolvable(
                "the embedded delta is not a legacy (version 0) delta",
            )
            .with_context(context));
        }
        let inner = legacy::parse_legacy_nested(bytes, &mut next_internal_id)
            .map_err(|e| e.with_context(context.clone()))?;
        let alias = |result: &Item, from: &Item| Recipe {
            kind: RecipeKind::Chain,
            result: result.clone(),
            numbers: Vec::new(),
            items: vec![from.clone()],
        };
        if nested.result.length != 0 && !inner.target.same_as(&nested.result) {
            delta.recipes.push(alias(&nested.result, &inner.target));
        }
        if inner.source.length != 0 && !inner.source.same_as(&nested.basis) {
            delta.recipes.push(alias(&inner.source, &nested.basis));
        }
        delta.recipes.extend(inner.recipes);
        delta.blobs.extend(inner.blobs);
        depths.extend(std::iter::repeat_n(depth + 1, inner.legacy_nested.len()));
        delta.legacy_nested.extend(inner.legacy_nested);
        delta.nested_archives += 1;
        index += 1;
    }
    Ok(())
}
