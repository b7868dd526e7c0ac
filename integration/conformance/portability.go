package conformance

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// Features of the portable start position (SubscriberConfig.Start).
const (
	// LatestStart: a new subscription receives nothing published before Subscribe returned
	// (StartLatest, the default). SQS lacks it: the queue is the subscription, and it keeps
	// what was published to it before anyone subscribed.
	LatestStart Feature = "latest-start"
	// History: a new subscription with StartEarliest also receives what the topic held
	// before it existed (Kafka's retained log, an SQS queue's backlog). Brokers that keep
	// messages only for existing subscriptions (RabbitMQ, Pub/Sub, memory://) lack it.
	History Feature = "history"
)

// portabilityTests are the checks of the notions every broker must mean the same way.
var portabilityTests = []namedTest{
	{"OneSubscriptionNameOnTwoTopics", testOneNameTwoTopics},
	{"NewSubscriptionStartsLatest", testStartLatest},
	{"NewSubscriptionStartsEarliest", testStartEarliest},
	{"PublishOrderRefusedWhereUnkept", testPublishOrderRefused},
	{"PublishWithoutSubscription", testPublishWithoutSubscription},
}

// testOneNameTwoTopics: one subscription name ("billing") on two topics is two
// subscriptions, each with its own default dead-letter subscription, each receiving only its
// topic's messages.
func testOneNameTwoTopics(t *testing.T, h *Harness) {
	c := h.open(t)
	t1, t2 := h.NewTopic(t), h.NewTopic(t)
	col1, col2 := newCollector(), newCollector()
	h.run(t, h.subscribe(t, c, t1, "billing", transport.SubscriberConfig{}), col1.handler)
	h.run(t, h.subscribe(t, c, t2, "billing", transport.SubscriberConfig{}), col2.handler)
	publish(t, c, t1, []*message.Message{{ID: "on-1", Payload: []byte("1")}}, 1)
	publish(t, c, t2, []*message.Message{{ID: "on-2", Payload: []byte("2")}}, 1)
	col1.waitDistinct(t, 1, h.Timeout)
	col2.waitDistinct(t, 1, h.Timeout)
	col1.quiet(500 * time.Millisecond)
	for _, tc := range []struct {
		col  *collector
		want string
	}{{col1, "on-1"}, {col2, "on-2"}} {
		for _, r := range tc.col.snapshot() {
			if r.ID != tc.want || r.Subscription != "billing" {
				t.Errorf("delivered %s to subscription %q; want only %s to billing", r.ID, r.Subscription, tc.want)
			}
		}
	}
}

// startCase publishes A, subscribes with start, publishes B, runs the subscriber, and returns
// what it received once B arrived (and a moment more).
func startCase(t *testing.T, h *Harness, start transport.StartPosition) map[string]bool {
	c := h.open(t)
	topic := h.NewTopic(t)
	publish(t, c, topic, []*message.Message{{ID: "A", Payload: []byte("before")}}, 1)
	s := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Start: start})
	publish(t, c, topic, []*message.Message{{ID: "B", Payload: []byte("after")}}, 1)
	col := newCollector()
	h.run(t, s, col.handler)
	deadline := time.Now().Add(h.Timeout)
	for !seenIDs(col)["B"] && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	col.quiet(time.Second) // A, where it comes, comes before B; give it a moment anyway
	got := seenIDs(col)
	if !got["B"] {
		t.Fatalf("start %v: B, published after Subscribe returned, was not delivered (got %v)", start, got)
	}
	return got
}

func seenIDs(c *collector) map[string]bool {
	got := map[string]bool{}
	for _, r := range c.snapshot() {
		got[r.ID] = true
	}
	return got
}

// testStartLatest: publish A, subscribe (default start), publish B → only B; where the broker
// lacks LatestStart (SQS) A is delivered too, as documented.
func testStartLatest(t *testing.T, h *Harness) {
	got := startCase(t, h, transport.StartLatest)
	if want := !h.supports(LatestStart); got["A"] != want {
		t.Errorf("StartLatest: A (published before Subscribe) delivered = %v; want %v (%s)", got["A"], want, h.Unsupported[LatestStart])
	}
}

// testStartEarliest: publish A, subscribe with StartEarliest, publish B → A and B where the
// broker keeps history, else only B.
func testStartEarliest(t *testing.T, h *Harness) {
	got := startCase(t, h, transport.StartEarliest)
	if want := h.supports(History); got["A"] != want {
		t.Errorf("StartEarliest: A (published before Subscribe) delivered = %v; want %v (%s)", got["A"], want, h.Unsupported[History])
	}
}

// testPublishOrderRefused: a subscriber that promises publish order (OrderPublish, the
// default) on a broker that cannot deliver in publish order is refused at Subscribe with
// ErrUnsupported; elsewhere it is accepted.
func testPublishOrderRefused(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	s, err := c.Subscribe(ctx, topic, "s1", transport.SubscriberConfig{})
	if h.supports(DeliveryOrder) {
		if err != nil {
			t.Fatalf("OrderPublish: %v", err)
		}
		_ = s.Close(ctx)
		return
	}
	if !errors.Is(err, transport.ErrUnsupported) {
		t.Fatalf("OrderPublish on a broker without delivery order: err = %v; want ErrUnsupported", err)
	}
	t.Logf("refused as it should be: %v", err)
}

// testPublishWithoutSubscription: publishing to a topic nobody subscribed to is not an
// error on any broker (what happens to the message is the broker's: see LatestStart).
func testPublishWithoutSubscription(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	if err := c.Publish(ctx, topic, &message.Message{ID: "nobody", Payload: []byte("x")}); err != nil {
		t.Errorf("publish to a topic without subscriptions: %v; want nil", err)
	}
}
