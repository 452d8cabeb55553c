//! The C boundary: upstream's legacy apply API (`legacy_adudiffapply.h`), exactly as the Device
//! Update agent `dlopen`s and calls it.
//!
//! Every entry point catches panics, validates its handle against a registry of live sessions
//! (a NULL, closed or foreign handle yields an error instead of undefined behaviour), and never
//! lets a Rust error escape as anything but a code and a text stored in the session.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::error::{code, Error};

/// Opaque handle of a legacy apply session (`void *` in C).
#[allow(non_camel_case_types)]
pub type adu_apply_handle = *mut c_void;

/// Per-session state: the errors of the last call and the optional log path.
#[derive(Default)]
struct SessionState {
    errors: Vec<(u32, CString)>,
    log_path: Option<PathBuf>,
}

impl SessionState {
    fn record(&mut self, err: &Error) {
        let text = CString::new(err.text().replace('\0', "\\0")).unwrap_or_default();
        self.errors.push((err.code, text));
    }
}

/// The token a handle points to; its address is the registry key.
struct SessionToken {
    _not_zero_sized: u8,
}

type Registry = Mutex<HashMap<usize, Arc<Mutex<SessionState>>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lookup(handle: adu_apply_handle) -> Option<Arc<Mutex<SessionState>>> {
    if handle.is_null() {
        return None;
    }
    lock(registry()).get(&(handle as usize)).cloned()
}

fn path_arg(ptr: *const c_char, name: &str) -> Result<PathBuf, Error> {
    if ptr.is_null() {
        return Err(Error::new(
            code::STANDARD_LIBRARY_EXCEPTION,
            format!("Failed to apply diff. Exception: {name} is NULL"),
        ));
    }
    // SAFETY: the caller passes a NUL-terminated string (C API contract); NULL was checked above.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    Ok(PathBuf::from(OsStr::from_bytes(bytes)))
}

/// Creates a session. Never returns NULL unless memory is exhausted.
#[no_mangle]
pub extern "C" fn adu_diff_apply_create_session() -> adu_apply_handle {
    catch_unwind(|| {
        let token = Box::into_raw(Box::new(SessionToken { _not_zero_sized: 0 }));
        lock(registry()).insert(token as usize, Arc::default());
        token.cast::<c_void>()
    })
    .unwrap_or(std::ptr::null_mut())
}

/// Frees a session. NULL, unknown and already closed handles are ignored.
#[no_mangle]
pub extern "C" fn adu_diff_apply_close_session(handle: adu_apply_handle) {
    let _ = catch_unwind(|| {
        if handle.is_null() {
            return;
        }
        if lock(registry()).remove(&(handle as usize)).is_some() {
            // SAFETY: the key was in the registry, so `handle` came from `Box::into_raw` in
            // `adu_diff_apply_create_session` and has not been freed (removal is atomic).
            drop(unsafe { Box::from_raw(handle.cast::<SessionToken>()) });
        }
    });
}

/// Sets a file to which each apply appends a one-line summary. Upstream ignores this call; we
/// honour it when the path is non-NULL. Returns 0 (also for an unknown handle, like upstream).
#[no_mangle]
pub extern "C" fn adu_diff_apply_set_log_path(
    handle: adu_apply_handle,
    log_path: *const c_char,
) -> c_int {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if let Some(session) = lookup(handle) {
            lock(&session).log_path = path_arg(log_path, "log_path").ok();
        }
    }));
    0
}

/// Applies `diff_path` to `source_path`, writing `target_path`. Returns 0 on success, otherwise
/// the number of errors recorded in the session (1).
#[no_mangle]
pub extern "C" fn adu_diff_apply(
    handle: adu_apply_handle,
    source_path: *const c_char,
    diff_path: *const c_char,
    target_path: *const c_char,
) -> c_int {
    let Some(session) = lookup(handle) else {
        return 1;
    };
    let mut state = lock(&session);
    state.errors.clear();
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), Error> {
        let source = path_arg(source_path, "source_path")?;
        let delta = path_arg(diff_path, "diff_path")?;
        let target = path_arg(target_path, "target_path")?;
        let result = crate::apply::apply_files_with_report(&source, &delta, &target);
        if let Some(log) = state.log_path.as_deref() {
            log_apply(log, &source, &delta, &target, &result);
        }
        result.map(|_| ())
    }));
    let error = match outcome {
        Ok(Ok(())) => return 0,
        Ok(Err(err)) => err,
        Err(payload) => Error::new(
            code::STANDARD_LIBRARY_EXCEPTION,
            format!(
                "Failed to apply diff. Exception: internal error: {}",
                crate::error::panic_text(&*payload)
            ),
        ),
    };
    state.record(&error);
    state.errors.len() as c_int
}

/// Number of errors recorded by the last call on this session (0 for an unknown handle).
///
/// Declared `uint32_t` like upstream; the agent declares it as returning `size_t`, which is safe
/// because the value is always far below 2^32 and 32-bit results are zero-extended on x86-64 and
/// AArch64.
#[no_mangle]
pub extern "C" fn adu_diff_apply_get_error_count(handle: adu_apply_handle) -> u32 {
    catch_unwind(|| lookup(handle).map_or(0, |s| lock(&s).errors.len() as u32)).unwrap_or(0)
}

/// Code of error `index`, or 0 when out of range or for an unknown handle.
#[no_mangle]
pub extern "C" fn adu_diff_apply_get_error_code(handle: adu_apply_handle, index: u32) -> u32 {
    catch_unwind(|| {
        lookup(handle).map_or(0, |s| {
            lock(&s)
                .errors
                .get(index as usize)
                .map_or(0, |(code, _)| *code)
        })
    })
    .unwrap_or(0)
}

/// Text of error `index`, or NULL when out of range or for an unknown handle. The pointer stays
/// valid until the next call on the same session or its close.
#[no_mangle]
pub extern "C" fn adu_diff_apply_get_error_text(
    handle: adu_apply_handle,
    index: u32,
) -> *const c_char {
    catch_unwind(|| {
        lookup(handle).map_or(std::ptr::null(), |s| {
            lock(&s)
                .errors
                .get(index as usize)
                // The CString's heap buffer does not move while it stays in the session.
                .map_or(std::ptr::null(), |(_, text)| text.as_ptr())
        })
    })
    .unwrap_or(std::ptr::null())
}

/// Appends a one-line summary of an apply to the session's log file (best effort).
fn log_apply(
    log: &Path,
    source: &Path,
    delta: &Path,
    target: &Path,
    result: &Result<crate::apply::ApplyReport, Error>,
) {
    use std::io::Write;
    let outcome = match result {
        Ok(report) => format!("ok ({report})"),
        Err(e) => format!("error {}: {}", e.code, e.text().replace('\n', " | ")),
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(
            f,
            "adu_diff_apply source={} delta={} target={} -> {outcome}",
            source.display(),
            delta.display(),
            target.display()
        );
    }
}

/// Finds the zlib level that reproduces `compressed_file_path` (a gzip file) from
/// `uncompressed_file_path` with the `zlib_compression` recipe's settings (memLevel 9, OS byte 3),
/// trying upstream's order 9, 1, -1, 5, 2, 3, 4, 6, 7, 8. Returns 0 and stores the level, or an
/// error code directly (no session): 40005 when no level matches, 20300 when a file cannot be
/// opened, 1 for NULL arguments or an internal error.
///
/// # Safety
/// Non-NULL paths must be NUL-terminated strings; a non-NULL `compression_level` must point to a
/// writable `int32_t`.
#[no_mangle]
pub unsafe extern "C" fn diff_get_zlib_compression_level(
    uncompressed_file_path: *const c_char,
    compressed_file_path: *const c_char,
    compression_level: *mut i32,
) -> u32 {
    catch_unwind(|| -> u32 {
        if compression_level.is_null() {
            return code::STANDARD_LIBRARY_EXCEPTION;
        }
        let paths = path_arg(uncompressed_file_path, "uncompressed_file_path")
            .and_then(|u| Ok((u, path_arg(compressed_file_path, "compressed_file_path")?)));
        let (uncompressed, compressed) = match paths {
            Ok(p) => p,
            Err(e) => return e.code,
        };
        // Private copies (memory, or temp files when memory is short): the caller's files are
        // never mapped, so truncating them meanwhile cannot raise SIGBUS in the host.
        let scratch = crate::io::Scratch::in_dir(&std::env::temp_dir());
        let copy = |path: &std::path::Path| crate::apply::private_copy(path, &scratch);
        let files = copy(&uncompressed).and_then(|u| Ok((u, copy(&compressed)?)));
        match files {
            Err(e) => e.code,
            Ok((u, c)) => {
                match crate::codec::find_zlib_level(&u, &c, crate::format::ZlibInit::Gzip) {
                    Some(level) => {
                        // SAFETY: non-NULL (checked above); the caller provides a writable int32_t.
                        unsafe { compression_level.write(level) };
                        0
                    }
                    None => code::API_UNKNOWN_ZLIB_COMPRESSION,
                }
            }
        }
    })
    .unwrap_or(code::STANDARD_LIBRARY_EXCEPTION)
}
