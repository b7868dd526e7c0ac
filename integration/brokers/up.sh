#!/usr/bin/env bash
# Usage: bash integration/brokers/up.sh [service...]
#
# Installs (if missing), starts (if not already answering) and waits for the
# brokers the integration tests use, all on 127.0.0.1 and without Docker:
#
#   rabbitmq  Debian rabbitmq-server (3.10), amqp://guest:guest@127.0.0.1:5672/,
#             rabbitmq_consistent_hash_exchange enabled
#   kafka     Apache Kafka (KRaft, single node) from Maven Central, 127.0.0.1:9092
#   sqs       ElasticMQ from Maven Central, http://127.0.0.1:9324 (AWS JSON protocol)
#   pubsub    pstest (cloud.google.com/go/pubsub/v2/pstest) served over gRPC, 127.0.0.1:8085
#   redis     Debian redis-server, redis://127.0.0.1:6379/0
#   postgres  Debian postgresql, postgres://postgres:postgres@127.0.0.1:5432/courier
#
# Default: all six. Idempotent: a second run reuses what answers and takes a
# few seconds. State, logs and downloads go to .brokers/ at the repository
# root; the Maven cache (~/.m2) and Go caches are reused between runs. At the
# end it prints the COURIER_* variables the tests read and writes them to
# .brokers/env (sourceable). Stop with integration/brokers/down.sh.
#
# Needs: bash, Go (to build two small commands), apt-get (as root or through
# sudo) for whatever is missing among rabbitmq-server, redis-server,
# postgresql, a JRE and Maven.
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

T0=$SECONDS
take_lock
mkdir -p "$B/bin" "$B/run" "$B/logs"

wants() {
	local s
	for s in "${SERVICES[@]}"; do [[ $s == "$1" ]] && return 0; done
	return 1
}

# ---------------------------------------------------------------- install

apt_install() {
	(($# > 0)) || return 0
	local log="$B/logs/apt.log" rc=0 guard='' SUDO=()
	if (($(id -u) != 0)); then
		command -v sudo >/dev/null || die "not root and no sudo: cannot apt-get install $*"
		SUDO=(sudo)
	fi
	say "installing with apt-get: $*"
	# Debian starts services on install where no policy says otherwise: keep
	# the system instances from taking our ports.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
		"${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
		guard=1
	fi
	local apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q
		-o DPkg::Lock::Timeout=300 install --no-install-recommends "$@")
	if ! "${apt[@]}" >"$log" 2>&1; then
		say "apt-get install failed; running apt-get update and retrying"
		{ "${SUDO[@]}" apt-get -q -o DPkg::Lock::Timeout=300 update && "${apt[@]}"; } >>"$log" 2>&1 || rc=$?
	fi
	[[ -n $guard ]] && "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
	if ((rc != 0)); then
		tail -n 30 "$log" >&2
		die "apt-get install $* failed (log: $log)"
	fi
}

install_packages() {
	local pkgs=()
	if wants rabbitmq && [[ ! -x $RABBITMQ_LIB/rabbitmq-server ]]; then pkgs+=(rabbitmq-server); fi
	if wants redis && ! command -v redis-server >/dev/null; then pkgs+=(redis-server); fi
	if wants postgres && ! pg_bindir >/dev/null; then pkgs+=(postgresql); fi
	if wants kafka || wants sqs; then
		command -v java >/dev/null || pkgs+=(default-jre-headless)
		command -v mvn >/dev/null || pkgs+=(maven)
	fi
	apt_install "${pkgs[@]}"
	# util-linux (setsid, flock, runuser) is part of every Debian system.
}

# maven_fetch NAME STAMP DEPENDENCIES_XML: resolves the dependencies with their
# runtime closure into .brokers/NAME/lib, once per STAMP.
maven_fetch() {
	local name=$1 stamp=$2 deps=$3 dir="$B/$1" log="$B/logs/maven-$1.log"
	if [[ -f $dir/lib/.stamp && $(cat "$dir/lib/.stamp") == "$stamp" ]]; then
		return 0
	fi
	say "downloading $stamp and its dependencies from Maven Central"
	mkdir -p "$dir"
	cat >"$dir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <!-- Throwaway pom written by integration/brokers/up.sh to fetch jars. -->
  <modelVersion>4.0.0</modelVersion>
  <groupId>courier.brokers</groupId>
  <artifactId>$name-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
$deps
  </dependencies>
</project>
EOF
	rm -rf "$dir/lib.tmp"
	if ! mvn -B -q -f "$dir/pom.xml" "$MAVEN_DEPENDENCY_PLUGIN:copy-dependencies" \
		-DoutputDirectory="$dir/lib.tmp" -DincludeScope=runtime >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "maven could not fetch $stamp (log: $log)"
	fi
	echo "$stamp" >"$dir/lib.tmp/.stamp"
	rm -rf "${dir:?}/lib"
	mv "$dir/lib.tmp" "$dir/lib"
}

fetch_jars() {
	if wants kafka; then
		maven_fetch kafka "kafka_2.13-$KAFKA_VERSION" "
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>$SLF4J_VERSION</version></dependency>"
	fi
	if wants sqs; then
		maven_fetch elasticmq "elasticmq-server_2.13-$ELASTICMQ_VERSION" "
    <dependency><groupId>org.elasticmq</groupId><artifactId>elasticmq-server_2.13</artifactId><version>$ELASTICMQ_VERSION</version></dependency>"
	fi
}

find_go() {
	if command -v go >/dev/null; then
		command -v go
	elif [[ -x /usr/local/go/bin/go ]]; then
		echo /usr/local/go/bin/go
	else
		return 1
	fi
}

# go_build NAME: builds integration/brokers/cmd/NAME into .brokers/bin when
# missing or older than its sources or go.mod/go.sum.
go_build() {
	local name=$1 bin="$B/bin/$1" go log="$B/logs/go-build.log"
	if [[ -x $bin ]] && [[ -z $(find "$BROKERS_SRC/cmd/$name" "$REPO_ROOT/go.mod" "$REPO_ROOT/go.sum" \
		-newer "$bin" -print -quit) ]]; then
		return 0
	fi
	go=$(find_go) || die "Go is needed to build $name (integration/brokers/cmd/$name) and is not on PATH"
	say "building $name"
	if ! (cd "$REPO_ROOT" && "$go" build -o "$bin.tmp" "./integration/brokers/cmd/$name") >"$log" 2>&1; then
		cat "$log" >&2
		die "go build of integration/brokers/cmd/$name failed"
	fi
	mv -f "$bin.tmp" "$bin"
}

# ---------------------------------------------------------------- start

start_rabbitmq() {
	local d="$B/rabbitmq"
	mkdir -p "$d/home" "$d/mnesia" "$d/log"
	# The Erlang cookie lives in $HOME of both the node and rabbitmqctl: a
	# private HOME under .brokers keeps them in agreement.
	if [[ ! -s $d/home/.erlang.cookie ]]; then
		(umask 077 && head -c 30 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/home/.erlang.cookie")
	fi
	chmod 400 "$d/home/.erlang.cookie"
	echo '[rabbitmq_consistent_hash_exchange].' >"$d/enabled_plugins"
	cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.default = $HOST:$RABBITMQ_PORT
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.console = true
log.console.level = info
log.file = false
EOF
	: >"$d/rabbitmq-env.conf"
	cat >"$d/rabbitmq.env" <<EOF
# Environment of the RabbitMQ node started by up.sh; rabbitmqctl needs it too.
export HOME='$d/home'
export RABBITMQ_NODENAME=courier@localhost
export RABBITMQ_USE_LONGNAME=false
export RABBITMQ_NODE_IP_ADDRESS=$HOST
export RABBITMQ_NODE_PORT=$RABBITMQ_PORT
export RABBITMQ_DIST_PORT=$RABBITMQ_DIST_PORT
export ERL_EPMD_ADDRESS=$HOST
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
export RABBITMQ_MNESIA_BASE='$d/mnesia'
export RABBITMQ_LOG_BASE='$d/log'
export RABBITMQ_ENABLED_PLUGINS_FILE='$d/enabled_plugins'
export RABBITMQ_CONFIG_FILE='$d/rabbitmq.conf'
export RABBITMQ_ADVANCED_CONFIG_FILE='$d/advanced.config'
export RABBITMQ_CONF_ENV_FILE='$d/rabbitmq-env.conf'
export RABBITMQ_PID_FILE='$d/beam.pid'
EOF
	cat >"$B/bin/rabbitmqctl" <<EOF
#!/bin/sh
# rabbitmqctl for the node started by integration/brokers/up.sh
. '$d/rabbitmq.env'
exec '$RABBITMQ_LIB/rabbitmqctl' "\$@"
EOF
	chmod 755 "$B/bin/rabbitmqctl"

	if pid=$(service_pid rabbitmq); then
		# The node runs but AMQP does not answer: most likely a test stopped
		# the app (rabbitmqctl stop_app). Start it again.
		say "rabbitmq  node running (pid $pid) but not answering: rabbitmqctl start_app"
		timeout 120 "$B/bin/rabbitmqctl" -q start_app >>"$(log_of rabbitmq)" 2>&1 || true
		return 0
	fi
	# epmd (Erlang's port mapper) is started by the first Erlang node; remember
	# whether that is ours so that down.sh stops it too.
	if ! ERL_EPMD_ADDRESS=$HOST epmd -names >/dev/null 2>&1; then
		touch "$d/epmd.ours"
	fi
	(
		# shellcheck source=/dev/null
		. "$d/rabbitmq.env"
		start_bg rabbitmq "$RABBITMQ_LIB/rabbitmq-server"
	)
}

start_kafka() {
	local d="$B/kafka"
	mkdir -p "$d/data"
	cat >"$d/server.properties" <<EOF
# Single-node KRaft Kafka written by integration/brokers/up.sh
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$d/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
log.flush.interval.messages=9223372036854775807
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
EOF
	cat >"$d/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.kafka.controller=INFO
EOF
	if pid=$(service_pid kafka); then
		say "kafka     already starting (pid $pid)"
		return 0
	fi
	local java=(java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
		-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
		"-Dlog4j.configuration=file:$d/log4j.properties" -cp "$d/lib/*")
	if [[ ! -f $d/data/meta.properties ]]; then
		local id
		# A cluster id is 16 random bytes in URL-safe base64 without padding.
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		if ! "${java[@]}" kafka.tools.StorageTool format -t "$id" -c "$d/server.properties" \
			>>"$(log_of kafka)" 2>&1; then
			tail -n 20 "$(log_of kafka)" >&2
			die "kafka storage format failed"
		fi
	fi
	start_bg kafka "${java[@]}" kafka.Kafka "$d/server.properties"
}

start_sqs() {
	local d="$B/elasticmq"
	mkdir -p "$d"
	cat >"$d/elasticmq.conf" <<EOF
# ElasticMQ written by integration/brokers/up.sh
include classpath("application.conf")
node-address {
  protocol = http
  host = $HOST
  port = $SQS_PORT
  context-path = ""
}
rest-sqs {
  enabled = true
  bind-port = $SQS_PORT
  bind-hostname = "$HOST"
  sqs-limits = strict
}
rest-stats {
  enabled = false
}
generate-node-address = false
aws {
  region = us-east-1
  accountId = 000000000000
}
EOF
	if pid=$(service_pid sqs); then
		say "sqs       already starting (pid $pid)"
		return 0
	fi
	# ElasticMQ keeps every message on its heap: at 256 MiB a benchmark run's queues (a few
	# hundred thousand messages) ended it with OutOfMemoryError and, before that, made its
	# throughput swing by a third from GC pressure. 1 GiB of the machine's 24 is ample.
	start_bg sqs java -Xms512m -Xmx1g -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
		"-Dconfig.file=$d/elasticmq.conf" -cp "$d/lib/*" org.elasticmq.server.Main
}

start_pubsub() {
	if pid=$(service_pid pubsub); then
		say "pubsub    already starting (pid $pid)"
		return 0
	fi
	start_bg pubsub "$B/bin/pstest-server" -addr "$HOST:$PUBSUB_PORT"
}

start_redis() {
	mkdir -p "$B/redis"
	if pid=$(service_pid redis); then
		say "redis     already starting (pid $pid)"
		return 0
	fi
	start_bg redis redis-server --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes \
		--dir "$B/redis" --daemonize no --save '' --appendonly no --logfile ''
}

# PostgreSQL refuses to run as root: as root it runs as the postgres user,
# which must be able to reach its data directory.
pg_as() {
	if (($(id -u) == 0)); then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_base() {
	local base="$B/postgres"
	if (($(id -u) == 0)); then
		mkdir -p "$base"
		chown postgres: "$base"
		if ! runuser -u postgres -- test -w "$base"; then
			# A parent of the repository is closed to other users (e.g. under
			# /root): keep the cluster in /var/tmp instead, linked from .brokers.
			base="/var/tmp/courier-brokers-$(printf '%s' "$B" | md5sum | cut -c1-12)/postgres"
			mkdir -p "$base"
			chown postgres: "$base" "$(dirname "$base")"
			echo "$base" >"$B/postgres/.moved-to"
		fi
	fi
	echo "$base"
}

start_postgres() {
	local bindir base data log
	bindir=$(pg_bindir) || die "PostgreSQL binaries not found under /usr/lib/postgresql"
	base=$(pg_base)
	data="$base/data"
	log=$(log_of postgres)
	mkdir -p "$base/run"
	rotate_log "$log"
	touch "$log"
	if (($(id -u) == 0)); then chown postgres: "$base/run" "$log"; fi

	if [[ ! -f $data/PG_VERSION ]]; then
		local pw="$base/pwfile"
		rm -rf "$data"
		(umask 077 && echo "$POSTGRES_PASSWORD" >"$pw")
		if (($(id -u) == 0)); then chown postgres: "$pw"; fi
		if ! pg_as "$bindir/initdb" -D "$data" -U postgres --pwfile="$pw" -E UTF8 --no-locale \
			--auth-local=trust --auth-host=scram-sha-256 >>"$log" 2>&1; then
			rm -f "$pw"
			tail -n 20 "$log" >&2
			die "initdb failed"
		fi
		rm -f "$pw"
		cat >>"$data/postgresql.conf" <<EOF

# Added by integration/brokers/up.sh: loopback only, tuned for tests (no
# durability across an OS crash).
listen_addresses = '$HOST'
port = $POSTGRES_PORT
unix_socket_directories = '$base/run'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
EOF
	fi
	if ! pg_as "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		printf '\n===== %s: up.sh starting postgres =====\n' "$(date -Is)" >>"$log"
		if ! pg_as "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null 2>&1 9>&-; then
			tail -n 30 "$log" >&2
			warn "pg_ctl start failed (log: $log)"
			return 0 # the readiness wait reports the failure
		fi
	fi
	head -n1 "$data/postmaster.pid" >"$(pid_file postgres)"
	if ! pg_as "$bindir/psql" -h "$base/run" -p "$POSTGRES_PORT" -U postgres -d postgres -Atqc \
		"SELECT 1 FROM pg_database WHERE datname = '$POSTGRES_DB'" 2>>"$log" | grep -qx 1; then
		pg_as "$bindir/createdb" -h "$base/run" -p "$POSTGRES_PORT" -U postgres "$POSTGRES_DB" >>"$log" 2>&1 ||
			warn "createdb $POSTGRES_DB failed (log: $log)"
	fi
}

# ---------------------------------------------------------------- main

t=$SECONDS
install_packages
fetch_jars
go_build brokercheck
if wants pubsub; then go_build pstest-server; fi
if ((SECONDS - t > 0)); then say "installs and builds took $((SECONDS - t))s"; fi

# What answers already is reused, whoever started it.
answering=$(brokercheck -probe -attempt-timeout 3s "${SERVICES[@]}" || true)
declare -A STARTED=()
for s in "${SERVICES[@]}"; do
	if grep -qx "$s" <<<"$answering"; then
		say "$(printf '%-9s' "$s") already answering at $(endpoint "$s")"
		continue
	fi
	"start_$s"
	STARTED[$s]=$SECONDS
done

# wait_ready SERVICE: waits until the service answers a real request, giving
# up early if its process exits. Sets WAIT_ERR on failure.
wait_ready() {
	local s=$1 deadline=$((SECONDS + READY_TIMEOUT[$1])) out
	WAIT_ERR=
	while :; do
		if out=$(brokercheck -q -wait 3s -attempt-timeout 3s "$s" 2>&1); then
			return 0
		fi
		WAIT_ERR=${out##*$'\n'}
		if ! service_pid "$s" >/dev/null; then
			sleep 1
			brokercheck -q -attempt-timeout 2s "$s" >/dev/null 2>&1 && return 0
			WAIT_ERR="its process exited; last answer: $WAIT_ERR"
			return 1
		fi
		if ((SECONDS >= deadline)); then
			WAIT_ERR="no answer within ${READY_TIMEOUT[$s]}s; last answer: $WAIT_ERR"
			return 1
		fi
	done
}

failed=()
for s in "${SERVICES[@]}"; do
	[[ -n ${STARTED[$s]:-} ]] || continue
	if wait_ready "$s"; then
		pid=$(service_pid "$s" || echo '?')
		say "$(printf '%-9s' "$s") started (pid $pid), answering at $(endpoint "$s") after $((SECONDS - STARTED[$s]))s"
	else
		warn "$(printf '%-9s' "$s") FAILED: $WAIT_ERR"
		warn "last lines of $(log_of "$s"):"
		tail -n 40 "$(log_of "$s")" 2>/dev/null | sed 's/^/    /' >&2 || true
		failed+=("$s")
	fi
done

write_env
say "environment (also in $B/env):"
grep '^export' "$B/env" | sed 's/^export /    /'
say "done in $((SECONDS - T0))s"
if ((${#failed[@]} > 0)); then
	die "not answering: ${failed[*]}"
fi
