#!/usr/bin/env bash
# Checks adudiffapi .deb packages of any architecture (amd64, arm64, armhf) without installing
# them: control fields (dpkg-deb -f), the exact file list (dpkg-deb -c), the ELF properties the
# Device Update agent relies on (SONAME libadudiffapi.so, DF_1_NODELETE, no RPATH, exactly the
# exports of libadudiffapi.map, the right machine), and the runtime dependencies resolved by the
# target's own dynamic loader ("ldd"): the host's ldd for amd64, the cross sysroot's loader under
# qemu-user for arm64/armhf (`ld-linux-*.so --list`, sysroot /usr/<gnu-triple> from Debian's
# libc6-*-cross). The packaged adudiff runs `--help` the same way.
#
#   scripts/check-debs.sh <deb>...
set -Eeuo pipefail
trap 'echo "check-debs: FAILED (line $LINENO): $BASH_COMMAND" >&2' ERR

root=$(cd "$(dirname "$0")/.." && pwd)
[ "$#" -gt 0 ] || { echo "usage: $0 <deb>..." >&2; exit 2; }

fail() {
    echo "check-debs: FAILED: $*" >&2
    exit 1
}

expected_exports=$(sed -n '/global:/,/local:/p' "$root/libadudiffapi.map" | tr -d ' ;' |
    grep -v -e 'global:' -e 'local:' -e '^$' | sort)

# The package's files (directories excluded), as dpkg-deb -c lists them.
expected_files="./usr/bin/adudiff
./usr/include/adudiffapi.h
./usr/include/legacy_adudiffapply.h
./usr/lib/cmake/adudiffapi/adudiffapiConfig.cmake
./usr/lib/cmake/adudiffapi/adudiffapiConfigVersion.cmake
./usr/lib/libadudiffapi.so
./usr/lib/pkgconfig/adudiffapi.pc
./usr/share/bash-completion/completions/adudiff
./usr/share/fish/vendor_completions.d/adudiff.fish
$(cd "$root/pkg/man" && ls -- *.1 | sed 's|^|./usr/share/man/man1/|; s|$|.gz|')
./usr/share/zsh/vendor-completions/_adudiff"
expected_files=$(sort <<<"$expected_files")

for deb in "$@"; do
    [ -f "$deb" ] || fail "$deb: no such file"
    arch=$(dpkg-deb -f "$deb" Architecture)
    case "$arch" in
        amd64) machine='Advanced Micro Devices X86-64' ldd=(ldd) run=() ;;
        arm64)
            machine=AArch64
            ldd=(qemu-aarch64 -L /usr/aarch64-linux-gnu /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 --list)
            run=(qemu-aarch64 -L /usr/aarch64-linux-gnu) ;;
        armhf)
            machine=ARM
            ldd=(qemu-arm -L /usr/arm-linux-gnueabihf /usr/arm-linux-gnueabihf/lib/ld-linux-armhf.so.3 --list)
            run=(qemu-arm -L /usr/arm-linux-gnueabihf) ;;
        *) fail "$deb: unexpected architecture $arch" ;;
    esac
    echo "== $(basename "$deb") ($arch)"

    # Control fields.
    [ "$(dpkg-deb -f "$deb" Package)" = adudiffapi ] || fail "$deb: Package"
    case "$(basename "$deb")" in *_"$arch".deb) ;; *) fail "$deb: file name does not end in _$arch.deb" ;; esac
    depends=$(dpkg-deb -f "$deb" Depends)
    grep -q 'libc6' <<<"$depends" || fail "$deb: Depends lacks libc6: $depends"
    [ "$(dpkg-deb -f "$deb" Conflicts)" = ms-adu_diffs ] || fail "$deb: Conflicts"
    [ "$(dpkg-deb -f "$deb" Replaces)" = ms-adu_diffs ] || fail "$deb: Replaces"
    grep -q ms-adu_diffs <<<"$(dpkg-deb -f "$deb" Provides)" || fail "$deb: Provides"
    echo "control: Package adudiffapi, Architecture $arch, Depends: $depends"

    # Contents: exactly the expected files, plus the package's own docs.
    files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | grep -v '^./usr/share/doc/adudiffapi/' | sort)
    [ "$files" = "$expected_files" ] || fail "$deb: contents differ:
$files
--- expected
$expected_files"
    echo "contents: $(wc -l <<<"$files") files as expected (+ usr/share/doc/adudiffapi/)"

    tmp=$(mktemp -d)
    dpkg-deb -x "$deb" "$tmp"
    lib=$tmp/usr/lib/libadudiffapi.so
    bin=$tmp/usr/bin/adudiff

    # ELF: machine, SONAME, NODELETE, no RPATH, exports.
    for f in "$lib" "$bin"; do
        readelf -h "$f" | grep -q "Machine:.*$machine" || fail "$deb: ${f#"$tmp"} is not $machine"
    done
    dyn=$(readelf -d "$lib")
    grep -q 'Library soname: \[libadudiffapi.so\]' <<<"$dyn" || fail "$deb: SONAME"
    grep 'FLAGS_1' <<<"$dyn" | grep -q NODELETE || fail "$deb: no DF_1_NODELETE"
    if grep -qE '\((RPATH|RUNPATH)\)' <<<"$dyn"; then fail "$deb: RPATH/RUNPATH"; fi
    exported=$(readelf --dyn-syms -W "$lib" | awk '$5 == "GLOBAL" && $7 != "UND" { sub(/@.*/, "", $8); print $8 }' | sort)
    [ "$exported" = "$expected_exports" ] || fail "$deb: exports differ from libadudiffapi.map:
$exported"
    echo "elf: $machine, SONAME libadudiffapi.so, NODELETE, no RPATH, $(wc -l <<<"$exported") exports = libadudiffapi.map"

    # Runtime dependencies through the target's loader: all found, only libc-family libraries
    # (zlib, zstd, bzip2 and Rust's std are linked in statically).
    for f in "$lib" "$bin"; do
        deps=$("${ldd[@]}" "$f" 2>&1) || fail "$deb: ldd ${f#"$tmp"}: $deps"
        if grep -q 'not found' <<<"$deps"; then fail "$deb: ${f#"$tmp"}: $deps"; fi
        names=$(awk '/=>/ { n = split($1, p, "/"); print p[n] }' <<<"$deps" | sort | tr '\n' ' ')
        for n in $names; do
            case "$n" in
                libc.so.6 | libm.so.6 | libgcc_s.so.1 | libdl.so.2 | libpthread.so.0 | librt.so.1 | ld-linux*) ;;
                linux-vdso.so.1) ;;
                *) fail "$deb: ${f#"$tmp"} needs $n: $deps" ;;
            esac
        done
        echo "ldd ${f#"$tmp/"}: $names"
    done

    # The packaged CLI starts on its architecture.
    "${run[@]}" "$bin" --help >/dev/null 2>&1 || "${run[@]}" "$bin" --version >/dev/null ||
        fail "$deb: usr/bin/adudiff does not start"
    echo "adudiff: starts ($arch)"
    rm -rf "$tmp"
done
echo "check-debs: OK ($# packages)"
