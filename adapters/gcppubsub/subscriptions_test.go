package gcppubsub_test

import (
	"slices"
	"testing"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/courierhq/courier/adapters/gcppubsub"
	"github.com/courierhq/courier/transport"
)

// TestSubscriptions: Conn.Subscriptions lists a topic's Courier subscriptions by their
// Courier names and others by their IDs, and none for a topic that does not exist.
func TestSubscriptions(t *testing.T) {
	addr := emulator(t)
	c := openConn(t, addr, gcppubsub.Config{})
	ctx := ctxT(t)
	if got, err := c.Subscriptions(ctx, "orders"); err != nil || len(got) != 0 {
		t.Fatalf("missing topic: %v, %v; want none", got, err)
	}
	for _, s := range []string{"shipping", "billing"} {
		if _, err := c.Subscribe(ctx, "orders", s, transport.SubscriberConfig{Order: transport.OrderDelivery}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Subscribe(ctx, "other", "audit", transport.SubscriberConfig{Order: transport.OrderDelivery}); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, addr)
	plain := testPrefix(t) + "plain"
	if _, err := raw.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: subPath(plain), Topic: topicPath(testPrefix(t) + "orders"),
	}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Subscriptions(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"billing", "shipping", plain}; !slices.Equal(got, want) {
		t.Errorf("Subscriptions(orders) = %v; want %v", got, want)
	}
}
