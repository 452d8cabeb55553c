//! The `adudiff` binary end to end: generate (DiffGenTool positional forms), apply, dump,
//! manifest, recompress, usage errors, completions, man page, progress output.
//!
//! Every form the earlier hand-written parser accepted is run here (tests/release.rs runs
//! `release` at length):
//!
//! | command | forms |
//! |---|---|
//! | (none) | no arguments: usage on stderr, 2; `-h`, `--help`, `help [<command>]`: 0; `-V`, `--version`; unknown command: 2 |
//! | generate | `<SOURCE> <TARGET> <DELTA>` [`<WORK_DIR>` → log `<WORK_DIR>/logs/<n>`] or [`<LOG_DIR> <WORK_DIR>`]; options before, between or after them, `--opt VALUE` or `--opt=VALUE`, the last one wins, a value starting with `-` only as `--opt=-value`; `-q`/`--quiet`, `--no-files`, `--format standard\|extended`, `--log-dir`, `--work-dir`, `--zstd-level`, `--bsdiff-max-mib`, `--segment-mib`, `--margin-mib` (hidden aliases `--bsdiff-max`, `--segment-mb`, `--margin-mb`, `--files-frame-mb`), `--bsdiff-small-match`, `--files-diff-level`, `--files-new-level`, `--files-frame-level`, `--files-frame-mib`, `--threads`; out-of-range numbers: usage error; `--help` anywhere |
//! | release | `<target> <source>…` with `--out`, identity options (`--provider`, `--name`, `--version`, `--compat`…, `--description`, `--handler`, `--handler-property`…, `--handler-properties`…, `--installed-criteria`, `--file`…), `--format`, `--recompress`, `--sign` (only with `--recompress`), `--jobs`, `--threads`, `--zstd-level`, `--no-files`, `-q`/`--quiet` |
//! | recompress | `<IN> <OUT>`, `<IN> <OUT> "<SIGN_COMMAND>"` |
//! | apply | `<source> <delta> <target>` |
//! | dump | `<delta>` |
//! | manifest | `[--provider <PROVIDER>] <SOURCE>`; `--target <TARGET> --delta <DELTA>` + identity options `<SOURCE>` |
//!
//! Usage errors exit with 2, failures with 1 (`adudiff <command>: error: …` on stderr).

mod swu_common;

use std::path::Path;
use std::process::{Command, Output};

use adudiff_gen::swu::cpio::CpioFormat;
use swu_common::*;

fn adudiff(args: &[&str]) -> Output {
    adudiff_command().args(args).output().expect("run adudiff")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn make_pair(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let base = text(7, 200_000);
    let mut changed = base.clone();
    changed[50_000..50_100].fill(b'#');
    let desc = sw_description(&[("fw.bin", None, "00")], &[]);
    let v1 = cpio(
        CpioFormat::Newc,
        &[("sw-description", desc.as_bytes()), ("fw.bin", &base)],
    );
    let v2 = cpio(
        CpioFormat::Newc,
        &[("sw-description", desc.as_bytes()), ("fw.bin", &changed)],
    );
    let (a, b) = (dir.join("v1.swu"), dir.join("v2.swu"));
    std::fs::write(&a, v1).unwrap();
    std::fs::write(&b, v2).unwrap();
    (a, b)
}

#[test]
fn help_and_usage_errors() {
    let o = adudiff(&["--help"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("adudiff generate"));
    for cmd in [
        "generate",
        "release",
        "recompress",
        "apply",
        "dump",
        "manifest",
    ] {
        let o = adudiff(&[cmd, "--help"]);
        assert!(o.status.success(), "{cmd} --help");
        assert!(String::from_utf8_lossy(&o.stdout).contains(cmd));
    }
    assert_eq!(adudiff(&["generate", "only-one"]).status.code(), Some(2));
    assert_eq!(adudiff(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn generate_apply_dump_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = make_pair(dir.path());
    let delta = dir.path().join("out/update.delta");
    let work = dir.path().join("work");
    // DiffGenTool 3.0.0 form: <source> <target> <output> <working folder>
    let o = adudiff(&["generate", s(&v1), s(&v2), s(&delta), s(&work)]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("fw.bin"));
    assert!(stdout.contains("no recompression or re-signing needed"));
    assert!(work.join("logs/0/diff.json").exists());
    // Second run picks the next log folder.
    let o = adudiff(&["generate", "-q", s(&v1), s(&v2), s(&delta), s(&work)]);
    assert!(o.status.success());
    assert!(work.join("logs/1/diff.json").exists());
    // 5-argument form.
    let logs = dir.path().join("mylogs");
    let o = adudiff(&["generate", s(&v1), s(&v2), s(&delta), s(&logs), s(&work)]);
    assert!(o.status.success());
    assert!(logs.join("diff.json").exists());

    let out = dir.path().join("applied.swu");
    let o = adudiff(&["apply", s(&v1), s(&delta), s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&v2).unwrap());

    // Applying to the wrong source fails with a code and leaves no target.
    let bad = dir.path().join("bad.swu");
    let o = adudiff(&["apply", s(&v2), s(&delta), s(&bad)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("code "));
    assert!(!bad.exists());

    let o = adudiff(&["dump", s(&delta)]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "StandardV2");
    assert_eq!(v["target"]["length"], std::fs::metadata(&v2).unwrap().len());
    assert_eq!(
        v["target"]["sha256"],
        sha256_hex(&std::fs::read(&v2).unwrap())
    );
    assert!(v["recipes"].as_array().unwrap().len() >= 3);

    let o = adudiff(&["manifest", "--provider", "Contoso.Ltd", s(&v1)]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["relatedFileProperties"]["microsoft.sourceFileHashAlgorithm"],
        "sha256"
    );
    let b64 = v["relatedFileProperties"]["microsoft.sourceFileHash"]
        .as_str()
        .unwrap();
    assert_eq!(b64.len(), 44);
    let path = v["deviceSourceCachePath"].as_str().unwrap();
    assert!(path.starts_with("/var/lib/adu/sdc/Contoso_Ltd/sha256-"));
    assert!(!path.contains('+') && !path.contains('=') && !path[1..].contains("//"));
}

#[test]
fn generate_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, _) = make_pair(dir.path());
    let missing = dir.path().join("nope.swu");
    let o = adudiff(&[
        "generate",
        "-q",
        s(&v1),
        s(&missing),
        s(&dir.path().join("d")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.swu"));
}

#[test]
fn recompress_cli_signs_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let img = text(3, 100_000);
    let gz = foreign_gzip(&img);
    let desc = sw_description(&[("rootfs.img.gz", Some("zlib"), "00")], &[]);
    let swu = cpio(
        CpioFormat::Crc,
        &[("sw-description", desc.as_bytes()), ("rootfs.img.gz", &gz)],
    );
    let input = dir.path().join("in.swu");
    std::fs::write(&input, swu).unwrap();
    let out = dir.path().join("out.swu");
    let o = adudiff(&["recompress", s(&input), s(&out), "sh -c 'cp \"$0\" \"$1\"'"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("rootfs.img.gz: recompressed"));
    assert!(stdout.contains("signed and added"));
    let a = adudiff_gen::swu::CpioArchive::parse(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(a.members[1].name, "sw-description.sig");
    // Output keeps ordinary file permissions.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

fn text_of(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn top_level_forms() {
    // No arguments: the usage on stderr, status 2 (as before).
    let o = adudiff(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text_of(&o).1.contains("Usage: adudiff"),
        "{:?}",
        text_of(&o)
    );
    // Help in each spelling, on stdout.
    for args in [&["-h"][..], &["--help"], &["help"]] {
        let o = adudiff(args);
        assert!(o.status.success(), "{args:?}");
        let (out, _) = text_of(&o);
        for cmd in [
            "generate",
            "release",
            "recompress",
            "apply",
            "dump",
            "manifest",
        ] {
            assert!(out.contains(cmd), "{args:?} lists {cmd}");
        }
        assert!(out.contains("completions") && out.contains("man"), "{out}");
    }
    let o = adudiff(&["help", "generate"]);
    assert!(o.status.success());
    assert!(text_of(&o).0.contains("DiffGenTool"));
    // Version.
    for flag in ["-V", "--version"] {
        let o = adudiff(&[flag]);
        assert!(o.status.success());
        assert_eq!(
            text_of(&o).0,
            format!("adudiff {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
    // Help after positional arguments, and in the short form.
    let o = adudiff(&["generate", "a.swu", "b.swu", "--help"]);
    assert!(o.status.success());
    assert!(text_of(&o).0.contains("<LOG_DIR> <WORK_DIR>"));
    let o = adudiff(&["release", "-h"]);
    assert!(o.status.success());
    assert!(text_of(&o).0.contains("--provider <PROVIDER>"));
}

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = make_pair(dir.path());
    let d = dir.path().join("x.delta");
    let cases: &[(&[&str], &str)] = &[
        (&["generate", s(&v1), s(&v2)], "<DELTA>"),
        (
            &["generate", "--frobnicate", s(&v1), s(&v2), s(&d)],
            "--frobnicate",
        ),
        (
            &["generate", "--zstd-level", "high", s(&v1), s(&v2), s(&d)],
            "high",
        ),
        (
            &["generate", "--format", "compact", s(&v1), s(&v2), s(&d)],
            "not a delta format",
        ),
        (
            &["generate", s(&v1), s(&v2), s(&d), "--threads"],
            "--threads",
        ),
        (&["apply", s(&v1), s(&d)], "<TARGET>"),
        (&["dump"], "<DELTA>"),
        (&["recompress", s(&v1)], "<OUT>"),
        (&["recompress", s(&v1), s(&d), "sign", "extra"], "extra"),
        (&["manifest", "--target", s(&v2), s(&v1)], "--delta"),
        (&["manifest", "--delta", s(&d), s(&v1)], "--target"),
        (&["release", "--out", s(&d), s(&v2), s(&v1)], "--provider"),
        (
            &[
                "release",
                "--out",
                s(&d),
                "--provider",
                "P",
                "--name",
                "N",
                "--version",
                "1.0",
                "--compat",
                "a=1",
                s(&v2),
            ],
            "<SOURCE>",
        ),
        (
            &[
                "release",
                "--provider",
                "P",
                "--name",
                "N",
                "--version",
                "1.0",
                "--compat",
                "a=1",
                "--sign",
                "true",
                "--out",
                s(&d),
                s(&v2),
                s(&v1),
            ],
            "--recompress",
        ),
        (
            &[
                "release",
                "--provider",
                "P",
                "--name",
                "N",
                "--version",
                "1.0",
                "--compat",
                "a",
                "--out",
                s(&d),
                s(&v2),
                s(&v1),
            ],
            "name=value",
        ),
        (&["completions", "tcsh"], "tcsh"),
        // An option never takes the next option as its value.
        (
            &["release", "--out", "--quiet", s(&v2), s(&v1)],
            "a value is required for '--out <DIR>'",
        ),
        // Out-of-range numbers are rejected with the range, never clamped.
        (
            &["generate", "--zstd-level=30", s(&v1), s(&v2), s(&d)],
            "30 is not in 1..=22",
        ),
        (
            &[
                "generate",
                "--files-frame-mib",
                "500",
                s(&v1),
                s(&v2),
                s(&d),
            ],
            "500 is not in 1..=128",
        ),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, says) in cases {
        let o = adudiff(args);
        let (out, err) = text_of(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}\n{out}{err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
    }
    assert!(!d.exists());
}

/// `diff.json`'s settings as (zstd level, bsdiff max).
fn logged_settings(log_dir: &Path) -> (i64, i64) {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(log_dir.join("diff.json")).unwrap()).unwrap();
    (
        v["settings"]["zstd_level"].as_i64().unwrap(),
        v["settings"]["bsdiff_max"].as_i64().unwrap(),
    )
}

#[test]
fn generate_three_argument_form_with_every_option() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = make_pair(dir.path());
    let delta = dir.path().join("d/update.delta");
    let logs = dir.path().join("logs");
    let work = dir.path().join("work");
    let log_arg = format!("--log-dir={}", s(&logs));
    // Options before, between and after the positional arguments; `=` and separate values; the
    // earlier MiB spellings (hidden aliases); the last of a repeated option wins.
    let o = adudiff(&[
        "generate",
        "--zstd-level=22",
        s(&v1),
        "--zstd-level",
        "1",
        "--bsdiff-max",
        "1",
        s(&v2),
        "--segment-mb=0",
        "--margin-mib",
        "1",
        "--bsdiff-small-match",
        "8",
        "--files-diff-level",
        "3",
        "--files-new-level=3",
        "--files-frame-level",
        "1",
        "--files-frame-mib",
        "1",
        "--threads",
        "1",
        "--no-files",
        "--format",
        "extended",
        "--format=standard",
        "-q",
        "--quiet",
        &log_arg,
        "--work-dir",
        s(&work),
        s(&delta),
    ]);
    let (out, err) = text_of(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("format: standard v2; Microsoft's"), "{out}");
    assert!(err.is_empty(), "{err}");
    // The last level; bsdiff max in MiB.
    assert_eq!(logged_settings(&logs), (1, 1 << 20));
    let applied = dir.path().join("applied.swu");
    let o = adudiff(&["apply", s(&v1), s(&delta), s(&applied)]);
    assert!(o.status.success());
    assert_eq!(
        std::fs::read(&applied).unwrap(),
        std::fs::read(&v2).unwrap()
    );

    // Three arguments alone: no log, nothing but the delta left in its folder.
    let alone = dir.path().join("alone");
    let plain = alone.join("plain.delta");
    let o = adudiff(&["generate", s(&v1), s(&v2), s(&plain)]);
    assert!(o.status.success());
    let left: Vec<_> = std::fs::read_dir(&alone)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["plain.delta"]);

    // DiffGenTool's four-argument form with --log-dir over the positional log folder.
    let o = adudiff(&[
        "generate",
        s(&v1),
        s(&v2),
        s(&plain),
        s(&work),
        "--log-dir",
        s(&logs),
        "--zstd-level",
        "22",
    ]);
    assert!(o.status.success());
    assert_eq!(logged_settings(&logs), (22, 512 << 20));
    assert!(!work.join("logs").exists());

    // --format extended: nothing here needs it, so the delta is standard and says so.
    let o = adudiff(&[
        "generate",
        "--format",
        "extended",
        s(&v1),
        s(&v2),
        s(&plain),
    ]);
    assert!(o.status.success());
    assert!(
        text_of(&o)
            .0
            .contains("format: standard v2 (the extended format would not be smaller)"),
        "{:?}",
        text_of(&o)
    );
}

#[test]
fn progress_is_silent_off_a_terminal() {
    // Not quiet, stderr a pipe: no bars, no carriage returns, no escape sequences (as before).
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = make_pair(dir.path());
    let o = adudiff(&["generate", s(&v1), s(&v2), s(&dir.path().join("d"))]);
    let (out, err) = text_of(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(err.is_empty(), "{err:?}");
    assert!(!out.contains('\r') && !out.contains('\u{1b}'), "{out:?}");
}

/// Runs `adudiff <args>` with stdout and stderr on a pseudo-terminal (util-linux `script`);
/// None when `script` is not available.
fn adudiff_on_a_terminal(args: &[&str]) -> Option<(bool, String)> {
    let runner = std::env::var("ADUDIFFAPI_TEST_RUNNER").unwrap_or_default();
    let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
    let line: Vec<String> = runner
        .split_whitespace()
        .map(quote)
        .chain(std::iter::once(quote(&adudiff_exe().to_string_lossy())))
        .chain(args.iter().map(|a| quote(a)))
        .collect();
    let o = Command::new("script")
        .args(["-qefc", &line.join(" "), "/dev/null"])
        .env("COLUMNS", "100")
        .env("TERM", "xterm")
        .output()
        .ok()?;
    Some((o.status.success(), text_of(&o).0))
}

#[test]
fn progress_bars_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = make_pair(dir.path());
    let Some((ok, tty)) =
        adudiff_on_a_terminal(&["generate", s(&v1), s(&v2), s(&dir.path().join("d"))])
    else {
        eprintln!("skipped: no `script` to make a terminal");
        return;
    };
    assert!(ok, "{tty}");
    // indicatif redraws in place (erase line) and leaves one "done" line per stage.
    assert!(tty.contains("\u{1b}[2K"), "{tty:?}");
    for stage in ["parse", "analyse", "diff", "verify"] {
        let done = format!("{stage:<10} done in ");
        assert!(tty.contains(&done), "{done:?} in {tty:?}");
    }
    assert!(tty.contains("verified: applying the delta"), "{tty:?}");
    // -q: the summary only.
    let (ok, tty) =
        adudiff_on_a_terminal(&["generate", "-q", s(&v1), s(&v2), s(&dir.path().join("e"))])
            .unwrap();
    assert!(ok);
    assert!(
        !tty.contains("done in") && !tty.contains('\u{1b}'),
        "{tty:?}"
    );
    assert!(tty.contains("verified: applying the delta"), "{tty:?}");
}

#[test]
fn release_forms_and_plain_progress_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = make_pair(dir.path());
    let out = dir.path().join("rel");
    let out_arg = format!("--out={}", s(&out));
    let identity = [
        "--provider=Contoso",
        "--name",
        "Toaster",
        "--version=1.1",
        "--compat",
        "manufacturer=Contoso,model=Toaster",
        "--description=-beta",
        "--installed-criteria=1.1",
    ];
    let mut args = vec![
        "release",
        &out_arg,
        "--jobs=1",
        "--threads",
        "1",
        "--zstd-level",
        "5",
    ];
    args.extend(identity);
    args.extend(["--no-files", "--format=standard", s(&v2), s(&v1)]);
    let o = adudiff(&args);
    let (stdout, stderr) = text_of(&o);
    assert!(o.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("1 of 1 deltas shipped"), "{stdout}");
    // Plain progress lines on stderr (not a terminal), no redraws.
    assert!(
        stderr.contains("adudiff release: analysing target v2.swu"),
        "{stderr}"
    );
    assert!(stderr.contains("[1/1]"), "{stderr}");
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("Toaster.importmanifest.json")).unwrap())
            .unwrap();
    assert_eq!(m["description"], "-beta");
    assert_eq!(m["updateId"]["version"], "1.1");
    // -q: nothing on stderr.
    let mut quiet = args.clone();
    quiet.insert(1, "-q");
    let o = adudiff(&quiet);
    assert!(o.status.success());
    assert!(text_of(&o).1.is_empty(), "{:?}", text_of(&o));
}

#[test]
fn recompress_two_argument_form() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, _) = make_pair(dir.path());
    let out = dir.path().join("out.swu");
    let o = adudiff(&["recompress", s(&v1), s(&out)]);
    let (stdout, stderr) = text_of(&o);
    assert!(o.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("fw.bin: left unchanged: not compressed"),
        "{stdout}"
    );
    adudiff_gen::swu::CpioArchive::parse(&std::fs::read(&out).unwrap()).unwrap();
    // A failure names the file and exits 1.
    let missing = dir.path().join("missing.swu");
    let o = adudiff(&["recompress", s(&missing), s(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text_of(&o).1.starts_with("adudiff recompress: error: "));
    assert!(text_of(&o).1.contains("missing.swu"));
}

#[test]
fn manifest_forms() {
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = make_pair(dir.path());
    // First form without --provider, and with --provider=.
    let o = adudiff(&["manifest", s(&v1)]);
    assert!(o.status.success(), "{:?}", text_of(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["relatedFileProperties"]["microsoft.sourceFileHashAlgorithm"],
        "sha256"
    );
    let o = adudiff(&["manifest", "--provider=Fabrikam", s(&v1)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["deviceSourceCachePath"]
        .as_str()
        .unwrap()
        .starts_with("/var/lib/adu/sdc/Fabrikam/sha256-"));

    // Second form: any file serves as the delta (it is hashed, not read).
    let delta = dir.path().join("v1-to-v2.delta");
    std::fs::write(&delta, b"PAMZ").unwrap();
    let script = dir.path().join("install.sh");
    std::fs::write(&script, b"#!/bin/sh\n").unwrap();
    let target_arg = format!("--target={}", s(&v2));
    let o = adudiff(&[
        "manifest",
        &target_arg,
        "--delta",
        s(&delta),
        "--provider",
        "Contoso",
        "--name=Toaster",
        "--version",
        "2.0.1",
        "--compat",
        "manufacturer=Contoso,model=Toaster",
        "--compat=manufacturer=Contoso,model=Toaster-2",
        "--handler=microsoft/script:1",
        "--handler-properties",
        r#"{"scriptFileName":"install.sh","installedCriteria":"old"}"#,
        "--installed-criteria",
        "2.0.1",
        "--handler-property",
        "arguments=--check",
        "--file",
        s(&script),
        "--description",
        "Toaster 2.0.1",
        s(&v1),
    ]);
    let (out, err) = text_of(&o);
    assert!(o.status.success(), "{out}{err}");
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        adudiff_gen::generate::import_manifest::validate(&m),
        vec![],
        "{out}"
    );
    assert_eq!(m["compatibility"].as_array().unwrap().len(), 2);
    let step = &m["instructions"]["steps"][0];
    assert_eq!(step["handler"], "microsoft/script:1");
    assert_eq!(
        step["handlerProperties"],
        serde_json::json!({
            "scriptFileName": "install.sh",
            "installedCriteria": "2.0.1",
            "arguments": "--check"
        })
    );
    assert_eq!(step["files"], serde_json::json!(["v2.swu", "install.sh"]));
    assert_eq!(m["description"], "Toaster 2.0.1");
    assert_eq!(
        m["files"][0]["relatedFiles"][0]["filename"],
        "v1-to-v2.delta"
    );
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = adudiff(&["completions", shell]);
        let (out, err) = text_of(&o);
        assert!(o.status.success(), "{shell}: {err}");
        for word in [
            "adudiff",
            "generate",
            "release",
            "zstd-level",
            "handler-property",
        ] {
            assert!(out.contains(word), "{shell} completion lacks {word}");
        }
    }
    // The bash script is valid bash and completes subcommands and --format's values.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("adudiff.bash");
    std::fs::write(&script, adudiff(&["completions", "bash"]).stdout).unwrap();
    let check = Command::new("bash")
        .arg("-c")
        .arg(format!(
            r#"source '{}' && COMP_WORDS=(adudiff gen) COMP_CWORD=1 COMP_LINE='adudiff gen' COMP_POINT=11 && _adudiff adudiff gen adudiff && echo "${{COMPREPLY[@]}}" && COMP_WORDS=(adudiff generate --format '') COMP_CWORD=3 && _adudiff adudiff '' --format && echo "${{COMPREPLY[@]}}""#,
            s(&script)
        ))
        .output();
    if let Ok(o) = check {
        let (out, err) = text_of(&o);
        assert!(o.status.success(), "{out}{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.first(), Some(&"generate"), "{out}{err}");
        assert_eq!(lines.get(1), Some(&"standard extended"), "{out}{err}");
    }
}

#[test]
fn man_pages() {
    let o = adudiff(&["man"]);
    let (page, err) = text_of(&o);
    assert!(o.status.success(), "{err}");
    assert!(page.contains(".TH adudiff 1"), "{page}");
    for cmd in [
        "generate",
        "release",
        "recompress",
        "apply",
        "dump",
        "manifest",
    ] {
        assert!(page.contains(cmd), "{cmd}");
    }
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man1");
    let o = adudiff(&["man", "--dir", s(&man)]);
    assert!(o.status.success(), "{:?}", text_of(&o));
    let mut pages: Vec<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert_eq!(
        pages,
        [
            "adudiff-apply.1",
            "adudiff-completions.1",
            "adudiff-dump.1",
            "adudiff-generate.1",
            "adudiff-man.1",
            "adudiff-manifest.1",
            "adudiff-recompress.1",
            "adudiff-release.1",
            "adudiff.1"
        ]
    );
    let generate = std::fs::read_to_string(man.join("adudiff-generate.1")).unwrap();
    assert!(
        generate.contains("DiffGenTool") && generate.contains("zstd\\-level"),
        "{generate}"
    );
    // Every page, the subcommands' too, names the version in its header and VERSION section.
    let version = env!("CARGO_PKG_VERSION");
    for name in &pages {
        let page = std::fs::read_to_string(man.join(name)).unwrap();
        let header = page
            .lines()
            .find(|l| l.starts_with(".TH "))
            .unwrap_or_default();
        assert!(
            header.trim_end().ends_with(&format!(" {version}\""))
                && page.contains(&format!(".SH VERSION\nv{version}\n")),
            "{name} lacks the version {version}:\n{page}"
        );
    }
}

/// The man pages and completions the Debian package installs (`pkg/man`, `pkg/completions`,
/// listed in Cargo.toml's `[package.metadata.deb]`) are what this binary prints: a change to
/// the CLI that is not regenerated with `scripts/update-cli-docs.sh` fails here.
#[test]
fn packaged_man_pages_and_completions_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("pkg");
    let dir = tempfile::tempdir().unwrap();
    let o = adudiff(&["man", "--dir", s(dir.path())]);
    assert!(o.status.success(), "{o:?}");
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let (printed, committed) = (names(dir.path()), names(&root.join("man")));
    let stale = "run scripts/update-cli-docs.sh and commit pkg/";
    assert_eq!(printed, committed, "man pages: {stale}");
    for name in &printed {
        assert!(
            std::fs::read(dir.path().join(name)).unwrap()
                == std::fs::read(root.join("man").join(name)).unwrap(),
            "pkg/man/{name} differs from `adudiff man`: {stale}"
        );
    }
    for (shell, file) in [
        ("bash", "adudiff.bash"),
        ("zsh", "_adudiff"),
        ("fish", "adudiff.fish"),
    ] {
        let o = adudiff(&["completions", shell]);
        assert!(o.status.success(), "{o:?}");
        assert!(
            o.stdout == std::fs::read(root.join("completions").join(file)).unwrap(),
            "pkg/completions/{file} differs from `adudiff completions {shell}`: {stale}"
        );
    }
}
