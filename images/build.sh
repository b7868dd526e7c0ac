#!/usr/bin/env bash
# Usage: bash images/build.sh [-f|--force] [service...]
#
# Builds local Docker images of the brokers for the container path of the
# integration tests (integration/brokers/containers.go), without any image
# registry: the base is a Debian bookworm made with debootstrap and loaded with
# `docker import`; each broker comes from the same source as the native path
# (integration/brokers/up.sh): Debian packages for RabbitMQ, Redis and
# PostgreSQL, Maven Central jars for Kafka and ElasticMQ, and the pstest server
# built from integration/brokers/cmd/pstest-server.
#
#   courier/base:bookworm      debootstrap --variant=minbase bookworm
#   courier/jre:bookworm       + default-jre-headless (Kafka, ElasticMQ)
#   courier/rabbitmq:local     COURIER_RABBITMQ_IMAGE
#   courier/kafka:local        COURIER_KAFKA_IMAGE
#   courier/elasticmq:local    COURIER_SQS_IMAGE
#   courier/pubsub:local       COURIER_PUBSUB_IMAGE
#   courier/redis:local        COURIER_REDIS_IMAGE
#   courier/postgres:local     COURIER_POSTGRES_IMAGE
#
# Services: rabbitmq kafka sqs pubsub redis postgres (default: all). An image
# that exists is kept unless --force is given (then the named ones, and the
# base images, are rebuilt). Kafka and ElasticMQ reuse the native path's jars
# (.brokers/kafka/lib, .brokers/elasticmq/lib) when their version matches, and
# download them with Maven inside the build otherwise.
#
# Needs: a Docker engine that answers, debootstrap (apt-get install
# debootstrap; only for the base image), Go (for pstest-server), network
# access to deb.debian.org and Maven Central (the machine's local CAs in
# /usr/local/share/ca-certificates are copied into the base image). Builds use the host's network
# (docker build --network host), so no bridge is needed.
set -euo pipefail

IMAGES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../integration/brokers/lib.sh
. "$IMAGES_DIR/../integration/brokers/lib.sh"

BASE=courier/base:bookworm
JRE=courier/jre:bookworm
declare -A IMAGE=([rabbitmq]=courier/rabbitmq:local [kafka]=courier/kafka:local
	[sqs]=courier/elasticmq:local [pubsub]=courier/pubsub:local
	[redis]=courier/redis:local [postgres]=courier/postgres:local)
declare -A DIR=([rabbitmq]=rabbitmq [kafka]=kafka [sqs]=elasticmq [pubsub]=pubsub
	[redis]=redis [postgres]=postgres)

say() { printf '[images] %s\n' "$*"; }

force=
args=()
for a in "$@"; do
	case $a in
	-f | --force) force=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) args+=("$a") ;;
	esac
done
parse_services "${args[@]}"

docker info >/dev/null 2>&1 ||
	die "no Docker engine answers (docker info failed): start one, e.g. as root: setsid dockerd --iptables=false --bridge=none >/var/log/dockerd.log 2>&1 &"

have() { [[ -z $force ]] && docker image inspect "$1" >/dev/null 2>&1; }

LOGS="$B/logs"
mkdir -p "$LOGS"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# build IMAGE CONTEXT [docker build args...]: logs to .brokers/logs/image-*.log.
build() {
	local image=$1 ctx=$2 log t=$SECONDS
	shift 2
	log="$LOGS/image-$(basename "${image%%:*}").log"
	say "building $image (log: $log)"
	if ! docker build --network host -t "$image" "$@" "$ctx" >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "docker build of $image failed (log: $log)"
	fi
	say "built $image in $((SECONDS - t))s"
}

build_base() {
	have "$BASE" && return 0
	command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
	local root="$WORK/rootfs" t=$SECONDS log="$LOGS/image-debootstrap.log"
	say "debootstrap --variant=minbase bookworm (log: $log)"
	if ! debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "debootstrap failed (log: $log)"
	fi
	# No service starts on package installation inside images; apt keeps no cache.
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
	# Certificate authorities this machine trusts locally (an HTTPS proxy's, say) are trusted
	# in the images too: Maven Central is reached over HTTPS. The ca-certificates package,
	# installed with the JRE, picks them up.
	if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
		mkdir -p "$root/usr/local/share/ca-certificates"
		cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
	fi
	tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
	rm -rf "$root"
	say "imported $BASE in $((SECONDS - t))s"
}

# jar_context NAME STAMP DEPS: a build context with pom.xml and lib/ (the
# native download when its stamp matches, else empty for the fetch stage).
jar_context() {
	local name=$1 stamp=$2 deps=$3 ctx="$WORK/$1"
	mkdir -p "$ctx/lib"
	cp -r "$IMAGES_DIR/$name/." "$ctx/"
	cat >"$ctx/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <!-- Throwaway pom written by images/build.sh to fetch jars. -->
  <modelVersion>4.0.0</modelVersion>
  <groupId>courier.images</groupId>
  <artifactId>$name-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
$deps
  </dependencies>
</project>
EOF
	if [[ -f $B/$name/lib/.stamp && $(cat "$B/$name/lib/.stamp") == "$stamp" ]]; then
		say "$name: reusing the native path's jars ($B/$name/lib)" >&2
		cp -r "$B/$name/lib/." "$ctx/lib/"
	else
		say "$name: jars will be downloaded from Maven Central during the build" >&2
	fi
	echo "$ctx"
}

build_image() {
	local s=$1 ctx go
	have "${IMAGE[$s]}" && return 0
	case $s in
	kafka | sqs) build_jre ;;
	esac
	case $s in
	kafka)
		ctx=$(jar_context kafka "kafka_2.13-$KAFKA_VERSION" "
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>$SLF4J_VERSION</version></dependency>")
		build "${IMAGE[$s]}" "$ctx" --build-arg "MAVEN_DEPENDENCY_PLUGIN=$MAVEN_DEPENDENCY_PLUGIN"
		;;
	sqs)
		ctx=$(jar_context elasticmq "elasticmq-server_2.13-$ELASTICMQ_VERSION" "
    <dependency><groupId>org.elasticmq</groupId><artifactId>elasticmq-server_2.13</artifactId><version>$ELASTICMQ_VERSION</version></dependency>")
		build "${IMAGE[$s]}" "$ctx" --build-arg "MAVEN_DEPENDENCY_PLUGIN=$MAVEN_DEPENDENCY_PLUGIN"
		;;
	pubsub)
		ctx="$WORK/pubsub"
		mkdir -p "$ctx"
		cp -r "$IMAGES_DIR/pubsub/." "$ctx/"
		go=$(command -v go || echo /usr/local/go/bin/go)
		say "building pstest-server"
		(cd "$REPO_ROOT" && CGO_ENABLED=0 "$go" build -o "$ctx/pstest-server" ./integration/brokers/cmd/pstest-server) ||
			die "go build of integration/brokers/cmd/pstest-server failed"
		build "${IMAGE[$s]}" "$ctx"
		;;
	*)
		build "${IMAGE[$s]}" "$IMAGES_DIR/${DIR[$s]}"
		;;
	esac
}

jre_built=
build_jre() {
	[[ -n $jre_built ]] && return 0
	jre_built=1
	have "$JRE" || build "$JRE" "$IMAGES_DIR/jre"
}

T0=$SECONDS
build_base
for s in "${SERVICES[@]}"; do
	build_image "$s"
done
for s in "${SERVICES[@]}"; do
	say "$(printf '%-9s' "$s") ${IMAGE[$s]}"
done
say "done in $((SECONDS - T0))s"
