//! The C boundary: upstream's legacy apply API (`legacy_adudiffapply.h`), exactly as the Device
//! Update agent `dlopen`s and calls it (see `docs/C-API.md`).
//!
//! Three rules hold for every entry point:
//!
//! * **One panic boundary.** Each body runs inside `boundary`, and nothing happens outside it:
//!   handle lookup, locking, argument conversion and the apply itself. A panic never unwinds into
//!   C; the caller gets the fallback value of the return type ([`CReturn::on_panic`]).
//! * **Handles are never reused.** A handle is a number from a counter, not an address: every
//!   session gets the next number and no number is handed out twice, so a closed handle stays
//!   unknown forever and cannot reach a later session. Handles are only compared with the
//!   registry's keys, never dereferenced; NULL, closed and foreign handles are reported as
//!   errors or ignored.
//! * **Safety contracts are stated.** Entry points that read or write through a pointer argument
//!   are `unsafe extern "C"` with a `# Safety` section. Those whose arguments are only compared by
//!   value (handles, indexes) are sound for any argument, so they are safe `extern "C"` functions,
//!   and each says so. (`unsafe` on a function does not change its C ABI.)
//!
//! Errors never escape as anything but a code and a text stored in the session.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{code, Error};
use crate::sync::lock;

// The panic boundary catches panics with `catch_unwind`, which only works when panics unwind.
// Built with `panic = "abort"` (a common embedded profile setting), a panic would abort the
// Device Update agent's whole process instead of returning an error code, so refuse to build.
// tests/panic_abort.rs checks that this error fires.
#[cfg(panic = "abort")]
compile_error!(
    "libadudiffapi must be built with panic = \"unwind\": its C boundary turns panics into error \
     codes with catch_unwind, and panic = \"abort\" would abort the agent process instead \
     (set panic = \"unwind\" in the profile, or drop -C panic=abort from RUSTFLAGS)"
);

/// Opaque handle of a legacy apply session (`void *` in C).
#[allow(non_camel_case_types)]
pub type adu_apply_handle = *mut c_void;

// ---------------------------------------------------------------------------------------------
// The panic boundary
// ---------------------------------------------------------------------------------------------

/// What an entry point's body produces, and what its C caller receives: the value converted, or
/// a fixed fallback when the body panicked. One implementation per kind of result of the C API.
pub trait CReturn {
    /// The C return type.
    type C;
    /// The C value for a completed body.
    fn into_c(self) -> Self::C;
    /// The C value when the body panicked.
    fn on_panic() -> Self::C;
}

/// Nothing to return (`void`).
impl CReturn for () {
    type C = ();
    fn into_c(self) {}
    fn on_panic() {}
}

/// A session handle: NULL when none could be created.
impl CReturn for adu_apply_handle {
    type C = adu_apply_handle;
    fn into_c(self) -> adu_apply_handle {
        self
    }
    fn on_panic() -> adu_apply_handle {
        std::ptr::null_mut()
    }
}

/// An error text: NULL when there is none.
impl CReturn for *const c_char {
    type C = *const c_char;
    fn into_c(self) -> *const c_char {
        self
    }
    fn on_panic() -> *const c_char {
        std::ptr::null()
    }
}

/// A count or code of recorded errors: 0, "none", when the body could not look.
impl CReturn for u32 {
    type C = u32;
    fn into_c(self) -> u32 {
        self
    }
    fn on_panic() -> u32 {
        0
    }
}

/// The number of errors of an apply: 1 (the apply failed) when it panicked.
impl CReturn for c_int {
    type C = c_int;
    fn into_c(self) -> c_int {
        self
    }
    fn on_panic() -> c_int {
        1
    }
}

/// A session-less status: 0, or the error's code; code 1 when the body panicked.
impl CReturn for Result<(), Error> {
    type C = u32;
    fn into_c(self) -> u32 {
        self.map_or_else(|e| e.code, |()| 0)
    }
    fn on_panic() -> u32 {
        code::STANDARD_LIBRARY_EXCEPTION
    }
}

/// Runs the body of an entry point, converting its result, or its panic, to the C value.
///
/// `AssertUnwindSafe`: after a caught panic the only state that outlives the call is the
/// registry and the sessions, each behind a `Mutex` whose poisoning [`lock`] takes over. Their
/// contents stay consistent: the registry is changed by single `insert`/`remove` calls, and a
/// session's error list is replaced as a whole by each call (an apply that panics leaves the
/// error recorded before it started, see [`adu_diff_apply`]).
fn boundary<R: CReturn>(body: impl FnOnce() -> R) -> R::C {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value.into_c(),
        Err(_) => R::on_panic(),
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

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

/// A live session, shared between the registry and the calls using it.
type Session = Arc<Mutex<SessionState>>;

/// The live sessions by handle, and the number the next session gets.
struct Registry {
    /// Never handed out twice: it only grows, and creation fails when it would wrap.
    next_id: usize,
    sessions: HashMap<usize, Session>,
}

impl Registry {
    fn new() -> Self {
        // 0 stays free: it would be the NULL handle.
        Registry {
            next_id: 1,
            sessions: HashMap::new(),
        }
    }

    /// Registers a new session under a fresh id; `None` once every id has been used (after
    /// 2^32 - 1 sessions on a 32-bit target; never on a 64-bit one).
    fn create(&mut self) -> Option<usize> {
        let id = self.next_id;
        self.next_id = id.checked_add(1)?;
        self.sessions.insert(id, Session::default());
        Some(id)
    }

    fn get(&self, id: usize) -> Option<Session> {
        self.sessions.get(&id).cloned()
    }

    fn remove(&mut self, id: usize) -> Option<Session> {
        self.sessions.remove(&id)
    }
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Registry::new()))
}

/// The handle of session `id`: the number itself, as an address-free pointer (never
/// dereferenced, only turned back into the number by [`session_id`]).
fn handle_of(id: usize) -> adu_apply_handle {
    std::ptr::without_provenance_mut(id)
}

/// The registry key a handle stands for.
fn session_id(handle: adu_apply_handle) -> usize {
    handle.addr()
}

/// The live session behind `handle` (`None` for NULL, closed and foreign handles).
fn lookup(handle: adu_apply_handle) -> Option<Session> {
    lock(registry()).get(session_id(handle))
}

/// Code 1 for a NULL pointer argument.
fn null_argument(name: &str) -> Error {
    Error::new(
        code::STANDARD_LIBRARY_EXCEPTION,
        format!("Failed to apply diff. Exception: {name} is NULL"),
    )
}

/// The path a C string argument names (code 1 for NULL).
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and unchanged until this
/// function returns.
unsafe fn path_arg(ptr: *const c_char, name: &str) -> Result<PathBuf, Error> {
    if ptr.is_null() {
        return Err(null_argument(name));
    }
    // SAFETY: non-NULL, and NUL-terminated and valid by this function's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    Ok(PathBuf::from(OsStr::from_bytes(bytes)))
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Creates a session. Returns NULL only when memory is exhausted or, on a 32-bit target, after
/// 2^32 - 1 sessions (handles are never reused).
///
/// Not `unsafe` in Rust: it takes no arguments.
#[no_mangle]
pub extern "C" fn adu_diff_apply_create_session() -> adu_apply_handle {
    boundary(|| {
        lock(registry())
            .create()
            .map_or(std::ptr::null_mut(), handle_of)
    })
}

/// Frees a session. NULL, unknown and already closed handles are ignored.
///
/// Not `unsafe` in Rust: any handle value is accepted, as it is only looked up in the registry of
/// live sessions, never dereferenced.
#[no_mangle]
pub extern "C" fn adu_diff_apply_close_session(handle: adu_apply_handle) {
    boundary(|| {
        // The session's state (its error texts) is freed here, or when a call still using it
        // on another thread returns.
        drop(lock(registry()).remove(session_id(handle)));
    })
}

/// Sets a file to which each apply appends a one-line summary. Upstream ignores this call; we
/// honour it when the path is non-NULL. Returns 0 (also for an unknown handle, like upstream).
///
/// # Safety
/// `log_path` is NULL or points to a NUL-terminated string that stays valid and unchanged until
/// the call returns. `handle` may be any value.
#[no_mangle]
pub unsafe extern "C" fn adu_diff_apply_set_log_path(
    handle: adu_apply_handle,
    log_path: *const c_char,
) -> c_int {
    boundary(|| {
        if let Some(session) = lookup(handle) {
            // SAFETY: the caller's contract for `log_path` (see # Safety).
            let path = unsafe { path_arg(log_path, "log_path") };
            lock(&session).log_path = path.ok();
        }
    });
    0
}

/// Applies `diff_path` to `source_path`, writing `target_path`. Returns 0 on success, otherwise
/// the number of errors recorded in the session (1).
///
/// # Safety
/// Each path is NULL (reported as error code 1) or points to a NUL-terminated string that stays
/// valid and unchanged until the call returns. `handle` may be any value: NULL, closed and
/// foreign handles return 1 and record nothing.
#[no_mangle]
pub unsafe extern "C" fn adu_diff_apply(
    handle: adu_apply_handle,
    source_path: *const c_char,
    diff_path: *const c_char,
    target_path: *const c_char,
) -> c_int {
    boundary(|| {
        let Some(session) = lookup(handle) else {
            return 1;
        };
        let mut state = lock(&session);
        // Recorded first, so that a panic below leaves the session reporting exactly what the
        // boundary returns: one error, code 1. (The apply itself reports its own panics as
        // errors; this covers the few steps around it.)
        state.errors.clear();
        state.record(&Error::new(
            code::STANDARD_LIBRARY_EXCEPTION,
            "Failed to apply diff. Exception: internal error",
        ));
        // SAFETY: the caller's contract for the three paths (see # Safety).
        let outcome = unsafe {
            apply_paths(
                source_path,
                diff_path,
                target_path,
                state.log_path.as_deref(),
            )
        };
        state.errors.clear();
        if let Err(error) = outcome {
            state.record(&error);
        }
        state.errors.len() as c_int
    })
}

/// The apply of [`adu_diff_apply`] from its C arguments, logged to `log` when set.
///
/// # Safety
/// As for [`adu_diff_apply`]'s paths.
unsafe fn apply_paths(
    source_path: *const c_char,
    diff_path: *const c_char,
    target_path: *const c_char,
    log: Option<&Path>,
) -> Result<(), Error> {
    // SAFETY: this function's contract: `source_path` is NULL or a valid C string.
    let source = unsafe { path_arg(source_path, "source_path") }?;
    // SAFETY: likewise for `diff_path`.
    let delta = unsafe { path_arg(diff_path, "diff_path") }?;
    // SAFETY: likewise for `target_path`.
    let target = unsafe { path_arg(target_path, "target_path") }?;
    let result = crate::apply::apply_files_with_report(&source, &delta, &target);
    if let Some(log) = log {
        log_apply(log, &source, &delta, &target, &result);
    }
    result.map(|_| ())
}

/// Number of errors recorded by the last call on this session (0 for an unknown handle).
///
/// Declared `uint32_t` like upstream; the agent declares it as returning `size_t`, which is safe
/// because the value is always far below 2^32 and 32-bit results are zero-extended on x86-64 and
/// AArch64.
///
/// Not `unsafe` in Rust: any handle value is accepted (only looked up, never dereferenced).
#[no_mangle]
pub extern "C" fn adu_diff_apply_get_error_count(handle: adu_apply_handle) -> u32 {
    boundary(|| lookup(handle).map_or(0, |s| lock(&s).errors.len() as u32))
}

/// Code of error `index`, or 0 when out of range or for an unknown handle.
///
/// Not `unsafe` in Rust: any handle and index are accepted (only looked up and compared).
#[no_mangle]
pub extern "C" fn adu_diff_apply_get_error_code(handle: adu_apply_handle, index: u32) -> u32 {
    boundary(|| {
        lookup(handle).map_or(0, |s| {
            lock(&s)
                .errors
                .get(index as usize)
                .map_or(0, |(code, _)| *code)
        })
    })
}

/// Text of error `index`, or NULL when out of range or for an unknown handle. The pointer stays
/// valid until the next call on the same session or its close.
///
/// Not `unsafe` in Rust: any handle and index are accepted (only looked up and compared); reading
/// the returned text is up to the caller, within the validity stated above.
#[no_mangle]
pub extern "C" fn adu_diff_apply_get_error_text(
    handle: adu_apply_handle,
    index: u32,
) -> *const c_char {
    boundary(|| {
        lookup(handle).map_or(std::ptr::null(), |s| {
            lock(&s)
                .errors
                .get(index as usize)
                // The CString's heap buffer does not move while it stays in the session.
                .map_or(std::ptr::null(), |(_, text)| text.as_ptr())
        })
    })
}

/// `adudiffapi version <version>`, as `strings libadudiffapi.so | grep 'adudiffapi version'`
/// shows it in the library file (docs/DEVICE.md). One literal, so its bytes are contiguous in
/// the file; the NULs around it keep `strings` from joining it with neighbouring text; every
/// apply log line uses it, so the linker keeps it. Not an exported symbol: the symbol list
/// stays Microsoft's.
const VERSION_TAG: &str = concat!("\0adudiffapi version ", env!("CARGO_PKG_VERSION"), "\0");

/// The file this library was loaded from, as the process's memory map (`/proc/self/maps`)
/// shows it: the mapping that holds this function's code. What the dynamic loader really
/// resolved, whatever `LD_LIBRARY_PATH` or the loader cache say from a shell.
fn loaded_from() -> Option<String> {
    let here = loaded_from as fn() -> Option<String> as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        // start-end perms offset dev inode, then the path after padding spaces.
        let mut fields = line.splitn(6, ' ');
        let (start, end) = fields.next()?.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        let path = fields.nth(4)?.trim_start();
        (start <= here && here < end && !path.is_empty()).then(|| path.to_owned())
    })
}

/// Appends a one-line summary of an apply to the session's log file (best effort), starting
/// with the library's version and the file it was loaded from.
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
            "{} ({}): adu_diff_apply source={} delta={} target={} -> {outcome}",
            VERSION_TAG.trim_matches('\0'),
            loaded_from().as_deref().unwrap_or("path unknown"),
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
/// Non-NULL paths must be NUL-terminated strings that stay valid and unchanged until the call
/// returns; a non-NULL `compression_level` must point to a writable `int32_t`.
#[no_mangle]
pub unsafe extern "C" fn diff_get_zlib_compression_level(
    uncompressed_file_path: *const c_char,
    compressed_file_path: *const c_char,
    compression_level: *mut i32,
) -> u32 {
    boundary(|| -> Result<(), Error> {
        if compression_level.is_null() {
            return Err(null_argument("compression_level"));
        }
        // SAFETY: the caller's contract (see # Safety): the path is NULL or a valid C string.
        let uncompressed = unsafe { path_arg(uncompressed_file_path, "uncompressed_file_path") }?;
        // SAFETY: likewise for `compressed_file_path`.
        let compressed = unsafe { path_arg(compressed_file_path, "compressed_file_path") }?;
        // Private copies (memory, or temp files when memory is short): the caller's files are
        // never mapped, so truncating them meanwhile cannot raise SIGBUS in the host.
        let scratch = crate::io::Scratch::in_dir(&std::env::temp_dir());
        let uncompressed = crate::apply::private_copy(&uncompressed, &scratch)?;
        let compressed = crate::apply::private_copy(&compressed, &scratch)?;
        let init = crate::codec::ZlibInit::Gzip;
        let level = crate::codec::find_zlib_level(&uncompressed, &compressed, init)
            .ok_or_else(|| Error::new(code::API_UNKNOWN_ZLIB_COMPRESSION, "no level matches"))?;
        // SAFETY: non-NULL (checked above); writable by the caller's contract.
        unsafe { compression_level.write(level) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_only_grow_and_creation_stops_before_wrapping() {
        let mut registry = Registry::new();
        let a = registry.create().unwrap();
        let b = registry.create().unwrap();
        assert_eq!((a, b), (1, 2));
        assert!(registry.remove(a).is_some());
        assert!(registry.remove(a).is_none());
        assert_eq!(registry.create(), Some(3));
        assert!(registry.get(a).is_none());
        registry.next_id = usize::MAX - 1;
        assert_eq!(registry.create(), Some(usize::MAX - 1));
        // usize::MAX itself is never handed out: the counter cannot move past it.
        assert_eq!(registry.create(), None);
        assert_eq!(registry.create(), None);
        assert_eq!(registry.sessions.len(), 3);
    }

    #[test]
    fn handles_round_trip_through_pointers() {
        for id in [1, 2, 0x1234_5678, usize::MAX - 1] {
            assert_eq!(session_id(handle_of(id)), id);
        }
        assert!(handle_of(0).is_null());
    }

    #[test]
    fn boundary_returns_each_types_fallback_on_panic() {
        fn panics<T>() -> T {
            panic!("test panic inside the boundary")
        }
        boundary::<()>(panics);
        assert!(boundary::<adu_apply_handle>(panics).is_null());
        assert!(boundary::<*const c_char>(panics).is_null());
        assert_eq!(boundary::<u32>(panics), 0);
        assert_eq!(boundary::<c_int>(panics), 1);
        assert_eq!(boundary::<Result<(), Error>>(panics), 1);
        // And the values themselves when nothing panics.
        assert_eq!(boundary(|| 7u32), 7);
        assert_eq!(boundary(|| -> c_int { 0 }), 0);
        assert_eq!(boundary(|| Err::<(), _>(Error::new(40005, "x"))), 40005);
        assert_eq!(boundary(|| Ok::<(), Error>(())), 0);
    }
}
