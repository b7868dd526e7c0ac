//go:build integration

package gcppubsub_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/courierhq/courier/adapters/gcppubsub"
	"github.com/courierhq/courier/internal/adaptertest"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// TestInteropPlainPublisherToCourier: messages a plain v2 client publishes with native
// attributes and ordering keys only reach Courier as adaptertest.PlainToCourier requires, the
// ordering key as Key and Pub/Sub's message ID as the ID.
func TestInteropPlainPublisherToCourier(t *testing.T) {
	addr := emulator(t)
	c := openConn(t, addr, gcppubsub.Config{})
	topic := "interop-in"
	pub := rawClient(t, addr).Publisher(topicPath(testPrefix(t) + topic)) // PlainToCourier subscribes first: the topic exists
	pub.EnableMessageOrdering = true
	defer pub.Stop()
	adaptertest.PlainToCourier(t, adaptertest.PlainProducer{
		Conn: c, Topic: topic,
		Publish: func(ctx context.Context, i int, p []byte) error {
			_, err := pub.Publish(ctx, &pubsub.Message{Data: p, OrderingKey: fmt.Sprintf("cust-%d", i),
				Attributes: map[string]string{"tenant": "acme", "n": fmt.Sprint(i)}}).Get(ctx)
			return err
		},
		NativeID: func(m *message.Message) string {
			var native *pubsub.Message
			if !m.As(&native) {
				return "not a *pubsub.Message"
			}
			return native.ID
		},
	})
}

// TestInteropCourierToPlainSubscriber: a plain v2 client's subscription on Courier's topic
// reads the payload as data, the ID in the courier-id attribute, the key as ordering key and
// the headers as attributes.
func TestInteropCourierToPlainSubscriber(t *testing.T) {
	addr := emulator(t)
	c := openConn(t, addr, gcppubsub.Config{})
	topic := "interop-out"
	ctx := ctxT(t)
	if _, err := c.Subscribe(ctx, topic, "courier", transport.SubscriberConfig{Order: transport.OrderDelivery}); err != nil {
		t.Fatal(err) // creates the topic
	}
	raw := rawClient(t, addr)
	subID := testPrefix(t) + "plain"
	if _, err := raw.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: subPath(subID), Topic: topicPath(testPrefix(t) + topic), AckDeadlineSeconds: 10, EnableMessageOrdering: true,
	}); err != nil {
		t.Fatal(err)
	}
	want := adaptertest.PublishAll(ctx, t, c, topic)
	var mu sync.Mutex
	got := map[string]*pubsub.Message{}
	rctx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	err := raw.Subscriber(subPath(subID)).Receive(rctx, func(_ context.Context, pm *pubsub.Message) {
		pm.Ack()
		mu.Lock()
		defer mu.Unlock()
		got[pm.Attributes[message.HeaderID]] = pm
		if len(got) == len(want) {
			stop()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range want {
		pm, ok := got[m.ID]
		if !ok {
			t.Errorf("no message with attribute %s=%q", message.HeaderID, m.ID)
			continue
		}
		if !bytes.Equal(pm.Data, m.Payload) || pm.OrderingKey != m.Key {
			t.Errorf("%s: data %x ordering key %q", m.ID, pm.Data, pm.OrderingKey)
		}
		adaptertest.CheckHeaders(t, m, func(k string) string { return pm.Attributes[k] })
	}
}
