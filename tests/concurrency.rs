//! Concurrency through the C functions: every golden vector applied serially first (the
//! reference), then by many threads at once, each with its own session and its own order, while
//! other threads create and close sessions; and one session reused for hundreds of applies in a
//! row. Every result (error code, or target bytes) must equal the serial one.
//!
//! (tests/vectors.rs has the smaller "six vectors on 18 threads" and "one session, two deltas"
//! checks; this covers every vector, mixed successes and failures, and session churn.)

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use adudiffapi::ffi::*;
use common::*;

/// What one apply gave: `Ok(sha256 of the target)` or `Err(codes)`.
type Result = std::result::Result<[u8; 32], Vec<u32>>;

fn cases() -> Vec<(String, PathBuf)> {
    let mut dirs: Vec<(String, PathBuf)> = fs::read_dir(vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("source").exists() && p.join("delta").exists())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    dirs.sort();
    dirs
}

fn run(session: adu_apply_handle, dir: &std::path::Path, target: &std::path::Path) -> Result {
    let _ = fs::remove_file(target);
    match apply_on(session, &dir.join("source"), &dir.join("delta"), target) {
        Ok(()) => Ok(sha(&fs::read(target).unwrap())),
        Err(errors) => {
            assert!(
                !target.exists(),
                "{}: failed apply left a target",
                dir.display()
            );
            Err(errors.into_iter().map(|e| e.0).collect())
        }
    }
}

fn serial_reference(work: &std::path::Path) -> BTreeMap<String, Result> {
    let session = adu_diff_apply_create_session();
    let reference = cases()
        .into_iter()
        .map(|(name, dir)| {
            let r = run(session, &dir, &work.join("serial"));
            (name, r)
        })
        .collect();
    adu_diff_apply_close_session(session);
    reference
}

#[test]
fn many_sessions_on_many_threads_match_serial_results() {
    let work = tempfile::tempdir().unwrap();
    let reference = serial_reference(work.path());
    assert!(reference.len() >= 40);
    assert!(reference.values().filter(|r| r.is_ok()).count() >= 20);
    let cases = cases();
    let threads = 8;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (cases, reference, work) = (&cases, &reference, work.path());
            scope.spawn(move || {
                let session = adu_diff_apply_create_session();
                let target = work.join(format!("thread-{t}"));
                // Each thread walks the vectors from a different starting point and direction.
                let n = cases.len();
                for i in 0..n {
                    let k = if t % 2 == 0 {
                        (i + t * 5) % n
                    } else {
                        (n - 1 - i + t * 3) % n
                    };
                    let (name, dir) = &cases[k];
                    let got = run(session, dir, &target);
                    assert_eq!(&got, &reference[name], "thread {t}: {name}");
                }
                adu_diff_apply_close_session(session);
            });
        }
        // Session churn meanwhile: create, use with a bad handle pattern, close.
        scope.spawn(|| {
            for _ in 0..2000 {
                let s = adu_diff_apply_create_session();
                assert!(!s.is_null());
                assert_eq!(adu_diff_apply_get_error_count(s), 0);
                adu_diff_apply_close_session(s);
                assert_eq!(adu_diff_apply_get_error_count(s), 0);
            }
        });
    });
    assert!(leftovers(work.path()).is_empty());
}

#[test]
fn one_session_reused_for_hundreds_of_applies() {
    let work = tempfile::tempdir().unwrap();
    let reference = serial_reference(work.path());
    let cases = cases();
    let session = adu_diff_apply_create_session();
    let target = work.path().join("reused");
    let mut applies = 0;
    for round in 0..5 {
        for (i, (name, dir)) in cases.iter().enumerate() {
            // Interleave: forward on even rounds, backward on odd ones.
            let (name, dir) = if round % 2 == 0 {
                (name, dir)
            } else {
                let (n, d) = &cases[cases.len() - 1 - i];
                (n, d)
            };
            let got = run(session, dir, &target);
            assert_eq!(&got, &reference[name], "round {round}: {name}");
            // The session reports exactly this call's errors.
            let count = adu_diff_apply_get_error_count(session) as usize;
            assert_eq!(count, got.as_ref().err().map_or(0, |c| c.len()));
            applies += 1;
        }
    }
    adu_diff_apply_close_session(session);
    println!("CONCURRENCY | one session, {applies} applies, all equal to serial");
}
