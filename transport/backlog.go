package transport

import (
	"context"
	"fmt"

	"github.com/courierhq/courier/transport/driver"
)

// Backlog is what a subscription has still to consume, as its broker counts it
// (Conn.Backlog): ready messages, in flight, delayed, consumers, and Kafka's lag per
// partition. Counts the broker does not report are BacklogUnknown.
type Backlog = driver.Backlog

// PartitionLag is one Kafka partition's lag of a consumer group (Backlog.Partitions).
type PartitionLag = driver.PartitionLag

// BacklogUnknown is the value of a Backlog count the broker does not report.
const BacklogUnknown = driver.BacklogUnknown

// Backlog reports how much subscription on topic has still to consume, where the broker can
// tell (Capabilities.Backlog):
//
//   - memory://: exact: ready, in flight (received, not acked), delayed (nacked with a
//     delay), receivers;
//   - RabbitMQ: the queue's ready messages and consumers (a passive queue.declare); AMQP does
//     not report unacknowledged messages or the delay queues' contents (BacklogUnknown);
//   - Kafka: the consumer group's lag, per partition and summed in Messages (end offset minus
//     committed offset; it includes records being handled), and the group's members;
//   - SQS: ApproximateNumberOfMessages, …NotVisible and …Delayed, with Approximate set;
//     consumers are unknown;
//   - Pub/Sub: ErrUnsupported; its backlog is only in Cloud Monitoring.
//
// It creates nothing and consumes nothing, and costs a few broker requests (one on RabbitMQ
// and, once the queue is known, on SQS; up to seven small ones on Kafka), so a metrics
// callback can poll it (bound ctx with a deadline). Errors wrap ErrUnsupported where
// the broker cannot tell, ErrSubscriptionNotFound for a subscription that does not exist,
// ErrClosed after Close, or what the adapter returns.
func (c *Conn) Backlog(ctx context.Context, topic, subscription string) (Backlog, error) {
	if c.closed.Load() {
		return Backlog{}, fmt.Errorf("courier: backlog of %s/%s: %w", topic, subscription, ErrClosed)
	}
	r, ok := c.drv.(driver.BacklogReporter)
	if !ok {
		return Backlog{}, fmt.Errorf("courier: backlog of %s/%s: %w: %s does not report a subscription's backlog", topic, subscription, ErrUnsupported, c.caps.Name)
	}
	if err := ctx.Err(); err != nil {
		return Backlog{}, fmt.Errorf("courier: backlog of %s/%s: %w", topic, subscription, err)
	}
	b, err := r.Backlog(ctx, topic, subscription)
	if err != nil {
		return Backlog{}, fmt.Errorf("courier: backlog of %s/%s: %w", topic, subscription, err)
	}
	return b, nil
}
