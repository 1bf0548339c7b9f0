#!/usr/bin/env bash
# emulation.sh: what makes a build under QEMU user-mode faster without
# changing its output (issue "Foreign arches", point 4). It runs one slice of
# a kernel build, fully emulated in the foreign trixie builders (`lkbuild
# run --arch`), once per variant:
#
#   ARCH-default      what lkbuild does: the host's QEMU (bookworm: 7.2), the
#                     QEMU_CPU lkbuild sets (aarch64: max,pauth-impdef=on),
#                     make -j$(nproc), the build tree on tmpfs
#   aarch64-qarma     QEMU_CPU=max: pointer authentication with QARMA, QEMU's
#                     default (Debian's arm64 binaries use PAC instructions)
#   aarch64-a72       QEMU_CPU=cortex-a72: no pointer authentication at all
#   riscv64-rv64      QEMU_CPU=rv64 (the generic model, QEMU's default)
#   ARCH-qemu10       trixie's QEMU 10.0 through --qemu-image
#   ARCH-jN           make -jN for N = 2 x nproc (more jobs than cores)
#   ARCH-disk         the build tree on disk (/var/tmp) instead of tmpfs
#
# The slice is the one TestFastPathIdentity compiles: defconfig (Kconfig's
# host programs built and run), prepare (generated headers, the vdso) and a
# few dozen objects. Each variant gets a fresh build tree; its wall time
# and its phases are printed with the ratio to ARCH-default, and a digest
# of every file the build wrote: a variant that changes the output says so
# (it is then no candidate, whatever its speed).
#
# BENCH_VARIANTS picks variants (default: all of both arches); BENCH_ROUNDS
# (default 1) repeats each, interleaved. Needs root for the fixtures
# (scripts/fixtures/e2e.sh --foreign, builder-trixie.sh qemu), about 4
# minutes per variant on 2 cores. Environment: BENCH_TMPDIR (/dev/shm),
# LKBUILD_FIXTURES.
set -euo pipefail
BENCH_ROUNDS=${BENCH_ROUNDS:-1}
# shellcheck source=bench/lib.bash
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

variants=${BENCH_VARIANTS:-aarch64-default aarch64-qarma aarch64-a72 aarch64-qemu10 aarch64-jN aarch64-disk riscv64-default riscv64-rv64 riscv64-qemu10 riscv64-jN}
bench_init emulation 6000
fixtures=$(bash "$BENCH_ROOT/scripts/fixtures/e2e.sh" --foreign)
while IFS= read -r line; do export "${line?}"; done <<<"$fixtures"
qemu10=""
if [[ $variants == *qemu10* ]]; then
	qemu10="oci:$(bash "$BENCH_ROOT/scripts/fixtures/builder-trixie.sh" qemu)/layout:builder"
fi

src=$BENCH_WORK/src
mkdir -p "$src"
bench_log "unpacking the kernel source"
tar -C "$src" --strip-components=1 -xJf "${LKBUILD_KERNEL_SOURCE:-/usr/src/linux-source-6.12.tar.xz}"
(cd "$BENCH_ROOT" && CGO_ENABLED=0 go build -o "$BENCH_WORK/lkbuild" ./cmd/lkbuild)
cache=$BENCH_WORK/cache
disk=$(mktemp -d /var/tmp/lkbuild-bench-emulation.XXXXXX)
trap 'rm -rf --one-file-system "$disk"; bench_cleanup' EXIT

# The slice; $JOBS is the variant's -j. Each phase prints its seconds.
script='set -e
t() { s=$(date +%s.%N); "$@"; awk -v p="$PHASE" -v s="$s" -v e="$(date +%s.%N)" '"'"'BEGIN { print "phase", p, e - s }'"'"' >>/out/phases; }
PHASE=defconfig t make -s -C /src O=/build defconfig
PHASE=prepare t make -s -C /src O=/build -j$JOBS prepare
PHASE=objects t make -s -C /src O=/build -j$JOBS init/ lib/sort.o lib/string.o lib/bsearch.o lib/kasprintf.o lib/cmdline.o kernel/panic.o kernel/exit.o
'

declare -A wall digest phases
for ((round = 1; round <= BENCH_ROUNDS; round++)); do
	for v in $variants; do
		arch=${v%%-*}
		case $arch in
		aarch64) builder=$LKBUILD_E2E_BUILDER_ARM64 karch=arm64 ;;
		riscv64) builder=$LKBUILD_E2E_BUILDER_RISCV64 karch=riscv ;;
		*) bench_die "unknown variant $v" ;;
		esac
		jobs=$(nproc) base=$BENCH_WORK extra=()
		case ${v#*-} in
		default) ;;
		qarma) extra=(--env QEMU_CPU=max) ;;
		a72) extra=(--env QEMU_CPU=cortex-a72) ;;
		rv64) extra=(--env QEMU_CPU=rv64) ;;
		qemu10) extra=(--qemu-image "$qemu10") ;;
		jN) jobs=$((2 * $(nproc))) ;;
		disk) base=$disk ;;
		*) bench_die "unknown variant $v" ;;
		esac
		build=$base/build-$v out=$BENCH_WORK/out-$v
		rm -rf --one-file-system "$build" "$out"
		mkdir -p "$build" "$out"
		before=$(cut -d' ' -f1 /proc/loadavg)
		bench_log "$v (round $round): building (load $before)"
		began=$(date +%s.%N)
		if ! "$BENCH_WORK/lkbuild" --cache-dir "$cache" run --arch "$arch" --builder-image "$builder" "${extra[@]}" \
			--bind "$src:/src:ro" --bind "$build:/build" --bind "$out:/out" \
			--env ARCH=$karch --env LC_ALL=C --env JOBS=$jobs --env SOURCE_DATE_EPOCH=0 \
			--env "KBUILD_BUILD_TIMESTAMP=Thu Jan  1 00:00:00 UTC 1970" --env KBUILD_BUILD_USER=lkbuild --env KBUILD_BUILD_HOST=lkbuild \
			-- /bin/sh -c "$script" >"$BENCH_WORK/$v.log" 2>&1; then
			tail -n 20 "$BENCH_WORK/$v.log" >&2
			bench_die "$v: the build failed"
		fi
		took=$(echo "$(date +%s.%N) - $began" | bc)
		echo "$v $took" >>"$BENCH_WORK/times"
		d=$(cd "$build" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
		if [[ -n ${digest[$v]:-} && ${digest[$v]} != "$d" ]]; then
			d="$d(varies)"
		fi
		digest[$v]=$d
		phases[$v]=$(awk '{ printf "%s %.0f  ", $2, $3 }' "$out/phases")
		bench_log "$v: $took s (${phases[$v]}), load $before-$(cut -d' ' -f1 /proc/loadavg), output $d"
	done
done

printf '\n%-16s %9s %9s  %-36s %s\n' variant "median s" "/ default" phases "output digest"
for v in $variants; do
	arch=${v%%-*}
	median=$(bench_median "$v")
	ratio=-
	if awk -v s="$arch-default" '$1 == s { f = 1 } END { exit !f }' "$BENCH_WORK/times"; then
		ratio=$(bench_ratio "$median" "$(bench_median "$arch-default")")x
	fi
	same=""
	[[ -n ${digest[$arch-default]:-} && ${digest[$v]} != "${digest[$arch-default]}" ]] && same=" DIFFERS from $arch-default"
	printf '%-16s %9.1f %9s  %-36s %s%s\n' "$v" "$median" "$ratio" "${phases[$v]}" "${digest[$v]}" "$same"
done
echo "load average (1/5/15 min) before: $BENCH_LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs; rounds: $BENCH_ROUNDS"
