#!/usr/bin/env bash
# Runs every example twice in a row on every broker and prints one line per run:
#   <example> <broker> run<N> PASS|FAIL <seconds>s
# Brokers come from .brokers/env (set -a; . .brokers/env; set +a) or the environment:
# COURIER_RABBITMQ_URL, COURIER_KAFKA_BROKERS, COURIER_SQS_ENDPOINT,
# COURIER_PUBSUB_EMULATOR_HOST, COURIER_REDIS_URL (the store for idempotency/ordering).
# A broker whose variable is unset is skipped. Options (environment):
#   EXAMPLES="quickstart ordering"  BROKERS="memory kafka"  TIMEOUT=120  RUNS=2  LOGDIR=dir
# Exit status: 0 when every run passed, 1 otherwise. Failed runs' output is kept in LOGDIR.
set -u
cd "$(dirname "$0")/.."
if [[ -f .brokers/env ]]; then set -a; . .brokers/env; set +a; fi
examples=${EXAMPLES:-$(cd examples && for d in */; do [[ -f $d/main.go ]] && echo "${d%/}"; done)}
brokers=${BROKERS:-memory rabbitmq kafka sqs pubsub}
timeout=${TIMEOUT:-120}
runs=${RUNS:-2}
logdir=${LOGDIR:-$(mktemp -d)}
bindir=$(mktemp -d)
mkdir -p "$logdir"
url_for() {
	case $1 in
	memory) echo "memory://" ;;
	rabbitmq) [[ -n ${COURIER_RABBITMQ_URL:-} ]] && echo "$COURIER_RABBITMQ_URL" ;;
	kafka) [[ -n ${COURIER_KAFKA_BROKERS:-} ]] && echo "kafka://${COURIER_KAFKA_BROKERS}" ;;
	sqs) [[ -n ${COURIER_SQS_ENDPOINT:-} ]] && echo "sqs://?endpoint=${COURIER_SQS_ENDPOINT}&region=us-east-1" ;;
	pubsub) [[ -n ${COURIER_PUBSUB_EMULATOR_HOST:-} ]] && echo "gcppubsub://courier-examples?endpoint=${COURIER_PUBSUB_EMULATOR_HOST}" ;;
	esac
}
failed=0
for ex in $examples; do
	bin=$bindir/$ex
	if ! go build -o "$bin" "./examples/$ex" 2>"$logdir/$ex.build.log"; then
		echo "$ex build FAIL (see $logdir/$ex.build.log)"
		failed=1
		continue
	fi
	for b in $brokers; do
		url=$(url_for "$b") || true
		if [[ -z $url ]]; then
			echo "$ex $b SKIP (broker not configured)"
			continue
		fi
		for ((i = 1; i <= runs; i++)); do
			log=$logdir/$ex.$b.$i.log
			start=$(date +%s.%N)
			COURIER_URL=$url COURIER_STORE_URL=${COURIER_REDIS_URL:-} \
				timeout "$timeout" "$bin" >"$log" 2>&1
			rc=$?
			secs=$(echo "$(date +%s.%N) - $start" | bc)
			if ((rc == 0)); then
				printf '%-12s %-9s run%d PASS %6.1fs\n' "$ex" "$b" "$i" "$secs"
				rm -f "$log"
			else
				printf '%-12s %-9s run%d FAIL %6.1fs rc=%d (%s)\n' "$ex" "$b" "$i" "$secs" "$rc" "$log"
				failed=1
			fi
		done
	done
done
rm -rf "$bindir"
exit $failed
