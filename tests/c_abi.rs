//! The C ABI as the Device Update agent sees it: the generated header, the exported symbols, the
//! ELF dynamic section (SONAME, NODELETE), and `examples/agent_harness.c` — a C program that
//! `dlopen`s `libadudiffapi.so` by bare name exactly like the agent (docs/C-API.md §5) — run against
//! the cdylib that cargo built for this test run (`target/<profile>/libadudiffapi.so`).
//!
//! Tools that are not installed (`cc`, `nm`, `readelf`, `valgrind`, `git`) make the tests that
//! need them print a reason and pass. The vector loop only asserts once the library can apply
//! `tests/vectors/slice_basic` (until then it prints why it is skipped).

mod c_harness;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use c_harness::*;

// ---------------------------------------------------------------------------------------------
// (a) header

/// The committed `include/adudiffapi.h` must equal what build.rs generated from `src/ffi.rs` in
/// this build (`$OUT_DIR/adudiffapi.h`, absent when cbindgen failed).
#[test]
fn header_is_up_to_date() {
    let generated_path = Path::new(env!("OUT_DIR")).join("adudiffapi.h");
    let generated = fs::read_to_string(&generated_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; cbindgen failed in build.rs (see the cargo:warning lines of the build)",
            generated_path.display()
        )
    });
    let on_disk = fs::read_to_string(manifest_dir().join("include/adudiffapi.h"))
        .expect("include/adudiffapi.h");
    // build.rs never writes the file in the work tree, so a stale copy fails here.
    assert!(
        on_disk == generated,
        "include/adudiffapi.h differs from the header generated from src/ffi.rs and \
         cbindgen.toml: run scripts/update-header.sh and commit the result"
    );

    // And the version in git (the index: what is committed or about to be) is the same.
    match git(&["show", ":include/adudiffapi.h"]) {
        Some(committed) => assert!(
            committed == generated,
            "the committed include/adudiffapi.h is stale: run scripts/update-header.sh, then \
             `git add include/adudiffapi.h` and commit it"
        ),
        None => eprintln!("skipping the git comparison: not a git work tree or git is missing"),
    }
}

/// Every declaration is spelled exactly like upstream's `legacy_adudiffapply.h`.
#[test]
fn header_matches_upstream_spelling() {
    let header = fs::read_to_string(manifest_dir().join("include/adudiffapi.h")).unwrap();
    let flat = header.split_whitespace().collect::<Vec<_>>().join(" ");
    for decl in [
        "#include <stdint.h>",
        "typedef void *adu_apply_handle;",
        "adu_apply_handle adu_diff_apply_create_session(void);",
        "void adu_diff_apply_close_session(adu_apply_handle handle);",
        "int adu_diff_apply_set_log_path(adu_apply_handle handle, const char *log_path);",
        "int adu_diff_apply(adu_apply_handle handle, const char *source_path, \
         const char *diff_path, const char *target_path);",
        "uint32_t adu_diff_apply_get_error_count(adu_apply_handle handle);",
        "uint32_t adu_diff_apply_get_error_code(adu_apply_handle handle, uint32_t index);",
        "const char *adu_diff_apply_get_error_text(adu_apply_handle handle, uint32_t index);",
        "#ifdef __cplusplus extern \"C\" {",
        "#ifndef ADUDIFFAPI_H #define ADUDIFFAPI_H",
    ] {
        assert!(flat.contains(decl), "adudiffapi.h lacks `{decl}`");
    }
    let legacy = fs::read_to_string(manifest_dir().join("include/legacy_adudiffapply.h")).unwrap();
    assert!(legacy.contains("#include \"adudiffapi.h\""));
}

/// The header compiles as C89, C99 and C++ with warnings as errors, and a program using
/// upstream's header name links against the cdylib.
#[test]
fn header_compiles_as_c_and_cpp() {
    let Some(cc) = c_compiler() else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("use.c");
    fs::write(
        &src,
        "#include <legacy_adudiffapply.h>\n#include <stddef.h>\n\
         int main(void) {\n\
           adu_apply_handle h = adu_diff_apply_create_session();\n\
           uint32_t n = adu_diff_apply_get_error_count(h);\n\
           const char *t = adu_diff_apply_get_error_text(h, 0);\n\
           uint32_t c = adu_diff_apply_get_error_code(h, 0);\n\
           int r = adu_diff_apply_set_log_path(h, NULL);\n\
           adu_diff_apply_close_session(h);\n\
           return (int)n + (int)c + r + (t != NULL);\n}\n",
    )
    .unwrap();
    let include = manifest_dir().join("include");
    for std in ["-std=c89", "-std=c99", "-std=c11"] {
        let out = dir.path().join("use");
        run_ok(
            cmd(&cc)
                .args([std, "-pedantic", "-Wall", "-Wextra", "-Werror", "-I"])
                .arg(&include)
                .arg(&src)
                .arg("-L")
                .arg(lib_dir())
                .args(["-ladudiffapi", "-o"])
                .arg(&out),
        );
        let o = run_ok(target_cmd(&out).env("LD_LIBRARY_PATH", lib_dir()));
        assert!(o.status.success(), "{std}: {o:?}");
    }
    // C++: the extern "C" block must give unmangled references.
    let obj = dir.path().join("use.o");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    if which(&cxx).is_some() {
        run_ok(
            cmd(&cxx)
                .args(["-x", "c++", "-Wall", "-Wextra", "-Werror", "-c", "-I"])
                .arg(&include)
                .arg(&src)
                .arg("-o")
                .arg(&obj),
        );
        if let Some(nm) = which("nm") {
            let o = run_ok(cmd(&nm).arg(&obj));
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(text
                .lines()
                .any(|l| l.ends_with(" U adu_diff_apply_create_session")));
        }
    } else {
        eprintln!("skipping the C++ check: {cxx} not found");
    }
}

// ---------------------------------------------------------------------------------------------
// (b) exported symbols, (c) dynamic section

fn expected_exports() -> BTreeSet<String> {
    let map = fs::read_to_string(manifest_dir().join("libadudiffapi.map")).unwrap();
    let body = map
        .split("global:")
        .nth(1)
        .expect("global: in libadudiffapi.map");
    let body = body.split("local:").next().unwrap();
    body.split(';')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn exports_exactly_the_api() {
    let Some(nm) = which("nm") else {
        eprintln!("skipping: nm not found");
        return;
    };
    let o = run_ok(cmd(&nm).args(["-D", "--defined-only"]).arg(cdylib()));
    let exported: BTreeSet<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(|s| s.split('@').next().unwrap().to_string())
        .collect();
    let expected = expected_exports();
    assert_eq!(
        expected.len(),
        8,
        "libadudiffapi.map lists the 7 adu_diff_apply* symbols and diff_get_zlib_compression_level"
    );
    assert_eq!(
        exported,
        expected,
        "nm -D --defined-only {} must list exactly the API",
        cdylib().display()
    );
    // Function symbols, as the agent dlsym()s and calls them.
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        assert!(line.contains(" T "), "not a text symbol: {line}");
    }
}

#[test]
fn soname_and_nodelete() {
    let Some(readelf) = which("readelf") else {
        eprintln!("skipping: readelf not found");
        return;
    };
    let o = run_ok(cmd(&readelf).arg("-d").arg(cdylib()));
    let text = String::from_utf8_lossy(&o.stdout);
    let soname = text
        .lines()
        .find(|l| l.contains("(SONAME)"))
        .expect("a SONAME entry");
    assert!(soname.ends_with("[libadudiffapi.so]"), "{soname}");
    let flags_1 = text
        .lines()
        .find(|l| l.contains("(FLAGS_1)"))
        .expect("a FLAGS_1 entry");
    assert!(flags_1.contains("NODELETE"), "{flags_1}");
    // No RPATH/RUNPATH: the library must not change where the agent finds its own libraries.
    assert!(
        !text.contains("(RPATH)") && !text.contains("(RUNPATH)"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// (d) the agent's call sequence on failing applies

#[test]
fn harness_missing_source() {
    let Some(h) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let v = vectors_dir().join("slice_basic");
    let target = dir.path().join("out");
    let r = h.run(&[
        dir.path().join("no-such-source").as_os_str(),
        v.join("delta").as_os_str(),
        target.as_os_str(),
    ]);
    let code = r.expect_error();
    if apply_works() {
        assert_eq!(
            code, 20300,
            "missing source: io_binary_file_reader_failed_open\n{r}"
        );
    }
    assert!(
        !target.exists(),
        "a failed apply must not leave a target behind"
    );
}

#[test]
fn harness_missing_delta() {
    let Some(h) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let v = vectors_dir().join("slice_basic");
    let target = dir.path().join("out");
    let r = h.run(&[
        v.join("source").as_os_str(),
        dir.path().join("no-such-delta").as_os_str(),
        target.as_os_str(),
    ]);
    let code = r.expect_error();
    if apply_works() {
        assert_eq!(
            code, 20300,
            "missing delta: io_binary_file_reader_failed_open\n{r}"
        );
    }
    assert!(
        !target.exists(),
        "a failed apply must not leave a target behind"
    );
}

#[test]
fn harness_unwritable_target() {
    let Some(h) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let v = vectors_dir().join("slice_basic");
    let r = h.run(&[
        v.join("source").as_os_str(),
        v.join("delta").as_os_str(),
        dir.path().join("no-such-dir/out").as_os_str(),
    ]);
    let code = r.expect_error();
    if apply_works() {
        assert_eq!(code, 20302, "io_binary_file_writer_failed_open\n{r}");
    }
}

#[test]
fn harness_empty_paths() {
    let Some(h) = harness() else { return };
    let r = h.run(&["".as_ref(), "".as_ref(), "".as_ref()]);
    r.expect_error();
}

/// NULL paths are undefined behaviour upstream; we return error code 1 (docs/C-API.md §3).
#[test]
fn harness_null_paths() {
    let Some(h) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let v = vectors_dir().join("slice_basic");
    let (s, d, t) = (v.join("source"), v.join("delta"), dir.path().join("out"));
    for which in ["source", "delta", "target"] {
        let mut args: Vec<&std::ffi::OsStr> = vec!["--null".as_ref(), which.as_ref()];
        for (name, p) in [("source", &s), ("delta", &d), ("target", &t)] {
            if name != which {
                args.push(p.as_os_str());
            }
        }
        let r = h.run(&args);
        assert_eq!(r.expect_error(), 1, "NULL {which}\n{r}");
        assert!(!t.exists());
    }
}

/// The agent's exact sequence, repeated in one process: dlopen → create → apply → errors →
/// dlclose → close_session, three times. Survives only because of `-z nodelete`.
#[test]
fn harness_repeated_in_one_process() {
    let Some(h) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let v = vectors_dir().join("malformed_wrong_magic");
    let r = h.run(&[
        "--repeat".as_ref(),
        "3".as_ref(),
        v.join("source").as_os_str(),
        v.join("delta").as_os_str(),
        dir.path().join("out").as_os_str(),
    ]);
    r.expect_error();
    assert_eq!(
        r.stdout.matches("session closed after dlclose").count(),
        3,
        "{r}"
    );
    assert_eq!(r.stdout.matches("result: error").count(), 3, "{r}");
}

// ---------------------------------------------------------------------------------------------
// (e) the golden vectors through the agent's call sequence

#[test]
fn vectors_through_agent_harness() {
    let Some(h) = harness() else { return };
    if !apply_works() {
        eprintln!("apply not implemented yet; skipping vector loop");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in vector_cases() {
        let Some(expect) = case.expectation() else {
            eprintln!("{}: skipped (source not stored)", case.name);
            continue;
        };
        ran += 1;
        let target = dir.path().join(format!("{}.out", case.name));
        let r = h.run(&[
            case.dir.join("source").as_os_str(),
            case.dir.join("delta").as_os_str(),
            target.as_os_str(),
        ]);
        if let Err(why) = check_case(&case, &expect, &r, &target) {
            failures.push(format!("{}: {why}\n{r}", case.name));
        } else {
            eprintln!("{}: {}", case.name, r.result_line());
        }
        let _ = fs::remove_file(&target);
    }
    assert!(ran > 30, "only {ran} vectors found");
    assert!(
        failures.is_empty(),
        "{} of {ran} vectors failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `agent_harness --peaks` (used by scripts/bench-address-space.py) reports the process's peak
/// address space and resident set on stderr, after the final result line, which stays last on
/// stdout; the peak address space is at least the peak resident set.
#[test]
fn harness_reports_its_peaks() {
    let Some(h) = harness() else { return };
    let case = vectors_dir().join("all_zeros_in_chain");
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let r = h.run(&[
        OsStr::new("--peaks"),
        case.join("source").as_os_str(),
        case.join("delta").as_os_str(),
        target.as_os_str(),
    ]);
    assert_eq!(r.result_line(), "result: ok", "{r}");
    assert_eq!(r.stdout.lines().last(), Some("result: ok"), "{r}");
    let words: Vec<&str> = r
        .stderr
        .lines()
        .find(|l| l.starts_with("peaks: "))
        .unwrap_or_else(|| panic!("no peaks line: {r}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        (words[1], words[3], words[4], words[6]),
        ("VmPeak", "kB", "VmHWM", "kB"),
        "{r}"
    );
    let (peak, hwm): (u64, u64) = (words[2].parse().unwrap(), words[5].parse().unwrap());
    assert!(hwm > 0 && peak >= hwm, "VmPeak {peak} kB, VmHWM {hwm} kB");
}

fn check_case(case: &Case, expect: &Expect, r: &HarnessRun, target: &Path) -> Result<(), String> {
    if r.status.code().is_none() {
        return Err(format!("harness died: {:?}", r.status));
    }
    match expect {
        Expect::Ok(expected_file) => {
            if r.result_line() != "result: ok" {
                return Err(format!("expected result: ok, got {}", r.result_line()));
            }
            let want = fs::read(case.dir.join(expected_file)).map_err(|e| e.to_string())?;
            let got = fs::read(target).map_err(|e| format!("target: {e}"))?;
            if got != want {
                return Err(format!(
                    "target differs from {expected_file} ({} vs {} bytes)",
                    got.len(),
                    want.len()
                ));
            }
        }
        Expect::Code(code) => {
            let want = format!("result: error {code}");
            if r.result_line() != want {
                return Err(format!("expected {want}, got {}", r.result_line()));
            }
        }
        Expect::AnyError => {
            if !r.result_line().starts_with("result: error ") {
                return Err(format!("expected an error, got {}", r.result_line()));
            }
        }
    }
    if !matches!(expect, Expect::Ok(_)) && target.exists() {
        return Err("a failed apply left a target file behind".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// valgrind: the agent-faithful sequence, twice in one process (item 8)

#[test]
fn valgrind_agent_sequence_twice() {
    let Some(h) = harness() else { return };
    let Some(valgrind) = which("valgrind") else {
        eprintln!("skipping: valgrind not found");
        return;
    };
    if target_runner().is_some() {
        eprintln!(
            "skipping: the host's valgrind cannot check a harness built for an emulated target"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cases = vec![
        vectors_dir().join("malformed_wrong_magic"),
        vectors_dir().join("malformed_truncated_header"),
    ];
    if apply_works() {
        cases.push(vectors_dir().join("slice_basic"));
        cases.push(vectors_dir().join("bspatch_slice_dictionary"));
    }
    for v in cases {
        let target = dir.path().join("out");
        let o = cmd(&valgrind)
            .args([
                "--quiet",
                "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
            ])
            .arg(&h.path)
            .args(["--repeat", "2"])
            .arg(v.join("source"))
            .arg(v.join("delta"))
            .arg(&target)
            .env("LD_LIBRARY_PATH", lib_dir())
            .output()
            .expect("run valgrind");
        let r = HarnessRun::from_output(o);
        assert_ne!(r.status.code(), Some(99), "valgrind found errors:\n{r}");
        assert!(r.status.code().is_some(), "died under valgrind:\n{r}");
        assert_eq!(
            r.stdout.matches("session closed after dlclose").count(),
            2,
            "{r}"
        );
        let _ = fs::remove_file(&target);
    }
}

// ---------------------------------------------------------------------------------------------

fn vectors_dir() -> PathBuf {
    manifest_dir().join("tests/vectors")
}

fn vector_cases() -> Vec<Case> {
    let mut cases: Vec<Case> = fs::read_dir(vectors_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("case.json").is_file())
        .map(|e| Case::load(&e.path()))
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}
