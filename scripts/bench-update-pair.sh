#!/bin/bash
# bench-update-pair.sh [PAIR_DIR] [WORK_DIR]
#
# Delta sizes, generate and apply costs on the OS-update pair of scripts/make-update-pair.sh,
# from this repository alone. Builds the pair into PAIR_DIR (default /var/tmp/adudiff-pair) when
# it is not there yet (root, Debian mirror; see that script), then:
#   standard: `adudiff recompress` v2.swu (no signature in this pair), `adudiff generate` v1 -> the
#             recompressed v2, applied through the C functions (examples/apply) and compared;
#   extended: `adudiff generate --format extended` v1 -> v2 exactly as built, applied and compared.
# Prints a markdown table (date, machine, sizes, seconds, peak RSS) on stdout.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PAIR=${1:-/var/tmp/adudiff-pair}
WORK=${2:-/var/tmp/adudiff-pair-bench}
[ -f "$PAIR/v2.swu" ] || "$REPO/scripts/make-update-pair.sh" "$PAIR" >&2
mkdir -p "$WORK"

echo "== building adudiff and examples/apply (release)" >&2
cd "$REPO"
# The CLI is its own package `adudiff` where the workspace has one; the root package's binary otherwise.
cargo build --release --quiet -p adudiff 2>/dev/null || cargo build --release --quiet --bin adudiff
cargo build --release --quiet -p adudiffapi --example apply
BIN=$REPO/target/release/adudiff
APPLY=$REPO/target/release/examples/apply

measure() { # NAME COMMAND... : runs COMMAND, leaves "seconds KiB" in $WORK/NAME.time
	local name=$1
	shift
	/usr/bin/time -f "%e %M" -o "$WORK/$name.time" "$@" >"$WORK/$name.out"
}
seconds() { cut -d' ' -f1 "$WORK/$1.time"; }
mib() { echo $(($(cut -d' ' -f2 "$WORK/$1.time") / 1024)); }
size() { stat -c %s "$1"; }
grouped() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; } # 1234567 -> 1,234,567

echo "== standard: recompress, generate, apply" >&2
measure recompress "$BIN" recompress "$PAIR/v2.swu" "$WORK/v2r.swu"
measure generate "$BIN" generate -q --work-dir "$WORK/work" "$PAIR/v1.swu" "$WORK/v2r.swu" "$WORK/standard.delta"
measure apply "$APPLY" "$PAIR/v1.swu" "$WORK/standard.delta" "$WORK/applied.swu"
cmp "$WORK/applied.swu" "$WORK/v2r.swu"

echo "== extended: generate on the target as built, apply" >&2
measure ext-generate "$BIN" generate -q --format extended --work-dir "$WORK/work" \
	"$PAIR/v1.swu" "$PAIR/v2.swu" "$WORK/extended.delta"
measure ext-apply "$APPLY" "$PAIR/v1.swu" "$WORK/extended.delta" "$WORK/applied.swu"
cmp "$WORK/applied.swu" "$PAIR/v2.swu"
format=$(grep -q '^format: extended' "$WORK/ext-generate.out" && echo extended || echo standard)
rm -f "$WORK/applied.swu"

pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f %%", 100 * a / b}'; }
cat <<EOF
Measured $(date -u '+%F %H:%M UTC') on a $(nproc)-core machine ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)), by \`scripts/bench-update-pair.sh\` on the pair of \`scripts/make-update-pair.sh\` ($(sed -n 1p "$PAIR/README.txt" | sed 's/.* on \([0-9-]*\) from \(.*\)/\2, built \1/')).

| delta | target | target bytes | delta bytes | % of target | recompress s | generate s / peak RSS MiB | apply s / peak RSS MiB (C ABI) | byte-exact |
|---|---|--:|--:|--:|--:|--:|--:|---|
| standard | v2.swu recompressed | $(grouped "$(size "$WORK/v2r.swu")") | **$(grouped "$(size "$WORK/standard.delta")")** | $(pct "$(size "$WORK/standard.delta")" "$(size "$WORK/v2r.swu")") | $(seconds recompress) | $(seconds generate) / $(mib generate) | $(seconds apply) / $(mib apply) | yes |
| $format | v2.swu as built | $(grouped "$(size "$PAIR/v2.swu")") | **$(grouped "$(size "$WORK/extended.delta")")** | $(pct "$(size "$WORK/extended.delta")" "$(size "$PAIR/v2.swu")") | — | $(seconds ext-generate) / $(mib ext-generate) | $(seconds ext-apply) / $(mib ext-apply) | yes |
EOF
