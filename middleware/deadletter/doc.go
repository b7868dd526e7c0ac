// Package deadletter is where messages go when handling them failed for good, and how they
// come back.
//
// The consumer engine does the hand-off: when a handler's error is permanent, or the retry
// policy's attempts run out, it gives the message to the subscription's
// transport.DeadLetterer and acknowledges the original only once that returned nil (so
// nothing is lost; on error the engine keeps the message and tries again). The copy is built
// by transport.DeadLetterCopy: same ID, key, payload and headers, plus
//
//	courier-dlq-reason        the error text (cut to 512 bytes, or to the room left)
//	courier-dlq-permanent     "true" when no retries were made
//	courier-dlq-attempts      deliveries made
//	courier-dlq-topic         the original topic
//	courier-dlq-subscription  the subscription that failed
//	courier-dlq-first-failure, courier-dlq-last-failure (RFC 3339, UTC)
//
// and any headers the error itself contributes (transport.DeadLetterHeaderer, e.g. the schema
// middleware's message.HeaderSchemaViolation).
//
// # A copy can always be stored
//
// The original may come from any producer, so the copy is fitted to its destination's
// transport.Capabilities: an ID, key, header name or value that is not valid UTF-8, and an
// empty header name, is escaped with strconv.Quote and listed in courier-dlq-escaped; a header
// over the broker's name, value, count or byte limits is dropped whole and listed in
// courier-dlq-cut; an ID or key over its limit is replaced by its hex SHA-256 (also listed);
// the annotations are counted first, so a payload just under the broker's limit still fits.
// A payload is never truncated: when it cannot fit at all (a destination on a broker with a
// smaller limit), a notice without it is stored (courier-dlq-payload-omitted: its size) and
// the hand-off fails with transport.ErrMessageTooLarge, so the engine keeps the original and
// tries again at its backoff. transport.UndoDeadLetterCopy is the inverse Redrive applies.
//
// transport.TopicDeadLetterer is the one implementation; Destination wraps it.
//
// # Destinations
//
// By default (SubscriberConfig.DeadLetter unset) the engine publishes the copy to
// "<topic>.dlq" on the subscriber's own connection (the adapter's form where names need one,
// see transport.Conn.DefaultDeadLetterTopic) and makes sure the subscription
// "<subscription>.dlq" exists on it, so the copies are retained even on brokers that drop
// messages nobody subscribed to. Set SubscriberConfig.DeadLetterTopic to choose another topic
// on the same broker. A Destination (New) is a DeadLetterer for other cases: another
// connection — another broker — with the same retention guarantee, a fixed topic, and an
// observer hook for metrics and alerts. Destinations are per subscription: each
// SubscriberConfig names its own.
//
// Broker-native dead-lettering (RabbitMQ dead-letter exchanges, SQS redrive policies, Pub/Sub
// dead-letter policies) is selected with SubscriberConfig.NativeDeadLetter instead, where the
// adapter supports it (Capabilities.NativeDeadLetter). The broker then moves the message
// itself, as it is, without the courier-dlq-* headers, and decides by its own delivery count,
// so a permanent error may be redelivered until that count runs out.
//
// # Redrive
//
// Redrive moves the messages of a dead-letter subscription back to their original topics
// (courier-dlq-topic), with payload, ID, key and application headers intact and the
// dead-letter annotations removed and escapes reversed, so they are handled afresh from
// attempt 1. It reads the subscription with transport.Conn.Pull. It is what `courier dlq
// redrive` runs. See Redrive for when it stops and what it leaves in place: notices
// (ErrPayloadOmitted), originals Courier cannot publish (ErrNotRepublishable) and forged
// annotations (transport.ErrMalformedDeadLetter) among them.
package deadletter
