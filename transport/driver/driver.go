// Package driver is the contract between Courier and an adapter: what an adapter author
// implements (Driver, Receiver and the optional Rejecter and DeadLetterNamer), what it
// describes (Capabilities), what it is asked for (SubscriptionSpec), the error kinds it maps
// its broker's errors onto, and how it makes itself available to transport.Open (Register).
//
// Users never import this package: they hold a *transport.Conn. transport re-exports the
// names a user needs (the error kinds, PublishError, Capabilities).
package driver

import (
	"context"
	"strconv"
	"time"

	"github.com/courierhq/courier/message"
)

// Driver is what an adapter implements: broker I/O and mapping, nothing more. Concurrency,
// per-key ordering, retries, dead-letter hand-off and graceful shutdown live in package transport
// (the consumer engine) and are the same for every broker.
//
// A Driver must be safe for concurrent use. Users never call it directly; they hold a
// *transport.Conn.
type Driver interface {
	// Capabilities describes what the broker can do; the engine and the conformance suite
	// adapt to it.
	Capabilities() Capabilities

	// Publish sends msgs to topic and returns nil only once the broker has accepted every
	// message durably (publisher confirm, acks=all, per-entry success, publish result). When
	// some messages fail, it returns a *PublishError whose indexes refer to msgs; messages not
	// listed there were accepted. msgs is non-empty, contains no nil, every message has an ID,
	// and every message fits Capabilities.MaxMessageBytes: the caller checked.
	Publish(ctx context.Context, topic string, msgs []*message.Message) error

	// Subscribe makes sure the subscription exists (creating it when the adapter is allowed
	// to) so that messages published from now on are retained for it, and returns a Receiver
	// that consumes it. Several Receivers on one subscription compete for its messages.
	Subscribe(ctx context.Context, spec SubscriptionSpec) (Receiver, error)

	// Close releases the connection. Receivers are closed before it is called.
	Close(ctx context.Context) error
}

// Receiver consumes one subscription for the engine. The engine calls Receive from one
// goroutine; Ack and Nack may be called concurrently with Receive and with each other.
type Receiver interface {
	// Receive blocks until at least one message is available or ctx is done, then fills buf
	// with up to len(buf) messages and returns how many. Each message carries its receipt
	// (message.SetReceipt), Topic, Subscription and Attempt (1 for a first delivery). It
	// returns ctx.Err() once ctx is done, and another error when the subscription is broken
	// beyond the adapter's own recovery.
	Receive(ctx context.Context, buf []*message.Message) (int, error)

	// Ack acknowledges handled messages: the broker will not deliver them again.
	Ack(ctx context.Context, msgs []*message.Message) error

	// Nack returns a message to the broker for redelivery no sooner than delay from now, with
	// its delivery attempt counted. Only called when Capabilities.Redelivery is true, and with
	// delay 0 to release messages that were received but not handled (on shutdown).
	Nack(ctx context.Context, m *message.Message, delay time.Duration) error

	// Close stops consuming. Messages received and neither acked nor nacked become available
	// to other receivers again (at once or after the broker's lease runs out).
	Close(ctx context.Context) error
}

// Rejecter is implemented by receivers whose broker can dead-letter a message natively
// (RabbitMQ's dead-letter exchange). With native dead-lettering on, the engine calls Reject
// instead of publishing the message to the dead-letter topic itself. Brokers whose native
// dead-lettering counts deliveries instead (SQS redrive, Pub/Sub dead-letter policy) do not
// implement it; the engine nacks and the broker moves the message when its count runs out.
type Rejecter interface {
	Reject(ctx context.Context, m *message.Message, cause error) error
}

// DeadLetterNamer is implemented by drivers whose topic names need a special form for the
// default dead-letter topic (an SQS FIFO queue's dead-letter queue must end in ".fifo").
type DeadLetterNamer interface {
	DeadLetterTopic(topic string) string
}

// HeaderOverheadBytes is what each header counts towards Capabilities.MaxHeaderBytes beyond
// its name and value: the framing a broker adds per header (AMQP's field-table entry takes 6).
const HeaderOverheadBytes = 8

// Capabilities describes a broker to the engine and to the conformance suite. The Max*
// limits are what the dead-letter copy is fitted to (transport.DeadLetterCopy); Publish
// checks MaxMessageBytes and the header name and value lengths, the adapter the rest.
type Capabilities struct {
	// Name is the adapter's name ("memory", "rabbitmq", …).
	Name string
	// Redelivery: Nack makes the broker deliver the message again after a delay. Without it
	// (Kafka) the engine retries in place and only acks.
	Redelivery bool
	// DeliveryCount: the broker counts deliveries, so Message.Attempt survives a restart.
	DeliveryCount bool
	// FanOut: a topic can have several subscriptions that each get every message.
	FanOut bool
	// Persistent: published messages survive a restart of the connection (not of memory://).
	Persistent bool
	// NativeOrdering: the broker itself delivers one key's messages in order to one consumer
	// (Kafka partitions, Pub/Sub ordering keys, SQS FIFO groups).
	NativeOrdering bool
	// NativeDeadLetter: the adapter can set up the broker's own dead-lettering.
	NativeDeadLetter bool
	// Backlog: the driver implements BacklogReporter, so transport.Conn.Backlog reports a
	// subscription's backlog (Pub/Sub's needs Cloud Monitoring: false there).
	Backlog bool
	// MaxMessageBytes is the largest message (message.Size) the broker accepts; 0 means no
	// limit Courier knows of. Publish rejects larger messages with ErrMessageTooLarge.
	MaxMessageBytes int
	// MaxHeaderValueBytes is the longest header value the broker accepts; 0 means no limit.
	MaxHeaderValueBytes int
	// MaxHeaderNameBytes is the longest header name the broker accepts; 0 means no limit.
	MaxHeaderNameBytes int
	// MaxHeaders is the most headers a message may carry (Pub/Sub: 100 attributes less the
	// adapter's own); 0 means no limit.
	MaxHeaders int
	// MaxHeaderBytes bounds all headers of a message together, counting each header as its
	// name and value plus HeaderOverheadBytes, and the ID and key as their length (RabbitMQ:
	// every header must fit one AMQP frame); 0 means no limit.
	MaxHeaderBytes int
	// MaxKeyBytes is the longest Message.Key the broker accepts (Pub/Sub ordering keys);
	// 0 means no limit.
	MaxKeyBytes int
	// MaxIDBytes is the longest Message.ID the broker accepts; 0 means no limit.
	MaxIDBytes int
	// MaxBatch is the most messages the adapter sends in one broker request; Publish accepts
	// any number and the adapter splits. Informational.
	MaxBatch int
	// PipelinedPublish: the adapter overlaps concurrent Publish calls itself, each message
	// being its own broker request anyway (RabbitMQ: confirms of concurrent calls pipelined on
	// shared channels). The publisher then does not merge concurrent calls by default
	// (transport.PublisherConfig.CoalesceMessages): merging would only hold calls back while
	// a batch is in flight.
	PipelinedPublish bool
}

// SubscriptionSpec tells a driver which subscription to consume and how.
type SubscriptionSpec struct {
	// Topic the subscription is attached to.
	Topic string
	// Subscription name; unique per broker is safest (RabbitMQ queues and Pub/Sub
	// subscription IDs are global names).
	Subscription string
	// Prefetch is how many unacknowledged messages the engine will hold at most; adapters
	// with push delivery set their flow control (basic.qos, MaxOutstandingMessages) to it.
	Prefetch int
	// Ordered asks the broker to preserve per-key order where it can (Pub/Sub message
	// ordering, a single active consumer).
	Ordered bool
	// RequireOrder (only with Ordered) asks for one key's messages in publish order without
	// exception: an adapter whose broker or topic cannot deliver them so (an SQS standard
	// queue) fails Subscribe with an error wrapping ErrUnsupported that says what to do
	// instead (a FIFO queue, the ordering middleware, or transport.OrderDelivery).
	RequireOrder bool
	// Start is where a subscription that does not exist yet begins: StartLatest (only what
	// is published after Subscribe returns) or StartEarliest (what the broker still keeps
	// of the topic's history, where it keeps any). It has no effect on a subscription that
	// exists already: that one resumes where it was.
	Start StartPosition
	// NativeDeadLetter, when non-nil, asks the adapter to set up the broker's own
	// dead-lettering.
	NativeDeadLetter *NativeDeadLetterSpec
}

// NativeDeadLetterSpec configures broker-native dead-lettering.
type NativeDeadLetterSpec struct {
	// Topic receives the dead-lettered messages.
	Topic string
	// MaxAttempts is the delivery count after which the broker moves a message (SQS
	// maxReceiveCount, Pub/Sub max delivery attempts).
	MaxAttempts int
}

// StartPosition says where a new subscription begins reading its topic.
type StartPosition int

const (
	// StartLatest: a new subscription receives only messages published after Subscribe
	// returned. The default, and the same on every broker.
	StartLatest StartPosition = iota
	// StartEarliest: a new subscription also receives what the topic still holds from before
	// it existed, where the broker keeps history (Kafka's retained log). Brokers that keep
	// messages only for existing subscriptions (RabbitMQ, Pub/Sub, memory://) have nothing
	// older to give; an SQS queue is itself the subscription and always delivers what it holds.
	StartEarliest
)

// String returns "latest" or "earliest".
func (p StartPosition) String() string {
	switch p {
	case StartLatest:
		return "latest"
	case StartEarliest:
		return "earliest"
	}
	return "StartPosition(" + strconv.Itoa(int(p)) + ")"
}
