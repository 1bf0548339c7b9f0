#!/usr/bin/env bash
# test.sh is what `make test` and CI run after `make lint`. It runs every
# package's tests twice, each time against a fresh real registry
# (scripts/registry.sh, its variables exported, DOCKER_CONFIG included):
#
#   1. `go test -count=1` of every package but e2e as the current user
#      (root in CI);
#   2. each package's compiled test binary as the unprivileged user lktest
#      (created if missing), from a copy of the tree that lktest owns, so
#      rootless code paths really run rootless and testdata/ is readable
#      wherever the clone lives. The end-to-end kernel build (e2e) runs only
#      here: it is what an unprivileged user does.
#
#      After e2e, its TestVerifyElsewhere runs as another machine would:
#      as the user lktest-verify, with umask 077, another TZ, locale and
#      host name (a UTS namespace), in a network namespace with no
#      interface but a loopback that is down (unshare -n -u): lkbuild
#      verify of TestKernelBuild's image from the bundle it wrote.
#
#   3. the sandbox and hostile-builder tests again as lktest-nosub, a user
#      without subordinate ids (the single-id mapping).
#
# Arguments are package patterns (default ./...): scripts/test.sh ./e2e runs
# the end-to-end suite alone (make e2e). LKBUILD_TEST_RUN and
# LKBUILD_TEST_SKIP, when set, go to every run as go test's -run and -skip:
#   LKBUILD_TEST_RUN='^TestForeignBuild$' bash scripts/test.sh ./e2e
#
# LKBUILD_REQUIRE_ALL=1 is set for both: a test that would skip for a missing
# prerequisite (user namespaces, qemu, the registry) fails instead, so a green
# run means every test ran. The last line is "N passed, N failed", counting
# packages over both runs; the exit status is non-zero if any failed.
# Needs root (useradd, runuser).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
export PATH="/usr/local/go/bin:$PATH"
PATH="$(go env GOPATH)/bin:$PATH"
export LKBUILD_REQUIRE_ALL=1
# Static test binaries, like lkbuild itself: the sandbox re-executes the
# running binary inside the rootfs (the writable rootfs's exec shim, the
# in-sandbox step actions), where a foreign-arch rootfs has no host dynamic loader.
export CGO_ENABLED=0
testuser=lktest
began=$SECONDS

if [[ $(id -u) -ne 0 ]]; then
	echo "test.sh: must run as root (it creates and switches to the user $testuser)" >&2
	exit 1
fi

work=$(mktemp -d /tmp/lkbuild-test.XXXXXX)
chmod 755 "$work"
cleanup() {
	local e
	for e in "$work"/registry-*.env; do
		[[ -f $e ]] && bash "$root/scripts/registry.sh" stop "$e"
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Fixtures: debootstrap rootfs trees for the sandbox tests, built once and
# cached outside the clone (scripts/fixtures). The first run takes minutes.
fixture_began=$SECONDS
LKBUILD_TEST_ROOTFS_TGZ=$(bash scripts/fixtures/rootfs.sh)/rootfs.tar.gz
LKBUILD_TEST_ROOTFS_ARM64_TGZ=$(bash scripts/fixtures/rootfs-arm64.sh)/rootfs.tar.gz
export LKBUILD_TEST_ROOTFS_TGZ LKBUILD_TEST_ROOTFS_ARM64_TGZ
LKBUILD_TEST_DEBIAN_KERNEL=$(bash internal/boottest/testdata/debian-kernel.sh)
export LKBUILD_TEST_DEBIAN_KERNEL
# The end-to-end build: builder image layout, signed source mirror, microcode.
e2e_env=$(bash scripts/fixtures/e2e.sh --foreign)
while IFS= read -r line; do
	export "${line?}"
done <<<"$e2e_env"
echo "== fixtures ready after $((SECONDS - fixture_began)) s"

passed=0
failed=0

# go test's -run and -skip, for both runs (-test.run is the same flag).
filter=()
[[ -z ${LKBUILD_TEST_RUN:-} ]] || filter+=("-test.run=$LKBUILD_TEST_RUN")
[[ -z ${LKBUILD_TEST_SKIP:-} ]] || filter+=("-test.skip=$LKBUILD_TEST_SKIP")
# e2e's TestVerifyElsewhere runs on its own, in a network namespace (below).
e2efilter=()
[[ -z ${LKBUILD_TEST_RUN:-} ]] || e2efilter+=("-test.run=$LKBUILD_TEST_RUN")
e2efilter+=("-test.skip=^TestVerifyElsewhere\$${LKBUILD_TEST_SKIP:+|$LKBUILD_TEST_SKIP}")

# --- 1. go test ./... as root ------------------------------------------------
patterns=("$@")
((${#patterns[@]})) || patterns=(./...)
mapfile -t rootpkgs < <(go list "${patterns[@]}" | grep -v '/e2e$' || true)
echo "== go test -count=1 (${#rootpkgs[@]} packages) as $(id -un)"
: >"$work/root.log"
rc=0
if ((${#rootpkgs[@]})); then
	bash scripts/registry.sh start "$work/registry-root.env" "$work/registry-root" >/dev/null
	set +e
	(
		set -a
		. "$work/registry-root.env"
		set +a
		go test -count=1 "${filter[@]}" "${rootpkgs[@]}"
	) 2>&1 | tee "$work/root.log"
	rc=${PIPESTATUS[0]}
	set -e
fi
p=$(grep -cE '^ok[[:space:]]' "$work/root.log" || true)
f=$(grep -cE '^FAIL[[:space:]]+[^[:space:]]' "$work/root.log" || true)
if ((rc != 0 && f == 0)); then
	echo "test.sh: go test exited $rc without naming a failed package" >&2
	f=1
fi
passed=$((passed + p))
failed=$((failed + f))
echo "== as $(id -un): $p packages passed, $f failed ($((SECONDS - began)) s)"

# --- 2. the test binaries as an unprivileged user ----------------------------
phase=$SECONDS
echo "== test binaries as $testuser"
if ! id "$testuser" >/dev/null 2>&1; then
	useradd -m "$testuser"
fi
home=$(getent passwd "$testuser" | cut -d: -f6)
# Results the end-to-end suite may reuse from run to run, keyed by all their
# inputs (TestFastPathIdentity's emulated reference builds, 17 minutes):
# outside the clone, next to the fixtures, the test user's own.
LKBUILD_E2E_RESULTS=${LKBUILD_FIXTURES:-/var/cache/lkbuild-fixtures}/e2e-results
install -d -m 0700 -o "$testuser" -g "$testuser" "$LKBUILD_E2E_RESULTS"
export LKBUILD_E2E_RESULTS

# A copy of the tree that the test user owns: the clone may sit under a
# directory it cannot enter (/root), and tests may write next to their sources.
mkdir "$work/src" "$work/bin"
# The binary the end-to-end suite drives, built here: lktest has no module
# cache to build it from.
CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs -o "$work/bin/lkbuild" ./cmd/lkbuild
chmod a+rx "$work/bin/lkbuild"
export LKBUILD_E2E_BIN=$work/bin/lkbuild
tar -C "$root" --exclude=./.git --exclude=./out --exclude=./lkbuild -cf - . | tar -C "$work/src" -xf -
chown -R "$testuser:" "$work/src"

bash scripts/registry.sh start "$work/registry-lktest.env" "$work/registry-lktest" >/dev/null
testenv=(
	"HOME=$home" "USER=$testuser" "LOGNAME=$testuser"
	"PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	"LANG=C.UTF-8" "CI=${CI:-}"
)
mapfile -t -O "${#testenv[@]}" testenv < <(grep -E '^[A-Z_]+=' "$work/registry-lktest.env")
for v in $(compgen -e); do
	case $v in LKBUILD_TEST_REGISTRY*) ;; LKBUILD_*) testenv+=("$v=${!v}") ;; esac
done

mapfile -t pkgs < <(go list -e -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' "${patterns[@]}")
for line in "${pkgs[@]}"; do
	[[ -n $line ]] || continue
	pkg=${line%% *}
	dir=${line#* }
	rel=${dir#"$root"}
	rel=${rel#/}
	bin="$work/bin/${rel//\//_}.test"
	[[ -n $rel ]] || bin="$work/bin/root.test"
	if ! go test -c -o "$bin" "$pkg"; then
		echo "FAIL $pkg (as $testuser) [build failed]"
		failed=$((failed + 1))
		continue
	fi
	chmod a+rx "$bin"
	extra=("${filter[@]}")
	if [[ $pkg == */e2e ]]; then
		# Its log holds the build times; TestKernelBuild leaves its cache
		# for TestVerifyElsewhere in offline/.
		mkdir -p "$work/offline"
		chown "$testuser:" "$work/offline"
		extra=(-test.v "${e2efilter[@]}")
	fi
	t0=$SECONDS
	if (cd "$work/src/$rel" && runuser -u "$testuser" -- env -i "${testenv[@]}" "LKBUILD_E2E_OFFLINE_STATE=$work/offline" "$bin" -test.count=1 -test.timeout=75m "${extra[@]}" </dev/null) 2>&1; then
		echo "ok   $pkg (as $testuser) $((SECONDS - t0)) s"
		passed=$((passed + 1))
	else
		echo "FAIL $pkg (as $testuser) $((SECONDS - t0)) s"
		failed=$((failed + 1))
	fi
done
if [[ -f $work/offline/state.json ]]; then
	# Another machine: another user (with its own subordinate ids), umask,
	# time zone, locale and host name, and no network (only lo, down). The
	# bundle and checkout are handed over readable, as a copy would be.
	verifier=lktest-verify
	if ! id "$verifier" >/dev/null 2>&1; then
		useradd -m "$verifier"
	fi
	chmod -R a+rX "$work/offline" "$work/src/e2e"
	verifyenv=("${testenv[@]/#HOME=*/HOME=$(getent passwd "$verifier" | cut -d: -f6)}")
	verifyenv=("${verifyenv[@]/#USER=*/USER=$verifier}")
	verifyenv=("${verifyenv[@]/#LOGNAME=*/LOGNAME=$verifier}")
	verifyenv=("${verifyenv[@]/#LANG=*/LANG=de_DE.UTF-8}" "LC_ALL=de_DE.UTF-8" "TZ=NZST-12NZDT,M9.5.0,M4.1.0/3")
	t0=$SECONDS
	# shellcheck disable=SC2016 # expanded by the inner shells
	if (cd "$work/src/e2e" && unshare --net --uts -- bash -c 'hostname lkbuild-elsewhere && exec "$@"' _ \
		runuser -u "$verifier" -- env -i "${verifyenv[@]}" "LKBUILD_E2E_OFFLINE_STATE=$work/offline" \
		bash -c 'umask 077 && exec "$@"' _ "$work/bin/e2e.test" -test.count=1 -test.timeout=40m -test.v -test.run='^TestVerifyElsewhere$' </dev/null) 2>&1; then
		echo "ok   ./e2e TestVerifyElsewhere (as $verifier, umask 077, no network) $((SECONDS - t0)) s"
		passed=$((passed + 1))
	else
		echo "FAIL ./e2e TestVerifyElsewhere (as $verifier, umask 077, no network) $((SECONDS - t0)) s"
		failed=$((failed + 1))
	fi
fi
echo "== as $testuser: done ($((SECONDS - phase)) s)"

# --- 3. the sandbox without subordinate ids ------------------------------------
# lktest has a subordinate id range (useradd gives one); a user without one
# gets the single-id mapping, a sandbox of its own kind. The sandbox tests
# and the hostile-builder ones run again as such a user; only the test of
# the range itself is left out.
nosub=lktest-nosub
if ! id "$nosub" >/dev/null 2>&1; then
	useradd -m "$nosub"
fi
sed -i "/^$nosub:/d" /etc/subuid /etc/subgid
nosubenv=("${testenv[@]/#HOME=*/HOME=$(getent passwd "$nosub" | cut -d: -f6)}")
nosubenv=("${nosubenv[@]/#USER=*/USER=$nosub}")
nosubenv=("${nosubenv[@]/#LOGNAME=*/LOGNAME=$nosub}")
chmod -R a+rX "$work/src"
for run in "sandbox ^Test -test.skip=^TestSandboxSubordinateIDs$" \
	"builder ^(TestHostileBuilderCannotWriteTheCheckout|TestBuilderImageRunIsLocked|TestStepActionInSandbox)$"; do
	read -r rel pattern skip <<<"$run"
	[[ -x $work/bin/$rel.test ]] || continue # not among the packages asked for
	t0=$SECONDS
	if (cd "$work/src/$rel" && runuser -u "$nosub" -- env -i "${nosubenv[@]}" "$work/bin/$rel.test" -test.count=1 -test.run="$pattern" ${skip:+"$skip"} </dev/null) 2>&1; then
		echo "ok   ./$rel (as $nosub, no subordinate ids) $((SECONDS - t0)) s"
		passed=$((passed + 1))
	else
		echo "FAIL ./$rel (as $nosub, no subordinate ids) $((SECONDS - t0)) s"
		failed=$((failed + 1))
	fi
done

echo "test.sh: took $((SECONDS - began)) s"
echo "$passed passed, $failed failed"
((failed == 0))
