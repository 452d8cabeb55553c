#!/bin/bash
# make-update-pair.sh OUTDIR [SUITE]
#
# Builds a realistic OS-update pair for benchmarks, from this repository alone, on a Debian machine:
#
#   v1  SUITE (default bookworm) debootstrap --variant=minbase + systemd, openssl, curl,
#       ca-certificates at the release's versions + an application's files (version 1)
#   v2  v1 + the suite's security and stable updates + iproute2, iputils-ping, procps, less, jq
#       + changed and added application files (version 2)
#
# OUTDIR gets v1.rootfs.ext4, v2.rootfs.ext4 (the uncompressed images), v1.swu, v2.swu (cpio crc:
# sw-description, then rootfs.ext4.gz made with `gzip -9 -n`, the way most build systems gzip) and
# README.txt (what was chosen: package versions, file counts, sizes, SHA-256 of the outputs).
#
# Needs root (debootstrap, chroot) and the Debian mirror of the machine's apt configuration
# (override: MIRROR=http://... SECURITY_MIRROR=http://...); about 1.5 GiB under OUTDIR.
# Deterministic settings: SOURCE_DATE_EPOCH per version (file mtimes clamped to it, inode
# a/c/crtimes set to it), fixed ext4 UUID and directory hash seed, E2FSPROGS_FAKE_TIME, mke2fs's
# inode-table zeroing pinned (its block-group flags otherwise depend on whether the image file
# existed), gzip -n, cpio --reproducible. Package contents follow the mirror's state on the day of the run.
set -euo pipefail

OUT=${1:?usage: make-update-pair.sh OUTDIR [SUITE]}
SUITE=${2:-bookworm}
SDE_V1=${SDE_V1:-1735689600} # 2025-01-01 00:00 UTC
SDE_V2=${SDE_V2:-1748736000} # 2025-06-01 00:00 UTC
EXT4_UUID=5b1c6f1e-7a2d-4c3e-9f10-2d4e6a8c0b01
EXT4_HASH_SEED=0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b
V1_PKGS=ca-certificates,openssl,curl,systemd,systemd-sysv
V2_EXTRA_PKGS="iproute2 iputils-ping procps less jq"

export LC_ALL=C TZ=UTC DEBIAN_FRONTEND=noninteractive
umask 022
T0=$(date +%s)
log() { printf '[%4ds] %s\n' $(($(date +%s) - T0)) "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"

for tool in debootstrap:debootstrap cpio:cpio mkfs.ext4:e2fsprogs debugfs:e2fsprogs; do
	command -v "${tool%%:*}" >/dev/null || apt-get install -y -qq "${tool#*:}" >/dev/null
done

# The first enabled Debian mirror (and security mirror) of the apt configuration.
apt_uris() { # prints "URI SUITE" lines
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -e 's/#.*//' -e 's/\[[^]]*\]//' | awk '$1 == "deb" {print $2, $3}'
	cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
		/^URIs:/ {u = $2} /^Suites:/ {for (i = 2; i <= NF; i++) print u, $i}'
}
MIRROR=${MIRROR:-$(apt_uris | awk '$1 ~ /debian\/?$/ && $2 !~ /-/ {print $1; exit}')}
SECURITY_MIRROR=${SECURITY_MIRROR:-$(apt_uris | awk '$2 ~ /-security$/ {print $1; exit}')}
[ -n "$MIRROR" ] || die "no Debian mirror in /etc/apt; set MIRROR="

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
W=$OUT/.work
for d in "$W"/v1 "$W"/v2; do mountpoint -q "$d/proc" && umount "$d/proc"; done
rm -rf "$W"
mkdir -p "$W"
trap 'mountpoint -q "$W/v2/proc" && umount "$W/v2/proc"; true' EXIT

# Files of the (imaginary) application: a config, a version file and a 2 MiB data blob.
app_files() { # ROOT VERSION
	local root=$1 v=$2
	mkdir -p "$root/etc/toaster" "$root/opt/toaster"
	printf 'version = %s\nlisten = 0.0.0.0:8080\nlog_level = %s\n' "$v" \
		"$([ "$v" = 1 ] && echo info || echo warn)" >"$root/etc/toaster/app.conf"
	echo "$v" >"$root/opt/toaster/VERSION"
	# Version 2 changes the second half of the blob and adds a file.
	head -c 1048576 /dev/zero | tr '\0' 'a' >"$root/opt/toaster/data.bin"
	head -c 1048576 /dev/zero | tr '\0' "$([ "$v" = 1 ] && echo b || echo c)" >>"$root/opt/toaster/data.bin"
	[ "$v" = 1 ] || printf '[Unit]\nDescription=Toaster\n' >"$root/etc/toaster/toaster.unit"
}

# Strip what records the day of the build; clamp mtimes to the version's date.
normalize_tree() { # ROOT SOURCE_DATE_EPOCH
	local root=$1 sde=$2
	rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
	rm -f "$root"/var/cache/ldconfig/aux-cache "$root"/var/lib/dpkg/*-old "$root"/var/cache/debconf/*-old
	find "$root/var/log" -type f -exec truncate -s 0 {} +
	: >"$root/etc/machine-id"
	# Days since the epoch of the last password change, in /etc/shadow.
	sed -i -E "s/^([^:]*:[^:]*:)[0-9]+:/\1$((sde / 86400)):/" "$root/etc/shadow"
	find "$root" -xdev -newermt "@$sde" -exec touch -h -d "@$sde" {} +
}

# ext4 image of ROOT with every inode's times at SOURCE_DATE_EPOCH (mke2fs -d copies them).
make_image() { # ROOT IMAGE SOURCE_DATE_EPOCH
	local root=$1 img=$2 sde=$3 mib used i
	mib=$(($(du -sm --apparent-size "$root" | cut -f1) * 13 / 10 + 32))
	rm -f "$img"
	truncate -s "${mib}M" "$img"
	E2FSPROGS_FAKE_TIME=$sde mkfs.ext4 -q -F -d "$root" -L rootfs -U "$EXT4_UUID" \
		-E hash_seed="$EXT4_HASH_SEED",lazy_itable_init=1,nodiscard -b 4096 "$img"
	# mke2fs -d allocates inodes in order: 1-10 reserved, 11 lost+found, then the tree.
	used=$(dumpe2fs -h "$img" 2>/dev/null | awk -F: '/^Inode count/ {n = $2} /^Free inodes/ {f = $2} END {print n - f}')
	for i in 2 $(seq 11 "$used"); do
		printf 'sif <%d> %s @%d\n' "$i" atime "$sde" "$i" ctime "$sde" "$i" crtime "$sde"
		printf 'sif <%d> %s 0\n' "$i" atime_extra "$i" ctime_extra "$i" crtime_extra
	done >"$W/times.cmds"
	E2FSPROGS_FAKE_TIME=$sde debugfs -w -f "$W/times.cmds" "$img" >/dev/null 2>"$W/debugfs.log" ||
		die "debugfs: $(tail -1 "$W/debugfs.log")"
	e2fsck -fn "$img" >/dev/null 2>&1 || die "e2fsck reports errors in $img"
}

# A minimal SWU: sw-description (with the image's sha256), then rootfs.ext4.gz.
make_swu() { # IMAGE SWU VERSION SOURCE_DATE_EPOCH
	local img=$1 swu=$2 v=$3 sde=$4 st=$W/swu-$3
	mkdir -p "$st"
	gzip -9 -n -c "$img" >"$st/rootfs.ext4.gz"
	cat >"$st/sw-description" <<EOF
software =
{
	version = "$v.0.0";
	hardware-compatibility: [ "1.0" ];
	images: (
		{
			filename = "rootfs.ext4.gz";
			device = "/dev/mmcblk0p2";
			type = "raw";
			compressed = "zlib";
			sha256 = "$(sha256sum "$st/rootfs.ext4.gz" | cut -d' ' -f1)";
		}
	);
}
EOF
	touch -d "@$sde" "$st/sw-description" "$st/rootfs.ext4.gz"
	(cd "$st" && printf '%s\n' sw-description rootfs.ext4.gz |
		cpio --quiet -o -H crc --reproducible -R 0:0) >"$swu"
}

log "v1: debootstrap --variant=minbase $SUITE (+ $V1_PKGS)"
debootstrap --variant=minbase --include="$V1_PKGS" "$SUITE" "$W/v1" "$MIRROR" >"$W/debootstrap.log" 2>&1 ||
	die "debootstrap failed, see $W/debootstrap.log"
app_files "$W/v1" 1

log "v2: v1 + updates + $V2_EXTRA_PKGS"
cp -a "$W/v1" "$W/v2"
{
	echo "deb $MIRROR $SUITE main"
	echo "deb $MIRROR $SUITE-updates main"
	[ -z "$SECURITY_MIRROR" ] || echo "deb $SECURITY_MIRROR $SUITE-security main"
} >"$W/v2/etc/apt/sources.list"
printf '#!/bin/sh\nexit 101\n' >"$W/v2/usr/sbin/policy-rc.d" # start no services in the chroot
chmod 755 "$W/v2/usr/sbin/policy-rc.d"
mount -t proc proc "$W/v2/proc"
chroot "$W/v2" apt-get -qq update >"$W/upgrade.log" 2>&1
chroot "$W/v2" apt-get -y -qq upgrade >>"$W/upgrade.log" 2>&1
chroot "$W/v2" apt-get -y -qq install --no-install-recommends $V2_EXTRA_PKGS >>"$W/upgrade.log" 2>&1 ||
	die "apt-get in the v2 tree failed, see $W/upgrade.log"
chroot "$W/v2" apt-get -qq clean
umount "$W/v2/proc"
rm -f "$W/v2/usr/sbin/policy-rc.d"
echo "deb $MIRROR $SUITE main" >"$W/v2/etc/apt/sources.list"
app_files "$W/v2" 2

for v in 1 2; do
	sde=$([ $v = 1 ] && echo "$SDE_V1" || echo "$SDE_V2")
	log "v$v: ext4 image and SWU"
	normalize_tree "$W/v$v" "$sde"
	dpkg-query --admindir="$W/v$v/var/lib/dpkg" -W -f='${Package} ${Version}\n' | sort >"$W/v$v.packages"
	(cd "$W/v$v" && find . -xdev -type f -print0 | sort -z | xargs -0 sha256sum) >"$W/v$v.files"
	make_image "$W/v$v" "$OUT/v$v.rootfs.ext4" "$sde"
	make_swu "$OUT/v$v.rootfs.ext4" "$OUT/v$v.swu" "$v" "$sde"
done

log "README.txt"
# "N new, N changed, N removed" regular files from v1 to v2 (sha256sum lines: hash, 2 spaces, path).
file_changes() {
	awk 'NR == FNR {h[substr($0, 67)] = $1; next}
	     {p = substr($0, 67); seen[p] = 1; if (!(p in h)) n++; else if (h[p] != $1) c++}
	     END {for (p in h) if (!(p in seen)) r++; printf "%d new, %d changed, %d removed\n", n, c, r}' "$1" "$2"
}
{
	echo "Update pair built by scripts/make-update-pair.sh on $(date -u +%F) from Debian $SUITE"
	echo "(mirror: ${MIRROR#*://}; security: ${SECURITY_MIRROR#*://})"
	echo
	echo "v1: debootstrap --variant=minbase --include=$V1_PKGS, application version 1, SOURCE_DATE_EPOCH=$SDE_V1"
	echo "v2: v1 + $SUITE-updates/-security upgrades + $V2_EXTRA_PKGS, application version 2, SOURCE_DATE_EPOCH=$SDE_V2"
	echo
	echo "regular files from v1 to v2: $(file_changes "$W/v1.files" "$W/v2.files")"
	echo "packages: v1 $(wc -l <"$W/v1.packages"), v2 $(wc -l <"$W/v2.packages")"
	echo
	echo "sizes (bytes) and SHA-256:"
	for f in v1.rootfs.ext4 v2.rootfs.ext4 v1.swu v2.swu; do
		printf '  %-15s %12d  %s\n' "$f" "$(stat -c %s "$OUT/$f")" "$(sha256sum "$OUT/$f" | cut -d' ' -f1)"
	done
	echo
	echo "package versions that differ (v1 -> v2):"
	join -a 2 -e '(new)' -o 0,1.2,2.2 "$W/v1.packages" "$W/v2.packages" | awk '$2 != $3 {print "  " $1 ": " $2 " -> " $3}'
	echo
	echo "v1 packages:"
	sed 's/^/  /' "$W/v1.packages"
} >"$OUT/README.txt"
rm -rf "$W"
log "done: $OUT (v1.swu v2.swu v1.rootfs.ext4 v2.rootfs.ext4 README.txt)"
