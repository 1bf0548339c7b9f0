#!/usr/bin/env bash
# build.sh: what a whole `lkbuild build` costs over the bare kernel build it
# wraps. One run builds the end-to-end test kernel (testdata/kernel, series
# 6.12.x, x86_64, the e2e fixtures of scripts/fixtures/e2e.sh) three ways:
#
#   bare   the make commands of the plan (kernel/plan.go), as root with
#          `chroot` into the builder rootfs, with the plan's environment:
#          make defconfig, make oldconfig, make -jBENCH_JOBS KCFLAGS=-fno-pie,
#          make -s kernelrelease, make -jBENCH_JOBS modules_install and headers_install.
#          Untimed preparation: the rootfs unpacked with lkbuild's extractor
#          (bench/cmd/extract, from the builder layout), the source fetched,
#          verified and extracted with lkbuild's fetcher (bench/cmd/kernelsrc)
#          and moved to ROOT/linux, the kernel dir at ROOT/src, the patches
#          applied (patch -t -F0 -N -u -p1 -i), the config installed as
#          arch/x86/configs/x86_64_defconfig; /proc and /dev are mounted.
#          Only the makes are timed, each on its own; their sum is "bare".
#   cold   lkbuild --json with an empty --cache-dir and --output: fetch,
#          verify and extract the source, unpack the rootfs, the steps in the
#          sandbox, src/linux.tar.xz (xz in the background), the layer.
#   warm   the same command with --clean on the cold run's cache with a
#          new --output (source tree, rootfs and src/linux.tar.xz come from
#          the cache; the object tree starts empty).
#   incremental  the kernel dir with its patch changed (one line of
#          init/main.c) in a new commit, built on the warm run's kept
#          object tree: kbuild rebuilds what the patch reaches, and
#          src/linux.tar.xz is made again (new patches, new epoch).
#   nochange  the warm inputs again with --force on the incremental run's
#          cache: the object tree is reconciled back (one file), the source
#          archive comes from the cache; the floor of an incremental build.
#   skip   the warm command again on its own output: "already exists";
#          hyperfine (-N) times it.
#
# Bare and warm run BENCH_BUILD_ROUNDS (3) times, the others once (a kernel
# build takes 5-15 minutes): bare, peer, cold, warm, then per further round
# bare and warm with the first side alternating; medians are reported (the
# phase and step tables show the last round, the peak RSS the largest of
# all). Around every side a fixed CPU probe (sha256 of 256 MiB of zeros)
# is timed: on these VMs the CPU's speed drifts by up to 20 % within
# minutes, and the probe's median around each side tells drift from
# overhead. BENCH_SIDES=bare-cold runs bare once, then cold;
# BENCH_SIDES=bare-warm runs bare, cold and the rounds of bare and warm
# only (the warm overhead's diagnosis, ~35 minutes). For the make step of
# every side, /proc/stat's all-CPU counters are read around it (bare) or
# sampled every BENCH_SAMPLE seconds (lkbuild, the step's window from its
# --json events): user, system, idle and steal seconds of both CPUs, so a
# slower make shows as more work, more waiting or a stolen CPU. All on
# tmpfs (BENCH_TMPDIR, default /dev/shm); the mirror's
# tarball is read from the page cache (the bare preparation reads it just
# before). lkbuild runs as a whole process under GNU time (%e wall, %U+%S
# CPU of it and the sandbox processes it waits for, %M the largest peak RSS
# among them, i.e. usually a cc1 or xz); the script also samples
# /proc/<pid>/status VmHWM of the lkbuild process itself every
# BENCH_SAMPLE seconds, and of the sandbox's re-executed lkbuild processes
# every 8th sample.
# The phase times come from the --json events (phase-end), the time of each
# step from the gap between consecutive events.
#
# Targets: cold wall / bare wall - 1 <= 10 %; warm wall / bare wall - 1
# <= 3 %; incremental wall / warm wall <= 0.25 with the image of a clean
# build of the changed inputs (checked: a --clean build of them, untimed
# when BENCH_CHECK_CLEAN=1, the default); the skipped rebuild < 2 s (the slowest hyperfine run); the lkbuild
# process's peak RSS (VmHWM) < 200 MB. A miss is reported, not an error.
#
# A kernel of real size: BENCH_CONFIG=defconfig replaces the checkout's
# config with the kernel's own x86_64_defconfig (`make x86_64_defconfig`
# in the bare tree, untimed, then `make mrproper`), about 3,000 objects
# instead of 658; BENCH_SIDES=bare-cold then runs only bare and cold (and
# reports only their rows), about an hour on 2 CPUs instead of two and a
# half for every side.
# The kernel the bare build made is compared with the image's (same bits
# expected: same tree, paths, environment and epoch). Needs root, jq,
# hyperfine. Environment: BENCH_BUILD_ROUNDS (3), BENCH_JOBS (2), BENCH_TMPDIR (/dev/shm),
# BENCH_SKIP_RUNS (10), BENCH_SAMPLE (0.25), BENCH_CONFIG (test or
# defconfig), BENCH_SIDES (all, bare-cold or bare-warm), LKBUILD_FIXTURES.
set -euo pipefail
# Whole kernel builds: their own count of rounds, not the quick
# benchmarks' BENCH_ROUNDS.
BENCH_ROUNDS=${BENCH_BUILD_ROUNDS:-3}
# shellcheck source=bench/lib.bash
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BENCH_JOBS=${BENCH_JOBS:-2}
BENCH_SKIP_RUNS=${BENCH_SKIP_RUNS:-10}
BENCH_SAMPLE=${BENCH_SAMPLE:-0.25}
BENCH_CONFIG=${BENCH_CONFIG:-test}
BENCH_SIDES=${BENCH_SIDES:-all}
series=6.12.x

[[ $(id -u) -eq 0 ]] || { echo "build: run as root (chroot and mounts)" >&2; exit 1; }
# Peak: the cache (1.6 GB source, 0.6 GB rootfs), a build's scratch and
# kept object tree (~1 GB each at the test config), two layouts, and the
# bare side's rootfs, prepared tree and working tree (~4.5 GB), kept until
# its last round; a defconfig build's objects take ~3 GB more.
bench_init build 11000
bin=$BENCH_WORK/bin
[[ $BENCH_JOBS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_JOBS=$BENCH_JOBS: want a positive integer"
[[ $BENCH_SKIP_RUNS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_SKIP_RUNS=$BENCH_SKIP_RUNS: want a positive integer"
[[ $BENCH_CONFIG == test || $BENCH_CONFIG == defconfig ]] || bench_die "BENCH_CONFIG=$BENCH_CONFIG: want test or defconfig"
case $BENCH_SIDES in
all | bare-cold | bare-warm) ;;
*) bench_die "BENCH_SIDES=$BENCH_SIDES: want all, bare-cold or bare-warm" ;;
esac
# all_sides: whether every side runs (peer, warm, incremental, nochange, skip).
all_sides() { [[ $BENCH_SIDES == all ]]; }
# warm_side: whether warm runs (in rounds with bare).
warm_side() { [[ $BENCH_SIDES != bare-cold ]]; }
warm_side || BENCH_ROUNDS=1
for tool in jq hyperfine chroot mount umount git; do
	command -v "$tool" >/dev/null || bench_die "$tool is missing"
done

trap bench_unmount_cleanup EXIT

loads=$BENCH_WORK/loads
# note_load WHEN records the load and times the CPU probe: "WHEN SECONDS"
# in $BENCH_WORK/probes (WHEN is "before SIDE" or "after SIDE").
note_load() {
	local probe
	probe=$( { /usr/bin/time -f '%e' sh -c 'head -c 268435456 /dev/zero | sha256sum >/dev/null'; } 2>&1 | tail -n 1)
	echo "$1 $probe" >>"$BENCH_WORK/probes"
	echo "$1 $(cut -d' ' -f1-3 /proc/loadavg)" >>"$loads"
	bench_log "$1: load $(cut -d' ' -f1-3 /proc/loadavg), CPU probe $probe s"
}
# cpu_jiffies prints "EPOCH USER SYSTEM IDLE STEAL", /proc/stat's counters
# of all CPUs in jiffies (user with nice, system with irq and softirq, idle
# with iowait).
cpu_jiffies() {
	local l
	read -r l </proc/stat
	# shellcheck disable=SC2086 # the fields of the line
	set -- $l
	echo "$EPOCHREALTIME $(($2 + $3)) $(($4 + $7 + $8)) $(($5 + $6)) $9"
}
# cpu_delta A B: "USER SYSTEM IDLE STEAL" seconds from cpu_jiffies line A to B.
cpu_delta() {
	awk -v a="$1" -v b="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		printf "%.1f %.1f %.1f %.1f\n", (y[2] - x[2]) / hz, (y[3] - x[3]) / hz, (y[4] - x[4]) / hz, (y[5] - x[5]) / hz }'
}
# makecpu SIDE WALL "USER SYSTEM IDLE STEAL": a row of the make step's table.
makecpu() {
	echo "$1 $2 $3" >>"$BENCH_WORK/makecpu"
	bench_log "$1 make step: $2 s; all CPUs: user, system, idle, steal $3 s"
}
# probe_median SIDE: the median probe time around SIDE's runs.
probe_median() { awk -v s="$1" 'NF == 3 && $2 == s { print $3 }' "$BENCH_WORK/probes" | bench_median_of; }

bench_log "building lkbuild into $bin (as make build does)"
CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs -ldflags '-s -w' -o "$bin/lkbuild" ./cmd/lkbuild

eval "$(bash scripts/fixtures/e2e.sh)"
builder=$LKBUILD_E2E_BUILDER
version=$(sed -n 's/^KERNEL_VERSION=//p' "testdata/kernel/$series/build-args")
[[ -n $version ]] || bench_die "no KERNEL_VERSION in testdata/kernel/$series/build-args"

# A LinuxKit-style checkout, as scripts/quickstart.sh makes it: the series
# hash needs git, the keys must be the mirror's. Its commit time is the
# build's epoch.
checkout=$BENCH_WORK/checkout
mkdir -p "$checkout"
cp -r testdata/kernel "$checkout/kernel"
cp "$LKBUILD_E2E_KEYS" "$checkout/kernel/common/keys.asc"
(
	cd "$checkout"
	export GIT_AUTHOR_DATE="@1700000000 +0000" GIT_COMMITTER_DATE="@1700000000 +0000"
	git init -q -b main
	git add .
	git -c user.name=bench -c user.email=bench@lkbuild.invalid commit -q -m kernel
)
epoch=$(git -C "$checkout" log -1 --format=%ct)

# The same checkout with the patch's marker line changed, committed 100 s
# later: what a developer's next commit looks like.
checkout2=$BENCH_WORK/checkout2
cp -r "$checkout" "$checkout2"
sed -i 's/lkbuild-e2e: patch 0001 applied/lkbuild-e2e: patch 0001 applied, edited/' "$checkout2/kernel/$series/patches/0001-"*.patch
(
	cd "$checkout2"
	export GIT_AUTHOR_DATE="@1700000100 +0000" GIT_COMMITTER_DATE="@1700000100 +0000"
	git -c user.name=bench -c user.email=bench@lkbuild.invalid commit -q -a -m "edit the patch"
)
[[ -n $(git -C "$checkout2" diff HEAD~1 --stat) ]] || bench_die "the patch edit changed nothing"

lkbuild_cmd() { # lkbuild_cmd CACHE OUTPUT [KERNELDIR]: the build command, in ${cmd[@]}
	cmd=("$bin/lkbuild" --cache-dir "$1" --kernel-dir "${3:-$checkout/kernel}" --series "$series" --arch x86_64
		--jobs "$BENCH_JOBS" --builder-image "$builder" --source-mirror "$LKBUILD_E2E_MIRROR"
		--ucode-repo "$LKBUILD_E2E_UCODE" --output "$2")
}

# ---- bare: preparation (untimed)
note_load "before bare preparation"
bare=$BENCH_WORK/bare
root=$bare/rootfs
layout=${builder#oci:}
layout=${layout%:*}
image=$(jq -r --arg n "${builder##*:}" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $n) | .digest' "$layout/index.json")
[[ $image == sha256:* ]] || bench_die "no image ${builder##*:} in $layout"
bench_log "unpacking the builder rootfs $image (untimed)"
"$bin/extract" run -store "$layout" -image "$image" "$root" >/dev/null
bench_log "fetching and extracting the source (untimed)"
tree=$("$bin/kernelsrc" fetch -mirror "$LKBUILD_E2E_MIRROR" -keys "$LKBUILD_E2E_KEYS" -version "$version" -cache "$bare/src-cache" | sed -n 's/^cached=false dir=//p')
[[ -d $tree ]] || bench_die "kernelsrc fetch printed no tree"
mv -T "$tree" "$root/linux"
rm -rf "$bare/src-cache"
if [[ $BENCH_CONFIG == defconfig ]]; then
	# The kernel's own x86_64_defconfig becomes the checkout's config, in
	# the checkout's one commit (same time, so the same epoch); mrproper
	# leaves the tree as extracted.
	bench_log "making the kernel's x86_64_defconfig for the checkout (untimed)"
	chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C ARCH=x86 \
		/bin/sh -c 'cd /linux && make -s x86_64_defconfig && cp .config /config-x86_64 && make -s mrproper' >>"$bare/bare.log" 2>&1 ||
		bench_die "make x86_64_defconfig failed (see $bare/bare.log)"
	mv "$root/config-x86_64" "$checkout/kernel/$series/config-x86_64"
	(
		cd "$checkout"
		export GIT_AUTHOR_DATE="@1700000000 +0000" GIT_COMMITTER_DATE="@1700000000 +0000"
		git add -A
		git -c user.name=bench -c user.email=bench@lkbuild.invalid commit -q --amend -m kernel
	)
	[[ $(git -C "$checkout" log -1 --format=%ct) == "$epoch" ]] || bench_die "the amended checkout has another epoch"
	cp "$checkout/kernel/$series/config-x86_64" "$checkout2/kernel/$series/config-x86_64"
	(
		cd "$checkout2"
		export GIT_AUTHOR_DATE="@1700000100 +0000" GIT_COMMITTER_DATE="@1700000100 +0000"
		git -c user.name=bench -c user.email=bench@lkbuild.invalid commit -q -a --amend -m "edit the patch"
	)
	bench_log "config: x86_64_defconfig, $(grep -c '=[ym]$' "$checkout/kernel/$series/config-x86_64") symbols y or m"
fi
cp -r "$checkout/kernel" "$root/src"

# The plan's environment (kernel.Plan.env) for this build.
bare_env=(
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C TZ=UTC
	SOURCE_DATE_EPOCH="$epoch" "KBUILD_BUILD_TIMESTAMP=$(LC_ALL=C TZ=UTC date -d "@$epoch" '+%a %b %e %H:%M:%S %Z %Y')"
	KBUILD_BUILD_USER=root KBUILD_BUILD_HOST=buildkitsandbox KBUILD_BUILD_VERSION=1 ARCH=x86
	BUILD_IMAGE="$builder" KERNEL_VERSION="$version" KERNEL_SERIES="$series"
)
# in_root DIR CMD... runs CMD in the chroot, in DIR, with the plan's env.
root_cmd=(chroot "$root" /usr/bin/env -i "${bare_env[@]}" /bin/sh -c 'cd "$0" && exec "$@"')
in_root() { "${root_cmd[@]}" "$@"; }
for p in "$root/src/$series/patches"/*.patch; do
	in_root /linux patch -t -F0 -N -u -p1 -i "/src/$series/patches/$(basename "$p")" >>"$bare/bare.log" 2>&1 ||
		bench_die "patch $(basename "$p") does not apply (see $bare/bare.log)"
done
cp "$root/src/$series/config-x86_64" "$root/linux/arch/x86/configs/x86_64_defconfig"
# Every round of bare starts from a copy of this tree.
mv -T "$root/linux" "$bare/linux.prepared"

# bare_make STEP ARGS...: one timed make in /linux; the row is "bare:STEP".
bare_make() {
	local step=$1
	shift
	echo "### step $step: make $*" >>"$bare/bare.log"
	local before
	before=$(cpu_jiffies)
	if ! /usr/bin/time -f '%e %M %U %S' -o "$BENCH_WORK/time.out" -- "${root_cmd[@]}" /linux make "$@" >>"$bare/bare.log" 2>&1; then
		tail -n 30 "$bare/bare.log" >&2
		bench_die "bare make $step failed"
	fi
	echo "bare:$step $(tail -n 1 "$BENCH_WORK/time.out")" >>"$BENCH_WORK/times"
	[[ $step == make ]] && makecpu bare "$(cut -d' ' -f1 "$BENCH_WORK/time.out")" "$(cpu_delta "$before" "$(cpu_jiffies)")"
	bench_log "bare $step: $(tail -n 1 "$BENCH_WORK/time.out" | awk '{ printf "%s s, CPU %.1f s", $1, $3 + $4 }')"
}

# ---- bare: the makes (timed), a round: the tree copied from the prepared
# one (untimed), the makes, and one "bare" row in times with their sums.
bare_round() {
	local release
	bench_log "bare round: copying the prepared tree (untimed)"
	rm -rf --one-file-system "$root/linux" "$root/work"
	cp -a "$bare/linux.prepared" "$root/linux"
	mkdir -p "$root/work"
	bench_mount -t proc proc "$root/proc"
	bench_mount --bind /dev "$root/dev"
	: >"$bare/bare.log"
	touch "$BENCH_WORK/times"
	grep -v '^bare:' "$BENCH_WORK/times" >"$BENCH_WORK/times.tmp" || true
	mv "$BENCH_WORK/times.tmp" "$BENCH_WORK/times"
	note_load "before bare"
	bare_make defconfig defconfig
	bare_make oldconfig oldconfig
	cmp -s "$root/linux/.config" "$root/src/$series/config-x86_64" && bare_config=same || bare_config=differs
	bare_make make -j"$BENCH_JOBS" KCFLAGS=-fno-pie
	bare_make kernelrelease -s kernelrelease
	release=$(in_root /linux make -s kernelrelease)
	bare_make modules_install -j"$BENCH_JOBS" INSTALL_MOD_PATH=/work/kernel-modules modules_install
	in_root / rm -f "/work/kernel-modules/lib/modules/$release/build" "/work/kernel-modules/lib/modules/$release/source"
	in_root / ln -s "/usr/src/linux-headers-$release" "/work/kernel-modules/lib/modules/$release/build"
	in_root / mkdir -p /work/kernel-headers/usr
	bare_make headers_install -j"$BENCH_JOBS" INSTALL_HDR_PATH=/work/kernel-headers/usr headers_install
	note_load "after bare"
	bare_kernel=$(sha256sum <"$root/linux/arch/x86/boot/bzImage" | cut -d' ' -f1)
	bare_objects=$(grep -cE '^\s+(CC|AS)(\s+\[M\])?\s+\S+\.o$' "$bare/bare.log" || true)
	# The round's row: the sums of its makes (the largest peak RSS).
	awk '$1 ~ /^bare:/ { w += $2; if ($3 > m) m = $3; u += $4; y += $5 } END { printf "bare %.2f %d %.2f %.2f\n", w, m, u, y }' \
		"$BENCH_WORK/times" >>"$BENCH_WORK/times"
	bench_log "bare round: $(awk '$1 == "bare" { r = $0 } END { split(r, f, " "); printf "%s s, CPU %.1f s", f[2], f[4] + f[5] }' "$BENCH_WORK/times")"
	bench_unmount_all
	rm -rf --one-file-system "$root/linux" "$root/work"
}
bare_round
# Only bare-cold's one round: its tree can go now.
warm_side || rm -rf --one-file-system "$bare"

# ---- peer: upstream's Dockerfile steps as one script in a chroot of the
# same rootfs (bench/peer.sh says where it differs and why); timed whole.
# shellcheck source=bench/peer.sh
. bench/peer.sh
peer_kernel=not-run
if all_sides; then
	peer_root=$BENCH_WORK/peer/rootfs
	bench_log "unpacking the builder rootfs for the peer (untimed)"
	"$bin/extract" run -store "$layout" -image "$image" "$peer_root" >/dev/null
	bench_mount -t proc proc "$peer_root/proc"
	bench_mount --bind /dev "$peer_root/dev"
	PEER_JOBS=$BENCH_JOBS peer_prepare "$peer_root"
	peer_env "$epoch" "$builder" "$version" "$series"
	note_load "before peer"
	peer_run "$peer_root" "$BENCH_WORK/peer.time"
	note_load "after peer"
	peer_check "$peer_root"
	peer_kernel=$PEER_KERNEL
	echo "peer $(tail -n 1 "$BENCH_WORK/peer.time")" >>"$BENCH_WORK/times"
	bench_log "peer: $(tail -n 1 "$BENCH_WORK/peer.time" | awk '{ printf "%s s, CPU %.1f s", $1, $3 + $4 }')"
	bench_unmount_all
	rm -rf --one-file-system "$BENCH_WORK/peer"
fi

# ---- lkbuild: cold and warm
# sample_rss PID OUT: until PID's parent (GNU time) is gone, the largest
# VmHWM (KiB) of PID and of any other process running our lkbuild binary
# (the sandbox's re-executed lkbuild), as "MAIN OTHERS" in OUT; and a
# cpu_jiffies line per sample in OUT.cpu.
# read_hwm VAR FILE: the VmHWM (kB) of a /proc/PID/status FILE into VAR, 0
# when there is none; builtins only.
# shellcheck disable=SC2034 # hwm_var is a nameref to the caller's VAR
read_hwm() {
	local -n hwm_var=$1
	local k v
	hwm_var=0
	while read -r k v _; do
		[[ $k == VmHWM: ]] && { hwm_var=$v; break; }
	done 2>/dev/null <"$2" || true
}
sample_rss() {
	local pid=$1 out=$2 main=0 others=0 d hwm tick=0 nap
	: >"$out.cpu"
	# The sampler runs during lkbuild's sides only, so it must cost next
	# to nothing: bash builtins every sample, no fork (a grep and a sleep
	# per sample and the /proc scan at every one of them took ~1.8 CPU s
	# in a 2-minute make step, ~0.8 % of warm's wall, in a profile). It
	# sleeps by reading with a timeout from a pipe nothing writes to, and
	# scans /proc for the sandbox's lkbuild processes (a stat of each
	# process's exe) every 8th sample.
	exec {nap}<> <(:)
	while [[ -d /proc/$pid ]]; do
		cpu_jiffies >>"$out.cpu"
		read_hwm hwm "/proc/$pid/status"
		((hwm > main)) && main=$hwm
		if ((tick++ % 8 == 0)); then
			for d in /proc/[0-9]*; do
				[[ ${d#/proc/} == "$pid" ]] && continue
				[[ $d/exe -ef $bin/lkbuild ]] 2>/dev/null || continue
				read_hwm hwm "$d/status"
				((hwm > others)) && others=$hwm
			done
		fi
		echo "$main $others" >"$out"
		read -r -t "$BENCH_SAMPLE" -u "$nap" _ || true
	done
	exec {nap}<&-
}

# run_lkbuild SIDE CACHE OUTPUT [KERNELDIR [FLAGS...]]: one timed build
# with --json events in $BENCH_WORK/SIDE.jsonl.
run_lkbuild() {
	local side=$1 tpid pid
	lkbuild_cmd "$2" "$3" "${4:-}"
	cmd+=("${@:5}")
	note_load "before $side"
	/usr/bin/time -f '%e %M %U %S' -o "$BENCH_WORK/time.out" -- "${cmd[@]}" --json \
		>"$BENCH_WORK/$side.jsonl" 2>"$BENCH_WORK/$side.err" &
	tpid=$!
	pid=
	for _ in $(seq 100); do
		pid=$(pgrep -P "$tpid" || true)
		[[ -n $pid ]] && break
		sleep 0.05
	done
	echo "0 0" >"$BENCH_WORK/$side.rss.run"
	[[ -n $pid ]] && sample_rss "$pid" "$BENCH_WORK/$side.rss.run" &
	local spid=$!
	if ! wait "$tpid"; then
		wait "$spid" || true
		tail -n 30 "$BENCH_WORK/$side.err" >&2
		bench_die "lkbuild $side failed (events in $BENCH_WORK/$side.jsonl)"
	fi
	wait "$spid" || true
	# A side of several rounds keeps the largest of each figure.
	touch "$BENCH_WORK/$side.rss"
	cat "$BENCH_WORK/$side.rss" "$BENCH_WORK/$side.rss.run" |
		awk '{ if ($1 > a) a = $1; if ($2 > b) b = $2 } END { printf "%d %d\n", a, b }' >"$BENCH_WORK/$side.rss.max"
	mv "$BENCH_WORK/$side.rss.max" "$BENCH_WORK/$side.rss"
	note_load "after $side"
	echo "$side $(tail -n 1 "$BENCH_WORK/time.out")" >>"$BENCH_WORK/times"
	bench_log "$side: $(tail -n 1 "$BENCH_WORK/time.out" | awk '{ printf "%s s, CPU %.1f s, GNU time peak RSS %.1f MB", $1, $3 + $4, $2 * 1024 / 1e6 }'), VmHWM lkbuild / sandbox lkbuild $(awk '{ printf "%.1f / %.1f MB", $1 * 1024 / 1e6, $2 * 1024 / 1e6 }' "$BENCH_WORK/$side.rss.run")"
	jq -e 'select(.kind == "result") | .skipped == false' "$BENCH_WORK/$side.jsonl" >/dev/null ||
		bench_die "lkbuild $side did not build (see $BENCH_WORK/$side.jsonl)"
	make_window "$side"
}

# make_window SIDE: the make step's row of the side's last run: its window
# is from its step event to the next event; the CPU counters are the
# samples nearest inside it.
make_window() {
	local t0 t1 a b
	read -r t0 t1 < <(jq -rs '[.[] | select(.time != null and (.kind == "step" or .kind == "phase-start" or .kind == "phase-end"))] as $e
		| def epoch: (.[0:19] + "Z" | fromdateiso8601) + ((.[19:] | capture("^(?<f>[.][0-9]+)") | .f | tonumber) // 0);
		range(0; ($e | length) - 1) as $i | select($e[$i].kind == "step" and $e[$i].step == "make")
		| "\($e[$i].time | epoch) \($e[$i + 1].time | epoch)"' "$BENCH_WORK/$1.jsonl" | tail -n 1)
	[[ -n $t1 ]] || return 0
	a=$(awk -v t="$t0" '$1 >= t { print; exit }' "$BENCH_WORK/$1.rss.run.cpu")
	b=$(awk -v t="$t1" '$1 <= t { l = $0 } END { print l }' "$BENCH_WORK/$1.rss.run.cpu")
	[[ -n $a && -n $b ]] || return 0
	makecpu "$1" "$(awk -v a="${a%% *}" -v b="${b%% *}" 'BEGIN { printf "%.2f\n", b - a }')" "$(cpu_delta "$a" "$b")"
}

# image_kernel LAYOUT prints the sha256 of the file kernel in the image's
# only layer.
image_kernel() {
	local m l name
	# The named image, not an attachment (provenance, SBOM).
	m=$(jq -r '[.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] != null)][0].digest' "$1/index.json")
	if jq -e '.manifests' "$1/blobs/sha256/${m#sha256:}" >/dev/null 2>&1; then
		m=$(jq -r '.manifests[0].digest' "$1/blobs/sha256/${m#sha256:}")
	fi
	l=$(jq -r '.layers[-1].digest' "$1/blobs/sha256/${m#sha256:}")
	name=$(tar -tf "$1/blobs/sha256/${l#sha256:}" | awk '$0 == "kernel" || $0 == "./kernel" { n = $0 } END { print n }')
	[[ -n $name ]] || { echo "no kernel in the layer"; return; }
	tar -xOf "$1/blobs/sha256/${l#sha256:}" "$name" | sha256sum | cut -d' ' -f1
}

cache=$BENCH_WORK/cache
run_lkbuild cold "$cache" "$BENCH_WORK/out-cold"
cold_kernel=$(image_kernel "$BENCH_WORK/out-cold")
rm -rf "$BENCH_WORK/out-cold"
if warm_side; then
	run_lkbuild warm "$cache" "$BENCH_WORK/out-warm" "" --clean
	warm_kernel=$(image_kernel "$BENCH_WORK/out-warm")
	# The other rounds of bare and warm, each round's first side alternating.
	for ((r = 2; r <= BENCH_ROUNDS; r++)); do
		bench_log "round $r of $BENCH_ROUNDS of bare and warm"
		if ((r % 2)); then
			bare_round
		fi
		rm -rf "$BENCH_WORK/out-warm"
		run_lkbuild warm "$cache" "$BENCH_WORK/out-warm" "" --clean
		warm_kernel=$(image_kernel "$BENCH_WORK/out-warm")
		if ((r % 2 == 0)); then
			bare_round
		fi
	done
	rm -rf --one-file-system "$bare"
fi
if all_sides; then
	# ---- incremental: the changed patch on the warm run's object tree, then
	# the warm inputs again (--force) on that tree.
	run_lkbuild incremental "$cache" "$BENCH_WORK/out-inc" "$checkout2/kernel"
	jq -e 'select(.kind == "result") | .incremental' "$BENCH_WORK/incremental.jsonl" >/dev/null ||
		bench_die "the build after a patch change was not incremental (see $BENCH_WORK/incremental.jsonl)"
	inc_digest=$(jq -r 'select(.kind == "result") | .digest' "$BENCH_WORK/incremental.jsonl")
	rm -rf "$BENCH_WORK/out-inc"
	run_lkbuild nochange "$cache" "$BENCH_WORK/out-nochange" "" --force
	nochange_digest=$(jq -r 'select(.kind == "result") | .digest' "$BENCH_WORK/nochange.jsonl")
	warm_digest=$(jq -r 'select(.kind == "result") | .digest' "$BENCH_WORK/warm.jsonl")
	rm -rf "$BENCH_WORK/out-nochange"
	clean_digest=unchecked
	if [[ ${BENCH_CHECK_CLEAN:-1} == 1 ]]; then
		bench_log "a clean build of the changed inputs, to compare (untimed)"
		lkbuild_cmd "$cache" "$BENCH_WORK/out-clean2" "$checkout2/kernel"
		"${cmd[@]}" --clean --json >"$BENCH_WORK/clean2.jsonl" 2>"$BENCH_WORK/clean2.err" || bench_die "the clean build of the changed inputs failed"
		clean_digest=$(jq -r 'select(.kind == "result") | .digest' "$BENCH_WORK/clean2.jsonl")
		rm -rf "$BENCH_WORK/out-clean2"
fi

# ---- the skipped rebuild
lkbuild_cmd "$cache" "$BENCH_WORK/out-warm"
"${cmd[@]}" >"$BENCH_WORK/skip.out" 2>&1 || bench_die "the rebuild failed: $(cat "$BENCH_WORK/skip.out")"
grep -q 'already exists' "$BENCH_WORK/skip.out" || bench_die "the rebuild did not skip: $(cat "$BENCH_WORK/skip.out")"
note_load "before skip"
hyperfine -N --style none --warmup 1 --runs "$BENCH_SKIP_RUNS" --export-json "$BENCH_WORK/skip.json" -- "${cmd[*]}" >/dev/null
note_load "after skip"
read -r skip_median skip_max skip_cpu < <(jq -r '.results[0] | "\(.median) \(.max) \(.user + .system)"' "$BENCH_WORK/skip.json")
fi

# ---- report
# A side with several rounds (bare, warm) has a row per round: these print
# the median over its rows.
# A side without rows prints nothing.
field() { # field SIDE FIELD
	local v
	v=$(awk -v s="$1" -v f="$2" '$1 == s { print $f }' "$BENCH_WORK/times")
	if [[ -n $v ]]; then bench_median_of <<<"$v"; fi
}
cpu_of() {
	local v
	v=$(awk -v s="$1" '$1 == s { printf "%.1f\n", $4 + $5 }' "$BENCH_WORK/times")
	if [[ -n $v ]]; then bench_median_of <<<"$v"; fi
}
# cpu_split SIDE prints "USER / SYS", the medians of its rows.
cpu_split() { echo "$(field "$1" 4) / $(field "$1" 5)"; }
# rounds SIDE prints the wall seconds of each round, in order.
rounds() { awk -v s="$1" '$1 == s { printf "%s%s", sep, $2; sep = ", " } END { print "" }' "$BENCH_WORK/times"; }
bare_wall=$(field bare 2)
bare_cpu=$(cpu_of bare)
overhead() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f\n", (a / b - 1) * 100 }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f\n", k * 1024 / 1e6 }'; }

# Per step: bare's time, and lkbuild's from the gap to the next event.
step_times() { # step_times SIDE: "STEP SECONDS" lines
	jq -rs 'def secs: .[11:] | capture("^(?<h>[0-9]+):(?<m>[0-9]+):(?<s>[0-9.]+)") | (.h | tonumber) * 3600 + (.m | tonumber) * 60 + (.s | tonumber);
		[.[] | select(.time != null and (.kind == "step" or .kind == "phase-start" or .kind == "phase-end"))] as $e
		| range(0; ($e | length) - 1) as $i | select($e[$i].kind == "step")
		| "\($e[$i].step | gsub(" "; "_")) \(($e[$i + 1].time | secs) - ($e[$i].time | secs))"' "$BENCH_WORK/$1.jsonl"
}
for side in cold warm incremental nochange; do
	# A side that did not run has no events: its columns stay empty.
	touch "$BENCH_WORK/$side.jsonl"
	step_times "$side" >"$BENCH_WORK/$side.steps"
done
phase_secs() { # phase_secs SIDE PHASE
	jq -r --arg p "$2" 'select(.kind == "phase-end" and .phase == $p) | .elapsed / 1e9 * 10 | round / 10' "$BENCH_WORK/$1.jsonl"
}
echo
echo "== build: phases (lkbuild --json phase-end), seconds"
printf '%-10s %9s %9s %12s %9s\n' phase cold warm incremental nochange
for ph in $(jq -r 'select(.kind == "phase-end") | .phase' "$BENCH_WORK/cold.jsonl"); do
	printf '%-10s %9s %9s %12s %9s\n' "$ph" "$(phase_secs cold "$ph")" "$(phase_secs warm "$ph")" \
		"$(phase_secs incremental "$ph")" "$(phase_secs nochange "$ph")"
done
echo
echo "== build: steps, seconds (lkbuild: gap to the next event; src/linux.tar.xz runs in the background; the last step's gap includes the image)"
printf '%-40s %9s %9s %9s %12s\n' step bare cold warm incremental
while read -r st _; do
	printf '%-40s %9s %9s %9s %12s\n' "$st" "$(field "bare:$st" 2)" \
		"$(awk -v s="$st" '$1 == s { printf "%.1f", $2 }' "$BENCH_WORK/cold.steps")" \
		"$(awk -v s="$st" '$1 == s { printf "%.1f", $2 }' "$BENCH_WORK/warm.steps")" \
		"$(awk -v s="$st" '$1 == s { printf "%.1f", $2 }' "$BENCH_WORK/incremental.steps")"
done <"$BENCH_WORK/cold.steps"
echo
echo "== build: the make step of every run, seconds (wall; all CPUs' user, system, idle and steal)"
printf '%-12s %9s %9s %9s %9s %9s\n' side wall user system idle steal
awk '{ printf "%-12s %9s %9s %9s %9s %9s\n", $1, $2, $3, $4, $5, $6 }' "$BENCH_WORK/makecpu"
echo
echo "== build: load average (1/5/15 min) around each side"
cat "$loads"

cold_wall=$(field cold 2)
cold_over=$(overhead "$cold_wall" "$bare_wall")
read -r cold_hwm cold_sbx <"$BENCH_WORK/cold.rss"
bench_result "kernel config" "$BENCH_CONFIG ($bare_objects objects)" "" "info"
bench_result "bare makes, wall s (CPU s)" "$bare_wall ($bare_cpu)" "" ""
bench_result "lkbuild cold, wall s (CPU s)" "$cold_wall ($(cpu_of cold))" "" ""
bench_result "cold overhead over bare, % of wall" "$cold_over" "<= 10" "$(bench_check "$cold_over" "<=" 10)"
bench_result "CPU overhead cold, %" "$(overhead "$(cpu_of cold)" "$bare_cpu")" "" "info"
bench_result "user / sys s: bare; cold" "$(cpu_split bare); $(cpu_split cold)" "" "info"
if ! warm_side; then
	bench_result "lkbuild VmHWM cold, MB" "$(mb "$cold_hwm")" "< 200" "$(bench_check "$(mb "$cold_hwm")" "<" 200)"
	bench_result "sandbox lkbuild VmHWM cold, MB" "$(mb "$cold_sbx")" "" "info"
	bench_result "GNU time %M (incl. children) cold, MB" "$(mb "$(field cold 3)")" "" "info"
	bench_result "objects compiled: bare / cold" "$bare_objects / $(grep -c '"unit":"objects"' "$BENCH_WORK/cold.jsonl" || true)" "" "info"
	bench_result "CPU probe s, median around bare / cold" "$(probe_median bare) / $(probe_median cold)" "" "info"
	same=no
	[[ $bare_kernel == "$cold_kernel" ]] && same=yes
	bench_result "bare .config = stored; same kernel bits (bare, cold)" "$bare_config; $same" "" "info"
	bench_result "make -j, RSS sampling interval" "-j$BENCH_JOBS, ${BENCH_SAMPLE}s" "" ""
	bench_report
	exit 0
fi
warm_wall=$(field warm 2)
warm_over=$(overhead "$warm_wall" "$bare_wall")
read -r warm_hwm warm_sbx <"$BENCH_WORK/warm.rss"
hwm=$((cold_hwm > warm_hwm ? cold_hwm : warm_hwm))
bench_result "lkbuild warm, wall s (CPU s)" "$warm_wall ($(cpu_of warm))" "" ""
bench_result "rounds, wall s: bare" "$(rounds bare)" "" "info"
bench_result "rounds, wall s: warm" "$(rounds warm)" "" "info"
# The same CPU work runs slower when the VM's CPU does: the probe around
# warm / around bare is that drift. Warm's user seconds are gcc's plus
# lkbuild's own (tars, the image layer), so their ratio to bare's is the
# drift plus that work: an upper bound on the drift.
bench_result "CPU probe s, median around bare / warm" "$(probe_median bare) / $(probe_median warm)" "" "info"
bench_result "user CPU s warm / bare" "$(bench_ratio "$(field warm 4)" "$(field bare 4)")" "" "info"
bench_result "warm overhead over bare, % of wall" "$warm_over" "<= 3" "$(bench_check "$warm_over" "<=" 3)"
bench_result "user / sys s: warm" "$(cpu_split warm)" "" "info"
bench_result "CPU overhead warm, %" "$(overhead "$(cpu_of warm)" "$bare_cpu")" "" "info"
if all_sides; then
bench_result "lkbuild incremental, wall s (CPU s)" "$(field incremental 2) ($(cpu_of incremental))" "" ""
bench_result "lkbuild nochange (--force), wall s (CPU s)" "$(field nochange 2) ($(cpu_of nochange))" "" "info"
inc_ratio=$(awk -v a="$(field incremental 2)" -v b="$warm_wall" 'BEGIN { printf "%.2f\n", a / b }')
bench_result "incremental / warm clean, wall" "$inc_ratio" "<= 0.25" "$(bench_check "$inc_ratio" "<=" 0.25)"
same_image=no
[[ $inc_digest == "$clean_digest" ]] && same_image=yes
[[ $clean_digest == unchecked ]] && same_image=unchecked
bench_result "incremental image = clean build's" "$same_image" "yes" "$([[ $same_image == yes ]] && echo PASS || echo MISS)"
same_image=no
[[ $nochange_digest == "$warm_digest" ]] && same_image=yes
bench_result "nochange image = warm (clean) build's" "$same_image" "yes" "$([[ $same_image == yes ]] && echo PASS || echo MISS)"
peer_ratio=$(bench_ratio "$cold_wall" "$(field peer 2)")
bench_result "upstream-steps peer, wall s (CPU s)" "$(field peer 2) ($(cpu_of peer))" "" ""
bench_result "lkbuild cold / peer, wall" "$peer_ratio" "< 1" "$(bench_check "$peer_ratio" "<" 1)"
bench_result "skipped rebuild, s median (max)" "$(printf '%.3f (%.3f)' "$skip_median" "$skip_max")" "< 2" "$(bench_check "$skip_max" "<" 2)"
bench_result "skipped rebuild, CPU s (mean)" "$(printf '%.3f' "$skip_cpu")" "" "info"
fi
bench_result "lkbuild VmHWM cold / warm, MB" "$(mb "$cold_hwm") / $(mb "$warm_hwm")" "< 200" "$(bench_check "$(mb "$hwm")" "<" 200)"
bench_result "sandbox lkbuild VmHWM cold / warm, MB" "$(mb "$cold_sbx") / $(mb "$warm_sbx")" "" "info"
bench_result "GNU time %M (incl. children) cold / warm, MB" "$(mb "$(field cold 3)") / $(mb "$(field warm 3)")" "" "info"
bench_result "objects compiled: bare / cold / warm" "$bare_objects / $(grep -c '"unit":"objects"' "$BENCH_WORK/cold.jsonl" || true) / $(grep -c '"unit":"objects"' "$BENCH_WORK/warm.jsonl" || true)" "" "info"
same=no
[[ $bare_kernel == "$cold_kernel" && $cold_kernel == "$warm_kernel" ]] && { [[ $peer_kernel == "$bare_kernel" ]] || ! all_sides; } && same=yes
bench_result "bare .config = stored; same kernel bits (bare, peer, cold, warm)" "$bare_config; $same" "" "info"
bench_result "make -j, RSS sampling interval" "-j$BENCH_JOBS, ${BENCH_SAMPLE}s" "" ""
bench_report
