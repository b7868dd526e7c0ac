//go:build integration

package kafka_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/transport"
)

// TestSubscriptions: Conn.Subscriptions lists the Courier subscriptions of a topic (by name)
// and a plain group that committed an offset on it (by group ID), not a subscription of
// another topic, and none for a topic that does not exist.
func TestSubscriptions(t *testing.T) {
	c := openConn(t, "partitions=2")
	topic, other := topicName(t), topicName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if got, err := c.Subscriptions(ctx, topic); err != nil || len(got) != 0 {
		t.Fatalf("missing topic: %v, %v; want none", got, err)
	}
	for _, s := range []string{"shipping", "billing"} {
		if _, err := c.Subscribe(ctx, topic, s, transport.SubscriberConfig{Order: transport.OrderDelivery}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Subscribe(ctx, other, "audit", transport.SubscriberConfig{Order: transport.OrderDelivery}); err != nil {
		t.Fatal(err)
	}
	plain := topic + "-plain-group"
	tr := &kafkago.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(strings.Split(bootstrap(t), ",")...), Transport: tr}
	res, err := cl.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{GroupID: plain, GenerationID: -1,
		Topics: map[string][]kafkago.OffsetCommit{topic: {{Partition: 0, Offset: 0}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			t.Fatal(p.Error)
		}
	}
	got, err := c.Subscriptions(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"billing", plain, "shipping"}; !slices.Equal(got, want) {
		t.Errorf("Subscriptions = %v; want %v", got, want)
	}
}
