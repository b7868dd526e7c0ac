#!/usr/bin/env bash
# Usage: bash images/integration.sh   (what `make integration-containers` runs)
#
# Runs the broker tests against containers that the test binaries start
# themselves through testcontainers-go (integration/brokers/containers.go),
# with the local images of images/build.sh:
#
#   1. starts dockerd (as root: --iptables=false --bridge=none, overlay2,
#      log in .brokers/logs/dockerd.log) unless a Docker engine answers;
#   2. builds the images that are missing (images/build.sh);
#   3. runs CONTAINER_PKGS (CONTAINER_RUN narrows the tests) with -tags integration, COURIER_REQUIRE_BROKERS=1,
#      every COURIER_*_URL-style endpoint variable unset (so nothing reaches the
#      native brokers), COURIER_<SERVICE>_IMAGE set to the local images, on
#      the host's network (COURIER_CONTAINER_NETWORK=host; the brokers listen
#      on 127.0.0.1 on ports apart from the native ones), without Ryuk
#      (TESTCONTAINERS_RYUK_DISABLED=true: the test binaries remove their
#      containers themselves), one package at a time (-p 1: the ports are
#      fixed);
#   4. prints which container each test binary started for each broker, and
#      fails unless every broker had one and none is left afterwards.
#
# Tests that control a native broker (stop, restart, rabbitmqctl: see
# CONTAINER_SKIP) run only in `make integration`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=../integration/brokers/lib.sh
. integration/brokers/lib.sh
say() { printf '[containers] %s\n' "$*"; }
warn() { printf '[containers] %s\n' "$*" >&2; }

PKGS=${CONTAINER_PKGS:-./integration/brokers/ ./adapters/rabbitmq/ ./adapters/kafka/ ./adapters/sqs/ ./adapters/gcppubsub/ ./middleware/store/redisstore/ ./middleware/store/pgstore/ ./middleware/store/storeurl/}
SKIP=${CONTAINER_SKIP:-Restart|Fault|Proxy|Outage|Kill|TestBlockedConnection|TestBrokerMessageSizeLimit|TestVhost}
# CONTAINER_RUN narrows the tests (go test -run), e.g. CONTAINER_RUN=Conformance for the
# conformance suites only (plus integration/brokers' own checks, which always run).
RUN=${CONTAINER_RUN:-}
T0=$SECONDS
mkdir -p "$B/logs"

start_dockerd() {
	docker info >/dev/null 2>&1 && return 0
	(($(id -u) == 0)) || die "no Docker engine answers and this is not root: start Docker (e.g. sudo systemctl start docker)"
	command -v dockerd >/dev/null || die "no Docker engine: install one (apt-get install docker.io) or start Docker"
	say "starting dockerd (log: $B/logs/dockerd.log)"
	setsid dockerd --iptables=false --bridge=none --storage-driver=overlay2 >>"$B/logs/dockerd.log" 2>&1 </dev/null 9>&- &
	local deadline=$((SECONDS + 60))
	until docker info >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "dockerd did not answer within 60s (log: $B/logs/dockerd.log)"
		sleep 1
	done
}

# left_over: ids of containers some test binary started (label courier.broker).
left_over() { docker ps -aq --filter label=courier.broker; }

start_dockerd
if [[ -n $(left_over) ]]; then
	warn "containers from an earlier run are still there (their ports may be taken):"
	docker ps -a --filter label=courier.broker --format '    {{.ID}} {{.Image}} {{.Status}} {{.Labels}}' >&2
fi
bash images/build.sh

record="$B/logs/containers-$(date +%Y%m%dT%H%M%S).tsv"
: >"$record"
run_env=(env)
for s in "${ALL_SERVICES[@]}"; do
	run_env+=(-u "$(env_var "$s")")
done
run_env+=(-u COURIER_RABBITMQCTL -u COURIER_BROKERS_DIR
	COURIER_RABBITMQ_IMAGE=courier/rabbitmq:local COURIER_KAFKA_IMAGE=courier/kafka:local
	COURIER_SQS_IMAGE=courier/elasticmq:local COURIER_PUBSUB_IMAGE=courier/pubsub:local
	COURIER_REDIS_IMAGE=courier/redis:local COURIER_POSTGRES_IMAGE=courier/postgres:local
	COURIER_CONTAINER_NETWORK=host TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1
	TESTCONTAINERS_RYUK_DISABLED=true COURIER_REQUIRE_BROKERS=1 COURIER_CONTAINER_RECORD="$record")

say "go test (containers) $PKGS, skipping tests that control a native broker: $SKIP"
rc=0
# shellcheck disable=SC2086 # PKGS is a list
run=()
if [[ -n $RUN ]]; then run=(-run "$RUN|TestEndpointContainer|TestEndpointHelper|TestContainer"); fi
"${run_env[@]}" bash .ci/gotest.sh -tags integration -count=1 -p 1 -timeout 30m -skip "$SKIP" "${run[@]}" $PKGS || rc=$?

# The failure-message tests must have run, not skipped for want of Docker.
if grep -q '"Action":"skip","Package":"[^"]*integration/brokers","Test":"TestEndpointContainer' .ci/last-test.json; then
	warn "TestEndpointContainer* skipped: the wrong-image and no-daemon messages were not checked"
	rc=1
fi

echo
say "containers started by the test binaries (record: $record):"
printf '    %-9s %-14s %-7s %-24s %-12s %-38s %s\n' broker "test binary" pid image container endpoint start-up
awk -F'\t' '$2 == "started" { printf "    %-9s %-14s %-7s %-24s %-12s %-38s %s\n", $5, $3, $4, $6, $7, $8, $9 }' "$record"
for s in "${ALL_SERVICES[@]}"; do
	if ! awk -F'\t' -v s="$s" '$2 == "started" && $5 == s { found = 1 } END { exit !found }' "$record"; then
		warn "$s: no test binary started a container"
		rc=1
	fi
done
started=$(awk -F'\t' '$2 == "started"' "$record" | wc -l)
say "removed: $(awk -F'\t' '$2 == "removed"' "$record" | wc -l) by TerminateAll or a failed start, $(awk -F'\t' '$2 == "reaped"' "$record" | wc -l) by the reaper after their test binary exited; $started started"

# Reapers run detached: give them a moment.
for _ in $(seq 30); do
	[[ -z $(left_over) ]] && break
	sleep 1
done
if [[ -n $(left_over) ]]; then
	warn "containers left behind:"
	docker ps -a --filter label=courier.broker --format '    {{.ID}} {{.Image}} {{.Status}} {{.Labels}}' >&2
	rc=1
else
	say "containers left afterwards: 0 (docker ps -a --filter label=courier.broker)"
fi
say "done in $((SECONDS - T0))s"
exit "$rc"
