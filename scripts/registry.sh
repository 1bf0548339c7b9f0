#!/usr/bin/env bash
# registry.sh runs a real Distribution registry (Debian's docker-registry) on
# 127.0.0.1 for the end-to-end tests, with basic auth and deletes enabled.
#
#   scripts/registry.sh start ENVFILE [DIR]   start it in the background
#   scripts/registry.sh stop ENVFILE          stop it, remove DIR if we made it
#
# start keeps all state in DIR (a new temporary directory by default, made
# readable by other users so an unprivileged test user can use it):
#
#   DIR/config.yml          registry configuration
#   DIR/htpasswd            bcrypt entry for the random test user
#   DIR/storage/            filesystem storage
#   DIR/docker/config.json  docker config with the credentials ("auths"),
#                           for DOCKER_CONFIG=DIR/docker and ggcr's
#                           authn.DefaultKeychain (skopeo: --authfile or
#                           REGISTRY_AUTH_FILE)
#   DIR/registry.log        the registry's output
#
# and writes shell assignments to ENVFILE (and stdout), ready for
# `set -a; . ENVFILE; set +a`:
#
#   LKBUILD_TEST_REGISTRY=127.0.0.1:PORT
#   LKBUILD_TEST_REGISTRY_USER=...
#   LKBUILD_TEST_REGISTRY_PASSWORD=...
#   DOCKER_CONFIG=DIR/docker
#   REGISTRY_AUTH_FILE=DIR/docker/config.json
#   LKBUILD_TEST_REGISTRY_PID=...     (for stop)
#   LKBUILD_TEST_REGISTRY_DIR=DIR
#
# The registry speaks plain HTTP; ggcr uses http for 127.0.0.1 by itself,
# skopeo needs --tls-verify=false.
set -euo pipefail

usage() {
	echo "usage: $0 start ENVFILE [DIR] | stop ENVFILE" >&2
	exit 2
}

# envvalue FILE NAME prints NAME's value from an env file written by start.
envvalue() {
	sed -n "s/^$2=//p" "$1" | tail -n 1
}

stop() {
	local envfile=$1 pid dir
	[[ -f $envfile ]] || return 0
	pid=$(envvalue "$envfile" LKBUILD_TEST_REGISTRY_PID)
	dir=$(envvalue "$envfile" LKBUILD_TEST_REGISTRY_DIR)
	if [[ -n $pid ]] && kill "$pid" 2>/dev/null; then
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	if [[ -n $dir && -f $dir/.made-by-registry-sh ]]; then
		rm -rf "$dir"
	fi
	rm -f "$envfile"
}

start() {
	local envfile=$1 dir=${2:-} made=
	for tool in /usr/bin/docker-registry htpasswd curl base64; do
		command -v "$tool" >/dev/null || { echo "registry.sh: $tool is missing; run scripts/deps.sh" >&2; exit 1; }
	done
	if [[ -z $dir ]]; then
		dir=$(mktemp -d /tmp/lkbuild-registry.XXXXXX)
		made=1
	fi
	mkdir -p "$dir/storage" "$dir/docker"
	dir=$(cd "$dir" && pwd)
	[[ -z $made ]] || touch "$dir/.made-by-registry-sh"
	chmod 755 "$dir" "$dir/docker"

	local user=lkbuild password secret
	password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
	secret=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
	htpasswd -Bbn "$user" "$password" >"$dir/htpasswd"

	# LKBUILD_REGISTRY_ACCESSLOG=1 logs every request to registry.log
	# (a benchmark counts them); otherwise only warnings and errors.
	local access_off=true
	[[ ${LKBUILD_REGISTRY_ACCESSLOG:-0} != 1 ]] || access_off=false
	local port pid attempt code
	for attempt in 1 2 3 4 5 6 7 8 9 10; do
		# A random port that nothing answers on; if the registry still
		# cannot bind it (a race), it exits and we try another.
		port=$((20000 + RANDOM % 40000))
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			continue
		fi
		cat >"$dir/config.yml" <<-YAML
			version: 0.1
			log:
			  level: warn
			  accesslog:
			    disabled: $access_off
			storage:
			  filesystem:
			    rootdirectory: $dir/storage
			  delete:
			    enabled: true
			  maintenance:
			    uploadpurging:
			      enabled: false
			http:
			  addr: 127.0.0.1:$port
			  secret: $secret
			auth:
			  htpasswd:
			    realm: lkbuild-test
			    path: $dir/htpasswd
		YAML
		# env -i: the registry reads REGISTRY_* variables as configuration,
		# and REGISTRY_AUTH_FILE (meant for skopeo) would be taken as one.
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			setsid /usr/bin/docker-registry serve "$dir/config.yml" \
			</dev/null >"$dir/registry.log" 2>&1 &
		pid=$!
		for _ in $(seq 100); do
			code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
			[[ $code == 401 ]] && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if [[ $code == 401 ]]; then
			break
		fi
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pid=
		echo "registry.sh: attempt $attempt on port $port failed (/v2/ gave '$code'):" >&2
		tail -n 5 "$dir/registry.log" >&2
	done
	if [[ -z $pid ]]; then
		echo "registry.sh: could not start the registry; see $dir/registry.log" >&2
		exit 1
	fi

	local auth
	auth=$(printf '%s:%s' "$user" "$password" | base64 -w0)
	printf '{\n\t"auths": {\n\t\t"127.0.0.1:%s": {\n\t\t\t"auth": "%s"\n\t\t}\n\t}\n}\n' \
		"$port" "$auth" >"$dir/docker/config.json"
	chmod 644 "$dir/docker/config.json" "$dir/htpasswd"

	# With credentials, a request must succeed: proves the htpasswd entry.
	code=$(curl -s -o /dev/null -w '%{http_code}' -u "$user:$password" "http://127.0.0.1:$port/v2/" || true)
	if [[ $code != 200 ]]; then
		echo "registry.sh: the registry refused the test credentials (/v2/ gave $code)" >&2
		kill "$pid" 2>/dev/null || true
		exit 1
	fi

	cat >"$envfile" <<-ENV
		LKBUILD_TEST_REGISTRY=127.0.0.1:$port
		LKBUILD_TEST_REGISTRY_USER=$user
		LKBUILD_TEST_REGISTRY_PASSWORD=$password
		DOCKER_CONFIG=$dir/docker
		REGISTRY_AUTH_FILE=$dir/docker/config.json
		LKBUILD_TEST_REGISTRY_PID=$pid
		LKBUILD_TEST_REGISTRY_DIR=$dir
	ENV
	cat "$envfile"
}

case ${1:-} in
start) [[ $# -ge 2 && $# -le 3 ]] || usage; start "$2" "${3:-}" ;;
stop) [[ $# -eq 2 ]] || usage; stop "$2" ;;
*) usage ;;
esac
