//! The unsafe C-boundary layer (`src/ffi.rs`) on its own: session handles (Box::into_raw /
//! from_raw behind a registry), NULL and stale handles, C strings in and out, error-text pointer
//! lifetime, and sessions used from several threads. Nothing here maps files or calls the C
//! codecs, so it also runs under Miri:
//!
//! `MIRIFLAGS=-Zmiri-disable-isolation cargo +nightly miri test --test ffi_sessions`

use std::ffi::{CStr, CString};

use adudiffapi::ffi::*;

fn text(session: adu_apply_handle, index: u32) -> Option<String> {
    let ptr = adu_diff_apply_get_error_text(session, index);
    (!ptr.is_null()).then(|| {
        // SAFETY: non-null pointers from the library are NUL-terminated and stay valid until
        // the next call on the session.
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    })
}

#[test]
fn failed_apply_records_one_error_with_a_stable_text() {
    let session = adu_diff_apply_create_session();
    let missing = CString::new("/nonexistent/adudiff/delta").unwrap();
    // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
    let rc = unsafe {
        adu_diff_apply(
            session,
            missing.as_ptr(),
            missing.as_ptr(),
            missing.as_ptr(),
        )
    };
    assert_eq!(rc, 1);
    assert_eq!(adu_diff_apply_get_error_count(session), 1);
    assert_eq!(adu_diff_apply_get_error_code(session, 0), 20300);
    let ptr = adu_diff_apply_get_error_text(session, 0);
    // Reading the count and code again does not invalidate the text.
    assert_eq!(adu_diff_apply_get_error_code(session, 0), 20300);
    // SAFETY: see `text`.
    let t = unsafe { CStr::from_ptr(ptr) }.to_str().unwrap();
    assert!(
        t.starts_with("Failed to open file: /nonexistent/adudiff/delta"),
        "{t}"
    );
    assert_eq!(text(session, 1), None);
    assert_eq!(adu_diff_apply_get_error_code(session, 1), 0);
    assert_eq!(adu_diff_apply_get_error_code(session, u32::MAX), 0);
    adu_diff_apply_close_session(session);
}

#[test]
fn null_stale_and_foreign_handles_are_harmless() {
    let s = CString::new("/nonexistent").unwrap();
    let mut not_a_session = 0u64;
    let foreign = (&mut not_a_session as *mut u64).cast();
    for handle in [std::ptr::null_mut(), foreign] {
        assert_eq!(
            // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
            unsafe { adu_diff_apply(handle, s.as_ptr(), s.as_ptr(), s.as_ptr()) },
            1
        );
        assert_eq!(adu_diff_apply_get_error_count(handle), 0);
        assert_eq!(adu_diff_apply_get_error_code(handle, 0), 0);
        assert!(adu_diff_apply_get_error_text(handle, 0).is_null());
        // SAFETY: the path is a NUL-terminated string alive during the call.
        let set = unsafe { adu_diff_apply_set_log_path(handle, s.as_ptr()) };
        assert_eq!(set, 0);
        adu_diff_apply_close_session(handle);
    }
    let session = adu_diff_apply_create_session();
    adu_diff_apply_close_session(session);
    // Stale: every call is an error or a no-op, never a use-after-free.
    assert_eq!(
        // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
        unsafe { adu_diff_apply(session, s.as_ptr(), s.as_ptr(), s.as_ptr()) },
        1
    );
    assert_eq!(adu_diff_apply_get_error_count(session), 0);
    adu_diff_apply_close_session(session);
    assert_eq!(not_a_session, 0, "a foreign pointer was written through");
}

#[test]
fn null_path_arguments_are_code_1() {
    let session = adu_diff_apply_create_session();
    let s = CString::new("/nonexistent").unwrap();
    let cases = [
        (std::ptr::null(), s.as_ptr(), s.as_ptr(), "source_path"),
        (s.as_ptr(), std::ptr::null(), s.as_ptr(), "diff_path"),
        (s.as_ptr(), s.as_ptr(), std::ptr::null(), "target_path"),
    ];
    for (a, b, c, name) in cases {
        // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
        assert_eq!(unsafe { adu_diff_apply(session, a, b, c) }, 1);
        assert_eq!(adu_diff_apply_get_error_code(session, 0), 1);
        assert!(text(session, 0).unwrap().contains(name));
    }
    // SAFETY: a NULL path is allowed.
    let set = unsafe { adu_diff_apply_set_log_path(session, std::ptr::null()) };
    assert_eq!(set, 0);
    adu_diff_apply_close_session(session);
}

#[test]
fn sessions_from_several_threads() {
    let missing = CString::new("/nonexistent/x").unwrap();
    std::thread::scope(|scope| {
        for _ in 0..3 {
            let missing = &missing;
            scope.spawn(move || {
                for _ in 0..3 {
                    let session = adu_diff_apply_create_session();
                    let p = missing.as_ptr();
                    // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
                    assert_eq!(unsafe { adu_diff_apply(session, p, p, p) }, 1);
                    assert_eq!(adu_diff_apply_get_error_code(session, 0), 20300);
                    assert!(text(session, 0).is_some());
                    adu_diff_apply_close_session(session);
                }
            });
        }
    });
}

/// Handles are never reused: 2,000 create/close cycles give 2,000 different handles, and every
/// closed handle stays rejected while a later session is live — it neither fails the live
/// session's calls, nor reads its errors, nor closes it. (With handles that were allocation
/// addresses, the allocator gave every cycle the same handle, so a stale handle reached the
/// next session.)
#[test]
fn closed_handles_are_never_reused_and_stay_rejected() {
    let missing = CString::new("/nonexistent/adudiff/stale").unwrap();
    let p = missing.as_ptr();
    let mut seen = std::collections::HashSet::new();
    let mut closed = Vec::new();
    for _ in 0..2000 {
        let session = adu_diff_apply_create_session();
        assert!(!session.is_null());
        assert!(seen.insert(session as usize), "handle {session:?} reused");
        adu_diff_apply_close_session(session);
        closed.push(session);
    }
    let live = adu_diff_apply_create_session();
    assert!(
        !seen.contains(&(live as usize)),
        "a closed handle came back"
    );
    // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
    assert_eq!(unsafe { adu_diff_apply(live, p, p, p) }, 1);
    for &stale in &closed {
        // SAFETY: as above.
        assert_eq!(unsafe { adu_diff_apply(stale, p, p, p) }, 1);
        assert_eq!(adu_diff_apply_get_error_count(stale), 0);
        assert_eq!(adu_diff_apply_get_error_code(stale, 0), 0);
        assert!(adu_diff_apply_get_error_text(stale, 0).is_null());
        // SAFETY: as above.
        assert_eq!(unsafe { adu_diff_apply_set_log_path(stale, p) }, 0);
        adu_diff_apply_close_session(stale);
    }
    // The live session kept its own error and is still open.
    assert_eq!(adu_diff_apply_get_error_count(live), 1);
    assert_eq!(adu_diff_apply_get_error_code(live, 0), 20300);
    assert!(text(live, 0)
        .unwrap()
        .contains("/nonexistent/adudiff/stale"));
    adu_diff_apply_close_session(live);
    assert_eq!(adu_diff_apply_get_error_count(live), 0);
}
