package message

// Headers are string key/value pairs carried with a message. String to string is what all
// supported brokers carry natively; adapters map it to AMQP header tables, Kafka record headers,
// SQS message attributes and Pub/Sub attributes.
type Headers map[string]string

// Get returns the value for key, or "" when absent. It is safe on a nil map.
func (h Headers) Get(key string) string { return h[key] }

// Set sets key to value. It panics on a nil map, like any map write; use Message.SetHeader to
// allocate the map on demand.
func (h Headers) Set(key, value string) { h[key] = value }

// SetHeader sets a header on m, allocating the header map if needed.
func (m *Message) SetHeader(key, value string) {
	if m.Headers == nil {
		m.Headers = make(Headers, 4)
	}
	m.Headers[key] = value
}

// Header returns the value of a header of m, or "".
func (m *Message) Header(key string) string { return m.Headers[key] }

// ReservedPrefix starts every header name that Courier itself sets. Application headers must
// not use it; every supported broker accepts it (no "x-", "goog" or "AWS." prefix).
const ReservedPrefix = "courier-"

// Well-known header names. Every name Courier writes is listed here, so that adapters and
// middleware agree on them and users can read them.
const (
	// HeaderID carries Message.ID on brokers with no message-ID field of their own.
	HeaderID = ReservedPrefix + "id"
	// HeaderKey carries Message.Key on brokers whose key field cannot hold it as is.
	HeaderKey = ReservedPrefix + "key"
	// HeaderPublishTime carries Message.PublishTime (RFC 3339, UTC, nanoseconds) on brokers
	// with no timestamp field of their own.
	HeaderPublishTime = ReservedPrefix + "published"

	// HeaderContentType is the payload's media type, set by codecs ("application/json", …).
	HeaderContentType = ReservedPrefix + "content-type"

	// HeaderAttempt carries the delivery attempt across a republish where a broker cannot count
	// deliveries itself (Kafka retry records, dead-letter copies).
	HeaderAttempt = ReservedPrefix + "attempt"

	// HeaderDeadLetterReason is the error text that sent a message to the dead-letter topic.
	HeaderDeadLetterReason = ReservedPrefix + "dlq-reason"
	// HeaderDeadLetterPermanent is "true" when the failure was permanent (no retries were made).
	HeaderDeadLetterPermanent = ReservedPrefix + "dlq-permanent"
	// HeaderDeadLetterAttempts is the number of delivery attempts made before dead-lettering.
	HeaderDeadLetterAttempts = ReservedPrefix + "dlq-attempts"
	// HeaderDeadLetterTopic is the topic the message was originally published to.
	HeaderDeadLetterTopic = ReservedPrefix + "dlq-topic"
	// HeaderDeadLetterSubscription is the subscription that failed to handle the message.
	HeaderDeadLetterSubscription = ReservedPrefix + "dlq-subscription"
	// HeaderDeadLetterFirstFailure is the time of the first failed attempt (RFC 3339, UTC).
	HeaderDeadLetterFirstFailure = ReservedPrefix + "dlq-first-failure"
	// HeaderDeadLetterLastFailure is the time of the last failed attempt (RFC 3339, UTC).
	HeaderDeadLetterLastFailure = ReservedPrefix + "dlq-last-failure"
	// HeaderRedriven is the time (RFC 3339, UTC, nanoseconds) at which a dead-lettered message
	// was moved back to its topic (deadletter.Redrive), which removes the dlq-* headers. The
	// message keeps its ID; middleware that enforces order lets it through, since it is out of
	// its key's order by nature.
	HeaderRedriven = ReservedPrefix + "redriven"

	// HeaderSequence is the per-key sequence number stamped by the ordering middleware, as
	// "<seq>@<epoch>" (decimal; the epoch identifies the run of the key's counter).
	HeaderSequence = ReservedPrefix + "seq"

	// HeaderEncryptionKeyID names the key that encrypted the payload (encryption middleware).
	HeaderEncryptionKeyID = ReservedPrefix + "enc-key"
	// HeaderEncryptionWrappedKey carries an envelope-encrypted data key (encryption middleware).
	HeaderEncryptionWrappedKey = ReservedPrefix + "enc-dek"

	// HeaderSchemaViolation describes why a message failed schema validation.
	HeaderSchemaViolation = ReservedPrefix + "schema-violation"
	// HeaderSchema names the schema (or type) a payload conforms to.
	HeaderSchema = ReservedPrefix + "schema"

	// HeaderCorrelationID pairs a reply with its request (package reqreply). A caller that
	// retries a timed-out request sends the same value again.
	HeaderCorrelationID = ReservedPrefix + "correlation-id"
	// HeaderReplyTo names the topic a request's reply is published to (package reqreply).
	HeaderReplyTo = ReservedPrefix + "reply-to"
	// HeaderReplyError marks a reply as an error reply and carries its kind; the payload is the
	// error text (package reqreply).
	HeaderReplyError = ReservedPrefix + "reply-error"
)
