package driver

import "context"

// SubscriptionLister is implemented by drivers that can tell which subscriptions a topic has
// (transport.Conn.Subscriptions). Drivers whose broker cannot list them (RabbitMQ: the queues
// bound to an exchange are not visible over AMQP) do not implement it.
type SubscriptionLister interface {
	// Subscriptions returns the names of topic's subscriptions as Courier names them (the
	// subscription argument of Subscribe), in any order; none, without error, when the topic
	// does not exist. Subscriptions the adapter did not create are listed under the broker's
	// own names.
	Subscriptions(ctx context.Context, topic string) ([]string, error)
}
