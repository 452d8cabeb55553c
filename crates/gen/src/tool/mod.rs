//! What the host-side tools (`generate`, `recompress`, the `adudiff` binary) share and the device
//! library does not need: their error type, gzip helpers, and writing output files atomically.

pub mod error;
pub mod gzip;

pub use error::{fail, ToolError, ToolResult};

/// Writes `bytes` to `path` atomically ([`adudiff_core::io::atomic::write_file`]: a temporary file beside
/// it, synced, renamed, the directory synced), creating the directory if needed; mode 0644.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> ToolResult<()> {
    adudiff_core::io::atomic::write_file(path, bytes).map_err(|e| fail(path.display(), e))
}
