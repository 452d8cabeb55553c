//! The whole apply path (parse, resolve, execute, write) of a fuzzed delta against a fixed
//! source: `tests/vectors/slice_basic/source`, the source of 31 of the golden vectors, so that
//! the seeds reach the recipes. Runs `apply_on_this_thread` on a thread with the same 64 MiB
//! stack as the library's worker, without the library's catch_unwind: a panic is a crash.
//!
//! Deltas whose target is longer than 16 MiB are skipped (a valid delta may legitimately ask for
//! gigabytes of zeros; writing them is not a bug, just slow).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use adudiffapi::apply::apply_on_this_thread;
use adudiffapi::format::parse_delta;
use adudiffapi::io::SharedBytes;
use libfuzzer_sys::fuzz_target;

const SOURCE: &[u8] = include_bytes!("../../tests/vectors/slice_basic/source");
const MAX_TARGET: u64 = 16 << 20;

fn work_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("adudiff-fuzz-apply-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("source"), SOURCE).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(delta) = parse_delta(SharedBytes::from_vec(data.to_vec())) {
        if delta.target.length > MAX_TARGET {
            return;
        }
    }
    let dir = work_dir();
    let (source, delta, target) = (dir.join("source"), dir.join("delta"), dir.join("target"));
    std::fs::write(&delta, data).unwrap();
    let worker = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let _ = apply_on_this_thread(&source, &delta, &target);
            let _ = std::fs::remove_file(&target);
        })
        .unwrap();
    if let Err(panic) = worker.join() {
        std::panic::resume_unwind(panic);
    }
});
