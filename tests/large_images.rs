//! Images larger than 2 GiB on every target, 32-bit ones included (issue 14 part 3): a delta
//! whose source and target are each larger than 2 GiB is applied through the C functions
//! byte-exactly, and the process's address space stays far below the 3 GiB a 32-bit process
//! has; offsets beyond 4 GiB travel through the executor intact.
//!
//! The images are sparse files made here: zeros except a few MiB of pseudo-random data, some
//! of it beyond 2 GiB and across the 2^31 boundary. The delta is built directly (the test's
//! standard-v2 builder): slices of the source far beyond 2 GiB, a zstd patch against a source
//! range that crosses 2^31, a bsdiff patch, new bytes from the inline assets, a 384 MiB zstd
//! frame (longer than a 32-bit process may map as a window, see
//! `adudiffapi::execute::MAPPED_ZSTD_WINDOW_MAX`) and zero runs. The SHA-256 digests the delta
//! needs are computed from the images' description, continuing one digest of zeros where an
//! item starts with zeros; under emulation (armv7 under qemu-user in `scripts/arm-ci.sh`) the
//! digests of the two whole images are constants that every native run checks (see
//! [`image_digest`]).

mod common;

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{apply_c, bspatch, chain, slice, zeros, zstd, It, Std, R};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

/// Most address space (all mappings of the process, from `/proc/self/maps`) the apply may
/// reach on a 32-bit target, which has 3 GiB in all (4 GiB under qemu-user). Well below that,
/// and below what mapping the 384 MiB zstd output as one window would take.
const PEAK_LIMIT_32: u64 = 384 * MIB;

/// The same on 64-bit targets, where the applier maps the 384 MiB zstd window on purpose (it
/// keeps the resident set small) and each thread's malloc arena reserves 64 MiB.
const PEAK_LIMIT_64: u64 = 2048 * MIB;

/// Deterministic pseudo-random bytes (xorshift64*).
fn random_bytes(seed: u64, len: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len as usize);
    while (out.len() as u64) < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        let take = (len - out.len() as u64).min(8) as usize;
        out.extend_from_slice(&word[..take]);
    }
    out
}

/// The identity (length, SHA-256) of bytes, as the delta builder wants it.
fn item(bytes: &[u8]) -> It {
    common::item_of(bytes)
}

/// An image: `len` bytes, zero except the extents (sorted by offset, not overlapping).
struct Image {
    len: u64,
    extents: Vec<(u64, Vec<u8>)>,
}

impl Image {
    /// Writes the image as a sparse file (only the extents are written).
    fn write_sparse(&self, path: &Path) {
        let file = File::create(path).unwrap();
        file.set_len(self.len).unwrap();
        for (offset, bytes) in &self.extents {
            file.write_all_at(bytes, *offset).unwrap();
        }
        file.sync_all().unwrap();
    }

    /// SHA-256 of the image, continuing `zeros`: a digest of the image's first bytes, all zero
    /// (at most up to the first extent).
    fn sha256(&self, zeros: &ZeroDigest) -> [u8; 32] {
        let (mut hasher, mut pos) = zeros.clone().into_parts();
        assert!(self.extents.first().is_none_or(|(at, _)| *at >= pos));
        for (offset, bytes) in &self.extents {
            hash_zeros(&mut hasher, offset - pos);
            hasher.update(bytes);
            pos = offset + bytes.len() as u64;
        }
        hash_zeros(&mut hasher, self.len - pos);
        hasher.finalize().into()
    }

    /// Checks that the file at `path` is exactly this image, reading it once.
    fn verify(&self, path: &Path) {
        let mut file = File::open(path).unwrap();
        assert_eq!(file.metadata().unwrap().len(), self.len, "length");
        let mut buf = vec![0u8; MIB as usize];
        let mut pos = 0u64;
        let mut next = self.extents.iter().peekable();
        while pos < self.len {
            let n = (self.len - pos).min(MIB) as usize;
            file.read_exact(&mut buf[..n]).unwrap();
            // Expected: zero except where an extent overlaps [pos, pos + n).
            let mut at = 0usize;
            while at < n {
                let here = pos + at as u64;
                while next.peek().is_some_and(|(o, b)| o + b.len() as u64 <= here) {
                    next.next();
                }
                match next.peek() {
                    Some((o, b)) if *o <= here => {
                        let skip = (here - o) as usize;
                        let take = (b.len() - skip).min(n - at);
                        assert!(
                            buf[at..at + take] == b[skip..skip + take],
                            "data differs in [{here}, {})",
                            here + take as u64
                        );
                        at += take;
                    }
                    upcoming => {
                        let end = upcoming.map_or(n, |(o, _)| ((o - pos) as usize).min(n));
                        assert!(
                            all_zero(&buf[at..end]),
                            "a non-zero byte in the zero run [{here}, {})",
                            pos + end as u64
                        );
                        at = end;
                    }
                }
            }
            pos += n as u64;
        }
    }
}

/// Whether every byte is zero (compared with a zero block: `memcmp`, fast in unoptimized
/// builds and under emulation, where the check reads gigabytes).
fn all_zero(bytes: &[u8]) -> bool {
    bytes.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

/// A block of zeros.
static ZEROS: [u8; 1 << 16] = [0; 1 << 16];

/// Feeds `n` zero bytes to `hasher`.
fn hash_zeros(hasher: &mut Sha256, mut n: u64) {
    while n > 0 {
        let take = n.min(ZEROS.len() as u64) as usize;
        hasher.update(&ZEROS[..take]);
        n -= take as u64;
    }
}

/// A SHA-256 state that has seen `len` zero bytes.
#[derive(Clone)]
struct ZeroDigest {
    hasher: Sha256,
    len: u64,
}

impl ZeroDigest {
    fn into_parts(self) -> (Sha256, u64) {
        (self.hasher, self.len)
    }
}

/// Digests of zero runs of each length in `lengths` (ascending), from one pass over the longest.
fn zero_digests(lengths: &[u64]) -> Vec<ZeroDigest> {
    let mut hasher = Sha256::new();
    let mut len = 0;
    let mut out = Vec::new();
    for &want in lengths {
        assert!(want >= len, "ascending lengths");
        hash_zeros(&mut hasher, want - len);
        len = want;
        out.push(ZeroDigest {
            hasher: hasher.clone(),
            len,
        });
    }
    out
}

/// The finished digest of a zero run.
fn zero_item(zeros: &ZeroDigest) -> It {
    It {
        len: zeros.len,
        hash: zeros.hasher.clone().finalize().into(),
    }
}

/// One zstd frame of `parts` (level 1, streamed: no part needs to be one buffer), optionally
/// against a raw prefix.
fn zstd_frame(parts: &[&[u8]], prefix: Option<&[u8]>) -> Vec<u8> {
    let mut cctx = zstd_safe::CCtx::create();
    cctx.set_parameter(zstd_safe::CParameter::CompressionLevel(1))
        .unwrap();
    if let Some(prefix) = prefix {
        cctx.ref_prefix(prefix).unwrap();
    }
    let mut frame = Vec::new();
    let mut out = vec![0u8; zstd_safe::CCtx::out_size()];
    let mut step = |input: &[u8], end: bool| {
        let mut input = zstd_safe::InBuffer::around(input);
        loop {
            let mut output = zstd_safe::OutBuffer::around(&mut out[..]);
            let directive = if end {
                zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_end
            } else {
                zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_continue
            };
            let left = cctx
                .compress_stream2(&mut output, &mut input, directive)
                .unwrap();
            let n = output.pos();
            frame.extend_from_slice(&out[..n]);
            let done = if end {
                left == 0
            } else {
                input.pos() == input.src.len()
            };
            if done {
                return;
            }
        }
    };
    for part in parts {
        step(part, false);
    }
    step(&[], true);
    frame
}

/// Peak of the process's mapped address space (the sum of `/proc/self/maps`, which qemu-user
/// reports for the emulated process) while it runs, sampled by a thread every 20 ms.
struct AddressSpaceSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, String)>,
}

/// Bytes mapped by this process now, and its largest mapping (for the report).
fn mapped_now() -> (u64, u64, String) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut total = 0;
    let mut largest = (0, String::new());
    for line in maps.lines() {
        let Some((from, to)) = line.split(' ').next().and_then(|r| r.split_once('-')) else {
            continue;
        };
        let (Ok(from), Ok(to)) = (u64::from_str_radix(from, 16), u64::from_str_radix(to, 16))
        else {
            continue;
        };
        total += to - from;
        if to - from > largest.0 {
            largest = (to - from, line.to_string());
        }
    }
    (total, largest.0, largest.1)
}

impl AddressSpaceSampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak = (0u64, String::new());
            loop {
                let (total, largest, line) = mapped_now();
                if total > peak.0 {
                    peak = (
                        total,
                        format!("largest mapping {} MiB: {line}", largest >> 20),
                    );
                }
                if flag.load(Ordering::Acquire) {
                    return peak;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        AddressSpaceSampler { stop, thread }
    }

    /// Peak bytes mapped, and a description of the largest mapping at the peak.
    fn finish(self) -> (u64, String) {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap()
    }
}

/// `VmPeak` of this process in bytes (kernel-tracked, exact), unless emulated: under qemu-user
/// `/proc/self/status` describes qemu itself, not the emulated program.
fn vm_peak() -> Option<u64> {
    if emulated() {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmPeak:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Whether the test runs under emulation (`scripts/arm-ci.sh` runs it with qemu-user and says
/// so in this variable).
fn emulated() -> bool {
    std::env::var_os("ADUDIFFAPI_TEST_RUNNER").is_some()
}

/// SHA-256 of the source image of [`delta_between_images_over_2_gib_applies_in_bounded_address_space`].
const SOURCE_SHA256: &str = "dcd370332d0c4733ef1c3a0470ea5647d767bd28f6995bd855b2dca04f1c3153";
/// SHA-256 of its target image.
const TARGET_SHA256: &str = "92806498a4766f71448fccd179eace36e93d719f47b8f65948bfb73311aaebc5";

/// The SHA-256 of `image` (whose leading zeros `zeros` has hashed). Computed on every native
/// run, which checks it against `known` (the constant named `name`); an emulated run takes
/// `known` instead: software SHA-256 under qemu-user runs at about 80 MB/s, and the two images
/// would take it a minute. The applier still hashes both (source check, target verification),
/// and the test compares the target with the image byte by byte.
fn image_digest(image: &Image, zeros: &ZeroDigest, known: &str, name: &str) -> [u8; 32] {
    if emulated() {
        let mut digest = [0u8; 32];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&known[2 * i..2 * i + 2], 16).unwrap();
        }
        return digest;
    }
    let digest = image.sha256(zeros);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, known, "the image changed: update {name}");
    digest
}

/// A directory on a real file system for the images (the target directory's, normally on the
/// build disk: the target is written in full, 2 GiB), with enough free space.
fn work_dir(needed: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let free = adudiffapi::io::scratch::available_space(dir.path()).unwrap_or(u64::MAX);
    assert!(
        free >= needed,
        "{}: {free} bytes free, the large-image test needs {needed}",
        dir.path().display()
    );
    dir
}

/// A 2.06 GiB source and a 2.03 GiB target that differ in a few MiB, the delta between
/// them applied through the C functions: byte-exact, and the address space of the process
/// (sampled) stays below [`PEAK_LIMIT_32`] on 32-bit targets.
#[test]
fn delta_between_images_over_2_gib_applies_in_bounded_address_space() {
    let started = Instant::now();
    // Source: 2 GiB + 64 MiB, data at 600 MiB, across 2^31, and beyond 2 GiB.
    let e1 = (2046 * MIB, random_bytes(1, 4 * MIB)); // crosses 2^31 = 2048 MiB
    let e2 = (2080 * MIB, random_bytes(2, 4 * MIB));
    let e3 = (2100 * MIB, random_bytes(3, MIB / 4));
    let e4 = (600 * MIB, random_bytes(4, 4 * MIB));
    let e5 = (2111 * MIB, random_bytes(5, MIB)); // the last MiB: the file ends in data
    let source = Image {
        len: 2112 * MIB,
        extents: vec![e4.clone(), e1.clone(), e2.clone(), e3.clone(), e5],
    };
    assert!(source.len > 2 << 30);

    // Target parts: zero runs of GAP bytes between changed and moved pieces, and one long
    // zstd-compressed run (BIG bytes: zeros, then 1 MiB of new data).
    const GAP: u64 = 420 * MIB;
    const BIG: u64 = 384 * MIB;
    let mut p4 = e1.1.clone(); // e1 patched: every 4 KiB a byte changes, 64 KiB replaced
    for at in (0..p4.len()).step_by(4096) {
        p4[at] = p4[at].wrapping_add(1);
    }
    p4[MIB as usize..(MIB + 64 * 1024) as usize].copy_from_slice(&random_bytes(6, 64 * 1024));
    let mut p6 = e3.1.clone(); // e3 patched: a run in the middle and the tail change
    p6[1000..3000].fill(0x5a);
    let p6_len = p6.len();
    p6[p6_len - 100..].copy_from_slice(&random_bytes(7, 100));
    let p8 = random_bytes(8, MIB); // new bytes, from the inline assets
    let big_tail = random_bytes(9, MIB); // the end of the long zstd run

    // Digests of zero runs: the gaps, the long run's zeros and the source's leading zeros.
    let big_zeros = BIG - big_tail.len() as u64;
    let digests = zero_digests(&[big_zeros, GAP, e4.0]);
    let (run_zeros, gap_zeros, source_zeros) = (&digests[0], &digests[1], &digests[2]);

    // The delta's pieces.
    let frame4 = zstd_frame(&[&p4], Some(&e1.1));
    let mut patch6 = Vec::new();
    qbsdiff::Bsdiff::new(&e3.1, &p6)
        .compare(std::io::Cursor::new(&mut patch6))
        .unwrap();
    let zero_chunk = vec![0u8; 16 * MIB as usize];
    let mut big_parts: Vec<&[u8]> = vec![&zero_chunk; (big_zeros / (16 * MIB)) as usize];
    big_parts.push(&zero_chunk[..(big_zeros % (16 * MIB)) as usize]);
    big_parts.push(&big_tail);
    let frame9 = zstd_frame(&big_parts, None);
    let inline = [&frame4[..], &patch6, &p8, &frame9].concat();
    let blob = |offset: usize, bytes: &[u8]| (item(bytes), slice(item(&inline), offset as u64));
    let (frame4_item, frame4_recipe) = blob(0, &frame4);
    let (patch6_item, patch6_recipe) = blob(frame4.len(), &patch6);
    let (p8_item, p8_recipe) = blob(frame4.len() + patch6.len(), &p8);
    let (frame9_item, frame9_recipe) = blob(frame4.len() + patch6.len() + p8.len(), &frame9);
    let big_item = {
        let mut h = run_zeros.hasher.clone();
        h.update(&big_tail);
        It {
            len: BIG,
            hash: h.finalize().into(),
        }
    };
    let gap = zero_item(gap_zeros);
    let (p4_item, p6_item) = (item(&p4), item(&p6));
    let parts: Vec<(It, Option<Vec<u8>>)> = vec![
        (gap, None),
        (item(&e2.1), Some(e2.1.clone())),
        (gap, None),
        (p4_item, Some(p4.clone())),
        (gap, None),
        (p6_item, Some(p6.clone())),
        (gap, None),
        (p8_item, Some(p8.clone())),
        (big_item, None),
        (item(&e4.1), Some(e4.1.clone())),
    ];
    // The target as an image: where each part lands.
    let mut target = Image {
        len: 0,
        extents: Vec::new(),
    };
    for (it, bytes) in &parts {
        if let Some(bytes) = bytes {
            target.extents.push((target.len, bytes.clone()));
        } else if it.len == BIG {
            target
                .extents
                .push((target.len + big_zeros, big_tail.clone()));
        }
        target.len += it.len;
    }
    assert!(target.len > 2 << 30);
    let hash_start = Instant::now();
    let source_item = It {
        len: source.len,
        hash: image_digest(&source, source_zeros, SOURCE_SHA256, "SOURCE_SHA256"),
    };
    let target_item = It {
        len: target.len,
        hash: image_digest(&target, gap_zeros, TARGET_SHA256, "TARGET_SHA256"),
    };
    let hashing = hash_start.elapsed();

    let src = |range: &(u64, Vec<u8>)| (item(&range.1), slice(source_item, range.0));
    let sets: Vec<(It, R)> = vec![
        (
            target_item,
            chain(&parts.iter().map(|p| p.0).collect::<Vec<_>>()),
        ),
        (gap, zeros()),
        src(&e2),
        src(&e4),
        src(&e1),
        src(&e3),
        (p4_item, zstd(frame4_item, Some(item(&e1.1)))),
        (p6_item, bspatch(patch6_item, item(&e3.1))),
        (big_item, zstd(frame9_item, None)),
        (frame4_item, frame4_recipe),
        (patch6_item, patch6_recipe),
        (p8_item, p8_recipe),
        (frame9_item, frame9_recipe),
    ];
    let mut delta = Std::new(target_item).inline(&inline);
    delta.source = source_item;
    for (result, recipe) in sets {
        delta = delta.with(result, recipe);
    }

    let dir = work_dir(target.len + BIG + 256 * MIB);
    let (source_path, delta_path, target_path) = (
        dir.path().join("source.img"),
        dir.path().join("delta"),
        dir.path().join("target.img"),
    );
    source.write_sparse(&source_path);
    std::fs::write(&delta_path, delta.bytes()).unwrap();
    let allocated = std::fs::metadata(&source_path).unwrap().blocks() * 512;
    let prepared = started.elapsed();

    let apply_start = Instant::now();
    let sampler = AddressSpaceSampler::start();
    let outcome = apply_c(&source_path, &delta_path, &target_path);
    let (peak, largest) = sampler.finish();
    let applied = apply_start.elapsed();
    assert_eq!(outcome, Ok(()), "the apply fails");

    let verify_start = Instant::now();
    target.verify(&target_path);
    let verified = verify_start.elapsed();
    let vm_peak = vm_peak();
    println!(
        "large images: source {} bytes ({} allocated), target {} bytes, delta {} bytes; \
         prepare {:.1}s (hashing {:.1}s), apply {:.1}s, verify {:.1}s; peak mapped address \
         space during the apply {} MiB ({largest}); VmPeak {}",
        source.len,
        allocated,
        target.len,
        std::fs::metadata(&delta_path).unwrap().len(),
        prepared.as_secs_f64(),
        hashing.as_secs_f64(),
        applied.as_secs_f64(),
        verified.as_secs_f64(),
        peak >> 20,
        vm_peak.map_or("not measured (emulated)".into(), |b| format!(
            "{} MiB",
            b >> 20
        )),
    );
    let limit = if cfg!(target_pointer_width = "32") {
        PEAK_LIMIT_32
    } else {
        PEAK_LIMIT_64
    };
    assert!(peak > 0, "/proc/self/maps was read");
    assert!(
        peak < limit,
        "peak address space {} MiB, limit {} MiB",
        peak >> 20,
        limit >> 20
    );
    if let Some(vm_peak) = vm_peak {
        assert!(vm_peak < limit, "VmPeak {} MiB", vm_peak >> 20);
    }
}

/// Offsets beyond 4 GiB, where a 32-bit `usize` would wrap, travel through the parser, the
/// planner and the executor intact: a 5 GiB sparse source, and a target made of a slice at
/// 4.5 GiB + 7, a zstd frame against a prefix that crosses 2^32 (copied into scratch space
/// and mapped as a window) and the source's last MiB. Run through the library's executor, not
/// the C functions: those would hash the whole 5 GiB source first (a minute under emulation),
/// which the first test already covers.
#[test]
fn offsets_beyond_4_gib_reach_the_right_bytes() {
    use adudiffapi::execute::{view::View, Executor};
    use adudiffapi::format::Item;
    use adudiffapi::io::{FileRange, Scratch, SharedBytes};

    let len = 5u64 << 30;
    let a = ((9 << 29) + 7, random_bytes(11, MIB)); // 4.5 GiB + 7
    let b = ((4 << 30) - MIB - 3, random_bytes(12, 2 * MIB)); // crosses 2^32
    let c = (len - MIB, random_bytes(13, MIB));
    let source = Image {
        len,
        extents: vec![b.clone(), a.clone(), c.clone()],
    };
    let mut patched = b.1.clone();
    for at in (0..patched.len()).step_by(1000) {
        patched[at] ^= 0xff;
    }
    let frame = zstd_frame(&[&patched], Some(&b.1));
    let expected = [&a.1[..], &patched, &c.1].concat();

    // The source's identity is made up: the executor reads the file, nothing hashes it.
    let source_item = common::fake(len, "a 5 GiB sparse source");
    let (frame_item, patched_item) = (item(&frame), item(&patched));
    let delta = Std {
        source: source_item,
        ..Std::new(item(&expected))
    }
    .inline(&frame)
    .with(
        item(&expected),
        chain(&[item(&a.1), patched_item, item(&c.1)]),
    )
    .with(item(&a.1), slice(source_item, a.0))
    .with(item(&b.1), slice(source_item, b.0))
    .with(item(&c.1), slice(source_item, c.0))
    .with(patched_item, zstd(frame_item, Some(item(&b.1))));

    let dir = work_dir(64 * MIB);
    let path = dir.path().join("source.img");
    source.write_sparse(&path);
    let parsed = adudiffapi::format::parse_delta(SharedBytes::from_vec(delta.bytes())).unwrap();
    assert_eq!(parsed.source.length, len);
    let plan = adudiffapi::plan::plan(&parsed, &Item::with_sha256(len, source_item.hash)).unwrap();
    let view = View::file(FileRange::open(&path).unwrap());
    let mut stream = Executor::new(&plan, &parsed, view, Scratch::in_dir(dir.path()))
        .stream(plan.root)
        .unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    assert!(got == expected, "the target differs");
}
