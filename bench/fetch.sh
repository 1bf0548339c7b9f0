#!/usr/bin/env bash
# fetch.sh: what `lkbuild fetch` costs into an empty cache and into a full
# one, for the e2e test kernel (testdata/kernel, 6.12.x, x86_64), with
# every piece behind a real server on 127.0.0.1: the builder image in a
# Distribution registry (scripts/registry.sh, the e2e builder copied in by
# skopeo), the signed source mirror of scripts/fixtures/e2e.sh over HTTP
# (python3's http.server), the microcode from its local repository.
#
#   empty     lkbuild fetch into a new --cache-dir (BENCH_ROUNDS runs):
#             sha256sums.asc, the .tar.sign and the tarball downloaded,
#             verified and extracted, the builder pulled and unpacked, the
#             microcode checked out
#   full      the same command on the cache the last empty run filled
#             (hyperfine, BENCH_FULL_RUNS runs); the servers' logs must show
#             no request from it
#   baseline  what the source alone costs with the usual tools:
#             curl of the tarball | xz -d -T0 | tar -x (no verification),
#             in the same run: empty / baseline says what the rest adds
#
# Targets: a fetch on a full cache makes no request, and takes < 1 s. The
# rest is information (the issue asks for the times). Needs root (the
# registry), skopeo, python3, curl, hyperfine, jq and the e2e fixtures.
# Environment: BENCH_ROUNDS (3), BENCH_FULL_RUNS (10), BENCH_TMPDIR.
set -euo pipefail
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
# shellcheck source=bench/lib.bash
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
BENCH_FULL_RUNS=${BENCH_FULL_RUNS:-10}
series=6.12.x

[[ $(id -u) -eq 0 ]] || { echo "fetch: run as root (the registry)" >&2; exit 1; }
[[ $BENCH_FULL_RUNS =~ ^[1-9][0-9]*$ ]] || { echo "fetch: BENCH_FULL_RUNS=$BENCH_FULL_RUNS: want a positive integer" >&2; exit 1; }
# Two caches of ~2 GB (the source tree, the rootfs) and the baseline's tree.
bench_init fetch 6000
for tool in skopeo python3 curl hyperfine jq git xz; do
	command -v "$tool" >/dev/null || bench_die "$tool is missing"
done
bin=$BENCH_WORK/bin
bench_log "building lkbuild into $bin (as make build does)"
CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs -ldflags '-s -w' -o "$bin/lkbuild" ./cmd/lkbuild

eval "$(bash scripts/fixtures/e2e.sh)"
version=$(sed -n 's/^KERNEL_VERSION=//p' "testdata/kernel/$series/build-args")

# The servers.
http_pid=
stop_servers() {
	if [[ -n $http_pid ]]; then kill "$http_pid" 2>/dev/null || true; fi
	if [[ -f $BENCH_WORK/registry.env ]]; then bash scripts/registry.sh stop "$BENCH_WORK/registry.env" >/dev/null 2>&1 || true; fi
	bench_cleanup
}
trap stop_servers EXIT
LKBUILD_REGISTRY_ACCESSLOG=1 bash scripts/registry.sh start "$BENCH_WORK/registry.env" "$BENCH_WORK/registry" >/dev/null
set -a
# shellcheck source=/dev/null
. "$BENCH_WORK/registry.env"
set +a
builder=$LKBUILD_TEST_REGISTRY/bench/builder:1
bench_log "copying the builder into the registry (untimed)"
skopeo copy -q --dest-tls-verify=false --dest-creds "$LKBUILD_TEST_REGISTRY_USER:$LKBUILD_TEST_REGISTRY_PASSWORD" \
	"$LKBUILD_E2E_BUILDER" "docker://$builder"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$LKBUILD_E2E_MIRROR" "$port" 2>"$BENCH_WORK/http.log" >/dev/null &
http_pid=$!
mirror=http://127.0.0.1:$port
for _ in $(seq 50); do
	curl -fs -o /dev/null "$mirror/" && break
	sleep 0.1
done

# A LinuxKit-style checkout with the mirror's key, as build.sh makes it.
checkout=$BENCH_WORK/checkout
mkdir -p "$checkout"
cp -r testdata/kernel "$checkout/kernel"
cp "$LKBUILD_E2E_KEYS" "$checkout/kernel/common/keys.asc"
(
	cd "$checkout"
	export GIT_AUTHOR_DATE="@1700000000 +0000" GIT_COMMITTER_DATE="@1700000000 +0000"
	export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@lkbuild.invalid GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@lkbuild.invalid
	git init -q -b main && git add . && git commit -q -m kernel
)
fetch_cmd() { # fetch_cmd CACHE: the command, in ${cmd[@]}
	cmd=("$bin/lkbuild" --cache-dir "$1" fetch --kernel-dir "$checkout/kernel" --series "$series" --arch x86_64
		--builder-image "$builder" --source-mirror "$mirror" --ucode-repo "$LKBUILD_E2E_UCODE" --insecure-registry)
}
requests() { # requests: how many requests both servers have logged
	echo $(($(grep -c '"GET ' "$BENCH_WORK/http.log" || true) + $(grep -cE '"(GET|HEAD|POST|PUT|PATCH) /v2/' "$LKBUILD_TEST_REGISTRY_DIR/registry.log" || true)))
}

tarball=$(find "$LKBUILD_E2E_MIRROR" -name "linux-$version.tar.xz" | head -n 1)
[[ -n $tarball ]] || bench_die "no linux-$version.tar.xz in $LKBUILD_E2E_MIRROR"
url=$mirror/${tarball#"$LKBUILD_E2E_MIRROR"/}
cache=
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	bench_log "round $r of $BENCH_ROUNDS (load $(cut -d' ' -f1-3 /proc/loadavg))"
	[[ -n $cache ]] && rm -rf --one-file-system "$cache"
	cache=$BENCH_WORK/cache-$r
	fetch_cmd "$cache"
	before=$(requests)
	bench_time empty "${cmd[@]}" >/dev/null 2>"$BENCH_WORK/empty.err" || bench_die "lkbuild fetch failed: $(tail -n 20 "$BENCH_WORK/empty.err")"
	empty_requests=$(($(requests) - before))
	rm -rf --one-file-system "$BENCH_WORK/baseline"
	mkdir "$BENCH_WORK/baseline"
	# shellcheck disable=SC2016 # sh's own arguments
	bench_time baseline sh -c 'curl -fsS "$1" | xz -d -T0 | tar -x -C "$2"' sh "$url" "$BENCH_WORK/baseline"
done

fetch_cmd "$cache"
"${cmd[@]}" >/dev/null 2>&1 || bench_die "lkbuild fetch on the full cache failed"
before=$(requests)
bench_log "the full cache: hyperfine, $BENCH_FULL_RUNS runs"
hyperfine -N --style none --warmup 1 --runs "$BENCH_FULL_RUNS" --export-json "$BENCH_WORK/full.json" -- "${cmd[*]}" >/dev/null
full_requests=$(($(requests) - before))
read -r full_median full_max full_cpu < <(jq -r '.results[0] | "\(.median) \(.max) \(.user + .system)"' "$BENCH_WORK/full.json")

empty=$(bench_median empty)
base=$(bench_median baseline)
bench_result "fetch into an empty cache, median s (min-max)" "$empty ($(bench_spread empty))" "" "info"
bench_result "CPU s median: empty fetch / baseline" "$(bench_cpu empty) / $(bench_cpu baseline)" "" "info"
bench_result "requests of one empty fetch" "$empty_requests" "" "info"
bench_result "baseline: curl | xz -d -T0 | tar -x, median s" "$base ($(bench_spread baseline))" "" "info"
bench_result "time ratio empty fetch / baseline" "$(bench_ratio "$empty" "$base")" "" "info"
bench_result "fetch on the full cache, s median (max)" "$(printf '%.3f (%.3f)' "$full_median" "$full_max")" "< 1" "$(bench_check "$full_max" "<" 1)"
bench_result "CPU s of a full fetch (mean)" "$(printf '%.3f' "$full_cpu")" "" "info"
bench_result "requests of $((BENCH_FULL_RUNS + 1)) full fetches" "$full_requests" "0" "$( ((full_requests == 0)) && echo PASS || echo MISS)"
bench_result "time ratio full / empty fetch" "$(bench_ratio "$full_median" "$empty")" "" "info"
bench_report
