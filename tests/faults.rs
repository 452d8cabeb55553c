//! Fault injection with real files, through the exported C functions: missing, unreadable,
//! truncated, changed or misplaced inputs; truncated deltas (every prefix of small vectors, every
//! section boundary of large ones); unwritable, missing or full target locations. Each fault must
//! give its documented code, leave no `.adudiff-*` temporary file and leave a pre-existing target
//! byte-identical.
//!
//! Permission faults run in a child process as user `nobody` (the tests run as root, which
//! ignores file modes). The tmpfs faults need `mount -t tmpfs` (root); without it they are
//! skipped with a message. `cargo test --test faults -- --nocapture` prints the table rows
//! (`FAULT | name | code | text`) that `docs/RELIABILITY.md` reports.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

#[test]
fn child_process_entry() {
    child_main();
}

const PREVIOUS: &[u8] = b"previous target, must survive every failed apply";

/// Checks a failed apply: its code, no temporary file in `dir`, and the target as before
/// (`PREVIOUS` if `had_target`, otherwise absent unless it is not a regular file path).
fn check_fault(name: &str, code: u32, text: &str, want: &[u32], target: &Path, had_target: bool) {
    println!(
        "FAULT | {name} | {code} | {}",
        text.lines().next().unwrap_or("")
    );
    assert!(
        want.contains(&code),
        "{name}: expected one of {want:?}, got {code}: {text}"
    );
    if let Some(dir) = target.parent().filter(|d| d.is_dir()) {
        let left = leftovers(dir);
        assert!(left.is_empty(), "{name}: temporary files left: {left:?}");
    }
    if had_target {
        assert_eq!(
            fs::read(target).unwrap(),
            PREVIOUS,
            "{name}: pre-existing target changed"
        );
    } else if !target.is_dir() {
        assert!(!target.exists(), "{name}: a failed apply left a target");
    }
}

fn first(outcome: &Outcome) -> (u32, String) {
    match outcome {
        Ok(()) => (0, String::new()),
        Err(e) => (e[0].0, e[0].1.clone()),
    }
}

/// A fresh work directory with a pre-existing target; returns (dir, target path).
fn work_with_target() -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("target");
    fs::write(&target, PREVIOUS).unwrap();
    (work, target)
}

fn vector(name: &str) -> PathBuf {
    vectors_dir().join(name)
}

// ---------------------------------------------------------------------------------------------
// Source faults
// ---------------------------------------------------------------------------------------------

#[test]
fn source_faults() {
    let v = vector("slice_basic");
    let delta = v.join("delta");
    let good = fs::read(v.join("source")).unwrap();
    let (work, target) = work_with_target();
    let src = work.path().join("source");
    let run = |name: &str, setup: &dyn Fn(&Path), want: &[u32]| {
        let _ = fs::remove_file(&src);
        let _ = fs::remove_dir(&src);
        setup(&src);
        let (code, text) = first(&apply_c(&src, &delta, &target));
        check_fault(name, code, &text, want, &target, true);
    };
    run("source missing", &|_| {}, &[20300]);
    run(
        "source is a directory",
        &|p| fs::create_dir(p).unwrap(),
        &[20300],
    );
    run("source empty", &|p| fs::write(p, b"").unwrap(), &[1]);
    run(
        "source truncated (half)",
        &|p| fs::write(p, &good[..good.len() / 2]).unwrap(),
        &[1],
    );
    run(
        "source truncated (last byte)",
        &|p| fs::write(p, &good[..good.len() - 1]).unwrap(),
        &[1],
    );
    run(
        "source with one byte changed",
        &|p| {
            let mut b = good.clone();
            b[1000] ^= 1;
            fs::write(p, b).unwrap()
        },
        &[1],
    );
    run(
        "source is a dangling symlink",
        &|p| std::os::unix::fs::symlink("/nonexistent/adudiff", p).unwrap(),
        &[20300],
    );
}

#[test]
fn source_changed_between_runs() {
    let v = vector("chain_of_slices");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("source");
    let target = work.path().join("target");
    fs::copy(v.join("source"), &src).unwrap();
    apply_c(&src, &v.join("delta"), &target).unwrap();
    let produced = fs::read(&target).unwrap();
    assert_eq!(produced, fs::read(v.join("target")).unwrap());
    // The device's source changes (another update, corruption); the same delta runs again.
    let mut changed = fs::read(&src).unwrap();
    let mid = changed.len() / 2;
    changed[mid] = changed[mid].wrapping_add(1);
    fs::write(&src, changed).unwrap();
    let (code, text) = first(&apply_c(&src, &v.join("delta"), &target));
    println!(
        "FAULT | source changed between runs | {code} | {}",
        text.lines().next().unwrap_or("")
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not the delta's source"), "{text}");
    assert_eq!(fs::read(&target).unwrap(), produced, "first result kept");
    assert!(leftovers(work.path()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Permission faults (child process as nobody)
// ---------------------------------------------------------------------------------------------

/// Runs one apply as `nobody` in a child; `None` when not root (the test then skips).
fn as_nobody(source: &Path, delta: &Path, target: &Path) -> Option<(u32, String)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: permission faults need root to switch to nobody");
        return None;
    }
    let mut job = ChildApply::new(source, delta, target);
    job.as_nobody = true;
    let r = run_child(&job);
    assert!(r.abnormal.is_none(), "{r:?}");
    Some((r.code.unwrap(), r.text))
}

/// A work directory `nobody` can enter, with world-readable copies of a vector's files.
fn public_work(vector_name: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let v = vector(vector_name);
    let (src, delta) = (work.path().join("source"), work.path().join("delta"));
    fs::copy(v.join("source"), &src).unwrap();
    fs::copy(v.join("delta"), &delta).unwrap();
    for p in [&src, &delta] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
    }
    (work, src, delta)
}

#[test]
fn permission_faults() {
    // Sanity: nobody can apply in the public directory.
    let (work, src, delta) = public_work("slice_basic");
    let target = work.path().join("target");
    let Some((code, text)) = as_nobody(&src, &delta, &target) else {
        return;
    };
    assert_eq!(code, 0, "{text}");
    fs::remove_file(&target).unwrap();
    fs::write(&target, PREVIOUS).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o666)).unwrap();

    fs::set_permissions(&src, fs::Permissions::from_mode(0o000)).unwrap();
    let (code, text) = as_nobody(&src, &delta, &target).unwrap();
    check_fault(
        "source unreadable (mode 000)",
        code,
        &text,
        &[20300],
        &target,
        true,
    );
    fs::set_permissions(&src, fs::Permissions::from_mode(0o644)).unwrap();

    fs::set_permissions(&delta, fs::Permissions::from_mode(0o000)).unwrap();
    let (code, text) = as_nobody(&src, &delta, &target).unwrap();
    check_fault(
        "delta unreadable (mode 000)",
        code,
        &text,
        &[20300],
        &target,
        true,
    );
    fs::set_permissions(&delta, fs::Permissions::from_mode(0o644)).unwrap();

    // Target directory read-only for nobody.
    let ro = work.path().join("ro");
    fs::create_dir(&ro).unwrap();
    let ro_target = ro.join("target");
    fs::write(&ro_target, PREVIOUS).unwrap();
    fs::set_permissions(&ro_target, fs::Permissions::from_mode(0o666)).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    let (code, text) = as_nobody(&src, &delta, &ro_target).unwrap();
    check_fault(
        "target directory read-only (mode 555)",
        code,
        &text,
        &[20302],
        &ro_target,
        true,
    );
    // Target directory not searchable.
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o000)).unwrap();
    let (code, text) = as_nobody(&src, &delta, &ro_target).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
    check_fault(
        "target directory not searchable (mode 000)",
        code,
        &text,
        &[20302],
        &ro_target,
        true,
    );
}

// ---------------------------------------------------------------------------------------------
// Delta faults
// ---------------------------------------------------------------------------------------------

#[test]
fn delta_faults() {
    let v = vector("slice_basic");
    let (work, target) = work_with_target();
    let d = work.path().join("delta");
    let run = |name: &str, setup: &dyn Fn(&Path), want: &[u32]| {
        let _ = fs::remove_file(&d);
        let _ = fs::remove_dir(&d);
        setup(&d);
        let (code, text) = first(&apply_c(&v.join("source"), &d, &target));
        check_fault(name, code, &text, want, &target, true);
    };
    run("delta missing", &|_| {}, &[20300]);
    run(
        "delta is a directory",
        &|p| fs::create_dir(p).unwrap(),
        &[20300],
    );
    run("delta empty", &|p| fs::write(p, b"").unwrap(), &[20000]);
    run(
        "delta is the source file",
        &|p| fs::copy(v.join("source"), p).map(|_| ()).unwrap(),
        &[30000],
    );
}

/// Codes a truncated delta may give (docs/C-API.md §6 rows 3a, 5a–5e, 8f and the legacy size
/// check; 1 when a hashed blob is cut short into a mismatch or the recipes no longer resolve).
const TRUNCATION_CODES: &[u32] = &[1, 20000, 21200, 30002, 30003, 30009];

/// Applies every prefix of `delta` in process; returns a histogram of codes.
fn every_prefix(vector_name: &str) -> BTreeMap<u32, usize> {
    let v = vector(vector_name);
    let full = fs::read(v.join("delta")).unwrap();
    let (work, target) = work_with_target();
    let mut histogram = BTreeMap::new();
    let session = adudiffapi::ffi::adu_diff_apply_create_session();
    for len in 0..full.len() {
        // A fresh name per prefix: rewriting one file with O_TRUNC makes ext4 flush it at every
        // close (auto_da_alloc), which turned this loop into minutes of I/O waits.
        let d = work.path().join(format!("delta-{len}"));
        fs::write(&d, &full[..len]).unwrap();
        let outcome = apply_on(session, &v.join("source"), &d, &target);
        fs::remove_file(&d).unwrap();
        let (code, text) = first(&outcome);
        assert!(
            TRUNCATION_CODES.contains(&code),
            "{vector_name} cut at {len}: code {code}: {text}"
        );
        *histogram.entry(code).or_insert(0) += 1;
        assert_eq!(fs::read(&target).unwrap(), PREVIOUS, "cut at {len}");
    }
    adudiffapi::ffi::adu_diff_apply_close_session(session);
    assert!(leftovers(work.path()).is_empty());
    println!(
        "FAULT | {vector_name} delta truncated at each of {} lengths | {histogram:?} |",
        full.len()
    );
    histogram
}

#[test]
fn delta_truncated_at_every_byte() {
    for name in [
        "slice_basic",
        "inline_assets_slices",
        "remainder_slices",
        "nested_archive",
        "zstd_patch_from_source",
        "legacy_v0_basic_recipes",
        "legacy_v0_little_endian_1x_layout",
    ] {
        let h = every_prefix(name);
        assert!(!h.contains_key(&0), "{name}: a truncated delta applied");
    }
}

/// Offsets where the sections and records of a standard delta end (docs/FORMAT.md §3).
fn section_boundaries(d: &[u8]) -> Vec<usize> {
    let mut pos = 0usize;
    let mut marks = Vec::new();
    let u32_at = |p: usize| u32::from_be_bytes(d[p..p + 4].try_into().unwrap());
    let u64_at = |p: usize| u64::from_be_bytes(d[p..p + 8].try_into().unwrap());
    let item = |pos: &mut usize| {
        let len = u64_at(*pos);
        *pos += 8;
        if len != 0 {
            let alg = u32_at(*pos);
            *pos += 4 + if alg == 0x800C { 32 } else { 16 };
        }
        len
    };
    pos += 4;
    marks.push(pos); // magic
    pos += 8;
    marks.push(pos); // version
    item(&mut pos);
    marks.push(pos); // target
    item(&mut pos);
    marks.push(pos); // source
    let types = u32_at(pos);
    pos += 4;
    for _ in 0..types {
        pos += 8 + u64_at(pos) as usize;
    }
    marks.push(pos); // type table
    if &d[4..12] == b"ADUDIFF\x02" {
        // Extended revision 2: the recipe sets packed (u64 unpacked, u64 packed, zstd frame).
        pos += 8;
        marks.push(pos); // unpacked length
        let packed = u64_at(pos) as usize;
        pos += 8;
        marks.push(pos); // packed length
        pos += packed;
        marks.push(pos); // the frame
    }
    let sets = if &d[4..12] == b"ADUDIFF\x02" {
        0
    } else {
        let n = u64_at(pos);
        pos += 8;
        n
    };
    for _ in 0..sets {
        let recipes = u64_at(pos);
        pos += 8;
        item(&mut pos);
        for _ in 0..recipes {
            pos += 4;
            pos += 8 + 8 * u64_at(pos) as usize;
            let items = u64_at(pos);
            pos += 8;
            for _ in 0..items {
                item(&mut pos);
            }
        }
        marks.push(pos); // one recipe set
    }
    for _ in 0..2 {
        let len = item(&mut pos) as usize;
        marks.push(pos); // blob item
        pos += len;
        marks.push(pos); // blob bytes
    }
    let nested = u32_at(pos);
    pos += 4;
    marks.push(pos); // nested count
    for _ in 0..nested {
        let len = item(&mut pos) as usize;
        marks.push(pos); // nested blob item
        pos += len;
        marks.push(pos); // nested archive
    }
    marks
}

#[test]
fn delta_truncated_at_section_boundaries() {
    for name in ["swu_realistic_rootfs", "swu_large_timing", "nested_archive"] {
        let v = vector(name);
        let full = fs::read(v.join("delta")).unwrap();
        let marks = section_boundaries(&full);
        assert_eq!(*marks.last().unwrap(), full.len(), "{name}: walker");
        let (work, target) = work_with_target();
        // swu_large_timing ships no source (made by its benchmark): the parse fails first anyway.
        let src = if v.join("source").exists() {
            v.join("source")
        } else {
            vector("swu_realistic_rootfs").join("source")
        };
        let mut histogram = BTreeMap::new();
        let mut cuts = 0;
        for &mark in &marks {
            for cut in [mark.saturating_sub(1), mark, mark + 1] {
                if cut >= full.len() {
                    continue;
                }
                cuts += 1;
                let d = work.path().join(format!("delta-{cut}"));
                fs::write(&d, &full[..cut]).unwrap();
                let (code, text) = first(&apply_c(&src, &d, &target));
                fs::remove_file(&d).unwrap();
                assert!(
                    TRUNCATION_CODES.contains(&code),
                    "{name} cut at {cut}: {code} {text}"
                );
                *histogram.entry(code).or_insert(0) += 1;
                assert_eq!(fs::read(&target).unwrap(), PREVIOUS);
            }
        }
        assert!(leftovers(work.path()).is_empty());
        println!(
            "FAULT | {name} delta truncated at {cuts} cuts around {} section boundaries | {histogram:?} |",
            marks.len()
        );
    }
}

/// An extended delta using both of the format's recipes, written into `dir`: the target is
/// `chain(deflate_reconstruct(source, corrections), zstd_compression_exact(source))` with the
/// corrections in the inline assets and a remainder. Returns (source, delta, target) paths.
fn extended_delta(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    use adudiffapi::codec::deflate_reconstruct::analyse;
    use adudiffapi::codec::zstd_compress::{
        compress, ZstdParams, FLAG_CHECKSUM, FLAG_CONTENT_SIZE, FLAG_PLEDGED,
    };
    use adudiffapi::format::writer::{item_of, write_delta_to_vec, DeltaBuilder};
    use adudiffapi::format::{Recipe, RecipeKind};
    use std::io::Write;
    let source: Vec<u8> = (0..120_000u32)
        .flat_map(|i| format!("line {} of {}\n", i % 1013, i / 17).into_bytes())
        .take(120_000)
        .collect();
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(&source).unwrap();
    let deflated = e.finish().unwrap();
    let corrections = analyse(&deflated, usize::MAX).unwrap().corrections;
    let p = ZstdParams {
        level: 5,
        flags: FLAG_CHECKSUM | FLAG_CONTENT_SIZE | FLAG_PLEDGED,
        window_log: 0,
        job_size: 0,
    };
    // The frame's length from a first run of the applier's compressor (which fails at the
    // end of the frame, whose length is not 2^40), then the frame.
    let len = {
        use std::io::Read;
        let n = source.len() as u64;
        let mut r = adudiffapi::codec::ZstdCompressReader::new(&source[..], n, p, 1, 1 << 40)
            .unwrap()
            .take(1 << 40);
        let mut out = Vec::new();
        let _ = r.read_to_end(&mut out);
        out.len() as u64
    };
    let frame = compress(&source, p, len).unwrap();
    let tail = b"remainder bytes at the end of the target".to_vec();
    let target: Vec<u8> = [&deflated[..], &frame[..], &tail[..]].concat();
    let (s, d, f, c, t) = (
        item_of(&source),
        item_of(&deflated),
        item_of(&frame),
        item_of(&corrections),
        item_of(&tail),
    );
    let recipes = vec![
        Recipe {
            kind: RecipeKind::Chain,
            result: item_of(&target),
            numbers: vec![],
            items: vec![d.clone(), f.clone(), t],
        },
        Recipe {
            kind: RecipeKind::DeflateReconstruct,
            result: d,
            numbers: vec![1, 1],
            items: vec![s.clone(), c],
        },
        Recipe {
            kind: RecipeKind::ZstdCompressionExact,
            result: f,
            numbers: p.to_numbers(),
            items: vec![s.clone()],
        },
    ];
    let delta = write_delta_to_vec(&DeltaBuilder {
        target: item_of(&target),
        source: s,
        recipes,
        inline_assets: Some(corrections),
        remainder: Some(tail),
    })
    .unwrap();
    let (src_path, delta_path) = (dir.join("ext-source"), dir.join("ext-delta"));
    fs::write(&src_path, &source).unwrap();
    fs::write(&delta_path, &delta).unwrap();
    (src_path, delta_path, target)
}

/// Truncations of an extended delta (both extended recipes) at every section and record
/// boundary (±1) and at every 5th byte, through the C functions: each gives a documented
/// code, leaves the pre-existing target as it was and no temporary file.
#[test]
fn extended_delta_truncated_at_section_boundaries_and_sampled_prefixes() {
    let (work, target) = work_with_target();
    let (src, delta_path, expected) = extended_delta(work.path());
    let full = fs::read(&delta_path).unwrap();
    assert_eq!(&full[4..12], b"ADUDIFF\x02");
    // The whole delta applies.
    let whole = work.path().join("whole");
    assert_eq!(
        first(&apply_c(&src, &delta_path, &whole)),
        (0, String::new())
    );
    assert!(fs::read(&whole).unwrap() == expected);
    fs::remove_file(&whole).unwrap();
    let marks = section_boundaries(&full);
    assert_eq!(*marks.last().unwrap(), full.len(), "walker");
    let mut cuts: Vec<usize> = marks
        .iter()
        .flat_map(|&m| [m.saturating_sub(1), m, m + 1])
        .chain((0..full.len()).step_by(5))
        .filter(|&c| c < full.len())
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    // Truncation codes, plus the extended recipes' own (a cut that leaves a parseable delta
    // whose recipes then fail).
    let allowed: Vec<u32> = TRUNCATION_CODES
        .iter()
        .copied()
        .chain([39000, 39001, 39002, 39003])
        .collect();
    let session = adudiffapi::ffi::adu_diff_apply_create_session();
    let mut histogram = BTreeMap::new();
    for &cut in &cuts {
        let d = work.path().join(format!("delta-{cut}"));
        fs::write(&d, &full[..cut]).unwrap();
        let (code, text) = first(&apply_on(session, &src, &d, &target));
        fs::remove_file(&d).unwrap();
        assert!(allowed.contains(&code), "cut at {cut}: {code} {text}");
        *histogram.entry(code).or_insert(0) += 1;
        assert_eq!(fs::read(&target).unwrap(), PREVIOUS, "cut at {cut}");
    }
    adudiffapi::ffi::adu_diff_apply_close_session(session);
    let left: Vec<String> = leftovers(work.path());
    assert!(left.is_empty(), "{left:?}");
    println!(
        "FAULT | extended delta (deflate_reconstruct + zstd_compression_exact) truncated at {} cuts around {} section boundaries and every 5th byte | {histogram:?} |",
        cuts.len(),
        marks.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Target faults
// ---------------------------------------------------------------------------------------------

#[test]
fn target_location_faults() {
    let v = vector("slice_basic");
    let (src, delta) = (v.join("source"), v.join("delta"));
    let work = tempfile::tempdir().unwrap();
    let missing_dir = work.path().join("no/such/dir/target");
    let (code, text) = first(&apply_c(&src, &delta, &missing_dir));
    check_fault(
        "target directory missing",
        code,
        &text,
        &[20302],
        &missing_dir,
        false,
    );
    let dir_target = work.path().join("a-directory");
    fs::create_dir(&dir_target).unwrap();
    let (code, text) = first(&apply_c(&src, &delta, &dir_target));
    check_fault(
        "target path is a directory",
        code,
        &text,
        &[20302],
        &dir_target,
        false,
    );
    assert!(dir_target.is_dir());
    let file = work.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let under_file = file.join("target");
    let (code, text) = first(&apply_c(&src, &delta, &under_file));
    check_fault(
        "target parent is a regular file",
        code,
        &text,
        &[20302],
        &under_file,
        false,
    );
    assert!(leftovers(work.path()).is_empty());
}

#[test]
fn file_size_limit_mid_write() {
    // RLIMIT_FSIZE below the target size: statvfs says there is room, the write itself fails
    // (EFBIG, SIGXFSZ ignored) — the "disk full while writing" path.
    for (name, limit) in [("slice_basic", 16 << 10), ("swu_realistic_rootfs", 1 << 20)] {
        let v = vector(name);
        let (work, target) = work_with_target();
        let mut job = ChildApply::new(&v.join("source"), &v.join("delta"), &target);
        job.file_size = limit;
        let r = run_child(&job);
        assert!(r.abnormal.is_none(), "{r:?}");
        check_fault(
            &format!("file size limit {} KiB while writing ({name})", limit >> 10),
            r.code.unwrap(),
            &r.text,
            &[20301, 20302],
            &target,
            true,
        );
        assert!(leftovers(work.path()).is_empty());
    }
}

/// A small tmpfs mounted for the test (unmounted on drop); `None` when mounting is impossible.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            println!("skipped: cannot mount a tmpfs here");
            return None;
        }
        Some(Tmpfs(dir))
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn remount_read_only(&self) -> bool {
        Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path()).status();
    }
}

#[test]
fn full_and_read_only_file_systems() {
    // Full: a 1 MiB tmpfs and a 1.7 MiB target → refused by the free-space check.
    let Some(fs1) = Tmpfs::mount("1m") else {
        return;
    };
    let v = vector("swu_realistic_rootfs");
    let target = fs1.path().join("target");
    fs::write(&target, PREVIOUS).unwrap();
    let (code, text) = first(&apply_c(&v.join("source"), &v.join("delta"), &target));
    check_fault(
        "file system full (1 MiB tmpfs, 1.7 MiB target)",
        code,
        &text,
        &[20302],
        &target,
        true,
    );
    assert!(text.contains("free space"), "{text}");
    drop(fs1);

    // Room for the target but not for the 24 MiB intermediate swu_realistic_rootfs
    // materializes: a 4 MiB tmpfs. The intermediate goes to memory and the apply succeeds
    // (tests/resources.rs sweeps sizes, and forces the disk to fill up mid-apply).
    let Some(fs4) = Tmpfs::mount("4m") else {
        return;
    };
    let target = fs4.path().join("target");
    fs::write(&target, PREVIOUS).unwrap();
    let outcome = apply_c(&v.join("source"), &v.join("delta"), &target);
    assert!(outcome.is_ok(), "4 MiB tmpfs: {outcome:?}");
    assert_eq!(
        fs::read(&target).unwrap(),
        fs::read(v.join("target")).unwrap()
    );
    assert!(leftovers(fs4.path()).is_empty());
    fs::write(&target, PREVIOUS).unwrap();
    // Nearly full: a filler leaves less than the 32000-byte target.
    let filler = fs4.path().join("filler");
    let free = fs4_free(fs4.path());
    fs::write(&filler, vec![1u8; (free - 16 * 1024) as usize]).unwrap();
    let s = vector("slice_basic");
    let (code, text) = first(&apply_c(&s.join("source"), &s.join("delta"), &target));
    check_fault(
        "file system nearly full (16 KiB left, 32000-byte target)",
        code,
        &text,
        &[20302],
        &target,
        true,
    );
    fs::remove_file(&filler).unwrap();

    // Read-only file system (EROFS, even for root).
    assert!(fs4.remount_read_only());
    let (code, text) = first(&apply_c(&s.join("source"), &s.join("delta"), &target));
    check_fault(
        "file system read-only",
        code,
        &text,
        &[20302],
        &target,
        true,
    );
}

fn fs4_free(dir: &Path) -> u64 {
    adudiffapi::io::scratch::available_space(dir).unwrap()
}

// ---------------------------------------------------------------------------------------------
// No panic across the C boundary (cargo test --features fault-injection --test faults)
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "fault-injection")]
#[test]
fn forced_panic_inside_apply_is_code_1_and_the_process_survives() {
    let v = vector("slice_basic");
    let work = tempfile::tempdir().unwrap();
    let panicking = work.path().join("delta.panic-test");
    fs::copy(v.join("delta"), &panicking).unwrap();
    let session = adudiffapi::ffi::adu_diff_apply_create_session();
    for had_target in [false, true] {
        let target = work.path().join("target");
        let _ = fs::remove_file(&target);
        if had_target {
            fs::write(&target, PREVIOUS).unwrap();
        }
        let (code, text) = first(&apply_on(session, &v.join("source"), &panicking, &target));
        check_fault(
            "panic inside the apply (fault-injection hook)",
            code,
            &text,
            &[1],
            &target,
            had_target,
        );
        assert!(
            text.contains("internal error: fault injection: forced panic"),
            "{text}"
        );
        // The same session, in the same process, applies normally afterwards.
        apply_on(session, &v.join("source"), &v.join("delta"), &target).unwrap();
        assert_eq!(
            fs::read(&target).unwrap(),
            fs::read(v.join("target")).unwrap()
        );
    }
    adudiffapi::ffi::adu_diff_apply_close_session(session);
}
