//! Replays the committed, minimized libFuzzer corpus of the `apply` target
//! (`tests/fuzz-corpus/apply/`, made with `cargo fuzz cmin apply` after the runs reported in
//! docs/RELIABILITY.md) through the exported C functions, against the same source the fuzz target
//! uses. Every input must end with success or a documented error — never a panic turned into
//! "internal error" — and leave no temporary file. Crash reproducers found by future fuzzing go
//! into the same folder.

mod common;

use std::fs;

use common::*;

#[test]
fn every_corpus_input_applies_or_fails_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus/apply");
    let source = vectors_dir().join("slice_basic/source");
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("target");
    let mut inputs: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 100, "corpus missing");
    let (mut ok, mut failed) = (0, 0);
    for input in &inputs {
        // Parsing alone, in process.
        let bytes = fs::read(input).unwrap();
        let parsed = adudiffapi::format::parse_delta(adudiffapi::io::SharedBytes::from_vec(bytes));
        if parsed.as_ref().is_ok_and(|d| d.target.length > 16 << 20) {
            continue; // the fuzz target skips these too
        }
        let _ = fs::remove_file(&target);
        match apply_c(&source, input, &target) {
            Ok(()) => ok += 1,
            Err(errors) => {
                failed += 1;
                let (code, text) = &errors[0];
                assert!(
                    *code != 0 && !text.contains("internal error"),
                    "{}: {code} {text}",
                    input.display()
                );
                assert!(
                    !target.exists(),
                    "{}: failed apply left a target",
                    input.display()
                );
            }
        }
        assert!(leftovers(work.path()).is_empty(), "{}", input.display());
    }
    println!(
        "FUZZ-CORPUS | {} inputs | {ok} applied | {failed} failed cleanly",
        inputs.len()
    );
}
