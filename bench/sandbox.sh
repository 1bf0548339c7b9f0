#!/usr/bin/env bash
# sandbox.sh: how long `lkbuild run --rootfs DIR -- /bin/true` takes from
# start to exit with the rootfs already unpacked, against `chroot DIR
# /bin/true` and a plain `/bin/true`, as root and as an unprivileged user.
#
# The rootfs is the builder rootfs (scripts/fixtures/rootfs.sh), unpacked
# once per user with lkbuild's own extractor (bench/cmd/extract), untimed:
# as root with owners and device nodes, and as $BENCH_USER (default lktest)
# into a tree that user owns, as lkbuild's rootless cache does (rootless
# overlayfs needs a lower dir owned by the user). Both trees are on tmpfs.
# lkbuild's side is the whole command a user types: the CLI, the re-exec as
# namespace init, the overlay and the other mounts, pivot_root, /bin/true,
# and the removal of the per-run state dir.
#
# Each command is a separate process timed by hyperfine without a shell
# (-N). Every round runs hyperfine once over all sides of a user with
# BENCH_WARMUP (3) warm-up runs and BENCH_RUNS (10) timed runs each, the
# order of the sides rotating from round to round; medians are over all
# timed runs of all rounds. The baselines are:
#
#   root:   chroot DIR /bin/true, and /bin/true
#   user:   unshare -r chroot DIR /bin/true (the cheapest rootless way into
#           a rootfs: a user namespace and chroot), and /bin/true
#   both:   bwrap --unshare-all --ro-bind DIR / --proc /proc --dev /dev
#           /bin/true: bubblewrap, the rootless sandbox users know, with
#           every namespace lkbuild makes
#   both:   lkbuild version: the CLI's own start and exit, no sandbox; a
#           sandbox run starts the binary twice (the CLI, and the init in
#           the new namespaces: a Go process cannot enter a new user
#           namespace in place), so twice this is the floor
#
# Targets: median of lkbuild's side < 50 ms, and <= 2x bubblewrap's, for
# root and for the user. A
# miss is reported, not an error; the script fails only when something does
# not run. Needs root (to run as the other user), hyperfine and jq.
# Environment: BENCH_ROUNDS (5), BENCH_RUNS (10), BENCH_WARMUP (3),
# BENCH_USER (lktest), BENCH_TMPDIR (/dev/shm), LKBUILD_FIXTURES.
set -euo pipefail
# shellcheck source=bench/lib.bash
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BENCH_RUNS=${BENCH_RUNS:-10}
BENCH_WARMUP=${BENCH_WARMUP:-3}
BENCH_USER=${BENCH_USER:-lktest}

[[ $(id -u) -eq 0 ]] || { echo "sandbox: run as root (it also runs as $BENCH_USER)" >&2; exit 1; }
# Two 560 MB trees and the blob in a store.
bench_init sandbox 2000
bin=$BENCH_WORK/bin
[[ $BENCH_RUNS =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_RUNS=$BENCH_RUNS: want a positive integer"
[[ $BENCH_WARMUP =~ ^[0-9]+$ ]] || bench_die "BENCH_WARMUP=$BENCH_WARMUP: want a number"
for tool in hyperfine jq runuser unshare chroot bwrap; do
	command -v "$tool" >/dev/null || bench_die "$tool is missing"
done
id -u "$BENCH_USER" >/dev/null 2>&1 || bench_die "no user $BENCH_USER (useradd -m $BENCH_USER)"

bench_log "building lkbuild into $bin (as make build does)"
CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs -ldflags '-s -w' -o "$bin/lkbuild" ./cmd/lkbuild
# The user must reach the binaries and its own tree under the work dir.
chmod 755 "$BENCH_WORK" "$bin"

fixture=$(scripts/fixtures/rootfs.sh)
[[ -f $fixture/rootfs.tar.gz ]] || bench_die "no rootfs.tar.gz in $fixture"
bench_log "unpacking $fixture/rootfs.tar.gz for root and for $BENCH_USER (untimed)"
read -r image _ <<<"$("$bin/extract" prepare -store "$BENCH_WORK/store" "$fixture/rootfs.tar.gz")"
root_tree=$BENCH_WORK/rootfs-root
"$bin/extract" run -store "$BENCH_WORK/store" -image "$image" "$root_tree" >/dev/null
user_dir=$BENCH_WORK/user
mkdir "$user_dir"
chown "$BENCH_USER:" "$user_dir"
user_tree=$user_dir/rootfs
as_user() {
	runuser -u "$BENCH_USER" -- env -i PATH="$PATH" HOME="$user_dir" "$@"
}
as_user "$bin/extract" run -store "$BENCH_WORK/store" -image "$image" "$user_tree" >/dev/null

# Check once that lkbuild runs for both users and really is in its tree: a
# marker file that only the tree has.
touch "$root_tree/.lkbuild-bench"
as_user touch "$user_tree/.lkbuild-bench"
"$bin/lkbuild" run --rootfs "$root_tree" -- /bin/test -f /.lkbuild-bench ||
	bench_die "lkbuild run as root does not work"
as_user "$bin/lkbuild" run --rootfs "$user_tree" -- /bin/test -f /.lkbuild-bench ||
	bench_die "lkbuild run as $BENCH_USER does not work"

bwrap_cmd() { echo "bwrap --unshare-all --ro-bind $1 / --proc /proc --dev /dev /bin/true"; }

# round WHO R runs one hyperfine round over WHO's sides (root or user),
# starting with side number R mod n, and appends "SIDE SECONDS" for every
# timed run to $BENCH_WORK/times and "SIDE CPU_SECONDS" (mean user + system
# of the round) to $BENCH_WORK/cpu.
round() {
	local who=$1 r=$2 json names=() cmds=() args=() i n
	if [[ $who == root ]]; then
		json=$BENCH_WORK/round.json
		names=(root-lkbuild root-chroot root-true root-bwrap root-version)
		cmds=("$bin/lkbuild run --rootfs $root_tree -- /bin/true" "chroot $root_tree /bin/true" "/bin/true" "$(bwrap_cmd "$root_tree")" "$bin/lkbuild version")
	else
		json=$user_dir/round.json
		names=(user-lkbuild user-unshare user-true user-bwrap user-version)
		cmds=("$bin/lkbuild run --rootfs $user_tree -- /bin/true" "unshare -r chroot $user_tree /bin/true" "/bin/true" "$(bwrap_cmd "$user_tree")" "$bin/lkbuild version")
	fi
	n=${#names[@]}
	for ((i = 0; i < n; i++)); do
		args+=(-n "${names[(r + i) % n]}" "${cmds[(r + i) % n]}")
	done
	rm -f "$json"
	if [[ $who == root ]]; then
		hyperfine -N --style none --warmup "$BENCH_WARMUP" --runs "$BENCH_RUNS" --export-json "$json" "${args[@]}" >/dev/null
	else
		as_user hyperfine -N --style none --warmup "$BENCH_WARMUP" --runs "$BENCH_RUNS" --export-json "$json" "${args[@]}" >/dev/null
	fi
	jq -r '.results[] | .command as $c | .times[] | "\($c) \(.)"' "$json" >>"$BENCH_WORK/times"
	jq -r '.results[] | "\(.command) \(.user + .system)"' "$json" >>"$BENCH_WORK/cpu"
	bench_log "$who: $(jq -r '[.results[] | "\(.command) \(.median * 1000 | floor) ms"] | join(", ")' "$json") (medians of this round)"
}

for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	bench_log "round $r of $BENCH_ROUNDS, load $(cut -d' ' -f1-3 /proc/loadavg)"
	# The users take turns too.
	if ((r % 2)); then
		round root "$r"
		round user "$r"
	else
		round user "$r"
		round root "$r"
	fi
done

# Times here are milliseconds: medians keep six decimals of a second
# (lib.bash's bench_median_of keeps three).
median6() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
median_ms() { # median_ms FILE SIDE
	awk -v s="$2" '$1 == s { print $2 }' "$1" | median6 | awk '{ printf "%.1f\n", $1 * 1000 }'
}
ms_spread() {
	bench_spread "$1" | awk -F- '{ printf "%.1f-%.1f\n", $1 * 1000, $2 * 1000 }'
}

for who in root user; do
	if [[ $who == root ]]; then
		label=root base=chroot base_name=chroot
	else
		label=$BENCH_USER base=unshare base_name=unshare-chroot
	fi
	ours=$(median_ms "$BENCH_WORK/times" "$who-lkbuild")
	basev=$(median_ms "$BENCH_WORK/times" "$who-$base")
	truev=$(median_ms "$BENCH_WORK/times" "$who-true")
	bench_result "$label: lkbuild run, median ms (min-max)" "$ours ($(ms_spread "$who-lkbuild"))" "< 50" \
		"$(bench_check "$ours" "<" 50)"
	bench_result "$label: $base_name, median ms (min-max)" "$basev ($(ms_spread "$who-$base"))" "" ""
	bench_result "$label: /bin/true, median ms (min-max)" "$truev ($(ms_spread "$who-true"))" "" ""
	bwrapv=$(median_ms "$BENCH_WORK/times" "$who-bwrap")
	bench_result "$label: bwrap --unshare-all, median ms (min-max)" "$bwrapv ($(ms_spread "$who-bwrap"))" "" ""
	bwrap_ratio=$(bench_ratio "$ours" "$bwrapv")
	bench_result "$label: ratio lkbuild / bwrap" "$bwrap_ratio" "<= 2" "$(bench_check "$bwrap_ratio" "<=" 2)"
	versionv=$(median_ms "$BENCH_WORK/times" "$who-version")
	bench_result "$label: lkbuild version (the CLI's start alone), median ms" "$versionv ($(ms_spread "$who-version"))" "" "info"
	bench_result "$label: ratio lkbuild version / bwrap" "$(bench_ratio "$versionv" "$bwrapv")" "" "info"
	bench_result "$label: ratio lkbuild / $base_name" "$(bench_ratio "$ours" "$basev")" "" "info"
	bench_result "$label: ratio lkbuild / /bin/true" "$(bench_ratio "$ours" "$truev")" "" "info"
	bench_result "$label: CPU ms lkbuild/$base_name/true" \
		"$(median_ms "$BENCH_WORK/cpu" "$who-lkbuild") / $(median_ms "$BENCH_WORK/cpu" "$who-$base") / $(median_ms "$BENCH_WORK/cpu" "$who-true")" "" "info"
done
bench_result "timed runs per side" "$((BENCH_ROUNDS * BENCH_RUNS))" "" ""
bench_report
