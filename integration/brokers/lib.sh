# shellcheck shell=bash disable=SC2034
# Shared by up.sh and down.sh; not meant to be run on its own.
#
# Everything these scripts write lives under $COURIER_BROKERS_DIR, by default
# .brokers/ at the repository root (git-ignored):
#
#   .brokers/bin/        brokercheck, pstest-server, rabbitmqctl (wrapper)
#   .brokers/run/*.pid   pid of every process up.sh started
#   .brokers/logs/*.log  one log per service (plus apt.log, maven-*.log)
#   .brokers/<service>/  configuration, data, downloaded jars
#   .brokers/env         sourceable COURIER_* variables of the answering services

BROKERS_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BROKERS_SRC/../.." && pwd)"
B="${COURIER_BROKERS_DIR:-$REPO_ROOT/.brokers}"

ALL_SERVICES=(rabbitmq kafka sqs pubsub redis postgres)

# Versions of what comes from Maven Central. Kafka matches the apache/kafka
# image in containers.go.
KAFKA_VERSION=3.9.1
SLF4J_VERSION=1.7.36
ELASTICMQ_VERSION=1.7.1
MAVEN_DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

# Everything listens on loopback only.
HOST=127.0.0.1
RABBITMQ_PORT=5672
RABBITMQ_DIST_PORT=25672
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
SQS_PORT=9324
PUBSUB_PORT=8085
REDIS_PORT=6379
POSTGRES_PORT=5432
POSTGRES_PASSWORD=postgres
POSTGRES_DB=courier

# Seconds each service gets to answer after it was started.
declare -A READY_TIMEOUT=([rabbitmq]=120 [kafka]=120 [sqs]=90 [pubsub]=30 [redis]=30 [postgres]=60)

# A substring of /proc/PID/cmdline that every process of the service has; a
# pid file whose process lacks it is stale (the pid was reused) and is ignored.
declare -A CMD_MARK=([rabbitmq]=rabbitmq [kafka]=kafka.Kafka [sqs]=org.elasticmq.server.Main
	[pubsub]=pstest-server [redis]=redis-server [postgres]=postgres)

RABBITMQ_LIB=/usr/lib/rabbitmq/bin

say() { printf '[brokers] %s\n' "$*"; }
warn() { printf '[brokers] %s\n' "$*" >&2; }
die() {
	warn "error: $*"
	exit 1
}

# env_var SERVICE: the variable tests read the service's endpoint from.
env_var() {
	case "$1" in
	rabbitmq) echo COURIER_RABBITMQ_URL ;;
	kafka) echo COURIER_KAFKA_BROKERS ;;
	sqs) echo COURIER_SQS_ENDPOINT ;;
	pubsub) echo COURIER_PUBSUB_EMULATOR_HOST ;;
	redis) echo COURIER_REDIS_URL ;;
	postgres) echo COURIER_POSTGRES_URL ;;
	esac
}

# endpoint SERVICE: the endpoint up.sh serves.
endpoint() {
	case "$1" in
	rabbitmq) echo "amqp://guest:guest@$HOST:$RABBITMQ_PORT/" ;;
	kafka) echo "$HOST:$KAFKA_PORT" ;;
	sqs) echo "http://$HOST:$SQS_PORT" ;;
	pubsub) echo "$HOST:$PUBSUB_PORT" ;;
	redis) echo "redis://$HOST:$REDIS_PORT/0" ;;
	postgres) echo "postgres://postgres:$POSTGRES_PASSWORD@$HOST:$POSTGRES_PORT/$POSTGRES_DB?sslmode=disable" ;;
	esac
}

is_service() {
	local s
	for s in "${ALL_SERVICES[@]}"; do [[ $s == "$1" ]] && return 0; done
	return 1
}

# parse_services ARGS...: sets SERVICES to the named services (all if none),
# in the canonical order, without duplicates.
parse_services() {
	local a s
	for a in "$@"; do
		is_service "$a" || die "unknown service '$a' (known: ${ALL_SERVICES[*]})"
	done
	SERVICES=()
	for s in "${ALL_SERVICES[@]}"; do
		if (($# == 0)); then
			SERVICES+=("$s")
			continue
		fi
		for a in "$@"; do
			if [[ $a == "$s" ]]; then
				SERVICES+=("$s")
				break
			fi
		done
	done
}

# pg_bindir: the newest installed PostgreSQL's bin directory.
pg_bindir() {
	local d
	# shellcheck disable=SC2012 # version directories are plain numbers
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
	[[ -n $d && -x $d/initdb && -x $d/pg_ctl ]] || return 1
	echo "$d"
}

log_of() { echo "$B/logs/$1.log"; }
pid_file() { echo "$B/run/$1.pid"; }

# proc_alive PID: the process exists and is not a zombie. (A zombie main
# thread with other threads still running counts as alive.)
proc_alive() {
	local pid=$1 stat state tasks
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
	state=${stat##*) }
	state=${state%% *}
	[[ $state != Z && $state != X ]] && return 0
	tasks=(/proc/"$pid"/task/*)
	((${#tasks[@]} > 1))
}

# service_pid SERVICE: prints the pid of the process up.sh started for the
# service and succeeds, if that process is still alive.
service_pid() {
	local f pid
	f=$(pid_file "$1")
	[[ -s $f ]] || return 1
	pid=$(head -n1 "$f")
	proc_alive "$pid" || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "${CMD_MARK[$1]}" || return 1
	echo "$pid"
}

# rotate_log FILE: keeps logs from growing without bound across restarts.
rotate_log() {
	local f=$1
	if [[ -f $f ]] && (($(stat -c %s "$f") > 50 * 1024 * 1024)); then
		mv -f "$f" "$f.1"
	fi
}

# start_bg SERVICE COMMAND...: starts COMMAND detached (own session, output to
# the service's log, no stdin, lock fd closed) and records its pid.
start_bg() {
	local svc=$1 log
	shift
	log=$(log_of "$svc")
	rotate_log "$log"
	printf '\n===== %s: up.sh starting %s =====\n' "$(date -Is)" "$svc" >>"$log"
	setsid "$@" >>"$log" 2>&1 </dev/null 9>&- &
	echo $! >"$(pid_file "$svc")"
}

# brokercheck ARGS...: runs the readiness checker against the endpoints up.sh
# serves, whatever COURIER_* variables the caller has set.
brokercheck() {
	env -u COURIER_RABBITMQ_URL -u COURIER_KAFKA_BROKERS -u COURIER_SQS_ENDPOINT \
		-u COURIER_PUBSUB_EMULATOR_HOST -u COURIER_REDIS_URL -u COURIER_POSTGRES_URL \
		"$B/bin/brokercheck" "$@"
}

# take_lock: one up.sh/down.sh at a time per .brokers directory.
take_lock() {
	mkdir -p "$B"
	exec 9>"$B/.lock"
	if ! flock -w 600 9; then
		die "another up.sh/down.sh holds $B/.lock for more than 10 minutes"
	fi
}

# write_env: probes every service and writes .brokers/env with the variables
# of those that answer (so tests of a service that is down skip, not fail).
write_env() {
	local up s tmp="$B/env.tmp"
	if [[ ! -x $B/bin/brokercheck ]]; then
		rm -f "$B/env"
		return
	fi
	up=$(brokercheck -probe -attempt-timeout 3s "${ALL_SERVICES[@]}" || true)
	{
		echo "# Written by integration/brokers/up.sh (and down.sh) on $(date -Is)."
		echo "# Source it before 'go test': set -a; . .brokers/env; set +a"
		echo "export COURIER_BROKERS_DIR='$B'"
		for s in "${ALL_SERVICES[@]}"; do
			if grep -qx "$s" <<<"$up"; then
				echo "export $(env_var "$s")='$(endpoint "$s")'"
			else
				echo "# $(env_var "$s") not set: $s is not answering"
			fi
		done
		if grep -qx rabbitmq <<<"$up" && [[ -x $B/bin/rabbitmqctl ]]; then
			echo "export COURIER_RABBITMQCTL='$B/bin/rabbitmqctl'"
		fi
	} >"$tmp"
	mv -f "$tmp" "$B/env"
}
