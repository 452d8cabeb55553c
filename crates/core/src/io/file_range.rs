//! Files read with `pread`: the inputs, and intermediates kept in temporary files.
//!
//! The source and the delta belong to someone else: the agent's cache, a download directory.
//! If another process truncates a mapped file, the next access to a page past the new end
//! raises `SIGBUS` and kills the agent. Read with `pread`, the same truncation is a short read,
//! reported as a clean error. Intermediates in our own (preallocated, unlinked) temporary files
//! are read the same way, so they take no address space; only a consumer that needs one in a
//! single piece (a zstd prefix, a bsdiff old file) maps it ([`FileRange::map_private`]).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::scratch::Charge;
use super::SharedBytes;
use crate::error::Error;

/// An open file, and for a private temporary file its scratch charge.
#[derive(Debug)]
struct Backing {
    file: File,
    /// `Some` for a temporary file of ours (safe to map); held until the last view is gone.
    private: Option<Charge>,
}

/// A range of an open file, read with `pread`. Cheap to clone and slice; thread-safe.
#[derive(Clone, Debug)]
pub struct FileRange {
    backing: Arc<Backing>,
    offset: u64,
    len: u64,
}

impl FileRange {
    /// The whole of `file`, as long as it is now.
    pub fn whole(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(FileRange {
            backing: Arc::new(Backing {
                file,
                private: None,
            }),
            offset: 0,
            len,
        })
    }

    /// The first `len` bytes of a private temporary file (written by us, unlinked, its blocks
    /// allocated), keeping `charge` until the last view of it is dropped.
    pub fn scratch(file: File, len: u64, charge: Charge) -> Self {
        FileRange {
            backing: Arc::new(Backing {
                file,
                private: Some(charge),
            }),
            offset: 0,
            len,
        }
    }

    /// The range mapped read-only in one piece, for a private temporary file (`None` for an
    /// input file, which is never mapped). Only the range is mapped, not the whole file (a
    /// slice of a large intermediate takes its own length of address space). The map keeps
    /// the file and its charge alive.
    pub fn map_private(&self) -> Option<io::Result<SharedBytes>> {
        self.backing.private.as_ref()?;
        let keep: Arc<dyn std::any::Any + Send + Sync> = self.backing.clone();
        Some(SharedBytes::map_range_keeping(
            &self.backing.file,
            self.offset,
            self.len,
            keep,
        ))
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
            backing: Arc::clone(&self.backing),
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
                .backing
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

    /// Size of the mapping of this process that holds `address` (from `/proc/self/maps`).
    fn mapping_len(address: usize) -> u64 {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for line in maps.lines() {
            let range = line.split(' ').next().unwrap_or("");
            let (from, to) = range.split_once('-').unwrap();
            let (from, to) = (
                u64::from_str_radix(from, 16).unwrap(),
                u64::from_str_radix(to, 16).unwrap(),
            );
            if (from..to).contains(&(address as u64)) {
                return to - from;
            }
        }
        panic!("no mapping holds {address:#x}");
    }

    /// A slice of a temporary file is mapped as a window of its own length (rounded out to
    /// pages), not as the whole file; input files are never mapped.
    #[test]
    #[cfg_attr(miri, ignore = "Miri does not support file-backed memory maps")]
    fn private_slices_map_only_their_window() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = crate::io::Scratch::in_dir(dir.path());
        let len = 24u64 << 20;
        let crate::io::scratch::Room::Disk(mut file, charge) = scratch.room(len, "t").unwrap()
        else {
            panic!("disk is preferred")
        };
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        file.write_all(&bytes).unwrap();
        let whole = FileRange::scratch(file, len, charge);
        let (at, n) = ((17u64 << 20) + 123, 5000u64);
        let map = whole.slice(at, n).unwrap().map_private().unwrap().unwrap();
        assert_eq!(&map[..], &bytes[at as usize..(at + n) as usize]);
        assert!(mapping_len(map.as_ptr() as usize) <= 3 * 4096);
        // The window keeps the file alive after the range itself is gone.
        drop(whole);
        assert_eq!(map[n as usize - 1], bytes[(at + n - 1) as usize]);
        assert_eq!(scratch.disk_used(), len);
        drop(map);
        assert_eq!(scratch.disk_used(), 0);

        let mut input = tempfile::NamedTempFile::new().unwrap();
        input.write_all(b"input").unwrap();
        assert!(FileRange::open(input.path())
            .unwrap()
            .map_private()
            .is_none());
    }
}
