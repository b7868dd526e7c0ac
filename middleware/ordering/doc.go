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
//   - of an earlier counter epoch than the key's: stale (the counter expired and started
//     again, and this message outlived it) — dead-lettered with ErrStale, never acknowledged
//     unhandled;
//   - of a newer epoch than the key's: checked against the counter first (see "Forged
//     stamps"), then the key starts over in that epoch;
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
// # Forged stamps: threat model and decision
//
// message.HeaderSequence is a header: anyone who can publish to the topic with a plain client
// can set it to anything. The consume half reads it before decryption (it runs outside the
// decrypt step, see package chain), so it must hold against stamps that are malformed, forged
// or replayed. The asset is the key's consumer state: a stamp that could move it — to a newer
// epoch, or far ahead — would make every real message of the key look stale or duplicate,
// and be acknowledged without reaching the handler.
//
// Decision, three defences together:
//
//  1. The state moves only where the publisher counter vouches for it. Store.Begin never
//     applies a newer epoch by itself: it answers NewEpoch and changes nothing; the consume
//     half then asks the counter what it has issued (Store.Issued) and accepts the epoch only
//     if the counter can have issued the stamp (CheckIssued: not beyond the counter's epoch,
//     not beyond its last number in that epoch; with no counter, not beyond the present). A
//     skip ahead over a gap (GapTimeout) is checked the same way before the handler runs; if it
//     fails, the claim is given up and the key is as it was. A stamp that fails the check is
//     dead-lettered (ErrImplausibleStamp, permanent), as is a malformed one (ErrBadStamp).
//  2. Where encryption is on, the stamp is authenticated: the ciphertext is bound to it
//     (encryption.BoundHeaders), and the key advances only when the inner chain — which
//     decrypts — succeeds. A plausible forgery (a number the counter did issue) fails
//     decryption, its claim is released (Abort restores the state), and the real message
//     with that number is handled as usual.
//  3. A message of an earlier epoch than the key's is dead-lettered (ErrStale), not
//     acknowledged: should anything still move a key wrongly, nothing is lost silently — the
//     messages land in the dead-letter destination and can be redriven (redriven copies pass
//     unchecked).
//
// What remains, by construction: without encryption nothing authenticates a stamp, so a plain
// message carrying a number the counter did issue and the key has not reached yet can take
// that number's place (the real message is then a duplicate); it cannot reset the key or move
// it past what was issued. Use encryption (or keep untrusted producers off the topic) where
// that matters. A forged stamp on an idle key whose counter expired may start the key in an
// epoch up to the present; the counter's next epoch, the store's clock at its restart, is
// later and takes over. Publishers and consumers must share one store: a stamp from a counter
// in another store is implausible here and is dead-lettered. The checks cost one counter read
// per epoch change (a key's first message per subscription) and per skip, not per message.
// Fuzzed: FuzzParseStamp, FuzzForgedStamp.
//
// # Design decisions
//
//   - Sequence numbers carry the counter's epoch (the store's clock when the counter was
//     created). Counters and states expire after Retention of disuse; a counter that started
//     again has a greater epoch, which (once the counter vouches for it) resets the consumers'
//     state instead of making every new message look like a duplicate.
//   - State is per topic, subscription and key, so several consumer groups keep their own
//     order; counters are per topic and key.
//   - Fail closed: a store error makes the message fail with a retryable error; it is never
//     handled out of order because the store was unreachable. A failure to record a handled
//     message (after a retry) is logged and the message acknowledged; its successors then wait
//     up to GapTimeout.
//   - Claims, owner IDs, the retried settling calls (commit, abort) and the wake-up slots are
//     the skeleton shared with the idempotency middleware (internal/lease).
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
