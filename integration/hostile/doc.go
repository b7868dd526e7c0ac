// Package hostile holds the bad-input matrix: messages a plain (non-Courier) producer or an
// attacker could write — malformed and oversized headers, IDs and keys, forged ordering
// stamps, tampered ciphertexts, schema violations that quote payload data, payloads at the
// broker's size limit — published with each broker's own client into topics that a Courier
// subscriber with the full recommended middleware chain reads.
//
// The ledger the test keeps says, for every case: handled by the handler, or dead-lettered with
// a reason, or refused by the broker at publish (nothing to consume). A case that ends none of
// these ways within the timeout is stuck, or was acknowledged unhandled; either fails the
// test. No dead-letter header and no log line may contain the secret marker planted in the
// plaintext of every payload.
//
// The memory:// run is part of `make test`; the runs on RabbitMQ, Kafka, SQS (FIFO) and
// Pub/Sub are in `make integration` (build tag integration).
package hostile
