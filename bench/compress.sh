#!/usr/bin/env bash
# compress.sh: how fast lkbuild turns a tar into a gzip layer, against
# `gzip -6` and `pigz -6` (all cores) of the same ~500 MB of kernel source
# (scripts/fixtures/kernel-tar.sh).
#
# lkbuild's side is bench/cmd/compress: it streams the file through
# (*oci.Store).WriteLayer into a fresh store, which gzips (klauspost level 6,
# 1 MiB chunks on all cores) and hashes the stream (diff ID and blob digest)
# as every built layer is.
# gzip and pigz write to a file. All three are whole processes timed by GNU
# time, write to tmpfs, read the same input (in the page cache after a
# warm-up read) and take turns (the order rotates every round).
#
# Targets: median time of gzip -6 / median time of ours >= 1.8 (on 2 cores);
# our blob no more than 5 % larger than gzip -6's output; peak RSS of our
# process < 200 MB. Our output is checked once with gzip -t and by
# decompressing and comparing it with the input. A miss is reported, not an
# error; the script fails only when something does not run. Environment:
# BENCH_ROUNDS (5), BENCH_TMPDIR (/dev/shm), BENCH_PROFILE=1 (add a profiled
# run and print its top), LKBUILD_FIXTURES (see the fixture script).
set -euo pipefail
# shellcheck source=bench/lib.bash
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

bench_init compress 1000
bin=$BENCH_WORK/bin
command -v pigz >/dev/null || bench_die "pigz is missing (Debian package pigz)"

fixture=$(scripts/fixtures/kernel-tar.sh)
input=$fixture/kernel-500M.tar
[[ -f $input ]] || bench_die "no kernel-500M.tar in $fixture"
bench_log "input $input ($(stat -c %s "$input") bytes); reading it once into the page cache"
cat "$input" >/dev/null

# Each side replaces the output of its previous run; the last round's
# outputs are kept for the size comparison and the check.
store=$BENCH_WORK/store
run_ours() {
	rm -rf "$store"
	bench_time ours "$bin/compress" -store "$store" "$input" >"$BENCH_WORK/ours.out"
}
run_gzip() {
	bench_time gzip gzip -6 -n -c "$input" >"$BENCH_WORK/gzip.gz"
}
run_pigz() {
	bench_time pigz pigz -6 -n -c "$input" >"$BENCH_WORK/pigz.gz"
}

sides=(ours gzip pigz)
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	bench_log "round $r of $BENCH_ROUNDS, load $(cut -d' ' -f1-3 /proc/loadavg)"
	for ((i = 0; i < ${#sides[@]}; i++)); do
		"run_${sides[(r - 1 + i) % ${#sides[@]}]}"
	done
done

read -r blob size digest diffid <"$BENCH_WORK/ours.out"
[[ -f $blob ]] || bench_die "bench/cmd/compress printed no blob path"
bench_log "layer $digest, diff ID $diffid"
gzip_size=$(stat -c %s "$BENCH_WORK/gzip.gz")
pigz_size=$(stat -c %s "$BENCH_WORK/pigz.gz")
input_size=$(stat -c %s "$input")

bench_log "checking our blob: gzip -t, then decompress and compare with the input (untimed)"
verified=yes
gzip -t "$blob" || verified=no
if [[ $verified == yes ]] && ! gzip -dc "$blob" | cmp -s - "$input"; then
	bench_log "our blob does not decompress to the input"
	verified=no
fi
[[ $verified == yes ]] || bench_die "our layer blob $blob is not a valid gzip of the input"

if [[ $BENCH_PROFILE == 1 ]]; then
	bench_log "profiled run of lkbuild's side"
	rm -rf "$store"
	"$bin/compress" -store "$store" -cpuprofile "$BENCH_WORK/cpu.prof" "$input" >/dev/null
	echo "== CPU profile of Store.WriteLayer (go tool pprof -top)"
	go tool pprof -top -nodecount=30 "$bin/compress" "$BENCH_WORK/cpu.prof" 2>/dev/null
fi

ours=$(bench_median ours)
gz=$(bench_median gzip)
pz=$(bench_median pigz)
speedup=$(bench_ratio "$gz" "$ours")
size_ratio=$(awk -v a="$size" -v b="$gzip_size" 'BEGIN { printf "%.3f\n", a / b }')
rss=$(bench_maxrss ours)
pct() { awk -v a="$1" -v b="$input_size" 'BEGIN { printf "%.2f %%", 100 * a / b }'; }
bench_result "lkbuild WriteLayer, median s (min-max)" "$ours ($(bench_spread ours))" "" ""
bench_result "gzip -6, median s (min-max)" "$gz ($(bench_spread gzip))" "" ""
bench_result "pigz -6 ($(nproc) threads), median s (min-max)" "$pz ($(bench_spread pigz))" "" ""
bench_result "CPU s, median: lkbuild / gzip / pigz" "$(bench_cpu ours) / $(bench_cpu gzip) / $(bench_cpu pigz)" "" "info"
bench_result "speed-up vs gzip -6 (gzip / lkbuild)" "$speedup" ">= 1.8" "$(bench_check "$speedup" ">=" 1.8)"
bench_result "speed-up vs pigz -6 (pigz / lkbuild)" "$(bench_ratio "$pz" "$ours")" "" "info"
bench_result "lkbuild blob, bytes (of input)" "$size ($(pct "$size"))" "" ""
bench_result "gzip -6 output, bytes (of input)" "$gzip_size ($(pct "$gzip_size"))" "" ""
bench_result "pigz -6 output, bytes (of input)" "$pigz_size ($(pct "$pigz_size"))" "" ""
bench_result "size ratio lkbuild / gzip -6" "$size_ratio" "<= 1.05" "$(bench_check "$size_ratio" "<=" 1.05)"
bench_result "lkbuild peak RSS, MB (max of runs)" "$rss" "< 200" "$(bench_check "$rss" "<" 200)"
bench_result "gzip / pigz peak RSS, MB (max of runs)" "$(bench_maxrss gzip) / $(bench_maxrss pigz)" "" ""
bench_result "blob passes gzip -t, decompresses to input" "$verified" "yes" "PASS"
bench_report
