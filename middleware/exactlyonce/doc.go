// Package exactlyonce makes a handler's effects in PostgreSQL happen exactly once per
// consumer group, however often the broker delivers the message: the "already processed"
// mark, the handler's own writes and any outbox rows it produces commit in one transaction.
//
//	eo, err := exactlyonce.New(exactlyonce.Config{DB: pool})
//	err = eo.Migrate(ctx) // courier_processed (MigrationSQL)
//	sub, err := conn.Subscribe(ctx, "orders", "billing", transport.SubscriberConfig{
//		Middleware: []message.Middleware{eo.Consume()},
//	})
//	err = sub.Run(ctx, func(ctx context.Context, m *message.Message) error {
//		tx, _ := exactlyonce.TxFromContext(ctx)
//		_, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - $1 WHERE id = $2", amount, id)
//		if err != nil {
//			return err
//		}
//		return outbox.Writer{}.Write(ctx, tx, "payments", &message.Message{Key: id, Payload: ev})
//	})
//
// # How it works
//
// For each message: BEGIN (READ COMMITTED) → INSERT INTO courier_processed (consumer,
// message_id) ON CONFLICT DO NOTHING → if the row already existed, roll back and acknowledge
// without calling the handler → otherwise call the handler with the transaction in its
// context (TxFromContext) → handler returned nil: COMMIT, then the engine acknowledges;
// handler returned an error (or panicked): ROLLBACK, and the engine retries or dead-letters
// as it does without this middleware. Two copies of a message handled at the same moment
// (a redelivery racing the first delivery, two instances) cannot both proceed: the second
// INSERT waits on the primary key until the first transaction ends, then finds the mark
// (first committed) or takes over (first rolled back). No lease or claim is needed — the
// row lock is the claim, and it ends with the transaction, also when the process dies —
// which is why this package does not use internal/lease as the idempotency middleware does.
//
// # What is guaranteed
//
//   - Every write the handler makes through the context's transaction — its tables, the
//     outbox (package outbox) — is committed exactly once per (consumer, key), as long as the
//     mark is kept (Retention; Purge deletes older marks).
//   - A crash anywhere — before the commit (nothing happened; redelivered and handled) or
//     after it and before the broker's acknowledgement (redelivered, found marked,
//     acknowledged without handling) — cannot repeat or lose the effect. A lost or failed
//     acknowledgement works the same way.
//   - A failing commit is reported as a retryable error; if it had in fact committed, the
//     retry finds the mark.
//
// # What is not guaranteed
//
//   - Effects outside this transaction — an HTTP call, an e-mail, a write to another
//     database, a direct broker publish — can happen more than once (a crash after them and
//     before the commit). Put outgoing messages in the outbox instead of publishing them.
//   - The handler can run more than once (the runs whose transaction rolled back); only its
//     committed effects are once. Do not commit or roll back the transaction yourself.
//   - Outside Retention a redelivered message is handled again.
//   - A message whose key (default the ID) is empty, longer than MaxKeyLen or not text is
//     dead-lettered (message.Permanent wrapping ErrNoKey), not handled without the guarantee.
//   - Database unavailable: the message fails with a retryable error (fail closed).
//   - A consumer that dies releases its mark's lock at once (PostgreSQL sees the connection
//     close); one cut off from the network holds it until PostgreSQL notices. Set
//     idle_in_transaction_session_timeout and TCP keepalives (tcp_keepalives_idle) on the
//     server so that a copy waiting behind it is not held for long.
//
// # Place in the chain
//
// Consume side, outermost first: ordering → exactlyonce → decrypt → validate → handler. The
// idempotency middleware is not needed with it (it would only add a second, weaker mark).
// After ordering, so that a message held back for an earlier one does not hold an open
// transaction; a message whose copy is in another transaction waits inside the INSERT and
// keeps its worker (and so its key's order) while it waits. Each handling holds one pool
// connection: size the pool for the subscriber's Concurrency.
package exactlyonce
