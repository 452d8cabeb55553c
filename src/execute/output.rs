//! Writing the target: into a temporary file beside it, hashed while written, synced and renamed
//! into place only when complete and verified. On any failure the temporary file is removed and an
//! existing target is left untouched.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{code, Error, Result};
use crate::format::model::Item;

/// Size of the blocks moved from the producer to the file.
const WRITE_CHUNK: usize = 1 << 20;

/// A target file under construction.
pub struct PendingTarget {
    target: PathBuf,
    temp: tempfile::NamedTempFile,
}

fn open_error(path: &Path, err: &std::io::Error) -> Error {
    Error::new(
        code::IO_BINARY_FILE_WRITER_FAILED_OPEN,
        format!(
            "Failed to open file: {}. errno: {}",
            path.display(),
            err.raw_os_error().unwrap_or(0)
        ),
    )
    .with_context(err.to_string())
}

/// The directory a target path lives in (`.` for a bare file name).
pub fn target_dir(target: &Path) -> PathBuf {
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl PendingTarget {
    /// Creates the temporary file in the target's directory (upstream's 20302 on failure).
    pub fn create(target: &Path) -> Result<Self> {
        if target.is_dir() {
            return Err(open_error(
                target,
                &std::io::Error::from_raw_os_error(libc::EISDIR),
            ));
        }
        let temp = tempfile::Builder::new()
            .prefix(".adudiff-")
            .suffix(".partial")
            .tempfile_in(target_dir(target))
            .map_err(|e| open_error(target, &e))?;
        Ok(PendingTarget {
            target: target.to_path_buf(),
            temp,
        })
    }

    /// Streams `producer` into the file, checks it against `expected`, then publishes it
    /// atomically. Consumes `self`: on error the temporary file is deleted.
    pub fn write_and_commit(self, mut producer: impl Read, expected: &Item) -> Result<()> {
        let write_error = |e: std::io::Error| {
            Error::new(
                code::IO_BINARY_FILE_WRITER_FAILED_OPEN,
                format!("Failed to write file: {}. {e}", self.target.display()),
            )
        };
        let mut hasher = Sha256::new();
        let mut written: u64 = 0;
        let mut buf = vec![0u8; WRITE_CHUNK];
        let mut file: &File = self.temp.as_file();
        loop {
            let n = match producer.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::from_io(e, code::IO_READER_READ_FAILURE)),
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(write_error)?;
            written += n as u64;
        }
        let digest: [u8; 32] = hasher.finalize().into();
        let produced = Item::with_sha256(written, digest);
        let matches = written == expected.length
            && match (expected.sha256, expected.md5) {
                (Some(h), _) => h == digest,
                (None, Some(_)) => true, // MD5-only targets (legacy): length checked, no SHA-256 known.
                (None, None) => true,
            };
        if !matches {
            return Err(Error::new(
                code::DIFF_VERIFY_HASH_FAILURE,
                format!(
                    "The produced target does not match the delta's target item: expected {}, produced {}",
                    expected.describe(),
                    produced.describe()
                ),
            ));
        }
        file.sync_all().map_err(write_error)?;
        let PendingTarget { target, temp } = self;
        temp.persist(&target)
            .map_err(|e| open_error(&target, &e.error))?;
        if let Ok(dir) = File::open(target_dir(&target)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}
