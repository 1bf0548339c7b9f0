#!/usr/bin/env bash
# extract.sh: how fast lkbuild's extractor applies the builder rootfs layer
# (scripts/fixtures/rootfs.sh: a debootstrap'd Debian bookworm, ~180 MiB of
# gzip), against GNU `tar -xzf` of the same blob.
#
# lkbuild's side is bench/cmd/extract: the blob is put into an OCI store as a
# one-layer image (untimed), then a separate process opens the store, loads
# the image and runs oci.Extract, as a build does. Both sides are whole
# processes timed by GNU time, write into a fresh directory on tmpfs (ext4
# timings swing after rm -rf with discard), alternate (the side that goes
# first changes every round) and run as the same user: as root both keep
# owners, modes and device nodes.
#
# Targets: median time of ours / median time of tar <= 1.00; peak RSS of our
# process < 200 MB. A miss is reported, not an error; the script fails only
# when something does not run. Environment: BENCH_ROUNDS (5), BENCH_TMPDIR
# (/dev/shm), BENCH_PROFILE=1 (add a profiled run and print its top),
# LKBUILD_FIXTURES (see the fixture script).
set -euo pipefail
# shellcheck source=bench/lib.bash
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

# A 560 MB tree, two of them during the check, plus the blob in the store.
bench_init extract 2500
bin=$BENCH_WORK/bin
out=$BENCH_WORK/out

fixture=$(scripts/fixtures/rootfs.sh)
[[ -f $fixture/rootfs.tar.gz ]] || bench_die "no rootfs.tar.gz in $fixture"
bench_log "fixture $fixture/rootfs.tar.gz ($(stat -c %s "$fixture/rootfs.tar.gz") bytes)"

bench_log "putting the blob into a store as a one-layer image (untimed)"
prepared=$("$bin/extract" prepare -store "$BENCH_WORK/store" "$fixture/rootfs.tar.gz")
read -r image blob <<<"$prepared"
[[ -f $blob ]] || bench_die "prepare printed no blob path"
bench_log "image $image"

# Both sides read the very same file: the blob in the store, on tmpfs.
run_ours() {
	bench_time "$1" "$bin/extract" run -store "$BENCH_WORK/store" -image "$image" "$out" >"$BENCH_WORK/stats"
	rm -rf "$out"
}
run_tar() {
	mkdir "$out"
	bench_time "$1" tar -xzf "$blob" -C "$out"
	rm -rf "$out"
}

bench_log "warm-up run of each side (not counted)"
run_ours warmup-ours
run_tar warmup-tar
bench_log "lkbuild extracted: $(cat "$BENCH_WORK/stats")"

for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	bench_log "round $r of $BENCH_ROUNDS, load $(cut -d' ' -f1-3 /proc/loadavg)"
	if ((r % 2)); then
		run_ours ours
		run_tar tar
	else
		run_tar tar
		run_ours ours
	fi
done

# Untimed check that both sides made the same tree: type, mode, owner, size,
# link count, mtime, name and symlink target of every entry.
bench_log "comparing the trees of one more run of each side (untimed)"
listing() {
	(cd "$1" && find . -printf '%y %#m %U:%G %s %n %T@ %p -> %l\n' | LC_ALL=C sort)
}
"$bin/extract" run -store "$BENCH_WORK/store" -image "$image" "$out.ours" >/dev/null
mkdir "$out.tar"
tar -xzf "$blob" -C "$out.tar"
listing "$out.ours" >"$BENCH_WORK/ours.list"
listing "$out.tar" >"$BENCH_WORK/tar.list"
entries=$(wc -l <"$BENCH_WORK/tar.list")
differing=$( (diff "$BENCH_WORK/tar.list" "$BENCH_WORK/ours.list" || true) | grep -c '^>' || true)
if ((differing > 0)); then
	bench_log "$differing of $entries entries differ (< tar, > ours); the first ones:"
	diff "$BENCH_WORK/tar.list" "$BENCH_WORK/ours.list" | head -n 20 >&2 || true
fi
rm -rf "$out.ours" "$out.tar"

if [[ $BENCH_PROFILE == 1 ]]; then
	bench_log "profiled run of lkbuild's side"
	"$bin/extract" run -store "$BENCH_WORK/store" -image "$image" -cpuprofile "$BENCH_WORK/cpu.prof" "$out" >/dev/null
	rm -rf "$out"
	echo "== CPU profile of oci.Extract (go tool pprof -top)"
	go tool pprof -top -nodecount=30 "$bin/extract" "$BENCH_WORK/cpu.prof" 2>/dev/null
fi

ours=$(bench_median ours)
tar=$(bench_median tar)
ratio=$(bench_ratio "$ours" "$tar")
rss=$(bench_maxrss ours)
bench_result "lkbuild extract, median s (min-max)" "$ours ($(bench_spread ours))" "" ""
bench_result "tar -xzf, median s (min-max)" "$tar ($(bench_spread tar))" "" ""
bench_result "CPU s, median: lkbuild / tar (+gzip -d)" "$(bench_cpu ours) / $(bench_cpu tar)" "" "info"
bench_result "time ratio lkbuild / tar" "$ratio" "<= 1.00" "$(bench_check "$ratio" "<=" 1.00)"
bench_result "lkbuild peak RSS, MB (max of runs)" "$rss" "< 200" "$(bench_check "$rss" "<" 200)"
bench_result "tar peak RSS, MB (max of runs)" "$(bench_maxrss tar)" "" ""
bench_result "trees equal (entries differing)" "$differing of $entries" "0" "$(bench_check "$differing" "<=" 0)"
bench_report
