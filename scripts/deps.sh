#!/usr/bin/env bash
# deps.sh installs what lkbuild's tests, fixtures and benchmarks need on a
# Debian 12 machine: Debian packages through apt (only when one is missing, so
# a prepared machine skips apt entirely) and staticcheck through go install.
# It is idempotent and exits non-zero if anything is still missing afterwards.
# Needs root for apt-get.
set -euo pipefail

packages=(
	docker-registry # Distribution registry for the end-to-end suite
	skopeo          # independent registry client for checks
	umoci           # independent OCI layout tool for checks
	apache2-utils   # htpasswd (bcrypt) for the registry's basic auth
	debootstrap debian-archive-keyring # builder rootfs fixtures
	dpkg-dev            # dpkg-scanpackages, for rootfs-mirror.sh's apt repository
	pigz xz-utils       # compression baselines
	uidmap              # newuidmap/newgidmap for rootless id ranges
	qemu-user-static    # foreign-arch emulation
	# The kernel source fixture, pinned: testdata/kernel's configs, tags and
	# releases are 6.12.117's, and bookworm-security keeps older versions
	# after a new one lands (6.12.118 did, and a fresh machine got it).
	linux-source-6.12=6.12.117-1~deb12u1
	qemu-system-x86 busybox-static cpio # boot tests (internal/boottest)
	qemu-system-arm qemu-system-misc opensbi # boots of the aarch64 and riscv64 kernels
	git make time hyperfine jq curl ca-certificates
	gpgv                # zfs-source.sh checks Debian's InRelease
	tmux                # drives lkbuild kconfig's interactive shell in the e2e suite
	bubblewrap          # the sandbox benchmark's baseline (bench/sandbox.sh)
)
staticcheck_version=0.8.2

# missing_packages prints the packages (NAME or NAME=VERSION) that are not
# installed, or not at that version.
missing_packages() {
	local p status
	for p in "${packages[@]}"; do
		status=$(dpkg-query -W -f='${Status} ${Version}' "${p%%=*}" 2>/dev/null || true)
		case $p in
		*=*) [[ $status == "install ok installed ${p#*=}" ]] || echo "$p" ;;
		*) [[ $status == "install ok installed "* ]] || echo "$p" ;;
		esac
	done
}

mapfile -t missing < <(missing_packages)
if ((${#missing[@]} > 0)); then
	echo "deps.sh: installing ${missing[*]}" >&2
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps.sh: apt-get needs root" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq </dev/null
	# No recommends: qemu-user-static would pull in systemd.
	apt-get install -y -qq --no-install-recommends --allow-downgrades "${missing[@]}" </dev/null >/dev/null
fi

export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "deps.sh: go is not installed (expected /usr/local/go/bin/go)" >&2; exit 1; }
gobin=$(go env GOBIN)
gobin=${gobin:-$(go env GOPATH)/bin}
has_staticcheck() {
	local s
	for s in "$gobin/staticcheck" "$(command -v staticcheck || true)"; do
		[[ -x $s ]] && "$s" -version 2>/dev/null | grep -q "($staticcheck_version)" && return 0
	done
	return 1
}
if ! has_staticcheck; then
	echo "deps.sh: installing staticcheck $staticcheck_version into $gobin" >&2
	go install "honnef.co/go/tools/cmd/staticcheck@v$staticcheck_version"
fi

mapfile -t missing < <(missing_packages)
if ((${#missing[@]} > 0)); then
	echo "deps.sh: still missing after install: ${missing[*]}" >&2
	exit 1
fi
if ! has_staticcheck; then
	echo "deps.sh: staticcheck $staticcheck_version is still missing from $gobin" >&2
	exit 1
fi
echo "deps.sh: all dependencies present" >&2
