#!/usr/bin/env bash
# bench-generate.sh [CORPUS_DIR] [WORK_DIR]
#
# Builds the corpus of ../shared/corpus/make-corpus.sh once (cached; needs root, debootstrap and
# network access to the Debian mirror, ~3.5 min the first time), then for each case
# (minor, major, firmware):
#   1. recompresses v2.swu with `adudiff recompress` (signing with the corpus key, upstream's
#      "<cmd> <sw-description> <sw-description>.sig" convention),
#   2. generates v1.swu -> recompressed v2 with `adudiff generate` (which also verifies),
#   3. applies the delta with `adudiff apply` and checks it byte-for-byte,
# and writes docs/BENCHMARK.md (table next to the baselines of BASELINES.md) and
# docs/bench-sizes.svg (bar chart of the sizes).
#
# Then, unless AS_BUILT=0, for each case the extended format on the target exactly as built
# (no recompress, no re-sign): `adudiff generate --format extended v1.swu v2.swu`, and both
# deltas applied through the C ABI (`examples/apply`) one after the other, written to
# $WORK/as-built.tsv (case, v2 bytes, delta bytes, format, generate s, generate MiB,
# apply s, apply MiB, standard-delta apply s, its MiB, exact).
#
# Environment: SHARED (default: ../shared next to the repository), CASES (default
# "minor major firmware"), GENERATE_ARGS (extra `adudiff generate` options), AS_BUILT.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$(cd "$REPO/.." && pwd)/shared}
[ -d "$SHARED/corpus" ] || SHARED=/work/shared
CORPUS=${1:-/var/tmp/adudiff-corpus}
WORK=${2:-/var/tmp/adudiff-bench}
CASES=${CASES:-"minor major firmware"}
mkdir -p "$CORPUS" "$WORK"

if [ ! -f "$CORPUS/out/minor/v2.swu" ] || [ ! -f "$CORPUS/out/firmware/v2.swu" ]; then
	echo "== building the corpus into $CORPUS (cached after the first run)" >&2
	bash "$SHARED/corpus/make-corpus.sh" "$CORPUS/out" "$CORPUS/cache" >&2
fi

echo "== building adudiff (release)" >&2
(cd "$REPO" && cargo build --release --quiet -p adudiff --bin adudiff)
BIN=$REPO/target/release/adudiff
KEY=$CORPUS/cache/keys/swupdate-priv.pem
cat > "$WORK/sign.sh" <<EOS
#!/bin/sh
exec openssl dgst -sha256 -sign "$KEY" -out "\$2" "\$1"
EOS
chmod +x "$WORK/sign.sh"

now() { date +%s.%N; }
RESULTS=$WORK/results.tsv
: > "$RESULTS"
for c in $CASES; do
	d=$CORPUS/out/$c
	w=$WORK/$c
	rm -rf "$w"; mkdir -p "$w"
	echo "== $c: recompress" >&2
	t0=$(now)
	"$BIN" recompress "$d/v2.swu" "$w/v2r.swu" "sh $WORK/sign.sh" > "$w/recompress.txt"
	t1=$(now)
	echo "== $c: generate" >&2
	/usr/bin/time -f "%e %M" -o "$w/generate.time" \
		"$BIN" generate -q ${GENERATE_ARGS:-} --log-dir "$w/logs" --work-dir "$w/work" \
		"$d/v1.swu" "$w/v2r.swu" "$w/delta" > "$w/generate.txt"
	echo "== $c: apply" >&2
	/usr/bin/time -f "%e %M" -o "$w/apply.time" "$BIN" apply "$d/v1.swu" "$w/delta" "$w/applied.swu"
	cmp "$w/applied.swu" "$w/v2r.swu"
	ok=yes
	read -r gen_s gen_kb < "$w/generate.time"
	read -r app_s app_kb < "$w/apply.time"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" \
		"$(stat -c %s "$d/v2.swu")" "$(stat -c %s "$w/v2r.swu")" "$(stat -c %s "$w/delta")" \
		"$gen_s" "$((gen_kb / 1024))" "$app_s" "$((app_kb / 1024))" "$ok" \
		"$(echo "$t1 - $t0" | bc)" >> "$RESULTS"
	rm -f "$w/applied.swu"
done

if [ "${AS_BUILT:-1}" != 0 ]; then
	(cd "$REPO" && cargo build --release --quiet --example apply)
	APPLY=$REPO/target/release/examples/apply
	ASB=$WORK/as-built.tsv
	: > "$ASB"
	for c in $CASES; do
		d=$CORPUS/out/$c
		w=$WORK/$c
		echo "== $c: generate --format extended (target as built)" >&2
		/usr/bin/time -f "%e %M" -o "$w/ext-generate.time" \
			"$BIN" generate -q --format extended --log-dir "$w/ext-logs" --work-dir "$w/work" \
			"$d/v1.swu" "$d/v2.swu" "$w/ext-delta" > "$w/ext-generate.txt"
		fmt=$(grep -q '^format: extended' "$w/ext-generate.txt" && echo extended || echo standard)
		echo "== $c: apply both through the C ABI" >&2
		/usr/bin/time -f "%e %M" -o "$w/ext-apply.time" "$APPLY" "$d/v1.swu" "$w/ext-delta" "$w/applied.swu" >/dev/null
		cmp "$w/applied.swu" "$d/v2.swu"
		/usr/bin/time -f "%e %M" -o "$w/std-apply.time" "$APPLY" "$d/v1.swu" "$w/delta" "$w/applied.swu" >/dev/null
		cmp "$w/applied.swu" "$w/v2r.swu"
		rm -f "$w/applied.swu"
		read -r gen_s gen_kb < "$w/ext-generate.time"
		read -r app_s app_kb < "$w/ext-apply.time"
		read -r std_s std_kb < "$w/std-apply.time"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\tyes\n' "$c" "$(stat -c %s "$d/v2.swu")" \
			"$(stat -c %s "$w/ext-delta")" "$fmt" "$gen_s" "$((gen_kb / 1024))" \
			"$app_s" "$((app_kb / 1024))" "$std_s" "$((std_kb / 1024))" >> "$ASB"
	done
	echo "== as built:" >&2
	cat "$ASB" >&2
fi

cp "$RESULTS" "$REPO/docs/bench-results.tsv"
# The as-built rows go into the report only when this run measured them.
as_built=()
if [ -s "${ASB:-}" ]; then
	cp "$ASB" "$REPO/docs/bench-as-built.tsv"
	as_built=("$REPO/docs/bench-as-built.tsv")
fi
python3 "$REPO/scripts/bench-report.py" "$RESULTS" "$REPO/docs" "$(nproc)" \
	"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" "${as_built[@]}"
echo "== wrote $REPO/docs/BENCHMARK.md and $REPO/docs/bench-sizes.svg" >&2
