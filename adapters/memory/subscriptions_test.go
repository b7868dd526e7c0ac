package memory_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	_ "github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/transport"
)

// TestSubscriptions: Conn.Subscriptions lists exactly the subscriptions made on a topic, none
// for a topic without any, and fails after Close.
func TestSubscriptions(t *testing.T) {
	ctx := context.Background()
	c, err := transport.Open(ctx, "memory://")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Subscriptions(ctx, "orders"); err != nil || len(got) != 0 {
		t.Fatalf("unknown topic: %v, %v; want none", got, err)
	}
	for _, s := range []string{"shipping", "billing"} {
		if _, err := c.Subscribe(ctx, "orders", s, transport.SubscriberConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Subscribe(ctx, "other", "audit", transport.SubscriberConfig{}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Subscriptions(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	// Subscribe also made the dead-letter topic's keeper, which is on orders.dlq, not orders.
	if want := []string{"billing", "shipping"}; !slices.Equal(got, want) {
		t.Errorf("Subscriptions(orders) = %v; want %v", got, want)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscriptions(ctx, "orders"); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("after Close: %v; want ErrClosed", err)
	}
}
