// Package ordering keeps each key's messages in publish order end to end, on brokers and
// deployments that do not: competing consumers on RabbitMQ or SQS standard queues, retries
// and redeliveries, several publishers of one key. One value offers both halves, sharing one
// configuration and store so they cannot drift apart:
//
//	ord, err := ordering.New(ordering.Config{Store: redisstore.New(rdb, redisstore.Options{})})
//	pub := conn.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{ord.Publish()}})
//	sub, err := conn.Subscribe(ctx, "orders", "shipping", transport.SubscriberConfig{
//		Middleware: []message.Middleware{ord.Consume()},
//	})
//
// # Publish half
//
// It derives each message's key (Config.KeyFunc, else Message.Key, else the Config.KeyHeader
// header) and stamps message.HeaderSequence "<seq>@<epoch>": the key's next number from a
// counter in the Store, shared by every publisher instance (Redis INCR in a script, a
// PostgreSQL row upsert … RETURNING, a map under a mutex in memory). One reservation per
// distinct key per batch; a batch's messages of one key get consecutive numbers in batch
// order. It passes copies on and never modifies the caller's messages.
//
// # Consume half
//
// Per sequenced message it asks the Store where the key stands for this subscription:
//
//   - at or past the number: a duplicate (a redelivery, a broker-level duplicate) — acknowledged
//     without calling the handler — unless the key gave up waiting for it (see below);
//   - the next number: claimed (with a lease, so no two consumers handle a key at once),
//     handled, and on success the key advances; on failure the claim is released and the
//     error returned for the engine to retry, while later messages keep waiting;
//   - ahead (an earlier message has not been handled): it waits — see below;
//   - the next number but claimed by someone else: it waits the same way.
//
// # Waiting: a correct design under the engine's constraints
//
// A message must not be acknowledged before it is handled, so "buffering" a waiting message
// cannot mean acknowledging it and keeping a copy. Blocking in the handler would hold the
// engine's lane for the key — and with other keys on the same lane in two instances, two
// blocked lanes can wait for each other. Instead the middleware returns a deferral
// (message.Defer): not a failure, never dead-lettered for it. With OnGap Hold (the default)
// the consumer engine parks the message in the process — unacknowledged, off its lane, the
// worker free — and hands it back after WaitDelay for each message missing before it (at most
// MaxWaitDelay), or at once when the missing message is handled in the same process. The park
// holds what the broker handed out in the order it did, which is what lets two competing
// consumers interleave one key's messages without churn; when the prefetch stays full with
// most of it parked, the engine gives the messages due last back to the broker, so a missing
// message that sits behind them in the broker still arrives. With OnGap Redeliver, every wait
// is a nack with the delay instead (a broker round trip; on SQS at least a second).
//
// # Gaps that never fill
//
// A message can go missing for good: its publish failed after its number was reserved, or it
// was dead-lettered after its retries. Once a key has waited GapTimeout with nobody handling
// the missing number (the clock restarts each time the missing message is seen failing, so
// retries in progress are waited for), OnGapTimeout decides: SkipAhead handles the waiting
// message and continues from it, logging the key and the count skipped; DeadLetter sends the
// waiting message to the dead-letter destination instead (a permanent error naming the gap)
// and continues after it. The key remembers the numbers it gave up on (up to MaxSkipped), so a
// skipped message that arrives after all is not mistaken for a duplicate: SkipAhead handles
// it late, DeadLetter dead-letters it — nothing is acknowledged unhandled. Copies carrying
// the dead-letter or redrive headers (courier-dlq-*, courier-redriven) pass through
// unchecked: they are out of their key's order by nature.
//
// # Design decisions
//
//   - Sequence numbers carry the counter's epoch (the store's clock when the counter was
//     created). Counters and states expire after Retention of disuse; a counter that started
//     again has a greater epoch, which resets the consumers' state instead of making every
//     new message look like a duplicate.
//   - State is per topic, subscription and key, so several consumer groups keep their own
//     order; counters are per topic and key.
//   - Fail closed: a store error makes the message fail with a retryable error; it is never
//     handled out of order because the store was unreachable. A failure to record a handled
//     message (after a retry) is logged and the message acknowledged; its successors then wait
//     up to GapTimeout.
//   - Brokers without redelivery (Kafka) order by partition natively, so gaps there come from
//     producer retries or several publishers; parked messages wait in the process as
//     elsewhere, but the engine cannot give them back to the broker, so a missing message
//     that is not in flight is only resolved by GapTimeout.
//
// # Place in the chain
//
// Consume side, outermost first: ordering → idempotency → decrypt → validate → handler (see
// package chain). Publish side: validate → ordering → encrypt.
package ordering
