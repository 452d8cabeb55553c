#!/usr/bin/env python3
"""bench-report.py RESULTS.tsv DOCS_DIR NPROC CPU [AS_BUILT.tsv]: BENCHMARK.md + bench-sizes.svg (no deps).

AS_BUILT.tsv (scripts/bench-generate.sh's as-built step): case, v2 bytes, delta bytes, format,
generate s, generate MiB, apply s, apply MiB, standard apply s, standard apply MiB, byte-exact.
BENCH_DATE overrides the date written (e.g. when only some rows were re-measured).
"""
import datetime
import os
import sys

results, docs, nproc, cpu = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
as_built = sys.argv[5] if len(sys.argv) > 5 and os.path.exists(sys.argv[5]) else None
# The single-thread preflate baseline of the as-built rootfs (measured once with
# preflate-rs 0.7.6, whole-stream API): what rebuilding the GNU gzip stream costs without our
# exact re-encoder.
PREFLATE_BASELINE = "the minor case's v2 rootfs.ext4.gz (GNU gzip -9 -n, 66,861,300 B): preflate-rs 0.7.6 corrections 4,921 B, rebuild 37.7 s on one thread at 1.2 GB RSS"
# Best generic tools on the same pairs (measured 2026-11-21, same machine type):
# (best on the uncompressed payload, its generation time in s; best on the .swu files).
BASELINES = {
    "minor": [("hdiffz -m-6 (ext4 image only)", 4_903_133, 8.82), ("zstd --ultra -22 --long=31 (ext4 only)", 5_423_185, 91.61),
              ("qbsdiff (ext4 only)", 5_990_179, 23.60), ("xdelta3 -9 (ext4 only)", 6_875_011, 11.79),
              ("zstd --ultra -22 on .swu", 59_944_520, 62.51)],
    "major": [("zstd --ultra -22 (ext4 only; the kernel adds ~10.6 MB)", 34_292_403, 166.77), ("hdiffz -m-6 (ext4 only)", 35_126_151, 74.28),
              ("zstd --ultra -22 on .swu", 75_032_864, 61.24)],
    "firmware": [("bsdiff on .swu", 205_060, 2.05), ("hdiffz -m-6 on .swu", 205_979, 0.52), ("qbsdiff on .swu", 213_637, 0.45)],
}
GOAL = {"minor": 3_920_000}

rows = [l.rstrip("\n").split("\t") for l in open(results) if l.strip()]
def g(n): return f"{int(n):,}"
out = []
out.append("# Generator benchmark\n")
out.append(f"Measured {os.environ.get('BENCH_DATE') or datetime.date.today().isoformat()} on a {nproc}-core machine ({cpu}), by "
           "`scripts/bench-generate.sh` on three update pairs built with debootstrap by a script kept "
           "outside this repository: *minor*, a Debian bookworm rootfs update (systemd, openssl and curl "
           "from their second-newest to their newest versions, five more packages, changed configuration: "
           "481 new and 339 changed files, ext4 image 209 MiB → 222 MiB, signed SWU with kernel and config "
           "tarball); *major*, Debian bullseye → the same bookworm target; *firmware*, a raw 4.7 MB binary "
           "(libcrypto.so.3 of two Debian openssl versions). Deltas are v1.swu → `adudiff recompress`ed "
           "v2.swu, verified by the generator and re-applied with `adudiff apply` + `cmp`. The generic "
           "tools below were run on the *uncompressed ext4 image alone*, while our delta rebuilds the "
           "whole SWU byte-exactly (including re-gzipping the image). "
           "`scripts/bench-update-pair.sh` reproduces the minor case on a comparable pair built by "
           "`scripts/make-update-pair.sh` from this repository alone ([MEASUREMENTS.md](MEASUREMENTS.md#delta-sizes)).\n")
out.append("| case | v2.swu | recompressed v2 | recompress s | **adudiff delta** | % of v2 | generate s | peak RSS MiB | apply s | apply RSS MiB | byte-exact |")
out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
for r in rows:
    c, v2, v2r, delta, gs, gm, aps, am, ok = r[:9]
    rs = float(r[9]) if len(r) > 9 and r[9] else 0.0
    out.append(f"| {c} | {g(v2)} | {g(v2r)} | {rs:.1f} | **{g(delta)}** | {int(delta)*100/int(v2r):.2f} % | {float(gs):.1f} | {gm} | {float(aps):.1f} | {am} | {ok} |")
out.append("")
out.append("Baselines (best generic tools on the same pairs, 2026-11-21):\n")
out.append("| case | tool | patch bytes | gen s |")
out.append("|---|---|--:|--:|")
for r in rows:
    for name, size, secs in BASELINES.get(r[0], []):
        out.append(f"| {r[0]} | {name} | {g(size)} | {secs} |")
out.append("")
for r in rows:
    if r[0] in GOAL:
        out.append(f"Goal for {r[0]}: ≤ {g(GOAL[r[0]])} B in ≤ 90 s — measured {g(r[3])} B in {float(r[4]):.1f} s.\n")
ext_rows = [l.rstrip("\n").split("\t") for l in open(as_built) if l.strip()] if as_built else []
if ext_rows:
    out.append("## Targets as built (`--format extended`)\n")
    out.append("The same v1.swu → the v2.swu **exactly as built** (GNU gzip, signature untouched), no "
               "recompress; applied through the C functions (`examples/apply`), the standard delta of "
               "the table above applied right after it.\n")
    out.append("| case | v2.swu | **delta** | % of v2 | format | generate s | generate RSS MiB | apply s | apply RSS MiB | standard delta apply s / RSS MiB | byte-exact |")
    out.append("|---|--:|--:|--:|---|--:|--:|--:|--:|--:|---|")
    for r in ext_rows:
        c, v2, delta, fmt, gs, gm, aps, am, ss, sm, ok = r[:11]
        std = f"{float(ss):.1f} / {sm}" if ss else "— (not measured in this run)"
        out.append(f"| {c} | {g(v2)} | **{g(delta)}** | {int(delta)*100/int(v2):.2f} % | {fmt} | {float(gs):.1f} | {gm} | {float(aps):.1f} | {am} | {std} | {ok} |")
    out.append("")
    out.append(f"Single-thread preflate baseline: {PREFLATE_BASELINE}.\n")
load = open("/proc/loadavg").read().split()[:3]
out.append(f"Load average when the report was written: {' / '.join(load)} (1/5/15 min) — the machine is "
           "shared with other builds, so times are upper bounds; sizes are deterministic.\n")
out.append("![delta sizes](bench-sizes.svg)\n")
open(f"{docs}/BENCHMARK.md", "w").write("\n".join(out) + "\n")

# Horizontal bar chart (SVG written by hand: no plotting dependency needed).
bars = []
ext_by_case = {r[0]: r for r in ext_rows}
for r in rows:
    bars.append((f"{r[0]}: adudiff (recompressed target)", int(r[3]), "#2b7bb9"))
    if r[0] in ext_by_case and ext_by_case[r[0]][3] == "extended":
        bars.append((f"{r[0]}: adudiff extended (as built)", int(ext_by_case[r[0]][2]), "#e07b00"))
    for name, size, _ in BASELINES.get(r[0], [])[:3]:
        bars.append((f"{r[0]}: {name}", size, "#bbbbbb"))
W, left, h, gap = 900, 330, 20, 6
H = 40 + len(bars) * (h + gap)
mx = max(b[1] for b in bars)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="10" y="20" font-size="14" font-weight="bold">Delta size (bytes; shorter is better)</text>']
y = 35
for label, size, color in bars:
    wbar = max(1, (W - left - 120) * size / mx)
    svg.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{label}</text>')
    svg.append(f'<rect x="{left}" y="{y}" width="{wbar:.1f}" height="{h}" fill="{color}"/>')
    svg.append(f'<text x="{left + wbar + 4:.1f}" y="{y + 14}">{size/1e6:.3f} MB</text>')
    y += h + gap
svg.append("</svg>")
open(f"{docs}/bench-sizes.svg", "w").write("\n".join(svg) + "\n")
