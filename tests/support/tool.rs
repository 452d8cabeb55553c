//! Runs an external tool with input on stdin, for tests that need real producers (zstd,
//! Python builds of libzstd). Included with `#[path = "support/tool.rs"] mod tool;`.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `program args`, feeding `input` on stdin; returns stdout. A missing tool fails the
/// test (`.ci/run` installs every tool the tests use), as does a failing run.
pub fn run_with_input(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{program} is required (.ci/run installs it): {error}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer").expect("write stdin");
    assert!(output.status.success(), "{program} {args:?} failed");
    output.stdout
}
