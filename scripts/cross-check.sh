#!/bin/sh
# Compile-only cross check: builds the cdylib for ARM Linux targets and verifies the properties
# the Device Update agent relies on (SONAME libadudiffapi.so, DF_1_NODELETE, exactly the exports
# of libadudiffapi.map) with readelf, which reads ELF files of any architecture.
#
#   scripts/cross-check.sh [triple...]     default: aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf
#
# (Where rustup cannot install ARM targets, scripts/arm-ci.sh builds with Debian's rustc-web and
# ARM std instead, runs the same ELF checks, and tests under qemu-user.)
# Needs `rustup target add <triple>` and a cross C compiler/linker (Debian:
# gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross);
# targets whose toolchain is missing are skipped with a message (exit status 0), unless
# CROSS_CHECK_STRICT=1. Override the tools with CARGO_TARGET_<TRIPLE>_LINKER / CC_<triple>.
set -eu

CARGO=${CARGO:-cargo}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
targets=${*:-aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf}
strict=${CROSS_CHECK_STRICT:-0}
status=0

skip() {
    echo "cross-check: SKIP $1: $2"
    if [ "$strict" = 1 ]; then status=1; fi
}

expected=$(sed -n '/global:/,/local:/p' libadudiffapi.map | tr -d ' ;' | grep -v -e 'global:' -e 'local:' -e '^$' | sort)

for t in $targets; do
    case "$t" in
        aarch64-unknown-linux-gnu) gcc=aarch64-linux-gnu-gcc; machine=AArch64 ;;
        armv7-unknown-linux-gnueabihf) gcc=arm-linux-gnueabihf-gcc; machine=ARM ;;
        *) echo "cross-check: unknown target $t" >&2; exit 2 ;;
    esac
    upper=$(echo "$t" | tr 'a-z-' 'A-Z_')
    lower=$(echo "$t" | tr '-' '_')
    linker=$(eval "echo \${CARGO_TARGET_${upper}_LINKER:-$gcc}")
    cc=$(eval "echo \${CC_${lower}:-$gcc}")
    if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$t"; then
        skip "$t" "rust-std not installed (rustup target add $t)"; continue
    fi
    if ! command -v "$linker" >/dev/null 2>&1; then
        skip "$t" "$linker not found"; continue
    fi
    echo "cross-check: building $t (linker $linker)"
    env "CARGO_TARGET_${upper}_LINKER=$linker" "CC_${lower}=$cc" \
        "$CARGO" build --locked --lib --target "$t"
    lib=$target_dir/$t/debug/libadudiffapi.so
    readelf -h "$lib" | grep -q "Machine:.*$machine" || { echo "$lib: not $machine"; status=1; }
    readelf -d "$lib" | grep -q 'Library soname: \[libadudiffapi.so\]' || { echo "$lib: SONAME"; status=1; }
    readelf -d "$lib" | grep 'FLAGS_1' | grep -q NODELETE || { echo "$lib: no NODELETE"; status=1; }
    exported=$(readelf --dyn-syms -W "$lib" | awk '$5 == "GLOBAL" && $7 != "UND" { sub(/@.*/, "", $8); print $8 }' | sort)
    if [ "$exported" != "$expected" ]; then
        echo "$lib: exports differ from libadudiffapi.map:"; echo "$exported"; status=1
    fi
    [ "$status" = 0 ] && echo "cross-check: OK $t"
done
exit "$status"
