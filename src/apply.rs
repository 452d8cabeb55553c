//! High-level apply: source file + delta file → target file.

use std::path::Path;

use crate::error::Result;

/// Applies the delta at `delta` to the file at `source`, writing `target` atomically.
pub fn apply_files(source: &Path, delta: &Path, target: &Path) -> Result<()> {
    let _ = (source, delta, target);
    Err(crate::Error::unresolvable("not implemented yet"))
}
