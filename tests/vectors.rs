//! Every golden vector (made with Microsoft's reference library, see tests/vectors/PROVENANCE.md)
//! applied through the exported C functions, in process: byte-exact targets for good cases,
//! upstream's error codes for malformed ones, and never a partial or clobbered target.
//!
//! Expectations come from each `case.json`, with three documented differences from Microsoft's
//! 3.0.0, where it is wrong by our standard:
//! * `"expected_result": "error"` (Microsoft hangs or crashes): any non-zero code is required;
//! * a case where Microsoft writes wrong bytes with success (`microsoft_output_sha256` differs from
//!   `intended_target_sha256`): we must fail with 30009 (target hash mismatch);
//! * little-endian legacy (1.x) deltas, which Microsoft 3.0.0 cannot read: we must produce
//!   `intended_target`.

use std::ffi::{CStr, CString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use adudiffapi::ffi::*;
use serde_json::Value;

#[derive(Debug)]
enum Expect {
    Target(PathBuf),
    Codes(Vec<u32>),
    AnyError,
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn expectation(dir: &Path, case: &Value) -> Expect {
    let recipes: Vec<&str> = case["recipes_used"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let little_endian = case["byte_order"].as_str() == Some("little-endian");
    if little_endian && recipes.contains(&"legacy_v0") {
        return Expect::Target(dir.join("intended_target"));
    }
    if let (Some(ms), Some(intended)) = (
        case["microsoft_output_sha256"].as_str(),
        case["intended_target_sha256"].as_str(),
    ) {
        if ms != intended {
            return Expect::Codes(vec![30009]);
        }
    }
    match &case["expected_result"] {
        Value::Number(n) if n.as_u64() == Some(0) => Expect::Target(dir.join("target")),
        Value::Array(codes) => Expect::Codes(
            codes
                .iter()
                .filter_map(|c| c.as_u64())
                .map(|c| c as u32)
                .collect(),
        ),
        _ => Expect::AnyError,
    }
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Applies through the C functions; returns Ok(()) or the list of (code, text).
fn apply_c(source: &Path, delta: &Path, target: &Path) -> Result<(), Vec<(u32, String)>> {
    let session = adu_diff_apply_create_session();
    assert!(!session.is_null());
    let (s, d, t) = (cpath(source), cpath(delta), cpath(target));
    // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
    let rc = unsafe { adu_diff_apply(session, s.as_ptr(), d.as_ptr(), t.as_ptr()) };
    let count = adu_diff_apply_get_error_count(session);
    let mut errors = Vec::new();
    for i in 0..count {
        let code = adu_diff_apply_get_error_code(session, i);
        let text = adu_diff_apply_get_error_text(session, i);
        assert!(!text.is_null());
        // SAFETY: non-null text returned by the library, valid until the next call.
        let text = unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned();
        errors.push((code, text));
    }
    assert!(adu_diff_apply_get_error_text(session, count).is_null());
    assert_eq!(adu_diff_apply_get_error_code(session, count), 0);
    adu_diff_apply_close_session(session);
    assert_eq!(rc as u32, count, "return value is the error count");
    if rc == 0 {
        Ok(())
    } else {
        Err(errors)
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".adudiff-"))
        .collect()
}

fn run_case(dir: &Path) -> Result<(), String> {
    let case: Value = serde_json::from_slice(&fs::read(dir.join("case.json")).unwrap()).unwrap();
    let source = dir.join("source");
    if !source.exists() {
        return Ok(()); // swu_large_timing: inputs are recreated by the benchmark only
    }
    let expect = expectation(dir, &case);
    let work = tempfile::tempdir().unwrap();
    for pre_existing in [false, true] {
        let target = work.path().join("target.out");
        let _ = fs::remove_file(&target);
        if pre_existing {
            fs::write(&target, b"previous target").unwrap();
        }
        let outcome = apply_c(&source, &dir.join("delta"), &target);
        let left = leftovers(work.path());
        if !left.is_empty() {
            return Err(format!("temporary files left behind: {left:?}"));
        }
        match (&expect, outcome) {
            (Expect::Target(expected), Ok(())) => {
                if fs::read(&target).unwrap() != fs::read(expected).unwrap() {
                    return Err("target differs from the expected bytes".into());
                }
            }
            (Expect::Target(_), Err(errors)) => {
                return Err(format!("expected success, got {errors:?}"))
            }
            (Expect::Codes(_) | Expect::AnyError, Ok(())) => {
                return Err(format!("expected {expect:?}, got success"))
            }
            (Expect::Codes(codes), Err(errors)) => {
                let got: Vec<u32> = errors.iter().map(|e| e.0).collect();
                if &got != codes {
                    return Err(format!("expected codes {codes:?}, got {errors:?}"));
                }
                if let Some(texts) = case["expected_error_texts"].as_array() {
                    for (want, (_, text)) in texts.iter().filter_map(Value::as_str).zip(&errors) {
                        let first = text.split("\nCallstack:").next().unwrap();
                        if first != want {
                            return Err(format!("expected text {want:?}, got {text:?}"));
                        }
                    }
                }
            }
            (Expect::AnyError, Err(errors)) => {
                if errors.is_empty() || errors[0].0 == 0 {
                    return Err(format!("expected an error code, got {errors:?}"));
                }
            }
        }
        if !matches!(expect, Expect::Target(_)) {
            // A failed apply leaves no target, and never touches an existing one.
            match pre_existing {
                true => {
                    if fs::read(&target).unwrap() != b"previous target" {
                        return Err("existing target was modified by a failed apply".into());
                    }
                }
                false => {
                    if target.exists() {
                        return Err("a failed apply left a target file".into());
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn every_golden_vector_behaves_as_recorded() {
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut dirs: Vec<PathBuf> = fs::read_dir(vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").exists())
        .collect();
    dirs.sort();
    for dir in &dirs {
        ran += 1;
        let name = dir.file_name().unwrap().to_string_lossy();
        let case: Value =
            serde_json::from_slice(&fs::read(dir.join("case.json")).unwrap()).unwrap();
        println!("{name}: expecting {:?}", expectation(dir, &case));
        if let Err(why) = run_case(dir) {
            failures.push(format!(
                "{}: {why}",
                dir.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(ran >= 40, "only {ran} vectors found");
    assert!(
        failures.is_empty(),
        "{} of {ran} vectors failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn null_and_unknown_handles_are_errors_not_crashes() {
    let s = CString::new("/nonexistent").unwrap();
    assert_eq!(
        // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
        unsafe { adu_diff_apply(std::ptr::null_mut(), s.as_ptr(), s.as_ptr(), s.as_ptr()) },
        1
    );
    assert_eq!(adu_diff_apply_get_error_count(std::ptr::null_mut()), 0);
    assert!(adu_diff_apply_get_error_text(std::ptr::null_mut(), 0).is_null());
    let session = adu_diff_apply_create_session();
    assert_eq!(
        // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
        unsafe { adu_diff_apply(session, std::ptr::null(), s.as_ptr(), s.as_ptr()) },
        1
    );
    assert_eq!(adu_diff_apply_get_error_code(session, 0), 1);
    // SAFETY: a NULL path is allowed.
    let set = unsafe { adu_diff_apply_set_log_path(session, std::ptr::null()) };
    assert_eq!(set, 0);
    adu_diff_apply_close_session(session);
    // A closed handle is unknown now: errors, not use-after-free.
    assert_eq!(
        // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
        unsafe { adu_diff_apply(session, s.as_ptr(), s.as_ptr(), s.as_ptr()) },
        1
    );
    adu_diff_apply_close_session(session);
}

#[test]
fn missing_files_report_upstream_open_codes() {
    let dir = vectors_dir().join("slice_basic");
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("t");
    let missing = work.path().join("missing");
    let codes = |r: Result<(), Vec<(u32, String)>>| {
        r.unwrap_err().into_iter().map(|e| e.0).collect::<Vec<_>>()
    };
    assert_eq!(
        codes(apply_c(&dir.join("source"), &missing, &target)),
        vec![20300]
    );
    assert_eq!(
        codes(apply_c(&missing, &dir.join("delta"), &target)),
        vec![20300]
    );
    let no_dir = work.path().join("no/such/dir/t");
    assert_eq!(
        codes(apply_c(&dir.join("source"), &dir.join("delta"), &no_dir)),
        vec![20302]
    );
    assert_eq!(
        codes(apply_c(
            &dir.join("source"),
            &dir.join("delta"),
            work.path()
        )),
        vec![20302]
    );
}

#[test]
fn sessions_on_many_threads_are_independent() {
    let cases = [
        "slice_basic",
        "chain_of_slices",
        "remainder_slices",
        "bspatch_slice_dictionary",
        "zstd_patch_from_source",
        "zlib_compression_gz_level_default",
    ];
    let work = tempfile::tempdir().unwrap();
    std::thread::scope(|scope| {
        for round in 0..3 {
            for case in cases {
                let work = work.path();
                scope.spawn(move || {
                    let dir = vectors_dir().join(case);
                    let target = work.join(format!("{case}-{round}"));
                    apply_c(&dir.join("source"), &dir.join("delta"), &target).unwrap();
                    assert_eq!(
                        fs::read(&target).unwrap(),
                        fs::read(dir.join("target")).unwrap()
                    );
                    // And an error on the same thread's next session is its own.
                    let err = apply_c(&dir.join("delta"), &dir.join("delta"), &target).unwrap_err();
                    assert_eq!(err[0].0, 1);
                });
            }
        }
    });
}

#[test]
fn one_session_is_reusable_and_errors_reset_per_call() {
    let session = adu_diff_apply_create_session();
    let work = tempfile::tempdir().unwrap();
    let good = vectors_dir().join("slice_basic");
    let (src, delta) = (cpath(&good.join("source")), cpath(&good.join("delta")));
    let bad = cpath(&vectors_dir().join("malformed_wrong_magic/delta"));
    let target = cpath(&work.path().join("t"));
    for _ in 0..3 {
        assert_eq!(
            // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
            unsafe { adu_diff_apply(session, src.as_ptr(), bad.as_ptr(), target.as_ptr()) },
            1
        );
        assert_eq!(adu_diff_apply_get_error_code(session, 0), 30000);
        assert_eq!(
            // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
            unsafe { adu_diff_apply(session, src.as_ptr(), delta.as_ptr(), target.as_ptr()) },
            0
        );
        assert_eq!(adu_diff_apply_get_error_count(session), 0);
    }
    adu_diff_apply_close_session(session);
}

#[test]
fn log_path_receives_one_line_per_apply() {
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("apply.log");
    let good = vectors_dir().join("slice_basic");
    let session = adu_diff_apply_create_session();
    assert_eq!(
        // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
        unsafe { adu_diff_apply_set_log_path(session, cpath(&log).as_ptr()) },
        0
    );
    let (src, delta) = (cpath(&good.join("source")), cpath(&good.join("delta")));
    let bad = cpath(&vectors_dir().join("malformed_wrong_magic/delta"));
    let target = cpath(&work.path().join("t"));
    assert_eq!(
        // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
        unsafe { adu_diff_apply(session, src.as_ptr(), delta.as_ptr(), target.as_ptr()) },
        0
    );
    assert_eq!(
        // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
        unsafe { adu_diff_apply(session, src.as_ptr(), bad.as_ptr(), target.as_ptr()) },
        1
    );
    adu_diff_apply_close_session(session);
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("-> ok (32000 bytes"), "{text}");
    assert!(
        lines[1].contains("-> error 30000: Not a valid diff file"),
        "{text}"
    );
}

#[test]
fn zlib_level_detection_through_the_c_function() {
    let work = tempfile::tempdir().unwrap();
    let case = vectors_dir().join("zlib_compression_gz_level_default");
    // The vector's target is the gzip (default level) of the first 200000 bytes of its source.
    let plain = work.path().join("plain");
    fs::write(&plain, &fs::read(case.join("source")).unwrap()[..200_000]).unwrap();
    let gz = cpath(&case.join("target"));
    let mut level = 99i32;
    assert_eq!(
        unsafe_level(cpath(&plain).as_ptr(), gz.as_ptr(), &mut level),
        0
    );
    assert_eq!(level, -1);
    // Not reproducible: one byte changed.
    let mut bytes = fs::read(case.join("target")).unwrap();
    let last = bytes.len() - 9;
    bytes[last] ^= 1;
    let bad = work.path().join("bad.gz");
    fs::write(&bad, bytes).unwrap();
    assert_eq!(
        unsafe_level(cpath(&plain).as_ptr(), cpath(&bad).as_ptr(), &mut level),
        40005
    );
    let missing = cpath(&work.path().join("missing"));
    assert_eq!(
        unsafe_level(missing.as_ptr(), gz.as_ptr(), &mut level),
        20300
    );
    assert_eq!(unsafe_level(std::ptr::null(), gz.as_ptr(), &mut level), 1);
    assert_eq!(
        unsafe_level(gz.as_ptr(), gz.as_ptr(), std::ptr::null_mut()),
        1
    );
}

/// Calls the C function (its pointer arguments are valid here).
fn unsafe_level(u: *const std::ffi::c_char, c: *const std::ffi::c_char, level: *mut i32) -> u32 {
    // SAFETY: the tests pass NUL-terminated strings (or NULL) and a valid or NULL out-pointer.
    unsafe { diff_get_zlib_compression_level(u, c, level) }
}
