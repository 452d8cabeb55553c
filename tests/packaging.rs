//! Packaging: the install script (into a temporary DESTDIR, then a separate CMake project and a
//! pkg-config compile line against it) and the Debian package built by `cargo deb` (extracted
//! with `dpkg-deb -x`, never installed into the real /usr).
//!
//! Both use one release build (`cargo build --release --lib --bin adudiff`, run once per test
//! process in the same target directory as this test run). Tools that are missing — cargo-deb,
//! dpkg-deb, dpkg, cmake, pkg-config, cc — make the parts that need them print a reason and pass.

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
                    "--lib",
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
// cargo deb → .deb, inspected and extracted with dpkg-deb

fn cargo_deb_available() -> bool {
    Command::new(cargo())
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn debian_package() {
    if !cargo_deb_available() {
        eprintln!("skipping: cargo-deb not installed (cargo install cargo-deb)");
        return;
    }
    let Some(dpkg_deb) = which("dpkg-deb") else {
        eprintln!("skipping: dpkg-deb not found");
        return;
    };
    let release = release_dir();
    let tmp = tempfile::tempdir().unwrap();
    let deb = tmp.path().join("adudiffapi.deb");
    run_ok(
        Command::new(cargo())
            .args(["deb", "--no-build", "--fast", "--output"])
            .arg(&deb)
            .env("CARGO_TARGET_DIR", release.parent().unwrap())
            .current_dir(manifest_dir()),
    );

    let field = |name: &str| {
        let o = run_ok(Command::new(&dpkg_deb).arg("-f").arg(&deb).arg(name));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(field("Package"), "adudiffapi");
    assert!(field("Version").starts_with(VERSION));
    // Microsoft's package is `ms-adu_diffs` (docs/PACKAGING.md): replace it on install.
    assert!(field("Provides").contains("ms-adu_diffs"));
    assert_eq!(field("Conflicts"), "ms-adu_diffs");
    assert_eq!(field("Replaces"), "ms-adu_diffs");
    // `depends = "$auto"` is computed by dpkg-shlibdeps (package dpkg-dev).
    if which("dpkg-shlibdeps").is_some() {
        let depends = field("Depends");
        assert!(depends.contains("libc6"), "Depends: {depends}");
    }

    // File list.
    let root = tmp.path().join("root");
    run_ok(Command::new(&dpkg_deb).arg("-x").arg(&deb).arg(&root));
    let files = files_under(&root);
    for f in [
        "usr/lib/libadudiffapi.so",
        "usr/bin/adudiff",
        "usr/include/adudiffapi.h",
        "usr/include/legacy_adudiffapply.h",
        "usr/lib/pkgconfig/adudiffapi.pc",
        "usr/lib/cmake/adudiffapi/adudiffapiConfig.cmake",
        "usr/lib/cmake/adudiffapi/adudiffapiConfigVersion.cmake",
        "usr/share/man/man1/adudiff.1.gz",
        "usr/share/man/man1/adudiff-generate.1.gz",
        "usr/share/bash-completion/completions/adudiff",
        "usr/share/zsh/vendor-completions/_adudiff",
        "usr/share/fish/vendor_completions.d/adudiff.fish",
    ] {
        assert!(
            files.iter().any(|x| x == f),
            "{f} missing from the .deb: {files:?}"
        );
    }
    for f in &files {
        assert!(
            f.starts_with("usr/lib/")
                || f.starts_with("usr/bin/")
                || f.starts_with("usr/include/")
                || f.starts_with("usr/share/doc/adudiffapi/")
                || f.starts_with("usr/share/man/man1/adudiff")
                || f.starts_with("usr/share/bash-completion/completions/")
                || f.starts_with("usr/share/zsh/vendor-completions/")
                || f.starts_with("usr/share/fish/vendor_completions.d/"),
            "unexpected file in the .deb: {f}"
        );
    }
    // Every man page of pkg/man is installed (gzipped by cargo-deb).
    for page in fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("pkg/man")).unwrap() {
        let name = page.unwrap().file_name().into_string().unwrap();
        let installed = format!("usr/share/man/man1/{name}.gz");
        assert!(files.contains(&installed), "{installed} missing: {files:?}");
    }

    // Maintainer scripts: ldconfig after install and removal.
    let control = tmp.path().join("control");
    run_ok(Command::new(&dpkg_deb).arg("-e").arg(&deb).arg(&control));
    use std::os::unix::fs::PermissionsExt;
    for script in ["postinst", "postrm"] {
        let p = control.join(script);
        let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{script}: {e}"));
        assert!(text.contains("ldconfig"), "{script}:\n{text}");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o111,
            0o111
        );
    }

    // The packaged library is the agent-compatible one.
    let lib = root.join("usr/lib/libadudiffapi.so");
    if let Some(readelf) = which("readelf") {
        let o = run_ok(Command::new(readelf).arg("-d").arg(&lib));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("[libadudiffapi.so]") && text.contains("NODELETE"),
            "{text}"
        );
    }
    harness_smoke(&root.join("usr/lib"));

    dpkg_replaces_microsoft_package(&deb, tmp.path());
}

/// In a scratch dpkg database (never the real one): with a stand-in for Microsoft's
/// `ms-adu_diffs` installed, unpacking our package removes it and takes over its files.
fn dpkg_replaces_microsoft_package(deb: &Path, tmp: &Path) {
    let (Some(dpkg), Some(dpkg_deb)) = (which("dpkg"), which("dpkg-deb")) else {
        eprintln!("skipping the dpkg replacement check: dpkg not found");
        return;
    };
    let arch = {
        let o = run_ok(Command::new(&dpkg).arg("--print-architecture"));
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

    let admin = tmp.join("dpkg-admin");
    let inst = tmp.join("dpkg-root");
    for d in ["updates", "info", "triggers"] {
        fs::create_dir_all(admin.join(d)).unwrap();
    }
    fs::write(admin.join("status"), "").unwrap();
    fs::write(admin.join("available"), "").unwrap();
    fs::create_dir_all(&inst).unwrap();
    let dpkg_cmd = |args: &[&OsStr]| {
        let mut c = Command::new(&dpkg);
        c.arg(format!("--admindir={}", admin.display()))
            .arg(format!("--instdir={}", inst.display()))
            .args([
                "--force-not-root",
                "--force-script-chrootless",
                "--force-bad-path",
            ])
            .args(args);
        run_ok(&mut c)
    };
    // --unpack runs no postinst, so nothing touches the host's loader cache.
    dpkg_cmd(&["--unpack".as_ref(), ms_deb.as_os_str()]);
    dpkg_cmd(&["--unpack".as_ref(), deb.as_os_str()]);
    let status = fs::read_to_string(admin.join("status")).unwrap();
    assert!(status.contains("Package: adudiffapi\n"), "{status}");
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
        fs::read(inst.join("usr/lib/libadudiffapi.so")).unwrap(),
        b"microsoft",
        "our library did not replace Microsoft's"
    );
}
