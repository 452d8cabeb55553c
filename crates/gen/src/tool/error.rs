//! Error type of the command-line tools (generate, recompress): a message that names the file
//! and the reason.

use std::fmt;

/// A tool failure with a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError(pub String);

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ToolError {}

impl From<adudiff_core::Error> for ToolError {
    fn from(e: adudiff_core::Error) -> Self {
        ToolError(e.to_string())
    }
}

/// Result alias of the tools.
pub type ToolResult<T> = std::result::Result<T, ToolError>;

/// Builds a [`ToolError`] from a context (usually a file) and a reason.
pub fn fail(context: impl fmt::Display, reason: impl fmt::Display) -> ToolError {
    ToolError(format!("{context}: {reason}"))
}
