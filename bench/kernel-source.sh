#!/usr/bin/env bash
# kernel-source.sh: how fast lkbuild gets, verifies and extracts a kernel
# source tarball (internal/kernelsrc.Fetch), against GNU `tar -xJf` of the
# same file, and how much the parallel xz decoder gains.
#
# Input: Debian's linux-source-6.12 tarball (/usr/src/linux-source-6.12.tar.xz:
# 145 MiB of xz in 62 independent 24 MiB blocks, 1.5 GB of tar, 86,000
# files), served from a kernel.org-style mirror in a local directory as
# linux-6.12.117.tar.xz with sha256sums.asc and .tar.sign signed by a key made
# for the fixture (bench/cmd/kernelsrc mirror; cached under LKBUILD_FIXTURES,
# keyed by the tarball's content). Its top directory stays linux-source-6.12/.
#
# Sides, each a whole process timed by GNU time, alternating every round:
#   cold: `kernelsrc fetch` into a new, empty cache: verify sha256sums.asc,
#         copy the tarball into the cache while hashing it, decode it (xz
#         blocks in parallel) into the .tar.sign check and the extractor;
#   warm: the same again on that cache, which must be a cache hit;
#   tar:  `tar -xJf` of the mirror's tarball into a new directory;
#   and, for the decoder alone, `kernelsrc decode` with all CPUs and with
#   one (the sequential decoder of github.com/ulikunitz/xz) to /dev/null.
# Caches and trees are on tmpfs and removed between runs, outside the timing.
#
# Targets: median cold / median tar <= 1.30; median warm < 5 % of median
# cold. The parallel decoder's gain (sequential / parallel) is reported.
# A miss is reported, not an error. Environment: BENCH_ROUNDS (3 here),
# BENCH_TMPDIR (/dev/shm), BENCH_PROFILE=1, LKBUILD_FIXTURES.
set -euo pipefail
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
# shellcheck source=bench/lib.bash
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

src=/usr/src/linux-source-6.12.tar.xz
version=6.12.117
if [[ ! -r $src ]]; then
	if [[ $(id -u) -eq 0 ]]; then
		echo "kernel-source.sh: installing linux-source-6.12 for $src" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-source-6.12 </dev/null >/dev/null
	fi
	[[ -r $src ]] || { echo "kernel-source.sh: $src is missing; apt-get install linux-source-6.12" >&2; exit 1; }
fi
command -v xz >/dev/null || { echo "kernel-source.sh: xz is missing (xz-utils)" >&2; exit 1; }

# Two 1.5 GB trees (the check) and a cache (tarball + tree).
bench_init kernel-source 5500
bin=$BENCH_WORK/bin
out=$BENCH_WORK/out

read -r mirror keys tarball <<<"$("$bin/kernelsrc" mirror -src "$src" -version "$version" -fixtures "${LKBUILD_FIXTURES:-/var/cache/lkbuild-fixtures}")"
[[ -f $tarball && -f $keys ]] || bench_die "the mirror fixture is incomplete: $mirror"
bench_log "mirror $mirror, tarball $(stat -c %s "$tarball") bytes"

fetch=("$bin/kernelsrc" fetch -mirror "$mirror" -keys "$keys" -version "$version")

# run_cold SIDE: a fetch into a new cache, then (timed separately) the warm
# fetch, which must find the tree.
run_cold() {
	bench_time "$1" "${fetch[@]}" -cache "$out.cache" >"$BENCH_WORK/fetch.out"
	grep -q '^cached=false ' "$BENCH_WORK/fetch.out" || bench_die "the cold fetch found a cached tree: $(cat "$BENCH_WORK/fetch.out")"
	bench_time "${1/cold/warm}" "${fetch[@]}" -cache "$out.cache" >"$BENCH_WORK/fetch.out"
	grep -q '^cached=true ' "$BENCH_WORK/fetch.out" || bench_die "the warm fetch missed the cache: $(cat "$BENCH_WORK/fetch.out")"
	rm -rf "$out.cache"
}
run_tar() {
	mkdir "$out.tar"
	bench_time "$1" tar -xJf "$tarball" -C "$out.tar"
	rm -rf "$out.tar"
}
run_decode() {
	bench_time "$1" "$bin/kernelsrc" decode -workers "$2" "$tarball" >/dev/null
}

bench_log "warm-up run of each side (not counted), then a check that both made the same tree"
"${fetch[@]}" -cache "$out.cache" >"$BENCH_WORK/fetch.out"
ours_tree=$(sed -n 's/^cached=false dir=//p' "$BENCH_WORK/fetch.out")
[[ -d $ours_tree ]] || bench_die "fetch printed no tree: $(cat "$BENCH_WORK/fetch.out")"
mkdir "$out.tar"
tar -xJf "$tarball" -C "$out.tar"
# Directory mtimes are left out: GNU tar sets a directory's time as soon as
# a member outside it comes (Debian's tar lists arm/altera/, arm/altera.yaml,
# then arm/altera/*), so the files extracted later leave it at the time of
# extraction; lkbuild sets every directory's time from its header at the end.
listing() {
	(cd "$1" && find . \( -type d -printf '%y %#m %p\n' \) -o -printf '%y %#m %s %T@ %p -> %l\n' | LC_ALL=C sort)
}
listing "$ours_tree" >"$BENCH_WORK/ours.list"
listing "$out.tar/$(basename "$ours_tree")" >"$BENCH_WORK/tar.list"
entries=$(wc -l <"$BENCH_WORK/tar.list")
differing=$( (diff "$BENCH_WORK/tar.list" "$BENCH_WORK/ours.list" || true) | grep -c '^>' || true)
if ((differing > 0)); then
	bench_log "$differing of $entries entries differ (< tar, > ours); the first ones:"
	diff "$BENCH_WORK/tar.list" "$BENCH_WORK/ours.list" | head -n 20 >&2 || true
fi
content=$( (cd "$out.tar" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 cat | sha256sum | cut -c1-16) )
ours_content=$( (cd "$(dirname "$ours_tree")" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 cat | sha256sum | cut -c1-16) )
rm -rf "$out.cache" "$out.tar"

for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	bench_log "round $r of $BENCH_ROUNDS, load $(cut -d' ' -f1-3 /proc/loadavg)"
	if ((r % 2)); then
		run_cold cold
		run_tar tar
		run_decode parallel 0
		run_decode sequential 1
	else
		run_tar tar
		run_cold cold
		run_decode sequential 1
		run_decode parallel 0
	fi
done

if [[ $BENCH_PROFILE == 1 ]]; then
	bench_log "profiled cold fetch"
	"${fetch[@]}" -cache "$out.cache" -cpuprofile "$BENCH_WORK/cpu.prof" >/dev/null
	rm -rf "$out.cache"
	echo "== CPU profile of a cold kernelsrc.Fetch (go tool pprof -top)"
	go tool pprof -top -nodecount=30 "$bin/kernelsrc" "$BENCH_WORK/cpu.prof" 2>/dev/null
fi

cold=$(bench_median cold)
warm=$(bench_median warm)
tar=$(bench_median tar)
par=$(bench_median parallel)
seq=$(bench_median sequential)
ratio=$(bench_ratio "$cold" "$tar")
warm_pct=$(awk -v w="$warm" -v c="$cold" 'BEGIN { printf "%.1f\n", 100 * w / c }')
bench_result "cold get+verify+extract, median s (min-max)" "$cold ($(bench_spread cold))" "" ""
bench_result "tar -xJf, median s (min-max)" "$tar ($(bench_spread tar))" "" ""
bench_result "CPU s, median: cold / tar (+xz -d)" "$(bench_cpu cold) / $(bench_cpu tar)" "" "info"
bench_result "time ratio cold / tar -xJf" "$ratio" "<= 1.30" "$(bench_check "$ratio" "<=" 1.30)"
bench_result "warm (cache hit), median s" "$warm ($(bench_spread warm))" "" ""
bench_result "warm as % of cold" "$warm_pct" "< 5" "$(bench_check "$warm_pct" "<" 5)"
bench_result "xz decode parallel / sequential, median s" "$par / $seq" "" ""
bench_result "CPU s, median: parallel / sequential" "$(bench_cpu parallel) / $(bench_cpu sequential)" "" "info"
bench_result "parallel xz gain (sequential / parallel)" "$(bench_ratio "$seq" "$par")x" "" "info"
bench_result "cold peak RSS, MB (max of runs)" "$(bench_maxrss cold)" "" "info"
bench_result "trees equal (entries differing)" "$differing of $entries" "0" "$(bench_check "$differing" "<=" 0)"
bench_result "file contents equal (sha256 of all)" "$ours_content vs $content" "equal" "$([[ $ours_content == "$content" ]] && echo PASS || echo MISS)"
bench_report
