#!/usr/bin/env bash
# Usage: bash integration/brokers/down.sh [service...]
#
# Stops the brokers that integration/brokers/up.sh started (default: all six),
# found through their pid files under .brokers/run. Anything up.sh merely
# reused (it already answered) is left alone. Data stays in .brokers/ (Kafka
# topics, PostgreSQL databases, RabbitMQ durable queues; not ElasticMQ's or
# pstest's, which are in memory); remove .brokers/ for a clean slate.
# Rewrites .brokers/env to list only what still answers.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
-h | --help)
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac
parse_services "$@"
take_lock

# wait_gone PID SECONDS: waits for the process to exit.
wait_gone() {
	local pid=$1 deadline=$((SECONDS + $2))
	while proc_alive "$pid"; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

# stop_pid SERVICE PID: SIGTERM, then SIGKILL after a grace period.
stop_pid() {
	local svc=$1 pid=$2
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_gone "$pid" 60; then
		warn "$svc (pid $pid) ignored SIGTERM for 60s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" 10 || warn "$svc (pid $pid) is still there"
	fi
}

stop_rabbitmq() {
	local pid=$1 d="$B/rabbitmq"
	timeout 60 "$B/bin/rabbitmqctl" -q stop >/dev/null 2>&1 || true
	if ! wait_gone "$pid" 30; then
		stop_pid rabbitmq "$pid"
	fi
	if [[ -f $d/epmd.ours ]]; then
		ERL_EPMD_ADDRESS=$HOST epmd -kill >/dev/null 2>&1 || true
		rm -f "$d/epmd.ours"
	fi
}

stop_postgres() {
	local pid=$1 base="$B/postgres" bindir
	[[ -f $base/.moved-to ]] && base=$(cat "$base/.moved-to")
	bindir=$(pg_bindir) || bindir=/usr/lib/postgresql/15/bin
	local ctl=("$bindir/pg_ctl" -D "$base/data" -m fast -w -t 60 stop)
	if (($(id -u) == 0)); then ctl=(runuser -u postgres -- "${ctl[@]}"); fi
	"${ctl[@]}" >/dev/null 2>&1 || stop_pid postgres "$pid"
}

for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
	s=${SERVICES[i]}
	if ! pid=$(service_pid "$s"); then
		say "$(printf '%-9s' "$s") not running (nothing up.sh started)"
		rm -f "$(pid_file "$s")"
		continue
	fi
	case "$s" in
	rabbitmq) stop_rabbitmq "$pid" ;;
	postgres) stop_postgres "$pid" ;;
	*) stop_pid "$s" "$pid" ;;
	esac
	rm -f "$(pid_file "$s")"
	say "$(printf '%-9s' "$s") stopped (was pid $pid)"
done

write_env
