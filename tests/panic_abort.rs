//! The C boundary refuses to be built with `panic = "abort"`: its `catch_unwind` would catch
//! nothing, and a panic would abort the Device Update agent's process instead of returning an
//! error code. `src/ffi.rs` has a `compile_error!` for that; this test builds the library with
//! `-C panic=abort` (as a `panic = "abort"` profile would) and expects that error.
//!
//! `cargo check` of the library alone, in a target directory of its own next to this test run's
//! (the flag would otherwise invalidate the normal build): the first run checks the library's
//! dependencies (~1 min on 2 cores), later runs only the library.

use std::path::PathBuf;
use std::process::Command;

/// The cargo arguments that select the device library. --no-default-features: drop after the
/// CLI crate split.
const LIB_ARGS: &[&str] = &["-p", "adudiffapi", "--lib", "--no-default-features"];

#[test]
fn panic_abort_build_fails_with_the_reason() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<this test> -> target/panic-abort-check
    let target_dir: PathBuf = exe.ancestors().nth(3).unwrap().join("panic-abort-check");
    let out = Command::new(cargo)
        .arg("check")
        .args(LIB_ARGS)
        .arg("--locked")
        .arg("--message-format=short")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", "-C panic=abort")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
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
