// Package brokers tells integration tests where to find each real broker
// (RabbitMQ, Kafka, SQS, Pub/Sub, Redis, PostgreSQL) and lets restart tests
// stop and start the ones started natively on this machine.
//
// # Finding a broker
//
//	url := brokers.Endpoint(t, brokers.RabbitMQ)
//
// Endpoint looks, in order, at:
//
//  1. the service's variable: COURIER_RABBITMQ_URL, COURIER_KAFKA_BROKERS,
//     COURIER_SQS_ENDPOINT, COURIER_PUBSUB_EMULATOR_HOST, COURIER_REDIS_URL,
//     COURIER_POSTGRES_URL;
//  2. a testcontainers-go container, when a Docker engine answers (images,
//     ports and wait strategies are in containers.go; one container per
//     service and test binary, removed by TerminateAll or, once the binary
//     exits, by the reaper process it starts). COURIER_<SERVICE>_IMAGE
//     (Service.ImageEnvVar) replaces the official image, e.g. with the local
//     builds of `make images`; COURIER_CONTAINER_NETWORK=host (NetworkEnv)
//     runs the containers on the host's network, on ports apart from the
//     native brokers';
//  3. otherwise the test is skipped with a message naming the broker, its
//     variable and how to start it; with COURIER_REQUIRE_BROKERS=1 it fails
//     instead.
//
// # Brokers without Docker
//
// integration/brokers/up.sh installs, starts and waits for all six on
// 127.0.0.1 (or only those named: `up.sh kafka redis`) and writes their
// variables to .brokers/env; down.sh stops what up.sh started:
//
//	make brokers-up                      # or: bash integration/brokers/up.sh [service...]
//	set -a; . .brokers/env; set +a
//	COURIER_REQUIRE_BROKERS=1 go test ./...
//	make brokers-down                    # or: bash integration/brokers/down.sh [service...]
//
// The endpoints are those of NativeEndpoint:
//
//	COURIER_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/          RabbitMQ 3.10 (Debian), consistent hash exchange enabled
//	COURIER_KAFKA_BROKERS=127.0.0.1:9092                              Kafka 3.9 KRaft, auto.create.topics.enable=false
//	COURIER_SQS_ENDPOINT=http://127.0.0.1:9324                        ElasticMQ 1.7 (AWS JSON protocol), region us-east-1, account 000000000000
//	COURIER_PUBSUB_EMULATOR_HOST=127.0.0.1:8085                       pstest over gRPC (any project id)
//	COURIER_REDIS_URL=redis://127.0.0.1:6379/0                        Redis 7 (Debian), no persistence
//	COURIER_POSTGRES_URL=postgres://postgres:postgres@127.0.0.1:5432/courier?sslmode=disable   PostgreSQL 15 (Debian)
//
// .brokers/env also sets COURIER_BROKERS_DIR (the state directory) and
// COURIER_RABBITMQCTL (a rabbitmqctl wrapper bound to the node up.sh runs).
// SQS accepts any static credentials. The Pub/Sub client reads
// PUBSUB_EMULATOR_HOST: a test sets it from COURIER_PUBSUB_EMULATOR_HOST
// (t.Setenv) or passes the endpoint as a client option.
//
// # Restart tests
//
// StopService, StartService and RestartService control a service that up.sh
// started, when the test uses up.sh's endpoint for it; otherwise (a container,
// an endpoint elsewhere) they skip the test, since nothing can be controlled.
// Under COURIER_REQUIRE_BROKERS=1 with .brokers/env sourced, as in
// `make integration`, the native brokers are the ones in use, so restart
// tests run.
//
//	brokers.StopService(t, brokers.Kafka)   // broker down: clients see errors, reconnect loops start
//	...
//	brokers.StartService(t, brokers.Kafka)  // returns once Kafka answers again
//
// What they do, and how to do the same by hand:
//
//   - RabbitMQ: `$COURIER_RABBITMQCTL stop_app` closes every connection and
//     stops listening while the Erlang node stays up; `$COURIER_RABBITMQCTL
//     start_app` brings the broker back within a few seconds, with durable
//     queues and their persistent messages. (.brokers/bin/rabbitmqctl is the
//     same wrapper; plain rabbitmqctl would not find the node's cookie.)
//   - Kafka: `kill $(cat .brokers/run/kafka.pid)` (controlled shutdown, a few
//     seconds), then `bash integration/brokers/up.sh kafka` (about 5-10 s until
//     it answers; topics and committed offsets survive in .brokers/kafka/data).
//   - Redis, SQS, Pub/Sub: the same with their pid files; ElasticMQ and pstest
//     keep state in memory, so queues, topics and subscriptions are gone after
//     a restart.
//   - PostgreSQL: SIGINT to the pid in .brokers/run/postgres.pid (fast
//     shutdown), then up.sh postgres.
//
// A test that stops a service and ends without starting it gets it started
// again by a cleanup, so one failing restart test does not break the rest.
package brokers
