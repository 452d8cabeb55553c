//! pigz images in the extended format: SWUs built here whose rootfs was compressed by the real
//! `pigz` (levels 1, 6, 9, `--rsyncable`, `-b 32`, `-i`, one thread or two), spanning many pigz
//! jobs. The generator must recognise pigz's stream structure, describe each member by
//! `deflate_reconstruct` codec 2 encoder 2 (no corrections), and the delta must apply
//! byte-exact through the C ABI while staying small relative to what changed.
//!
//! pigz comes from the Debian package `pigz` (`.ci/run` installs it): a missing pigz fails.

mod common;
mod swu_common;

use std::path::Path;

use adudiff_gen::generate::{generate, DeltaFormat, GenerateOptions, Generated};
use adudiff_gen::swu::cpio::CpioFormat;
use adudiffapi::codec::deflate_reconstruct as dr;
use adudiffapi::format::{parse_delta, RecipeKind};
use adudiffapi::io::SharedBytes;
use common::{apply_c, code_of};
use swu_common::*;

/// Whether the test runs under emulation (`scripts/arm-ci.sh` sets this variable).
fn emulated() -> bool {
    std::env::var_os("ADUDIFFAPI_TEST_RUNNER").is_some()
}

type Case = SwuPair;

/// Source and target SWUs whose `rootfs.ext4.gz` are `gz1` and `gz2`.
fn case(gz1: &[u8], gz2: &[u8]) -> Case {
    image_swu_pair("rootfs.ext4.gz", None, 40, gz1, gz2)
}

/// `v1` with `count` scattered changes ([`scattered_edits`]).
fn changed(v1: &[u8], count: usize) -> (Vec<u8>, usize) {
    scattered_edits(v1, count, 900)
}

fn options(c: &Case, name: &str) -> GenerateOptions {
    GenerateOptions {
        work_dir: Some(c.dir.path().join("work")),
        ..generate_options(
            &c.source,
            &c.target,
            c.dir.path().join(format!("{name}.delta")),
            DeltaFormat::Extended,
        )
    }
}

/// Generates the extended delta of `c`, checks that the rootfs is rebuilt by the pigz encoder
/// (summary `expect_label`, codec 2 version 2 recipes), that it applies byte-exact through the
/// C ABI and that it is small: at most `2 × changed` bytes plus 2 bytes per KiB of plain text
/// (the `--rsyncable` layout) plus 48 KiB of fixed overhead.
fn check(c: &Case, expect_label: &str, plain_len: usize, changed: usize) {
    let e = options(c, "extended");
    let report = generate(&e).and_then(Generated::written).unwrap();
    let rootfs = report
        .members
        .iter()
        .find(|m| m.name == "rootfs.ext4.gz")
        .unwrap();
    assert_eq!(
        rootfs.rebuilt_by.as_deref(),
        Some(expect_label),
        "{expect_label}: {rootfs:?}"
    );
    let bytes = std::fs::read(&e.output).unwrap();
    let parsed = parse_delta(SharedBytes::from_vec(bytes)).unwrap();
    let codecs: Vec<_> = parsed
        .recipes
        .iter()
        .filter(|r| r.kind == RecipeKind::DeflateReconstruct)
        .map(|r| r.numbers.clone())
        .collect();
    assert!(
        !codecs.is_empty()
            && codecs
                .iter()
                .all(|n| n == &[dr::CODEC_EXACT, dr::CODEC_EXACT_VERSION_PIGZ]),
        "{expect_label}: {codecs:?}"
    );
    let out = c.dir.path().join("applied.swu");
    let outcome = apply_c(&c.source, &e.output, &out);
    assert_eq!(code_of(&outcome), 0, "{expect_label}: {outcome:?}");
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&c.target).unwrap(),
        "{expect_label}: applied target differs"
    );
    let bound = 2 * changed + plain_len / 512 + (48 << 10);
    assert!(
        report.delta_size as usize <= bound,
        "{expect_label}: delta {} B > bound {bound} B ({changed} B changed)",
        report.delta_size
    );
}

/// Every option set on an image spanning many pigz jobs.
#[test]
fn pigz_options_rebuild_exactly() {
    let len = if emulated() { 600_000 } else { 1_500_000 };
    let v1 = fs_image(1, len);
    let (v2, changed) = self::changed(&v1, 6);
    let cases: [(&[&str], &str); 8] = [
        (&["-9", "-n"], "pigz -9"),
        (&["-6", "-n"], "pigz -6"),
        (&["-1", "-n"], "pigz -1"),
        (&["-9", "-n", "--rsyncable"], "pigz -9 --rsyncable"),
        (&["-6", "-n", "-b", "32"], "pigz -6"),
        (&["-9", "-n", "-i"], "pigz -9 -i"),
        (&["-9", "-n", "-p", "1"], "pigz -9"),
        (
            &["-6", "-n", "-i", "--rsyncable", "-b", "64"],
            "pigz -6 -i --rsyncable",
        ),
    ];
    for (args, label) in cases {
        let (gz1, gz2) = (pigz(args, &v1), pigz(args, &v2));
        // Output does not depend on the thread count.
        if args.contains(&"-p") {
            assert_eq!(gz2, pigz(&[args, &["-p", "2"]].concat(), &v2));
        }
        check(&case(&gz1, &gz2), label, v2.len(), changed);
    }
}

/// A real-size image (24 MiB natively: 190 jobs of 128 KiB) at `-9 -n`, with and without
/// `--rsyncable`, against the standard delta to the same target.
#[test]
fn real_size_image_stays_small() {
    let len = if emulated() { 2 << 20 } else { 24 << 20 };
    let v1 = fs_image(7, len);
    let (v2, changed) = self::changed(&v1, 40);
    for (args, label) in [
        (&["-9", "-n"][..], "pigz -9"),
        (&["-9", "-n", "--rsyncable"][..], "pigz -9 --rsyncable"),
    ] {
        let c = case(&pigz(args, &v1), &pigz(args, &v2));
        check(&c, label, v2.len(), changed);
    }
}

/// The committed codec-2 encoder-2 delta (pigz -9 --rsyncable re-encoded) still applies
/// byte-exact: a change to the pigz encoder or its blob's meaning fails here. Regenerate only
/// with a new codec version: `ADUDIFF_WRITE_FIXTURE=1 cargo test --test extended_pigz fixture`.
#[test]
fn pigz_fixture_delta_pins_encoder_2() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extended-pigz");
    if std::env::var("ADUDIFF_WRITE_FIXTURE").is_ok() {
        let v1 = fs_image(11, 400_000);
        let (v2, _) = changed(&v1, 2);
        let args = ["-9", "-n", "--rsyncable", "-b", "32"];
        let v1 = cpio(CpioFormat::Newc, &[("data.gz", &pigz(&args, &v1))]);
        let v2 = cpio(CpioFormat::Newc, &[("data.gz", &pigz(&args, &v2))]);
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
    let blobs: Vec<_> = parsed
        .recipes
        .iter()
        .filter(|r| r.kind == RecipeKind::DeflateReconstruct)
        .map(|r| r.numbers.clone())
        .collect();
    assert!(!blobs.is_empty());
    assert!(
        blobs
            .iter()
            .all(|n| n == &[dr::CODEC_EXACT, dr::CODEC_EXACT_VERSION_PIGZ]),
        "{blobs:?}"
    );
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("target.swu");
    let outcome = apply_c(&dir.join("source.swu"), &dir.join("delta"), &target);
    assert_eq!(code_of(&outcome), 0, "{outcome:?}");
    assert!(std::fs::read(&target).unwrap() == std::fs::read(dir.join("target.swu")).unwrap());
}
