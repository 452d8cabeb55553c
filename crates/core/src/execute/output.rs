//! Writing the target: into a temporary file beside it ([`crate::io::atomic`]: unnamed while it
//! is written), hashed while written, synced and renamed into place only when complete and
//! verified. On any failure the temporary file is removed and an existing target is left
//! untouched.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{code, Error, Result};
use crate::format::model::Item;
use crate::io::atomic::{parent_dir, AtomicFile};
use crate::io::scratch;

/// Size of the blocks moved from the producer to the file.
const WRITE_CHUNK: usize = 1 << 20;

/// A target file under construction.
pub struct PendingTarget {
    target: PathBuf,
    file: AtomicFile,
}

/// The OS error number behind `err`, looking through wrappers (tempfile adds the path to its
/// errors, which hides the number from `raw_os_error`).
fn errno(err: &std::io::Error) -> i32 {
    if let Some(n) = err.raw_os_error() {
        return n;
    }
    let mut source = err
        .get_ref()
        .map(|e| e as &(dyn std::error::Error + 'static));
    while let Some(inner) = source {
        if let Some(n) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|e| e.raw_os_error())
        {
            return n;
        }
        source = inner.source();
    }
    // tempfile's path wrapper hides the original error entirely; recover the common numbers.
    match err.kind() {
        std::io::ErrorKind::NotFound => libc::ENOENT,
        std::io::ErrorKind::PermissionDenied => libc::EACCES,
        std::io::ErrorKind::AlreadyExists => libc::EEXIST,
        _ => 0,
    }
}

fn open_error(path: &Path, err: &std::io::Error) -> Error {
    Error::new(
        code::IO_BINARY_FILE_WRITER_FAILED_OPEN,
        format!(
            "Failed to open file: {}. errno: {}",
            path.display(),
            errno(err)
        ),
    )
    .with_context(err.to_string())
}

/// Refuses (upstream's 20302) a target of `length` bytes that cannot fit in the free space of its
/// directory's file system, before anything is produced or written. Hostile or corrupt deltas
/// can claim targets of exabytes; without this check the apply would fill the disk first.
pub fn ensure_free_space(target: &Path, length: u64) -> Result<()> {
    let dir = parent_dir(target);
    match scratch::available_space(&dir) {
        Some(available) if length > available => Err(Error::new(
            code::IO_BINARY_FILE_WRITER_FAILED_OPEN,
            format!(
                "Failed to open file: {}. Not enough free space: the target needs {length} bytes, {available} bytes are available in {}",
                target.display(),
                dir.display()
            ),
        )),
        _ => Ok(()),
    }
}

impl PendingTarget {
    /// Creates the temporary file in the target's directory and reserves the blocks of its
    /// `length` bytes (upstream's 20302 on failure), so the file system cannot run out of
    /// space for the target while intermediates take what is left.
    pub fn create(target: &Path, length: u64) -> Result<Self> {
        let pending = Self::create_unreserved(target)?;
        let file = pending.file();
        match scratch::reserve(file, length) {
            Ok(_) => Ok(pending),
            Err(e) => Err(Error::new(
                code::IO_BINARY_FILE_WRITER_FAILED_OPEN,
                format!(
                    "Failed to open file: {}. errno: {}",
                    target.display(),
                    e.raw_os_error().unwrap_or(0)
                ),
            )
            .with_context(format!("reserving {length} bytes for the target: {e}"))),
        }
    }

    /// The temporary file.
    fn file(&self) -> &File {
        self.file.file()
    }

    /// [`PendingTarget::create`] without reserving space.
    fn create_unreserved(target: &Path) -> Result<Self> {
        Self::create_with(target, AtomicFile::create)
    }

    /// Creates the temporary file with `create` (unnamed if possible, or named).
    fn create_with(
        target: &Path,
        create: impl FnOnce(&Path) -> std::io::Result<AtomicFile>,
    ) -> Result<Self> {
        if target.is_dir() {
            return Err(open_error(
                target,
                &std::io::Error::from_raw_os_error(libc::EISDIR),
            ));
        }
        Ok(PendingTarget {
            target: target.to_path_buf(),
            file: create(target).map_err(|e| open_error(target, &e))?,
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
        let mut buf = crate::io::scratch::buffer(WRITE_CHUNK, "the target's write buffer")
            .map_err(write_error)?;
        let mut file: &File = self.file();
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
        self.file.sync().map_err(write_error)?;
        let PendingTarget { target, file } = self;
        file.publish().map_err(|e| open_error(&target, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_names(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(crate::io::atomic::TEMP_PREFIX))
            .collect()
    }

    fn item(bytes: &[u8]) -> Item {
        Item::with_sha256(bytes.len() as u64, Sha256::digest(bytes).into())
    }

    #[test]
    fn unnamed_temp_has_no_name_until_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        let pending = PendingTarget::create(&target, 5).unwrap();
        assert!(!pending.file.is_named(), "O_TMPFILE in use");
        assert!(temp_names(dir.path()).is_empty());
        pending
            .write_and_commit(&b"hello"[..], &item(b"hello"))
            .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"hello");
        assert!(temp_names(dir.path()).is_empty());
        // Replacing an existing target.
        let pending = PendingTarget::create(&target, 5).unwrap();
        pending
            .write_and_commit(&b"world"[..], &item(b"world"))
            .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"world");
    }

    #[test]
    fn both_kinds_leave_nothing_on_failure() {
        for named in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("t");
            std::fs::write(&target, b"old").unwrap();
            let create = |t: &Path| {
                if named {
                    PendingTarget::create_with(t, AtomicFile::create_named)
                } else {
                    PendingTarget::create(t, 5)
                }
            };
            let err = create(&target)
                .unwrap()
                .write_and_commit(&b"hello"[..], &item(b"other"))
                .unwrap_err();
            assert_eq!(err.code, code::DIFF_VERIFY_HASH_FAILURE);
            assert_eq!(std::fs::read(&target).unwrap(), b"old");
            assert!(temp_names(dir.path()).is_empty(), "named: {named}");
            create(&target)
                .unwrap()
                .write_and_commit(&b"hello"[..], &item(b"hello"))
                .unwrap();
            assert_eq!(std::fs::read(&target).unwrap(), b"hello");
            assert!(temp_names(dir.path()).is_empty(), "named: {named}");
        }
    }

    #[test]
    fn errno_is_found_behind_wrappers() {
        let dir = tempfile::tempdir().unwrap();
        let err = tempfile::Builder::new()
            .tempfile_in(dir.path().join("missing"))
            .unwrap_err();
        assert_eq!(errno(&err), libc::ENOENT);
    }
}
