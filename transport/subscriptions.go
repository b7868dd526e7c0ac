package transport

import (
	"context"
	"fmt"
	"slices"

	"github.com/courierhq/courier/transport/driver"
)

// Subscriptions returns the names of topic's subscriptions, sorted: a way to find out that
// messages published to topic reach nobody (an empty list), since brokers disagree on what
// happens to them (RabbitMQ refuses them as unroutable, Pub/Sub and memory:// drop them,
// Kafka and SQS keep them). What a subscription is depends on the broker:
//
//   - memory://, Pub/Sub: the topic's subscriptions (on Pub/Sub, those Courier created under
//     their Courier name, others under their subscription ID);
//   - Kafka: the consumer groups that have committed offsets on the topic (a group that has
//     joined but committed nothing yet is not listed);
//   - SQS: the queue is its own one subscription, listed under the topic's name when the
//     queue exists;
//   - RabbitMQ: ErrUnsupported; the queues bound to an exchange can only be listed through
//     the management plugin's HTTP API, which the adapter does not use.
//
// A topic that does not exist has no subscriptions. Errors wrap ErrUnsupported where the
// broker cannot list them, ErrClosed after Close, or what the adapter returns.
func (c *Conn) Subscriptions(ctx context.Context, topic string) ([]string, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	l, ok := c.drv.(driver.SubscriptionLister)
	if !ok {
		return nil, fmt.Errorf("subscriptions of %q: %w (%s cannot list a topic's subscriptions)", topic, ErrUnsupported, c.caps.Name)
	}
	subs, err := l.Subscriptions(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("subscriptions of %q: %w", topic, err)
	}
	slices.Sort(subs)
	return subs, nil
}
