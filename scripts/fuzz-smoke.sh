#!/usr/bin/env bash
# Fuzz smoke run (CI): every target of fuzz/ for SECONDS (default 30) from a fixed seed corpus.
#
#   scripts/fuzz-smoke.sh [SECONDS]
#
# The targets are built with the stable toolchain: libfuzzer-sys brings libFuzzer, and the
# coverage instrumentation cargo-fuzz would add is passed as stable rustc flags (no AddressSanitizer,
# which needs nightly; `fuzz/run.sh` with cargo-fuzz remains the tool for long runs). So this runs
# offline with what `cargo test` needs, plus a C++ compiler for libFuzzer.
#
# Seeds: fuzz/seed.py into a fresh directory (derived from tests/vectors only), plus the committed
# minimized corpus of `apply` (tests/fuzz-corpus/apply). libFuzzer writes what it finds into a
# separate scratch directory, so every run starts from the same seeds; -seed=1 fixes its random
# choices. A crash, timeout or out-of-memory fails the script and leaves the reproducer in
# $work/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
root=$PWD
work=${FUZZ_SMOKE_DIR:-$root/target/fuzz-smoke}
# Its own target directory: the instrumentation flags would otherwise rebuild the normal one.
export CARGO_TARGET_DIR=${FUZZ_SMOKE_TARGET_DIR:-$work/build}
export RUSTFLAGS="--cfg fuzzing -Cdebug-assertions -Coverflow-checks \
-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares"

mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^adudiffapi-fuzz$')
[ "${#targets[@]}" -gt 0 ] || { echo "fuzz-smoke: no targets in fuzz/Cargo.toml" >&2; exit 1; }

# An explicit --target keeps RUSTFLAGS (the instrumentation) away from build scripts and proc
# macros, which are not linked with libFuzzer.
host=$(rustc -vV | sed -n 's/^host: //p')
echo "fuzz-smoke: building ${targets[*]} for $host"
cargo build --locked --release --manifest-path fuzz/Cargo.toml --bins --target "$host"
bin_dir=$CARGO_TARGET_DIR/$host/release

rm -rf "$work/seeds" "$work/found" "$work/artifacts"
python3 fuzz/seed.py "$work/seeds" >/dev/null
mkdir -p "$work/seeds/apply"
cp tests/fuzz-corpus/apply/* "$work/seeds/apply/"

for t in "${targets[@]}"; do
    mkdir -p "$work/seeds/$t" "$work/found/$t" "$work/artifacts/$t"
    echo "== fuzz-smoke: $t for ${seconds}s ($(ls "$work/seeds/$t" | wc -l) seeds)"
    log="$work/artifacts/$t/run.log"
    if ! "$bin_dir/$t" "$work/found/$t" "$work/seeds/$t" \
        -seed=1 -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
        -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz-smoke: $t FAILED (reproducer and log in $work/artifacts/$t/)" >&2
        exit 1
    fi
    grep -E "^stat::number_of_executed_units|^Done" "$log" || tail -n 3 "$log"
done
echo "fuzz-smoke: ${#targets[@]} targets, ${seconds}s each, no crash"
