package driver

import "context"

// Pinger is implemented by drivers that can check the broker with one cheap round trip
// (RabbitMQ: open and close a channel; Kafka: a metadata request; SQS: ListQueues with one
// result; Pub/Sub: GetTopic). transport.Conn.Ping calls it; a driver without it is reported
// alive while it is open.
//
// Ping returns nil when the broker answered, and otherwise an error that names the endpoint
// (never its credentials), wrapping ErrUnavailable where the broker could not be reached and
// ErrClosed once the driver is closed. It must honour ctx's deadline.
type Pinger interface {
	Ping(ctx context.Context) error
}

// ReceiverStatus is implemented by receivers that recover from lost connections themselves
// (RabbitMQ's reconnect loop): Recovering returns the cause while the receiver is
// reconnecting, and nil while it consumes. transport.Subscriber.State reports it as
// StateReconnecting.
type ReceiverStatus interface {
	Recovering() error
}

// SubscriptionDeleter is implemented by drivers that can delete a subscription (a RabbitMQ
// queue, a Pub/Sub subscription, a Kafka consumer group, a memory:// subscription). Tools use
// it to remove subscriptions they made for themselves (`courier tail`). Deleting a
// subscription that does not exist returns nil.
type SubscriptionDeleter interface {
	DeleteSubscription(ctx context.Context, topic, subscription string) error
}
