//! Delta generation: SWU-aware planning, member diffing (bsdiff / zstd patch-from) and writing.

pub mod error;
pub mod zlib;

use std::io::Write;
use std::path::Path;

use error::{fail, ToolResult};

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> ToolResult<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(dir.display(), e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(dir.display(), e))?;
    tmp.write_all(bytes).map_err(|e| fail(path.display(), e))?;
    tmp.persist(path)
        .map_err(|e| fail(path.display(), e.error))?;
    Ok(())
}
