#!/usr/bin/env bash
# quickstart.sh is the README's first command (make quickstart): on a fresh
# Debian 12 machine it installs what it needs, makes the fixtures, and builds
# the test kernel of testdata/kernel end to end with ./lkbuild: source from a
# local kernel.org-style mirror (Debian's linux-source-6.12, signed by a
# generated test key), a Debian builder image from an OCI layout, microcode
# from a local git repository. No registry, no daemon, no network in the
# build; the image goes to lkbuild's default OCI layout.
#
# Needs root the first time (apt, debootstrap); the build itself does not.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
export PATH="/usr/local/go/bin:$PATH"

if [[ $(id -u) -eq 0 ]]; then
	bash scripts/deps.sh
fi
[[ -x ./lkbuild ]] || make build
# LKBUILD_QUICKSTART_ARCH=aarch64 or riscv64 builds for that arch on the fast
# path instead (its trixie builder and the cross image: minutes more for
# the fixtures, then a few times the x86_64 build).
arch=${LKBUILD_QUICKSTART_ARCH:-x86_64}
fixtures=()
[[ $arch == x86_64 || $arch == amd64 ]] || fixtures=(--foreign)
eval "$(bash scripts/fixtures/e2e.sh "${fixtures[@]}" | sed 's/^/export /')"
case $arch in
x86_64 | amd64) how=(--builder-image "$LKBUILD_E2E_BUILDER" --ucode-repo "$LKBUILD_E2E_UCODE") ;;
aarch64 | arm64) how=(--builder-image "$LKBUILD_E2E_BUILDER_ARM64" --cross-image "$LKBUILD_E2E_CROSS") ;;
riscv64) how=(--builder-image "$LKBUILD_E2E_BUILDER_RISCV64" --cross-image "$LKBUILD_E2E_CROSS") ;;
*)
	echo "quickstart.sh: LKBUILD_QUICKSTART_ARCH=$arch: want x86_64, aarch64 or riscv64" >&2
	exit 2
	;;
esac

# A LinuxKit-style checkout: the series hash needs git, and the kernel dir's
# common/keys.asc must hold the key that signed the mirror.
checkout=${LKBUILD_QUICKSTART_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lkbuild-quickstart}/linuxkit
rm -rf "$checkout"
mkdir -p "$checkout"
cp -r testdata/kernel "$checkout/kernel"
cp "$LKBUILD_E2E_KEYS" "$checkout/kernel/common/keys.asc"
(
	cd "$checkout"
	export GIT_AUTHOR_DATE="@1700000000 +0000" GIT_COMMITTER_DATE="@1700000000 +0000"
	git init -q -b main
	git add .
	git -c user.name=quickstart -c user.email=quickstart@lkbuild.invalid commit -q -m "kernel"
)

set -x
"$root/lkbuild" --kernel-dir "$checkout/kernel" --series 6.12.x --arch "$arch" "${how[@]}" \
	--source-mirror "$LKBUILD_E2E_MIRROR" "$@"
