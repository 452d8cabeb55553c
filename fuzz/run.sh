#!/usr/bin/env bash
# Runs one fuzz target (or all) for a given time with cargo-fuzz (libFuzzer, nightly toolchain).
#   fuzz/run.sh TARGET SECONDS      e.g. fuzz/run.sh apply 300
#   fuzz/run.sh all SECONDS         every target in turn
# Needs: rustup toolchain nightly, `cargo install cargo-fuzz`. Crashes land in
# fuzz/artifacts/TARGET/; the corpus grows in fuzz/corpus/TARGET/ (seeded by fuzz/seed.py).
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?target or all}
seconds=${2:-60}
[ -d corpus ] || python3 seed.py
targets=("$target")
[ "$target" = all ] && targets=(parse_delta apply bspatch inflate zstd swu deflate_reconstruct zstd_compress)
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t for ${seconds}s"
    cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        2>&1 | tee "artifacts/$t/last-run.log" | grep -E "^(#[0-9]+.*(DONE|pulse)|stat::|==|SUMMARY|Done)" || true
done
