//! The on-device check of docs/DEVICE.md ("Which library does the agent use?"), run against the
//! cdylib cargo built for this test run:
//!
//! * `strings libadudiffapi.so | grep 'adudiffapi version'` prints `adudiffapi version <ours>`;
//! * a process that `dlopen`s the bare name `libadudiffapi.so` (like the agent) from a copy in
//!   another directory shows that copy in its `/proc/<pid>/maps`, and the per-apply log line
//!   (`adu_diff_apply_set_log_path`) names the version and that copy, not the file cargo built.

mod c_harness;

use std::fs;

use c_harness::*;

fn version_tag() -> String {
    format!("adudiffapi version {}", env!("CARGO_PKG_VERSION"))
}

#[test]
fn strings_shows_the_version() {
    let strings = which("strings").expect("strings not found (package binutils)");
    let o = run_ok(cmd(strings).arg("-a").arg(cdylib()));
    let text = String::from_utf8_lossy(&o.stdout);
    let found: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("adudiffapi version"))
        .collect();
    assert_eq!(found, [version_tag().as_str()], "strings output lines");
}

/// A C program that loads the library like the agent (bare name), sets a log path, applies,
/// and prints its own `/proc/self/maps` lines that name the library.
const LOADER_C: &str = r#"
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    void *lib, *s;
    void *(*create)(void);
    int (*set_log)(void *, const char *);
    int (*apply)(void *, const char *, const char *, const char *);
    char line[4096];
    FILE *maps;
    if (argc != 5) return 2;
    lib = dlopen("libadudiffapi.so", RTLD_LAZY);
    if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 3; }
    *(void **)&create = dlsym(lib, "adu_diff_apply_create_session");
    *(void **)&set_log = dlsym(lib, "adu_diff_apply_set_log_path");
    *(void **)&apply = dlsym(lib, "adu_diff_apply");
    if (!create || !set_log || !apply) return 4;
    s = create();
    if (set_log(s, argv[1]) != 0) return 5;
    printf("apply: %d\n", apply(s, argv[2], argv[3], argv[4]));
    maps = fopen("/proc/self/maps", "r");
    if (!maps) return 6;
    while (fgets(line, sizeof line, maps))
        if (strstr(line, "libadudiffapi")) printf("maps: %s", line);
    fclose(maps);
    return 0;
}
"#;

#[test]
fn the_loaded_file_and_its_version_are_visible() {
    let cc = c_compiler().expect("no C compiler");
    let dir = tempfile::tempdir().unwrap();
    // The copy the "agent" loads: a directory the cargo-built file is not in.
    let lib_copy_dir = dir.path().join("device-lib");
    fs::create_dir(&lib_copy_dir).unwrap();
    let lib_copy = lib_copy_dir.join("libadudiffapi.so");
    fs::copy(cdylib(), &lib_copy).unwrap();
    let lib_copy = lib_copy.canonicalize().unwrap();
    let src = dir.path().join("loader.c");
    fs::write(&src, LOADER_C).unwrap();
    let loader = dir.path().join("loader");
    run_ok(
        cmd(&cc)
            .args(["-std=c99", "-Wall", "-Werror", "-o"])
            .arg(&loader)
            .arg(&src)
            .arg("-ldl"),
    );

    let v = manifest_dir().join("tests/vectors/slice_basic");
    let log = dir.path().join("apply.log");
    let target = dir.path().join("target.bin");
    let o = run_ok(
        target_cmd(&loader)
            .arg(&log)
            .arg(v.join("source"))
            .arg(v.join("delta"))
            .arg(&target)
            .env("LD_LIBRARY_PATH", &lib_copy_dir),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout.contains("apply: 0"), "{stdout}");
    // The recipe's first half: the agent's maps name the file it loaded.
    let mapped: Vec<&str> = stdout.lines().filter(|l| l.starts_with("maps: ")).collect();
    assert!(!mapped.is_empty(), "{stdout}");
    for line in &mapped {
        assert!(line.ends_with(lib_copy.to_str().unwrap()), "{line}");
    }
    // The log line: version and the loaded file, then the apply.
    let logged = fs::read_to_string(&log).unwrap();
    let want = format!(
        "{} ({}): adu_diff_apply source=",
        version_tag(),
        lib_copy.display()
    );
    assert!(logged.starts_with(&want), "log: {logged}\nwanted: {want}");
    assert!(logged.trim_end().ends_with(')'), "{logged}");
    assert!(logged.contains("-> ok ("), "{logged}");
    // The recipe's second half, on the file the maps named.
    let strings = which("strings").expect("strings not found (package binutils)");
    let o = run_ok(cmd(strings).arg("-a").arg(&lib_copy));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l == version_tag()),
        "strings {}",
        lib_copy.display()
    );
}
