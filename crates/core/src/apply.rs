//! High-level apply: source file + delta file → target file, in upstream's order of checks.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{code, Error, Result};
use crate::execute::output::{ensure_free_space, PendingTarget};
use crate::execute::view::View;
use crate::execute::Executor;
use crate::format::model::Delta;
use crate::format::{self, legacy, Item, Recipe, RecipeKind};
use crate::io::atomic::parent_dir;
use crate::io::scratch::{self, Need, Prefer, Room, Scratch, ScratchConfig};
use crate::io::{FileRange, SharedBytes};
use crate::plan::{self, Op, Plan};

/// Stack size of the apply worker thread: resolution and execution recurse over the recipe tree
/// (bounded depth), and the caller's thread may have a small stack. The deepest hostile deltas
/// of `tests/hostile.rs` (every depth bound at its edge) pass with 4 MiB in a release build and
/// 8 MiB in a debug build; the stack is reserved address space, which counts under `RLIMIT_AS`.
pub const APPLY_STACK_SIZE: usize = 16 << 20;

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
/// Runs on a dedicated worker thread (or, under an address-space limit, on the caller's
/// thread, see [`apply_files_with_report`]); a panic inside is reported as code 1, never
/// propagated.
pub fn apply_files(source: &Path, delta: &Path, target: &Path) -> Result<()> {
    apply_files_with_report(source, delta, target).map(|_| ())
}

/// Under an address-space limit, the apply runs on the caller's thread when that thread has at
/// least this much stack left (an agent thread has 8 MiB by default): a new thread would cost
/// its stack and, with glibc, a 64 MiB malloc arena reservation — address space the data needs.
pub const INLINE_MIN_STACK: usize = 6 << 20;

/// [`apply_files`], also reporting phase timings.
///
/// The apply normally runs on a worker thread with a [`APPLY_STACK_SIZE`] stack. Under
/// `RLIMIT_AS` it runs on the calling thread instead if that has [`INLINE_MIN_STACK`] left;
/// either way every recursive step checks the stack left ([`crate::stack::check`]), so a
/// delta nested deeper than the stack allows is an error, never an overflow.
pub fn apply_files_with_report(source: &Path, delta: &Path, target: &Path) -> Result<ApplyReport> {
    let run = |source: &Path, delta: &Path, target: &Path| {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            apply_on_this_thread(source, delta, target)
        }));
        outcome.unwrap_or_else(|payload| Err(internal_error(&*payload)))
    };
    let inline = crate::io::scratch::address_space_limit().is_some()
        && crate::stack::remaining().is_some_and(|left| left >= INLINE_MIN_STACK);
    if inline {
        return run(source, delta, target);
    }
    let (source, delta, target) = (
        source.to_path_buf(),
        delta.to_path_buf(),
        target.to_path_buf(),
    );
    let worker = std::thread::Builder::new()
        .name("adudiff-apply".into())
        .stack_size(APPLY_STACK_SIZE)
        .spawn(move || run(&source, &delta, &target))
        .map_err(|e| {
            Error::new(
                code::STANDARD_LIBRARY_EXCEPTION,
                format!("Failed to apply diff. Exception: cannot start worker thread: {e}"),
            )
        })?;
    worker
        .join()
        .unwrap_or_else(|payload| Err(internal_error(&*payload)))
}

/// Code 1 for a caught panic.
fn internal_error(payload: &(dyn std::any::Any + Send)) -> Error {
    Error::new(
        code::STANDARD_LIBRARY_EXCEPTION,
        format!(
            "Failed to apply diff. Exception: internal error: {}",
            crate::error::panic_text(payload)
        ),
    )
}

/// Upstream's 20300 for an input file that cannot be opened or read.
fn input_error(path: &Path, e: &std::io::Error) -> Error {
    Error::new(
        code::IO_BINARY_FILE_READER_FAILED_OPEN,
        format!(
            "Failed to open file: {}. errno: {}",
            path.display(),
            e.raw_os_error().unwrap_or(0)
        ),
    )
    .with_context(e.to_string())
}

/// Opens an input file, refusing directories (upstream's 20300 on failure).
fn open_input(path: &Path) -> Result<File> {
    let file = File::open(path).map_err(|e| input_error(path, &e))?;
    if file.metadata().map_err(|e| input_error(path, &e))?.is_dir() {
        return Err(input_error(
            path,
            &std::io::Error::from_raw_os_error(libc::EISDIR),
        ));
    }
    Ok(file)
}

/// Opens and maps an input file (upstream's 20300 on failure). For tools and examples: the
/// applier itself never maps its inputs (see [`FileRange`]).
pub fn map_input(path: &Path) -> Result<SharedBytes> {
    let file = open_input(path)?;
    SharedBytes::map_file(&file).map_err(|e| input_error(path, &e))
}

/// A private copy of the input file at `path`, in memory if the scratch space's memory budget
/// has room for it, else in a preallocated temporary file: nothing another process does to
/// the file afterwards can change it or fault a read of it. For the delta, which the parser
/// needs in one piece.
pub fn private_copy(path: &Path, scratch: &Scratch) -> Result<SharedBytes> {
    let range = FileRange::whole(open_input(path)?).map_err(|e| input_error(path, &e))?;
    let what = format!("a private copy of {}", path.display());
    let room = scratch.room_for(Prefer::Memory, Need::mapped(range.len()), &what)?;
    let read_error = |e: std::io::Error| {
        Error::from_io(e, code::IO_BINARY_FILE_READER_FAILED_OPEN)
            .with_context(format!("reading {}", path.display()))
    };
    let len =
        usize::try_from(range.len()).map_err(|_| scratch.no_room(range.len(), &what, None))?;
    match room {
        Room::Memory(charge) => {
            let mut bytes = scratch::try_zeroed(len).ok_or_else(|| {
                Error::new(
                    code::IO_BINARY_FILE_READER_FAILED_OPEN,
                    format!("Not enough memory: {what} needs {len} bytes, the allocation failed"),
                )
            })?;
            range.read_exact_at(0, &mut bytes).map_err(read_error)?;
            Ok(SharedBytes::from_vec_charged(bytes, Some(charge)))
        }
        Room::Disk(mut file, charge) => {
            let temp_error = |e: std::io::Error| {
                Error::new(
                    code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
                    format!("Failed to use a temporary file for {what}: {e}"),
                )
            };
            let copied = std::io::copy(&mut range.reader(), &mut file);
            let copied = copied.map_err(|e| match Error::from_io_ref(&e, 0).code {
                0 => temp_error(e),
                _ => read_error(e),
            })?;
            debug_assert_eq!(copied, range.len());
            SharedBytes::map_charged(&file, Some(charge)).map_err(temp_error)
        }
    }
}

/// Identity (length, SHA-256) of an input file range, read with `pread`.
pub fn identify_range(range: &FileRange) -> std::io::Result<Item> {
    let mut hasher = Sha256::new();
    let mut buf = scratch::buffer(1 << 20, "hashing the source")?;
    let mut reader = range.reader();
    loop {
        let n = std::io::Read::read(&mut reader, &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Item::with_sha256(range.len(), hasher.finalize().into()))
}

/// Memory one plan node may take while planning and executing, with the resolver's memo and
/// the executor's per-node bookkeeping (a generous estimate).
pub const PLAN_NODE_BYTES: u64 = 512;

/// The plan-node bound for an apply: [`plan::MAX_PLAN_NODES`], lowered so that the plan fits the
/// memory budget (a hostile delta of a hundred megabytes of recipes would otherwise exhaust an
/// address-space limit in the resolver, and Rust aborts the process on allocation failure).
/// The memory left is measured now (after parsing), not at the start of the apply, and is
/// the process's real headroom, not the budget for intermediates (which `ADUDIFF_SCRATCH_MEMORY`
/// may set to 0).
fn plan_node_limit() -> usize {
    let fits = scratch::automatic_memory_budget() / PLAN_NODE_BYTES;
    plan::MAX_PLAN_NODES.min(usize::try_from(fits).unwrap_or(usize::MAX))
}

/// Checks up front that the target and the largest contiguous intermediate of `plan` can
/// have room: the target on its file system, the intermediate (a zstd prefix or window, a
/// bsdiff patch) on the scratch disk or in memory. Only a necessary condition
/// (several intermediates can be alive at once, and each request is checked again when made),
/// but it turns the hopeless cases into an error before any work.
/// (The target's own free-space check, [`ensure_free_space`], is made before planning.)
fn ensure_room(plan: &Plan, target: &Path, target_len: u64, scratch: &Scratch) -> Result<()> {
    let copied = |id: usize| match plan.nodes[id].op {
        Op::Blob(_) | Op::Empty | Op::Zeros => 0,
        _ => plan.nodes[id].item.length,
    };
    // (bytes on disk, bytes in memory) of the largest need.
    let mut largest = (0u64, 0u64);
    for node in &plan.nodes {
        let need = match node.op {
            Op::Zstd { prefix, .. } => {
                let window = node.item.length;
                let prefix = prefix.map_or(0, copied);
                let memory = crate::execute::zstd_window_memory(window);
                (window.max(prefix), memory.max(prefix))
            }
            // The old file is read where it is (materialized first if it is produced, like
            // any item read at random); only the patch is needed in one piece.
            Op::Bspatch { patch, .. } => (copied(patch), copied(patch)),
            Op::ZstdCompress { input, params } => {
                // Memory only (one worker: the least it can take).
                let len = plan.nodes[input].item.length;
                let memory = if crate::execute::resources_limited() {
                    params.address_space(len, 1)
                } else {
                    params.memory(len, 1)
                };
                if memory > scratch.memory_left() {
                    return Err(scratch.no_room(memory, "a zstd compressor", None));
                }
                continue;
            }
            Op::ZstdReconstruct { content, .. } => {
                // Memory only: at least the content and the frame are held.
                let memory = plan.nodes[content].item.length + node.item.length;
                if memory > scratch.memory_left() {
                    return Err(scratch.no_room(
                        memory,
                        "a zstd frame rebuilt from its structure",
                        None,
                    ));
                }
                continue;
            }
            _ => continue,
        };
        largest = largest.max(need);
    }
    if largest.0 == 0 {
        return Ok(());
    }
    let same_fs = scratch.config().dir == parent_dir(target);
    let disk = scratch
        .disk_left()
        .saturating_sub(if same_fs { target_len } else { 0 });
    if largest.0 <= disk || largest.1 <= scratch.memory_left() {
        return Ok(());
    }
    Err(Error::new(
        code::IO_TEMP_FILE_READERWRITER_FAILED_OPEN,
        format!(
            "Not enough scratch space: the largest intermediate item needs {} bytes on disk or {} bytes of memory; {disk} bytes of disk are free for temporary files in {} (after the {target_len}-byte target), and the memory budget has {} bytes (set {} to a roomier directory or {} to allow more memory)",
            largest.0,
            largest.1,
            scratch.config().dir.display(),
            scratch.memory_left(),
            scratch::ENV_DIR,
            scratch::ENV_MEMORY,
        ),
    ))
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
    let scratch = Scratch::new(ScratchConfig::from_env(&parent_dir(target))?);
    let delta_bytes = private_copy(delta, &scratch)?;
    let parsed = format::parse_delta(delta_bytes)?;
    lap(&mut report.parse);

    let source_range =
        FileRange::whole(open_input(source)?).map_err(|e| input_error(source, &e))?;
    let source_item = identify_range(&source_range).map_err(|e| {
        Error::from_io(e, code::IO_BINARY_FILE_READER_FAILED_OPEN)
            .with_context(format!("hashing {}", source.display()))
    })?;
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
    let mut parsed = parsed;
    expand_legacy_nested(&mut parsed, &scratch)?;
    let plan = crate::plan::plan_with_limit(&parsed, &source_item, plan_node_limit())?;
    report.plan_nodes = plan.nodes.len();
    ensure_room(&plan, target, parsed.target.length, &scratch)?;
    let pending = PendingTarget::create(target, parsed.target.length)?;
    lap(&mut report.plan);

    // Building the target's stream materializes what needs random access; the executor (and its
    // cache) goes before the stream runs, so only the readers keep the materialized bytes alive,
    // each until it has finished.
    let source_view = View::file(source_range);
    let stream = Executor::new(&plan, &parsed, source_view, scratch).stream(plan.root)?;
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
/// recipe's basis. Intermediates go to `scratch`.
pub fn expand_legacy_nested(delta: &mut Delta, scratch: &Scratch) -> Result<()> {
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
        let bytes = Executor::new(&blob_plan, delta, View::default(), scratch.clone())
            .contiguous(blob_plan.root)
            .map_err(|e| e.with_context(context.clone()))?;
        if bytes.len() < 12
            || &bytes[..4] != format::reader::MAGIC
            || bytes[4..12].iter().any(|&b| b != 0)
        {
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
