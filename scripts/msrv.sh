#!/usr/bin/env bash
# MSRV check (CI): builds the libraries and `adudiff`, and runs the libraries' unit tests and the
# C-boundary tests, with the Rust version Cargo.toml declares (`rust-version`, 1.85, in
# [workspace.package]; every crate of the workspace inherits it): Debian's
# rustc-web, the toolchain scripts/arm-ci.sh installs for the ARM builds (its `setup` step runs
# when that toolchain is missing). `--ignore-rust-version` only because preflate-rs declares 1.89
# while building with 1.85 (Cargo.toml); our own code must build with the declared version.
#
#   scripts/msrv.sh          MSRV_RUSTC / MSRV_CARGO / MSRV_TARGET_DIR override the defaults
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
[ -n "$want" ] || { echo "msrv: no rust-version in Cargo.toml" >&2; exit 1; }
rustc=${MSRV_RUSTC:-/usr/bin/rustc}
cargo=${MSRV_CARGO:-/usr/bin/cargo}
matches() { [ -x "$rustc" ] && "$rustc" --version | grep -q "^rustc $want\.[0-9]"; }
if ! matches; then
    echo "msrv: installing Debian's Rust $want (scripts/arm-ci.sh setup)"
    scripts/arm-ci.sh setup
fi
matches || { echo "msrv: $rustc is not Rust $want: $("$rustc" --version 2>&1)" >&2; exit 1; }
"$rustc" --version
export RUSTC=$rustc
export RUSTDOC=${MSRV_RUSTDOC:-$(dirname "$rustc")/rustdoc}
# Its own target directory: artifacts of two compilers must not mix.
export CARGO_TARGET_DIR=${MSRV_TARGET_DIR:-$PWD/target/msrv}
# The workspace's default members: adudiffapi (the library), adudiff-core, adudiff-gen, adudiff (the CLI).
"$cargo" build --locked --ignore-rust-version --lib --bins
"$cargo" test --locked --ignore-rust-version --lib --test ffi_sessions --test layering
