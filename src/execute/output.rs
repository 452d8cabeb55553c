//! Writing the target: into a temporary file beside it, hashed while written, synced and renamed
//! into place only when complete and verified. On any failure the temporary file is removed and an
//! existing target is left untouched.
//!
//! The temporary file is unnamed while it is written (`O_TMPFILE`), so a process killed mid-apply
//! leaves nothing behind. At commit it is synced, given a unique `.adudiff-*.partial` name with
//! `linkat` through `/proc/self/fd/N`, renamed over the target, and the directory is synced. A
//! kill can leave a (complete) named temporary file only between that `linkat` and the `rename`.
//! Where `O_TMPFILE` or `/proc` is unavailable, a named temporary file is used from the start
//! (removed on failure, but left behind by a kill).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{code, Error, Result};
use crate::format::model::Item;
use crate::io::scratch;

/// Size of the blocks moved from the producer to the file.
const WRITE_CHUNK: usize = 1 << 20;

/// Name pattern of the temporary files (`.adudiff-XXXXXX.partial`).
const TEMP_PREFIX: &str = ".adudiff-";
const TEMP_SUFFIX: &str = ".partial";

/// The temporary file behind a [`PendingTarget`].
enum Temp {
    /// Opened with `O_TMPFILE`: no directory entry until commit.
    Unnamed(File),
    /// Fallback: a named temporary file (deleted on drop).
    Named(tempfile::NamedTempFile),
}

/// A target file under construction.
pub struct PendingTarget {
    target: PathBuf,
    temp: Temp,
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

/// Opens an unnamed temporary file in `dir` (`O_TMPFILE`). `Ok(None)` when the kernel or the file
/// system does not support it, or `/proc` (needed to name it at commit) is missing; other
/// failures (no such directory, permission denied, read-only file system…) are errors.
fn open_unnamed(dir: &Path) -> std::io::Result<Option<File>> {
    if !Path::new("/proc/self/fd").is_dir() {
        return Ok(None);
    }
    match OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir)
    {
        Ok(file) => Ok(Some(file)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Gives the unnamed `file` the new name `path` (`linkat` via `/proc/self/fd`).
fn link_unnamed(file: &File, path: &Path) -> std::io::Result<()> {
    let proc_path = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let new_path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: both paths are NUL-terminated strings that outlive the call; `file` keeps the
    // descriptor open.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc_path.as_ptr(),
            libc::AT_FDCWD,
            new_path.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The directory a target path lives in (`.` for a bare file name).
pub fn target_dir(target: &Path) -> PathBuf {
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Refuses (upstream's 20302) a target of `length` bytes that cannot fit in the free space of its
/// directory's file system, before anything is produced or written. Hostile or corrupt deltas
/// can claim targets of exabytes; without this check the apply would fill the disk first.
pub fn ensure_free_space(target: &Path, length: u64) -> Result<()> {
    let dir = target_dir(target);
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
        match &self.temp {
            Temp::Unnamed(file) => file,
            Temp::Named(temp) => temp.as_file(),
        }
    }

    /// [`PendingTarget::create`] without reserving space.
    fn create_unreserved(target: &Path) -> Result<Self> {
        if target.is_dir() {
            return Err(open_error(
                target,
                &std::io::Error::from_raw_os_error(libc::EISDIR),
            ));
        }
        let temp = match open_unnamed(&target_dir(target)) {
            Ok(Some(file)) => Temp::Unnamed(file),
            Ok(None) => return Self::create_named(target),
            Err(e) => return Err(open_error(target, &e)),
        };
        Ok(PendingTarget {
            target: target.to_path_buf(),
            temp,
        })
    }

    /// [`PendingTarget::create`] with a named temporary file (the fallback).
    fn create_named(target: &Path) -> Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(TEMP_SUFFIX)
            .tempfile_in(target_dir(target))
            .map_err(|e| open_error(target, &e))?;
        Ok(PendingTarget {
            target: target.to_path_buf(),
            temp: Temp::Named(temp),
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
        file.sync_all().map_err(write_error)?;
        let PendingTarget { target, temp } = self;
        let dir = target_dir(&target);
        // On a failed rename the PersistError drops the temporary file, which deletes its name.
        match temp {
            Temp::Named(named) => {
                named
                    .persist(&target)
                    .map_err(|e| open_error(&target, &e.error))?;
            }
            Temp::Unnamed(file) => {
                let linked = tempfile::Builder::new()
                    .prefix(TEMP_PREFIX)
                    .suffix(TEMP_SUFFIX)
                    .make_in(&dir, |path| link_unnamed(&file, path))
                    .map_err(|e| open_error(&target, &e))?;
                linked
                    .persist(&target)
                    .map_err(|e| open_error(&target, &e.error))?;
            }
        }
        if let Ok(dir) = File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_names(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(TEMP_PREFIX))
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
        assert!(matches!(pending.temp, Temp::Unnamed(_)), "O_TMPFILE in use");
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
                    PendingTarget::create_named(t)
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
