package gcppubsub

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/transport/driver"
)

// DeleteTopic implements driver.TopicDeleter: it stops the driver's publisher for the topic
// and deletes the Pub/Sub topic. Its subscriptions stay, detached (delete them first). A topic
// that does not exist is not an error.
func (d *Driver) DeleteTopic(ctx context.Context, topic string) error {
	id, err := d.topicID(topic)
	if err != nil {
		return fmt.Errorf("pubsub: delete topic: %w", err)
	}
	d.mu.Lock()
	if d.closed.Load() {
		d.mu.Unlock()
		return fmt.Errorf("pubsub: delete topic %q: %w", topic, driver.ErrClosed)
	}
	tp := d.pubs[id]
	delete(d.pubs, id)
	d.mu.Unlock()
	if tp != nil {
		select {
		case <-tp.ready:
			if tp.p != nil {
				tp.p.Stop()
			}
		case <-ctx.Done():
			return fmt.Errorf("pubsub: delete topic %q: %w", topic, ctx.Err())
		}
	}
	err = d.client.TopicAdminClient.DeleteTopic(ctx, &pubsubpb.DeleteTopicRequest{Topic: d.topicPath(id)})
	if err != nil && status.Code(err) != codes.NotFound {
		return wrap(ctx, fmt.Sprintf("delete topic %q", id), err, driver.ErrTopicNotFound, driver.ErrInvalidConfig)
	}
	return nil
}
