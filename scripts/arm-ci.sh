#!/usr/bin/env bash
# ARM CI: cross-builds the library, `adudiff` and the C harness for
# arm64 (aarch64-unknown-linux-gnu) and armv7 (armv7-unknown-linux-gnueabihf) with Debian's cross
# toolchains, runs the emulated test subset under qemu-user, and builds and checks the .deb
# packages for amd64, arm64 and armhf. Fails (non-zero) on the first failing step.
#
#   scripts/arm-ci.sh [step...]      steps: setup build test deb yocto (default: these, in order)
#                                    and yocto-full (yocto + a cargo check from vendored crates)
#
# The ARM Rust standard library comes from Debian, not rustup (rustup cannot download targets
# here): Debian's rustc-web (host compiler) plus the rlibs of libstd-rust-web-dev:arm64/:armhf
# of the same version, unpacked into a private sysroot ($ARM_SYSROOT) — never installed as
# foreign-architecture packages (no `dpkg --add-architecture`: the ARM indexes are kept in a
# private apt state directory, $ARM_APT_DIR), so the machine's packages and apt configuration are
# untouched. The version is the newest one that Debian ships for all three architectures within
# the workspace's declared MSRV (`rust-version` in Cargo.toml, 1.85: the ARM builds and
# scripts/msrv.sh then check the version we promise, whatever newer Rust a Debian security update
# brings — bookworm-security moved to 1.96 on 2026-12-06); the newest overall only when Debian no
# longer ships that one (override: ARM_RUST_VERSION).
#
# Environment:
#   ARM_TARGETS        default "aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf"
#   ARM_SYSROOT        default /opt/adudiffapi-arm-rust/<version>
#   ARM_APT_DIR        private apt lists/cache for the ARM indexes (default /opt/adudiffapi-arm-rust/apt)
#   ARM_TESTS          the emulated tests of both targets (default: the subset below)
#   ARM64_TESTS        extra tests on arm64 only (default: the list below, none if ARM_TESTS is set)
#   ARM32_TESTS        extra tests on armv7 only (default: the list below, none if ARM_TESTS is set)
#   ARM_TEST_FILTER    optional: extra arguments for every emulated test binary (libtest filter)
#   ARM_CI_TIMINGS     file receiving "step seconds" lines (default $target_dir/arm-ci-timings.txt)
#   CARGO_TARGET_DIR   target directory (default: target/ of the checkout)
#   SKIP_ARM_CI=1      print a notice and exit 0 (for machines that cannot run it)
set -Eeuo pipefail
trap 'echo "arm-ci: FAILED (line $LINENO, exit $?): $BASH_COMMAND" >&2' ERR

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ "${SKIP_ARM_CI:-0}" = 1 ]; then
    echo "arm-ci: SKIP_ARM_CI=1, not running"
    exit 0
fi

targets=${ARM_TARGETS:-aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf}
target_dir=${CARGO_TARGET_DIR:-$root/target}
timings=${ARM_CI_TIMINGS:-$target_dir/arm-ci-timings.txt}
steps=("$@")
[ "${#steps[@]}" -gt 0 ] || steps=(setup build test deb yocto)

# The emulated subset (docs/CI.md). On both targets: the unit tests of the workspace's libraries
# (`lib`: adudiff-core, adudiffapi and adudiff-gen), every golden vector through the C ABI in
# process (vectors), the agent-faithful dlopen harness (c_abi), sessions (ffi_sessions) and the
# minimized fuzz inputs (fuzz_corpus). Not emulated: crash, faults and hostile re-execute their
# own test binary as a child (with RLIMIT_AS/RLIMIT_FSIZE/setuid), which an emulated process
# cannot exec without binfmt_misc (and RLIMIT_AS would limit qemu itself); resources and
# pigz_limits mount file systems and limit the process (root, native); layering reads the
# sources, the same on every target; packaging drives the host's cargo, cmake and dpkg (the deb
# step below covers it per architecture). Override with ARM_TESTS="lib vectors ...".
read -r -a emulated_tests <<<"${ARM_TESTS:-lib vectors c_abi ffi_sessions fuzz_corpus}"
# Per architecture, unless ARM_TESTS is set (then none); ARM64_TESTS / ARM32_TESTS override.
# arm64, the common device: the extended format both ways (extended, extended_zstd,
# extended_pigz: the generator's analysis and the applier's deflate_reconstruct and
# zstd_compression_exact, the committed fixture deltas too), the GNU gzip re-encoder against the
# host's gzip (pardeflate_gzip), the generator and the CLI end to end (generate, cli, release,
# recompress, ext4_parse).
# armv7, the 32-bit target that differs from the native run (usize, atomics, address space):
# large_images applies a delta between sparse images over 2 GiB through the C functions and
# bounds the emulated process's address space (~1 min under qemu-arm); the parallel deflate
# encoder's own tests (pardeflate_parallel, pardeflate_diff, pardeflate_stream,
# pardeflate_exactness) and the thread tests (concurrency, image_files).
if [ -n "${ARM64_TESTS+set}" ]; then
    read -r -a emulated_tests_64 <<<"$ARM64_TESTS"
elif [ -n "${ARM_TESTS:-}" ]; then
    emulated_tests_64=()
else
    emulated_tests_64=(generate cli release recompress ext4_parse pardeflate_gzip extended extended_zstd extended_pigz)
fi
if [ -n "${ARM32_TESTS+set}" ]; then
    read -r -a emulated_tests_32 <<<"$ARM32_TESTS"
elif [ -n "${ARM_TESTS:-}" ]; then
    emulated_tests_32=()
else
    emulated_tests_32=(pardeflate_parallel pardeflate_diff pardeflate_stream pardeflate_exactness concurrency image_files large_images)
fi

tests_for() { # tests_for <target>: the emulated test names for that target, one per line
    printf '%s\n' "${emulated_tests[@]}"
    case "$1" in
        aarch64-*) [ "${#emulated_tests_64[@]}" -eq 0 ] || printf '%s\n' "${emulated_tests_64[@]}" ;;
        armv7-*) [ "${#emulated_tests_32[@]}" -eq 0 ] || printf '%s\n' "${emulated_tests_32[@]}" ;;
    esac
}

die() {
    echo "arm-ci: FAILED: $*" >&2
    exit 1
}

mkdir -p "$(dirname "$timings")"
timed() { # timed <label> <command...>: runs it, appends "<label> <seconds>" to $timings
    local label=$1 start end
    shift
    start=$(date +%s)
    echo "arm-ci: == $label"
    "$@"
    end=$(date +%s)
    echo "$label $((end - start))" | tee -a "$timings"
}

triple_info() { # sets gnu, deb_arch, qemu, machine for target $1
    case "$1" in
        aarch64-unknown-linux-gnu)
            gnu=aarch64-linux-gnu deb_arch=arm64 qemu=qemu-aarch64 machine=AArch64 ;;
        armv7-unknown-linux-gnueabihf)
            gnu=arm-linux-gnueabihf deb_arch=armhf qemu=qemu-arm machine=ARM ;;
        *) die "unknown target $1" ;;
    esac
}

# ARM package indexes live in a private apt state directory: `dpkg --add-architecture` would
# change the machine's apt configuration for everyone, and one foreign index that fails to
# download (mirror sync) then makes every later `apt-get update` fail, .ci/run's own included.
apt_dir=${ARM_APT_DIR:-/opt/adudiffapi-arm-rust/apt}
priv_apt() { # priv_apt <apt-get|apt-cache> <args...>, with amd64 + the targets' architectures
    local tool=$1 t
    shift
    local opts=(-o "APT::Architectures::=amd64" -o "Dir::State::Lists=$apt_dir/lists"
        -o "Dir::Cache=$apt_dir/cache" -o "APT::Sandbox::User=root")
    for t in $targets; do
        triple_info "$t"
        opts+=(-o "APT::Architectures::=$deb_arch")
    done
    "$tool" "${opts[@]}" "$@"
}

# The libstd-rust-web-dev version to use: of the versions available for amd64 and every ARM
# target's architecture (security updates may reach amd64 before the other indexes download), the
# newest of the declared MSRV's minor version (rust-version = "1.85" takes 1.85.x), else the
# newest.
pick_version() {
    local archs=(amd64) t
    for t in $targets; do
        triple_info "$t"
        archs+=("$deb_arch")
    done
    local a common msrv
    common=$(for a in "${archs[@]}"; do
        priv_apt apt-cache madison "libstd-rust-web-dev:$a" | awk -F'|' '{gsub(/ /, "", $2); print $2}' | sort -u
    done | sort | uniq -c | awk -v n="${#archs[@]}" '$1 == n { print $2 }' | sort -V)
    msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
    if [ -n "$msrv" ] && grep -q "^${msrv//./\\.}\." <<<"$common"; then
        grep "^${msrv//./\\.}\." <<<"$common" | tail -n 1
    else
        tail -n 1 <<<"$common"
    fi
}

# Debian's rustc/cargo (never the rustup ones earlier in PATH).
DEB_RUSTC=/usr/bin/rustc
DEB_CARGO=/usr/bin/cargo

installed_version() {
    dpkg-query -W -f='${Version}' rustc-web 2>/dev/null || true
}

sysroot_for() {
    echo "${ARM_SYSROOT:-/opt/adudiffapi-arm-rust/$1}"
}

step_setup() {
    command -v apt-get >/dev/null || die "setup needs apt-get (Debian/Ubuntu)"
    export DEBIAN_FRONTEND=noninteractive
    local t archs=()
    for t in $targets; do
        triple_info "$t"
        archs+=("$deb_arch")
    done
    # An index that fails to download (mirror sync) must not stop CI: the version pick below
    # only uses what every architecture's index has, and apt-get install fails if it must.
    apt-get update -qq || echo "arm-ci: apt-get update reported errors; continuing with the indexes it has"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    priv_apt apt-get update -qq ||
        echo "arm-ci: apt-get update (amd64 ${archs[*]} indexes, $apt_dir) reported errors; continuing with the indexes it has"
    local v=${ARM_RUST_VERSION:-$(pick_version)}
    [ -n "$v" ] || die "no libstd-rust-web-dev version common to amd64 ${archs[*]} (apt-cache madison libstd-rust-web-dev:<arch>)"
    echo "arm-ci: Debian Rust $v"
    local pkgs=(qemu-user "rustc-web=$v" "cargo-web=$v" "libstd-rust-web-dev=$v")
    for t in $targets; do
        triple_info "$t"
        pkgs+=("gcc-$gnu" "libc6-dev-$deb_arch-cross")
    done
    # rustc-web pulls libstd-rust-web-<major.minor> (=$v) itself.
    apt-get install -y -qq --no-install-recommends --allow-downgrades "${pkgs[@]}" >/dev/null ||
        die "apt-get install ${pkgs[*]}"
    local sysroot
    sysroot=$(sysroot_for "$v")
    for t in $targets; do
        triple_info "$t"
        if [ -d "$sysroot/lib/rustlib/$t/lib" ]; then continue; fi
        local dl
        dl=$(mktemp -d)
        (cd "$dl" && priv_apt apt-get download -qq "libstd-rust-web-dev:$deb_arch=$v") ||
            die "apt-get download libstd-rust-web-dev:$deb_arch=$v"
        dpkg-deb -x "$dl"/libstd-rust-web-dev_*_"$deb_arch".deb "$dl/x"
        mkdir -p "$sysroot/lib/rustlib"
        cp -a "$dl/x/usr/lib/rustlib/$t" "$sysroot/lib/rustlib/"
        rm -rf "$dl"
    done
    # The host's std (for build scripts and proc macros) is the installed one.
    ln -sfn /usr/lib/rustlib/x86_64-unknown-linux-gnu "$sysroot/lib/rustlib/x86_64-unknown-linux-gnu"
}

# Exports the cargo environment for cross-building target $1 with Debian's toolchain.
cross_env() {
    local v sysroot upper lower
    v=$(installed_version)
    [ -n "$v" ] || die "Debian rustc-web is not installed (run: scripts/arm-ci.sh setup)"
    sysroot=$(sysroot_for "$v")
    [ -d "$sysroot/lib/rustlib/$1/lib" ] || die "no $1 std in $sysroot (run: scripts/arm-ci.sh setup)"
    triple_info "$1"
    upper=$(echo "$1" | tr 'a-z-' 'A-Z_')
    lower=$(echo "$1" | tr '-' '_')
    export RUSTC=$DEB_RUSTC RUSTDOC=/usr/bin/rustdoc
    # No line tables in the ARM builds: the packages are stripped anyway (cargo deb --strip),
    # and the debug info of every crate costs compile and link time under CI's hour.
    export CARGO_PROFILE_RELEASE_DEBUG=0
    export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
    export "CARGO_TARGET_${upper}_RUSTFLAGS=--sysroot=$sysroot"
    export "CARGO_TARGET_${upper}_RUNNER=$qemu -L /usr/$gnu"
    export "CC_${lower}=$gnu-gcc" "AR_${lower}=$gnu-ar"
    export "PKG_CONFIG_SYSROOT_DIR=/usr/$gnu"
}

step_build() {
    "$DEB_RUSTC" --version
    # These builds are the project's MSRV check (.ci/run has no other): the compiler must be the
    # declared rust-version unless ARM_RUST_VERSION chose another on purpose.
    local msrv
    msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
    if [ -z "${ARM_RUST_VERSION:-}" ] && ! "$DEB_RUSTC" --version | grep -q "^rustc ${msrv//./\\.}\.[0-9]"; then
        die "Debian's rustc is not the declared MSRV $msrv: $("$DEB_RUSTC" --version) (set ARM_RUST_VERSION to build anyway)"
    fi
    local t
    for t in $targets; do
        (
            cross_env "$t"
            # arm64 is built the way the Yocto recipe builds it: offline (--frozen) from the
            # recipe's own crate list, each .crate checked against its checksum and unpacked
            # as bitbake's crate fetcher does (scripts/yocto-check.sh vendor-into). The library,
            # adudiff and the tests then prove that list complete at no extra compile cost.
            local source_args=()
            if [ "$t" = aarch64-unknown-linux-gnu ]; then
                mapfile -t source_args < <(scripts/yocto-check.sh vendor-into "$target_dir/yocto-vendor")
                [ "${#source_args[@]}" -gt 0 ] || die "scripts/yocto-check.sh vendor-into printed no cargo arguments"
                echo "arm-ci: $t from the Yocto recipe's vendored crates: ${source_args[*]}"
            fi
            # Each package on its own (-p), as the .debs are built from these artifacts: a
            # workspace-wide build could unify dependency features differently.
            timed "build-release-$t" build_release "$DEB_CARGO" --ignore-rust-version --target "$t" "${source_args[@]}"
            local test_args=() x
            for x in $(tests_for "$t"); do
                if [ "$x" = lib ]; then test_args+=(--lib); else test_args+=(--test "$x"); fi
            done
            timed "build-tests-$t" build_tests "$t" "${source_args[@]}" "${test_args[@]}"
            # The same properties the agent relies on, checked on the ARM cdylib.
            check_elf "$target_dir/$t/release/libadudiffapi.so" "$machine"
            readelf -h "$target_dir/$t/release/adudiff" | grep -q "Machine:.*$machine" || die "adudiff is not $machine"
        )
    done
}

# build_release <cargo> <args...>: the release library (package adudiffapi) and the CLI (package
# adudiff), each built with -p for its own package.
build_release() {
    local cargo=$1
    shift
    "$cargo" build --locked --release "$@" -p adudiffapi --lib
    "$cargo" build --locked --release "$@" -p adudiff --bin adudiff
}

# check_elf <cdylib> <readelf Machine>: SONAME, NODELETE, no RPATH, exactly the map's exports.
check_elf() {
    local lib=$1 want=$2 expected exported dyn
    readelf -h "$lib" | grep -q "Machine:.*$want" || die "$lib: not $want"
    dyn=$(readelf -d "$lib")
    grep -q 'Library soname: \[libadudiffapi.so\]' <<<"$dyn" || die "$lib: SONAME is not libadudiffapi.so"
    grep 'FLAGS_1' <<<"$dyn" | grep -q NODELETE || die "$lib: no DF_1_NODELETE"
    ! grep -qE '\((RPATH|RUNPATH)\)' <<<"$dyn" || die "$lib: has an RPATH/RUNPATH"
    expected=$(sed -n '/global:/,/local:/p' libadudiffapi.map | tr -d ' ;' | grep -v -e 'global:' -e 'local:' -e '^$' | sort)
    exported=$(readelf --dyn-syms -W "$lib" | awk '$5 == "GLOBAL" && $7 != "UND" { sub(/@.*/, "", $8); print $8 }' | sort)
    [ "$exported" = "$expected" ] || die "$lib: exports differ from libadudiffapi.map: $exported"
    echo "arm-ci: $lib: $want, SONAME libadudiffapi.so, NODELETE, exports = libadudiffapi.map"
}

# build_tests <target> <cargo test args...>: builds the emulated test binaries and records their
# paths (from cargo's JSON messages) in $target_dir/<target>/arm-ci-tests.txt.
build_tests() {
    local t=$1
    shift
    "$DEB_CARGO" test --locked --ignore-rust-version --release --target "$t" --no-run --message-format=json "$@" \
        >"$target_dir/$t/arm-ci-tests.json"
    grep -o '"executable":"[^"]*/deps/[^"]*"' "$target_dir/$t/arm-ci-tests.json" | cut -d'"' -f4 \
        >"$target_dir/$t/arm-ci-tests.txt"
    cat "$target_dir/$t/arm-ci-tests.txt"
}

# The test executables of the last build step for target $1.
test_executables() {
    cat "$target_dir/$1/arm-ci-tests.txt" 2>/dev/null || true
}

step_test() {
    local t
    for t in $targets; do
        (
            cross_env "$t"
            command -v "$qemu" >/dev/null || die "$qemu not found (package qemu-user)"
            local runner="$qemu -L /usr/$gnu"
            # The tests compile the C harness with $CC and run it (and adudiff) through
            # ADUDIFFAPI_TEST_RUNNER: an emulated process cannot exec a foreign binary itself.
            export CC=$gnu-gcc ADUDIFFAPI_TEST_RUNNER=$runner
            local exe name
            for exe in $(test_executables "$t"); do
                name=$(basename "$exe")
                name=${name%-*}
                # The unit tests of the workspace's three libraries (`--lib` selects them all).
                case "$name" in
                    adudiffapi) name=lib ;;
                    adudiff_core) name=lib-core ;;
                    adudiff_gen) name=lib-gen ;;
                esac
                echo "== emulated: $t $name ($runner)"
                # shellcheck disable=SC2086
                timed "test-$t-$name" $runner "$exe" ${ARM_TEST_FILTER:-}
            done
            [ -n "$(test_executables "$t")" ] || die "no test executables for $t (run the build step)"
        )
    done
}

# make_debs <out dir> [cargo-deb args...]: the three packages from the release builds (no new
# build), each with -p for its own crate: libadudiffapi, libadudiffapi-dev (variant dev of the
# library's crate), adudiff. --strip: the release profile keeps line tables (debug = 1); the
# packages carry none. deb_env: extra environment for cargo-deb (the target's strip).
deb_env=()
make_debs() {
    local out=$1
    shift
    env "${deb_env[@]}" cargo deb --no-build --strip "$@" -p adudiffapi --output "$out/"
    env "${deb_env[@]}" cargo deb --no-build --strip "$@" -p adudiffapi --variant dev --output "$out/"
    env "${deb_env[@]}" cargo deb --no-build --strip "$@" -p adudiff --output "$out/"
}

step_deb() {
    local t
    command -v cargo-deb >/dev/null || die "cargo-deb not installed (cargo install cargo-deb --locked)"
    local out=$target_dir/debian-all
    rm -rf "$out"
    mkdir -p "$out"
    # amd64 with the project's own toolchain (the one `cargo test` uses; its packaging test has
    # made this release build already).
    (
        unset RUSTC
        timed "build-release-amd64" build_release cargo
        timed "deb-amd64" make_debs "$out"
    )
    for t in $targets; do
        (
            cross_env "$t"
            [ -f "$target_dir/$t/release/libadudiffapi.so" ] || die "no $t release build (run the build step)"
            [ -f "$target_dir/$t/release/adudiff" ] || die "no $t adudiff build (run the build step)"
            # The target's strip (cargo-deb looks up STRIP_<debian triple>).
            deb_env=("STRIP_$gnu=/usr/bin/$gnu-strip")
            timed "deb-$deb_arch" make_debs "$out" --target "$t"
        )
    done
    # Every package: fields, files, ELF, lintian (no errors), scratch-root dpkg install.
    timed "check-debs" scripts/check-debs.sh "$out"/*.deb || die "scripts/check-debs.sh"
}

# The Yocto layer without bitbake (scripts/yocto-check.sh): oelint-adv. (The build step has built
# the library, adudiff and the tests for arm64 offline from the recipe's vendored crates.)
# yocto-full: also `cargo check` of the library from those crates in a fresh target directory
# (~2.5 min; not in CI).
step_yocto() {
    timed "yocto-lint" scripts/yocto-check.sh lint
    if [ "${1:-}" = full ]; then
        (
            cross_env aarch64-unknown-linux-gnu
            timed "yocto-vendor-check-aarch64" env CARGO="$DEB_CARGO" scripts/yocto-check.sh vendor-resolve vendor-check
        )
    fi
}

: >"$timings"
for s in "${steps[@]}"; do
    case "$s" in
        setup) timed setup step_setup ;;
        build) step_build ;;
        test) step_test ;;
        deb) step_deb ;;
        yocto) step_yocto ;;
        yocto-full) step_yocto full ;;
        *) die "unknown step $s (setup build test deb yocto yocto-full)" ;;
    esac
done
echo "arm-ci: OK (${steps[*]}); timings in $timings:"
cat "$timings"
