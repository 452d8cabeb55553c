//! The pigz re-encoder (`deflate_reconstruct` codec 2 encoder 2, docs/EXTENDED-FORMAT.md) where
//! faults happen, through the agent-faithful C harness in a child process (a signal would show
//! instead of killing the test runner):
//!
//! * its memory is charged to the apply's memory budget: a budget too small for the re-encoder
//!   is a clean 20301 that names it, a budget with room for one job (not four) still applies
//!   byte-exact on the caller's thread;
//! * address-space limits (`RLIMIT_AS`) from far too small to enough: never a signal, a clean
//!   code and no target file where it does not fit, byte-exact where it does;
//! * a tmpfs too small for the target: a clean 20302 and nothing left; a roomy one: exact;
//! * hostile blobs and lengths under the address-space limit: refused with 39001 before any
//!   job runs (the message shows where), no target left.
//!
//! The target is a gzip file made by the real `pigz` (a missing pigz fails the test) from a
//! 4 MiB image, described by the generator's own gzip analysis. Mounting a tmpfs needs root
//! (CI runs as root); elsewhere that part fails, it does not skip.

mod swu_common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use adudiff_gen::generate::gzrebuild::{self, Piece};
use adudiffapi::codec::deflate_reconstruct as dr;
use adudiffapi::format::writer::{item_of, write_delta_to_vec, DeltaBuilder};
use adudiffapi::format::{Item, Recipe, RecipeKind};
use swu_common::c_harness::{harness, lib_dir, listing};
use swu_common::pigz;

const MIB: u64 = 1 << 20;

/// pigz options of the cases: 2 MiB jobs, so that the two jobs in flight of two workers need
/// ~10.6 MiB and one job on the caller's thread ~6.3 MiB (`PigzParams::memory`).
const PIGZ_ARGS: &[&str] = &["-9", "-n", "-b", "2048"];

/// A deterministic file-system-like image: 4 KiB blocks of text, zeros, noise and repeats.
fn image(len: usize) -> Vec<u8> {
    let words = [
        "usr/lib/", "module ", "0000 ", "config\n", "kernel ", "etc/",
    ];
    let mut out = Vec::with_capacity(len + 4096);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while out.len() < len {
        let r = next();
        match r % 8 {
            0..=3 => {
                let start = out.len();
                while out.len() < start + 4096 {
                    out.extend_from_slice(words[(next() % 6) as usize].as_bytes());
                }
                out.truncate(start + 4096);
            }
            4 => out.extend(std::iter::repeat_n(0u8, 4096)),
            5 => out.extend((0..512).flat_map(|_| next().to_le_bytes())),
            _ => {
                let from = ((r as usize >> 3) % out.len().max(1)) & !4095;
                let block = out[from..(from + 4096).min(out.len())].to_vec();
                out.extend(block);
            }
        }
    }
    out.truncate(len);
    out
}

/// A source file (the plain image), an extended delta and the gzip target it rebuilds.
struct Case {
    dir: tempfile::TempDir,
    source: PathBuf,
    delta: PathBuf,
    target: Vec<u8>,
    /// The pigz blob and the plain/stream lengths (for the hostile variants).
    blob: Vec<u8>,
    stream_len: u64,
    plain: Vec<u8>,
}

/// The delta whose target is `gz` (header and trailer inline, the deflate stream rebuilt by
/// `deflate_reconstruct` from the source `plain`), from the generator's own description.
fn pigz_case() -> Case {
    let plain = image(4 << 20);
    let gz = pigz(PIGZ_ARGS, &plain);
    let rebuilt = gzrebuild::analyse(&gz).expect("pigz output is described");
    assert_eq!(gzrebuild::rebuilt_by(&rebuilt.pieces), "pigz -9");
    let (source, mut parts, mut inline) = (item_of(&plain), Vec::new(), Vec::new());
    let mut recipes = Vec::new();
    let mut pigz_blob = None;
    for piece in &rebuilt.pieces {
        let (bytes, recipe) = match piece {
            Piece::Literal(range) => (gz[range.clone()].to_vec(), None),
            Piece::Deflate {
                stream,
                codec,
                corrections,
                plain: text,
            } => {
                assert_eq!(*codec, (dr::CODEC_EXACT, dr::CODEC_EXACT_VERSION_PIGZ));
                assert_eq!(text.len(), plain.len());
                pigz_blob = Some((corrections.clone(), stream.len() as u64));
                let blob = corrections.clone();
                let r = Recipe {
                    kind: RecipeKind::DeflateReconstruct,
                    result: item_of(&gz[stream.clone()]),
                    numbers: vec![codec.0, codec.1],
                    items: vec![source.clone(), item_of(&blob)],
                };
                (blob, Some(r))
            }
        };
        let slice = Recipe {
            kind: RecipeKind::Slice,
            result: item_of(&bytes),
            numbers: vec![inline.len() as u64],
            items: vec![],
        };
        match recipe {
            Some(r) => {
                parts.push(r.result.clone());
                recipes.push(r);
            }
            None => parts.push(slice.result.clone()),
        }
        recipes.push(slice);
        inline.extend_from_slice(&bytes);
    }
    let inline_item = item_of(&inline);
    for r in &mut recipes {
        if r.kind == RecipeKind::Slice {
            r.items = vec![inline_item.clone()];
        }
    }
    recipes.push(Recipe {
        kind: RecipeKind::Chain,
        result: item_of(&gz),
        numbers: vec![],
        items: parts,
    });
    let delta = write_delta_to_vec(&DeltaBuilder {
        target: item_of(&gz),
        source,
        recipes,
        inline_assets: Some(inline),
        remainder: None,
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (source_path, delta_path) = (dir.path().join("source"), dir.path().join("delta"));
    fs::write(&source_path, &plain).unwrap();
    fs::write(&delta_path, &delta).unwrap();
    let (blob, stream_len) = pigz_blob.expect("a deflate piece");
    Case {
        dir,
        source: source_path,
        delta: delta_path,
        target: gz,
        blob,
        stream_len,
        plain,
    }
}

/// How one apply ended.
#[derive(Debug, PartialEq)]
enum End {
    Exact,
    Error(u32, String),
}

/// Applies `delta` to `source` into `dir/target` through the C harness with the extra
/// environment `env` and an address-space limit, and checks the rules: no signal, success
/// only byte-exact (`expected`), and after a failure no target and no other file left.
fn apply(
    source: &Path,
    delta: &Path,
    dir: &Path,
    expected: &[u8],
    env: &[(&str, &str)],
    rlimit_as: Option<u64>,
) -> End {
    let harness = harness().expect("a C compiler for the harness");
    let target = dir.join("target");
    let before = listing(dir);
    let args = [
        OsStr::new("--peaks"),
        source.as_os_str(),
        delta.as_os_str(),
        target.as_os_str(),
    ];
    let run = harness.run_limited(&args, &lib_dir(), env, rlimit_as, Duration::from_secs(300));
    let context = format!("{} {env:?} RLIMIT_AS {rlimit_as:?}", delta.display());
    if let Some(peaks) = run.stderr.lines().find(|l| l.starts_with("peaks: ")) {
        println!("{context}: {peaks}");
    }
    if run.result_line() == "result: ok" {
        assert!(
            fs::read(&target).unwrap() == expected,
            "success but not byte-exact: {context}"
        );
        fs::remove_file(&target).unwrap();
        assert_eq!(listing(dir), before, "leftover files: {context}");
        return End::Exact;
    }
    let code = run.expect_error();
    assert!(!target.exists(), "a failed apply left a target: {context}");
    assert_eq!(listing(dir), before, "leftover files: {context}\n{run}");
    End::Error(code, run.stdout)
}

/// Codes an apply that runs out of a resource may end with: 20301 (scratch space or memory
/// budget), 20302 (target: no space), 20000/20300 (a read or mapping failed), 1 (a thread
/// cannot start).
const CLEAN_CODES: &[u32] = &[1, 20000, 20300, 20301, 20302];

#[test]
fn memory_budget_and_address_space_limits() {
    let case = pigz_case();
    let out = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)], limit: Option<u64>| {
        apply(
            &case.source,
            &case.delta,
            out.path(),
            &case.target,
            env,
            limit,
        )
    };
    // Two workers when the machine has two cores (`--nocapture` shows the peaks of each run).
    assert_eq!(run(&[], None), End::Exact);
    // A budget below one job's needs: refused before the re-encoder allocates, naming it.
    match run(&[("ADUDIFF_SCRATCH_MEMORY", "1M")], None) {
        End::Error(20301, text) => assert!(text.contains("pigz re-encoder"), "{text}"),
        other => panic!("1 MiB budget: {other:?}"),
    }
    // Room for one job, not for two workers' two: the caller's thread does it, exactly.
    assert_eq!(run(&[("ADUDIFF_SCRATCH_MEMORY", "8M")], None), End::Exact);
    let (mut errors, mut pigz_refused) = (0, false);
    for mib in [24u64, 28, 32, 36, 40, 44, 48, 64, 128] {
        let end = run(&[], Some(mib * MIB));
        println!("RLIMIT_AS {mib:>4} MiB: {end:?}");
        match end {
            End::Exact => {}
            End::Error(code, text) => {
                assert!(mib < 128, "{mib} MiB must be enough: {code} {text}");
                assert!(CLEAN_CODES.contains(&code), "{mib} MiB: {code} {text}");
                pigz_refused |= code == 20301 && text.contains("pigz re-encoder");
                errors += 1;
            }
        }
    }
    assert!(errors > 0, "no address-space limit was too small");
    assert!(
        pigz_refused,
        "no limit left room for the delta but not for the re-encoder's charge"
    );
}

/// A file system mounted for a test, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn new(bytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn small_tmpfs_cannot_hold_the_target() {
    let case = pigz_case();
    let len = case.target.len() as u64;
    for (size, must_fit) in [(len / 2, false), (len.div_ceil(MIB) * MIB + 8 * MIB, true)] {
        let fs = Tmpfs::new(size);
        let end = apply(
            &case.source,
            &case.delta,
            fs.0.path(),
            &case.target,
            &[],
            None,
        );
        println!("tmpfs of {size} bytes for a {len}-byte target: {end:?}");
        if must_fit {
            assert_eq!(end, End::Exact);
        } else {
            assert!(matches!(end, End::Error(20302, _)), "{end:?}");
        }
    }
}

/// The address-space limit of the hostile cases: roomy for the legitimate apply (see
/// [`memory_budget_and_address_space_limits`]), far below what the blobs claim.
const HOSTILE_AS: u64 = 128 * MIB;

/// A delta whose target is the raw deflate stream `target` (`target_len` bytes, hash of
/// `target` or made up) rebuilt by the pigz encoder from `plain` with `blob`.
fn stream_delta(plain: (Item, Option<Recipe>), target: Item, blob: &[u8]) -> Vec<u8> {
    let mut recipes = vec![Recipe {
        kind: RecipeKind::DeflateReconstruct,
        result: target.clone(),
        numbers: vec![dr::CODEC_EXACT, dr::CODEC_EXACT_VERSION_PIGZ],
        items: vec![plain.0.clone(), item_of(blob)],
    }];
    let source = match plain.1 {
        Some(r) => {
            recipes.push(r);
            Item::empty()
        }
        None => plain.0,
    };
    write_delta_to_vec(&DeltaBuilder {
        target,
        source,
        recipes,
        inline_assets: Some(blob.to_vec()),
        remainder: None,
    })
    .unwrap()
}

#[test]
fn hostile_pigz_blobs_under_the_address_space_limit() {
    use adudiffapi::codec::pigz::{Layout, PigzParams};
    let case = pigz_case();
    let plain = (item_of(&case.plain), None);
    let stream = &case.target[10..10 + case.stream_len as usize];
    let stream_item = item_of(stream);
    let params = PigzParams::from_blob(&case.blob, case.plain.len() as u64).unwrap();
    let explicit = |pieces: Vec<(u32, bool)>| {
        PigzParams {
            layout: Layout::Explicit {
                block: 512 << 10,
                pieces,
            },
            ..params.clone()
        }
        .to_blob()
    };
    let huge_block = PigzParams {
        layout: Layout::Fixed(1 << 28),
        ..params.clone()
    }
    .to_blob();
    let mut huge_count = explicit(vec![(1, true)]);
    drop(huge_count.splice(10..11, [0xff, 0xff, 0xff, 0xff, 0x0f])); // 2^32-1 sub-blocks
    let zeros = Item::with_sha256(1 << 50, [0x50; 32]);
    let all_zeros = Recipe {
        kind: RecipeKind::AllZeros,
        result: zeros.clone(),
        numbers: vec![],
        items: vec![],
    };
    let hostile: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "the legitimate raw stream",
            stream_delta(plain.clone(), stream_item.clone(), &case.blob),
            "",
        ),
        (
            "jobs of 2^28 bytes",
            stream_delta(plain.clone(), stream_item.clone(), &huge_block),
            "job size",
        ),
        (
            "2^32-1 sub-blocks in a 16-byte blob",
            stream_delta(plain.clone(), stream_item.clone(), &huge_count),
            "do not fit",
        ),
        (
            "sub-blocks that do not add up to the plain text",
            stream_delta(
                plain.clone(),
                stream_item.clone(),
                &explicit(vec![(1000, true)]),
            ),
            "cover",
        ),
        (
            "a 2^50-byte plain text for a 1 MiB stream",
            stream_delta((zeros, Some(all_zeros)), stream_item.clone(), &case.blob),
            "cannot hold",
        ),
        (
            "a 4 MiB plain text in a 100-byte stream",
            stream_delta(
                plain.clone(),
                Item::with_sha256(100, [0x64; 32]),
                &case.blob,
            ),
            "cannot hold",
        ),
        (
            "a truncated blob",
            stream_delta(plain.clone(), stream_item.clone(), &case.blob[..8]),
            "truncated",
        ),
    ];
    for (name, delta, fragment) in hostile {
        let path = case.dir.path().join("hostile.delta");
        fs::write(&path, &delta).unwrap();
        let out = tempfile::tempdir().unwrap();
        let end = apply(
            &case.source,
            &path,
            out.path(),
            stream,
            &[],
            Some(HOSTILE_AS),
        );
        println!("{name}: {end:?}");
        if fragment.is_empty() {
            assert_eq!(end, End::Exact, "{name}");
            continue;
        }
        match end {
            End::Error(39001, text) => assert!(text.contains(fragment), "{name}: {text}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}
