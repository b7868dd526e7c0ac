package driver

import "context"

// TopicDeleter is implemented by drivers that can delete a topic they created (an SQS queue, a
// Kafka topic, a Pub/Sub topic, a RabbitMQ exchange, a memory:// topic). Package reqreply uses
// it to remove a requester's reply topic on Close. Deleting a topic that does not exist
// returns nil. Delete its subscriptions and stop their subscribers first.
type TopicDeleter interface {
	DeleteTopic(ctx context.Context, topic string) error
}
