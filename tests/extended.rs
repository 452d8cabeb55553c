//! The extended format end to end: small SWUs built here whose gzip members come from
//! encoders that stock zlib does not reproduce (GNU gzip, pigz with and without --rsyncable,
//! busybox gzip, zlib at odd memLevel/strategy settings, multi-member gzip), extended deltas
//! generated for them, applied byte-exact through the C ABI; and the committed fixture delta
//! that pins codec 1 version 1 (preflate-rs =0.7.6).
//!
//! The external tools come from Debian packages `gzip`, `pigz` and `busybox`; a missing tool
//! skips its case locally and fails under CI (`CI=true`).

mod common;
mod swu_common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use adudiff_gen::generate::{generate, DeltaFormat, GenerateOptions, Generated};
use adudiff_gen::swu::cpio::CpioFormat;
use adudiffapi::format::{parse_delta, Format, RecipeKind};
use adudiffapi::io::SharedBytes;
use common::{apply_c, code_of};
use swu_common::*;

/// Runs `cmd args` with `data` on stdin; `None` when the tool is not installed (a failure
/// under CI).
fn external(cmd: &str, args: &[&str], data: &[u8]) -> Option<Vec<u8>> {
    let child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "{cmd} is needed under CI (apt-get install -y pigz busybox): {e}"
            );
            eprintln!("skipped: {cmd} not installed ({e})");
            return None;
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{cmd} {args:?} failed");
    Some(out.stdout)
}

unsafe extern "C" fn zalloc(
    _opaque: libz_sys::voidpf,
    items: libz_sys::uInt,
    size: libz_sys::uInt,
) -> libz_sys::voidpf {
    // SAFETY: plain libc allocation; zlib frees it with `zfree`.
    unsafe { libc::calloc(items as libc::size_t, size as libc::size_t) }
}

unsafe extern "C" fn zfree(_opaque: libz_sys::voidpf, address: libz_sys::voidpf) {
    // SAFETY: `address` came from `zalloc` or is NULL.
    unsafe { libc::free(address) }
}

/// gzip with stock zlib at `level`, `mem_level` and `strategy` (through libz-sys).
fn zlib_gzip(data: &[u8], level: i32, mem_level: i32, strategy: i32) -> Vec<u8> {
    use libz_sys as z;
    let mut out = vec![0u8; data.len() + data.len() / 10 + 1024];
    let mut s = Box::new(z::z_stream {
        next_in: data.as_ptr() as *mut u8,
        avail_in: data.len() as u32,
        total_in: 0,
        next_out: out.as_mut_ptr(),
        avail_out: out.len() as u32,
        total_out: 0,
        msg: std::ptr::null_mut(),
        state: std::ptr::null_mut(),
        zalloc,
        zfree,
        opaque: std::ptr::null_mut(),
        data_type: 0,
        adler: 0,
        reserved: 0,
    });
    // SAFETY: the stream stays boxed (zlib keeps a pointer to it); its buffers point into
    // `data` and `out`, which outlive the calls; deflateEnd frees zlib's state.
    unsafe {
        let rc = z::deflateInit2_(
            &mut *s,
            level,
            z::Z_DEFLATED,
            31,
            mem_level,
            strategy,
            z::zlibVersion(),
            std::mem::size_of::<z::z_stream>() as i32,
        );
        assert_eq!(rc, z::Z_OK);
        assert_eq!(z::deflate(&mut *s, z::Z_FINISH), z::Z_STREAM_END);
        out.truncate(s.total_out as usize);
        z::deflateEnd(&mut *s);
    }
    out
}

struct Case {
    _dir: tempfile::TempDir,
    source: PathBuf,
    target: PathBuf,
    dir: PathBuf,
}

/// A source SWU (stock zlib -9 rootfs, as `adudiff recompress` would leave it) and a target
/// SWU as built: its changed rootfs compressed by `gz`.
fn case(gz: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> Option<Case> {
    let dir = tempfile::tempdir().unwrap();
    let rootfs_v1 = text(10, 1_500_000);
    let mut rootfs_v2 = rootfs_v1.clone();
    rootfs_v2[100_000..100_400].copy_from_slice(&text(11, 400));
    rootfs_v2.splice(700_000..700_000, text(12, 5_000));
    let kernel = text(20, 120_000);
    let gz1 = gz(&rootfs_v1)?;
    let gz2 = gz(&rootfs_v2)?;
    let d1 = sw_description(&[("rootfs.ext4.gz", Some("zlib"), &sha256_hex(&gz1))], &[]);
    let d2 = sw_description(&[("rootfs.ext4.gz", Some("zlib"), &sha256_hex(&gz2))], &[]);
    let v1 = cpio(
        CpioFormat::Crc,
        &[
            ("sw-description", d1.as_bytes()),
            ("sw-description.sig", &[1u8; 256]),
            ("rootfs.ext4.gz", &gz1),
            ("vmlinuz", &kernel),
        ],
    );
    let v2 = cpio(
        CpioFormat::Crc,
        &[
            ("sw-description", d2.as_bytes()),
            ("sw-description.sig", &[2u8; 256]),
            ("rootfs.ext4.gz", &gz2),
            ("vmlinuz", &kernel),
        ],
    );
    let source = dir.path().join("v1.swu");
    let target = dir.path().join("v2.swu");
    std::fs::write(&source, v1).unwrap();
    std::fs::write(&target, v2).unwrap();
    Some(Case {
        source,
        target,
        dir: dir.path().to_path_buf(),
        _dir: dir,
    })
}

fn options(c: &Case, format: DeltaFormat) -> GenerateOptions {
    GenerateOptions {
        work_dir: Some(c.dir.join("work")),
        ..generate_options(
            &c.source,
            &c.target,
            c.dir.join(format!("{}.delta", format.name())),
            format,
        )
    }
}

/// Generates standard and extended deltas for the case, applies the extended one through the
/// C ABI and checks the bytes; returns (standard size, extended size).
fn check(name: &str, gz: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> Option<(u64, u64)> {
    check_codec(name, gz, None)
}

/// [`check`], also asserting that every `deflate_reconstruct` recipe uses correction codec
/// `codec` when given (1: preflate corrections, 2: an exact re-encoder such as GNU gzip's).
fn check_codec(
    name: &str,
    gz: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
    codec: Option<u64>,
) -> Option<(u64, u64)> {
    let c = case(gz)?;
    let std_opts = options(&c, DeltaFormat::Standard);
    let standard = generate(&std_opts).and_then(Generated::written).unwrap();
    assert_eq!(standard.format, DeltaFormat::Standard);
    let ext_opts = options(&c, DeltaFormat::Extended);
    let extended = generate(&ext_opts).and_then(Generated::written).unwrap();
    let reproducible = standard
        .members
        .iter()
        .any(|m| m.name == "rootfs.ext4.gz" && m.zlib_level.is_some());
    if reproducible {
        // This encoder's output happens to be stock zlib's: standard it is, byte for byte.
        eprintln!(
            "{name}: zlib-reproducible, standard delta {} B",
            standard.delta_size
        );
        assert_eq!(extended.format, DeltaFormat::Standard, "{name}");
        assert!(
            std::fs::read(&std_opts.output).unwrap() == std::fs::read(&ext_opts.output).unwrap()
        );
        return Some((standard.delta_size, extended.delta_size));
    }
    assert_eq!(extended.format, DeltaFormat::Extended, "{name}");
    let rootfs = extended
        .members
        .iter()
        .find(|m| m.name == "rootfs.ext4.gz")
        .unwrap();
    assert!(rootfs.reconstructed.is_some(), "{name}: not reconstructed");
    assert!(extended.not_reproducible().is_empty());
    let bytes = std::fs::read(&ext_opts.output).unwrap();
    assert_eq!(&bytes[4..12], b"ADUDIFF\x02");
    let parsed = parse_delta(SharedBytes::from_vec(bytes)).unwrap();
    assert_eq!(parsed.format, Format::Extended);
    let codecs: Vec<u64> = parsed
        .recipes
        .iter()
        .filter(|r| r.kind == RecipeKind::DeflateReconstruct)
        .map(|r| r.numbers[0])
        .collect();
    assert!(!codecs.is_empty(), "{name}: no deflate_reconstruct recipe");
    if let Some(codec) = codec {
        assert!(
            codecs.iter().all(|&c| c == codec),
            "{name}: codecs {codecs:?}, expected {codec}"
        );
    }
    let out = c.dir.join("applied.swu");
    assert_eq!(
        code_of(&apply_c(&c.source, &ext_opts.output, &out)),
        0,
        "{name}"
    );
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&c.target).unwrap(),
        "{name}: applied target differs"
    );
    assert!(
        extended.delta_size < standard.delta_size,
        "{name}: extended {} vs standard {}",
        extended.delta_size,
        standard.delta_size
    );
    eprintln!(
        "{name}: target {} B, standard delta {} B, extended delta {} B ({} B of corrections)",
        extended.target_size,
        standard.delta_size,
        extended.delta_size,
        rootfs.reconstructed.unwrap()
    );
    Some((standard.delta_size, extended.delta_size))
}

/// GNU gzip of a named file, as an image build does: the name and mtime are in the header.
fn gnu_gzip_file(level: &str, data: &[u8]) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rootfs.ext4");
    std::fs::write(&path, data).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
        .unwrap();
    drop(f);
    external("gzip", &[level, "-c", path.to_str().unwrap()], b"")
}

#[test]
fn gnu_gzip() {
    // GNU gzip's own deflate is re-encoded exactly (codec 2, no corrections) at every level.
    let exact = Some(2);
    check_codec("gzip -9 (named file)", &|d| gnu_gzip_file("-9", d), exact);
    check_codec("gzip -1 (named file)", &|d| gnu_gzip_file("-1", d), exact);
    check_codec(
        "gzip -3 -n",
        &|d| external("gzip", &["-3", "-n", "-c"], d),
        exact,
    );
    check_codec(
        "gzip -6 -n",
        &|d| external("gzip", &["-6", "-n", "-c"], d),
        exact,
    );
}

#[test]
fn pigz() {
    // zlib in 128 KiB jobs with dictionaries: pigz's job layout re-encoded exactly (codec 2,
    // encoder 2; tests/extended_pigz.rs covers its options).
    check_codec(
        "pigz -9",
        &|d| external("pigz", &["-9", "-c", "-p", "2", "-b", "128"], d),
        Some(2),
    );
}

#[test]
fn pigz_rsyncable() {
    check("pigz --rsyncable", &|d| {
        external("pigz", &["--rsyncable", "-c", "-p", "2", "-b", "128"], d)
    });
}

#[test]
fn busybox_gzip() {
    // busybox's gzip is GNU gzip 1.2.4's deflate: re-encoded exactly (codec 2).
    check_codec(
        "busybox gzip",
        &|d| external("busybox", &["gzip", "-c"], d),
        Some(2),
    );
}

#[test]
fn odd_zlib_settings() {
    use libz_sys as z;
    check("zlib 6 memLevel 1 filtered", &|d| {
        Some(zlib_gzip(d, 6, 1, z::Z_FILTERED))
    });
    check("zlib 9 memLevel 5 default", &|d| {
        Some(zlib_gzip(d, 9, 5, z::Z_DEFAULT_STRATEGY))
    });
    check("zlib 3 memLevel 8 rle", &|d| {
        Some(zlib_gzip(d, 3, 8, z::Z_RLE))
    });
}

#[test]
fn multi_member_gzip() {
    check("gzip member + pigz member", &|d| {
        let half = d.len() / 2;
        let mut out = external("gzip", &["-6", "-n", "-c"], &d[..half])?;
        out.extend(external("pigz", &["-9", "-c"], &d[half..])?);
        Some(out)
    });
}

/// Standard where the extended format gains nothing: a stock-zlib target stays v2, byte for
/// byte what `--format standard` writes.
#[test]
fn reproducible_targets_stay_standard() {
    let c = case(&|d| Some(zlib_gzip(d, 9, 9, 0))).unwrap();
    let s = options(&c, DeltaFormat::Standard);
    let e = options(&c, DeltaFormat::Extended);
    generate(&s).and_then(Generated::written).unwrap();
    let r = generate(&e).and_then(Generated::written).unwrap();
    assert_eq!(r.format, DeltaFormat::Standard);
    assert!(std::fs::read(&s.output).unwrap() == std::fs::read(&e.output).unwrap());
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extended")
}

/// A committed fixture: with `ADUDIFF_WRITE_FIXTURE` set, writes `source.swu` / `target.swu`
/// (one `data.gz` member each, the texts gzipped by `gz`) and their extended delta into `dir`;
/// then checks that every `deflate_reconstruct` recipe of the delta has the numbers `codec`
/// and that the delta applies byte-exact through the C ABI.
fn check_fixture(
    dir: &Path,
    texts: impl FnOnce() -> (Vec<u8>, Vec<u8>),
    gz: impl Fn(&[u8]) -> Vec<u8>,
    codec: [u64; 2],
) {
    if std::env::var("ADUDIFF_WRITE_FIXTURE").is_ok() {
        let (text_v1, text_v2) = texts();
        let v1 = cpio(CpioFormat::Newc, &[("data.gz", &gz(&text_v1))]);
        let v2 = cpio(CpioFormat::Newc, &[("data.gz", &gz(&text_v2))]);
        std::fs::create_dir_all(dir).unwrap();
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
    if std::env::var("ADUDIFF_WRITE_FIXTURE").is_err() {
        // Both fixtures were written before revision 2 (packed recipe sets): they also pin
        // that revision-1 deltas keep applying.
        assert_eq!(&delta[4..12], b"ADUDIFF\x01", "{}", dir.display());
    }
    let parsed = parse_delta(SharedBytes::from_vec(delta)).unwrap();
    let codecs: Vec<_> = parsed
        .recipes
        .iter()
        .filter(|r| r.kind == RecipeKind::DeflateReconstruct)
        .map(|r| r.numbers.clone())
        .collect();
    assert!(!codecs.is_empty());
    assert!(codecs.iter().all(|n| n == &codec), "{codecs:?}");
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("target.swu");
    let outcome = apply_c(&dir.join("source.swu"), &dir.join("delta"), &target);
    assert_eq!(code_of(&outcome), 0, "{outcome:?}");
    assert!(std::fs::read(&target).unwrap() == std::fs::read(dir.join("target.swu")).unwrap());
}

/// The committed extended delta (codec 1 version 1) still applies byte-exact: a dependency
/// upgrade that changes what the codec's corrections mean fails here. Regenerate only with
/// a new codec version: `ADUDIFF_WRITE_FIXTURE=1 cargo test --test extended fixture`.
#[test]
fn fixture_delta_pins_the_codec_version() {
    let texts = || {
        let text_v1 = text(70, 60_000);
        let mut text_v2 = text_v1.clone();
        text_v2[1_000..1_100].copy_from_slice(&text(71, 100));
        (text_v1, text_v2)
    };
    let gz = |d: &[u8]| zlib_gzip(d, 6, 4, libz_sys::Z_FILTERED);
    check_fixture(&fixture_dir(), texts, gz, [1, 1]);
}

/// The committed codec-2 delta (GNU gzip -9 re-encoded, no corrections) still applies
/// byte-exact: a change to `pardeflate`'s GNU gzip encoder fails here. Regenerate only with
/// a new codec version (`ADUDIFF_WRITE_FIXTURE=1`).
#[test]
fn gnu_gzip_fixture_delta_pins_codec_2() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extended-gnu-gzip");
    let texts = || {
        // Two bytes of noise, then a run: fewer than half of the symbols are matches and the
        // data compresses well, so GNU gzip ends its blocks early (every 4096 symbols), where
        // zlib at any memLevel would not: the standard format cannot rebuild it.
        let block = |seed: usize| -> Vec<u8> {
            (0..20_000usize)
                .flat_map(|k| {
                    let x = (k + seed).wrapping_mul(2_654_435_761);
                    let mut v = vec![(x >> 11) as u8, (x >> 19) as u8];
                    v.extend(std::iter::repeat_n(b'a' + (k % 3) as u8, 40 + k % 23));
                    v
                })
                .collect()
        };
        let text_v1 = block(0);
        let mut text_v2 = text_v1.clone();
        text_v2.splice(1_000..1_000, block(9)[..333].to_vec());
        (text_v1, text_v2)
    };
    let gz = |d: &[u8]| external("gzip", &["-9", "-n", "-c"], d).expect("GNU gzip");
    check_fixture(&dir, texts, gz, [2, 1]);
}

/// Fault injection through the C ABI: every prefix of the fixture delta and a flipped byte at
/// every offset of it end with a documented code (never success with other bytes, never a
/// signal), leave a pre-existing target untouched and no temporary file.
#[test]
fn damaged_fixture_deltas_fail_cleanly_through_the_c_abi() {
    let dir = fixture_dir();
    let full = std::fs::read(dir.join("delta")).unwrap();
    let expected = std::fs::read(dir.join("target.swu")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("target.swu");
    const PREVIOUS: &[u8] = b"previous target";
    std::fs::write(&target, PREVIOUS).unwrap();
    // Documented codes: truncation and corruption ones (as for standard deltas), a target
    // length changed into an impossible one (20302), and the extended format's own.
    let allowed = [
        1, 20000, 20104, 20106, 20201, 20202, 20203, 20301, 20302, 21200, 30000, 30001, 30002,
        30003, 30009, 30010, 30104, 30900, 31701, 31702, 33000, 33001, 39000, 39001,
    ];
    let session = adudiffapi::ffi::adu_diff_apply_create_session();
    let mut histogram = std::collections::BTreeMap::new();
    let mut variants: Vec<Vec<u8>> = (0..full.len()).map(|n| full[..n].to_vec()).collect();
    for i in 0..full.len() {
        let mut v = full.clone();
        v[i] ^= 0x01;
        variants.push(v);
    }
    for (k, v) in variants.iter().enumerate() {
        let d = work.path().join(format!("delta-{k}"));
        std::fs::write(&d, v).unwrap();
        let outcome = common::apply_on(session, &dir.join("source.swu"), &d, &target);
        std::fs::remove_file(&d).unwrap();
        let code = code_of(&outcome);
        *histogram.entry(code).or_insert(0usize) += 1;
        if code == 0 {
            // A flip the format ignores (a type name of ids 0–7, say): the exact target.
            assert!(std::fs::read(&target).unwrap() == expected, "variant {k}");
            std::fs::write(&target, PREVIOUS).unwrap();
            continue;
        }
        assert!(allowed.contains(&code), "variant {k}: {outcome:?}");
        assert_eq!(std::fs::read(&target).unwrap(), PREVIOUS, "variant {k}");
    }
    adudiffapi::ffi::adu_diff_apply_close_session(session);
    assert!(common::leftovers(work.path()).is_empty());
    eprintln!(
        "FAULT | extended fixture: {} truncations + {} flips | {histogram:?}",
        full.len(),
        full.len()
    );
}

/// An ext4 image with mke2fs (e2fsprogs) from the tree at `dir`; `None` when mke2fs is missing
/// (a failure under CI).
fn mke2fs(dir: &Path, image: &Path) -> Option<Vec<u8>> {
    let status = Command::new("mke2fs")
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-i", "16384"])
        .args(["-U", "5b1c6f1e-7a2d-4c3e-9f10-2d4e6a8c0b01"])
        .args(["-E", "hash_seed=0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b", "-d"])
        .arg(dir)
        .arg(image)
        .arg("8M")
        .status();
    match status {
        Ok(s) => assert!(s.success(), "mke2fs failed"),
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "mke2fs is needed under CI: {e}"
            );
            eprintln!("skipped: mke2fs not installed ({e})");
            return None;
        }
    }
    Some(std::fs::read(image).unwrap())
}

/// `.gz` files inside an ext4 image that zlib does not reproduce (pigz, busybox, GNU gzip with a
/// name) travel as text diffs + corrections in the extended format.
#[test]
fn gz_files_inside_ext4_images() {
    let work = tempfile::tempdir().unwrap();
    let tree = |v: &str, seed: u64| -> Option<PathBuf> {
        let root = work.path().join(v);
        let docs = root.join("usr/share/doc/app");
        std::fs::create_dir_all(&docs).unwrap();
        let mut changelog = text(seed, 400_000);
        let manual = text(900, 300_000);
        let mut manual2 = manual.clone();
        let mut notes = text(903 + seed, 200_000);
        if v == "v2" {
            changelog.splice(0..0, text(901, 3_000));
            manual2[1_000..1_200].copy_from_slice(&text(902, 200));
            notes[50_000..50_100].copy_from_slice(&text(904, 100));
        }
        let files: [(&str, Vec<u8>); 3] = [
            ("changelog.gz", external("pigz", &["-9", "-c"], &changelog)?),
            ("manual.gz", external("busybox", &["gzip", "-c"], &manual2)?),
            ("notes.gz", gnu_gzip_file("-9", &notes)?),
        ];
        for (name, bytes) in files {
            std::fs::write(docs.join(name), bytes).unwrap();
        }
        std::fs::write(root.join("usr/app.conf"), format!("version={v}\n")).unwrap();
        Some(root)
    };
    let (Some(t1), Some(t2)) = (tree("v1", 1), tree("v2", 1)) else {
        return;
    };
    let (Some(img1), Some(img2)) = (
        mke2fs(&t1, &work.path().join("v1.ext4")),
        mke2fs(&t2, &work.path().join("v2.ext4")),
    ) else {
        return;
    };
    let swu = |image: &[u8]| {
        let gz =
            adudiffapi::codec::deflate_exact(image, adudiffapi::format::ZlibInit::Gzip, 9).unwrap();
        let d = sw_description(&[("rootfs.ext4.gz", Some("zlib"), &sha256_hex(&gz))], &[]);
        cpio(
            CpioFormat::Newc,
            &[("sw-description", d.as_bytes()), ("rootfs.ext4.gz", &gz)],
        )
    };
    let c = Case {
        source: work.path().join("v1.swu"),
        target: work.path().join("v2.swu"),
        dir: work.path().to_path_buf(),
        _dir: tempfile::tempdir().unwrap(),
    };
    std::fs::write(&c.source, swu(&img1)).unwrap();
    std::fs::write(&c.target, swu(&img2)).unwrap();
    let s = options(&c, DeltaFormat::Standard);
    let e = options(&c, DeltaFormat::Extended);
    let standard = generate(&s).and_then(Generated::written).unwrap();
    let extended = generate(&e).and_then(Generated::written).unwrap();
    assert_eq!(extended.format, DeltaFormat::Extended);
    let stats = |r: &adudiff_gen::generate::GenerateReport| {
        r.members
            .iter()
            .find(|m| m.name == "rootfs.ext4.gz")
            .and_then(|m| m.image.clone())
            .expect("file-aware")
    };
    let st = stats(&extended);
    assert!(st.reconstructed_files.0 >= 2, "{st:?}"); // pigz and GNU gzip (busybox may match zlib)
    assert_eq!(stats(&standard).reconstructed_files.0, 0);
    let out = c.dir.join("applied.swu");
    assert_eq!(code_of(&apply_c(&c.source, &e.output, &out)), 0);
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&c.target).unwrap());
    eprintln!(
        "ext4 with .gz files: standard {} B, extended {} B ({} files rebuilt, {} B of corrections)",
        standard.delta_size,
        extended.delta_size,
        st.reconstructed_files.0,
        st.reconstructed_files.1
    );
    assert!(extended.delta_size < standard.delta_size);
}
