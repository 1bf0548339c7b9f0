#!/usr/bin/env bash
# make.sh regenerates the gpg-made fixtures in this folder (see README.md).
# It needs gpg, tar and xz, and writes only here. The keys are new every
# run, so every file changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export GNUPGHOME=$(mktemp -d)
trap 'gpgconf --kill all 2>/dev/null || true; rm -rf "$GNUPGHOME" "$work"' EXIT
work=$(mktemp -d)

gpg --batch --quiet --passphrase '' --quick-gen-key 'lkbuild fixture RSA <rsa@lkbuild.invalid>' rsa2048 sign never
gpg --batch --quiet --passphrase '' --quick-gen-key 'lkbuild fixture Ed25519 <ed25519@lkbuild.invalid>' ed25519 sign never
gpg --armor --export >keys.asc

# A tiny kernel-like tarball and the files kernel.org publishes beside it.
mkdir -p "$work/linux-6.6.71"
printf 'VERSION = 6\nPATCHLEVEL = 6\nSUBLEVEL = 71\n' >"$work/linux-6.6.71/Makefile"
tar -C "$work" --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -cf linux-6.6.71.tar linux-6.6.71
xz -T1 -c linux-6.6.71.tar >"$work/linux-6.6.71.tar.xz"
{
	echo "0000000000000000000000000000000000000000000000000000000000000000  linux-6.6.70.tar.xz"
	(cd "$work" && sha256sum linux-6.6.71.tar.xz)
	echo "-a line that starts with a dash, and trailing blanks   "
} >"$work/sums"
gpg --batch --yes --local-user rsa@lkbuild.invalid --clearsign --output sha256sums.asc "$work/sums"
gpg --batch --yes --local-user ed25519@lkbuild.invalid --armor --detach-sign --output linux-6.6.71.tar.sign linux-6.6.71.tar
sha256sum "$work/linux-6.6.71.tar.xz" | cut -d' ' -f1 >linux-6.6.71.tar.xz.sha256
