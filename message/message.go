// Package message defines what travels through Courier: the Message, its headers, the Handler
// that consumes it, the middleware shapes for both sides, and the error kinds a handler uses
// to steer retries and dead-lettering.
//
// The package depends on the standard library only, so middleware and codecs can build on it
// without pulling in any broker.
package message

import (
	"maps"
	"time"
)

// Message is one unit of data published to a topic and delivered to subscriptions.
//
// The publish-side fields (ID, Key, Payload, Headers, PublishTime) are set by the caller;
// Courier fills ID and PublishTime when they are empty. The receive-side fields (Topic,
// Subscription, Attempt, BrokerTime) are set by Courier when a message is delivered and are
// ignored on publish.
//
// Handlers must treat Payload as read-only: one delivered payload may be shared by several
// subscriptions of the in-process broker. Middleware that transforms a payload (decryption,
// decompression) replaces the slice instead of writing into it.
type Message struct {
	// ID identifies the logical message. It is unique per message and stable across
	// redeliveries and republishing. If empty at publish, Courier sets a UUIDv7, which sorts
	// by creation time. Idempotency keys on it by default.
	ID string

	// Key is the ordering key. Messages with the same non-empty Key are handled one at a time,
	// in the order the broker delivers them; messages with different keys may be handled in
	// parallel. Adapters map it to the broker's own notion (Kafka record key, Pub/Sub ordering
	// key, SQS FIFO message group, RabbitMQ routing).
	Key string

	// Payload is the message body. It may be empty or binary.
	Payload []byte

	// Headers are string key/value pairs carried with the message. Names starting with
	// ReservedPrefix are reserved for Courier.
	Headers Headers

	// PublishTime is when the message was published. Set at publish if zero.
	PublishTime time.Time

	// Topic is the topic the message was received from (receive side).
	Topic string

	// Subscription is the subscription that received the message (receive side).
	Subscription string

	// Attempt is the delivery attempt, starting at 1 (receive side). It comes from the broker
	// where the broker counts deliveries and is tracked by Courier otherwise; retries that
	// Courier performs in place also increment it.
	Attempt int

	// BrokerTime is when the broker accepted the message, where the broker says (receive side).
	BrokerTime time.Time

	receipt Receipt
}

// New returns a message with the given payload and an empty header map.
func New(payload []byte) *Message {
	return &Message{Payload: payload, Headers: Headers{}}
}

// Receipt is what an adapter attaches to a received message: its handle for acknowledging the
// message and its access to the broker's native record. Application code does not use it; it
// reaches the native record through Message.As.
type Receipt interface {
	// As sets target to the broker's native representation of the message if target is a
	// pointer to a type the adapter supports, and reports whether it did.
	As(target any) bool
}

// SetReceipt attaches an adapter's receipt to m. It is meant for adapter authors.
func SetReceipt(m *Message, r Receipt) { m.receipt = r }

// ReceiptOf returns the receipt an adapter attached to m, or nil. It is meant for adapter
// authors.
func ReceiptOf(m *Message) Receipt { return m.receipt }

// As exposes the broker's native record behind a received message (an amqp091.Delivery, a
// kafka.Message, an SQS types.Message, a Pub/Sub message): pass a pointer to the type your
// adapter documents. It reports false for messages that were not received from a broker or
// for types the adapter does not support.
func (m *Message) As(target any) bool {
	if m == nil || m.receipt == nil {
		return false
	}
	return m.receipt.As(target)
}

// Clone returns a copy of m with its own header map. The payload slice is shared; the receipt
// is not carried over, so a clone can be republished but not acknowledged.
func (m *Message) Clone() *Message {
	c := *m
	c.Headers = maps.Clone(m.Headers)
	c.receipt = nil
	return &c
}

// Size returns the approximate size of the message on the wire: payload, key, ID and headers.
// Adapters compare it with a broker's limit.
func (m *Message) Size() int {
	n := len(m.Payload) + len(m.Key) + len(m.ID)
	for k, v := range m.Headers {
		n += len(k) + len(v)
	}
	return n
}
