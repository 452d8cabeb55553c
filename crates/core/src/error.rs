//! Error codes and the crate's error type.
//!
//! The numbers are upstream's (`error_codes.h` of Azure/iot-hub-device-update-delta 3.0.0): the
//! Device Update agent packs them into the 20-bit field of its extended result code, so they must
//! never change. Upstream has duplicate values (aliases), so the codes are plain constants rather
//! than a Rust enum with unique discriminants.

use std::fmt;
use std::io;

/// Upstream error code numbers used by this crate (names as in upstream's `error_code` enum).
pub mod code {
    /// A bare C++ `std::exception` upstream; also our code for "cannot resolve", NULL arguments and
    /// internal panics.
    pub const STANDARD_LIBRARY_EXCEPTION: u32 = 1;
    /// Truncated input, or a producer that yields fewer bytes than its item's length.
    pub const IO_READER_READ_FAILURE: u32 = 20000;
    /// `inflateInit2` failed.
    pub const IO_ZLIB_READER_INIT_FAILED: u32 = 20101;
    /// `inflate()` returned an error (corrupt or truncated stream).
    pub const IO_ZLIB_READER_INFLATE_FAILED: u32 = 20104;
    /// A zlib init type other than 0 (raw), 1 (gzip) or 2 (zlib).
    pub const IO_ZLIB_INIT_TYPE_INVALID: u32 = 20106;
    /// `deflateInit2` failed.
    pub const IO_ZLIB_WRITER_INIT_FAILED: u32 = 20107;
    /// `deflate()` returned an error.
    pub const IO_ZLIB_WRITER_DEFLATE_FAILED: u32 = 20110;
    /// `deflateSetHeader` failed.
    pub const IO_ZLIB_WRITER_DEFLATE_SET_HEADER_FAILED: u32 = 20112;
    /// `ZSTD_decompressStream()` failed.
    pub const IO_ZSTD_DECOMPRESS_STREAM_FAILED: u32 = 20201;
    /// zstd input ended before the expected output length was produced.
    pub const IO_ZSTD_DECOMPRESS_CANNOT_FINISH: u32 = 20202;
    /// A zstd prefix (dictionary) that cannot be addressed.
    pub const IO_ZSTD_DICTIONARY_TOO_LARGE: u32 = 20203;
    /// An input file (source or delta) cannot be opened or read.
    pub const IO_BINARY_FILE_READER_FAILED_OPEN: u32 = 20300;
    /// A temporary file cannot be created.
    pub const IO_TEMP_FILE_READERWRITER_FAILED_OPEN: u32 = 20301;
    /// The target file cannot be created or written.
    pub const IO_BINARY_FILE_WRITER_FAILED_OPEN: u32 = 20302;
    /// A range (slice, inline assets, remainder) extends past the end of what backs it.
    pub const IO_DEVICE_NEW_END_PAST_SIZE: u32 = 21200;
    /// The delta does not start with `PAMZ`.
    pub const DIFF_MAGIC_HEADER_WRONG: u32 = 30000;
    /// Unsupported format version.
    pub const DIFF_VERSION_WRONG: u32 = 30001;
    /// Legacy delta: the sections do not end exactly at the end of the file.
    pub const DIFF_READ_DIFF_SIZE_MISMATCH: u32 = 30002;
    /// Unknown hash algorithm id.
    pub const DIFF_BAD_HASH_TYPE: u32 = 30003;
    /// A produced item (the target, or an intermediate) does not have its expected hash.
    pub const DIFF_VERIFY_HASH_FAILURE: u32 = 30009;
    /// Unknown recipe type id (upstream crashes here).
    pub const DIFF_INVALID_RECIPE_TYPE: u32 = 30010;
    /// Legacy recipe parameter of unknown kind.
    pub const DIFF_RECIPE_PARAMETER_READ_INVALID_TYPE: u32 = 30101;
    /// Wrong number of number or item ingredients for a recipe.
    pub const DIFF_RECIPE_INVALID_PARAMETER_COUNT: u32 = 30104;
    /// A bsdiff patch is corrupt or does not produce the expected length (upstream hangs here).
    pub const DIFF_BSPATCH_FAILURE: u32 = 30900;
    /// The source file does not have the size the delta expects.
    pub const DIFF_VERIFY_SOURCE_SIZE_MISMATCH: u32 = 31100;
    /// Chain parts do not add up to the result length.
    pub const RECIPE_CHAIN_TOTAL_ITEM_LENGTH_MISMATCH: u32 = 31701;
    /// `zstd_compression` recipes are refused (not reproducible).
    pub const RECIPE_ZSTD_COMPRESSION_NOT_SUPPORTED: u32 = 31702;
    /// zlib level outside 0..=9 and 0xFFFFFFFF.
    pub const RECIPE_ZLIB_COMPRESSION_LEVEL_INVALID: u32 = 33000;
    /// A recipe whose result is one of its own ingredients.
    pub const RECIPE_SELF_REFERENTIAL: u32 = 33001;
    /// `diff_get_zlib_compression_level`: no zlib level reproduces the file.
    pub const API_UNKNOWN_ZLIB_COMPRESSION: u32 = 40005;
    /// Ours (extended format): a `deflate_reconstruct` recipe names a correction codec or codec
    /// version this applier does not know. Nothing is produced.
    pub const EXT_CODEC_UNSUPPORTED: u32 = 39000;
    /// Ours (extended format): a correction blob is malformed, exceeds a bound, or does not
    /// rebuild the stream it describes.
    pub const EXT_RECONSTRUCT_FAILED: u32 = 39001;
    /// Ours (extended format): a `zstd_compression_exact` recipe names another libzstd
    /// version than this applier's, an unknown flag, or a level, window log or job size
    /// outside the accepted ranges. Nothing is produced.
    pub const EXT_ZSTD_UNSUPPORTED: u32 = 39002;
    /// Ours (extended format): a `zstd_compression_exact` recipe's lengths do not fit (more
    /// content than a frame of its length can hold, or a frame of another length), or libzstd
    /// fails (out of memory included).
    pub const EXT_ZSTD_FAILED: u32 = 39003;
    /// Ours (extended revision 2): the packed recipe sets are not one valid zstd frame of the
    /// declared length, or declare more than the bounds allow. Nothing is produced.
    pub const EXT_COOKBOOK_MALFORMED: u32 = 39004;
    /// Ours (extended format): a `zstd_reconstruct` recipe names a structure codec or codec
    /// version this applier does not know. Nothing is produced.
    pub const EXT_ZSTD_REBUILD_UNSUPPORTED: u32 = 39005;
    /// Ours (extended format): a `zstd_reconstruct` structure blob is malformed or exceeds a
    /// bound, the recipe's lengths do not fit, or the structure does not encode to a frame of
    /// the recipe's length.
    pub const EXT_ZSTD_REBUILD_FAILED: u32 = 39006;
}

/// An error with upstream's numeric code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    /// Upstream error code (see [`code`]).
    pub code: u32,
    /// Upstream's message for this condition (kept identical where upstream has one).
    pub message: String,
    /// Where it happened, innermost first (e.g. the recipe being produced). Reported after the
    /// message in upstream's `"\nCallstack:"` layout, so tools that strip upstream's call stack
    /// see exactly upstream's text.
    pub context: Vec<String>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)?;
        for frame in &self.context {
            write!(f, "\n  at {frame}")?;
        }
        Ok(())
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Creates an error with the given code and message.
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            context: Vec::new(),
        }
    }

    /// Adds a context frame (outer frames are appended after inner ones).
    pub fn with_context(mut self, frame: impl Into<String>) -> Self {
        self.context.push(frame.into());
        self
    }

    /// The text reported through the C API: the message, then the context frames in upstream's
    /// call-stack layout.
    pub fn text(&self) -> String {
        let mut text = self.message.clone();
        if !self.context.is_empty() {
            text.push_str("\nCallstack:");
            for frame in &self.context {
                text.push_str("\n\t");
                text.push_str(frame);
            }
        }
        text
    }

    /// Upstream's `io_reader_read_failure` with its exact message.
    pub fn short_read(wanted: u64, got: u64) -> Self {
        Error::new(
            code::IO_READER_READ_FAILURE,
            format!("Wanted to read {wanted} bytes, but could only read {got} bytes."),
        )
    }

    /// Upstream's "could not resolve / bare std::exception" error, with our explanation appended.
    pub fn unresolvable(detail: impl fmt::Display) -> Self {
        Error::new(
            code::STANDARD_LIBRARY_EXCEPTION,
            "Failed to apply diff. Exception: std::exception",
        )
        .with_context(detail.to_string())
    }

    /// `io_device_new_end_past_size` for a range `[offset, offset+len)` of something of `size` bytes.
    pub fn past_end(offset: u64, len: u64, size: u64) -> Self {
        Error::new(
            code::IO_DEVICE_NEW_END_PAST_SIZE,
            format!(
                "io_device_view::io_device_view: new_end: {}, m_device->size(): {size}",
                offset.saturating_add(len)
            ),
        )
    }

    /// Wraps this error into an [`io::Error`] so it can travel through `std::io::Read`.
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }

    /// Recovers an [`Error`] carried by an [`io::Error`]; other I/O errors get `fallback_code`.
    pub fn from_io(err: io::Error, fallback_code: u32) -> Self {
        Self::from_io_ref(&err, fallback_code)
    }

    /// Like [`Error::from_io`], without consuming the I/O error.
    pub fn from_io_ref(err: &io::Error, fallback_code: u32) -> Self {
        match err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<Error>())
        {
            Some(inner) => inner.clone(),
            None => Error::new(fallback_code, format!("I/O error: {err}")),
        }
    }
}

/// Text of a panic payload (for reporting a caught panic as an error).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        err.into_io()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_survives_a_trip_through_io_error() {
        let original = Error::new(code::DIFF_BSPATCH_FAILURE, "bad patch");
        let back = Error::from_io(original.clone().into_io(), code::STANDARD_LIBRARY_EXCEPTION);
        assert_eq!(back, original);
    }

    #[test]
    fn plain_io_error_gets_fallback_code() {
        let e = io::Error::new(io::ErrorKind::UnexpectedEof, "eof");
        assert_eq!(Error::from_io(e, 20000).code, 20000);
    }
}
