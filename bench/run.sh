#!/usr/bin/env bash
# run.sh runs every benchmark (bench/extract.sh, bench/compress.sh,
# bench/kernel-source.sh,
# bench/sandbox.sh, bench/rootfs.sh, bench/compile.sh, bench/build.sh), each
# with its own table, then prints all results in one table. A target missed
# is a MISS in the table, not a failure; the exit status is non-zero only if
# a benchmark could not run. `make bench` runs this. The environment
# variables of the benchmarks (BENCH_ROUNDS, BENCH_TMPDIR, BENCH_PROFILE)
# pass through.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

BENCH_SUMMARY=$(mktemp)
export BENCH_SUMMARY
trap 'rm -f "$BENCH_SUMMARY"' EXIT

failed=()
for b in extract compress kernel-source sandbox rootfs compile build; do
	echo "==== bench/$b.sh"
	bash "./$b.sh" || failed+=("$b")
done

echo
echo "==== summary ($(nproc) CPUs, uid $(id -u), $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
awk -F'\t' 'BEGIN { printf "%-9s %-44s %-22s %-10s %s\n", "bench", "metric", "value", "target", "verdict" }
	{ printf "%-9s %-44s %-22s %-10s %s\n", $1, $2, $3, $4, $5 }' "$BENCH_SUMMARY"
misses=$(awk -F'\t' '$5 == "MISS"' "$BENCH_SUMMARY" | wc -l)
echo "targets missed: $misses"
if ((${#failed[@]})); then
	echo "benchmarks that failed to run: ${failed[*]}" >&2
	exit 1
fi
