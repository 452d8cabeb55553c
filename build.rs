//! Build script:
//!
//! * generates the C header from `src/ffi.rs` with cbindgen (configuration in `cbindgen.toml`)
//!   into `$OUT_DIR/adudiffapi.h`, against which `tests/c_abi.rs` checks the committed
//!   `include/adudiffapi.h`: a change of the C API that is not committed fails that test. A
//!   normal build never writes into the source tree; `scripts/update-header.sh` (which builds
//!   with `ADUDIFFAPI_UPDATE_HEADER=1`) copies the generated header to `include/`. A cbindgen
//!   failure never fails the build (it is reported as a warning, and the drift test then fails
//!   instead);
//! * adds the link arguments of the `cdylib` that make it a drop-in for Microsoft's library:
//!   SONAME `libadudiffapi.so`, `-z nodelete` (the agent calls into the library after `dlclose`,
//!   docs/C-API.md section 5.3).
//!
//! The exported symbol set is *not* restricted with a second `--version-script`: rustc already
//! links every cdylib with its own anonymous version script (`global:` the `#[no_mangle]` items,
//! `local: *`), and a second one is fatal with GNU ld ("anonymous version tag cannot be combined
//! with other version tags", i.e. every cross build through `aarch64-linux-gnu-gcc`), while lld
//! and gold merge the two (rustc's explicit `global:` entries win over our `local: *`), so it could
//! never narrow anything. `libadudiffapi.map` is the reference export list instead, and
//! `tests/c_abi.rs` checks `nm -D --defined-only` against it.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

const HEADER: &str = "include/adudiffapi.h";

/// Set to `1` to write the generated header to [`HEADER`] (what `scripts/update-header.sh` does).
const UPDATE_ENV: &str = "ADUDIFFAPI_UPDATE_HEADER";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/ffi.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed={UPDATE_ENV}");

    generate_header(&manifest_dir, &out_dir);
    link_args();
}

fn generate_header(manifest_dir: &Path, out_dir: &Path) {
    let generated = out_dir.join("adudiffapi.h");
    // A stale copy from an earlier successful run must not make the drift test pass.
    let _ = fs::remove_file(&generated);

    let config = match cbindgen::Config::from_file(manifest_dir.join("cbindgen.toml")) {
        Ok(config) => config,
        Err(e) => {
            println!("cargo:warning=adudiffapi.h not generated: cbindgen.toml: {e}");
            return;
        }
    };
    let bindings = match cbindgen::Builder::new()
        .with_config(config)
        .with_src(manifest_dir.join("src/ffi.rs"))
        .generate()
    {
        Ok(bindings) => bindings,
        Err(e) => {
            println!("cargo:warning=adudiffapi.h not generated: cbindgen: {e}");
            return;
        }
    };
    let mut text = Vec::new();
    bindings.write(&mut text);

    if let Err(e) = fs::write(&generated, &text) {
        println!("cargo:warning=cannot write {}: {e}", generated.display());
    }
    if env::var_os(UPDATE_ENV).is_none_or(|v| v != "1") {
        return;
    }
    let header = manifest_dir.join(HEADER);
    if fs::read(&header).ok().as_deref() != Some(text.as_slice()) {
        let written = fs::create_dir_all(header.parent().expect("include/"))
            .and_then(|()| fs::write(&header, &text));
        if let Err(e) = written {
            println!("cargo:warning=cannot update {HEADER}: {e}");
        }
    }
}

fn link_args() {
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env_ = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    // ELF targets with a GNU-compatible linker (GNU ld, gold, lld): Linux with glibc or musl.
    if os != "linux" || !(env_ == "gnu" || env_ == "musl") {
        return;
    }
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libadudiffapi.so");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
