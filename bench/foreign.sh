#!/usr/bin/env bash
# foreign.sh: what a foreign-arch kernel build costs, and whether the fast
# path gives the fully emulated build's image. One run builds the e2e test
# kernel (testdata/kernel, 6.12.x) with lkbuild in these modes:
#
#   native            x86_64 with config-x86_64 in the bookworm builder: the
#                     baseline (the host's arch, no emulation)
#   ARCH-emulated     aarch64 / riscv64 in the arch's trixie builder, every
#                     program under QEMU user-mode (--no-fast-path)
#   ARCH-fast         the same with --cross-image: gcc, cc1, as, ld and
#                     binutils native, the rest emulated
#   ARCH-cross        --cross in the amd64 cross image (CROSS_COMPILE, no
#                     emulation, host tools native): other bytes, faster
#
# Every build gets a fresh --output and --force on one --cache-dir, so the
# source and the rootfs trees are unpacked once and no mode pays for them
# twice (the first build of each builder pays its unpack). For each mode it
# prints the wall time of the whole build and of its compile phase, the
# objects compiled and objects per minute (from the --json events), the
# load average before and after, and the ratio to native; then, per arch,
# whether the fast-path image digest equals the fully emulated one.
#
# Targets (issue "Foreign arches"): emulated / native <= 6x, fast / native
# <= 1.5x, fast digest == emulated digest, cross / native <= 1.2x. A fully emulated build takes
# 30-60 minutes on 2 cores; BENCH_MODES picks modes (default: all, e.g.
# BENCH_MODES="native aarch64-fast riscv64-fast"). Needs root for the
# fixtures (scripts/fixtures/e2e.sh), jq. Environment: BENCH_TMPDIR
# (/dev/shm), LKBUILD_FIXTURES, BENCH_OUTPUT.
set -euo pipefail
BENCH_ROUNDS=1
# shellcheck source=bench/lib.bash
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

modes=${BENCH_MODES:-native aarch64-emulated aarch64-fast aarch64-cross riscv64-emulated riscv64-fast riscv64-cross}
command -v jq >/dev/null || { echo "foreign: jq is missing" >&2; exit 1; }
bench_init foreign 12000
fixtures=$(bash "$BENCH_ROOT/scripts/fixtures/e2e.sh" --foreign)
while IFS= read -r line; do export "${line?}"; done <<<"$fixtures"

# The kernel directory as a LinuxKit checkout with the mirror's key.
repo=$BENCH_WORK/linuxkit
mkdir -p "$repo"
cp -r "$BENCH_ROOT/testdata/kernel" "$repo/kernel"
cp "$LKBUILD_E2E_KEYS" "$repo/kernel/common/keys.asc"
git -C "$repo" init -q
git -C "$repo" add .
GIT_AUTHOR_DATE=2026-11-23T00:00:00Z GIT_COMMITTER_DATE=2026-11-23T00:00:00Z \
	git -C "$repo" -c user.name=bench -c user.email=bench@lkbuild.invalid commit -qm kernel

(cd "$BENCH_ROOT" && CGO_ENABLED=0 go build -o "$BENCH_WORK/lkbuild" ./cmd/lkbuild)
cache=$BENCH_WORK/cache
# BENCH_OUTPUT keeps the images (oci-MODE layouts) there, e.g. to boot them.
outputs=${BENCH_OUTPUT:-$BENCH_WORK}
mkdir -p "$outputs"
declare -A wall compile objects digest load phases

for mode in $modes; do
	arch=${mode%%-*}
	case $mode in
	native) args=(--arch x86_64 --builder-image "$LKBUILD_E2E_BUILDER" --ucode-repo "$LKBUILD_E2E_UCODE") ;;
	aarch64-emulated) args=(--arch aarch64 --builder-image "$LKBUILD_E2E_BUILDER_ARM64" --no-fast-path) ;;
	aarch64-fast) args=(--arch aarch64 --builder-image "$LKBUILD_E2E_BUILDER_ARM64" --cross-image "$LKBUILD_E2E_CROSS") ;;
	riscv64-emulated) args=(--arch riscv64 --builder-image "$LKBUILD_E2E_BUILDER_RISCV64" --no-fast-path) ;;
	riscv64-fast) args=(--arch riscv64 --builder-image "$LKBUILD_E2E_BUILDER_RISCV64" --cross-image "$LKBUILD_E2E_CROSS") ;;
	aarch64-cross | riscv64-cross) args=(--arch "$arch" --cross --builder-image "$LKBUILD_E2E_CROSS") ;;
	*) bench_die "unknown mode $mode (native, ARCH-emulated, ARCH-fast, ARCH-cross for aarch64 and riscv64)" ;;
	esac
	before=$(cut -d' ' -f1 /proc/loadavg)
	bench_log "$mode: building (load $before)"
	events=$BENCH_WORK/$mode.jsonl
	began=$(date +%s.%N)
	if ! (cd "$repo" && "$BENCH_WORK/lkbuild" --cache-dir "$cache" build --json --force --kernel-dir kernel \
		--series 6.12.x "${args[@]}" --source-mirror "$LKBUILD_E2E_MIRROR" --output "$outputs/oci-$mode" \
		>"$events" 2>"$BENCH_WORK/$mode.err"); then
		tail -n 20 "$BENCH_WORK/$mode.err" >&2
		bench_die "$mode: the build failed"
	fi
	wall[$mode]=$(echo "$(date +%s.%N) - $began" | bc)
	load[$mode]="$before-$(cut -d' ' -f1 /proc/loadavg)"
	compile[$mode]=$(jq -r 'select(.kind == "phase-end" and .phase == "compile") | .elapsed / 1e9' "$events" | tail -n1)
	objects[$mode]=$(jq -r 'select(.kind == "progress" and .unit == "objects") | .done' "$events" | tail -n1)
	digest[$mode]=$(jq -r 'select(.kind == "result") | .digest' "$events" | tail -n1)
	phases[$mode]=$(jq -r 'select(.kind == "phase-end") | "\(.phase) \(.elapsed / 1e9 * 10 | round / 10)"' "$events" | paste -sd' ')
	bench_log "$mode: ${wall[$mode]} s, compile ${compile[$mode]} s, ${objects[$mode]:-0} objects, ${digest[$mode]}"
	bench_log "$mode: phases (s): ${phases[$mode]}"
	# The events stay with the images when BENCH_OUTPUT keeps them.
	[[ -z ${BENCH_OUTPUT:-} ]] || cp "$events" "$outputs/$mode.jsonl"
done

printf '\n%-18s %9s %11s %8s %12s %10s %12s\n' mode "wall s" "compile s" objects "objects/min" "/ native" "load"
for mode in $modes; do
	rate=$(echo "scale=1; ${objects[$mode]:-0} * 60 / ${compile[$mode]}" | bc)
	ratio=-
	if [[ -n ${wall[native]:-} ]]; then
		ratio=$(echo "scale=2; ${wall[$mode]} / ${wall[native]}" | bc)x
	fi
	printf '%-18s %9.1f %11.1f %8s %12s %10s %12s\n' "$mode" "${wall[$mode]}" "${compile[$mode]}" "${objects[$mode]:-0}" "$rate" "$ratio" "${load[$mode]}"
done
echo
for mode in $modes; do
	printf '%-18s phases (s): %s\n' "$mode" "${phases[$mode]}"
done
for arch in aarch64 riscv64; do
	e=${digest[$arch-emulated]:-} f=${digest[$arch-fast]:-}
	[[ -n $e && -n $f ]] || continue
	if [[ $e == "$f" ]]; then
		echo "$arch: fast path digest == fully emulated digest ($f)"
	else
		echo "$arch: fast path digest $f != fully emulated $e"
	fi
done
