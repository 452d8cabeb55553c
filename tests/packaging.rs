//! Packaging: the install script (into a temporary DESTDIR, then a separate CMake project and a
//! pkg-config compile line against it) and the three Debian packages built by `cargo deb -p`
//! (checked by scripts/check-debs.sh, lintian included, and installed with `dpkg --root` into
//! scratch roots, never into the real /usr or the machine's dpkg database).
//!
//! Both use one release build (`cargo build --release -p adudiffapi --lib`, then `-p adudiff
//! --bin adudiff`, each package on its own as the packages are built; run once per test
//! process in the same target directory as this test run). The Debian test fails when a tool CI
//! installs is missing (cargo-deb, dpkg, lintian); cmake, pkg-config and cc missing make the
//! install-script parts that need them print a reason and pass.

mod c_harness;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use c_harness::*;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `target` directory of this test run (`target/<profile>/..`).
fn target_dir() -> PathBuf {
    profile_dir().parent().unwrap().to_path_buf()
}

fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| "cargo".into(), PathBuf::from)
}

/// `target/release`, built once per test process.
fn release_dir() -> &'static Path {
    static RELEASE: OnceLock<PathBuf> = OnceLock::new();
    RELEASE.get_or_init(|| {
        run_ok(
            Command::new(cargo())
                .args([
                    "build",
                    "--release",
                    "--locked",
                    "-p",
                    "adudiffapi",
                    "--lib",
                ])
                .env("CARGO_TARGET_DIR", target_dir())
                .current_dir(manifest_dir()),
        );
        run_ok(
            Command::new(cargo())
                .args([
                    "build",
                    "--release",
                    "--locked",
                    "-p",
                    "adudiff",
                    "--bin",
                    "adudiff",
                ])
                .env("CARGO_TARGET_DIR", target_dir())
                .current_dir(manifest_dir()),
        );
        let release = target_dir().join("release");
        assert!(release.join("libadudiffapi.so").is_file());
        release
    })
}

/// Runs the harness against the library in `libdir` on one failing and (once apply works) one
/// succeeding vector.
fn harness_smoke(libdir: &Path) {
    let Some(h) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = manifest_dir().join("tests/vectors/malformed_wrong_magic");
    let r = h.run_with_lib_dir(
        libdir,
        &[
            bad.join("source").as_os_str(),
            bad.join("delta").as_os_str(),
            dir.path().join("bad.out").as_os_str(),
        ],
    );
    r.expect_error();
    assert!(
        r.stdout.contains("session closed after dlclose"),
        "dlclose-then-close did not complete:\n{r}"
    );
    if apply_works() {
        let good = manifest_dir().join("tests/vectors/slice_basic");
        let out = dir.path().join("good.out");
        let r = h.run_with_lib_dir(
            libdir,
            &[
                "--repeat".as_ref(),
                "2".as_ref(),
                good.join("source").as_os_str(),
                good.join("delta").as_os_str(),
                out.as_os_str(),
            ],
        );
        assert_eq!(r.result_line(), "result: ok", "{r}");
        assert_eq!(
            fs::read(&out).unwrap(),
            fs::read(good.join("target")).unwrap()
        );
    }
}

fn files_under(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Files whose content must follow Cargo.toml (no tools needed).

#[test]
fn versioned_files_follow_cargo_toml() {
    let cmake =
        fs::read_to_string(manifest_dir().join("cmake/adudiffapiConfigVersion.cmake")).unwrap();
    assert!(
        cmake.contains(&format!("set(PACKAGE_VERSION \"{VERSION}\")")),
        "cmake/adudiffapiConfigVersion.cmake must set PACKAGE_VERSION to {VERSION}"
    );
    let template = fs::read_to_string(manifest_dir().join("pkg/adudiffapi.pc.in")).unwrap();
    let deb_pc = fs::read_to_string(manifest_dir().join("pkg/deb/adudiffapi.pc")).unwrap();
    assert_eq!(
        deb_pc,
        template
            .replace("@PREFIX@", "/usr")
            .replace("@VERSION@", VERSION),
        "pkg/deb/adudiffapi.pc must be pkg/adudiffapi.pc.in rendered with prefix /usr, version \
         {VERSION}"
    );
    // The Debian revision cargo-deb adds is 1: the changelog's newest entry and the -dev
    // package's exact dependency on the library follow the crate version.
    let changelog = fs::read_to_string(manifest_dir().join("pkg/deb/changelog")).unwrap();
    assert!(
        changelog.starts_with(&format!("adudiffapi ({VERSION}-1) ")),
        "pkg/deb/changelog must start with an entry for {VERSION}-1"
    );
    let manifest = fs::read_to_string(manifest_dir().join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("depends = \"libadudiffapi (= {VERSION}-1)\"")),
        "Cargo.toml: libadudiffapi-dev must depend on libadudiffapi (= {VERSION}-1)"
    );
}

// ---------------------------------------------------------------------------------------------
// scripts/install.sh → DESTDIR, then CMake and pkg-config consumers

#[test]
fn install_script_cmake_and_pkg_config() {
    let release = release_dir();
    let tmp = tempfile::tempdir().unwrap();
    let stage = tmp.path().join("stage");
    let prefix = "/usr/local";

    // A fake ldconfig first in PATH records whether the script calls it (it must not with
    // DESTDIR set).
    let bin = tmp.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let marker = tmp.path().join("ldconfig-called");
    let fake = bin.join("ldconfig");
    fs::write(&fake, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    run_ok(
        Command::new("sh")
            .arg(manifest_dir().join("scripts/install.sh"))
            .arg("--no-build")
            .env("DESTDIR", &stage)
            .env("PREFIX", prefix)
            .env("CARGO_TARGET_DIR", release.parent().unwrap())
            .env("PATH", &path),
    );
    assert!(
        !marker.exists(),
        "install.sh ran ldconfig although DESTDIR was set"
    );

    let root = stage.join(prefix.trim_start_matches('/'));
    assert_eq!(
        files_under(&root),
        [
            "bin/adudiff",
            "include/adudiffapi.h",
            "include/legacy_adudiffapply.h",
            "lib/cmake/adudiffapi/adudiffapiConfig.cmake",
            "lib/cmake/adudiffapi/adudiffapiConfigVersion.cmake",
            "lib/libadudiffapi.so",
            "lib/pkgconfig/adudiffapi.pc",
        ]
    );
    let pc = fs::read_to_string(root.join("lib/pkgconfig/adudiffapi.pc")).unwrap();
    assert!(pc.starts_with(&format!("prefix={prefix}\n")), "{pc}");
    assert!(pc.contains(&format!("Version: {VERSION}\n")), "{pc}");
    assert_eq!(
        fs::read(root.join("lib/libadudiffapi.so")).unwrap(),
        fs::read(release.join("libadudiffapi.so")).unwrap()
    );
    harness_smoke(&root.join("lib"));

    pkg_config_compile(&stage, &root);
    cmake_consumer(&root, tmp.path());
}

/// `cc $(pkg-config --cflags --libs adudiffapi) examples/link_example.c` against the staged
/// install (PKG_CONFIG_SYSROOT_DIR maps the .pc file's /usr/local paths into DESTDIR).
fn pkg_config_compile(stage: &Path, root: &Path) {
    let Some(pkg_config) = which("pkg-config") else {
        eprintln!("skipping the pkg-config check: pkg-config not found");
        return;
    };
    let Some(cc) = c_compiler() else { return };
    let pc_path = root.join("lib/pkgconfig");
    let pkgc = |args: &[&str]| {
        let o = run_ok(
            Command::new(&pkg_config)
                .args(args)
                .env("PKG_CONFIG_PATH", &pc_path)
                .env("PKG_CONFIG_SYSROOT_DIR", stage),
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(pkgc(&["--modversion", "adudiffapi"]), VERSION);
    let flags = pkgc(&["--cflags", "--libs", "adudiffapi"]);
    assert!(flags.contains("-ladudiffapi"), "{flags}");
    let exe = stage.parent().unwrap().join("link_example_pc");
    run_ok(
        Command::new(&cc)
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror"])
            .arg(manifest_dir().join("examples/link_example.c"))
            .args(flags.split_whitespace())
            .arg("-o")
            .arg(&exe),
    );
    let v = manifest_dir().join("tests/vectors/malformed_wrong_magic");
    let r = run_with_timeout(
        Command::new(&exe)
            .arg(v.join("source"))
            .arg(v.join("delta"))
            .arg(stage.parent().unwrap().join("pc.out"))
            .env("LD_LIBRARY_PATH", root.join("lib")),
        HARNESS_TIMEOUT,
    );
    assert!(
        r.result_line().starts_with("result: error "),
        "link_example built with pkg-config flags:\n{r}"
    );
}

/// A separate CMake project (examples/CMakeLists.txt): find_package(adudiffapi), build both
/// examples, run its ctest cases on bundled vectors.
fn cmake_consumer(root: &Path, tmp: &Path) {
    let Some(cmake) = which("cmake") else {
        eprintln!("skipping the CMake check: cmake not found");
        return;
    };
    let Some(ctest) = which("ctest") else {
        eprintln!("skipping the CMake check: ctest not found");
        return;
    };
    if c_compiler().is_none() {
        return;
    }
    let build = tmp.join("cmake-build");
    let mut configure = Command::new(&cmake);
    configure
        .arg("-S")
        .arg(manifest_dir().join("examples"))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", root.display()))
        .arg(format!(
            "-DADUDIFFAPI_VECTORS_DIR={}",
            manifest_dir().join("tests/vectors").display()
        ));
    if let Some(cc) = std::env::var_os("CC") {
        configure.arg(format!("-DCMAKE_C_COMPILER={}", cc.to_string_lossy()));
    }
    if !apply_works() {
        eprintln!("apply not implemented yet: ctest runs only the error vectors");
        configure.arg("-DADUDIFFAPI_SUCCESS_VECTORS=");
    }
    let o = run_ok(&mut configure);
    let cache = fs::read_to_string(build.join("CMakeCache.txt")).unwrap();
    assert!(
        cache.contains(&format!(
            "adudiffapi_DIR:PATH={}",
            root.join("lib/cmake/adudiffapi").display()
        )),
        "find_package used another adudiffapi:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    run_ok(Command::new(&cmake).arg("--build").arg(&build));
    let o = run_ok(
        Command::new(&ctest)
            .arg("--output-on-failure")
            .current_dir(&build),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("100% tests passed"), "{out}");
    assert!(!out.contains("No tests were found"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// cargo deb → three .debs, checked by scripts/check-debs.sh and installed in scratch roots

/// The path of a tool CI installs; panics (the test fails, never skips) when it is missing.
fn required_tool(name: &str, package: &str) -> PathBuf {
    which(name).unwrap_or_else(|| panic!("{name} not found (CI installs it: {package})"))
}

/// The three packages, each built with `cargo deb -p` for its own crate from the release
/// build: [libadudiffapi, libadudiffapi-dev, adudiff].
fn build_debs(out: &Path) -> [PathBuf; 3] {
    let release = release_dir();
    let has_cargo_deb = Command::new(cargo())
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_cargo_deb,
        "cargo-deb not installed (cargo install cargo-deb --locked; CI installs it)"
    );
    let packages: [(&str, &[&str]); 3] = [
        ("libadudiffapi", &["-p", "adudiffapi"]),
        (
            "libadudiffapi-dev",
            &["-p", "adudiffapi", "--variant", "dev"],
        ),
        ("adudiff", &["-p", "adudiff"]),
    ];
    packages.map(|(name, args)| {
        // Into a folder: cargo-deb names the file <package>_<version>_<arch>.deb and prints
        // its path.
        let o = run_ok(
            Command::new(cargo())
                .args(["deb", "--no-build", "--strip", "--fast"])
                .args(args)
                .arg("--output")
                .arg(format!("{}/", out.display()))
                .env("CARGO_TARGET_DIR", release.parent().unwrap())
                .current_dir(manifest_dir()),
        );
        let deb = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        let file = deb.file_name().unwrap().to_string_lossy().into_owned();
        assert!(file.starts_with(&format!("{name}_{VERSION}-1_")), "{file}");
        deb
    })
}

/// An empty dpkg database in the scratch root `root` (`<root>/var/lib/dpkg`), for `dpkg --root`.
fn scratch_dpkg_database(root: &Path) {
    let admin = root.join("var/lib/dpkg");
    for d in ["updates", "info", "triggers"] {
        fs::create_dir_all(admin.join(d)).unwrap();
    }
    fs::write(admin.join("status"), "").unwrap();
    fs::write(admin.join("available"), "").unwrap();
}

/// `dpkg --root <root> <args>` (as root or not; the packages have no maintainer scripts).
fn dpkg_in(dpkg: &Path, root: &Path, args: &[&OsStr]) -> std::process::Output {
    run_ok(
        Command::new(dpkg)
            .arg(format!("--root={}", root.display()))
            .arg("--force-not-root")
            .args(args),
    )
}

/// A scratch root into which `debs` are installed with `dpkg --root … -i` (libc6 is not in its
/// database: --force-depends). Never the machine's database.
fn dpkg_install_in_scratch_root(dpkg: &Path, root: &Path, debs: &[&Path]) {
    scratch_dpkg_database(root);
    let mut args: Vec<&OsStr> = vec!["--force-depends".as_ref(), "-i".as_ref()];
    args.extend(debs.iter().map(|d| d.as_os_str()));
    dpkg_in(dpkg, root, &args);
}

/// `dpkg --root <root> -S <path>`: the package that owns `path`.
fn dpkg_owner(dpkg: &Path, root: &Path, path: &str) -> String {
    let o = dpkg_in(dpkg, root, &["-S".as_ref(), path.as_ref()]);
    let text = String::from_utf8_lossy(&o.stdout);
    text.split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn debian_packages() {
    let dpkg = required_tool("dpkg", "dpkg");
    required_tool("lintian", "lintian");
    let tmp = tempfile::tempdir().unwrap();
    let [lib, dev, cli] = build_debs(tmp.path());

    // Control fields, exact file lists, stripped ELF files, the library's SONAME, NODELETE
    // and exports, lintian without errors, a scratch-root install of all three with the
    // owner of every file: the same script CI runs for arm64 and armhf.
    run_ok(
        Command::new("bash")
            .arg(manifest_dir().join("scripts/check-debs.sh"))
            .args([&lib, &dev, &cli]),
    );

    // All three in one scratch root: who owns what.
    let all = tmp.path().join("all");
    dpkg_install_in_scratch_root(&dpkg, &all, &[&lib, &dev, &cli]);
    for (path, owner) in [
        ("/usr/lib/libadudiffapi.so", "libadudiffapi"),
        ("/usr/include/adudiffapi.h", "libadudiffapi-dev"),
        ("/usr/include/legacy_adudiffapply.h", "libadudiffapi-dev"),
        ("/usr/lib/pkgconfig/adudiffapi.pc", "libadudiffapi-dev"),
        (
            "/usr/lib/cmake/adudiffapi/adudiffapiConfig.cmake",
            "libadudiffapi-dev",
        ),
        ("/usr/bin/adudiff", "adudiff"),
        ("/usr/share/man/man1/adudiff-generate.1.gz", "adudiff"),
        ("/usr/share/bash-completion/completions/adudiff", "adudiff"),
    ] {
        assert_eq!(dpkg_owner(&dpkg, &all, path), owner, "{path}");
    }
    // The installed adudiff runs and is this version.
    let o = run_ok(Command::new(all.join("usr/bin/adudiff")).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("adudiff {VERSION}\n")
    );

    // The runtime package alone is what the agent needs: the harness dlopens the bare name
    // libadudiffapi.so from that root's /usr/lib and applies through it.
    let runtime = tmp.path().join("runtime");
    dpkg_install_in_scratch_root(&dpkg, &runtime, &[&lib]);
    let mut files = files_under(&runtime.join("usr"));
    files.retain(|f| !f.starts_with("share/doc/"));
    assert_eq!(
        files,
        [
            "lib/libadudiffapi.so",
            "share/lintian/overrides/libadudiffapi"
        ]
    );
    harness_smoke(&runtime.join("usr/lib"));

    dpkg_replaces_microsoft_package(&dpkg, &lib, tmp.path());
}

/// In a scratch root (never the real one): with a stand-in for Microsoft's `ms-adu_diffs`
/// installed, unpacking our runtime package removes it and takes over its files.
fn dpkg_replaces_microsoft_package(dpkg: &Path, deb: &Path, tmp: &Path) {
    let dpkg_deb = required_tool("dpkg-deb", "dpkg");
    let arch = {
        let o = run_ok(Command::new(dpkg).arg("--print-architecture"));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    // Microsoft's package as CPack writes it (dpkg-deb --build refuses '_' in a new package
    // name, hence --nocheck; dpkg itself still accepts such installed names).
    let ms = tmp.join("ms");
    fs::create_dir_all(ms.join("DEBIAN")).unwrap();
    fs::create_dir_all(ms.join("usr/lib")).unwrap();
    fs::write(ms.join("usr/lib/libadudiffapi.so"), "microsoft").unwrap();
    fs::write(
        ms.join("DEBIAN/control"),
        format!(
            "Package: ms-adu_diffs\nVersion: 3.0.0\nArchitecture: {arch}\n\
             Maintainer: stand-in <none@example.invalid>\nDescription: stand-in\n"
        ),
    )
    .unwrap();
    let ms_deb = tmp.join("ms-adu_diffs.deb");
    run_ok(
        Command::new(&dpkg_deb)
            .args(["--nocheck", "--build"])
            .arg(&ms)
            .arg(&ms_deb),
    );

    let root = tmp.join("replace");
    scratch_dpkg_database(&root);
    dpkg_in(dpkg, &root, &["--unpack".as_ref(), ms_deb.as_os_str()]);
    dpkg_in(dpkg, &root, &["--unpack".as_ref(), deb.as_os_str()]);
    let status = fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    assert!(status.contains("Package: libadudiffapi\n"), "{status}");
    let ms_still_installed = status
        .split("\n\n")
        .filter(|stanza| stanza.contains("Package: ms-adu_diffs\n"))
        .any(|stanza| {
            stanza.lines().any(|l| {
                l.starts_with("Status:") && l.split_whitespace().last() == Some("installed")
            })
        });
    assert!(
        !ms_still_installed,
        "ms-adu_diffs still installed:\n{status}"
    );
    assert_ne!(
        fs::read(root.join("usr/lib/libadudiffapi.so")).unwrap(),
        b"microsoft",
        "our library did not replace Microsoft's"
    );
}
