// Package outbox is a transactional outbox on PostgreSQL (pgx): messages are written into a
// table inside the caller's own transaction, and a Relay moves the committed ones to any
// broker. "I committed the order row, then the publish failed" cannot happen: the message
// commits with the row or not at all.
//
//	// once, at start-up (or apply MigrationSQL with your migration tool)
//	err := outbox.Migrate(ctx, pool)
//
//	// in the request: the order row and its event commit together
//	tx, _ := pool.Begin(ctx)
//	_, _ = tx.Exec(ctx, "INSERT INTO orders ...")
//	err = outbox.Writer{}.Write(ctx, tx, "orders", &message.Message{Key: orderID, Payload: body})
//	err = tx.Commit(ctx)
//
//	// in one or more processes
//	relay, _ := outbox.NewRelay(outbox.Config{DB: pool, Publisher: conn})
//	go relay.Run(ctx)
//
// database/sql callers use Writer.WriteSQL with their *sql.Tx.
//
// # Schema
//
// MigrationSQL (migrate.sql, applied by Migrate) creates courier_outbox — one row per message
// still to be sent, with a bigserial seq that is the relay order — an index on (key, seq),
// a courier_outbox_dead table for rows refused permanently (below), and a statement-level
// AFTER INSERT trigger that runs pg_notify('courier_outbox') (delivered
// at commit, dropped on rollback). Objects are unqualified: put several outboxes in several
// schemas and choose one with the connection's search_path.
//
// # What the relay guarantees
//
//   - Committed rows are published; rolled-back rows never existed. The message ID is set at
//     Write (a UUIDv7 unless the caller set one) and kept on the broker.
//   - At least once: a row is deleted only in the transaction that published it, after the
//     broker confirmed (Publish returned nil, or the row is in the confirmed prefix of a
//     *transport.PublishError). A relay killed between the broker's confirmation and its
//     commit sends those rows again after restart, with the same IDs — the idempotency or
//     exactly-once middleware on the consumer folds them (effectively once).
//   - Per-key order: rows of one key are published in seq order, one call after another; a
//     failed publish stops the key (its later rows wait, with exponential backoff between
//     RetryMin and RetryMax) and does not hold back other keys. A row after a failed one in
//     the same call is not marked sent even if the broker took it: it is sent again, in
//     order. Writers take a transaction-level advisory lock per key (pg_advisory_xact_lock,
//     namespace "obw"), so the seq order of a key's rows is their commit order.
//   - Several relays: each round is one READ COMMITTED transaction that takes
//     pg_try_advisory_xact_lock (namespace "obr") on each key it will send — keys another
//     relay holds are skipped — then reads the keys' rows in a new statement (a snapshot
//     taken after the locks, so it sees what the previous holder deleted), publishes, deletes
//     the sent rows and commits, which releases the locks. Unkeyed rows are taken with
//     SELECT … FOR UPDATE SKIP LOCKED. So no row is ever being sent by two relays at the
//     same time, and a key's order holds across relays. We chose advisory locks over row
//     locks for keyed rows because SKIP LOCKED alone would let a second relay take a key's
//     later rows while the first still sends its earlier ones.
//   - Wake-up: a relay LISTENs on NotifyChannel on a connection of its own and runs a round
//     at each notification; it also polls every PollInterval (missed notifications, LISTEN
//     down, NoListen for transaction-mode poolers), and runs rounds back to back while they
//     come back full.
//   - Clean-up: sent rows are deleted in the round that sent them; the table holds only
//     unsent rows (attempts and last_error say why a row is waiting).
//
// # Rows refused permanently (dead letters)
//
// When a publish fails, the error concerning the row — its entry in a
// *transport.PublishError, or the call's error when the call had that one message — decides:
//
//   - transport.ErrUnavailable, ErrClosed, context cancellation or deadline, and errors of any
//     other or no kind (ErrNacked, ErrAccessDenied, ErrTopicNotFound, …: things an operator or
//     time fixes) are retried: the key waits with backoff, as above;
//   - transport.ErrMessageTooLarge, ErrInvalidTopic and ErrInvalidMessage, and stored headers
//     that are not a JSON object of strings, are permanent: the row is moved, in the round's
//     transaction, to courier_outbox_dead with a reason (ReasonTooLarge, ReasonInvalidTopic,
//     ReasonInvalidMessage, ReasonBadHeaders), the error text and failed_at; it is logged at
//     Warn, Config.OnDeadLetter is called after the commit, and the key goes on with its next
//     row at once. A permanent error that names no message of a multi-message call makes the
//     relay send that key's remaining rows one per call, to find the refused one.
//
// An error that matches a transient and a permanent kind at once is retried. To send a dead
// row again once fixed, insert it back into courier_outbox (it gets a new seq: it goes after
// the key's waiting rows) and delete it from courier_outbox_dead.
//
// # What it does not guarantee
//
//   - Exactly-once delivery: after a crash, some rows are published twice (same ID).
//   - Order around a dead-lettered row: the key's later rows are sent without it.
//   - A row refused with an error of no permanent kind (a misconfigured topic, missing
//     permission) blocks its key, retried with backoff and logged, until that is fixed.
//   - A relay round holds its transaction open while it publishes (bounded by
//     PublishTimeout), so keep PublishTimeout short relative to your idle-transaction
//     limits.
//   - A relay that dies releases its key locks at once (PostgreSQL sees the connection
//     close); one cut off from the network holds them until PostgreSQL notices (TCP
//     keepalives, idle_in_transaction_session_timeout): its keys wait that long.
//
// Consuming with the handler's writes, its outbox rows and the "already handled" mark in one
// transaction is package middleware/exactlyonce.
package outbox
