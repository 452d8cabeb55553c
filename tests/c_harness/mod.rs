//! Shared helpers of `tests/c_abi.rs` and `tests/packaging.rs`: locating the cdylib cargo built
//! for this test run, finding tools, compiling and running `examples/agent_harness.c`, and reading
//! the golden vectors' `case.json`.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A run of the harness that takes longer than this is a hang (the library must never hang).
pub const HARNESS_TIMEOUT: Duration = Duration::from_secs(120);

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>` (or `target/<triple>/<profile>`): the test executable lives in its `deps/`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// The directory of the cdylib cargo built for this test run. Integration tests depend on the
/// library target, so `cargo test` compiles every crate type of it, including the cdylib — into
/// `target/<profile>/deps/`; it is copied up to `target/<profile>/` only by `cargo build`, so
/// that copy may be missing or stale.
///
/// `ADUDIFFAPI_TEST_LIB_DIR` overrides it, to run the harness tests against another build of
/// the library (the ELF checks still look at that directory's `libadudiffapi.so`).
pub fn lib_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ADUDIFFAPI_TEST_LIB_DIR") {
        return PathBuf::from(dir);
    }
    let deps = profile_dir().join("deps");
    if deps.join("libadudiffapi.so").is_file() {
        deps
    } else {
        profile_dir()
    }
}

/// The cdylib cargo built for this test run.
pub fn cdylib() -> PathBuf {
    let p = lib_dir().join("libadudiffapi.so");
    assert!(p.is_file(), "{} not built", p.display());
    p
}

/// The path of `program` (a name looked up in PATH, or a path).
pub fn which(program: impl AsRef<OsStr>) -> Option<PathBuf> {
    let program = Path::new(program.as_ref());
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

pub fn cmd(program: impl AsRef<OsStr>) -> Command {
    Command::new(program)
}

/// The emulator prefix for programs built for the target, from `ADUDIFFAPI_TEST_RUNNER`
/// (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`; split at spaces). Set by scripts/arm-ci.sh
/// when the test binaries themselves run under qemu-user: without binfmt_misc, an emulated
/// process cannot exec another foreign binary directly. None when unset or empty (native).
pub fn target_runner() -> Option<Vec<String>> {
    let v = std::env::var("ADUDIFFAPI_TEST_RUNNER").ok()?;
    let words: Vec<String> = v.split_whitespace().map(str::to_string).collect();
    (!words.is_empty()).then_some(words)
}

/// A command that runs `program`, a program built for the target (the C harness, a program
/// linked against the cdylib): through `target_runner()` when one is set.
pub fn target_cmd(program: impl AsRef<OsStr>) -> Command {
    match target_runner() {
        Some(words) => {
            let mut c = Command::new(&words[0]);
            c.args(&words[1..]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// The `adudiff` binary (package `adudiff`, crates/cli) for this test run, as a path.
///
/// The tests run it from the root package, whose test targets get no `CARGO_BIN_EXE_adudiff`
/// (that is only set for a binary of the test's own package), so it is located the way cargo
/// lays it out: `<profile dir>/adudiff`, next to this test's `deps/`. Natively it is built (or
/// found up to date) once per test process with `cargo build -p adudiff -p adudiffapi --bin
/// adudiff` in the same target directory, profile and target triple, so a narrow
/// `cargo test --test NAME` never runs a stale or missing binary. Under an emulator (`ADUDIFFAPI_TEST_RUNNER`, set by
/// scripts/arm-ci.sh, whose build step builds the binary for the target) nothing is built here.
/// `ADUDIFF_TEST_BIN` overrides the path (e.g. an installed adudiff).
pub fn adudiff_exe() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        if let Some(p) = std::env::var_os("ADUDIFF_TEST_BIN") {
            return PathBuf::from(p);
        }
        let profile = profile_dir();
        let exe = profile.join("adudiff");
        if target_runner().is_none() {
            build_adudiff(&profile);
        }
        assert!(
            exe.is_file(),
            "{} not built (cargo build -p adudiff --bin adudiff, with the test run's --target \
             and profile)",
            exe.display()
        );
        exe
    })
    .clone()
}

/// `cargo build -p adudiff -p adudiffapi --bin adudiff` into `profile`
/// (`<target dir>/[<triple>/]<profile>`).
fn build_adudiff(profile: &Path) {
    let parent = profile.parent().expect("target dir");
    let name = profile.file_name().unwrap().to_string_lossy().into_owned();
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // `-p adudiffapi` too: its build-dependencies (cbindgen) enable features of shared
    // dependencies (syn's `full`), and with them in the graph the features resolve as in
    // `cargo test`, so the dependencies `cargo test` has compiled are reused; `-p adudiff`
    // alone would recompile them and everything above them, adudiff-core included (minutes).
    c.args([
        "build",
        "--quiet",
        "-p",
        "adudiff",
        "-p",
        "adudiffapi",
        "--bin",
        "adudiff",
    ])
    .current_dir(manifest_dir());
    // Cargo marks the target directory's root with CACHEDIR.TAG; `<root>/<triple>/<profile>`
    // is a --target build.
    if parent.join("CACHEDIR.TAG").is_file() {
        c.env("CARGO_TARGET_DIR", parent);
    } else {
        let triple = parent.file_name().unwrap().to_string_lossy().into_owned();
        c.env("CARGO_TARGET_DIR", parent.parent().expect("target dir"))
            .args(["--target", &triple]);
    }
    match name.as_str() {
        "debug" => {}
        "release" => {
            c.arg("--release");
        }
        other => {
            c.args(["--profile", other]);
        }
    }
    run_ok(&mut c);
}

/// Runs `c` and panics with its output unless it exits with status 0.
pub fn run_ok(c: &mut Command) -> Output {
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"));
    assert!(
        o.status.success(),
        "{c:?} failed: {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `git <args>` in the crate directory; None when git is missing or fails.
pub fn git(args: &[&str]) -> Option<String> {
    let o = Command::new(which("git")?)
        .args(args)
        .current_dir(manifest_dir())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The C compiler: `$CC`, else `cc`. None (after printing why) when there is none.
pub fn c_compiler() -> Option<OsString> {
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    if which(&cc).is_none() {
        eprintln!(
            "skipping: no C compiler ({} not found; set CC)",
            cc.to_string_lossy()
        );
        return None;
    }
    Some(cc)
}

/// Compiles `examples/<name>.c` into `target/<profile>/c-abi/<name>` once per test process.
fn compile_example(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let cc = c_compiler()?;
    let dir = profile_dir().join("c-abi");
    fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    // Unique temporary name, then rename: test binaries may compile concurrently.
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let src = manifest_dir().join("examples").join(format!("{name}.c"));
    run_ok(
        cmd(&cc)
            .args([
                "-std=c99",
                "-Wall",
                "-Wextra",
                "-pedantic",
                "-Werror",
                "-g",
                "-O1",
            ])
            .arg("-I")
            .arg(manifest_dir().join("include"))
            .arg(&src)
            .arg("-o")
            .arg(&tmp)
            .args(extra),
    );
    fs::rename(&tmp, &out).unwrap();
    Some(out)
}

pub struct Harness {
    pub path: PathBuf,
}

/// `examples/agent_harness.c`, compiled (None, after printing why, without a C compiler).
pub fn harness() -> Option<&'static Harness> {
    static HARNESS: OnceLock<Option<Harness>> = OnceLock::new();
    HARNESS
        .get_or_init(|| compile_example("agent_harness", &["-ldl"]).map(|path| Harness { path }))
        .as_ref()
}

impl Harness {
    /// Runs the harness with `LD_LIBRARY_PATH` = the cargo-built library's directory.
    pub fn run(&self, args: &[&OsStr]) -> HarnessRun {
        self.run_with_lib_dir(&lib_dir(), args)
    }

    /// Runs the harness so that `dlopen("libadudiffapi.so")` finds the copy in `dir`.
    pub fn run_with_lib_dir(&self, dir: &Path, args: &[&OsStr]) -> HarnessRun {
        let mut c = target_cmd(&self.path);
        c.args(args).env("LD_LIBRARY_PATH", dir);
        run_with_timeout(&mut c, HARNESS_TIMEOUT)
    }

    /// Runs the harness natively in a child process as the agent would (with `args`, the
    /// library from `lib_dir`, the extra environment `env`), under an address-space limit
    /// (`RLIMIT_AS`, bytes) set in the child before exec when given, killed after `timeout`;
    /// asserts that no signal ended it.
    pub fn run_limited(
        &self,
        args: &[&OsStr],
        lib_dir: &Path,
        env: &[(&str, &str)],
        rlimit_as: Option<u64>,
        timeout: Duration,
    ) -> HarnessRun {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let mut c = Command::new(&self.path);
        c.args(args).env("LD_LIBRARY_PATH", lib_dir);
        for (k, v) in env {
            c.env(k, v);
        }
        if let Some(limit) = rlimit_as {
            // SAFETY: setrlimit is async-signal-safe; the closure runs in the child before exec.
            unsafe {
                c.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: limit as libc::rlim_t,
                        rlim_max: limit as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let run = run_with_timeout(&mut c, timeout);
        assert_eq!(
            run.status.signal(),
            None,
            "signal: {args:?} {env:?} RLIMIT_AS {rlimit_as:?}\n{run}"
        );
        run
    }
}

/// The names in `dir`, sorted (without `lost+found`): what an apply must leave as it found.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lost+found")
        .collect();
    names.sort();
    names
}

/// Runs `c`, killing it after `timeout` (then the status is a signal and stderr says so).
pub fn run_with_timeout(c: &mut Command, timeout: Duration) -> HarnessRun {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            timed_out = true;
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
    if timed_out {
        stderr.push_str(&format!("\n(killed after {timeout:?}: hang)"));
    }
    HarnessRun {
        status,
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned(),
        stderr,
    }
}

pub struct HarnessRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl HarnessRun {
    pub fn from_output(o: Output) -> Self {
        HarnessRun {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// The last `result: …` line ("" when there is none).
    pub fn result_line(&self) -> &str {
        self.stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("result: "))
            .unwrap_or("")
    }

    /// Asserts a clean apply error (no crash, `result: error <code>`, matching exit status) and
    /// returns the code.
    pub fn expect_error(&self) -> u32 {
        let code: u32 = self
            .result_line()
            .strip_prefix("result: error ")
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("expected `result: error <code>`:\n{self}"));
        assert_ne!(code, 0, "{self}");
        let want_status = match code & 0xff {
            0 => 1,
            b => b as i32,
        };
        assert_eq!(self.status.code(), Some(want_status), "exit status\n{self}");
        code
    }
}

impl fmt::Display for HarnessRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "status: {}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// True when the library applies the simplest vector (`slice_basic`) correctly. While
/// `adu_diff_apply` is a stub, the tests that need real applies only check error paths.
pub fn apply_works() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        let Some(h) = harness() else { return false };
        let dir = tempfile::tempdir().unwrap();
        let v = manifest_dir().join("tests/vectors/slice_basic");
        let target = dir.path().join("out");
        let r = h.run(&[
            v.join("source").as_os_str(),
            v.join("delta").as_os_str(),
            target.as_os_str(),
        ]);
        r.result_line() == "result: ok" && fs::read(&target).ok() == fs::read(v.join("target")).ok()
    })
}

// ---------------------------------------------------------------------------------------------
// Golden vectors (tests/vectors/<case>/case.json; see index.json `format_notes`).

pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub json: String,
}

/// What the agent must see for a vector.
#[derive(Debug)]
pub enum Expect {
    /// `result: ok`, and the target equals this file of the case directory.
    Ok(&'static str),
    /// `result: error <code>` (the last code Microsoft reports).
    Code(u32),
    /// Some non-zero error (Microsoft hangs, crashes, or succeeds with wrong output).
    AnyError,
}

impl Case {
    pub fn load(dir: &Path) -> Case {
        Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            dir: dir.to_path_buf(),
            json: fs::read_to_string(dir.join("case.json")).unwrap(),
        }
    }

    /// The raw JSON text of the value of top-level `key` (good enough for these files: scalars,
    /// strings without escaped quotes, flat arrays).
    pub fn raw(&self, key: &str) -> Option<&str> {
        let start = self.json.find(&format!("\"{key}\""))? + key.len() + 2;
        let rest = self.json[start..]
            .trim_start()
            .strip_prefix(':')?
            .trim_start();
        let end = if rest.starts_with('[') {
            rest.find(']')? + 1
        } else if let Some(s) = rest.strip_prefix('"') {
            s.find('"')? + 2
        } else {
            rest.find([',', '\n', '}']).unwrap_or(rest.len())
        };
        Some(rest[..end].trim())
    }

    pub fn string(&self, key: &str) -> Option<&str> {
        self.raw(key)?.strip_prefix('"')?.strip_suffix('"')
    }

    /// None: the case cannot run here (inputs not stored).
    pub fn expectation(&self) -> Option<Expect> {
        if !self.dir.join("source").is_file() {
            return None; // swu_large_timing: recreate with make-inputs.sh
        }
        // We read little-endian legacy v0 deltas (what 1.x wrote); Microsoft 3.0.0 cannot.
        if self.name == "legacy_v0_little_endian_1x_layout" {
            return Some(Expect::Ok("intended_target"));
        }
        // Microsoft "succeeds" with wrong bytes (never verifies the target); we must not.
        if self.string("category") == Some("probe_success_wrong_output") {
            return Some(Expect::AnyError);
        }
        let raw = self.raw("expected_result").expect("expected_result");
        if raw == "0" {
            assert!(
                self.dir.join("target").is_file(),
                "{}: no target file",
                self.name
            );
            return Some(Expect::Ok("target"));
        }
        if raw == "\"error\"" {
            return Some(Expect::AnyError);
        }
        let codes: Vec<u32> = raw
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|c| c.trim().parse().expect("error code"))
            .collect();
        Some(Expect::Code(*codes.last().expect("at least one code")))
    }
}
