#!/usr/bin/env bash
# Checks the Yocto layer (meta-adudiffapi/) without bitbake. Fails (non-zero) on the first
# failing step.
#
#   scripts/yocto-check.sh [step...]     steps: lint vendor-resolve vendor-check
#                                        (default: lint vendor-resolve)
#   scripts/yocto-check.sh vendor-into DIR
#                                        unpacks the recipe's crates into DIR/crates and prints
#                                        the cargo arguments that build offline from them
#                                        (scripts/arm-ci.sh builds arm64 this way)
#
# lint            oelint-adv (pip install oelint-adv) on the recipe and layer.conf, for every
#                 release in LAYERSERIES_COMPAT, at every severity (info included); the
#                 LIC_FILES_CHKSUM md5 sums against the files. (tests/yocto.rs checks the crate
#                 list against Cargo.lock.)
# vendor-resolve  what bitbake's cargo class sets up, minus bitbake: the recipe's crates (checked
#                 against its checksums) unpacked into a directory and crates.io replaced by it;
#                 then cargo resolves the workspace and the device library's tree for
#                 $YOCTO_CHECK_TARGET (default aarch64-unknown-linux-gnu) with --offline --frozen.
# vendor-check    the same vendored crates, then `cargo check` of the device library for that
#                 target (needs its cross toolchain: scripts/arm-ci.sh step yocto-full sets it
#                 up and exports RUSTC, the linker, CC_<target>, the sysroot). CARGO (default
#                 cargo) is honoured by both.
set -Eeuo pipefail
trap 'echo "yocto-check: FAILED (line $LINENO, exit $?): $BASH_COMMAND" >&2' ERR

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
layer=meta-adudiffapi
recipe=$layer/recipes-support/adudiffapi/adudiffapi_0.1.0.bb
target=${YOCTO_CHECK_TARGET:-aarch64-unknown-linux-gnu}
cargo=${CARGO:-cargo}
# The cargo arguments that select the device library (as the recipe's CARGO_BUILD_FLAGS).
LIB_ARGS="-p adudiffapi --lib"

die() {
    echo "yocto-check: FAILED: $*" >&2
    exit 1
}

step_lint() {
    command -v oelint-adv >/dev/null || die "oelint-adv not found (pip install oelint-adv)"
    local releases release out
    releases=$(sed -n 's/^LAYERSERIES_COMPAT_adudiffapi = "\(.*\)"$/\1/p' "$layer/conf/layer.conf")
    [ -n "$releases" ] || die "no LAYERSERIES_COMPAT_adudiffapi in $layer/conf/layer.conf"
    for release in $releases; do
        # Suppressed, with the reasons in the recipe: HOMEPAGE and BUGTRACKER (the project has
        # none of its own yet), BBCLASSEXTEND (a target library has no native use).
        out=$(oelint-adv --quiet --release "$release" \
            --suppress oelint.var.mandatoryvar.HOMEPAGE \
            --suppress oelint.var.suggestedvar.BUGTRACKER \
            --suppress oelint.var.bbclassextend \
            "$recipe" "$layer/conf/layer.conf" 2>&1) || die "oelint-adv --release $release: $out"
        [ -z "$out" ] || die "oelint-adv --release $release reports: $out"
        echo "yocto-check: oelint-adv $(oelint-adv --version 2>&1 | tail -n 1) --release $release: clean (all severities)"
    done
    local file sum
    while read -r file sum; do
        [ "$(md5sum <"$file" | cut -d' ' -f1)" = "$sum" ] || die "LIC_FILES_CHKSUM: md5 of $file is not $sum"
    done < <(grep -o 'file://[^; ]*;md5=[0-9a-f]*' "$recipe" | sed 's|file://\(.*\);md5=\(.*\)|\1 \2|')
    echo "yocto-check: LIC_FILES_CHKSUM matches"
}

# vendor_from_recipe <dir>: what bitbake's crate fetcher does with the recipe's crate list:
# every `crate://crates.io/NAME/VERSION` of adudiffapi-crates.inc, its .crate file checked
# against the recipe's SRC_URI[NAME-VERSION.sha256sum] and unpacked into <dir>/NAME-VERSION
# with a .cargo-checksum.json, ready to replace crates.io. The .crate files come from cargo's
# download cache ($CARGO_HOME/registry/cache, filled by `cargo fetch`) or from crates.io.
# (Not `cargo vendor`: it waits for the package cache lock as long as any other cargo runs, and
# it would vendor Cargo.lock rather than the recipe's list.)
vendor_from_recipe() {
    python3 - "$1" "$layer/recipes-support/adudiffapi/adudiffapi-crates.inc" <<'PY'
import glob, hashlib, io, json, os, re, sys, tarfile, urllib.request
out, inc = sys.argv[1], open(sys.argv[2]).read()
sums = dict(re.findall(r'SRC_URI\[(.+?)\.sha256sum\] = "([0-9a-f]{64})"', inc))
crates = re.findall(r'crate://crates\.io/([^/"]+)/([^/"\s]+)', inc)
home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
for name, version in crates:
    key = f"{name}-{version}"
    cached = glob.glob(f"{home}/registry/cache/*/{key}.crate")
    if cached:
        data = open(cached[0], "rb").read()
    else:
        url = f"https://static.crates.io/crates/{name}/{key}.crate"
        data = urllib.request.urlopen(url, timeout=60).read()
    if hashlib.sha256(data).hexdigest() != sums.get(key):
        sys.exit(f"yocto-check: {key}.crate does not match the recipe's sha256sum")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        # The "data" filter (no links out, no devices) where Python has it (3.11.4+, 3.12).
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(out, **safe)
    with open(f"{out}/{key}/.cargo-checksum.json", "w") as f:
        json.dump({"files": {}, "package": sums[key]}, f)
print(len(crates))
PY
}

# vendor_source_args <dir>: cargo arguments replacing crates.io with the vendored <dir>.
vendor_source_args() {
    printf '%s\n' --offline --frozen \
        --config "source.crates-io.replace-with='yocto-vendored'" \
        --config "source.yocto-vendored.directory='$1'"
}

# with_vendored <function>: the recipe's crates unpacked into a temporary directory (removed
# afterwards), then <function> <crates dir> <crate count>.
with_vendored() {
    local vendor n
    vendor=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$vendor'" RETURN
    mkdir -p "$vendor/crates"
    n=$(vendor_from_recipe "$vendor/crates")
    "$1" "$vendor" "$n"
}

# vendor-resolve: cargo resolves the workspace and the device library's dependency tree for the
# target from the recipe's crates alone (seconds): a crate missing from the recipe, or one that
# differs from Cargo.lock, fails here.
resolve_from() {
    local vendor=$1 n=$2 args
    mapfile -t args < <(vendor_source_args "$vendor/crates")
    "$cargo" metadata --format-version 1 --filter-platform "$target" "${args[@]}" >"$vendor/metadata.json"
    # shellcheck disable=SC2086
    "$cargo" tree -p adudiffapi -e normal,build --target "$target" "${args[@]}" >/dev/null
    echo "yocto-check: the workspace resolves for $target offline (--frozen) from the recipe's $n crates"
}

# vendor-check: the device library checked from the recipe's crates (`cargo check`: every build
# script runs, the C parts of the dependencies compile, every crate is type-checked; ~2.5 min on
# 2 cores). Its own target directory: the vendored sources live in a temporary directory, so
# nothing compiled from them could be reused. --ignore-rust-version: preflate-rs declares Rust
# 1.89 and builds with our MSRV 1.85 (Cargo.toml); Yocto's own Rust (whinlatter 1.90, wrynose
# 1.94) needs no such flag.
check_from() {
    local vendor=$1 n=$2 args
    mapfile -t args < <(vendor_source_args "$vendor/crates")
    # shellcheck disable=SC2086
    CARGO_TARGET_DIR="$vendor/target" "$cargo" check $LIB_ARGS --release --ignore-rust-version \
        --target "$target" "${args[@]}" --message-format=short
    [ -n "$(find "$vendor/target/$target/release/deps" -name 'libadudiffapi-*.rmeta')" ] ||
        die "cargo check left no metadata for adudiffapi"
    echo "yocto-check: the device library checked for $target offline (--frozen) from the recipe's $n crates"
}

steps=("$@")
[ "${#steps[@]}" -gt 0 ] || steps=(lint vendor-resolve)
for s in "${steps[@]}"; do
    case "$s" in
        lint) step_lint ;;
        vendor-into)
            # vendor-into DIR: only unpack the recipe's crates into DIR/crates (emptied first)
            # and print the cargo arguments that build from them, one per line.
            dir=${steps[1]:?vendor-into needs a directory}
            rm -rf "$dir/crates"
            mkdir -p "$dir/crates"
            vendor_from_recipe "$dir/crates" >/dev/null
            vendor_source_args "$dir/crates"
            exit 0
            ;;
        vendor-resolve) with_vendored resolve_from ;;
        vendor-check) with_vendored check_from ;;
        *) die "unknown step $s (lint vendor-resolve vendor-check)" ;;
    esac
done
echo "yocto-check: OK (${steps[*]})"
