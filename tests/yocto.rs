//! The Yocto layer (`meta-adudiffapi/`) against the repository: the recipe's crate list is
//! exactly Cargo.lock's crates.io packages with their checksums (regenerate it with
//! `scripts/update-yocto-crates.py`), and the recipe keeps the promises docs/YOCTO.md makes.
//! (`scripts/yocto-check.sh` lints the layer and builds the library offline from vendored crates.)

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

const RECIPE_DIR: &str = "meta-adudiffapi/recipes-support/adudiffapi";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: PathBuf) -> String {
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value of `key = "value"` on a Cargo.lock line, if the line is that key.
fn lock_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.strip_prefix(key)?
        .strip_prefix(" = \"")?
        .strip_suffix('"')
}

/// (name, version, checksum) of every crates.io package in Cargo.lock.
fn lock_crates() -> BTreeSet<(String, String, String)> {
    let lock = read(repo().join("Cargo.lock"));
    let mut crates = BTreeSet::new();
    for block in lock.split("[[package]]").skip(1) {
        let field = |key| block.lines().find_map(|l| lock_value(l, key));
        let Some(source) = field("source") else {
            continue;
        };
        assert_eq!(
            source,
            "registry+https://github.com/rust-lang/crates.io-index"
        );
        let name = field("name").expect("name").to_owned();
        let version = field("version").expect("version").to_owned();
        let checksum = field("checksum").unwrap_or_else(|| panic!("{name} {version}: no checksum"));
        crates.insert((name, version, checksum.to_owned()));
    }
    crates
}

/// (name, version, checksum) of every crate the recipe fetches: the `crate://crates.io/N/V`
/// SRC_URI entries joined with their `SRC_URI[N-V.sha256sum]`.
fn recipe_crates() -> BTreeSet<(String, String, String)> {
    let inc = read(repo().join(RECIPE_DIR).join("adudiffapi-crates.inc"));
    let mut uris = BTreeSet::new();
    let mut sums = std::collections::BTreeMap::new();
    for line in inc.lines() {
        if let Some(rest) = line.split("crate://crates.io/").nth(1) {
            let (name, version) = rest.trim_end_matches('"').split_once('/').expect("N/V");
            assert!(
                uris.insert((name.to_owned(), version.to_owned())),
                "{name} {version} twice"
            );
        } else if let Some(rest) = line.strip_prefix("SRC_URI[") {
            let (key, value) = rest.split_once(".sha256sum] = \"").expect("sha256sum line");
            sums.insert(key.to_owned(), value.trim_end_matches('"').to_owned());
        }
    }
    assert_eq!(uris.len(), sums.len(), "one checksum per crate");
    uris.into_iter()
        .map(|(name, version)| {
            let sum = sums.get(&format!("{name}-{version}"));
            let sum = sum.unwrap_or_else(|| panic!("{name}-{version}: no sha256sum"));
            (name, version, sum.clone())
        })
        .collect()
}

#[test]
fn recipe_crates_are_cargo_lock() {
    let lock = lock_crates();
    let recipe = recipe_crates();
    let missing: Vec<_> = lock.difference(&recipe).collect();
    let extra: Vec<_> = recipe.difference(&lock).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the recipe's crates differ from Cargo.lock (run scripts/update-yocto-crates.py):\n\
         missing or changed: {missing:?}\nnot in Cargo.lock: {extra:?}"
    );
    assert!(
        lock.iter().any(|(name, ..)| name == "zstd-sys"),
        "Cargo.lock was not read"
    );
}

#[test]
fn recipe_builds_the_library_only_and_stands_in_for_microsofts() {
    let recipe = read(repo().join(RECIPE_DIR).join("adudiffapi_0.1.0.bb"));
    let has = |line: &str| recipe.lines().any(|l| l.trim() == line);
    assert!(has("inherit cargo"));
    assert!(has("CARGO_BUILD_FLAGS += \"-p adudiffapi --lib\""));
    for var in ["RPROVIDES", "RCONFLICTS", "RREPLACES"] {
        assert!(
            has(&format!("{var}:${{PN}} = \"azure-device-update-diffs\"")),
            "{var}"
        );
    }
    // The bare .so (the name the agent dlopen()s) in the runtime package, not in -dev.
    assert!(has("FILES_SOLIBSDEV = \"\""));
    assert!(has("FILES:${PN} += \"${libdir}/libadudiffapi.so\""));
    // Stripping is Yocto's: nothing may hide a stripped library from its QA.
    assert!(!recipe.contains("already-stripped"));
    assert!(!recipe.contains("INHIBIT_PACKAGE_STRIP"));
    assert!(has("export CARGO_PROFILE_RELEASE_STRIP = \"false\""));
    let manifest = read(repo().join("Cargo.toml"));
    let release = manifest
        .split("[profile.release]")
        .nth(1)
        .expect("[profile.release]");
    let release = release.split("\n[").next().unwrap();
    assert!(
        !release.contains("strip"),
        "the release profile strips: {release}"
    );
    // Everything the recipe installs from the source tree exists.
    for file in [
        "include/adudiffapi.h",
        "include/legacy_adudiffapply.h",
        "pkg/adudiffapi.pc.in",
        "cmake/adudiffapiConfig.cmake",
        "cmake/adudiffapiConfigVersion.cmake",
        "LICENSE",
        "crates/core/src/pardeflate/LICENSE-zlib",
    ] {
        assert!(recipe.contains(file), "the recipe does not use {file}");
        assert!(repo().join(file).is_file(), "{file} is missing");
    }
    let cmake = read(repo().join("cmake/adudiffapiConfig.cmake"));
    assert!(
        cmake.contains("/lib/libadudiffapi.so"),
        "the recipe's sed of the CMake file"
    );
}
