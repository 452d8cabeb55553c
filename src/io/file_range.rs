//! Input files read with `pread`, never mapped.
//!
//! The source and the delta belong to someone else: the agent's cache, a download directory.
//! If another process truncates a mapped file, the next access to a page past the new end
//! raises `SIGBUS` and kills the agent. Read with `pread`, the same truncation is a short read,
//! reported as a clean error.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use crate::error::Error;

/// A range of an open file, read with `pread`. Cheap to clone and slice; thread-safe.
#[derive(Clone, Debug)]
pub struct FileRange {
    file: Arc<File>,
    offset: u64,
    len: u64,
}

impl FileRange {
    /// The whole of `file`, as long as it is now.
    pub fn whole(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(FileRange {
            file: Arc::new(file),
            offset: 0,
            len,
        })
    }

    /// Opens `path` and takes the whole file.
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::whole(File::open(path)?)
    }

    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sub-range `[offset, offset + len)`, or `None` if it does not fit (overflow-safe).
    pub fn slice(&self, offset: u64, len: u64) -> Option<FileRange> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        Some(FileRange {
            file: Arc::clone(&self.file),
            offset: self.offset + offset,
            len,
        })
    }

    /// Fills `buf` with the bytes at `pos` of the range (`pos + buf.len() ≤ len`). A file that
    /// has become shorter than the range gives upstream's short-read error (20000).
    pub fn read_exact_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match self
                .file
                .read_at(&mut buf[done..], self.offset + pos + done as u64)
            {
                Ok(0) => {
                    return Err(Error::short_read(buf.len() as u64, done as u64)
                        .with_context(format!(
                            "an input file ended at {} bytes while being read: it was truncated or replaced during the apply",
                            self.offset + pos + done as u64
                        ))
                        .into_io())
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A sequential reader of the range.
    pub fn reader(&self) -> FileRangeReader {
        FileRangeReader {
            range: self.clone(),
            pos: 0,
        }
    }
}

/// Sequential reader of a [`FileRange`]; yields exactly its bytes, or an error if the file ends
/// early.
pub struct FileRangeReader {
    range: FileRange,
    pos: u64,
}

impl Read for FileRangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.range.len - self.pos;
        let n = (buf.len() as u64).min(left) as usize;
        self.range.read_exact_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_slices_and_reports_truncation() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"hello world").unwrap();
        let range = FileRange::open(f.path()).unwrap();
        let mut got = String::new();
        range
            .slice(6, 5)
            .unwrap()
            .reader()
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "world");
        assert!(range.slice(6, 6).is_none());
        assert!(range.slice(u64::MAX, 2).is_none());

        f.as_file().set_len(8).unwrap();
        let err = range
            .slice(6, 5)
            .unwrap()
            .reader()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        let err = Error::from_io(err, 0);
        assert_eq!(err.code, crate::error::code::IO_READER_READ_FAILURE);
        assert!(err.text().contains("truncated"), "{}", err.text());
    }
}
