//! `adudiff release` end to end: three source SWUs and a target built here, one command, then
//! every manifest field checked against the files it names, every delta applied through the C ABI,
//! the manifest checked against the schema rules; refusals that name the field; a delta that is
//! not smaller than the target left out; the whole-manifest form of `adudiff manifest`; a
//! mixed-fleet release (extended deltas, a standard fallback) walked as the agent's delta
//! download handler walks it, on this library and on a standard-v2-only library, in the
//! manifest's order and reversed.

mod common;
mod swu_common;

use std::path::{Path, PathBuf};
use std::process::Output;

use adudiff_gen::generate::import_manifest::validate;
use adudiff_gen::swu::cpio::CpioFormat;
use serde_json::Value;
use sha2::{Digest, Sha256};
use swu_common::*;

const EPOCH: &str = "1700000000";
const EPOCH_ISO: &str = "2023-11-14T22:13:20Z";

fn adudiff(args: &[&str]) -> Output {
    adudiff_command()
        .args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .expect("run adudiff")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Base64 written independently of the library's encoder (bit string → 6-bit groups).
fn b64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bits: String = data.iter().map(|b| format!("{b:08b}")).collect();
    let mut out: String = bits
        .as_bytes()
        .chunks(6)
        .map(|c| {
            let mut g = String::from_utf8(c.to_vec()).unwrap();
            while g.len() < 6 {
                g.push('0');
            }
            A[usize::from_str_radix(&g, 2).unwrap()] as char
        })
        .collect();
    while out.len() % 4 != 0 {
        out.push('=');
    }
    out
}

fn sha_b64(path: &Path) -> String {
    b64(&Sha256::digest(std::fs::read(path).unwrap()))
}

/// Version `v` of a small update: a changing root file system and an application, each version
/// editing a few more places.
fn version(v: usize) -> Vec<u8> {
    let mut rootfs = text(11, 600_000);
    let mut app = text(23, 150_000);
    for k in 0..v {
        rootfs[50_000 + k * 90_000..50_000 + k * 90_000 + 300].fill(b'0' + k as u8);
        app[10_000 * (k + 1)..10_000 * (k + 1) + 64].fill(b'a' + k as u8);
    }
    let desc = sw_description(&[("rootfs.img", None, "00"), ("app.bin", None, "00")], &[]);
    let desc = desc.replace("1.0", &format!("1.{v}"));
    cpio(
        CpioFormat::Newc,
        &[
            ("sw-description", desc.as_bytes()),
            ("rootfs.img", &rootfs),
            ("app.bin", &app),
        ],
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

const IDENTITY: &[&str] = &[
    "--provider",
    "Contoso.Ltd",
    "--name",
    "Toaster",
    "--version",
    "1.4.0",
    "--compat",
    "manufacturer=Contoso,model=Toaster",
    "--compat",
    "manufacturer=Contoso,model=Toaster-2",
    "--installed-criteria",
    "1.4",
];

/// A successful `adudiff release` of three sources to one target, in a new temporary folder.
struct ThreeSourceRelease {
    dir: tempfile::TempDir,
    /// Versions 1, 2 and 3.
    sources: Vec<PathBuf>,
    /// Version 4.
    target: PathBuf,
    /// The release's output folder.
    out: PathBuf,
    /// The command line after `adudiff`.
    args: Vec<String>,
    stdout: String,
    stderr: String,
}

/// Versions 1–3 of `make_version` released to version 4 (files `<stems[v - 1]>.swu`) into the
/// folder `out_name` with `extra_args` and the update identity of [`IDENTITY`]; asserts success.
fn release_of_three(
    stems: [&str; 4],
    out_name: &str,
    make_version: fn(usize) -> Vec<u8>,
    extra_args: &[&str],
) -> ThreeSourceRelease {
    let dir = tempfile::tempdir().unwrap();
    let sources: Vec<PathBuf> = (1..=3)
        .map(|v| {
            write(
                dir.path(),
                &format!("{}.swu", stems[v - 1]),
                &make_version(v),
            )
        })
        .collect();
    let target = write(dir.path(), &format!("{}.swu", stems[3]), &make_version(4));
    let out = dir.path().join(out_name);
    let mut args = vec!["release", "--out", s(&out)];
    args.extend_from_slice(extra_args);
    args.extend_from_slice(IDENTITY);
    args.push(s(&target));
    args.extend(sources.iter().map(|p| s(p)));
    let o = adudiff(&args);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let args = args.iter().map(|a| a.to_string()).collect();
    ThreeSourceRelease {
        dir,
        sources,
        target,
        out,
        args,
        stdout,
        stderr,
    }
}

#[test]
fn three_sources_one_manifest() {
    let ThreeSourceRelease {
        dir,
        sources,
        target,
        out,
        args,
        stdout,
        stderr: _,
    } = release_of_three(
        ["toaster-1.1", "toaster-1.2", "toaster-1.3", "toaster-1.4"],
        "release",
        version,
        &["--jobs", "2"],
    );
    // Summary: one row per source with the format, then what each kind of device downloads.
    for src in &sources {
        let name = src.file_name().unwrap().to_str().unwrap();
        let mut rows = stdout.lines().skip_while(|l| !l.starts_with(name));
        let row = rows.next().expect(name);
        assert!(row.contains("standard"), "{row}");
        for who in ["this library     ", "Microsoft's 3.0.0"] {
            let l = rows.next().unwrap();
            assert!(
                l.starts_with(&format!("  devices on {who} download"))
                    && l.ends_with("B: the standard delta"),
                "{l}"
            );
        }
    }
    assert!(stdout.contains("3 of 3 deltas shipped"), "{stdout}");

    let manifest_path = out.join("Toaster.importmanifest.json");
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let m: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(validate(&m), vec![], "{text}");

    // Identity, compatibility, step.
    assert_eq!(
        m["updateId"],
        serde_json::json!({"provider": "Contoso.Ltd", "name": "Toaster", "version": "1.4.0"})
    );
    assert_eq!(
        m["compatibility"],
        serde_json::json!([
            {"manufacturer": "Contoso", "model": "Toaster"},
            {"manufacturer": "Contoso", "model": "Toaster-2"}
        ])
    );
    let steps = m["instructions"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["type"], "inline");
    assert_eq!(steps[0]["handler"], "microsoft/swupdate:2");
    assert_eq!(steps[0]["files"], serde_json::json!(["toaster-1.4.swu"]));
    assert_eq!(steps[0]["handlerProperties"]["installedCriteria"], "1.4");
    assert_eq!(m["manifestVersion"], "5.0");
    assert_eq!(m["createdDateTime"], EPOCH_ISO);

    // The target file as shipped.
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    let f = &files[0];
    let shipped = out.join(f["filename"].as_str().unwrap());
    assert_eq!(f["filename"], "toaster-1.4.swu");
    assert_eq!(
        std::fs::read(&shipped).unwrap(),
        std::fs::read(&target).unwrap()
    );
    assert_eq!(f["sizeInBytes"], std::fs::metadata(&shipped).unwrap().len());
    assert_eq!(f["hashes"]["sha256"], sha_b64(&shipped));
    assert_eq!(f["downloadHandler"]["id"], "microsoft/delta:1");

    // One related file per source: sizes, hashes, source hashes; each applies through the C ABI.
    let related = f["relatedFiles"].as_array().unwrap();
    assert_eq!(related.len(), 3);
    for (r, src) in related.iter().zip(&sources) {
        let delta = out.join(r["filename"].as_str().unwrap());
        assert!(delta.starts_with(&out));
        let len = std::fs::metadata(&delta).unwrap().len();
        assert_eq!(r["sizeInBytes"], len);
        assert!(len < std::fs::metadata(&shipped).unwrap().len());
        assert_eq!(r["hashes"]["sha256"], sha_b64(&delta));
        assert_eq!(
            r["properties"],
            serde_json::json!({
                "microsoft.sourceFileHashAlgorithm": "sha256",
                "microsoft.sourceFileHash": sha_b64(src),
            })
        );
        assert_microsoft_readable_standard(&delta);
        let rebuilt = dir.path().join("rebuilt.swu");
        let outcome = common::apply_c(src, &delta, &rebuilt);
        assert_eq!(outcome, Ok(()), "{}", delta.display());
        assert_eq!(
            std::fs::read(&rebuilt).unwrap(),
            std::fs::read(&target).unwrap()
        );
        std::fs::remove_file(&rebuilt).unwrap();
    }

    // Reproducible: the same inputs and SOURCE_DATE_EPOCH give the same manifest.
    let out2 = dir.path().join("release2");
    let args2: Vec<&str> = args
        .iter()
        .map(|a| if a == s(&out) { s(&out2) } else { a.as_str() })
        .collect();
    assert!(adudiff(&args2).status.success());
    assert_eq!(
        std::fs::read_to_string(out2.join("Toaster.importmanifest.json")).unwrap(),
        text
    );

    // The single-source case: `adudiff manifest` prints the whole manifest for one delta.
    let delta1 = out.join(related[0]["filename"].as_str().unwrap());
    let mut margs = vec!["manifest", "--target", s(&shipped), "--delta", s(&delta1)];
    margs.extend_from_slice(IDENTITY);
    margs.push(s(&sources[0]));
    let o = adudiff(&margs);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let single: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(validate(&single), vec![]);
    assert_eq!(single["files"][0]["hashes"], f["hashes"]);
    assert_eq!(single["files"][0]["relatedFiles"][0], related[0]);
    assert_eq!(single["createdDateTime"], EPOCH_ISO);
}

#[test]
fn a_delta_not_smaller_than_the_target_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    // A target of incompressible bytes whose cpio headers and padding are small (3,340 bytes
    // of noise fill 3,584 bytes exactly): from an unrelated source, no delta is smaller than
    // it; from a source that holds the same member, the delta is a slice.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..3_340)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let target = write(
        dir.path(),
        "t.swu",
        &cpio(CpioFormat::Newc, &[("fw.bin", &noise)]),
    );
    assert_eq!(std::fs::metadata(&target).unwrap().len(), 3_584);
    let unrelated = write(
        dir.path(),
        "old.swu",
        &cpio(CpioFormat::Newc, &[("other.bin", &text(5, 1_200))]),
    );
    let related = write(
        dir.path(),
        "near.swu",
        &cpio(CpioFormat::Newc, &[("fw.bin", &noise), ("v", b"1")]),
    );
    let out = dir.path().join("out");
    let mut args = vec!["release", "--out", s(&out)];
    args.extend_from_slice(IDENTITY);
    args.extend([s(&target), s(&unrelated), s(&related)]);
    let o = adudiff(&args);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("not smaller than the target"), "{stderr}");
    assert!(stdout.contains("delta left out"), "{stdout}");
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("Toaster.importmanifest.json")).unwrap())
            .unwrap();
    assert_eq!(validate(&m), vec![]);
    let related_files = m["files"][0]["relatedFiles"].as_array().unwrap();
    assert_eq!(related_files.len(), 1);
    assert_eq!(
        related_files[0]["properties"]["microsoft.sourceFileHash"],
        sha_b64(&related)
    );
    assert!(!out.join("old-to-t.delta").exists());
}

#[test]
fn refusals_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let target = write(dir.path(), "t.swu", &version(4));
    let src = write(dir.path(), "s.swu", &version(1));
    let out = dir.path().join("out");
    let run = |extra: &[&str], target: &Path, sources: &[&Path]| -> (i32, String) {
        let mut args = vec!["release", "--out", s(&out)];
        args.extend_from_slice(IDENTITY);
        args.extend_from_slice(extra);
        args.push(s(target));
        args.extend(sources.iter().map(|p| s(p)));
        let o = adudiff(&args);
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // A fifth source.
    let five: Vec<PathBuf> = (0..5)
        .map(|i| write(dir.path(), &format!("s{i}.swu"), &version(i)))
        .collect();
    let five: Vec<&Path> = five.iter().map(PathBuf::as_path).collect();
    let (code, err) = run(&[], &target, &five);
    assert_eq!(code, 1);
    assert!(
        err.contains("sources") && err.contains("at most 4"),
        "{err}"
    );
    // A provider with a space (the last --provider wins).
    let (code, err) = run(&["--provider", "Contoso Ltd"], &target, &[&src]);
    assert_eq!(code, 1);
    assert!(err.contains("updateId.provider"), "{err}");
    // A one-part version, a sixth compatibility property.
    let (_, err) = run(&["--version", "7"], &target, &[&src]);
    assert!(err.contains("updateId.version"), "{err}");
    let (_, err) = run(&["--compat", "a=1,b=2,c=3,d=4,e=5,f=6"], &target, &[&src]);
    assert!(err.contains("compatibility[2]"), "{err}");
    // An unknown format.
    let (code, err) = run(&["--format", "compact"], &target, &[&src]);
    assert_ne!(code, 0);
    assert!(err.contains("not a delta format"), "{err}");
    // A 2.5 GB target (sparse; refused from its size before anything is read).
    let huge = dir.path().join("huge.swu");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(2_684_354_560)
        .unwrap();
    let (code, err) = run(&[], &huge, &[&src]);
    assert_eq!(code, 1);
    assert!(err.contains("files[0].sizeInBytes"), "{err}");
    // Missing identity is a usage error.
    let o = adudiff(&["release", "--out", s(&out), s(&target), s(&src)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!out.join("Toaster.importmanifest.json").exists());
}

/// An SWU whose rootfs is gzip that stock zlib does not reproduce (version `v`).
fn foreign_gzip_version(v: usize) -> Vec<u8> {
    let mut rootfs = text(31, 300_000);
    rootfs[20_000 * v..20_000 * v + 100].fill(b'#');
    let gz = foreign_gzip(&rootfs);
    let desc = sw_description(&[("rootfs.ext4.gz", Some("zlib"), &sha256_hex(&gz))], &[]);
    cpio(
        CpioFormat::Newc,
        &[("sw-description", desc.as_bytes()), ("rootfs.ext4.gz", &gz)],
    )
}

#[test]
fn recompressed_and_signed_target_is_what_ships() {
    let dir = tempfile::tempdir().unwrap();
    let target = write(dir.path(), "t.swu", &foreign_gzip_version(2));
    let src = write(dir.path(), "s.swu", &foreign_gzip_version(1));
    let script = write(
        dir.path(),
        "install.sh",
        b"#!/bin/sh\nexec swupdate -i \"$1\"\n",
    );
    let signer = write(dir.path(), "sign.sh", b"#!/bin/sh\nprintf SIG > \"$2\"\n");
    let sign = format!("sh {}", s(&signer));
    let out = dir.path().join("out");
    let mut args = vec![
        "release",
        "--out",
        s(&out),
        "--format",
        "extended",
        "--recompress",
        "--sign",
        &sign,
        "--file",
        s(&script),
        "--handler-property",
        "scriptFileName=install.sh",
    ];
    args.extend_from_slice(IDENTITY);
    args.extend([s(&target), s(&src)]);
    let o = adudiff(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("recompressed"), "{stdout}");
    // zlib reproduces the recompressed target: the extended delta is not smaller, so the one
    // delta is standard and needs no fallback.
    assert!(stdout.contains("1 of 1 deltas shipped, each"), "{stdout}");

    let shipped = out.join("t.swu");
    let shipped_bytes = std::fs::read(&shipped).unwrap();
    assert_ne!(shipped_bytes, std::fs::read(&target).unwrap());
    let archive = adudiff_gen::swu::cpio::CpioArchive::parse(&shipped_bytes).unwrap();
    assert!(archive.find("sw-description.sig").is_some(), "signed");

    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("Toaster.importmanifest.json")).unwrap())
            .unwrap();
    assert_eq!(validate(&m), vec![]);
    assert_eq!(
        m["instructions"]["steps"][0]["files"],
        serde_json::json!(["t.swu", "install.sh"])
    );
    assert_eq!(
        m["instructions"]["steps"][0]["handlerProperties"]["scriptFileName"],
        "install.sh"
    );
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["hashes"]["sha256"], sha_b64(&shipped));
    assert_eq!(files[1]["filename"], "install.sh");
    assert_eq!(files[1]["hashes"]["sha256"], sha_b64(&script));
    assert!(files[1].get("relatedFiles").is_none());
    // The delta rebuilds the recompressed, signed target from the device's source.
    assert_eq!(files[0]["relatedFiles"].as_array().unwrap().len(), 1);
    let delta = out.join(files[0]["relatedFiles"][0]["filename"].as_str().unwrap());
    assert_microsoft_readable_standard(&delta);
    let rebuilt = dir.path().join("rebuilt.swu");
    assert_eq!(common::apply_c(&src, &delta, &rebuilt), Ok(()));
    assert_eq!(std::fs::read(&rebuilt).unwrap(), shipped_bytes);
}

/// The delta library a device runs, in [`handler_walk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Device {
    /// This library, through the C ABI.
    ThisLibrary,
    /// A library that reads standard version-2 deltas only, as Microsoft's 3.0.0 does: a delta
    /// whose version field (big-endian u64 after `PAMZ`) is not 2 is refused with 30001 before
    /// the target is opened, one with a `zstd_compression` recipe with 31702; the rest is
    /// applied by this library through the C ABI.
    StandardV2Only,
}

impl Device {
    /// Applies `delta` to `source` into `payload`; the error code (0: success).
    fn apply(self, source: &Path, delta: &Path, payload: &Path) -> u32 {
        if self == Device::StandardV2Only {
            let bytes = std::fs::read(delta).unwrap();
            let version = bytes
                .get(4..12)
                .map(|v| u64::from_be_bytes(v.try_into().unwrap()));
            if bytes.starts_with(b"PAMZ") && version != Some(2) {
                return 30001;
            }
            let parsed =
                adudiffapi::format::parse_delta(adudiffapi::io::SharedBytes::from_vec(bytes))
                    .unwrap();
            if parsed
                .recipes
                .iter()
                .any(|r| r.kind == adudiffapi::format::RecipeKind::ZstdCompression)
            {
                return 31702;
            }
        }
        common::code_of(&common::apply_c(source, delta, payload))
    }
}

/// What one walk of the delta download handler did.
#[derive(Debug, PartialEq, Eq)]
struct Walk {
    /// The related files downloaded, in order, with the code their apply returned (0: applied).
    tried: Vec<(String, u32)>,
    /// Whether the full target was downloaded at the end (every delta failed).
    full_image: bool,
    /// Bytes downloaded.
    downloaded: u64,
}

/// The agent's delta download handler (Azure/iot-hub-device-update,
/// microsoft_delta_download_handler.c) on a device holding `source`: the related files in the
/// given order; one for another source is skipped (source cache miss); otherwise it is
/// downloaded (size and hash checked against the manifest) and applied to the payload path; the
/// first success ends the walk; a failure is recorded and the walk goes on; when every delta
/// failed, the full target is downloaded. Asserts that a failed apply leaves no payload file
/// and that the payload ends as the exact target.
fn handler_walk(
    device: Device,
    related: &[&Value],
    out: &Path,
    source: &Path,
    target: &Path,
    payload: &Path,
) -> Walk {
    let source_hash = sha_b64(source);
    let mut walk = Walk {
        tried: Vec::new(),
        full_image: true,
        downloaded: 0,
    };
    for r in related {
        if r["properties"]["microsoft.sourceFileHash"] != source_hash.as_str() {
            continue;
        }
        let name = r["filename"].as_str().unwrap();
        let delta = out.join(name);
        walk.downloaded += std::fs::metadata(&delta).unwrap().len();
        assert_eq!(r["sizeInBytes"], std::fs::metadata(&delta).unwrap().len());
        assert_eq!(r["hashes"]["sha256"], sha_b64(&delta));
        let code = device.apply(source, &delta, payload);
        walk.tried.push((name.to_string(), code));
        if code == 0 {
            walk.full_image = false;
            break;
        }
        assert!(
            !payload.exists(),
            "{device:?}: {name} failed ({code}) but left a file"
        );
    }
    if walk.full_image {
        std::fs::copy(target, payload).unwrap();
        walk.downloaded += std::fs::metadata(target).unwrap().len();
    }
    assert_eq!(
        std::fs::read(payload).unwrap(),
        std::fs::read(target).unwrap(),
        "{device:?} from {}",
        source.display()
    );
    std::fs::remove_file(payload).unwrap();
    walk
}

/// The version field of the delta at `path`: 2 (standard) or `ADUDIFF\x02` (extended).
fn version_field(path: &Path) -> [u8; 8] {
    std::fs::read(path).unwrap()[4..12].try_into().unwrap()
}

#[test]
fn mixed_fleet_extended_delta_then_standard_fallback() {
    let ThreeSourceRelease {
        dir,
        sources,
        target,
        out,
        args: _,
        stdout,
        stderr,
    } = release_of_three(
        ["s1", "s2", "s3", "t"],
        "out",
        foreign_gzip_version,
        &["--format", "extended"],
    );

    // Four places: the three extended deltas, and the standard fallback of the first source
    // right after its extended delta; the other two sources are named in a warning.
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("Toaster.importmanifest.json")).unwrap())
            .unwrap();
    assert_eq!(validate(&m), vec![]);
    let related: Vec<&Value> = m["files"][0]["relatedFiles"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let names: Vec<&str> = related
        .iter()
        .map(|r| r["filename"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "s1-to-t.delta",
            "s1-to-t-standard.delta",
            "s2-to-t.delta",
            "s3-to-t.delta"
        ]
    );
    let source_of = |k: usize| related[k]["properties"]["microsoft.sourceFileHash"].clone();
    assert_eq!(source_of(0), sha_b64(&sources[0]));
    assert_eq!(source_of(1), sha_b64(&sources[0]));
    assert_eq!(source_of(2), sha_b64(&sources[1]));
    assert_eq!(source_of(3), sha_b64(&sources[2]));
    let size = |k: usize| related[k]["sizeInBytes"].as_u64().unwrap();
    let target_size = std::fs::metadata(&target).unwrap().len();
    assert!(size(0) < size(1) && size(1) < target_size, "{names:?}");
    for k in [0, 2, 3] {
        assert_eq!(&version_field(&out.join(names[k])), b"ADUDIFF\x02");
    }
    assert_microsoft_readable_standard(&out.join(names[1]));
    // The fallback is the standard delta the extended generation built to compare sizes with,
    // not a second generation; byte for byte what `adudiff generate` of the standard format
    // writes for the pair. The standard deltas without a place are not left behind.
    assert_eq!(stderr.matches("generating").count(), 4, "{stderr}");
    assert!(!stderr.contains("standard delta(s)"), "{stderr}");
    let standard = dir.path().join("s1-standard.delta");
    let o = adudiff(&[
        "generate",
        "--format",
        "standard",
        s(&sources[0]),
        s(&target),
        s(&standard),
    ]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        std::fs::read(&standard).unwrap() == std::fs::read(out.join(names[1])).unwrap(),
        "the fallback differs from the standard delta of the pair"
    );
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<&str> = names.clone();
    expected.extend(["Toaster.importmanifest.json", "t.swu"]);
    expected.sort();
    assert_eq!(files, expected);
    assert!(
        stderr.contains("no place for a standard fallback of")
            && stderr.contains("s2.swu, ")
            && stderr.contains("s3.swu"),
        "{stderr}"
    );
    // The summary says what each kind of device downloads.
    let line = |who: &str, bytes: u64, what: &str| {
        let bytes = bytes
            .to_string()
            .as_bytes()
            .rchunks(3)
            .rev()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(",");
        let l = format!("devices on {who:<17} download {bytes:>13} B: {what}");
        assert!(stdout.contains(&l), "{l:?} not in\n{stdout}");
    };
    line("this library", size(0), "the extended delta");
    line(
        "Microsoft's 3.0.0",
        size(0) + size(1),
        "the extended delta (refused: 30001), then the standard fallback",
    );
    line(
        "Microsoft's 3.0.0",
        size(2) + target_size,
        "the extended delta (refused: 30001), then the full image",
    );
    assert!(
        stdout.contains("3 of 3 deltas shipped + 1 standard fallback(s)"),
        "{stdout}"
    );

    // The handler's walk, in the manifest's order and reversed: every device ends with the
    // target; the bytes downloaded are what the summary says.
    let payload = dir.path().join("payload.swu");
    let walk = |device, order: &[&Value], src: &Path| {
        handler_walk(device, order, &out, src, &target, &payload)
    };
    let step = |k: usize, code: u32| (names[k].to_string(), code);
    let reversed: Vec<&Value> = related.iter().rev().copied().collect();

    let w = walk(Device::ThisLibrary, &related, &sources[0]);
    assert_eq!(
        (w.tried, w.full_image, w.downloaded),
        (vec![step(0, 0)], false, size(0))
    );
    let w = walk(Device::StandardV2Only, &related, &sources[0]);
    assert_eq!(w.tried, [step(0, 30001), step(1, 0)]);
    assert_eq!((w.full_image, w.downloaded), (false, size(0) + size(1)));
    let w = walk(Device::ThisLibrary, &reversed, &sources[0]);
    assert_eq!((w.tried, w.downloaded), (vec![step(1, 0)], size(1)));
    let w = walk(Device::StandardV2Only, &reversed, &sources[0]);
    assert_eq!((w.tried, w.downloaded), (vec![step(1, 0)], size(1)));
    for order in [&related, &reversed] {
        let w = walk(Device::ThisLibrary, order, &sources[1]);
        assert_eq!((w.tried, w.downloaded), (vec![step(2, 0)], size(2)));
        let w = walk(Device::StandardV2Only, order, &sources[1]);
        assert_eq!(w.tried, [step(2, 30001)]);
        assert_eq!((w.full_image, w.downloaded), (true, size(2) + target_size));
    }
}
