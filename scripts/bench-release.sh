#!/usr/bin/env bash
# What each kind of device downloads from a mixed-fleet release (docs/RELEASE.md): runs
# `adudiff release --format extended` for SOURCE.swu -> TARGET.swu with the target as built and
# recompressed, and `--format standard` as built for comparison, then prints a Markdown table
# (device runs Microsoft's 3.0.0 / this library x target as built / recompressed) taken from the
# release summaries, and the share of devices on this library above which the fallback release
# downloads fewer bytes than a standard-only one.
#
#   scripts/bench-release.sh SOURCE.swu TARGET.swu
#
# Builds the release binary unless ADUDIFF names one. The releases go to a temporary folder that
# is removed at the end (KEEP=1 keeps it and prints its path).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 SOURCE.swu TARGET.swu" >&2; exit 2; }
source_swu=$(realpath "$1")
target_swu=$(realpath "$2")
cd "$(dirname "$0")/.."
if [ -z "${ADUDIFF:-}" ]; then
    cargo build --quiet --release --bin adudiff
    ADUDIFF=${CARGO_TARGET_DIR:-target}/release/adudiff
fi
work=$(mktemp -d)
if [ "${KEEP:-0}" = 1 ]; then echo "releases kept in $work" >&2; else trap 'rm -rf "$work"' EXIT; fi

# release NAME ARGS...: one release into $work/NAME, its summary in $work/NAME.txt.
release() {
    local name=$1
    shift
    local start=$SECONDS
    SOURCE_DATE_EPOCH=0 "$ADUDIFF" release --quiet --out "$work/$name" --provider Bench \
        --name Release --version 1.0 --compat model=bench "$@" "$target_swu" "$source_swu" \
        >"$work/$name.txt"
    echo "$name: $((SECONDS - start)) s" >&2
}
release as-built --format extended
release recompressed --format extended --recompress
release standard --format standard

# cell NAME WHO: "bytes B: what" from the summary line of WHO in release NAME.
cell() {
    sed -n "s/^  devices on $2 *download *\([0-9,]*\) B: \(.*\)$/\1 B: \2/p" "$work/$1.txt"
}
# target NAME: the shipped target's size.
target() {
    sed -n 's/^target .* (\([0-9,]*\) B.*/\1/p' "$work/$1.txt"
}
# bytes TEXT: the number at the start of TEXT, without separators.
bytes() {
    sed 's/ B.*//; s/,//g' <<<"$1"
}

echo "| device runs | target as built ($(target as-built) B) | target recompressed ($(target recompressed) B) |"
echo "|---|---|---|"
for who in "Microsoft's 3.0.0" "this library"; do
    echo "| $who | $(cell as-built "$who") | $(cell recompressed "$who") |"
done
echo
standard=$(bytes "$(cell standard "this library")")
extended=$(bytes "$(cell as-built "this library")")
echo "As built, a standard delta alone: $(cell standard "this library") (both kinds of device)."
awk -v s="$standard" -v e="$extended" 'BEGIN {
    if (s > e) printf "The fallback release downloads fewer bytes than the standard-only one when more than %.1f %% of the devices run this library (extended / standard = %d / %d).\n", 100 * e / s, e, s
    else print "The extended delta is not smaller than the standard one: no fallback is written."
}'
echo
echo "$(date -u +%Y-%m-%d), $(uname -m), $(nproc) cores: scripts/bench-release.sh $1 $2"
