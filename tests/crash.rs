//! Crash safety of the write: applies of `swu_realistic_rootfs` (1.7 MiB target, 24 MiB
//! intermediates) run in child processes that are SIGKILLed at random moments. After every kill
//! the target must be the previous file or the complete, byte-correct new one, and no
//! `.adudiff-*` temporary file may remain (the target is written to an unnamed `O_TMPFILE` and
//! only named at commit).
//!
//! `ADUDIFF_CRASH_KILLS` sets the number of kills (default 40); `ADUDIFF_CRASH_SEED` the seed.

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn child_process_entry() {
    child_main();
}

const PREVIOUS: &[u8] = b"the previous target";

fn spawn_apply(
    source: &std::path::Path,
    delta: &std::path::Path,
    target: &std::path::Path,
) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env("ADUDIFF_CHILD", "apply")
        .env("ADUDIFF_SOURCE", source)
        .env("ADUDIFF_DELTA", delta)
        .env("ADUDIFF_TARGET", target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn sigkill_at_random_points_never_leaves_a_partial_target() {
    let v = vectors_dir().join("swu_realistic_rootfs");
    let (source, delta) = (v.join("source"), v.join("delta"));
    let expected = fs::read(v.join("target")).unwrap();
    let kills: u32 = std::env::var("ADUDIFF_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("ADUDIFF_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng(seed);
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("target");

    // Calibrate: how long a whole child apply takes here.
    let start = Instant::now();
    let status = spawn_apply(&source, &delta, &target).wait().unwrap();
    assert!(status.success());
    let full = start.elapsed();
    assert_eq!(fs::read(&target).unwrap(), expected);

    let (mut old, mut new, mut absent) = (0, 0, 0);
    let budget = Instant::now();
    for round in 0..kills {
        // Alternate: no target before, or an old target to replace.
        let had_target = round % 2 == 1;
        let _ = fs::remove_file(&target);
        if had_target {
            fs::write(&target, PREVIOUS).unwrap();
        }
        // Uniform over [0, 1.1 × full): most kills land inside the apply, a few after it.
        let delay = Duration::from_micros(rng.next() % (full.as_micros() as u64 * 11 / 10 + 1));
        let mut child = spawn_apply(&source, &delta, &target);
        std::thread::sleep(delay);
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        let _ = child.wait();
        match fs::read(&target) {
            Ok(bytes) if bytes == expected => new += 1,
            Ok(bytes) if had_target && bytes == PREVIOUS => old += 1,
            Ok(bytes) => panic!(
                "seed {seed}, round {round}, kill after {delay:?}: partial or wrong target ({} bytes)",
                bytes.len()
            ),
            Err(_) if !had_target => absent += 1,
            Err(e) => panic!("seed {seed}, round {round}: old target lost: {e}"),
        }
        let left = leftovers(work.path());
        assert!(
            left.is_empty(),
            "seed {seed}, round {round}, kill after {delay:?}: temporary files left: {left:?}"
        );
    }
    println!(
        "CRASH | {kills} SIGKILLs (seed {seed}, apply {} ms) in {} ms | complete new target {new} | old target kept {old} | absent {absent} | partial 0 | leftovers 0",
        full.as_millis(),
        budget.elapsed().as_millis()
    );
    assert!(new + old + absent == kills);
}
