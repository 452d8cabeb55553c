#!/bin/sh
# Build libadudiffapi (release) and install it, its headers, pkg-config and CMake files and the
# adudiff CLI.
#
#   [PREFIX=/usr/local] [DESTDIR=] scripts/install.sh [--no-build]
#
# Installs (all under $DESTDIR$PREFIX):
#   lib/libadudiffapi.so                          (SONAME libadudiffapi.so, as the agent dlopens it)
#   include/adudiffapi.h, include/legacy_adudiffapply.h
#   lib/pkgconfig/adudiffapi.pc                   (prefix=$PREFIX)
#   lib/cmake/adudiffapi/adudiffapiConfig.cmake, adudiffapiConfigVersion.cmake
#   bin/adudiff
# --no-build installs what is already in $CARGO_TARGET_DIR/release (default target/release).
# Runs ldconfig afterwards only for a real install (DESTDIR empty) as root.
set -eu

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
CARGO=${CARGO:-cargo}
build=1

for arg in "$@"; do
    case "$arg" in
        --no-build) build=0 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

case "$PREFIX" in
    /*) ;;
    *) echo "install.sh: PREFIX must be an absolute path (got '$PREFIX')" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
release=$target_dir/release
version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)

if [ "$build" = 1 ]; then
    # Each package on its own (-p), as the Debian packages are built: a workspace-wide build
    # could unify dependency features differently.
    "$CARGO" build --release --locked -p adudiffapi --lib
    "$CARGO" build --release --locked -p adudiff --bin adudiff
fi
for f in "$release/libadudiffapi.so" "$release/adudiff"; do
    [ -f "$f" ] || { echo "install.sh: $f is missing (build first)" >&2; exit 1; }
done

dest=$DESTDIR$PREFIX
install -d "$dest/lib" "$dest/include" "$dest/bin" "$dest/lib/pkgconfig" "$dest/lib/cmake/adudiffapi"
install -m 0644 "$release/libadudiffapi.so" "$dest/lib/libadudiffapi.so"
install -m 0755 "$release/adudiff" "$dest/bin/adudiff"
install -m 0644 include/adudiffapi.h include/legacy_adudiffapply.h "$dest/include/"
install -m 0644 cmake/adudiffapiConfig.cmake cmake/adudiffapiConfigVersion.cmake \
    "$dest/lib/cmake/adudiffapi/"
pc_tmp=$(mktemp)
trap 'rm -f "$pc_tmp"' EXIT
sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@VERSION@|$version|g" pkg/adudiffapi.pc.in > "$pc_tmp"
install -m 0644 "$pc_tmp" "$dest/lib/pkgconfig/adudiffapi.pc"

echo "installed adudiffapi $version into $dest"
if [ -z "$DESTDIR" ]; then
    if [ "$(id -u)" = 0 ] && command -v ldconfig >/dev/null 2>&1; then
        ldconfig
    else
        echo "note: run 'ldconfig' as root so that dlopen(\"libadudiffapi.so\") finds $PREFIX/lib"
    fi
fi
