SUMMARY = "Memory-safe drop-in replacement for the Azure Device Update delta library"
DESCRIPTION = "libadudiffapi.so, the delta processor that the Device Update agent loads \
               with dlopen to rebuild a target .swu from a cached source and a delta, written \
               in Rust. Stands in for Microsoft's azure-device-update-diffs: same library \
               name, same C API."
# No HOMEPAGE or BUGTRACKER: the project has no public home page or bug tracker of its own yet
# (set them in a .bbappend when you publish your copy; scripts/yocto-check.sh tells oelint-adv).
SECTION = "libs"
# No BBCLASSEXTEND: a library for the target device, the host has no use for a native variant.
# Our sources are MIT, the deflate port (crates/core/src/pardeflate) is under the zlib licence.
# The crates linked into the library statically are listed, with their licences, by
# `cargo tree -p adudiffapi -e normal -f "{p} {l}"` (docs/YOCTO.md).
LICENSE = "MIT & Zlib"
LIC_FILES_CHKSUM = "file://LICENSE;md5=b8683aa1aa731845b1207cf43560abd7 \
                    file://crates/core/src/pardeflate/LICENSE-zlib;md5=8f60d6176c065c63ec968c3806ba4eff"

CVE_PRODUCT = "adudiffapi"

PV .= "+git"

# The source: by default the git repository this layer lives in, at the commit checked out
# there (uncommitted changes are not built). For a product, point ADUDIFFAPI_GIT_URI at your
# mirror and set SRCREV to a release commit (docs/YOCTO.md).
# (FILE is this recipe: <repository>/meta-adudiffapi/recipes-support/adudiffapi/<this file>.)
ADUDIFFAPI_REPO = "${@os.path.abspath(os.path.join(os.path.dirname(d.getVar('FILE')), '../../..'))}"
ADUDIFFAPI_GIT_URI ??= "git://${ADUDIFFAPI_REPO};protocol=file;nobranch=1"
SRC_URI = "${ADUDIFFAPI_GIT_URI}"
SRCREV ?= "${@adudiffapi_checkout_rev(d)}"

def adudiffapi_checkout_rev(d):
    """The commit checked out in the repository that holds this layer."""
    import subprocess
    repo = d.getVar("ADUDIFFAPI_REPO")
    return subprocess.check_output(["git", "-C", repo, "rev-parse", "HEAD"], text=True).strip()

# The crates of Cargo.lock, pinned with their checksums (scripts/update-yocto-crates.py).
require ${BPN}-crates.inc

inherit cargo

# The device library only (the root package's cdylib): no host tools, no CLI.
CARGO_BUILD_FLAGS += "-p adudiffapi --lib"

# Stripping is Yocto's job (the -dbg package gets the debug information): the cargo profile
# must not strip, whatever Cargo.toml says.
export CARGO_PROFILE_RELEASE_STRIP = "false"

do_install() {
    install -d ${D}${libdir} ${D}${includedir} ${D}${libdir}/pkgconfig ${D}${libdir}/cmake/adudiffapi
    install -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/libadudiffapi.so ${D}${libdir}/libadudiffapi.so
    install -m 0644 ${S}/include/adudiffapi.h ${S}/include/legacy_adudiffapply.h ${D}${includedir}/
    sed -e 's|@PREFIX@|${prefix}|' -e 's|@VERSION@|${PV}|' \
        -e 's|^libdir=.*|libdir=${libdir}|' -e 's|^includedir=.*|includedir=${includedir}|' \
        ${S}/pkg/adudiffapi.pc.in > ${D}${libdir}/pkgconfig/adudiffapi.pc
    # The CMake files find the library relative to their own directory, <prefix>/lib by default.
    sed -e 's|/lib/libadudiffapi.so|/${baselib}/libadudiffapi.so|' \
        ${S}/cmake/adudiffapiConfig.cmake > ${D}${libdir}/cmake/adudiffapi/adudiffapiConfig.cmake
    install -m 0644 ${S}/cmake/adudiffapiConfigVersion.cmake ${D}${libdir}/cmake/adudiffapi/
}

# The agent dlopen()s the bare name "libadudiffapi.so", which is also the library's SONAME (it
# has no versioned file), so the bare .so belongs in the runtime package, as in Microsoft's own
# recipe. Emptying FILES_SOLIBSDEV keeps it out of ${PN}-dev (which gets the headers, the .pc
# and the CMake files by default). No INSANE_SKIP is needed: the file is the ELF library itself,
# and the dev-so check only rejects .so symbolic links outside -dev.
FILES_SOLIBSDEV = ""
FILES:${PN} += "${libdir}/libadudiffapi.so"

# Stands in for Microsoft's recipe: the agent's recipe depends on azure-device-update-diffs
# (with delta updates enabled), and both packages install /usr/lib/libadudiffapi.so.
RPROVIDES:${PN} = "azure-device-update-diffs"
RCONFLICTS:${PN} = "azure-device-update-diffs"
RREPLACES:${PN} = "azure-device-update-diffs"
