#!/usr/bin/env bash
# debian-kernel.sh fetches a real kernel for internal/boottest's boot test:
# Debian bookworm's cloud-amd64 kernel image package (6.1), which has the
# serial console and virtio built in, boots in a few seconds under TCG and
# still ships loadable modules. It prints the directory that holds
#
#   vmlinuz                    the bzImage
#   lib/modules/<release>/...  the modules tree, as in a LinuxKit kernel.tar
#   release                    <release>, one line
#   INFO                       package, version, date, SHA-256 sums
#
# Cached like scripts/fixtures/rootfs.sh: in
# ${LKBUILD_FIXTURES:-/var/cache/lkbuild-fixtures}/debian-kernel-<key>, where
# <key> is the SHA-256 of this script, built under a temporary name and
# renamed when complete, under a flock. The package is whatever
# linux-image-cloud-amd64 depends on in apt's current lists (INFO records
# which). Needs apt-get, dpkg-deb and apt lists that include bookworm main
# (run apt-get update first on a fresh machine); about 10 s. Stdout is only
# the path.
set -euo pipefail

meta=linux-image-cloud-amd64

self=$(readlink -f "${BASH_SOURCE[0]}")
key=$(sha256sum "$self" | cut -d' ' -f1)
cache=${LKBUILD_FIXTURES:-/var/cache/lkbuild-fixtures}
out=$cache/debian-kernel-$key

if [[ -f $out/vmlinuz && -f $out/release ]]; then
	echo "$out"
	exit 0
fi
for tool in apt-get apt-cache dpkg-deb flock sha256sum; do
	command -v "$tool" >/dev/null || { echo "debian-kernel.sh: $tool is missing" >&2; exit 1; }
done

mkdir -p "$cache"
exec 9>"$cache/.debian-kernel-$key.lock"
flock 9
if [[ -f $out/vmlinuz && -f $out/release ]]; then
	echo "$out"
	exit 0
fi
rm -rf "$cache/.debian-kernel-$key.tmp."* # left by killed runs; we hold the lock

# The metapackage names the current ABI's image package, e.g.
# linux-image-6.1.0-56-cloud-amd64.
pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1/ { print $2; exit }')
if [[ -z $pkg ]]; then
	echo "debian-kernel.sh: apt knows no $meta depending on linux-image-6.1*; is bookworm main in apt's sources (apt-get update)?" >&2
	exit 1
fi

tmp=$(mktemp -d "$cache/.debian-kernel-$key.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/deb" "$tmp/x"

echo "debian-kernel.sh: downloading $pkg" >&2
start=$SECONDS
# apt-get download drops to the _apt user where it can; the directory must let
# it write, or apt falls back to root with a warning.
chmod 777 "$tmp/deb"
if ! (cd "$tmp/deb" && apt-get download -q "$pkg" >"$tmp/download.log" 2>&1); then
	echo "debian-kernel.sh: apt-get download $pkg failed:" >&2
	cat "$tmp/download.log" >&2
	exit 1
fi
deb=$(ls "$tmp"/deb/*.deb)
dpkg-deb -x "$deb" "$tmp/x"

vmlinuz=$(ls "$tmp"/x/boot/vmlinuz-*)
release=${vmlinuz##*/vmlinuz-}
if [[ ! -d $tmp/x/lib/modules/$release ]]; then
	echo "debian-kernel.sh: $deb has $vmlinuz but no lib/modules/$release" >&2
	exit 1
fi
mv "$vmlinuz" "$tmp/vmlinuz"
mkdir "$tmp/lib" "$tmp/lib/modules"
mv "$tmp/x/lib/modules/$release" "$tmp/lib/modules/$release"
echo "$release" >"$tmp/release"
{
	echo "made-by: internal/boottest/testdata/debian-kernel.sh (key $key)"
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "package: $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)"
	echo "deb: ${deb##*/} sha256:$(sha256sum "$deb" | cut -d' ' -f1)"
	echo "release: $release"
	echo "vmlinuz: $(stat -c %s "$tmp/vmlinuz") bytes sha256:$(sha256sum "$tmp/vmlinuz" | cut -d' ' -f1)"
	echo "modules: $(find "$tmp/lib/modules/$release" -name '*.ko*' | wc -l) files"
	echo "seconds: $((SECONDS - start))"
} >"$tmp/INFO"
rm -rf "$tmp/deb" "$tmp/x" "$tmp/download.log"
chmod -R a+rX "$tmp"
mv -T "$tmp" "$out"
trap - EXIT
echo "$out"
