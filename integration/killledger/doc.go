// Package killledger holds the consumer-kill ledger test (build tag integration): on every
// broker adapter, 10,000 keyed messages are published, and a consumer process — the test
// binary started again as a child — handles them while the test kills it with SIGKILL three
// times and starts it again. Each handling appends one line to a ledger file before the
// handler returns, so the ledger is what the handler saw, whatever happened to the
// acknowledgement afterwards. The test then counts:
//
//   - lost: published messages never handled (an acknowledgement without a handling);
//   - duplicates: handlings beyond the first (at-least-once redelivery after a kill);
//   - order violations: keys whose messages were first handled out of publish order.
//
// It runs twice per broker, without and with the idempotency middleware (Redis store): lost
// and order violations must be 0 both times; duplicates are reported, not asserted (a kill
// between the handler's effect and the idempotency "done" mark repeats the effect — that
// window is what the exactly-once outbox closes).
//
// Run it with `make integration`, or alone:
//
//	set -a; . .brokers/env; set +a
//	go test -tags integration -run TestKillLedger -v ./integration/killledger/
//
// COURIER_KILL_MESSAGES overrides the message count (default 10000).
package killledger
