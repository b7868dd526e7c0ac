// Package transport is what an application imports first: a broker-agnostic connection that
// publishes messages and runs subscribers on RabbitMQ, Kafka, SQS, Pub/Sub or in memory.
//
// # Connecting
//
// Open (or OpenConfig, with a ConnConfig carrying the logger) takes a URL whose scheme picks the
// adapter — memory://, amqp://, kafka://, sqs://, gcppubsub:// — once the adapter's package is
// imported for its side effect (import _ "github.com/courierhq/courier/adapters/kafka"). It
// returns a *Conn, safe for concurrent use; Close it when done. Conn.Capabilities says what the
// broker can do (redelivery, native ordering, native dead-lettering, size limits).
//
// # Publishing
//
// Conn.Publish sends a batch and returns only once the broker has accepted it durably. A
// Publisher (Conn.Publisher with a PublisherConfig) runs publish middleware around every batch
// (encryption, ordering stamps). Failures of single messages come back as a *PublishError that
// names them by their index in the batch.
//
// # Consuming
//
// Conn.Subscribe makes sure the subscription exists (so that everything published after it
// returns is kept for it) and returns a *Subscriber; Subscriber.Run calls a message.Handler,
// wrapped in the configured middleware, until its context ends or Close is called. A
// SubscriberConfig sets Concurrency, Prefetch, the RetryPolicy, the per-key Order, the
// dead-letter destination and its backoff; its zero value is valid.
//
// # How the engine decides
//
// Behind Run, one engine per subscriber handles messages with the same non-empty Key one at a
// time in order, and other messages in parallel. What happens after the handler returns is one
// decision, made from the handler's error, the message (key, attempt), the broker's
// capabilities, the retry policy and the ordering mode:
//
//   - nil: the message is acknowledged (in batches).
//   - an error: it is tried again after the policy's backoff (or message.RetryAfter's delay):
//     given back to the broker with a delay where the broker redelivers and no key's order
//     depends on it, else called again in place, so that the key's order holds and brokers
//     without redelivery (Kafka) work.
//   - message.Permanent, or the attempts ran out: it is dead-lettered — a copy is stored
//     (DeadLetterer, by default a TopicDeadLetterer) and only then the original acknowledged.
//     If the copy cannot be stored the message is kept and tried again after
//     SubscriberConfig.DeadLetterBackoff, off its lane (other keys flow, its own key waits),
//     with one log line and one OnDeadLetterError call per failed attempt.
//   - message.Defer / DeferUntil: not a failure (never dead-lettered): the message is parked,
//     in flight but off its lane, and handled again after its delay; later messages of its key
//     may pass it. message.DeferInOrder parks it too but holds its key: the key's later
//     messages wait behind it. message.Requeue gives it back to the broker where the broker
//     redelivers, and parks it elsewhere.
//   - the handler's context was cancelled by a stop: the message is given back, no attempt
//     counted.
//
// Stopping (cancelling Run's context, or Close) stops receiving, gives back what was not
// started, waits DrainTimeout for running handlers, flushes acknowledgements and closes the
// subscription's receiver.
//
// # Errors
//
// Errors wrap the sentinels declared here (ErrClosed, ErrInvalidConfig, ErrInvalidMessage,
// ErrMessageTooLarge, ErrUnavailable, ErrUnsupported, …): test them with errors.Is. The error
// kinds a handler returns (Permanent, RetryAfter, Defer, DeferInOrder, Requeue) are in package
// message.
//
// # Writing an adapter
//
// Adapter authors implement the contract in package
// github.com/courierhq/courier/transport/driver (Driver, Receiver, Capabilities,
// SubscriptionSpec) and register a URL scheme there; this package is the user's side of it.
package transport
