package gcppubsub

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/transport/driver"
)

// Ping implements driver.Pinger: a TCP connection to the emulator endpoint when one is set,
// then one GetTopic of a topic that need not exist — any answer (NotFound included) means
// Pub/Sub is there. Bounded by ctx and Config.DialTimeout.
func (d *Driver) Ping(ctx context.Context) error {
	if d.closed.Load() {
		return fmt.Errorf("pubsub: ping: %w", driver.ErrClosed)
	}
	if err := checkReady(ctx, d.cfg, d.client); err != nil {
		return fmt.Errorf("pubsub: ping: %w", err)
	}
	return nil
}

// DeleteSubscription implements driver.SubscriptionDeleter: it deletes the Pub/Sub
// subscription (its ID names the topic too, see subscriptionIDFor). One that does not exist
// is not an error.
func (d *Driver) DeleteSubscription(ctx context.Context, topic, subscription string) error {
	if d.closed.Load() {
		return fmt.Errorf("pubsub: delete subscription: %w", driver.ErrClosed)
	}
	id, err := subscriptionIDFor(d.cfg.Prefix, topic, subscription)
	if err != nil {
		return fmt.Errorf("pubsub: delete subscription: %w", err)
	}
	err = d.client.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: d.subscriptionPath(id)})
	if err != nil && status.Code(err) != codes.NotFound {
		return wrap(ctx, fmt.Sprintf("delete subscription %q", id), err, driver.ErrSubscriptionNotFound, driver.ErrInvalidConfig)
	}
	return nil
}
