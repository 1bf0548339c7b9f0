#!/usr/bin/env bash
# compile.sh: how fast a CPU-bound compile runs in lkbuild's sandbox, against
# `chroot` into the same rootfs on the host: real kernel object files of the
# Debian 6.12 kernel source (package linux-source-6.12), x86 tinyconfig,
# compiled by the builder rootfs's gcc (scripts/fixtures/rootfs.sh).
#
# The source is unpacked once into a cache outside the clone,
# ${LKBUILD_FIXTURES:-/var/cache/lkbuild-fixtures}/bench-linux-<key> (<key>:
# the tarball's size and mtime, the rootfs fixture and the recipe), and
# configured there once, inside the sandbox: `make ARCH=x86 tinyconfig` and
# `make ARCH=x86 prepare`. The rootfs is unpacked (untimed) with lkbuild's
# extractor onto tmpfs; all sides run as root from that one tree, with the
# source tree bind-mounted at /src and the same environment (PATH and HOME
# only):
#
#   lkbuild  lkbuild run --rootfs R --bind SRC:/src --workdir /src -- make ...
#   chroot   chroot R env -i PATH=... HOME=/root sh -c 'cd /src && exec make ...'
#            with SRC bind-mounted on R/src and proc on R/proc for the run
#   overlay  the chroot side with R/src an overlayfs laid out as a build's
#            source tree in lkbuild (builder/workdirs.go): a fresh upper
#            dir (the object tree) over an empty lower (the patches'
#            layer) over SRC, upper and work dir next to SRC on its
#            filesystem; the objects land in the upper. It tells what the
#            overlay itself costs a compile, apart from the sandbox.
#   overlay1 the same with the upper right over SRC (no patches' layer):
#            what the third layer costs.
#
# The timed command is `make ARCH=x86 -jBENCH_JOBS OBJECTS` for a fixed list
# of BENCH_OBJECTS (default 36) objects of kernel/, mm/ and lib/; before
# every run those objects (and their .cmd files) are removed, untimed, so
# each run compiles exactly them. One short warm-up run of each side (4
# objects), then rounds with the first side alternating; each side is a
# whole process under GNU time.
#
# Target: median time of lkbuild / median time of chroot <= 1.02; the
# overlay sides are diagnostics (ratios to chroot, no target). The CPU
# seconds (user + system of the whole process tree) are printed too: on a
# busy machine they tell overhead from noise. A miss is reported, not an
# error; the script fails only when something does not run. Needs root and
# the package linux-source-6.12. Environment: BENCH_ROUNDS (3), BENCH_JOBS
# (2), BENCH_OBJECTS (36, at most the list's length), BENCH_TARGET (objects
# or vmlinux: the whole tinyconfig vmlinux from a clean tree), BENCH_TMPDIR
# (/dev/shm), LKBUILD_FIXTURES.
set -euo pipefail
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
# shellcheck source=bench/lib.bash
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BENCH_JOBS=${BENCH_JOBS:-2}
BENCH_OBJECTS=${BENCH_OBJECTS:-36}
BENCH_TARGET=${BENCH_TARGET:-objects}
kernel_tarball=/usr/src/linux-source-6.12.tar.xz
# The objects every run compiles: built in any x86 tinyconfig kernel, each a
# real, mid-sized translation unit (0.3-3 s of CPU).
all_objects=(
	kernel/fork.o kernel/exit.o kernel/signal.o kernel/sys.o kernel/panic.o
	kernel/cpu.o kernel/softirq.o kernel/resource.o kernel/kthread.o
	kernel/workqueue.o kernel/pid.o kernel/cred.o kernel/params.o
	kernel/reboot.o kernel/ptrace.o kernel/umh.o kernel/notifier.o
	kernel/sched/core.o kernel/sched/fair.o
	kernel/time/timer.o kernel/time/hrtimer.o kernel/time/time.o
	kernel/printk/printk.o kernel/irq/manage.o kernel/locking/mutex.o
	mm/page_alloc.o mm/memory.o mm/mmap.o mm/slub.o mm/vmscan.o mm/filemap.o
	lib/vsprintf.o lib/string.o lib/bitmap.o lib/xarray.o lib/rbtree.o
	lib/idr.o lib/kobject.o lib/radix-tree.o lib/sort.o lib/cmdline.o
)

[[ $(id -u) -eq 0 ]] || { echo "compile: run as root (chroot and bind mounts)" >&2; exit 1; }
# One 560 MB rootfs tree and the blob in a store.
bench_init compile 1500
bin=$BENCH_WORK/bin
[[ $BENCH_JOBS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_JOBS=$BENCH_JOBS: want a positive integer"
[[ $BENCH_OBJECTS =~ ^[1-9][0-9]*$ ]] && ((BENCH_OBJECTS <= ${#all_objects[@]})) ||
	bench_die "BENCH_OBJECTS=$BENCH_OBJECTS: want 1 to ${#all_objects[@]}"
objects=("${all_objects[@]:0:BENCH_OBJECTS}")
# BENCH_TARGET=vmlinux: every timed run builds the whole tinyconfig
# vmlinux from a `make clean` tree instead: kbuild then walks the whole
# tree (every Makefile, Kconfig and header it stats), the metadata-heavy
# part of a build that a few objects barely touch.
case $BENCH_TARGET in
objects) ;;
vmlinux) ;;
*) bench_die "BENCH_TARGET=$BENCH_TARGET: want objects or vmlinux" ;;
esac
warmup_objects=("${objects[@]:0:4}")
[[ $BENCH_TARGET == vmlinux ]] && objects=(vmlinux)
[[ -f $kernel_tarball ]] || bench_die "$kernel_tarball is missing (apt-get install linux-source-6.12)"
for tool in xz flock chroot mount umount; do
	command -v "$tool" >/dev/null || bench_die "$tool is missing"
done

trap bench_unmount_cleanup EXIT

bench_log "building lkbuild into $bin (as make build does)"
CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs -ldflags '-s -w' -o "$bin/lkbuild" ./cmd/lkbuild

fixture=$(scripts/fixtures/rootfs.sh)
[[ -f $fixture/rootfs.tar.gz ]] || bench_die "no rootfs.tar.gz in $fixture"
bench_log "unpacking $fixture/rootfs.tar.gz (untimed)"
read -r image _ <<<"$("$bin/extract" prepare -store "$BENCH_WORK/store" "$fixture/rootfs.tar.gz")"
rootfs=$BENCH_WORK/rootfs
"$bin/extract" run -store "$BENCH_WORK/store" -image "$image" "$rootfs" >/dev/null
rm -rf "$BENCH_WORK/store"
mkdir -p "$rootfs/src"

sandbox_path=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
in_sandbox() { # in_sandbox SRC CMD...
	local src=$1
	shift
	"$bin/lkbuild" run --rootfs "$rootfs" --bind "$src:/src" --workdir /src -- "$@"
}

# The configured source tree, made once per key under a lock; the lock is
# held for the whole benchmark, since runs build objects in the tree.
cache=${LKBUILD_FIXTURES:-/var/cache/lkbuild-fixtures}
recipe="tinyconfig+prepare v1"
key=$( (stat -c '%s %Y' "$kernel_tarball" && basename "$fixture" && echo "$recipe") | sha256sum | cut -c1-16)
src=$cache/bench-linux-$key
mkdir -p "$cache"
exec 8>"$cache/.bench-linux-$key.lock"
flock -n 8 || bench_die "$src is in use by another run (lock $cache/.bench-linux-$key.lock)"
if [[ ! -f $src/.bench-prepared ]]; then
	rm -rf --one-file-system "$src" "$cache/.bench-linux-$key.tmp"
	tmp=$cache/.bench-linux-$key.tmp
	mkdir -p "$tmp"
	bench_log "unpacking $kernel_tarball into $tmp (once; ~30 s)"
	xz -T2 -dc "$kernel_tarball" | tar -x --strip-components=1 -C "$tmp"
	bench_log "make tinyconfig and prepare in the sandbox (once; 1-3 min)"
	in_sandbox "$tmp" make ARCH=x86 tinyconfig >"$BENCH_WORK/prepare.log" 2>&1 ||
		{ tail -n 30 "$BENCH_WORK/prepare.log" >&2; bench_die "make tinyconfig failed"; }
	in_sandbox "$tmp" make ARCH=x86 -j"$BENCH_JOBS" prepare >>"$BENCH_WORK/prepare.log" 2>&1 ||
		{ tail -n 30 "$BENCH_WORK/prepare.log" >&2; bench_die "make prepare failed"; }
	{
		echo "made-by: bench/compile.sh ($recipe)"
		echo "source: $kernel_tarball $(stat -c '%s bytes, mtime %Y' "$kernel_tarball")"
		echo "rootfs: $fixture"
		echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	} >"$tmp/.bench-prepared"
	mv -T "$tmp" "$src"
fi
bench_log "source $src, ${#objects[@]} objects, make -j$BENCH_JOBS"

# The objects the next run builds: all of them, or a few for the warm-up.
run_objects=()
clean_objects() {
	local o
	if [[ $BENCH_TARGET == vmlinux ]]; then
		in_sandbox "$src" make ARCH=x86 clean >"$BENCH_WORK/clean.log" 2>&1 ||
			{ tail -n 30 "$BENCH_WORK/clean.log" >&2; bench_die "make clean failed"; }
		return
	fi
	for o in "${objects[@]}" "${warmup_objects[@]}"; do
		rm -f "$src/$o" "$src/$(dirname "$o")/.$(basename "$o").cmd"
	done
}
check_objects() {
	local o
	for o in "${run_objects[@]}"; do
		[[ -s $src/$o ]] || bench_die "$1 did not build $o (see $BENCH_WORK/$1.log)"
	done
}

# time_side SIDE LOG CMD... is bench_time with CMD's output (and only that)
# going to LOG. User and system seconds are those of the whole process
# tree: every level waits for its children.
time_side() {
	local side=$1 log=$2
	shift 2
	if ! /usr/bin/time -f '%e %M %U %S' -o "$BENCH_WORK/time.out" -- "$@" >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		bench_die "$side failed"
	fi
	echo "$side $(tail -n 1 "$BENCH_WORK/time.out")" >>"$BENCH_WORK/times"
	bench_log "$side: $(tail -n 1 "$BENCH_WORK/time.out" | awk '{ printf "%s s, CPU %.2f s (user %s, sys %s)", $1, $3 + $4, $3, $4 }')"
}

run_lkbuild() {
	clean_objects
	time_side "$1" "$BENCH_WORK/lkbuild.log" "$bin/lkbuild" run --rootfs "$rootfs" --bind "$src:/src" --workdir /src -- \
		make ARCH=x86 -j"$BENCH_JOBS" "${run_objects[@]}"
	check_objects lkbuild
}
run_chroot() {
	clean_objects
	bench_mount --bind "$src" "$rootfs/src"
	chroot_make "$1"
	check_objects chroot
}
# chroot_make SIDE: the timed make in the chroot, /src already mounted.
chroot_make() {
	bench_mount -t proc proc "$rootfs/proc"
	time_side "$1" "$BENCH_WORK/chroot.log" chroot "$rootfs" /usr/bin/env -i "$sandbox_path" HOME=/root \
		/bin/sh -c 'cd /src && exec make "$@"' sh ARCH=x86 -j"$BENCH_JOBS" "${run_objects[@]}"
	bench_unmount_all
}
# The overlay side's dirs: next to the source, on its filesystem, as a
# build's are in lkbuild's cache; made fresh for every run.
ovl=$cache/.bench-linux-$key.overlay
run_overlay() { overlay_make "$1" "$ovl/patches:$src"; }
run_overlay1() { overlay_make "$1" "$src"; }
overlay_make() { # overlay_make SIDE LOWERDIRS
	local o
	clean_objects
	rm -rf --one-file-system "$ovl"
	mkdir -p "$ovl/patches" "$ovl/upper" "$ovl/work"
	bench_mount -t overlay overlay -o "lowerdir=$2,upperdir=$ovl/upper,workdir=$ovl/work" "$rootfs/src"
	chroot_make "$1"
	for o in "${run_objects[@]}"; do
		[[ -s $ovl/upper/$o ]] || bench_die "$1 did not build $o in the upper dir (see $BENCH_WORK/chroot.log)"
	done
	rm -rf --one-file-system "$ovl"
}

# The warm-up reads the tools and headers into the page cache; a few
# objects do that.
run_objects=("${warmup_objects[@]}")
bench_log "warm-up run of each side with ${#run_objects[@]} objects (not counted)"
run_lkbuild warmup-lkbuild
run_chroot warmup-chroot
run_overlay warmup-overlay
run_overlay1 warmup-overlay1
run_objects=("${objects[@]}")
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	bench_log "round $r of $BENCH_ROUNDS, load $(cut -d' ' -f1-3 /proc/loadavg)"
	# Forward, then backward: over two rounds every side runs before and
	# after every other once.
	if ((r % 2)); then
		sides=(lkbuild chroot overlay overlay1)
	else
		sides=(overlay1 overlay chroot lkbuild)
	fi
	for side in "${sides[@]}"; do
		"run_$side" "$side"
	done
done
bench_log "last runs: $(grep -c '^  CC ' "$BENCH_WORK/lkbuild.log" || true) CC lines in the sandbox, $(grep -c '^  CC ' "$BENCH_WORK/chroot.log" || true) in the last chroot or overlay run"
clean_objects

ours=$(bench_median lkbuild)
base=$(bench_median chroot)
ratio=$(awk -v a="$ours" -v b="$base" 'BEGIN { printf "%.3f\n", a / b }')
bench_result "lkbuild run make, median s (min-max)" "$ours ($(bench_spread lkbuild))" "" ""
bench_result "chroot make, median s (min-max)" "$base ($(bench_spread chroot))" "" ""
bench_result "time ratio lkbuild / chroot" "$ratio" "<= 1.02" "$(bench_check "$ratio" "<=" 1.02)"
bench_result "CPU s median: lkbuild / chroot" "$(bench_cpu lkbuild) / $(bench_cpu chroot)" "" "info"
bench_result "CPU ratio lkbuild / chroot" "$(awk -v a="$(bench_cpu lkbuild)" -v b="$(bench_cpu chroot)" 'BEGIN { printf "%.3f\n", a / b }')" "" "info"
ovl_time=$(bench_median overlay)
ovl_ratio=$(awk -v a="$ovl_time" -v b="$base" 'BEGIN { printf "%.3f\n", a / b }')
bench_result "chroot make on a 3-layer overlay, median s (min-max)" "$ovl_time ($(bench_spread overlay))" "" ""
bench_result "time ratio overlay / chroot (diagnostic)" "$ovl_ratio" "" "info"
bench_result "CPU s median: overlay; ratio overlay / chroot" "$(bench_cpu overlay); $(awk -v a="$(bench_cpu overlay)" -v b="$(bench_cpu chroot)" 'BEGIN { printf "%.3f\n", a / b }')" "" "info"
ovl1_time=$(bench_median overlay1)
bench_result "chroot make on a 2-layer overlay (upper over SRC), median s (min-max)" "$ovl1_time ($(bench_spread overlay1))" "" ""
bench_result "time ratio overlay1 / chroot; CPU s median" "$(awk -v a="$ovl1_time" -v b="$base" 'BEGIN { printf "%.3f\n", a / b }'); $(bench_cpu overlay1)" "" "info"
bench_result "objects per run, make -j" "${#objects[@]}, -j$BENCH_JOBS" "" ""
bench_report
