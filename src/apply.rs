//! High-level apply: source file + delta file → target file, in upstream's order of checks.

use std::fs::File;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{code, Error, Result};
use crate::execute::output::{target_dir, PendingTarget};
use crate::execute::Executor;
use crate::format::{self, Item};
use crate::io::SharedBytes;

/// Stack size of the apply worker thread: resolution and execution recurse over the recipe tree
/// (bounded depth), and the caller's thread may have a small stack.
const APPLY_STACK_SIZE: usize = 64 << 20;

/// Applies the delta at `delta` to the file at `source`, writing `target` atomically.
///
/// Runs on a dedicated worker thread; a panic inside is reported as code 1, never propagated.
pub fn apply_files(source: &Path, delta: &Path, target: &Path) -> Result<()> {
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
pub fn apply_on_this_thread(source: &Path, delta: &Path, target: &Path) -> Result<()> {
    let delta_bytes = map_input(delta)?;
    let parsed = format::parse_delta(delta_bytes)?;

    let source_bytes = map_input(source)?;
    let source_item = identify(&source_bytes);
    if parsed.source.length != 0 && !parsed.source.same_as(&source_item) {
        return Err(Error::unresolvable(format!(
            "the source file {} is not the delta's source: expected {}, found {}",
            source.display(),
            parsed.source.describe(),
            source_item.describe()
        )));
    }

    let pending = PendingTarget::create(target)?;
    let plan = crate::plan::plan(&parsed, &source_item)?;
    let mut executor = Executor::new(&plan, &parsed, source_bytes, target_dir(target));
    let stream = executor.stream(plan.root)?;
    pending.write_and_commit(stream, &parsed.target)
}
