//! zstd images made by another zstd than the bundled libzstd, in the extended format: SWUs built
//! here whose rootfs Debian's `zstd` CLI (1.5.4) compressed at its default level 3 — in job
//! mode with small jobs (`-T0 -B512K`, several jobs) and with `--single-thread`. The bundled
//! libzstd does not make these frames; the generator must describe them by `zstd_reconstruct`
//! (the device recomputes the level-3 parse and re-encodes the frame), the delta must apply
//! byte-exact through the C ABI and stay small relative to what changed, and an apply without
//! the memory the rebuild needs must end cleanly with 20301.
//!
//! zstd comes from the Debian package `zstd` (`.ci/run` installs it): a missing zstd fails.

mod common;
mod swu_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use adudiff_gen::generate::{generate, DeltaFormat, GenerateOptions, Generated};
use adudiff_gen::swu::cpio::CpioFormat;
use adudiffapi::codec::zstd_reconstruct as zr;
use adudiffapi::format::{parse_delta, RecipeKind};
use adudiffapi::io::SharedBytes;
use common::{apply_c, code_of};
use swu_common::*;

/// Whether the test runs under emulation (`scripts/arm-ci.sh` sets this variable).
fn emulated() -> bool {
    std::env::var_os("ADUDIFFAPI_TEST_RUNNER").is_some()
}

/// `zstd args` of `data` as a file (as an image build compresses it).
fn zstd_cli(args: &[&str], data: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rootfs.ext4");
    std::fs::write(&path, data).unwrap();
    let out = Command::new("zstd")
        .args(args)
        .args(["-q", "-c"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("zstd is needed (apt-get install -y zstd): {e}"));
    assert!(out.status.success(), "zstd {args:?} failed");
    out.stdout
}

type Case = SwuPair;

/// Source and target SWUs whose `rootfs.ext4.zst` are `z1` and `z2`.
fn case(z1: &[u8], z2: &[u8]) -> Case {
    image_swu_pair("rootfs.ext4.zst", Some("zstd"), 41, z1, z2)
}

/// `v1` with `count` scattered changes ([`scattered_edits`]).
fn changed(v1: &[u8], count: usize) -> (Vec<u8>, usize) {
    scattered_edits(v1, count, 700)
}

fn options(c: &Case) -> GenerateOptions {
    GenerateOptions {
        work_dir: Some(c.dir.path().join("work")),
        ..generate_options(
            &c.source,
            &c.target,
            c.dir.path().join("extended.delta"),
            DeltaFormat::Extended,
        )
    }
}

/// Generates the extended delta of `c`: the rootfs must be rebuilt from its structure (one
/// `zstd_reconstruct` recipe, codec 1 version 1), apply byte-exact through the C ABI, and cost
/// at most `2 × changed` bytes plus 4 KiB per MiB of content (the structure) plus 48 KiB.
fn check(c: &Case, label: &str, content_len: usize, changed: usize) -> PathBuf {
    let e = options(c);
    let report = generate(&e).and_then(Generated::written).unwrap();
    let rootfs = report
        .members
        .iter()
        .find(|m| m.name == "rootfs.ext4.zst")
        .unwrap();
    let how = rootfs.zstd_rebuilt.as_deref().unwrap_or("");
    assert!(how.contains("structure"), "{label}: {rootfs:?}");
    assert!(!rootfs.zstd_compressed, "{label}");
    let parsed = parse_delta(SharedBytes::from_vec(std::fs::read(&e.output).unwrap())).unwrap();
    let numbers: Vec<_> = parsed
        .recipes
        .iter()
        .filter(|r| r.kind == RecipeKind::ZstdReconstruct)
        .map(|r| r.numbers.clone())
        .collect();
    assert_eq!(numbers, [vec![zr::CODEC_DFAST, zr::VERSION_1]], "{label}");
    let out = c.dir.path().join("applied.swu");
    let outcome = apply_c(&c.source, &e.output, &out);
    assert_eq!(code_of(&outcome), 0, "{label}: {outcome:?}");
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&c.target).unwrap(),
        "{label}: applied target differs"
    );
    let bound = 2 * changed + (content_len >> 20) * 4096 + (48 << 10);
    println!("{label}: delta {} B, bound {bound} B", report.delta_size);
    assert!(
        report.delta_size as usize <= bound,
        "{label}: delta {} B > bound {bound} B ({changed} B changed)",
        report.delta_size
    );
    e.output
}

/// Debian's zstd at level 3: job mode with 512 KiB jobs (several jobs), and one thread.
#[test]
fn debian_zstd_level3_frames_are_rebuilt_from_their_structure() {
    let len = if emulated() { 1_200_000 } else { 5 << 19 };
    let v1 = fs_image(21, len);
    let (v2, changed) = self::changed(&v1, 8);
    for (args, label) in [
        (&["-3", "-T0", "-B512K"][..], "zstd -3 -T0 -B512K"),
        (&["-3", "--single-thread"][..], "zstd -3 --single-thread"),
    ] {
        let c = case(&zstd_cli(args, &v1), &zstd_cli(args, &v2));
        let delta = check(&c, label, v2.len(), changed);
        if args.contains(&"--single-thread") {
            continue;
        }
        // A memory budget below the rebuild's needs: refused before it allocates.
        let out = adudiff_command()
            .env("ADUDIFF_SCRATCH_MEMORY", "2M")
            .args(["apply"])
            .args([&c.source, &delta, &c.dir.path().join("limited.swu")])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{label}: 2 MiB budget applied");
        assert!(stderr.contains("code 20301"), "{label}: {stderr}");
        assert!(!c.dir.path().join("limited.swu").exists());
    }
}

/// The committed codec-1 version-1 delta (a Debian zstd 1.5.4 `-3 -T0 -B512K` frame rebuilt
/// from its structure) still applies byte-exact: a change to the port, the encoder or the
/// blob's meaning fails here. Regenerate only with a new codec version:
/// `ADUDIFF_WRITE_FIXTURE=1 cargo test --test extended_zstd_dfast fixture`.
#[test]
fn dfast_fixture_delta_pins_codec_1_version_1() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extended-zstd-dfast");
    if std::env::var("ADUDIFF_WRITE_FIXTURE").is_ok() {
        let v1 = fs_image(23, 1_100_000);
        let (v2, _) = changed(&v1, 2);
        let args = ["-3", "-T0", "-B512K"];
        let v1 = cpio(CpioFormat::Newc, &[("data.zst", &zstd_cli(&args, &v1))]);
        let v2 = cpio(CpioFormat::Newc, &[("data.zst", &zstd_cli(&args, &v2))]);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("source.swu"), v1).unwrap();
        std::fs::write(dir.join("target.swu"), v2).unwrap();
        let opts = GenerateOptions {
            threads: 1,
            ..generate_options(
                &dir.join("source.swu"),
                &dir.join("target.swu"),
                dir.join("delta"),
                DeltaFormat::Extended,
            )
        };
        let r = generate(&opts).and_then(Generated::written).unwrap();
        assert_eq!(r.format, DeltaFormat::Extended);
    }
    let delta = std::fs::read(dir.join("delta")).unwrap();
    let parsed = parse_delta(SharedBytes::from_vec(delta)).unwrap();
    let numbers: Vec<_> = parsed
        .recipes
        .iter()
        .filter(|r| r.kind == RecipeKind::ZstdReconstruct)
        .map(|r| r.numbers.clone())
        .collect();
    assert_eq!(numbers, [vec![zr::CODEC_DFAST, zr::VERSION_1]]);
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("target.swu");
    let outcome = apply_c(&dir.join("source.swu"), &dir.join("delta"), &target);
    assert_eq!(code_of(&outcome), 0, "{outcome:?}");
    assert!(std::fs::read(&target).unwrap() == std::fs::read(dir.join("target.swu")).unwrap());
}

/// Fault injection through the C ABI: prefixes of the fixture delta and flipped bytes across it
/// (every 5th offset, which reaches the structure blob's every field kind) end with a documented
/// code — the recipe's own 39005/39006 among them — or the exact target, never a signal or
/// other bytes; a pre-existing target stays untouched and no temporary file is left.
#[test]
fn damaged_fixture_deltas_fail_cleanly_through_the_c_abi() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extended-zstd-dfast");
    let full = std::fs::read(dir.join("delta")).unwrap();
    let expected = std::fs::read(dir.join("target.swu")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("target.swu");
    const PREVIOUS: &[u8] = b"previous target";
    std::fs::write(&target, PREVIOUS).unwrap();
    let allowed = [
        1, 20000, 20104, 20106, 20201, 20202, 20203, 20301, 20302, 21200, 30000, 30001, 30002,
        30003, 30009, 30010, 30104, 30900, 31701, 31702, 33000, 33001, 39004, 39005, 39006,
    ];
    let mut variants: Vec<Vec<u8>> = (0..full.len())
        .step_by(5)
        .map(|n| full[..n].to_vec())
        .collect();
    for i in (0..full.len()).step_by(5) {
        let mut v = full.clone();
        v[i] ^= 0x01;
        variants.push(v);
    }
    let session = adudiffapi::ffi::adu_diff_apply_create_session();
    let mut histogram = std::collections::BTreeMap::new();
    for (k, v) in variants.iter().enumerate() {
        let d = work.path().join(format!("delta-{k}"));
        std::fs::write(&d, v).unwrap();
        let outcome = common::apply_on(session, &dir.join("source.swu"), &d, &target);
        std::fs::remove_file(&d).unwrap();
        let code = code_of(&outcome);
        *histogram.entry(code).or_insert(0usize) += 1;
        if code == 0 {
            assert!(std::fs::read(&target).unwrap() == expected, "variant {k}");
            std::fs::write(&target, PREVIOUS).unwrap();
            continue;
        }
        assert!(allowed.contains(&code), "variant {k}: {outcome:?}");
        assert_eq!(std::fs::read(&target).unwrap(), PREVIOUS, "variant {k}");
    }
    adudiffapi::ffi::adu_diff_apply_close_session(session);
    assert!(common::leftovers(work.path()).is_empty());
    println!(
        "zstd_reconstruct fixture: {} variants | {histogram:?}",
        variants.len()
    );
}

/// A delta whose target (`target_len` bytes; a made-up hash when that is not the frame's
/// length) is `zstd_reconstruct(codec)` of the source with `blob` as the structure.
fn reconstruct_delta(
    frame: &[u8],
    target_len: u64,
    source: &[u8],
    blob: &[u8],
    codec: [u64; 2],
) -> Vec<u8> {
    use adudiffapi::format::writer::{item_of, write_delta_to_vec, DeltaBuilder};
    use adudiffapi::format::{Item, Recipe};
    let target = if target_len == frame.len() as u64 {
        item_of(frame)
    } else {
        Item::with_sha256(target_len, [0x5a; 32])
    };
    write_delta_to_vec(&DeltaBuilder {
        target: target.clone(),
        source: item_of(source),
        recipes: vec![Recipe {
            kind: RecipeKind::ZstdReconstruct,
            result: target,
            numbers: codec.to_vec(),
            items: vec![item_of(source), item_of(blob)],
        }],
        inline_assets: Some(blob.to_vec()),
        remainder: None,
    })
    .unwrap()
}

/// Hostile structure blobs through the C ABI, each in a delta whose hashes are right: the
/// recipe's own codes, nothing written. The blob is the generator's for a real Debian frame.
#[test]
fn hostile_structure_blobs_end_in_the_recipes_codes() {
    use adudiff_gen::generate::zstdrebuild::{find_structure, ZstdRecipe};
    let content = fs_image(25, 700_000);
    let frame = zstd_cli(&["-3", "-T0", "-B512K"], &content);
    let Ok(ZstdRecipe::Rebuild { blob, .. }) = find_structure(&content, &frame) else {
        panic!("a Debian level-3 frame not described by its structure");
    };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::write(&source, &content).unwrap();
    let n = frame.len() as u64;
    let codec = [zr::CODEC_DFAST, zr::VERSION_1];
    let run = |delta: Vec<u8>| {
        let path = dir.path().join("delta");
        let target = dir.path().join("target");
        std::fs::write(&path, delta).unwrap();
        let outcome = apply_c(&source, &path, &target);
        let code = code_of(&outcome);
        if code == 0 {
            assert!(std::fs::read(&target).unwrap() == frame);
            std::fs::remove_file(&target).unwrap();
        } else {
            assert!(!target.exists(), "{outcome:?}");
        }
        code
    };
    assert_eq!(run(reconstruct_delta(&frame, n, &content, &blob, codec)), 0);
    let mut huge_count = blob[..8].to_vec();
    huge_count.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    huge_count.extend_from_slice(&blob[9..]);
    let mut bad_mode = blob.to_vec();
    let at = bad_mode
        .iter()
        .position(|&b| b == 2 | 4)
        .unwrap_or(bad_mode.len() - 1);
    bad_mode[at] = 0xff;
    for (name, bad) in [
        ("truncated", blob[..blob.len() / 2].to_vec()),
        ("one byte short", blob[..blob.len() - 1].to_vec()),
        ("huge block count", huge_count),
        ("unknown tag or mode", bad_mode),
        ("hash log 25", [&[21, 25], &blob[2..]].concat()),
    ] {
        let code = run(reconstruct_delta(&frame, n, &content, &bad, codec));
        assert_eq!(code, 39006, "{name}");
    }
    for bad_codec in [[2, 1], [1, 2]] {
        let code = run(reconstruct_delta(&frame, n, &content, &blob, bad_codec));
        assert_eq!(code, 39005, "codec {bad_codec:?}");
    }
    // A frame length the structure does not give, and one no frame of the content can have.
    assert_eq!(
        run(reconstruct_delta(&frame, n + 1, &content, &blob, codec)),
        39006
    );
    assert_eq!(
        run(reconstruct_delta(&frame, 3, &content, &blob, codec)),
        39006
    );
}
