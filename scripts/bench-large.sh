#!/usr/bin/env bash
# Benchmark of the large case (tests/vectors/swu_large_timing): our apply through the C harness
# (the agent's call sequence) against the single-thread floor, the stock-zlib level-9 gzip of the
# target image alone. Prints a markdown table row per run and a summary.
#
#   scripts/bench-large.sh [DATA_DIR] [RUNS]
#
# DATA_DIR (default target/bench-large) caches the recreated source/target (about 1 GiB with the
# raw images; recreated by the vector's make-inputs.sh, which checks their SHA-256).
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-target/bench-large}"
runs="${2:-3}"
case_dir=tests/vectors/swu_large_timing

if [ ! -f "$data/target.ext4" ] || [ ! -f "$data/source.swu" ]; then
    echo "== recreating inputs in $data (a few minutes)" >&2
    KEEP_IMAGES=1 bash "$case_dir/make-inputs.sh" "$data" >&2
fi

echo "== building (release)" >&2
cargo build --release --lib --example deflate_floor >&2
cc -std=c99 -O2 -o target/release/agent_harness examples/agent_harness.c -ldl

timed() { # prints "<seconds> <peak KiB>" of the command
    /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1
}

expected=$(python3 -c "import json;print(json.load(open('$case_dir/case.json'))['target_sha256'])")
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg); date: $(date -u +%F)"
echo
echo "| run | floor: stock zlib -9 gzip of the target image (s) | our apply via C ABI (s) | ratio | peak RSS (MiB) | target sha256 ok |"
echo "|---|---|---|---|---|---|"
for run in $(seq 1 "$runs"); do
    floor=$(target/release/examples/deflate_floor "$data/target.ext4" | awk '{print $4}')
    out="$data/target.out"
    rm -f "$out"
    read -r secs kib < <(LD_LIBRARY_PATH=target/release timed target/release/agent_harness \
        "$data/source.swu" "$case_dir/delta" "$out")
    ok=no
    [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$expected" ] && ok=yes
    ratio=$(python3 -c "print(f'{$secs/$floor:.2f}x')")
    echo "| $run | $floor | $secs | $ratio | $((kib / 1024)) | $ok |"
    rm -f "$out"
done
