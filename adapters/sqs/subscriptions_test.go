//go:build integration

package sqs_test

import (
	"context"
	"slices"
	"testing"

	"github.com/courierhq/courier/message"
)

// TestSubscriptions: a queue is its own one subscription; a queue that does not exist has
// none, and asking creates nothing.
func TestSubscriptions(t *testing.T) {
	ep := endpoint(t)
	c := open(t, testConfig(ep))
	ctx := context.Background()
	topic := uniqueQueue(t, ep, "")
	for range 2 { // the second time: the first did not create the queue
		if got, err := c.Subscriptions(ctx, topic); err != nil || len(got) != 0 {
			t.Fatalf("missing queue: %v, %v; want none", got, err)
		}
	}
	if err := c.Publish(ctx, topic, &message.Message{Payload: []byte("x")}); err != nil {
		t.Fatal(err) // creates the queue
	}
	if got, err := c.Subscriptions(ctx, topic); err != nil || !slices.Equal(got, []string{topic}) {
		t.Errorf("Subscriptions = %v, %v; want [%s]", got, err, topic)
	}
}
