//! File-aware image deltas (`generate::image`): a small ext4 "OS update" (tests/fixtures/ext4-pair,
//! made by its make.sh with mke2fs) packed into SWU files, generated both file-aware and
//! whole-image, applied, and compared.

mod swu_common;

use std::io::Read;

use adudiff_gen::generate::{generate, DeltaFormat, GenerateOptions, Generated, Strategy};
use adudiff_gen::swu::cpio::CpioFormat;
use adudiffapi::codec::deflate_exact;
use adudiffapi::format::ZlibInit;
use swu_common::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/ext4-pair/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let gz = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn swu(image: &[u8], kernel: &[u8]) -> Vec<u8> {
    let gz = deflate_exact(image, ZlibInit::Gzip, 9).unwrap();
    let d = sw_description(&[("rootfs.ext4.gz", Some("zlib"), &sha256_hex(&gz))], &[]);
    cpio(
        CpioFormat::Newc,
        &[
            ("sw-description", d.as_bytes()),
            ("rootfs.ext4.gz", &gz),
            ("vmlinuz", kernel),
        ],
    )
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let kernel = text(77, 50_000);
        std::fs::write(
            dir.path().join("v1.swu"),
            swu(&fixture("v1.ext4.gz"), &kernel),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("v2.swu"),
            swu(&fixture("v2.ext4.gz"), &kernel),
        )
        .unwrap();
        Case { dir }
    }

    fn options(&self, files: bool) -> GenerateOptions {
        let p = self.dir.path();
        let name = if files { "files" } else { "whole" };
        GenerateOptions {
            log_dir: Some(p.join(format!("{name}-logs"))),
            work_dir: Some(p.join("work")),
            files,
            ..generate_options(
                &p.join("v1.swu"),
                &p.join("v2.swu"),
                p.join(format!("{name}.delta")),
                DeltaFormat::Standard,
            )
        }
    }

    fn apply(&self, delta: &std::path::Path) -> Vec<u8> {
        let out = self.dir.path().join("applied.swu");
        adudiffapi::apply::apply_files(&self.dir.path().join("v1.swu"), delta, &out).unwrap();
        std::fs::read(out).unwrap()
    }
}

#[test]
fn file_aware_delta_round_trips_and_beats_whole_image_diffing() {
    let case = Case::new();
    let target = std::fs::read(case.dir.path().join("v2.swu")).unwrap();

    let files = case.options(true);
    let r = generate(&files).and_then(Generated::written).unwrap();
    assert_eq!(case.apply(&files.output), target);
    let rootfs = r
        .members
        .iter()
        .find(|m| m.name == "rootfs.ext4.gz")
        .unwrap();
    assert_eq!(rootfs.strategy, Strategy::Files);
    let st = rootfs.image.as_ref().expect("image statistics");
    // app.conf, tool, changelog.gz and tool.1.gz changed; aaa-new.so, newtool, its copy and the
    // new changelog.gz are new; libfoo.so (moved), unchanged.txt and the 40 misc files are copied.
    assert_eq!(st.changed.0, 4, "{st:?}");
    assert_eq!(st.new.0, 4, "{st:?}");
    assert_eq!(st.unchanged_files, 42, "{st:?}");
    // Both changed gzip files and the new one travel as text and are re-gzipped on the device.
    assert_eq!(st.regzipped_files, 3, "{st:?}");
    assert!(st.frames.0 >= 1);

    let whole = case.options(false);
    let w = generate(&whole).and_then(Generated::written).unwrap();
    assert_eq!(case.apply(&whole.output), target);
    let wroot = w
        .members
        .iter()
        .find(|m| m.name == "rootfs.ext4.gz")
        .unwrap();
    assert_ne!(wroot.strategy, Strategy::Files);
    assert!(
        r.delta_size < w.delta_size,
        "file-aware {} vs whole-image {}",
        r.delta_size,
        w.delta_size
    );

    // Within what Microsoft's applier reads: standard v2, recipe ids 0-5 and 7.
    assert_microsoft_readable(&files.output);
    // The log carries the image statistics.
    let log = std::fs::read_to_string(case.dir.path().join("files-logs/diff.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&log).unwrap();
    let image = &v["members"][1]["image"];
    assert_eq!(image["changed"]["files"], 4);
    assert_eq!(image["regzipped_files"], 3);
}

/// Deterministic bytes for damaging images.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn damaged_images_still_give_correct_deltas() {
    // Metadata of either image overwritten in several places (superblock copies, group
    // descriptors, bitmaps, inode tables, directories): the planner must either cope or leave the
    // image to the whole-content path, and the verified delta must rebuild the target exactly.
    let kernel = text(77, 50_000);
    for (round, offsets) in [
        vec![4096usize],
        vec![8192, 65_536],
        vec![1024, 12_288, 200_000],
    ]
    .into_iter()
    .enumerate()
    {
        for damage_target in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let mut v1 = fixture("v1.ext4.gz");
            let mut v2 = fixture("v2.ext4.gz");
            let img = if damage_target { &mut v2 } else { &mut v1 };
            for (k, &o) in offsets.iter().enumerate() {
                let bytes = noise((round * 10 + k) as u64 + 7, 4096);
                img[o..o + 4096].copy_from_slice(&bytes);
            }
            std::fs::write(dir.path().join("v1.swu"), swu(&v1, &kernel)).unwrap();
            std::fs::write(dir.path().join("v2.swu"), swu(&v2, &kernel)).unwrap();
            let case = Case { dir };
            let opts = case.options(true);
            generate(&opts)
                .and_then(Generated::written)
                .unwrap_or_else(|e| panic!("round {round} ({damage_target}): {e}"));
            let target = std::fs::read(case.dir.path().join("v2.swu")).unwrap();
            assert_eq!(case.apply(&opts.output), target, "round {round}");
        }
    }
}
