//! The C boundary refuses to be built with `panic = "abort"`: its `catch_unwind` would catch
//! nothing, and a panic would abort the Device Update agent's process instead of returning an
//! error code. `src/ffi.rs` has a `compile_error!` for that; this test builds the library with
//! `-C panic=abort` (as a `panic = "abort"` profile would) and expects that error.
//!
//! `cargo rustc --profile check` of the library alone, with the flag for that one crate: its
//! dependencies are checked as usual (shared with `cargo doc`/`cargo check` in the same target
//! directory), so only the library itself is checked again.

use std::path::PathBuf;
use std::process::Command;

/// The cargo arguments that select the device library.
const LIB_ARGS: &[&str] = &["-p", "adudiffapi", "--lib"];

#[test]
fn panic_abort_build_fails_with_the_reason() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<this test> -> target
    let target_dir: PathBuf = exe.ancestors().nth(3).unwrap().to_path_buf();
    let out = Command::new(cargo)
        .arg("rustc")
        .args(LIB_ARGS)
        .args(["--profile", "check", "--locked", "--message-format=short"])
        .args(["--", "-C", "panic=abort"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "built with panic=abort:\n{stderr}");
    assert!(
        stderr.contains("src/ffi.rs")
            && stderr.contains("libadudiffapi must be built with panic = \"unwind\""),
        "not the compile_error of src/ffi.rs:\n{stderr}"
    );
}
