#!/usr/bin/env bash
# peer.sh: the "upstream-steps peer" of the build benchmark. What LinuxKit's
# kernel/common/Dockerfile does, step by step, as ONE shell script run with
# `chroot` in the same builder rootfs lkbuild uses: the baseline a whole
# `lkbuild build` must beat. bench/build.sh's "bare" side times only the
# makes; this side also pays for what the Dockerfile does around them
# (verify, decompress and extract the source, the microcode, the patches,
# the serial `tar cJf` of the source, the install tars, kernel-dev.tar).
#
# The timed script (ROOT/peer-steps.sh, run by /bin/sh, i.e. dash, with
# stdin from /dev/null as in a RUN step) does, in the Dockerfile's order:
#
#   fetch-sums .. extract  cp of sha256sums.asc from ROOT/mirror (for curl),
#                          the key import, verify the sums, cp of the
#                          tarball, sha256sum -c, xz -d, cp and verify of the
#                          .tar.sign against the .tar, `cat | tar
#                          --absolute-names -x` in /, mv to /linux,
#                          /out/kernel-source-info
#   ucode                  the microcode "clone" (see below), iucode_tool
#                          --normal-earlyfw, license, cp -rav to /lib/firmware
#   patch                  patch -t -F0 -N -u -p1 < each series patch
#   src/linux.tar.xz       XZ_DEFAULTS=-T0 tar cJf /out/src/linux.tar.xz /linux
#                          (the rootfs's xz 5.4.1 honours it: one thread per
#                          CPU, level 6; 1.5 GB of tree, 740 CPU s on the
#                          2-core machines: the largest step after make)
#   defconfig, oldconfig, check_config
#                          the config as arch/x86/configs/x86_64_defconfig,
#                          the LOCALVERSION sed, make defconfig, make
#                          oldconfig, diff -u .config <defconfig>
#   make                   make -j "$(getconf _NPROCESSORS_ONLN)" KCFLAGS=-fno-pie
#                          (PEER_JOBS replaces getconf when set)
#   kernel                 bzImage and System.map to /out
#   modules_install, kernel.tar, headers_install, kernel-headers.tar,
#   kernel-dev.tar, kernel-builder
#                          as upstream: the installs without -j, the
#                          build/source link fix, tars by GNU tar, the
#                          find | tar copy of the dev headers
#
# The script prints "peer-step NAME WALL_S CPU_S" to stderr after each step
# (wall from date +%s.%N, CPU from the shell's `times`: its own and its
# children's user + system), so a caller can show a breakdown; the whole
# chroot process runs under GNU time (%e wall, %M peak RSS, %U + %S CPU of
# everything it waited for).
#
# Where the peer is not the Dockerfile, and why:
# - No `apk add`: the builder rootfs already holds the toolchain, as for
#   lkbuild; and no network: every curl -fsSLO is a cp (timed, 0.1-0.4 s)
#   from ROOT/mirror, where peer_prepare has copied the mirror's three
#   files beforehand (untimed: the download, which lkbuild, reading the
#   local mirror, does not pay either).
# - The rootfs has gpgv but no gpg: `gpg2 -q --import keys.asc` is done as
#   the armor's base64 decoded (sed | base64 -d) into
#   ~/.gnupg/trustedkeys.gpg, gpgv's default keyring, and each
#   `gpg2 --verify` is a `gpgv` of the same files (same checks: the clear-
#   signed sums, the detached signature over the whole decompressed .tar).
# - The rootfs has no git: `git clone UCODE_REPO ucode && git checkout
#   microcode-20210608` is a host-side `git clone` of the local microcode
#   repository (LKBUILD_E2E_UCODE) and checkout of that tag into
#   ROOT/mirror/ucode, untimed like the other downloads; the timed script
#   copies that checkout (.git included) to /tmp/ucode with cp -a.
# - The fixture tarball's top directory is linux-source-6.12/ (Debian's
#   source, see bench/kernel-source.sh), not linux-<version>/: the mv takes
#   the top directory peer_prepare read from the tarball.
# - `[ $(uname -m) == x86_64 ]` is written with `=` (dash has no `==`).
# - All RUN steps are one script: no layer snapshots, no image export, no
#   builder start. The peer is a lower bound of what `docker buildx` spends.
# - The environment is lkbuild's plan environment (bench/build.sh's
#   bare_env: SOURCE_DATE_EPOCH, KBUILD_BUILD_*, LC_ALL, TZ, ARCH, ...), not
#   docker's, so that the kernel must come out bit for bit as lkbuild's and
#   bare's (same tree, path /linux, compiler, environment and epoch).
#
# Standalone (`bash bench/peer.sh`, as root): the e2e fixtures
# (scripts/fixtures/e2e.sh), the builder rootfs unpacked onto tmpfs by
# bench/cmd/extract, /proc mounted and /dev bound, peer_prepare (untimed),
# one timed peer_run, peer_check, a report. Environment: PEER_JOBS (unset:
# getconf _NPROCESSORS_ONLN, as upstream), PEER_EPOCH (1700000000, the
# commit time of bench/build.sh's checkout), PEER_EXPECT_KERNEL (a sha256
# the kernel must match, e.g. lkbuild's image's), BENCH_TMPDIR (/dev/shm),
# LKBUILD_FIXTURES.
#
# Sourced (by bench/build.sh, after lib.bash): defines the functions below
# and runs nothing. The caller unpacks the rootfs and mounts /proc and /dev
# (bench_mount) as for bare, then:
#
#   peer_prepare ROOT        untimed: ROOT/mirror, ROOT/src (+ keys.asc),
#                            the microcode checkout, ROOT/peer-steps.sh.
#                            Reads PEER_KERNEL_DIR (testdata/kernel),
#                            PEER_SERIES (6.12.x), PEER_MIRROR, PEER_KEYS,
#                            PEER_UCODE (default: LKBUILD_E2E_MIRROR, _KEYS,
#                            _UCODE), PEER_JOBS.
#   peer_env EPOCH BUILDER VERSION SERIES
#                            sets the array PEER_ENV to the plan's
#                            environment (the same as build.sh's bare_env).
#   peer_run ROOT OUT [VAR=VALUE...]
#                            the timed run, with the given environment
#                            (default "${PEER_ENV[@]}"): OUT gets GNU time's
#                            "WALL MAXRSS_KIB USER SYS", OUT.log the output,
#                            OUT.steps "NAME WALL_S CPU_S" lines. Dies on
#                            failure.
#   peer_check ROOT          the outputs in ROOT/out exist; sets PEER_KERNEL
#                            to the sha256 of ROOT/out/kernel.
set -euo pipefail
if ! declare -F bench_log >/dev/null; then
	# shellcheck source=bench/lib.bash
	. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
fi

# Upstream's UCODE_COMMIT.
PEER_UCODE_REF=microcode-20210608

# peer_prepare ROOT: everything the timed script needs in ROOT, a freshly
# unpacked builder rootfs.
peer_prepare() {
	local root=$1
	local kdir=${PEER_KERNEL_DIR:-$BENCH_ROOT/testdata/kernel}
	local series=${PEER_SERIES:-6.12.x}
	local mirror=${PEER_MIRROR:-${LKBUILD_E2E_MIRROR:-}}
	local keys=${PEER_KEYS:-${LKBUILD_E2E_KEYS:-}}
	local ucode=${PEER_UCODE:-${LKBUILD_E2E_UCODE:-}}
	local jobs=${PEER_JOBS:-}
	local version major top f
	[[ -x $root/bin/sh ]] || bench_die "peer: $root is not an unpacked rootfs"
	[[ ! -e $root/linux && ! -e $root/out ]] || bench_die "peer: $root was used already (it has /linux or /out)"
	[[ -d $mirror && -f $keys && -d $ucode ]] ||
		bench_die "peer: want the mirror, keys and microcode repository (PEER_MIRROR, PEER_KEYS, PEER_UCODE or LKBUILD_E2E_*)"
	[[ -z $jobs || $jobs =~ ^[1-9][0-9]*$ ]] || bench_die "peer: PEER_JOBS=$jobs: want a positive integer"
	version=$(sed -n 's/^KERNEL_VERSION=//p' "$kdir/$series/build-args")
	[[ $version =~ ^[0-9]+\.[0-9]+ ]] || bench_die "peer: no KERNEL_VERSION in $kdir/$series/build-args"
	major=v${version%%.*}.x

	# The downloads: the mirror's files and the microcode checkout.
	mkdir -p "$root/mirror/$major"
	for f in sha256sums.asc "linux-$version.tar.xz" "linux-$version.tar.sign"; do
		[[ -f $mirror/$major/$f ]] || bench_die "peer: $mirror/$major/$f is missing"
		cp "$mirror/$major/$f" "$root/mirror/$major/$f"
	done
	# The top directory of the tarball (linux-<version> on kernel.org). tar
	# dies of SIGPIPE when head has its line.
	top=$(tar -tJf "$root/mirror/$major/linux-$version.tar.xz" 2>/dev/null | head -n 1 || true)
	top=${top%%/*}
	[[ $top =~ ^[A-Za-z0-9._-]+$ && $top != linux ]] || bench_die "peer: cannot tell the top directory of linux-$version.tar.xz (got '$top')"
	git clone -q "$ucode" "$root/mirror/ucode"
	git -C "$root/mirror/ucode" -c advice.detachedHead=false checkout -q "$PEER_UCODE_REF" ||
		bench_die "peer: no $PEER_UCODE_REF in $ucode"

	# COPY / /src/: the kernel dir, with the mirror's key as common/keys.asc.
	cp -r "$kdir" "$root/src"
	mkdir -p "$root/src/common"
	cp "$keys" "$root/src/common/keys.asc"

	{
		echo "# peer-steps.sh, written by bench/peer.sh: LinuxKit's kernel/common/Dockerfile as one script."
		echo "KERNEL_TOPDIR='$top'"
		echo "PEER_JOBS='$jobs'"
		echo ": \"\${KERNEL_VERSION:=$version}\" \"\${KERNEL_SERIES:=$series}\" \"\${BUILD_IMAGE:=unknown}\""
		peer_steps
	} >"$root/peer-steps.sh"
}

# peer_steps prints the body of the timed script (POSIX sh).
peer_steps() {
	cat <<'EOF'
set -e
t0=$(date +%s.%N)
c0=0
# step_done NAME: the wall and CPU seconds since the last step ended. The CPU
# seconds are the shell's and its children's (the `times` builtin: the
# processes waited for, e.g. make with its cc1s); `times` writes to a file,
# since in $(...) it would report the subshell's.
step_done() {
	t1=$(date +%s.%N)
	times >/tmp/.peer-times
	c1=$(awk '{ for (i = 1; i <= NF; i++) { split($i, p, "m"); s += p[1] * 60 + p[2] } } END { printf "%.2f", s }' /tmp/.peer-times)
	echo "peer-step $1 $(awk -v a="$t0" -v b="$t1" -v c="$c0" -v d="$c1" 'BEGIN { printf "%.2f %.2f", b - a, d - c }')" >&2
	t0=$t1
	c0=$c1
}

mkdir -p /out/src

# Download and verify kernel (WORKDIR /). curl -fsSLO is a cp from /mirror.
cd /
KERNEL_MAJOR=$(echo "${KERNEL_VERSION}" | cut -d . -f 1)
KERNEL_MAJOR=v${KERNEL_MAJOR}.x
KERNEL_SOURCE=https://www.kernel.org/pub/linux/kernel/${KERNEL_MAJOR}/linux-${KERNEL_VERSION}.tar.xz
cp "/mirror/${KERNEL_MAJOR}/sha256sums.asc" .
step_done fetch-sums
# gpg2 -q --import /src/common/keys.asc: into gpgv's default keyring.
mkdir -p "$HOME/.gnupg"
sed -e '/^-----BEGIN PGP PUBLIC KEY BLOCK-----$/,/^$/d' -e '/^=/d' -e '/^-----END /d' /src/common/keys.asc |
	base64 -d >"$HOME/.gnupg/trustedkeys.gpg"
gpgv sha256sums.asc
step_done verify-sums
KERNEL_SHA256=$(grep "linux-${KERNEL_VERSION}.tar.xz" sha256sums.asc | cut -d ' ' -f 1)
[ -f "linux-${KERNEL_VERSION}.tar.xz" ] || cp "/mirror/${KERNEL_MAJOR}/linux-${KERNEL_VERSION}.tar.xz" .
step_done fetch-tarball
echo "${KERNEL_SHA256}  linux-${KERNEL_VERSION}.tar.xz" | sha256sum -c -
step_done sha256sum
xz -d "linux-${KERNEL_VERSION}.tar.xz"
step_done xz-d
cp "/mirror/${KERNEL_MAJOR}/linux-${KERNEL_VERSION}.tar.sign" .
gpgv "linux-${KERNEL_VERSION}.tar.sign" "linux-${KERNEL_VERSION}.tar"
step_done verify-tar
# shellcheck disable=SC2002 # upstream's cat | tar
cat "linux-${KERNEL_VERSION}.tar" | tar --absolute-names -x
mv "/${KERNEL_TOPDIR}" /linux
printf 'KERNEL_SOURCE=%s\n' "${KERNEL_SOURCE}" >/out/kernel-source-info
step_done extract

# Intel ucode (WORKDIR /tmp). git clone UCODE_REPO + git checkout
# microcode-20210608: a copy of the checkout peer_prepare made.
cd /tmp
if [ "$(uname -m)" = x86_64 ]; then
	cp -a /mirror/ucode ucode
	cd ucode
	iucode_tool --normal-earlyfw --write-earlyfw=/out/intel-ucode.cpio ./intel-ucode
	cp license /out/intel-ucode-license.txt
	mkdir -p /lib/firmware
	cp -rav ./intel-ucode /lib/firmware
fi
step_done ucode

# Patches (WORKDIR /linux).
cd /linux
if [ -n "${EXTRA:-}" ] && [ -d "/src/${KERNEL_SERIES}${EXTRA}/patches" ]; then
	echo "Patching ${EXTRA} kernel"
	for patch in "/src/${KERNEL_SERIES}${EXTRA}"/patches/*.patch; do
		echo "Applying $patch"
		patch -t -F0 -N -u -p1 <"$patch"
	done
fi
if [ -d "/src/${KERNEL_SERIES}/patches" ]; then
	for patch in "/src/${KERNEL_SERIES}"/patches/*.patch; do
		echo "Applying $patch"
		patch -t -F0 -N -u -p1 <"$patch"
	done
fi
step_done patch

# Save kernel source.
XZ_DEFAULTS="-T0" tar cJf /out/src/linux.tar.xz /linux
step_done src/linux.tar.xz

# Kernel config.
case $(uname -m) in
x86_64) KERNEL_DEF_CONF=/linux/arch/x86/configs/x86_64_defconfig ;;
aarch64) KERNEL_DEF_CONF=/linux/arch/arm64/configs/defconfig ;;
riscv64) KERNEL_DEF_CONF=/linux/arch/riscv/configs/defconfig ;;
esac
cp "/src/${KERNEL_SERIES}/config-$(uname -m)" "${KERNEL_DEF_CONF}"
if [ -n "${EXTRA:-}" ] && [ -f "/src/${KERNEL_SERIES}-${EXTRA}/config-$(uname -m)" ]; then
	cat "/src/${KERNEL_SERIES}-${EXTRA}/config-$(uname -m)" >>"${KERNEL_DEF_CONF}"
fi
sed -i "s/CONFIG_LOCALVERSION=\"-linuxkit\"/CONFIG_LOCALVERSION=\"-linuxkit${EXTRA:-}${DEBUG:-}\"/" "${KERNEL_DEF_CONF}"
if [ -n "${DEBUG:-}" ]; then
	sed -i 's/CONFIG_PANIC_ON_OOPS=y/# CONFIG_PANIC_ON_OOPS is not set/' "${KERNEL_DEF_CONF}"
	cat "/src/common/config${DEBUG}" >>"${KERNEL_DEF_CONF}"
fi
make defconfig
step_done defconfig
make oldconfig
step_done oldconfig
if [ -z "${EXTRA:-}" ] && [ -z "${DEBUG:-}" ]; then diff -u .config "${KERNEL_DEF_CONF}"; fi
step_done check_config

# Kernel.
make -j "${PEER_JOBS:-$(getconf _NPROCESSORS_ONLN)}" KCFLAGS="-fno-pie"
step_done make
case $(uname -m) in
x86_64) cp arch/x86_64/boot/bzImage /out/kernel ;;
aarch64)
	if [ -f arch/arm64/boot/Image.gz ]; then cp arch/arm64/boot/Image.gz /out/kernel; else cp arch/arm64/boot/vmlinuz.efi /out/kernel; fi
	;;
riscv64)
	if [ -f arch/riscv/boot/Image.gz ]; then cp arch/riscv/boot/Image.gz /out/kernel; else cp arch/riscv/boot/vmlinuz.efi /out/kernel; fi
	;;
esac
cp System.map /out
if [ -n "${DEBUG:-}" ]; then cp vmlinux /out; fi
step_done kernel

# Modules and device tree binaries.
make INSTALL_MOD_PATH=/tmp/kernel-modules modules_install
(
	DVER=$(basename "$(find /tmp/kernel-modules/lib/modules/ -mindepth 1 -maxdepth 1)")
	cd "/tmp/kernel-modules/lib/modules/$DVER"
	rm -f build source
	ln -s "/usr/src/linux-headers-$DVER" build
)
if [ "$(uname -m)" = aarch64 ]; then
	make INSTALL_DTBS_PATH=/tmp/kernel-modules/boot/dtb dtbs_install
fi
step_done modules_install
(cd /tmp/kernel-modules && tar cf /out/kernel.tar .)
step_done kernel.tar

# Headers (userspace API).
mkdir -p /tmp/kernel-headers/usr
make INSTALL_HDR_PATH=/tmp/kernel-headers/usr headers_install
step_done headers_install
(cd /tmp/kernel-headers && tar cf /out/kernel-headers.tar usr)
step_done kernel-headers.tar

# Headers (kernel development).
DVER=$(basename "$(find /tmp/kernel-modules/lib/modules/ -mindepth 1 -maxdepth 1)")
dir=/tmp/usr/src/linux-headers-$DVER
mkdir -p "$dir"
cp /linux/.config "$dir"
cp /linux/Module.symvers "$dir"
find . -path './include/*' -prune -o \
	-path './arch/*/include' -prune -o \
	-path './scripts/*' -prune -o \
	-type f \( -name 'Makefile*' -o -name 'Kconfig*' -o -name 'Kbuild*' -o \
	-name '*.lds' -o -name '*.pl' -o -name '*.sh' -o \
	-name 'objtool' -o -name 'fixdep' -o -name 'randomize_layout_seed.h' \) |
	tar cf - -T - | (cd "$dir" && tar xf -)
(cd /tmp && tar cf /out/kernel-dev.tar usr/src)
step_done kernel-dev.tar

printf '%s' "${BUILD_IMAGE}" >/out/kernel-builder
step_done kernel-builder
EOF
}

# peer_env EPOCH BUILDER VERSION SERIES sets PEER_ENV to the plan's
# environment (kernel.Plan.env), as bench/build.sh's bare_env.
peer_env() {
	local epoch=$1
	PEER_ENV=(
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C TZ=UTC
		SOURCE_DATE_EPOCH="$epoch" "KBUILD_BUILD_TIMESTAMP=$(LC_ALL=C TZ=UTC date -d "@$epoch" '+%a %b %e %H:%M:%S %Z %Y')"
		KBUILD_BUILD_USER=root KBUILD_BUILD_HOST=buildkitsandbox KBUILD_BUILD_VERSION=1 ARCH=x86
		BUILD_IMAGE="$2" KERNEL_VERSION="$3" KERNEL_SERIES="$4"
	)
}

# peer_run ROOT OUT [VAR=VALUE...]: the timed script, in the chroot, with
# that environment (default: PEER_ENV). OUT, OUT.log, OUT.steps as above.
peer_run() {
	local root=$1 out=$2
	shift 2
	local env=("$@")
	if ((${#env[@]} == 0)); then
		[[ -n ${PEER_ENV+set} ]] || bench_die "peer: no environment given (peer_run ROOT OUT VAR=VALUE... or peer_env)"
		env=("${PEER_ENV[@]}")
	fi
	[[ -f $root/peer-steps.sh ]] || bench_die "peer: no $root/peer-steps.sh (run peer_prepare first)"
	if ! /usr/bin/time -f '%e %M %U %S' -o "$out" -- \
		chroot "$root" /usr/bin/env -i "${env[@]}" /bin/sh /peer-steps.sh </dev/null >"$out.log" 2>&1; then
		tail -n 30 "$out.log" >&2
		bench_die "peer: the build failed (log: $out.log)"
	fi
	sed -n 's/^peer-step //p' "$out.log" >"$out.steps"
}

# peer_check ROOT: every file the Dockerfile puts in /out is there and not
# empty, the tars hold what they must; PEER_KERNEL is the kernel's sha256.
peer_check() {
	local root=$1 f missing=()
	for f in kernel System.map kernel.tar kernel-headers.tar kernel-dev.tar src/linux.tar.xz \
		intel-ucode.cpio intel-ucode-license.txt kernel-source-info kernel-builder; do
		[[ -s $root/out/$f ]] || missing+=("$f")
	done
	((${#missing[@]} == 0)) || bench_die "peer: outputs missing or empty: ${missing[*]}"
	# grep reads to the end (no -q): tar would die of SIGPIPE under pipefail.
	tar -tf "$root/out/kernel-dev.tar" | grep '^usr/src/linux-headers-[^/]*/Module\.symvers$' >/dev/null ||
		bench_die "peer: kernel-dev.tar has no Module.symvers"
	tar -tvf "$root/out/kernel.tar" | grep '^l.* \./lib/modules/[^/]*/build -> /usr/src/linux-headers-' >/dev/null ||
		bench_die "peer: kernel.tar has no lib/modules/<release>/build link"
	PEER_KERNEL=$(sha256sum <"$root/out/kernel" | cut -d' ' -f1)
}

# peer_main: the standalone run.
peer_main() {
	local series=6.12.x builder layout image root version expect same
	[[ $(id -u) -eq 0 ]] || { echo "peer: run as root (chroot and mounts)" >&2; exit 1; }
	BENCH_ROUNDS=1
	# rootfs 0.6 GB, mirror copy 0.15, /linux-<version>.tar 1.5, /linux
	# 1.5 plus objects, src/linux.tar.xz 0.15, the install trees.
	bench_init peer 6000
	for tool in jq chroot mount umount git tar; do
		command -v "$tool" >/dev/null || bench_die "$tool is missing"
	done
	trap bench_unmount_cleanup EXIT

	eval "$(bash scripts/fixtures/e2e.sh)"
	builder=$LKBUILD_E2E_BUILDER
	version=$(sed -n 's/^KERNEL_VERSION=//p' "testdata/kernel/$series/build-args")
	layout=${builder#oci:}
	layout=${layout%:*}
	image=$(jq -r --arg n "${builder##*:}" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $n) | .digest' "$layout/index.json")
	[[ $image == sha256:* ]] || bench_die "no image ${builder##*:} in $layout"
	root=$BENCH_WORK/rootfs
	bench_log "unpacking the builder rootfs $image (untimed)"
	"$BENCH_WORK/bin/extract" run -store "$layout" -image "$image" "$root" >/dev/null
	bench_mount -t proc proc "$root/proc"
	bench_mount --bind /dev "$root/dev"
	bench_log "preparing: mirror, kernel dir, microcode checkout (untimed)"
	PEER_SERIES=$series peer_prepare "$root"
	peer_env "${PEER_EPOCH:-1700000000}" "$builder" "$version" "$series"

	BENCH_LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
	bench_log "running the peer (timed; log in $BENCH_WORK/peer.log)"
	peer_run "$root" "$BENCH_WORK/peer"
	peer_check "$root"
	bench_unmount_all
	echo "peer $(tail -n 1 "$BENCH_WORK/peer")" >>"$BENCH_WORK/times"

	echo
	echo "== peer: steps, seconds (wall: date stamps in the chroot; CPU: the shell's times)"
	awk 'BEGIN { printf "%-22s %8s %8s\n", "step", "wall", "CPU" }
		{ printf "%-22s %8.2f %8.2f\n", $1, $2, $3; w += $2; c += $3 }
		END { printf "%-22s %8.2f %8.2f\n", "(sum)", w, c }' "$BENCH_WORK/peer.steps"
	expect=${PEER_EXPECT_KERNEL:-}
	same="not compared (set PEER_EXPECT_KERNEL)"
	if [[ -n $expect ]]; then
		[[ $expect == "$PEER_KERNEL" ]] && same=yes || same="no (want $expect)"
	fi
	read -r wall rss user sys < <(tail -n 1 "$BENCH_WORK/peer")
	echo "peer: wall $wall s, CPU $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }') s (user $user, sys $sys), peak RSS $(awk -v k="$rss" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }') MB, kernel sha256 $PEER_KERNEL"
	bench_result "peer (Dockerfile steps), wall s (CPU s)" "$wall ($(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }'))" "" ""
	bench_result "peer user / sys s" "$user / $sys" "" "info"
	bench_result "peer make -j" "${PEER_JOBS:-$(getconf _NPROCESSORS_ONLN) (getconf)}" "" "info"
	bench_result "peer kernel sha256" "${PEER_KERNEL:0:16}" "" "info"
	bench_result "peer kernel = PEER_EXPECT_KERNEL" "$same" "" "info"
	bench_report
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	peer_main "$@"
fi
