//! Writer and generator tests: byte-exact standard v2 output (spec §5 worked examples) and
//! round trips of small SWU updates built here.

mod swu_common;

use adudiff_gen::generate::{generate, DeltaFormat, GenerateOptions, Generated, Method, Strategy};
use adudiff_gen::swu::cpio::CpioFormat;
use adudiffapi::codec::deflate_exact;
use adudiffapi::format::writer::{item_of, write_delta_to_vec, DeltaBuilder};
use adudiffapi::format::{Recipe, RecipeKind, ZlibInit};
use swu_common::*;

const HELLO_DELTA_HEX: &[&str] = &[
    "50414d5a000000000000000200000000000000050000800c2cf24dba5fb0a30e",
    "26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824000000000000000c",
    "0000800ca948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299",
    "a192a447000000080000000000000009616c6c5f7a65726f7300000000000000",
    "05636861696e0000000000000005736c69636500000000000000156273706174",
    "63685f6465636f6d7072657373696f6e00000000000000107a6c69625f636f6d",
    "7072657373696f6e00000000000000127a6c69625f6465636f6d707265737369",
    "6f6e00000000000000107a7374645f636f6d7072657373696f6e000000000000",
    "00127a7374645f6465636f6d7072657373696f6e000000000000000100000000",
    "0000000100000000000000050000800c2cf24dba5fb0a30e26e83b2ac5b9e29e",
    "1b161e5c1fa7425e73043362938b982400000002000000000000000100000000",
    "000000000000000000000001000000000000000c0000800ca948904f2f0f479b",
    "8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a4470000000000000000",
    "000000000000000000000000",
];

fn unhex(parts: &[&str]) -> Vec<u8> {
    let s: String = parts.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hello_builder() -> DeltaBuilder {
    let source = item_of(b"hello world\n");
    let target = item_of(b"hello");
    DeltaBuilder {
        target: target.clone(),
        source: source.clone(),
        recipes: vec![Recipe {
            kind: RecipeKind::Slice,
            result: target,
            numbers: vec![0],
            items: vec![source],
        }],
        inline_assets: None,
        remainder: None,
    }
}

#[test]
fn writer_reproduces_the_428_byte_worked_example() {
    let expected = unhex(HELLO_DELTA_HEX);
    assert_eq!(expected.len(), 428);
    assert_eq!(write_delta_to_vec(&hello_builder()).unwrap(), expected);
}

#[test]
fn writer_reproduces_the_602_byte_remainder_variant() {
    let mut b = hello_builder();
    let remainder = b"ABCDEFGHIJABCDEFGHIJ".to_vec();
    b.remainder = Some(remainder.clone());
    let got = write_delta_to_vec(&b).unwrap();

    let base = unhex(HELLO_DELTA_HEX);
    let compressed = [
        0x73, 0x74, 0x72, 0x76, 0x71, 0x75, 0x73, 0xF7, 0xF0, 0xF4, 0x72, 0x84, 0xB3, 0x00,
    ];
    let item_bytes = |data: &[u8]| {
        let it = item_of(data);
        let mut v = (data.len() as u64).to_be_bytes().to_vec();
        v.extend_from_slice(&[0, 0, 0x80, 0x0C]);
        v.extend_from_slice(&it.sha256.unwrap());
        v
    };
    let mut expected = base[..0x114].to_vec();
    expected.extend_from_slice(&2u64.to_be_bytes());
    expected.extend_from_slice(&base[0x11C..0x198]);
    expected.extend_from_slice(&1u64.to_be_bytes());
    expected.extend(item_bytes(&remainder));
    expected.extend_from_slice(&5u32.to_be_bytes());
    expected.extend_from_slice(&1u64.to_be_bytes());
    expected.extend_from_slice(&0u64.to_be_bytes());
    expected.extend_from_slice(&1u64.to_be_bytes());
    expected.extend(item_bytes(&compressed));
    expected.extend_from_slice(&0u64.to_be_bytes()); // inline assets
    expected.extend(item_bytes(&compressed));
    expected.extend_from_slice(&compressed);
    expected.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(expected.len(), 602);
    assert_eq!(hex(&item_of(&remainder).sha256.unwrap())[..8], *"17149463");
    assert_eq!(hex(&item_of(&compressed).sha256.unwrap())[..8], *"ad18f145");
    assert_eq!(got, expected);
}

#[test]
fn empty_remainder_is_the_two_byte_deflate_without_recipe() {
    let mut b = hello_builder();
    b.remainder = Some(Vec::new());
    let got = write_delta_to_vec(&b).unwrap();
    // Same recipe set as the worked example; the remainder section holds `03 00`.
    let base = unhex(HELLO_DELTA_HEX);
    assert_eq!(&got[..0x1A0], &base[..0x1A0]);
    assert_eq!(&got[0x1A0..0x1A8], &2u64.to_be_bytes());
    assert_eq!(&got[got.len() - 6..], &[0x03, 0x00, 0, 0, 0, 0]);
    assert_eq!(got.len(), 428 + 36 + 2);
}

/// Inflates a raw deflate stream (the writer's remainder blob).
fn inflate_raw(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Minimal standard-v2 reader for the rewrite test (the crate's parser lives elsewhere): returns
/// a builder holding the recipes, the inline assets and the *inflated* remainder, so that the
/// writer has to reproduce the remainder compression and the ordering by itself.
fn read_v2(bytes: &[u8]) -> DeltaBuilder {
    use adudiffapi::format::reader::{Cursor, Endian};
    use adudiffapi::format::Item;
    use adudiffapi::io::SharedBytes;
    let mut c = Cursor::new(SharedBytes::from_vec(bytes.to_vec()), Endian::Big);
    let item = |c: &mut Cursor| -> Item {
        let mut it = Item {
            length: c.u64().unwrap(),
            ..Item::default()
        };
        if it.length != 0 {
            c.hash_into(&mut it).unwrap();
        }
        it
    };
    assert_eq!(c.bytes(4).unwrap(), b"PAMZ");
    assert_eq!(c.u64().unwrap(), 2);
    let target = item(&mut c);
    let source = item(&mut c);
    let names = c.u32().unwrap();
    for _ in 0..names {
        let n = c.u64().unwrap();
        c.bytes(n).unwrap();
    }
    let mut recipes = Vec::new();
    for _ in 0..c.u64().unwrap() {
        let count = c.u64().unwrap();
        let result = item(&mut c);
        for _ in 0..count {
            let kind = RecipeKind::from_id(c.u32().unwrap()).unwrap();
            let numbers = (0..c.u64().unwrap()).map(|_| c.u64().unwrap()).collect();
            let items = (0..c.u64().unwrap()).map(|_| item(&mut c)).collect();
            recipes.push(Recipe {
                kind,
                result: result.clone(),
                numbers,
                items,
            });
        }
    }
    let ia = item(&mut c);
    let inline_assets = (ia.length != 0).then(|| c.bytes(ia.length).unwrap().to_vec());
    let rc = item(&mut c);
    let remainder = (rc.length != 0).then(|| {
        let blob = c.bytes(rc.length).unwrap().to_vec();
        // Drop the recipe the writer adds by itself.
        recipes.retain(|r| !(r.items.len() == 1 && r.items[0] == rc));
        inflate_raw(&blob).unwrap()
    });
    assert_eq!(c.u32().unwrap(), 0);
    DeltaBuilder {
        target,
        source,
        recipes,
        inline_assets,
        remainder,
    }
}

#[test]
fn rewriting_microsoft_vectors_is_byte_identical() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut checked = 0;
    for name in [
        "slice_basic",
        "chain_of_slices",
        "all_zeros_in_chain",
        "all_zeros_whole_target",
        "remainder_slices",
        "inline_assets_slices",
        "bspatch_slice_dictionary",
        "zstd_no_dictionary",
        "zlib_decompression_gz",
        "swu_realistic_rootfs",
    ] {
        let original = std::fs::read(dir.join(name).join("delta")).unwrap();
        let mut builder = read_v2(&original);
        // Feed the recipes in reverse to prove the writer orders them itself.
        builder.recipes.reverse();
        let rewritten = write_delta_to_vec(&builder).unwrap();
        assert!(rewritten == original, "{name}: rewritten delta differs");
        checked += 1;
    }
    assert_eq!(checked, 10);
}

struct Pair {
    _dir: tempfile::TempDir,
    source: std::path::PathBuf,
    target: std::path::PathBuf,
    dir: std::path::PathBuf,
}

/// Source and target SWUs: a changed gzip rootfs, an unchanged kernel, a changed app binary, a
/// removed and a new member, a changed sw-description and signature.
fn swu_pair(target_gzip: fn(&[u8]) -> Vec<u8>) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let rootfs_v1 = text(10, 600_000);
    let mut rootfs_v2 = rootfs_v1.clone();
    rootfs_v2[100_000..100_400].copy_from_slice(&text(11, 400));
    rootfs_v2.splice(300_000..300_000, text(12, 5_000));
    let kernel = text(20, 120_000);
    let app_v1 = text(30, 40_000);
    let mut app_v2 = app_v1.clone();
    app_v2[5_000..5_050].fill(0xAA);
    let removed = text(40, 10_000);
    let new = text(50, 25_000);
    let gz1 = deflate_exact(&rootfs_v1, ZlibInit::Gzip, 9).unwrap();
    let gz2 = target_gzip(&rootfs_v2);
    let d1 = sw_description(&[("rootfs.ext4.gz", Some("zlib"), &sha256_hex(&gz1))], &[]);
    let d2 = sw_description(&[("rootfs.ext4.gz", Some("zlib"), &sha256_hex(&gz2))], &[]);
    let v1 = cpio(
        CpioFormat::Crc,
        &[
            ("sw-description", d1.as_bytes()),
            ("sw-description.sig", &[1u8; 256]),
            ("rootfs.ext4.gz", &gz1),
            ("vmlinuz", &kernel),
            ("app-1.0.bin", &app_v1),
            ("removed.bin", &removed),
        ],
    );
    let v2 = cpio(
        CpioFormat::Crc,
        &[
            ("sw-description", d2.as_bytes()),
            ("sw-description.sig", &[2u8; 256]),
            ("rootfs.ext4.gz", &gz2),
            ("vmlinuz", &kernel),
            ("app-1.1.bin", &app_v2),
            ("new.bin", &new),
        ],
    );
    let source = dir.path().join("v1.swu");
    let target = dir.path().join("v2.swu");
    std::fs::write(&source, v1).unwrap();
    std::fs::write(&target, v2).unwrap();
    Pair {
        source,
        target,
        dir: dir.path().to_path_buf(),
        _dir: dir,
    }
}

fn options(p: &Pair) -> GenerateOptions {
    GenerateOptions {
        log_dir: Some(p.dir.join("logs")),
        work_dir: Some(p.dir.join("work")),
        ..generate_options(
            &p.source,
            &p.target,
            p.dir.join("out/delta.pamz"),
            DeltaFormat::Standard,
        )
    }
}

fn apply_and_compare(p: &Pair, delta: &std::path::Path) {
    let out = p.dir.join("applied.swu");
    adudiffapi::apply::apply_files(&p.source, delta, &out).unwrap();
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&p.target).unwrap());
}

#[test]
fn round_trip_of_a_reproducible_swu_update() {
    let p = swu_pair(|d| deflate_exact(d, ZlibInit::Gzip, 9).unwrap());
    let opts = options(&p);
    let r = generate(&opts).and_then(Generated::written).unwrap();
    apply_and_compare(&p, &opts.output);
    assert_eq!(std::fs::metadata(&opts.output).unwrap().len(), r.delta_size);
    assert!(
        r.delta_size < r.target_size / 10,
        "{} vs {}",
        r.delta_size,
        r.target_size
    );
    assert!(r.not_reproducible().is_empty());
    let by_name = |n: &str| r.members.iter().find(|m| m.name == n).unwrap();
    let rootfs = by_name("rootfs.ext4.gz");
    assert_eq!(rootfs.zlib_level, Some(9));
    assert!(
        matches!(rootfs.strategy, Strategy::Delta(_)),
        "{:?}",
        rootfs.strategy
    );
    assert_eq!(rootfs.candidates.len(), 2, "bsdiff and zstd both tried");
    assert_eq!(by_name("vmlinuz").strategy, Strategy::SourceSlice);
    let app = by_name("app-1.1.bin");
    assert_eq!(app.basis.as_ref().unwrap().1, "similar name");
    assert!(matches!(app.strategy, Strategy::Delta(_)));
    assert!(matches!(
        by_name("sw-description").strategy,
        Strategy::Remainder(_)
    ));
    // Only recipe ids 0-5 and 7, standard v2.
    assert_microsoft_readable(&opts.output);
    // The log names every member.
    let log = std::fs::read_to_string(p.dir.join("logs/diff.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&log).unwrap();
    assert_eq!(v["members"].as_array().unwrap().len(), 6);
    assert_eq!(v["delta"]["size"], r.delta_size);
}

#[test]
fn non_reproducible_gzip_is_reported_and_still_round_trips() {
    let p = swu_pair(foreign_gzip);
    let opts = options(&p);
    let r = generate(&opts).and_then(Generated::written).unwrap();
    apply_and_compare(&p, &opts.output);
    assert_eq!(r.not_reproducible(), vec!["rootfs.ext4.gz"]);
    let rootfs = r
        .members
        .iter()
        .find(|m| m.name == "rootfs.ext4.gz")
        .unwrap();
    assert_eq!(rootfs.zlib_level, None);
}

#[test]
fn recompressing_the_target_shrinks_the_delta() {
    let p = swu_pair(foreign_gzip);
    let plain = generate(&options(&p))
        .and_then(Generated::written)
        .unwrap()
        .delta_size;
    let recompressed = p.dir.join("v2r.swu");
    adudiff_gen::recompress::recompress_file(&p.target, &recompressed, None).unwrap();
    let mut opts = options(&p);
    opts.target = recompressed.clone();
    let r = generate(&opts).and_then(Generated::written).unwrap();
    assert!(r.not_reproducible().is_empty());
    assert!(r.delta_size * 3 < plain, "{} vs {plain}", r.delta_size);
    let out = p.dir.join("applied.swu");
    adudiffapi::apply::apply_files(&p.source, &opts.output, &out).unwrap();
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&recompressed).unwrap());
}

#[test]
fn identical_swu_gives_slices_only_and_unrelated_target_is_refused() {
    let p = swu_pair(|d| deflate_exact(d, ZlibInit::Gzip, 9).unwrap());
    let mut opts = options(&p);
    opts.target = p.source.clone();
    let r = generate(&opts).and_then(Generated::written).unwrap();
    assert!(r.members.iter().all(
        |m| m.strategy == Strategy::SourceSlice || matches!(m.strategy, Strategy::Remainder(_))
    ));
    assert_eq!(r.inline_size, 0);
    let out = p.dir.join("same.swu");
    adudiffapi::apply::apply_files(&p.source, &opts.output, &out).unwrap();
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&p.source).unwrap());

    // A target made of random bytes cannot get smaller: error, no delta written.
    let mut x = 0x2545F4914F6CDD1Du64;
    let noise: Vec<u8> = (0..50_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    let t = p.dir.join("noise.swu");
    std::fs::write(&t, cpio(CpioFormat::Newc, &[("blob.bin", &noise)])).unwrap();
    let mut opts = options(&p);
    opts.target = t;
    opts.output = p.dir.join("noise.delta");
    let err = generate(&opts).and_then(Generated::written).unwrap_err();
    assert!(err.0.contains("not smaller"), "{err}");
    assert!(!opts.output.exists());
    let _ = Method::Zstd;
}

#[test]
fn segmented_round_trip_with_zero_segments() {
    // Small segment sizes force the segment path (chain of per-segment deltas, basis windows,
    // all_zeros) on a small image.
    let dir = tempfile::tempdir().unwrap();
    let mut v1 = text(60, 700_000);
    v1.resize(1_000_000, 0);
    let mut v2 = v1.clone();
    v2.splice(200_000..200_000, text(61, 30_000)); // insertion shifts the rest
    v2[500_000..500_300].fill(b'!');
    v2.truncate(1_000_000);
    let gz1 = deflate_exact(&v1, ZlibInit::Gzip, 9).unwrap();
    let gz2 = deflate_exact(&v2, ZlibInit::Gzip, 9).unwrap();
    let d = sw_description(&[("img.gz", Some("zlib"), "00")], &[]);
    let a = cpio(
        CpioFormat::Newc,
        &[("sw-description", d.as_bytes()), ("img.gz", &gz1)],
    );
    let b = cpio(
        CpioFormat::Newc,
        &[("sw-description", d.as_bytes()), ("img.gz", &gz2)],
    );
    let p = Pair {
        source: dir.path().join("a.swu"),
        target: dir.path().join("b.swu"),
        dir: dir.path().to_path_buf(),
        _dir: dir,
    };
    std::fs::write(&p.source, a).unwrap();
    std::fs::write(&p.target, b).unwrap();
    let mut opts = options(&p);
    opts.settings.segment_size = 64 * 1024;
    opts.settings.segment_margin = 16 * 1024;
    let r = generate(&opts).and_then(Generated::written).unwrap();
    apply_and_compare(&p, &opts.output);
    let img = r.members.iter().find(|m| m.name == "img.gz").unwrap();
    assert!(img.segment_log.len() > 10, "{}", img.segment_log.len());
    assert!(
        img.segment_log.iter().any(|s| s.chosen.is_none()),
        "an all-zero segment"
    );
    let parsed = adudiffapi::format::parse_delta(adudiffapi::io::SharedBytes::from_vec(
        std::fs::read(&opts.output).unwrap(),
    ))
    .unwrap();
    assert!(parsed
        .recipes
        .iter()
        .any(|r| r.kind == RecipeKind::AllZeros));
    assert!(r.delta_size < 60_000, "{}", r.delta_size);
}

/// The same check through the crate's own parser (`format::parse_delta`): parse, hand the
/// recipes, the inline assets and the inflated remainder to the writer, compare bytes.
#[test]
fn parse_then_write_reproduces_microsoft_vectors() {
    use adudiffapi::format::parse_delta;
    use adudiffapi::io::SharedBytes;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    for name in [
        "slice_basic",
        "chain_of_slices",
        "all_zeros_in_chain",
        "remainder_slices",
        "inline_assets_slices",
        "bspatch_slice_dictionary",
        "swu_realistic_rootfs",
    ] {
        let original = std::fs::read(dir.join(name).join("delta")).unwrap();
        let d = parse_delta(SharedBytes::from_vec(original.clone())).unwrap();
        let mut recipes = d.recipes.clone();
        let mut inline_assets = None;
        let mut remainder = None;
        for blob in &d.blobs {
            let is_remainder = |r: &Recipe| {
                r.kind == RecipeKind::ZlibDecompression
                    && r.numbers == [0]
                    && r.items.len() == 1
                    && r.items[0] == blob.item
            };
            if blob.bytes[..] == [0x03, 0x00] {
                remainder = Some(Vec::new()); // empty remainder: raw deflate of nothing
            } else if recipes.iter().any(is_remainder) {
                recipes.retain(|r| !is_remainder(r));
                remainder = Some(inflate_raw(&blob.bytes).unwrap());
            } else {
                inline_assets = Some(blob.bytes.to_vec());
            }
        }
        let rewritten = write_delta_to_vec(&DeltaBuilder {
            target: d.target.clone(),
            source: d.source.clone(),
            recipes,
            inline_assets,
            remainder,
        })
        .unwrap();
        assert!(rewritten == original, "{name}: rewritten delta differs");
    }
}
