#!/usr/bin/env bash
# Checks the adudiffapi Debian packages of one or more architectures (amd64, arm64, armhf): for
# each architecture the three packages libadudiffapi (the library the Device Update agent
# loads), libadudiffapi-dev (headers, pkg-config, CMake) and adudiff (the CLI, man pages,
# completions) must be among the arguments.
#
# Per package: control fields (dpkg-deb -f), the exact file list (dpkg-deb -c), stripped ELF
# files of the right machine; for the library the properties the agent relies on (SONAME
# libadudiffapi.so, DF_1_NODELETE, no RPATH, exactly the exports of libadudiffapi.map) and its
# runtime dependencies resolved by the target's own dynamic loader ("ldd": the host's for
# amd64, the cross sysroot's loader under qemu-user for arm64/armhf, sysroot /usr/<gnu-triple>
# from Debian's libc6-*-cross); the packaged adudiff starts. Then `lintian` (no errors; the
# other tags are printed), and per architecture a scratch-root install with
# `dpkg --root=<scratch> --force-depends --force-architecture -i` of all three (a minimal dpkg
# database, never the machine's): `dpkg -S` must name the expected owner of every file.
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

for tool in dpkg dpkg-deb readelf lintian; do
    command -v "$tool" >/dev/null || fail "$tool not found"
done

expected_exports=$(sed -n '/global:/,/local:/p' "$root/libadudiffapi.map" | tr -d ' ;' |
    grep -v -e 'global:' -e 'local:' -e '^$' | sort)
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$root/Cargo.toml" | head -n 1)

# expected_files <package>: the package's files (directories excluded, its own
# /usr/share/doc/<package>/ left out), as dpkg-deb -c lists them.
expected_files() {
    case "$1" in
        libadudiffapi)
            printf '%s\n' ./usr/lib/libadudiffapi.so ./usr/share/lintian/overrides/libadudiffapi ;;
        libadudiffapi-dev)
            printf '%s\n' ./usr/include/adudiffapi.h ./usr/include/legacy_adudiffapply.h \
                ./usr/lib/cmake/adudiffapi/adudiffapiConfig.cmake \
                ./usr/lib/cmake/adudiffapi/adudiffapiConfigVersion.cmake \
                ./usr/lib/pkgconfig/adudiffapi.pc ./usr/share/lintian/overrides/libadudiffapi-dev ;;
        adudiff)
            printf '%s\n' ./usr/bin/adudiff \
                ./usr/share/bash-completion/completions/adudiff \
                ./usr/share/fish/vendor_completions.d/adudiff.fish \
                ./usr/share/lintian/overrides/adudiff \
                ./usr/share/zsh/vendor-completions/_adudiff
            (cd "$root/pkg/man" && ls -- *.1) | sed 's|^|./usr/share/man/man1/|; s|$|.gz|' ;;
        *) fail "unexpected package $1" ;;
    esac | sort
}

arch_tools() { # sets machine, ldd, run for Debian architecture $1
    case "$1" in
        amd64) machine='Advanced Micro Devices X86-64' ldd=(ldd) run=() ;;
        arm64)
            machine=AArch64
            ldd=(qemu-aarch64 -L /usr/aarch64-linux-gnu /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 --list)
            run=(qemu-aarch64 -L /usr/aarch64-linux-gnu) ;;
        armhf)
            machine=ARM
            ldd=(qemu-arm -L /usr/arm-linux-gnueabihf /usr/arm-linux-gnueabihf/lib/ld-linux-armhf.so.3 --list)
            run=(qemu-arm -L /usr/arm-linux-gnueabihf) ;;
        *) fail "unexpected architecture $1" ;;
    esac
}

# check_elf_file <deb> <file>: the right machine, stripped (no .symtab, no .debug_* sections),
# every needed library found by the target's loader and only libc-family ones (zlib, zstd,
# bzip2 and Rust's std are linked in statically).
check_elf_file() {
    local deb=$1 f=$2 sections deps names n
    readelf -h "$f" | grep -q "Machine:.*$machine" || fail "$deb: ${f##*/} is not $machine"
    sections=$(readelf -S -W "$f")
    if grep -qE ' \.(symtab|debug_[a-z]+) ' <<<"$sections"; then fail "$deb: ${f##*/} is not stripped"; fi
    deps=$("${ldd[@]}" "$f" 2>&1) || fail "$deb: ldd ${f##*/}: $deps"
    if grep -q 'not found' <<<"$deps"; then fail "$deb: ${f##*/}: $deps"; fi
    names=$(awk '/=>/ { n = split($1, p, "/"); print p[n] }' <<<"$deps" | sort | tr '\n' ' ')
    for n in $names; do
        case "$n" in
            libc.so.6 | libm.so.6 | libgcc_s.so.1 | libdl.so.2 | libpthread.so.0 | librt.so.1 | ld-linux*) ;;
            linux-vdso.so.1) ;;
            *) fail "$deb: ${f##*/} needs $n: $deps" ;;
        esac
    done
    echo "elf ${f##*/}: $machine, stripped, needs $names"
}

# check_library <deb> <lib>: what the agent relies on.
check_library() {
    local deb=$1 lib=$2 dyn exported
    dyn=$(readelf -d "$lib")
    grep -q 'Library soname: \[libadudiffapi.so\]' <<<"$dyn" || fail "$deb: SONAME"
    grep 'FLAGS_1' <<<"$dyn" | grep -q NODELETE || fail "$deb: no DF_1_NODELETE"
    if grep -qE '\((RPATH|RUNPATH)\)' <<<"$dyn"; then fail "$deb: RPATH/RUNPATH"; fi
    exported=$(readelf --dyn-syms -W "$lib" | awk '$5 == "GLOBAL" && $7 != "UND" { sub(/@.*/, "", $8); print $8 }' | sort)
    [ "$exported" = "$expected_exports" ] || fail "$deb: exports differ from libadudiffapi.map:
$exported"
    echo "library: SONAME libadudiffapi.so, NODELETE, no RPATH, $(wc -l <<<"$exported") exports = libadudiffapi.map"
}

# check_control <deb> <package> <arch>
check_control() {
    local deb=$1 package=$2 arch=$3 field
    field() { dpkg-deb -f "$deb" "$1"; }
    case "$(basename "$deb")" in *_"$arch".deb) ;; *) fail "$deb: file name does not end in _$arch.deb" ;; esac
    case "$(field Version)" in "$version"-*) ;; *) fail "$deb: Version $(field Version) is not $version-<revision>" ;; esac
    [ -z "$(field Provides)" ] || fail "$deb: Provides $(field Provides)"
    case "$package" in
        libadudiffapi)
            grep -q 'libc6' <<<"$(field Depends)" || fail "$deb: Depends lacks libc6: $(field Depends)"
            [ "$(field Conflicts)" = ms-adu_diffs ] || fail "$deb: Conflicts"
            [ "$(field Replaces)" = ms-adu_diffs ] || fail "$deb: Replaces"
            grep -qx 'activate-noawait ldconfig' <<<"$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./triggers)" ||
                fail "$deb: no ldconfig trigger" ;;
        libadudiffapi-dev)
            [ "$(field Depends)" = "libadudiffapi (= $(field Version))" ] ||
                fail "$deb: Depends is not libadudiffapi (= $(field Version)): $(field Depends)" ;;
        adudiff)
            grep -q 'libc6' <<<"$(field Depends)" || fail "$deb: Depends lacks libc6: $(field Depends)" ;;
    esac
    echo "control: $package $(field Version) $arch; Depends: $(field Depends)"
}

check_package() { # check_package <deb>: sets pkg and arch
    local deb=$1 files expected tmp
    pkg=$(dpkg-deb -f "$deb" Package)
    arch=$(dpkg-deb -f "$deb" Architecture)
    arch_tools "$arch"
    echo "== $(basename "$deb") ($pkg, $arch)"
    check_control "$deb" "$pkg" "$arch"
    files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | grep -v "^./usr/share/doc/$pkg/" | sort)
    expected=$(expected_files "$pkg")
    [ "$files" = "$expected" ] || fail "$deb: contents differ:
$files
--- expected
$expected"
    # (a here-string, not a pipe: grep -q exits at the first match, and under pipefail the
    # listing's SIGPIPE would fail the check)
    grep -q "./usr/share/doc/$pkg/changelog.Debian.gz" <<<"$(dpkg-deb -c "$deb")" || fail "$deb: no changelog"
    echo "contents: $(wc -l <<<"$files") files as expected (+ usr/share/doc/$pkg/)"
    tmp=$(mktemp -d)
    dpkg-deb -x "$deb" "$tmp"
    case "$pkg" in
        libadudiffapi)
            check_library "$deb" "$tmp/usr/lib/libadudiffapi.so"
            check_elf_file "$deb" "$tmp/usr/lib/libadudiffapi.so" ;;
        adudiff)
            check_elf_file "$deb" "$tmp/usr/bin/adudiff"
            "${run[@]}" "$tmp/usr/bin/adudiff" --version >/dev/null || fail "$deb: usr/bin/adudiff does not start"
            echo "adudiff: starts ($arch)" ;;
    esac
    rm -rf "$tmp"
}

# scratch_install <arch> <deb>...: dpkg -i into a scratch root, then dpkg -S for every file.
scratch_install() {
    local arch=$1 scratch deb owner f p
    shift
    scratch=$(mktemp -d)
    mkdir -p "$scratch/var/lib/dpkg/info" "$scratch/var/lib/dpkg/updates" "$scratch/var/lib/dpkg/triggers"
    : >"$scratch/var/lib/dpkg/status"
    : >"$scratch/var/lib/dpkg/available"
    # No libc6 in the scratch database (--force-depends), foreign architectures
    # (--force-architecture); the packages have no maintainer scripts, and the ldconfig trigger
    # has no interested package in the scratch database.
    local log
    log=$(dpkg --root="$scratch" --force-depends --force-architecture --force-script-chrootless \
        -i "$@" 2>&1) || fail "dpkg -i ($arch): $log"
    for deb in "$@"; do
        p=$(dpkg-deb -f "$deb" Package)
        for f in $(expected_files "$p"); do
            owner=$(dpkg --root="$scratch" -S "${f#.}" | cut -d: -f1)
            [ "$owner" = "$p" ] || fail "$arch: dpkg -S ${f#.}: $owner, expected $p"
        done
    done
    [ -f "$scratch/usr/lib/libadudiffapi.so" ] || fail "$arch: no usr/lib/libadudiffapi.so"
    echo "== dpkg --root (scratch) -i: $(dpkg --root="$scratch" -l | grep -c '^ii') packages installed ($arch); dpkg -S names the expected owner of every file"
    rm -rf "$scratch"
}

declare -A per_arch=()
for deb in "$@"; do
    [ -f "$deb" ] || fail "$deb: no such file"
    check_package "$deb"
    per_arch[$arch]+="$pkg "
done
for a in "${!per_arch[@]}"; do
    for p in libadudiffapi libadudiffapi-dev adudiff; do
        grep -qw -- "$p" <<<"${per_arch[$a]}" || fail "$a: no $p package among the arguments"
    done
done

# lintian: no errors. One run for every package (its start-up dominates).
echo "== lintian"
lint=$(lintian --no-cfg --tag-display-limit 0 "$@" 2>&1) || true
[ -z "$lint" ] || printf '%s\n' "$lint"
if grep -q '^E: ' <<<"$lint"; then fail "lintian reported errors"; fi
echo "lintian: no errors ($(grep -c '^[WIP]: ' <<<"$lint" || true) other tags)"

for a in "${!per_arch[@]}"; do
    debs=()
    for deb in "$@"; do
        [ "$(dpkg-deb -f "$deb" Architecture)" = "$a" ] && debs+=("$deb")
    done
    scratch_install "$a" "${debs[@]}"
done
echo "check-debs: OK ($# packages)"
