//! Byte transforms used by recipes: stock-zlib deflate (byte-exact), inflate, zstd
//! decompression and bspatch.
//!
//! Every codec is a streaming [`std::io::Read`] adaptor that yields exactly the recipe's result
//! length and then `Ok(0)`. Failures travel as [`std::io::Error`]s wrapping a [`crate::Error`]
//! with upstream's code (recover it with [`crate::Error::from_io`]); after a failure a reader
//! keeps returning the same error.

pub mod bspatch;
pub mod deflate_reconstruct;
pub mod inflate;
pub mod pigz;
pub mod zlib_deflate;
pub mod zstd;
pub mod zstd_compress;
pub mod zstd_parse;
pub mod zstd_reconstruct;
pub mod zstd_structure;
mod zstream;

pub use bspatch::BspatchReader;
pub use deflate_reconstruct::DeflateReconstructReader;
pub use inflate::InflateReader;
pub use zlib_deflate::{
    deflate_exact, find_zlib_level, zlib_level_from_number, DeflateReader, LEVEL_SEARCH_ORDER,
    MEM_LEVEL,
};
pub use zstd::ZstdReader;
pub use zstd_compress::ZstdCompressReader;
pub use zstream::zlib_version;

use std::io::{self, Read};

/// zlib framing selected by a recipe's `init_type` number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZlibInit {
    /// Raw deflate (RFC 1951), windowBits -15.
    Raw = 0,
    /// gzip (RFC 1952), windowBits 31.
    Gzip = 1,
    /// zlib (RFC 1950), windowBits 15.
    Zlib = 2,
}

impl ZlibInit {
    /// Init type for a recipe number, if valid.
    pub fn from_number(n: u64) -> Option<Self> {
        match n {
            0 => Some(ZlibInit::Raw),
            1 => Some(ZlibInit::Gzip),
            2 => Some(ZlibInit::Zlib),
            _ => None,
        }
    }

    /// zlib `windowBits` for this framing.
    pub fn window_bits(self) -> i32 {
        match self {
            ZlibInit::Raw => -15,
            ZlibInit::Gzip => 31,
            ZlibInit::Zlib => 15,
        }
    }
}

/// A codec reader's first failure, which every later read returns again (the contract in the
/// module doc). One per reader; the readers call [`StickyFailure::check`] first, then pass their
/// outcome through [`StickyFailure::record`] or [`StickyFailure::deliver`].
#[derive(Default)]
struct StickyFailure(Option<crate::Error>);

impl StickyFailure {
    /// The recorded failure, if any.
    fn check(&self) -> io::Result<()> {
        match &self.0 {
            Some(err) => Err(err.clone().into_io()),
            None => Ok(()),
        }
    }

    /// Passes `result` on, remembering its error (as a [`crate::Error`] with `code` when it
    /// carries none).
    fn record(&mut self, result: io::Result<usize>, code: u32) -> io::Result<usize> {
        if let Err(e) = &result {
            self.0 = Some(crate::Error::from_io_ref(e, code));
        }
        result
    }

    /// For a reader that fills its buffer step by step: `filled` bytes were produced before
    /// `outcome`. A failure is remembered; it is returned now only when nothing was produced,
    /// otherwise the bytes go out first and the failure comes with the next read.
    fn deliver(&mut self, filled: usize, outcome: crate::Result<()>) -> io::Result<usize> {
        match outcome {
            Ok(()) => Ok(filled),
            Err(err) => {
                self.0 = Some(err.clone());
                if filled > 0 {
                    Ok(filled)
                } else {
                    Err(err.into_io())
                }
            }
        }
    }
}

/// Buffered input of a codec: reads from the inner reader only when everything handed out has
/// been consumed, and remembers the end of input.
struct InputBuffer<R> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
}

impl<R: Read> InputBuffer<R> {
    fn new(input: R, capacity: usize) -> Self {
        InputBuffer {
            input,
            buf: vec![0; capacity],
            pos: 0,
            len: 0,
            eof: false,
        }
    }

    /// Refills the buffer if it is empty and input remains.
    fn refill(&mut self) -> io::Result<()> {
        while self.pos == self.len && !self.eof {
            match self.input.read(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.pos = 0;
                    self.len = n.min(self.buf.len());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Up to `max` buffered bytes not consumed yet.
    fn pending(&self, max: usize) -> &[u8] {
        let end = self.len.min(self.pos.saturating_add(max));
        &self.buf[self.pos..end]
    }

    /// Marks `n` pending bytes as consumed.
    fn consume(&mut self, n: usize) {
        self.pos += n;
    }

    /// Whether the inner reader has reached its end.
    fn eof(&self) -> bool {
        self.eof
    }

    /// Whether every input byte has been consumed.
    fn exhausted(&self) -> bool {
        self.eof && self.pos == self.len
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers shared by the codec tests.

    use std::io::{self, Read};
    use std::path::PathBuf;

    /// Reads `tests/vectors/<case>/<file>`.
    pub fn vector(case: &str, file: &str) -> Vec<u8> {
        let path: PathBuf = [
            env!("CARGO_MANIFEST_DIR"),
            "../../tests/vectors",
            case,
            file,
        ]
        .iter()
        .collect();
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Reads `r` to its end with reads of at most `piece` bytes.
    pub fn read_all<R: Read>(mut r: R, piece: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; piece];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// The crate error code carried by an I/O error (0 if none).
    pub fn err_code(e: io::Error) -> u32 {
        crate::Error::from_io(e, 0).code
    }

    /// A reader over a slice that returns at most `.1` bytes per call.
    pub struct Dribble<'a>(pub &'a [u8], pub usize);

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
}
