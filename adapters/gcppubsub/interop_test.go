//go:build integration

package gcppubsub_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/courierhq/courier/adapters/gcppubsub"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// failFirst returns a fail function for consume that fails each payload's first delivery
// with a plain error.
func failFirst() func(*message.Message) error {
	var mu sync.Mutex
	seen := map[string]bool{}
	return func(m *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if !seen[string(m.Payload)] {
			seen[string(m.Payload)] = true
			return errors.New("first delivery fails")
		}
		return nil
	}
}

// TestInteropPlainPublisherToCourier: messages a plain v2 client publishes with native
// attributes and ordering keys only reach Courier byte-exact (binary and empty data), with
// their attributes as headers, the ordering key as Key, Pub/Sub's message ID as an ID that is
// the same on the redelivery after a failed attempt, and are acknowledged for good.
func TestInteropPlainPublisherToCourier(t *testing.T) {
	addr := emulator(t)
	c := openConn(t, addr, gcppubsub.Config{})
	topic := "interop-in"
	cfg := transport.SubscriberConfig{Order: transport.OrderDelivery,
		Retry: transport.RetryPolicy{MaxAttempts: 5, InitialDelay: 50 * time.Millisecond}}
	rec := consume(t, c, topic, "s", cfg, failFirst())
	raw := rawClient(t, addr)
	pub := raw.Publisher(topicPath(testPrefix(t) + topic))
	pub.EnableMessageOrdering = true
	defer pub.Stop()
	payloads := [][]byte{{0, 1, 2, 0xfe, 0xff}, {}, []byte(`{"text":"héllo"}`)}
	ctx := ctxT(t)
	for i, p := range payloads {
		res := pub.Publish(ctx, &pubsub.Message{Data: p, OrderingKey: fmt.Sprintf("cust-%d", i),
			Attributes: map[string]string{"tenant": "acme", "n": fmt.Sprint(i)}})
		if _, err := res.Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ds := rec.waitFor(t, 60*time.Second, "every message twice", func(ds []delivered) bool {
		n := map[string]int{}
		for _, d := range ds {
			n[d.Payload]++
		}
		for _, p := range payloads {
			if n[string(p)] < 2 {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // nothing more may arrive
	if all := rec.snapshot(); len(all) != 2*len(payloads) {
		t.Errorf("%d deliveries; want %d (each fails once, then succeeds for good)", len(all), 2*len(payloads))
	}
	for i, p := range payloads {
		var got []delivered
		for _, d := range ds {
			if d.Payload == string(p) {
				got = append(got, d)
			}
		}
		first, second := got[0], got[1]
		if !bytes.Equal([]byte(second.Payload), p) || len(second.Native.Data) != len(p) {
			t.Errorf("payload %x; want %x", second.Payload, p)
		}
		if first.ID == "" || first.ID != second.ID || first.ID != second.Native.ID {
			t.Errorf("message %d: IDs %q then %q; want Pub/Sub's message ID %q on both", i, first.ID, second.ID, second.Native.ID)
		}
		if want := fmt.Sprintf("cust-%d", i); first.Key != want || second.Key != want {
			t.Errorf("message %d: keys %q, %q; want the ordering key %q", i, first.Key, second.Key, want)
		}
		if second.Headers["tenant"] != "acme" || second.Headers["n"] != fmt.Sprint(i) || len(second.Headers) != 2 {
			t.Errorf("message %d: headers %v", i, second.Headers)
		}
	}
	rec2 := consume(t, c, topic, "s", cfg, nil)
	time.Sleep(2 * time.Second)
	if n := len(rec2.snapshot()); n != 0 {
		t.Errorf("a second subscriber received %d messages; want none (all acknowledged)", n)
	}
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
	want := []*message.Message{
		{ID: "id-bin", Key: "cust-7", Payload: []byte{0, 0, 0, 0xff}, Headers: message.Headers{"tenant": "acme", "trace": "t1"}},
		{ID: "id-empty", Key: "cust-8", Payload: []byte{}, Headers: message.Headers{"tenant": "beta"}},
	}
	for _, m := range want {
		if err := c.Publish(ctx, topic, m); err != nil {
			t.Fatal(err)
		}
	}
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
		for k, v := range m.Headers {
			if pm.Attributes[k] != v {
				t.Errorf("%s: attribute %q = %q; want %q", m.ID, k, pm.Attributes[k], v)
			}
		}
	}
}
