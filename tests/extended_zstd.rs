//! zstd images in the extended format: small SWUs built here whose rootfs is a zstd frame —
//! made by this library's libzstd at several levels and settings (rebuilt from their content
//! by `zstd_compression_exact`, applied byte-exact through the C ABI) and by the `zstd` CLI
//! (rebuilt when the CLI is the same zstd version, otherwise carried compressed, and the
//! generator's summary says so). Also a zstd source: its content is the basis.
//!
//! The CLI comes from the Debian package `zstd`; when it is missing its cases are skipped
//! locally and fail under CI (`CI=true`).

mod common;
mod swu_common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use adudiff_gen::generate::{generate, DeltaFormat, GenerateOptions, Generated};
use adudiff_gen::swu::cpio::CpioFormat;
use adudiffapi::codec::zstd_compress::{
    self as zc, ZstdParams, FLAG_CHECKSUM, FLAG_CONTENT_SIZE, FLAG_JOBS, FLAG_PLEDGED,
};
use adudiffapi::format::{parse_delta, Format, RecipeKind};
use adudiffapi::io::SharedBytes;
use common::{apply_c, code_of};
use swu_common::*;

/// A zstd frame of `data` made by this library's libzstd with `p`, the way a build tool
/// linking libzstd 1.5.7 streams a file: its own calls (1 MiB pieces, the end with the last
/// piece), not the applier's reader.
fn libzstd(data: &[u8], p: ZstdParams) -> Vec<u8> {
    use zstd_safe::{zstd_sys::ZSTD_EndDirective, CCtx, CParameter, InBuffer, OutBuffer};
    let mut c = CCtx::create();
    c.set_parameter(CParameter::CompressionLevel(p.level))
        .unwrap();
    c.set_parameter(CParameter::ChecksumFlag(p.has(FLAG_CHECKSUM)))
        .unwrap();
    c.set_parameter(CParameter::ContentSizeFlag(p.has(FLAG_CONTENT_SIZE)))
        .unwrap();
    if p.has(FLAG_JOBS) {
        c.set_parameter(CParameter::NbWorkers(2)).unwrap();
    }
    let pledged = p.has(FLAG_PLEDGED);
    if pledged {
        c.set_pledged_src_size(Some(data.len() as u64)).unwrap();
    }
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(data.len()));
    let mut pieces: Vec<&[u8]> = data.chunks(1 << 20).collect();
    if !pledged {
        // A pipe: the end comes after the input, on its own (libzstd would otherwise learn
        // the size from a first call that ends the frame).
        pieces.push(&[]);
    }
    let count = pieces.len();
    for (i, piece) in pieces.into_iter().enumerate() {
        let last = i + 1 == count;
        let mut input = InBuffer::around(piece);
        loop {
            out.reserve(1 << 20);
            let pos = out.len();
            let mut output = OutBuffer::around_pos(&mut out, pos);
            let directive = if last {
                ZSTD_EndDirective::ZSTD_e_end
            } else {
                ZSTD_EndDirective::ZSTD_e_continue
            };
            let left = c
                .compress_stream2(&mut output, &mut input, directive)
                .unwrap();
            if input.pos() == piece.len() && (!last || left == 0) {
                break;
            }
        }
    }
    out
}

fn params(level: i32, flags: u64) -> ZstdParams {
    ZstdParams {
        level,
        flags,
        window_log: 0,
        job_size: 0,
    }
}

/// `zstd args` with `data` on stdin, or of a file (`file` = true, as an image build does);
/// `None` when the CLI is not installed (a failure under CI).
fn zstd_cli(args: &[&str], data: &[u8], file: bool) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rootfs.ext4");
    let mut cmd = Command::new("zstd");
    cmd.args(args).arg("-q").arg("-c");
    if file {
        std::fs::write(&path, data).unwrap();
        cmd.arg(&path);
    }
    let child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "zstd is needed under CI (apt-get install -y zstd): {e}"
            );
            eprintln!("skipped: zstd not installed ({e})");
            return None;
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    let input = if file { Vec::new() } else { data.to_vec() };
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "zstd {args:?} failed");
    Some(out.stdout)
}

/// The CLI's version as libzstd numbers it (1.5.4 → 10504).
fn zstd_cli_version() -> Option<u64> {
    let out = Command::new("zstd").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v = text
        .split(" v")
        .nth(1)?
        .split([',', ' '])
        .next()?
        .to_string();
    let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
    Some(parts.next()?? * 10000 + parts.next()?? * 100 + parts.next()??)
}

/// Makes the source's rootfs member (name, bytes) from the image.
type SourceRootfs<'a> = dyn Fn(&[u8]) -> (String, Vec<u8>) + 'a;

struct Case {
    dir: tempfile::TempDir,
    source: PathBuf,
    target: PathBuf,
}

/// A source SWU whose rootfs is `src_rootfs` (as `v1`) and a target SWU whose changed rootfs is
/// `zst` of the new image, named `rootfs.ext4.zst`.
fn case(src_rootfs: &SourceRootfs, zst: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> Option<Case> {
    let dir = tempfile::tempdir().unwrap();
    let rootfs_v1 = text(30, 1_200_000);
    let mut rootfs_v2 = rootfs_v1.clone();
    rootfs_v2[200_000..200_300].copy_from_slice(&text(31, 300));
    rootfs_v2.splice(800_000..800_000, text(32, 4_000));
    let kernel = text(40, 90_000);
    let (v1_name, v1_rootfs) = src_rootfs(&rootfs_v1);
    let z2 = zst(&rootfs_v2)?;
    let d1 = sw_description(&[(&v1_name, None, &sha256_hex(&v1_rootfs))], &[]);
    let d2 = sw_description(&[("rootfs.ext4.zst", Some("zstd"), &sha256_hex(&z2))], &[]);
    let v1 = cpio(
        CpioFormat::Crc,
        &[
            ("sw-description", d1.as_bytes()),
            ("sw-description.sig", &[1u8; 256]),
            (&v1_name, &v1_rootfs),
            ("vmlinuz", &kernel),
        ],
    );
    let v2 = cpio(
        CpioFormat::Crc,
        &[
            ("sw-description", d2.as_bytes()),
            ("sw-description.sig", &[2u8; 256]),
            ("rootfs.ext4.zst", &z2),
            ("vmlinuz", &kernel),
        ],
    );
    let source = dir.path().join("v1.swu");
    let target = dir.path().join("v2.swu");
    std::fs::write(&source, v1).unwrap();
    std::fs::write(&target, v2).unwrap();
    Some(Case {
        dir,
        source,
        target,
    })
}

/// The source as a gzip image (the stock-zlib rootfs of an earlier standard build).
fn gz_source(d: &[u8]) -> (String, Vec<u8>) {
    let gz = adudiffapi::codec::deflate_exact(d, adudiffapi::format::ZlibInit::Gzip, 9).unwrap();
    ("rootfs.ext4.gz".into(), gz)
}

fn options(c: &Case, format: DeltaFormat) -> GenerateOptions {
    GenerateOptions {
        work_dir: Some(c.dir.path().join("work")),
        ..generate_options(
            &c.source,
            &c.target,
            c.dir.path().join(format!("{}.delta", format.name())),
            format,
        )
    }
}

/// Generates standard and extended deltas; when the frame is rebuilt, checks the extended
/// delta (format, recipe, apply through the C ABI byte-exact, far smaller than standard).
/// Returns whether the frame was rebuilt.
fn check(c: &Case, name: &str) -> bool {
    let s = options(c, DeltaFormat::Standard);
    let standard = generate(&s).and_then(Generated::written).unwrap();
    let e = options(c, DeltaFormat::Extended);
    let extended = generate(&e).and_then(Generated::written).unwrap();
    let rootfs = extended
        .members
        .iter()
        .find(|m| m.name == "rootfs.ext4.zst")
        .unwrap();
    let st_rootfs = standard
        .members
        .iter()
        .find(|m| m.name == "rootfs.ext4.zst")
        .unwrap();
    assert!(
        st_rootfs.zstd_compressed,
        "{name}: standard carries it compressed"
    );
    let Some(how) = &rootfs.zstd_rebuilt else {
        assert!(rootfs.zstd_compressed, "{name}");
        assert!(rootfs.zstd_not_reproducible.is_some(), "{name}");
        eprintln!(
            "{name}: not rebuilt ({}); standard {} B, written {} B",
            rootfs.zstd_not_reproducible.as_deref().unwrap_or(""),
            standard.delta_size,
            extended.delta_size
        );
        return false;
    };
    assert!(!rootfs.zstd_compressed, "{name}");
    assert_eq!(extended.format, DeltaFormat::Extended, "{name}");
    let bytes = std::fs::read(&e.output).unwrap();
    assert_eq!(&bytes[4..12], b"ADUDIFF\x02");
    let parsed = parse_delta(SharedBytes::from_vec(bytes)).unwrap();
    assert_eq!(parsed.format, Format::Extended);
    let recipe = parsed
        .recipes
        .iter()
        .find(|r| r.kind == RecipeKind::ZstdCompressionExact)
        .expect("zstd_compression_exact");
    assert_eq!(recipe.numbers[0], zc::encoder_version());
    let out = c.dir.path().join("applied.swu");
    assert_eq!(code_of(&apply_c(&c.source, &e.output, &out)), 0, "{name}");
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&c.target).unwrap(),
        "{name}: applied target differs"
    );
    assert!(
        extended.delta_size * 4 < standard.delta_size,
        "{name}: extended {} vs standard {}",
        extended.delta_size,
        standard.delta_size
    );
    eprintln!(
        "{name}: rebuilt ({how}); target {} B, standard delta {} B, extended delta {} B",
        extended.target_size, standard.delta_size, extended.delta_size
    );
    true
}

#[test]
fn frames_made_by_this_libzstd_are_rebuilt() {
    let all = FLAG_CHECKSUM | FLAG_CONTENT_SIZE | FLAG_PLEDGED;
    for (name, p) in [
        ("libzstd -3, file, job mode", params(3, all | FLAG_JOBS)),
        ("libzstd -19, file, job mode", params(19, all | FLAG_JOBS)),
        ("libzstd -1, one thread", params(1, all)),
        (
            "libzstd -12, no checksum",
            params(12, FLAG_PLEDGED | FLAG_CONTENT_SIZE),
        ),
        (
            "libzstd -6, size unknown (a pipe)",
            params(6, FLAG_CHECKSUM),
        ),
        ("libzstd --fast=3", params(-3, all)),
    ] {
        let c = case(&gz_source, &|d| Some(libzstd(d, p))).unwrap();
        assert!(check(&c, name), "{name}: not rebuilt");
    }
}

/// The zstd CLI: rebuilt when it is this library's zstd version; another version's frames are
/// rebuilt where the two versions agree (measured, Debian 12's zstd 1.5.4 against libzstd
/// 1.5.7: `-3` from a pipe yes, `-19` of a file no) and otherwise carried compressed. Either
/// way a rebuilt frame applies byte-exact (checked in `check`).
#[test]
fn frames_made_by_the_zstd_cli() {
    let same = zstd_cli_version() == Some(zc::encoder_version());
    for (name, args, file) in [
        ("zstd -19 (file)", &["-19"][..], true),
        ("zstd -3 (pipe)", &["-3"][..], false),
        ("zstd -9 --no-check (file)", &["-9", "--no-check"][..], true),
    ] {
        let Some(c) = case(&gz_source, &|d| zstd_cli(args, d, file)) else {
            return;
        };
        let rebuilt = check(&c, name);
        assert!(
            rebuilt || !same,
            "{name}: the same zstd version, not rebuilt"
        );
    }
}

/// A zstd source (an earlier zstd build): its content is the basis, decoded on the device by
/// the standard `zstd_decompression` recipe; a frame this libzstd makes is then a small delta.
#[test]
fn zstd_sources_are_decoded_bases() {
    let p = params(
        19,
        FLAG_CHECKSUM | FLAG_CONTENT_SIZE | FLAG_PLEDGED | FLAG_JOBS,
    );
    let zst_source = |d: &[u8]| ("rootfs.ext4.zst".to_string(), libzstd(d, p));
    let c = case(&zst_source, &|d| Some(libzstd(d, p))).unwrap();
    assert!(check(&c, "zstd source, libzstd -19 target"));
    let parsed = parse_delta(SharedBytes::from_vec(
        std::fs::read(c.dir.path().join("extended.delta")).unwrap(),
    ))
    .unwrap();
    assert!(parsed
        .recipes
        .iter()
        .any(|r| r.kind == RecipeKind::ZstdDecompression));
}

fn adudiff(args: &[&str]) -> std::process::Output {
    adudiff_command().args(args).output().expect("run adudiff")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The generator's summary tells what happened to a zstd member, and never claims a target
/// with one is "already zlib-reproducible".
#[test]
fn the_summary_tells_what_happened_to_zstd_members() {
    let p = params(
        19,
        FLAG_CHECKSUM | FLAG_CONTENT_SIZE | FLAG_PLEDGED | FLAG_JOBS,
    );
    let rebuilt = case(&gz_source, &|d| Some(libzstd(d, p))).unwrap();
    // A frame no zstd makes from this content at any level: one raw block per 128 KiB.
    let foreign = case(&gz_source, &|d| {
        let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58]; // no checksum, window 2^21
        for (i, block) in d.chunks(128 << 10).enumerate() {
            let last = (i + 1) * (128 << 10) >= d.len();
            let header = ((block.len() as u32) << 3) | u32::from(last);
            f.extend_from_slice(&header.to_le_bytes()[..3]);
            f.extend_from_slice(block);
        }
        Some(f)
    })
    .unwrap();
    let summary = |c: &Case, format: &str| {
        let out = c.dir.path().join(format!("{format}.cli.delta"));
        let o = adudiff(&[
            "generate",
            "--format",
            format,
            "-q",
            s(&c.source),
            s(&c.target),
            s(&out),
            s(&c.dir.path().join("work")),
        ]);
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            o.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!text.contains("already zlib-reproducible"), "{text}");
        text
    };
    let v = adudiff_gen::generate::zstdrebuild::version();
    let t = summary(&rebuilt, "extended");
    assert!(t.contains("format: extended"), "{t}");
    assert!(
        t.contains(&format!(
            "zstd frames rebuilt from their content, by libzstd {v} or from their structure (no recompression or re-signing needed): rootfs.ext4.zst (level 19, job mode, checksum)"
        )),
        "{t}"
    );
    let t = summary(&rebuilt, "standard");
    assert!(
        t.contains("zstd-compressed, carried as compressed bytes (the standard format has no recipe that rebuilds a zstd frame; --format extended rebuilds the frames libzstd"),
        "{t}"
    );
    let t = summary(&foreign, "extended");
    assert!(
        t.contains(&format!(
            "zstd-compressed, carried as compressed bytes (not rebuilt from their content: only frames that libzstd {v} makes and level-3 frames of libzstd 1.5.2–1.5.6 are"
        )) && t.contains("rootfs.ext4.zst (libzstd"),
        "{t}"
    );
}
