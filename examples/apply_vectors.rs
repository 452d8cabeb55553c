//! Applies golden vectors through the exported C functions (in process) and checks the results;
//! small enough to run under Valgrind:
//!
//! ```text
//! cargo build --example apply_vectors
//! valgrind --error-exitcode=99 --leak-check=full target/debug/examples/apply_vectors
//! valgrind --tool=helgrind --error-exitcode=99 target/debug/examples/apply_vectors --threads 3
//! ```
//!
//! Arguments: `[--threads N] [VECTOR…]` (default: a few vectors covering every codec, one
//! thread). Exits 1 if any result differs from the vector's expectation.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use adudiffapi::ffi::*;

const DEFAULT: &[&str] = &[
    "slice_basic",
    "chain_of_slices",
    "all_zeros_in_chain",
    "bspatch_slice_dictionary",
    "zlib_compression_gz_level_default",
    "zlib_decompression_zlib",
    "zstd_patch_from_source",
    "nested_archive",
    "legacy_v0_basic_recipes",
    "malformed_corrupt_bsdiff_payload",
    "malformed_wrong_magic",
];

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Applies one vector; returns a description of the mismatch, if any.
fn check(dir: &Path, target: &Path) -> Result<(), String> {
    let session = adu_diff_apply_create_session();
    let (s, d, t) = (
        cpath(&dir.join("source")),
        cpath(&dir.join("delta")),
        cpath(target),
    );
    let _ = std::fs::remove_file(target);
    // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
    let rc = unsafe { adu_diff_apply(session, s.as_ptr(), d.as_ptr(), t.as_ptr()) };
    let outcome = if rc == 0 {
        Ok(())
    } else {
        let code = adu_diff_apply_get_error_code(session, 0);
        let text = adu_diff_apply_get_error_text(session, 0);
        // SAFETY: non-null text from the library, valid until the next call on the session.
        let text = if text.is_null() {
            String::new()
        } else {
            // SAFETY: non-null text from the library, valid until the next call on the session.
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned()
        };
        Err(format!("{code}: {text}"))
    };
    adu_diff_apply_close_session(session);
    let expected = dir.join("target");
    match (expected.exists(), outcome) {
        (true, Ok(())) => {
            if std::fs::read(target).unwrap() == std::fs::read(&expected).unwrap() {
                Ok(())
            } else {
                Err("wrong target bytes".into())
            }
        }
        (true, Err(e)) => Err(format!("expected success, got {e}")),
        (false, Ok(())) => Err("expected an error, got success".into()),
        (false, Err(_)) => Ok(()),
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut threads = 1;
    if args.first().map(String::as_str) == Some("--threads") {
        threads = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1);
        args.drain(..2.min(args.len()));
    }
    let names: Vec<String> = if args.is_empty() {
        DEFAULT.iter().map(|s| s.to_string()).collect()
    } else {
        args
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let work = std::env::temp_dir().join(format!("apply_vectors-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (names, root, work) = (&names, &root, &work);
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for name in names {
                        let dir: PathBuf = root.join(name);
                        let target = work.join(format!("{name}-{t}"));
                        if let Err(e) = check(&dir, &target) {
                            failures.push(format!("{name} (thread {t}): {e}"));
                        }
                        let _ = std::fs::remove_file(&target);
                    }
                    failures
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let _ = std::fs::remove_dir_all(&work);
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    println!(
        "{} vectors x {threads} threads: {} failures",
        names.len(),
        failures.len()
    );
    std::process::exit(i32::from(!failures.is_empty()));
}
