//! Helpers shared by the integration tests: small SWU files built in memory.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "../c_harness/mod.rs"]
pub mod c_harness;

use adudiff_gen::generate::{DeltaFormat, DiffSettings, GenerateOptions};
use adudiff_gen::swu::cpio::{regular_file_header, write_member, write_trailer, CpioFormat};

/// Deterministic, moderately compressible pseudo-text of `len` bytes.
pub fn text(seed: u64, len: usize) -> Vec<u8> {
    let words = [
        "alpha ",
        "beta ",
        "gamma ",
        "delta\n",
        "kernel ",
        "rootfs ",
        "update ",
        "device ",
        "0x1f8b ",
        "swupdate ",
        "libcrypto ",
        "systemd\n",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let w = words[(x >> 59) as usize % words.len()];
        out.extend_from_slice(w.as_bytes());
        if (x >> 40) & 0xff == 7 {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// gzip as GNU `gzip -n -9` would *not* be reproduced: flate2's own encoder, with an mtime.
pub fn foreign_gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(1_700_000_000)
        .filename("image")
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A cpio archive of `members`, zero-padded to 512 bytes like `cpio -o`.
pub fn cpio(format: CpioFormat, members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (name, data)) in members.iter().enumerate() {
        write_member(
            &mut out,
            format,
            &regular_file_header(i as u32 + 1),
            name,
            data,
        );
    }
    write_trailer(&mut out, format);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A `sw-description` listing `images` as (filename, compressed attribute, sha256).
pub fn sw_description(images: &[(&str, Option<&str>, &str)], files: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "software =\n{\n\tversion = \"1.0\";\n\t// test description\n\tstable = {\n\t\tmain: {\n\t\t\timages: (\n",
    );
    for (i, (name, compressed, sha)) in images.iter().enumerate() {
        s.push_str("\t\t\t\t{\n");
        s.push_str(&format!("\t\t\t\t\tfilename = \"{name}\";\n"));
        s.push_str("\t\t\t\t\ttype = \"raw\";\n");
        if let Some(c) = compressed {
            s.push_str(&format!("\t\t\t\t\tcompressed = \"{c}\";\n"));
        }
        s.push_str(&format!("\t\t\t\t\tsha256 = \"{sha}\";\n"));
        s.push_str(if i + 1 == images.len() {
            "\t\t\t\t}\n"
        } else {
            "\t\t\t\t},\n"
        });
    }
    s.push_str("\t\t\t);\n\t\t\tfiles: (\n");
    for (i, (name, sha)) in files.iter().enumerate() {
        s.push_str(&format!(
            "\t\t\t\t{{ filename = \"{name}\"; type = \"archive\"; path = \"/\"; sha256 = \"{sha}\"; }}{}\n",
            if i + 1 == files.len() { "" } else { "," }
        ));
    }
    s.push_str("\t\t\t);\n\t\t};\n\t};\n}\n");
    s
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Asserts that the delta at `path` is standard v2 without `zstd_compression` recipes (what
/// Microsoft's applier 3.0.0 reads) and returns it parsed.
pub fn assert_microsoft_readable_standard(path: &Path) -> adudiffapi::format::Delta {
    use adudiffapi::format::RecipeKind;
    let delta = std::fs::read(path).unwrap();
    assert_eq!(&delta[..12], b"PAMZ\0\0\0\0\0\0\0\x02");
    let parsed =
        adudiffapi::format::parse_delta(adudiffapi::io::SharedBytes::from_vec(delta)).unwrap();
    assert!(parsed
        .recipes
        .iter()
        .all(|r| r.kind != RecipeKind::ZstdCompression));
    parsed
}

/// Asserts that the delta at `path` stays within what Microsoft's applier 3.0.0 reads: standard
/// v2, recipe ids 0–5 and 7 (no `zstd_compression`), and that it rebuilds some gzip member with
/// `zlib_compression`.
pub fn assert_microsoft_readable(path: &Path) {
    let parsed = assert_microsoft_readable_standard(path);
    assert!(parsed
        .recipes
        .iter()
        .any(|r| r.kind == adudiffapi::format::RecipeKind::ZlibCompression));
}

/// [`GenerateOptions`] from `source` to `target` written to `output` in `format`, with what the
/// tests share: two threads, quiet, file-aware image diffing, default tuning, no log, no work
/// folder, the target analysed by the generation itself. Tests change fields with struct update
/// syntax (`GenerateOptions { threads: 1, ..generate_options(..) }`).
pub fn generate_options(
    source: &Path,
    target: &Path,
    output: PathBuf,
    format: DeltaFormat,
) -> GenerateOptions {
    GenerateOptions {
        source: source.to_path_buf(),
        target: target.to_path_buf(),
        output,
        log_dir: None,
        work_dir: None,
        settings: DiffSettings::default(),
        threads: 2,
        quiet: true,
        files: true,
        image: Default::default(),
        format,
        target_analysis: None,
    }
}

/// `pigz args -c` of `data`; panics (a test failure) when pigz is not installed.
pub fn pigz(args: &[&str], data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("pigz")
        .args(args)
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("pigz is needed (apt-get install -y pigz)");
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "pigz {args:?} failed");
    out.stdout
}

/// `v1` with scattered changes: `count` edits of 300 bytes of [`text`] (seeds `seed + i`) and
/// one insertion of 5,000 bytes (seed `seed + 90`) at a third. Returns the new image and the
/// number of bytes changed or inserted.
pub fn scattered_edits(v1: &[u8], count: usize, seed: u64) -> (Vec<u8>, usize) {
    let mut v2 = v1.to_vec();
    let mut changed = 0;
    for i in 0..count {
        let at = (i * 7_919 + 1) * (v1.len() / (count * 7_919 + 3)).max(1);
        let piece = text(seed + i as u64, 300);
        let end = (at + piece.len()).min(v2.len());
        v2[at..end].copy_from_slice(&piece[..end - at]);
        changed += end - at;
    }
    let insert = text(seed + 90, 5_000);
    v2.splice(v1.len() / 3..v1.len() / 3, insert.iter().copied());
    (v2, changed + insert.len())
}

/// A source and a target SWU written in a temporary directory.
pub struct SwuPair {
    /// The directory holding both (and whatever a test writes next to them).
    pub dir: tempfile::TempDir,
    /// `v1.swu`.
    pub source: PathBuf,
    /// `v2.swu`.
    pub target: PathBuf,
}

/// Source and target SWUs whose image `name` (with sw-description's `compressed` attribute
/// `compressed`) is `old` and `new`, next to a kernel of [`text`] seed `kernel_seed` and a
/// dummy signature.
pub fn image_swu_pair(
    name: &str,
    compressed: Option<&str>,
    kernel_seed: u64,
    old: &[u8],
    new: &[u8],
) -> SwuPair {
    let dir = tempfile::tempdir().unwrap();
    let kernel = text(kernel_seed, 50_000);
    let swu = |image: &[u8], sig: u8| {
        let d = sw_description(&[(name, compressed, &sha256_hex(image))], &[]);
        cpio(
            CpioFormat::Crc,
            &[
                ("sw-description", d.as_bytes()),
                ("sw-description.sig", &[sig; 256]),
                (name, image),
                ("vmlinuz", &kernel),
            ],
        )
    };
    let source = dir.path().join("v1.swu");
    let target = dir.path().join("v2.swu");
    std::fs::write(&source, swu(old, 1)).unwrap();
    std::fs::write(&target, swu(new, 2)).unwrap();
    SwuPair {
        dir,
        source,
        target,
    }
}

/// A deterministic file-system-like image of `len` bytes: 4 KiB blocks of [`text`], zeros,
/// incompressible bytes and repeats of earlier blocks.
pub fn fs_image(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 4096);
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut k = 0u64;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        k += 1;
        match x % 10 {
            0..=4 => out.extend(text(seed * 1_000_003 + k, 4096)),
            5 | 6 => out.extend(std::iter::repeat_n(0u8, 4096)),
            7 => out.extend((0..512u64).flat_map(|i| (x.wrapping_mul(i + 1) >> 7).to_le_bytes())),
            _ => {
                let from = ((x as usize >> 3) % out.len().max(1)) & !4095;
                let block: Vec<u8> = out[from..(from + 4096).min(out.len())].to_vec();
                out.extend(block);
            }
        }
    }
    out.truncate(len);
    out
}

/// A command that runs this build's `adudiff` binary: directly, or under emulation
/// (scripts/arm-ci.sh) through the emulator that `ADUDIFFAPI_TEST_RUNNER` names
/// ([`c_harness::target_cmd`]).
pub fn adudiff_command() -> Command {
    c_harness::target_cmd(c_harness::adudiff_exe())
}

/// This build's `adudiff` binary ([`c_harness::adudiff_exe`]).
pub fn adudiff_exe() -> PathBuf {
    c_harness::adudiff_exe()
}
