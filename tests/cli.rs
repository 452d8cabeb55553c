//! The `adudiff` binary end to end: generate (DiffGenTool positional forms), apply, dump,
//! manifest, recompress, usage errors.

mod swu_common;

use std::path::Path;
use std::process::{Command, Output};

use adudiffapi::swu::cpio::CpioFormat;
use swu_common::*;

fn adudiff(args: &[&str]) -> Output {
    // Under emulation (scripts/arm-ci.sh), the foreign binary runs through the runner's emulator.
    let runner = std::env::var("ADUDIFFAPI_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut c = match words.next() {
        Some(emulator) => {
            let mut c = Command::new(emulator);
            c.args(words).arg(env!("CARGO_BIN_EXE_adudiff"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_adudiff")),
    };
    c.args(args).output().expect("run adudiff")
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
    let a = adudiffapi::swu::CpioArchive::parse(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(a.members[1].name, "sw-description.sig");
    // Output keeps ordinary file permissions.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o644
    );
}
