#!/usr/bin/env bash
# What an apply of the large case (tests/vectors/swu_large_timing) costs in time, peak RSS and
# peak scratch disk, on a roomy disk, on small target file systems and under address-space
# limits. Needs root (it mounts tmpfs and loop ext4 file systems). Prints a markdown table.
#
#   scripts/bench-resources.sh [DATA_DIR]
#
# DATA_DIR (default target/bench-large) caches the recreated source/target, as bench-large.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-target/bench-large}"
case_dir=tests/vectors/swu_large_timing
[ "$(id -u)" = 0 ] || { echo "bench-resources.sh: needs root (mounts file systems)" >&2; exit 2; }

if [ ! -f "$data/target.swu" ] || [ ! -f "$data/source.swu" ]; then
    echo "== recreating inputs in $data (a few minutes)" >&2
    bash "$case_dir/make-inputs.sh" "$data" >&2
fi
echo "== building (release)" >&2
cargo build --release --lib >&2
cc -std=c99 -O2 -o target/release/agent_harness examples/agent_harness.c -ldl

expected=$(sha256sum "$data/target.swu" | cut -d' ' -f1)
target_len=$(stat -c %s "$data/target.swu")
mnt=$(mktemp -d)
trap 'umount "$mnt" 2>/dev/null || true; rm -rf "$mnt" "$mnt.img"' EXIT

used_kib() { df -k --output=used "$1" | tail -1 | tr -d ' '; }

# run LABEL DIR [ENV...] [-- PRLIMIT-ARGS]: one apply into DIR/out, sampling DIR's used space.
run() {
    local label=$1 dir=$2; shift 2
    local envs=() limit=()
    while [ $# -gt 0 ]; do
        if [ "$1" = -- ]; then shift; limit=("$@"); break; fi
        envs+=("$1"); shift
    done
    rm -f "$dir/out"
    local base peak=0 now
    base=$(used_kib "$dir")
    ( while :; do used_kib "$dir"; sleep 0.05; done ) > "$mnt.samples" &
    local sampler=$!
    local out
    out=$( { /usr/bin/time -f "TIME %e %M" ${limit[@]+prlimit "${limit[@]}"} \
        env LD_LIBRARY_PATH=target/release ${envs[@]+"${envs[@]}"} \
        target/release/agent_harness "$data/source.swu" "$case_dir/delta" "$dir/out"; } 2>&1 || true)
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    for now in $(cat "$mnt.samples"); do [ "$now" -gt "$peak" ] && peak=$now; done
    local secs kib ok=no result
    read -r _ secs kib < <(grep '^TIME' <<<"$out")
    result=$(grep '^result:' <<<"$out" | tail -1)
    [ -f "$dir/out" ] && [ "$(sha256sum "$dir/out" | cut -d' ' -f1)" = "$expected" ] && ok=yes
    local scratch=$(( (peak - base) / 1024 - target_len / 1048576 ))
    [ "$scratch" -lt 0 ] && scratch=0
    echo "| $label | ${result#result: } | $secs | $((kib / 1024)) | $scratch | $ok |"
    rm -f "$dir/out"
}

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg); date: $(date -u +%F)"
echo
echo "| where the target goes / limit | result | time (s) | peak RSS (MiB) | peak scratch disk beyond the target (MiB) | byte-exact |"
echo "|---|---|---|---|---|---|"
roomy=$(mktemp -d -p "$(dirname "$(readlink -f "$data")")")
run "roomy disk (default: intermediates on disk)" "$roomy"
run "roomy disk, ADUDIFF_SCRATCH_PREFER=memory" "$roomy" ADUDIFF_SCRATCH_PREFER=memory
rm -rf "$roomy"

small=$(( target_len + (8 << 20) ))
mount -t tmpfs -o size=$small tmpfs "$mnt"
run "tmpfs of target size + 8 MiB" "$mnt"
umount "$mnt"

# ext4 image sized so that its free space is the target's size + 8 MiB.
img_size=$(( small + small / 8 + (8 << 20) ))
truncate -s "$img_size" "$mnt.img"
mkfs.ext4 -F -q "$mnt.img"
mount -o loop "$mnt.img" "$mnt"
free=$(df -B1 --output=avail "$mnt" | tail -1 | tr -d ' ')
if [ "$free" -gt "$small" ]; then
    fill=$(( free - small ))
    fallocate -l "$fill" "$mnt/filler"
fi
run "ext4 loop, free = target size + 8 MiB" "$mnt"
umount "$mnt"

work=$(mktemp -d)
for mib in 1024 768 512 480 448; do
    run "RLIMIT_AS $mib MiB" "$work" -- --as=$((mib << 20))
done
rm -rf "$work"
