package memory_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
	"github.com/courierhq/courier/transport/driver"
)

// TestBacklog: every count moves as messages are published, received, nacked with a delay,
// acked and released by Close; unknown topics and subscriptions are not found; a closed
// broker says so.
func TestBacklog(t *testing.T) {
	ctx := context.Background()
	b, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := transport.NewConn(b, transport.ConnConfig{})
	if !c.Capabilities().Backlog {
		t.Fatal("Capabilities().Backlog = false")
	}
	check := func(step string, want driver.Backlog) {
		t.Helper()
		got, err := c.Backlog(ctx, "orders", "billing")
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: Backlog = %+v; want %+v", step, got, want)
		}
	}
	r, err := b.Subscribe(ctx, driver.SubscriptionSpec{Topic: "orders", Subscription: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	check("empty", driver.Backlog{Consumers: 1})
	msgs := make([]*message.Message, 5)
	for i := range msgs {
		msgs[i] = &message.Message{ID: fmt.Sprint(i)}
	}
	if err := b.Publish(ctx, "orders", msgs); err != nil {
		t.Fatal(err)
	}
	check("published 5", driver.Backlog{Messages: 5, Consumers: 1})
	buf := make([]*message.Message, 3)
	n, err := r.Receive(ctx, buf)
	if err != nil || n != 3 {
		t.Fatalf("Receive = %d, %v", n, err)
	}
	check("received 3", driver.Backlog{Messages: 2, InFlight: 3, Consumers: 1})
	if err := r.Nack(ctx, buf[0], time.Hour); err != nil {
		t.Fatal(err)
	}
	check("nacked 1 for an hour", driver.Backlog{Messages: 2, InFlight: 2, Delayed: 1, Consumers: 1})
	if err := r.Ack(ctx, buf[1:2]); err != nil {
		t.Fatal(err)
	}
	check("acked 1", driver.Backlog{Messages: 2, InFlight: 1, Delayed: 1, Consumers: 1})
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	check("receiver closed", driver.Backlog{Messages: 3, Delayed: 1})
	if got, _ := c.Backlog(ctx, "orders", "billing"); got.Pending() != 4 {
		t.Errorf("Pending = %d; want 4", got.Pending())
	}

	if _, err := c.Backlog(ctx, "orders", "nobody"); !errors.Is(err, transport.ErrSubscriptionNotFound) {
		t.Errorf("unknown subscription: %v; want ErrSubscriptionNotFound", err)
	}
	if _, err := c.Backlog(ctx, "nothing", "billing"); !errors.Is(err, transport.ErrSubscriptionNotFound) || !errors.Is(err, transport.ErrTopicNotFound) {
		t.Errorf("unknown topic: %v; want ErrSubscriptionNotFound and ErrTopicNotFound", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Backlog(ctx, "orders", "billing"); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("after Close: %v; want ErrClosed", err)
	}
	if _, err := b.Backlog(ctx, "orders", "billing"); !errors.Is(err, driver.ErrClosed) {
		t.Errorf("driver after Close: %v; want ErrClosed", err)
	}
}
