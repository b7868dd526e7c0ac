// Package exactlyonce holds the PostgreSQL kill ledgers and the two-relay-process test (build
// tag integration), beside the consumer-kill ledger of package killledger. The test binary
// starts itself again as child processes; the kill tests kill the child with SIGKILL three
// times at random points:
//
//   - TestExactlyOnceKill: 10,000 keyed messages on RabbitMQ are consumed by a child whose
//     handler, behind the exactlyonce middleware, inserts one row per handling into a ledger
//     table in the middleware's transaction. The ledger has no unique constraint, so a
//     repeated effect would show: every message must appear exactly once (duplicates and
//     losses are counted and must be 0), and each key's rows in publish order.
//   - TestRelayKill: 10,000 rows (50 keys) are written into the outbox in committed
//     transactions, and rolled-back ones in between, while a child relays them to RabbitMQ;
//     the test consumes the queue: no committed row may be lost, no rolled-back row may
//     arrive, each key's first receipts must be in order; duplicates (at-least-once after a
//     kill, same message ID) are reported.
//   - TestTwoRelayProcesses: two relays in separate child processes share one outbox while
//     10,000 rows (and rolled-back ones) are written; with no crash every committed row must
//     reach the broker exactly once (a row sent by both would arrive twice), in key order,
//     and both relays must have sent some. On RabbitMQ, Kafka, SQS (FIFO) and Pub/Sub (2,000
//     rows: the emulator's ordered delivery is slow).
//
// Run it with `make integration`, or alone:
//
//	set -a; . .brokers/env; set +a
//	go test -tags integration -run . -v ./integration/exactlyonce/
//
// COURIER_KILL_MESSAGES overrides the message count (default 10000).
package exactlyonce
