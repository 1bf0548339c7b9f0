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
eval "$(bash scripts/fixtures/e2e.sh | sed 's/^/export /')"

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
"$root/lkbuild" --kernel-dir "$checkout/kernel" --series 6.12.x --arch x86_64 \
	--builder-image "$LKBUILD_E2E_BUILDER" \
	--source-mirror "$LKBUILD_E2E_MIRROR" \
	--ucode-repo "$LKBUILD_E2E_UCODE" "$@"
