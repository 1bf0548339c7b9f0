# lib.bash: helpers shared by bench/extract.sh and bench/compress.sh. Sourced,
# not run (hence not *.sh). Expects `set -euo pipefail` in the caller.

# The repository root; the scripts run from there.
BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# How many timed rounds each side gets.
BENCH_ROUNDS=${BENCH_ROUNDS:-5}
# BENCH_PROFILE=1 adds one profiled run of lkbuild's side and prints the top
# of its CPU profile.
BENCH_PROFILE=${BENCH_PROFILE:-0}

bench_die() {
	echo "$BENCH_NAME: $*" >&2
	exit 1
}

bench_log() {
	echo "[$BENCH_NAME $(date +%H:%M:%S)] $*" >&2
}

# bench_init NAME NEED_MB checks the tools, makes the work directory
# $BENCH_WORK on a tmpfs with NEED_MB free, builds the Go programs into
# $BENCH_WORK/bin and arranges for everything to be removed on exit.
bench_init() {
	BENCH_NAME=$1
	local need_mb=$2
	[[ $BENCH_ROUNDS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_ROUNDS=$BENCH_ROUNDS: want a positive integer"
	[[ -x /usr/bin/time ]] || bench_die "/usr/bin/time (GNU time, Debian package time) is missing"
	/usr/bin/time -f %M true 2>/dev/null || bench_die "/usr/bin/time is not GNU time"
	command -v go >/dev/null || bench_die "go is missing"
	cd "$BENCH_ROOT"

	BENCH_MOUNT=
	local base=${BENCH_TMPDIR:-/dev/shm}
	if [[ $(stat -f -c %T "$base" 2>/dev/null) != tmpfs ]] || (($(df -Pm "$base" | awk 'NR == 2 { print $4 }') < need_mb)); then
		[[ $(id -u) -eq 0 ]] || bench_die "$base is not a tmpfs with $need_mb MB free; set BENCH_TMPDIR to one"
		BENCH_MOUNT=$(mktemp -d /tmp/lkbuild-bench-mnt.XXXXXX)
		mount -t tmpfs -o "size=${need_mb}m,mode=0755" lkbuild-bench "$BENCH_MOUNT"
		base=$BENCH_MOUNT
	fi
	BENCH_WORK=$(mktemp -d "$base/lkbuild-bench-$BENCH_NAME.XXXXXX")
	trap bench_cleanup EXIT

	bench_log "building bench/cmd/* into $BENCH_WORK/bin"
	CGO_ENABLED=0 go build -trimpath -o "$BENCH_WORK/bin/" ./bench/cmd/...
	BENCH_LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
}

bench_cleanup() {
	[[ -n ${BENCH_WORK:-} ]] && rm -rf --one-file-system "$BENCH_WORK"
	if [[ -n ${BENCH_MOUNT:-} ]]; then
		umount "$BENCH_MOUNT" && rmdir "$BENCH_MOUNT"
	fi
}

# bench_mount MOUNT-ARGS... TARGET mounts and remembers TARGET (the last
# argument); bench_unmount_all unmounts what bench_mount mounted, last first.
# Scripts that mount under their work dir trap bench_unmount_cleanup on EXIT,
# which unmounts before bench_cleanup removes the work dir.
bench_mounted=()
bench_mount() {
	mount "$@" && bench_mounted+=("${!#}")
}
bench_unmount_all() {
	local i
	for ((i = ${#bench_mounted[@]} - 1; i >= 0; i--)); do
		umount "${bench_mounted[i]}" || umount -l "${bench_mounted[i]}" || true
	done
	bench_mounted=()
}
bench_unmount_cleanup() {
	bench_unmount_all
	bench_cleanup
}

# bench_time SIDE CMD... runs CMD under GNU time and appends
# "SIDE WALL_S MAXRSS_KIB USER_S SYS_S" to $BENCH_WORK/times. The figures
# include the children CMD waited for (tar's gzip). CMD's stdout goes to the
# caller's stdout; a failing CMD fails the script.
bench_time() {
	local side=$1
	shift
	/usr/bin/time -f '%e %M %U %S' -o "$BENCH_WORK/time.out" -- "$@"
	echo "$side $(tail -n 1 "$BENCH_WORK/time.out")" >>"$BENCH_WORK/times"
	bench_log "$side: $(tail -n 1 "$BENCH_WORK/time.out" |
		awk '{ printf "%s s (CPU %.2f s), peak RSS %.1f MB", $1, $3 + $4, $2 * 1024 / 1e6 }')"
}

# bench_median SIDE prints the median wall seconds of SIDE's timed runs.
bench_median() {
	awk -v s="$1" '$1 == s { print $2 }' "$BENCH_WORK/times" | bench_median_of
}

# bench_cpu SIDE prints the median CPU seconds (user + system) of SIDE's
# timed runs. Unlike wall time it hardly depends on other load, so it tells a
# slow run on a busy machine from a slow program.
bench_cpu() {
	awk -v s="$1" '$1 == s { printf "%.2f\n", $4 + $5 }' "$BENCH_WORK/times" | bench_median_of
}

bench_median_of() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_spread SIDE prints "min-max" seconds of SIDE's timed runs.
bench_spread() {
	awk -v s="$1" '$1 == s { print $2 }' "$BENCH_WORK/times" | sort -g | sed -n '1p;$p' | paste -sd- -
}

# bench_maxrss SIDE prints the largest peak RSS of SIDE's runs, in MB (1e6).
bench_maxrss() {
	awk -v s="$1" '$1 == s && $3 > m { m = $3 } END { printf "%.1f\n", m * 1024 / 1e6 }' "$BENCH_WORK/times"
}

# bench_check VALUE OP LIMIT prints PASS or MISS (OP is <, <=, > or >=).
bench_check() {
	awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
		ok = (op == "<" && v < l) || (op == "<=" && v <= l) || (op == ">" && v > l) || (op == ">=" && v >= l)
		print ok ? "PASS" : "MISS"
	}'
}

# bench_ratio A B prints A/B with two decimals.
bench_ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'
}

# bench_result METRIC VALUE TARGET VERDICT adds a row to the summary, and to
# $BENCH_SUMMARY (for bench/run.sh) when that is set.
bench_result() {
	printf '%s\t%s\t%s\t%s\t%s\n' "$BENCH_NAME" "$1" "$2" "$3" "$4" >>"$BENCH_WORK/summary"
}

# bench_report prints the run conditions and the summary table.
bench_report() {
	local load_after
	load_after=$(cut -d' ' -f1-3 /proc/loadavg)
	echo
	echo "== $BENCH_NAME: $(nproc) CPUs, uid $(id -u), $BENCH_ROUNDS rounds, work dir on $(stat -f -c %T "$BENCH_WORK")"
	echo "load average (1/5/15 min) before: $BENCH_LOAD_BEFORE, after: $load_after"
	awk -F'\t' 'BEGIN { printf "%-44s %-22s %-14s %s\n", "metric", "value", "target", "verdict" }
		{ printf "%-44s %-22s %-14s %s\n", $2, $3, $4, $5 }' "$BENCH_WORK/summary"
	if [[ -n ${BENCH_SUMMARY:-} ]]; then
		cat "$BENCH_WORK/summary" >>"$BENCH_SUMMARY"
		printf '%s\tload before/after\t%s / %s\t\t\n' "$BENCH_NAME" "$BENCH_LOAD_BEFORE" "$load_after" >>"$BENCH_SUMMARY"
	fi
}
