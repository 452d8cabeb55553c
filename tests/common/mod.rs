//! Helpers shared by the reliability tests (`hostile.rs`, `faults.rs`, `crash.rs`): a test-only
//! builder for standard-v2 and legacy-v0 deltas, applying through the exported C functions, and
//! running one apply in a child process under resource limits.
//!
//! Child processes re-execute the current test binary with `--exact child_process_entry`; the
//! binary's `child_process_entry` test calls [`child_main`], which does nothing unless the
//! `ADUDIFF_CHILD` environment variable is set.

#![allow(dead_code)]

use std::ffi::{CStr, CString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use adudiffapi::ffi::*;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Standard v2 builder (docs/FORMAT.md §3)
// ---------------------------------------------------------------------------------------------

/// Hash algorithm id of SHA-256.
pub const SHA256_ID: u32 = 0x800C;

/// Standard recipe type ids (docs/FORMAT.md §3.1).
pub mod ty {
    pub const ALL_ZEROS: u32 = 0;
    pub const CHAIN: u32 = 1;
    pub const SLICE: u32 = 2;
    pub const BSPATCH: u32 = 3;
    pub const ZLIB_COMPRESSION: u32 = 4;
    pub const ZLIB_DECOMPRESSION: u32 = 5;
    pub const ZSTD_COMPRESSION: u32 = 6;
    pub const ZSTD_DECOMPRESSION: u32 = 7;
}

/// The eight names of the type table, in id order.
pub const TYPE_NAMES: [&str; 8] = [
    "all_zeros",
    "chain",
    "slice",
    "bspatch_decompression",
    "zlib_compression",
    "zlib_decompression",
    "zstd_compression",
    "zstd_decompression",
];

/// An item: length and SHA-256 (any 32 bytes; hostile deltas use made-up hashes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct It {
    pub len: u64,
    pub hash: [u8; 32],
}

/// SHA-256 of bytes.
pub fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The real identity of `bytes`.
pub fn item_of(bytes: &[u8]) -> It {
    It {
        len: bytes.len() as u64,
        hash: sha(bytes),
    }
}

/// An item of length `len` with a made-up hash derived from `tag`.
pub fn fake(len: u64, tag: &str) -> It {
    It {
        len,
        hash: sha(tag.as_bytes()),
    }
}

/// The zero-length item.
pub fn empty() -> It {
    It {
        len: 0,
        hash: [0; 32],
    }
}

/// One recipe of a set.
#[derive(Clone, Debug)]
pub struct R {
    pub kind: u32,
    pub numbers: Vec<u64>,
    pub items: Vec<It>,
}

/// Shorthand constructors for recipes.
pub fn chain(items: &[It]) -> R {
    R {
        kind: ty::CHAIN,
        numbers: vec![],
        items: items.to_vec(),
    }
}
pub fn slice(whole: It, offset: u64) -> R {
    R {
        kind: ty::SLICE,
        numbers: vec![offset],
        items: vec![whole],
    }
}
pub fn zeros() -> R {
    R {
        kind: ty::ALL_ZEROS,
        numbers: vec![],
        items: vec![],
    }
}
pub fn inflate(init: u64, input: It) -> R {
    R {
        kind: ty::ZLIB_DECOMPRESSION,
        numbers: vec![init],
        items: vec![input],
    }
}
pub fn bspatch(patch: It, old: It) -> R {
    R {
        kind: ty::BSPATCH,
        numbers: vec![],
        items: vec![patch, old],
    }
}
pub fn zstd(frame: It, prefix: Option<It>) -> R {
    R {
        kind: ty::ZSTD_DECOMPRESSION,
        numbers: vec![],
        items: std::iter::once(frame).chain(prefix).collect(),
    }
}

/// Big-endian byte writer.
#[derive(Default, Clone)]
pub struct W(pub Vec<u8>);

impl W {
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A standard item: length, then (if non-zero) SHA-256 id and digest.
    pub fn item(&mut self, it: &It) -> &mut Self {
        self.u64(it.len);
        if it.len != 0 {
            self.u32(SHA256_ID).raw(&it.hash);
        }
        self
    }
    pub fn header(&mut self, version: u64, target: &It, source: &It) -> &mut Self {
        self.raw(b"PAMZ").u64(version).item(target).item(source)
    }
    pub fn type_table(&mut self) -> &mut Self {
        self.u32(TYPE_NAMES.len() as u32);
        for name in TYPE_NAMES {
            self.u64(name.len() as u64).raw(name.as_bytes());
        }
        self
    }
    pub fn recipe(&mut self, r: &R) -> &mut Self {
        self.u32(r.kind).u64(r.numbers.len() as u64);
        for n in &r.numbers {
            self.u64(*n);
        }
        self.u64(r.items.len() as u64);
        for it in &r.items {
            self.item(it);
        }
        self
    }
    /// A blob section: its item, then the bytes.
    pub fn blob(&mut self, bytes: &[u8]) -> &mut Self {
        if bytes.is_empty() {
            return self.item(&empty());
        }
        self.item(&item_of(bytes)).raw(bytes)
    }
}

/// A whole standard delta.
#[derive(Clone, Debug)]
pub struct Std {
    pub version: u64,
    pub target: It,
    pub source: It,
    pub sets: Vec<(It, Vec<R>)>,
    pub inline: Vec<u8>,
    pub remainder: Vec<u8>,
    pub nested: Vec<Vec<u8>>,
}

impl Std {
    /// A delta producing `target` (the source identity is left empty = "none recorded").
    pub fn new(target: It) -> Self {
        Std {
            version: 2,
            target,
            source: empty(),
            sets: Vec::new(),
            inline: Vec::new(),
            remainder: Vec::new(),
            nested: Vec::new(),
        }
    }
    /// Adds a one-recipe set.
    pub fn with(mut self, result: It, recipe: R) -> Self {
        self.sets.push((result, vec![recipe]));
        self
    }
    pub fn inline(mut self, bytes: &[u8]) -> Self {
        self.inline = bytes.to_vec();
        self
    }
    pub fn nest(mut self, delta: Vec<u8>) -> Self {
        self.nested.push(delta);
        self
    }
    /// Serializes the delta.
    pub fn bytes(&self) -> Vec<u8> {
        let mut w = W::default();
        w.header(self.version, &self.target, &self.source)
            .type_table()
            .u64(self.sets.len() as u64);
        for (result, recipes) in &self.sets {
            w.u64(recipes.len() as u64).item(result);
            for r in recipes {
                w.recipe(r);
            }
        }
        w.blob(&self.inline).blob(&self.remainder);
        w.u32(self.nested.len() as u32);
        for n in &self.nested {
            w.blob(n);
        }
        w.0
    }
}

// ---------------------------------------------------------------------------------------------
// Legacy v0 builder (docs/FORMAT.md §4), big-endian
// ---------------------------------------------------------------------------------------------

/// Legacy recipe type ids used by the tests.
pub mod legacy_ty {
    pub const CONCATENATION: u8 = 2;
    pub const ALL_ZERO: u8 = 12;
}

/// A legacy delta whose single chunk is `levels` recipes nested inside one another
/// (concatenations around an `all_zero`), producing `len` zero bytes.
pub fn legacy_nested_zeros(levels: u32, len: u64) -> Vec<u8> {
    let target = vec![0u8; len as usize];
    let t = item_of(&target);
    let mut w = W::default();
    w.raw(b"PAMZ").u64(0);
    w.u64(t.len).u32(SHA256_ID).raw(&t.hash); // target (hash always present)
    w.u64(0); // no source
    w.u64(1); // one chunk: the target itself
    w.u64(t.len).u32(SHA256_ID).raw(&t.hash);
    for level in 1..levels {
        // concatenation with one archive-item parameter that has its own recipe
        w.raw(&[legacy_ty::CONCATENATION, 1, 0, 0]);
        let inner = fake(len, &format!("legacy level {level}"));
        w.u64(inner.len).u32(SHA256_ID).raw(&inner.hash).raw(&[1]);
    }
    w.raw(&[legacy_ty::ALL_ZERO, 0]);
    w.u64(0); // inline assets size
    w.u64(0).u64(2).raw(&[3, 0]); // remainder: uncompressed 0, compressed "03 00"
    w.0
}

// ---------------------------------------------------------------------------------------------
// Applying through the C functions
// ---------------------------------------------------------------------------------------------

/// Directory of the golden vectors.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// A path as a C string.
pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Outcome of one apply: `Ok(())` or the errors (code, text) the session recorded.
pub type Outcome = Result<(), Vec<(u32, String)>>;

/// Applies on `session` through the C functions and collects the recorded errors.
pub fn apply_on(session: adu_apply_handle, source: &Path, delta: &Path, target: &Path) -> Outcome {
    let (s, d, t) = (cpath(source), cpath(delta), cpath(target));
    // SAFETY: each path is NULL or a NUL-terminated string alive during the call.
    let rc = unsafe { adu_diff_apply(session, s.as_ptr(), d.as_ptr(), t.as_ptr()) };
    let count = adu_diff_apply_get_error_count(session);
    assert_eq!(rc as u32, count, "return value is the error count");
    let mut errors = Vec::new();
    for i in 0..count {
        let code = adu_diff_apply_get_error_code(session, i);
        let text = adu_diff_apply_get_error_text(session, i);
        assert!(!text.is_null());
        // SAFETY: non-null text returned by the library, valid until the next call.
        let text = unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned();
        errors.push((code, text));
    }
    if rc == 0 {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Applies with a fresh session.
pub fn apply_c(source: &Path, delta: &Path, target: &Path) -> Outcome {
    let session = adu_diff_apply_create_session();
    assert!(!session.is_null());
    let outcome = apply_on(session, source, delta, target);
    adu_diff_apply_close_session(session);
    outcome
}

/// The first error code of an outcome (0 on success).
pub fn code_of(outcome: &Outcome) -> u32 {
    match outcome {
        Ok(()) => 0,
        Err(errors) => errors.first().map_or(u32::MAX, |e| e.0),
    }
}

/// Names of `.adudiff-*` temporary files in `dir`.
pub fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".adudiff-"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// Limits and inputs of one apply in a child process.
#[derive(Clone, Debug)]
pub struct ChildApply {
    pub source: PathBuf,
    pub delta: PathBuf,
    pub target: PathBuf,
    /// `RLIMIT_AS` in bytes (0 = unlimited).
    pub address_space: u64,
    /// `RLIMIT_FSIZE` in bytes (0 = unlimited); SIGXFSZ is ignored so writes fail with EFBIG.
    pub file_size: u64,
    /// Run as user `nobody` (for permission tests, the tests run as root).
    pub as_nobody: bool,
    /// Applies to run in a row in the child (the last result is reported).
    pub repeat: u32,
    /// Wall-clock limit; the child is killed after it.
    pub timeout: Duration,
}

impl ChildApply {
    pub fn new(source: &Path, delta: &Path, target: &Path) -> Self {
        ChildApply {
            source: source.into(),
            delta: delta.into(),
            target: target.into(),
            address_space: 0,
            file_size: 0,
            as_nobody: false,
            repeat: 1,
            timeout: Duration::from_secs(30),
        }
    }
}

/// What a child reported.
#[derive(Clone, Debug)]
pub struct ChildResult {
    /// First error code (0 = success); `None` if the child died or timed out.
    pub code: Option<u32>,
    /// First error text.
    pub text: String,
    /// Peak virtual memory (VmPeak) and peak RSS (VmHWM) of the child, KiB.
    pub vm_peak_kib: u64,
    pub rss_peak_kib: u64,
    /// How the child ended when it did not report (signal, timeout).
    pub abnormal: Option<String>,
    pub elapsed: Duration,
    /// Child stderr (diagnostics).
    pub stderr: String,
}

fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Body of each binary's `child_process_entry` test: in a child, apply and report, then exit.
pub fn child_main() {
    let Ok(mode) = std::env::var("ADUDIFF_CHILD") else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let num = |name: &str| var(name).parse::<u64>().unwrap_or(0);
    // rlim_t: u64 on 64-bit targets, u32 on armv7.
    let limit = |name: &str| var(name).parse::<libc::rlim_t>().unwrap_or(0);
    // SAFETY: plain libc calls on this process's own limits and signal disposition.
    unsafe {
        if limit("ADUDIFF_FSIZE") != 0 {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: limit("ADUDIFF_FSIZE"),
                rlim_max: limit("ADUDIFF_FSIZE"),
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
        }
        if var("ADUDIFF_NOBODY") == "1" {
            let nobody = 65534;
            assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
            assert_eq!(libc::setgid(nobody), 0);
            assert_eq!(libc::setuid(nobody), 0);
        }
        if limit("ADUDIFF_AS") != 0 {
            let lim = libc::rlimit {
                rlim_cur: limit("ADUDIFF_AS"),
                rlim_max: limit("ADUDIFF_AS"),
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &lim), 0);
        }
    }
    let (source, delta, target) = (
        PathBuf::from(var("ADUDIFF_SOURCE")),
        PathBuf::from(var("ADUDIFF_DELTA")),
        PathBuf::from(var("ADUDIFF_TARGET")),
    );
    let repeat = num("ADUDIFF_REPEAT").max(1);
    let mut outcome = Ok(());
    for _ in 0..repeat {
        outcome = match mode.as_str() {
            "apply" => apply_c(&source, &delta, &target),
            other => panic!("unknown child mode {other}"),
        };
    }
    let (code, text) = match &outcome {
        Ok(()) => (0, String::new()),
        Err(errors) => (errors[0].0, errors[0].1.clone()),
    };
    println!(
        "\nADUDIFF-RESULT {code} {} {} {}",
        proc_status_kib("VmPeak:"),
        proc_status_kib("VmHWM:"),
        text.replace('\n', "\\n")
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Leave at once: no test-harness summary, no destructors.
    std::process::exit(0);
}

/// Runs `job` in a child process (the current test binary) and reports its result.
pub fn run_child(job: &ChildApply) -> ChildResult {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env("ADUDIFF_CHILD", "apply")
        .env("ADUDIFF_SOURCE", &job.source)
        .env("ADUDIFF_DELTA", &job.delta)
        .env("ADUDIFF_TARGET", &job.target)
        .env("ADUDIFF_AS", job.address_space.to_string())
        .env("ADUDIFF_FSIZE", job.file_size.to_string())
        .env("ADUDIFF_NOBODY", if job.as_nobody { "1" } else { "0" })
        .env("ADUDIFF_REPEAT", job.repeat.to_string())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let start = Instant::now();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut abnormal = None;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > job.timeout {
            let _ = child.kill();
            let _ = child.wait();
            abnormal = Some(format!("timeout after {:?}", job.timeout));
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let stdout = out_thread.join().unwrap();
    let stderr = err_thread.join().unwrap();
    let mut result = ChildResult {
        code: None,
        text: String::new(),
        vm_peak_kib: 0,
        rss_peak_kib: 0,
        abnormal,
        elapsed,
        stderr,
    };
    if let Some(line) = stdout.lines().find(|l| l.starts_with("ADUDIFF-RESULT ")) {
        let mut parts = line.splitn(5, ' ').skip(1);
        result.code = parts.next().and_then(|v| v.parse().ok());
        result.vm_peak_kib = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        result.rss_peak_kib = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        result.text = parts.next().unwrap_or("").replace("\\n", "\n");
    } else if result.abnormal.is_none() {
        use std::os::unix::process::ExitStatusExt;
        let status = status.unwrap();
        result.abnormal = Some(match status.signal() {
            Some(sig) => format!("killed by signal {sig}"),
            None => format!("exited with {status} without a result"),
        });
    }
    result
}
