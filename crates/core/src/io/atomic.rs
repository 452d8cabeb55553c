//! Files published atomically: written beside their final path under no name (or a temporary
//! one), synced, then renamed over the final path, and the directory synced. Readers see the old
//! file or the complete new one, never a partial file, also after a crash.
//!
//! The temporary file is unnamed while it is written (`O_TMPFILE`), so a process killed meanwhile
//! leaves nothing behind. At publication it gets a unique `.adudiff-*.partial` name with `linkat`
//! through `/proc/self/fd/N`, which is then renamed over the final path. A kill can leave a
//! (complete) named temporary file only between that `linkat` and the `rename`. Where `O_TMPFILE`
//! or `/proc` is unavailable, a named temporary file is used from the start (removed when the
//! [`AtomicFile`] is dropped unpublished, but left behind by a kill).
//!
//! The applier's target (`execute::output`) and every file the tools write go through here.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Name prefix of the temporary files (`.adudiff-XXXXXX.partial`).
pub const TEMP_PREFIX: &str = ".adudiff-";
/// Name suffix of the temporary files.
pub const TEMP_SUFFIX: &str = ".partial";

/// The directory `path` lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The temporary file behind an [`AtomicFile`].
enum Temp {
    /// Opened with `O_TMPFILE`: no directory entry until publication.
    Unnamed(File),
    /// Fallback: a named temporary file (deleted on drop).
    Named(tempfile::NamedTempFile),
}

/// A file being written for `path`: nothing appears there until [`AtomicFile::publish`], and
/// dropping it unpublished leaves nothing behind. Created with mode 0600.
pub struct AtomicFile {
    path: PathBuf,
    temp: Temp,
}

/// Opens an unnamed temporary file in `dir` (`O_TMPFILE`). `Ok(None)` when the kernel or the file
/// system does not support it, or `/proc` (needed to name it at publication) is missing; other
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

impl AtomicFile {
    /// Starts a file for `path`, unnamed if the file system allows, else named (the fallback).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        match open_unnamed(&parent_dir(path))? {
            Some(file) => Ok(AtomicFile {
                path: path.to_path_buf(),
                temp: Temp::Unnamed(file),
            }),
            None => Self::create_named(path),
        }
    }

    /// Starts a file for `path` that has a temporary name from the start.
    pub fn create_named(path: &Path) -> std::io::Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(TEMP_SUFFIX)
            .tempfile_in(parent_dir(path))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            temp: Temp::Named(temp),
        })
    }

    /// The file to write.
    pub fn file(&self) -> &File {
        match &self.temp {
            Temp::Unnamed(file) => file,
            Temp::Named(temp) => temp.as_file(),
        }
    }

    /// Whether the file already has a (temporary) name, i.e. `O_TMPFILE` was not available.
    pub fn is_named(&self) -> bool {
        matches!(self.temp, Temp::Named(_))
    }

    /// Writes the file's data and metadata to the device (`fsync`). Call it before
    /// [`AtomicFile::publish`]; [`AtomicFile::commit`] does both.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file().sync_all()
    }

    /// Puts the file at its path (replacing what was there) and syncs the directory (best
    /// effort). On failure the temporary file is removed.
    pub fn publish(self) -> std::io::Result<()> {
        let AtomicFile { path, temp } = self;
        let dir = parent_dir(&path);
        // On a failed rename the PersistError drops the temporary file, which deletes its name.
        match temp {
            Temp::Named(named) => {
                named.persist(&path).map_err(|e| e.error)?;
            }
            Temp::Unnamed(file) => {
                let linked = tempfile::Builder::new()
                    .prefix(TEMP_PREFIX)
                    .suffix(TEMP_SUFFIX)
                    .make_in(&dir, |temp_path| link_unnamed(&file, temp_path))?;
                linked.persist(&path).map_err(|e| e.error)?;
            }
        }
        if let Ok(dir) = File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// [`AtomicFile::sync`], then [`AtomicFile::publish`].
    pub fn commit(self) -> std::io::Result<()> {
        self.sync()?;
        self.publish()
    }
}

/// Writes `bytes` to `path` atomically with mode 0644, creating its directory if needed (the
/// tools' output files).
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(parent_dir(path))?;
    let atomic = AtomicFile::create(path)?;
    let mut file = atomic.file();
    file.write_all(bytes)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    atomic.commit()
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

    #[test]
    fn parent_dir_of_a_bare_name_is_the_current_directory() {
        assert_eq!(parent_dir(Path::new("t")), Path::new("."));
        assert_eq!(parent_dir(Path::new("/a/b/t")), Path::new("/a/b"));
        assert_eq!(parent_dir(Path::new("a/t")), Path::new("a"));
    }

    #[test]
    fn write_file_replaces_with_mode_0644_and_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/sub/out");
        write_file(&path, b"first").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        write_file(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert!(temp_names(&parent_dir(&path)).is_empty());
    }

    #[test]
    fn nothing_appears_before_publication_and_nothing_stays_after_a_drop() {
        for named in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t");
            std::fs::write(&path, b"old").unwrap();
            let create = || {
                if named {
                    AtomicFile::create_named(&path)
                } else {
                    AtomicFile::create(&path)
                }
            };
            let atomic = create().unwrap();
            assert_eq!(
                atomic.is_named(),
                named,
                "O_TMPFILE in use unless asked for a name"
            );
            atomic.file().write_all(b"new").unwrap();
            drop(atomic);
            assert_eq!(std::fs::read(&path).unwrap(), b"old");
            assert!(temp_names(dir.path()).is_empty(), "named: {named}");

            let atomic = create().unwrap();
            atomic.file().write_all(b"new").unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"old");
            atomic.commit().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"new");
            assert!(temp_names(dir.path()).is_empty(), "named: {named}");
        }
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/t");
        for result in [AtomicFile::create(&path), AtomicFile::create_named(&path)] {
            let err = result.err().expect("no directory");
            assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        }
    }
}
