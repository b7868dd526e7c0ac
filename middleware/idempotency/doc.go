// Package idempotency handles each message at most once per consumer group, despite
// redeliveries and duplicate publishes: at-least-once delivery becomes effectively-once
// handling.
//
//	idem, err := idempotency.New(idempotency.Config{Store: redisstore.New(rdb, redisstore.Options{})})
//	sub, err := conn.Subscribe(ctx, "orders", "billing", transport.SubscriberConfig{
//		Middleware: []message.Middleware{idem.Consume()},
//	})
//
// # How it works
//
// Before the handler runs, the middleware claims the message's key in a Store with a lease;
// after the handler returned nil it marks the key done, remembered for Retention; when the
// handler failed (or panicked) it releases the claim so that the engine's retry can claim it
// again. A message whose key is done is acknowledged without calling the handler. A message
// whose key another consumer holds right now (a duplicate delivered to two instances at once)
// is deferred — never handled twice at the same time — and looks again after the claim's
// remaining lease (at most MaxBusyDelay), or at once when the claim was held in the same
// process and ends; it then normally finds the key done. The deferral is
// message.DeferInOrder: the message keeps its place in its ordering key's order, and the
// engine holds the key's later messages behind it. That matters after a crash: the dead
// instance's claim blocks its message until the lease ends, and with a plain deferral the
// key's later messages would be handled meanwhile, out of order.
//
// # Design decisions
//
//   - Claim first, with a lease: a consumer that dies mid-handler blocks its message for at
//     most Lease, after which another may claim and handle it. A handler that runs longer
//     than Lease risks a second, concurrent handling; Complete reports it (ErrLeaseLost) and
//     the middleware logs a warning. Choose Lease above your slowest handler.
//   - The key is "<topic>/<subscription>/<Config.Key(m)>" (default key: the message ID). The
//     subscription is the consumer group, so each group handles a message once.
//   - Fail closed: when the store cannot be reached, the message is not handled; it fails
//     with a retryable error and the engine retries it (and dead-letters it if the store stays
//     down longer than the retry policy).
//   - A failure to mark a handled message done (after one retry on a fresh context) is logged
//     and the message acknowledged: it was handled, and failing it would only have it handled
//     again once its claim expires.
//   - Waiting is a deferral, not a failure: it never counts toward the dead-letter decision.
//   - Claims, owner IDs, the retried settling calls and the in-process wake-ups are the
//     skeleton shared with the ordering middleware (internal/lease).
//
// # What it does not do
//
// It does not make the handler's side effects and the "done" mark atomic: if the process dies
// after the handler succeeded and before the mark, the message is handled again once the lease
// ends. Handlers whose effects must be exactly-once still need their own idempotent writes
// (an upsert keyed by the message ID, say). Outside Retention, a duplicate is handled again.
//
// # Stores
//
// Store is a small interface; package memstore (one process, bounded), redisstore and pgstore
// implement it, and package storetest checks an implementation. The same store values also
// serve the ordering middleware.
//
// # Place in the chain
//
// Consume side, outermost first: ordering → idempotency → decrypt → validate → handler (see
// package chain). After ordering, so that a message held back for an earlier one does not sit
// on a claim whose lease could run out; before decryption and validation, so that duplicates
// are acknowledged without that work.
package idempotency
