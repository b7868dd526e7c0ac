package driver

import "context"

// BacklogUnknown is the value of a Backlog count the broker does not report (RabbitMQ's
// unacknowledged messages over AMQP, SQS's consumers). Check for it before adding counts up.
const BacklogUnknown = -1

// BacklogReporter is implemented by drivers that can tell how much a subscription has still
// to consume (transport.Conn.Backlog). Drivers that implement it set Capabilities.Backlog.
//
// Backlog reads the broker's counters for subscription on topic, named as Subscribe names
// them, without creating anything and without consuming. It returns an error wrapping
// ErrSubscriptionNotFound when the subscription does not exist (ErrTopicNotFound too when
// the topic does not), ErrUnsupported when the broker cannot tell, ErrClosed once the driver
// is closed, and it honours ctx's deadline. It is called from metric callbacks: it must be
// cheap (a few broker requests, no consuming) and safe for concurrent use.
type BacklogReporter interface {
	Backlog(ctx context.Context, topic, subscription string) (Backlog, error)
}

// Backlog is what a subscription has still to consume, as its broker counts it. Counts the
// broker does not report are BacklogUnknown.
type Backlog struct {
	// Messages waiting to be delivered (ready, visible). On Kafka, the consumer group's lag:
	// the sum of Partitions' Lag, which also counts records delivered but not committed yet.
	Messages int64
	// InFlight: delivered and not acknowledged yet. BacklogUnknown where the broker does
	// not report it (RabbitMQ over AMQP) or counts it in Messages (Kafka).
	InFlight int64
	// Delayed: waiting for a delay to pass before delivery (a nack with backoff, SQS
	// delivery delay). BacklogUnknown where the broker does not report it.
	Delayed int64
	// Consumers attached to the subscription (RabbitMQ consumers, Kafka group members,
	// memory:// receivers). BacklogUnknown where the broker does not report it (SQS).
	Consumers int
	// Approximate: the broker's counts are estimates that may trail the truth (SQS's
	// Approximate* attributes, eventually consistent, typically for up to a minute).
	Approximate bool
	// Partitions lists the lag per partition (Kafka), ordered by partition; nil elsewhere.
	Partitions []PartitionLag
}

// Pending is everything the subscription has not finished: Messages plus InFlight and
// Delayed where they are known.
func (b Backlog) Pending() int64 {
	n := b.Messages
	if b.InFlight > 0 {
		n += b.InFlight
	}
	if b.Delayed > 0 {
		n += b.Delayed
	}
	return n
}

// PartitionLag is one partition's position of a consumer group (Kafka).
type PartitionLag struct {
	// Partition is the partition's ID.
	Partition int
	// Lag is EndOffset minus the offset the group resumes from, never below 0.
	Lag int64
	// CommittedOffset is the group's committed offset: the next record it will read. −1
	// when the group has committed nothing on this partition yet; Lag then counts from the
	// offset the adapter starts such a partition at.
	CommittedOffset int64
	// EndOffset is the partition's end: the offset the next record produced will get.
	EndOffset int64
}
