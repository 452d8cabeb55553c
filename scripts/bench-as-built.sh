#!/usr/bin/env bash
# bench-as-built.sh V1.ext4 V2.ext4 SPEC...
#
# "Targets as built": for each SPEC (COMPRESSOR:ARGS, e.g. "gzip:-9 -n", "pigz:-9 -n --rsyncable",
# "zstd:-19 -T2"), compresses both images with that compressor, packs each into a minimal SWU
# (sw-description + rootfs.ext4.<ext>, no signature), then
#   1. generates the extended delta v1.swu -> v2.swu exactly as built (`adudiff generate
#      --format extended`),
#   2. recompresses v2.swu (`adudiff recompress`) and generates the standard delta to it,
#   3. applies both through the C ABI (`examples/apply`), checking each result byte for byte,
# measuring wall time and peak RSS (GNU time) of every step, and prints one Markdown table row
# per SPEC:
#   | compressor | extended delta | generate s / MiB | apply s / MiB | standard delta |
#     generate s / MiB | apply s / MiB | apply ratio | load |
# Environment: WORK (default /var/tmp/adudiff-as-built), KEEP=1 keeps the work files.
set -euo pipefail

[ $# -ge 3 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
V1=$(realpath "$1")
V2=$(realpath "$2")
shift 2
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/var/tmp/adudiff-as-built}
mkdir -p "$WORK"

echo "== building adudiff and examples/apply (release)" >&2
(cd "$REPO" && cargo build --release --quiet --bin adudiff --example apply)
BIN=$REPO/target/release/adudiff
APPLY=$REPO/target/release/examples/apply

# pack OUT.swu IMAGE NAME COMPRESSED-ATTRIBUTE: a newc cpio of sw-description and the image.
pack() {
	python3 - "$@" <<'EOF'
import hashlib, os, sys
out, image, name, compressed = sys.argv[1:5]
data = open(image, "rb").read()
attr = f'\t\t\t\t\tcompressed = "{compressed}";\n' if compressed else ""
desc = ("software =\n{\n\tversion = \"1.0\";\n\tstable = {\n\t\tmain: {\n\t\t\timages: (\n"
        "\t\t\t\t{\n\t\t\t\t\tfilename = \"%s\";\n\t\t\t\t\ttype = \"raw\";\n%s"
        "\t\t\t\t\tsha256 = \"%s\";\n\t\t\t\t}\n\t\t\t);\n\t\t};\n\t};\n}\n"
        % (name, attr, hashlib.sha256(data).hexdigest())).encode()
def member(n, body, ino):
    nb = n.encode() + b"\0"
    h = b"070701" + b"".join(b"%08X" % v for v in
        (ino, 0o100644, 0, 0, 1, 0, len(body), 0, 0, 0, 0, len(nb), 0))
    pad = lambda b: b + b"\0" * (-len(b) % 4)
    return pad(h + nb) + pad(body)
arc = member("sw-description", desc, 1) + member(name, data, 2) + member("TRAILER!!!", b"", 0)
arc += b"\0" * (-len(arc) % 512)
open(out, "wb").write(arc)
EOF
}

# timed FILE CMD...: runs CMD, writes "seconds KiB" of it to FILE.
timed() {
	local file=$1
	shift
	/usr/bin/time -f "%e %M" -o "$file" "$@"
}

echo "| compressor | extended delta | generate s / MiB | apply s / MiB | standard delta (recompressed target) | generate s / MiB | apply s / MiB | apply ext/std | load (1 min) |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
for spec in "$@"; do
	tool=${spec%%:*}
	args=${spec#*:}
	case $tool in
	gzip | pigz) ext=gz compressed="" ;;
	zstd) ext=zst compressed=zstd ;;
	*) echo "unknown compressor $tool" >&2; exit 2 ;;
	esac
	w=$WORK/$(echo "$spec" | tr -c 'A-Za-z0-9' _)
	rm -rf "$w"
	mkdir -p "$w"
	echo "== $spec: compress and pack" >&2
	for v in 1 2; do
		img=$V1
		[ $v = 2 ] && img=$V2
		# shellcheck disable=SC2086
		"$tool" $args -c < "$img" > "$w/rootfs.ext4.$ext"
		pack "$w/v$v.swu" "$w/rootfs.ext4.$ext" "rootfs.ext4.$ext" "$compressed"
	done
	rm -f "$w/rootfs.ext4.$ext"
	load=$(cut -d' ' -f1 /proc/loadavg)
	echo "== $spec: generate extended" >&2
	timed "$w/ext-gen.time" "$BIN" generate -q --format extended --work-dir "$w/work" \
		"$w/v1.swu" "$w/v2.swu" "$w/ext.delta" > "$w/ext-generate.txt"
	echo "== $spec: recompress, generate standard" >&2
	"$BIN" recompress "$w/v2.swu" "$w/v2r.swu" > "$w/recompress.txt"
	timed "$w/std-gen.time" "$BIN" generate -q --work-dir "$w/work" \
		"$w/v1.swu" "$w/v2r.swu" "$w/std.delta" > "$w/std-generate.txt"
	echo "== $spec: apply both through the C ABI" >&2
	timed "$w/ext-apply.time" "$APPLY" "$w/v1.swu" "$w/ext.delta" "$w/applied.swu" > /dev/null
	cmp "$w/applied.swu" "$w/v2.swu"
	timed "$w/std-apply.time" "$APPLY" "$w/v1.swu" "$w/std.delta" "$w/applied.swu" > /dev/null
	cmp "$w/applied.swu" "$w/v2r.swu"
	rm -f "$w/applied.swu"
	read -r eg_s eg_k < "$w/ext-gen.time"
	read -r ea_s ea_k < "$w/ext-apply.time"
	read -r sg_s sg_k < "$w/std-gen.time"
	read -r sa_s sa_k < "$w/std-apply.time"
	printf '| %s %s | %s | %s / %s | %s / %s | %s | %s / %s | %s / %s | %s | %s |\n' "$tool" "$args" \
		"$(stat -c %s "$w/ext.delta")" "$eg_s" "$((eg_k / 1024))" "$ea_s" "$((ea_k / 1024))" \
		"$(stat -c %s "$w/std.delta")" "$sg_s" "$((sg_k / 1024))" "$sa_s" "$((sa_k / 1024))" \
		"$(echo "scale=2; $ea_s / $sa_s" | bc)" "$load"
	[ "${KEEP:-0}" = 1 ] || rm -rf "$w"
done
