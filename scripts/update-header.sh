#!/usr/bin/env bash
# Regenerates include/adudiffapi.h from src/ffi.rs and cbindgen.toml.
#
# A normal build writes the generated header only to $OUT_DIR, and `cargo test --test c_abi`
# fails when the committed include/adudiffapi.h differs from it. After changing the C API (or its
# doc comments, which become the header's comments), run this script and commit the header.
set -euo pipefail
cd "$(dirname "$0")/.."
ADUDIFFAPI_UPDATE_HEADER=1 cargo build --lib --quiet
git diff --stat -- include/adudiffapi.h
