package conformance

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/courierhq/courier/transport"
)

func init() {
	// Not a middleware check, but it is wired the same way so that every adapter runs it.
	middlewareTests = append(middlewareTests, namedTest{"Backlog", testBacklog})
}

// ApproximateSettle is how long an Approximate backlog may take to settle: SQS documents
// that its Approximate* attributes may not be consistent until about a minute after
// producers and consumers stop.
const ApproximateSettle = 90 * time.Second

// ApproximateSlack is how far an Approximate backlog may be from the truth once settled,
// as a fraction of the messages published (5%).
const ApproximateSlack = 0.05

// testBacklog: a subscription with n unconsumed messages reports n (Kafka: the sum of its
// partitions' lags; Approximate brokers within ApproximateSlack), and nothing pending once
// they are consumed. A broker without Capabilities.Backlog answers ErrUnsupported.
func testBacklog(t *testing.T, h *Harness) {
	c := h.open(t)
	topic, sub := h.NewTopic(t), "backlog"
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	if err := c.EnsureSubscription(ctx, topic, sub); err != nil {
		t.Fatalf("EnsureSubscription: %v", err)
	}
	if !c.Capabilities().Backlog {
		if _, err := c.Backlog(ctx, topic, sub); !errors.Is(err, transport.ErrUnsupported) {
			t.Fatalf("Backlog without Capabilities.Backlog: %v; want ErrUnsupported", err)
		}
		return
	}
	if c.Capabilities().FanOut {
		if _, err := c.Backlog(ctx, topic, "never-subscribed"); !errors.Is(err, transport.ErrSubscriptionNotFound) {
			t.Errorf("Backlog of a subscription never made: %v; want ErrSubscriptionNotFound", err)
		}
	}
	if _, err := c.Backlog(ctx, h.NewTopic(t), sub); !errors.Is(err, transport.ErrSubscriptionNotFound) {
		t.Errorf("Backlog on a topic never made: %v; want ErrSubscriptionNotFound", err)
	}
	n := h.n(500)
	publish(t, c, topic, numbered("backlog", n), 100)
	b := waitBacklog(t, h, c, topic, sub, n, func(b transport.Backlog) int64 { return b.Messages })
	t.Logf("after publishing %d: %+v", n, b)
	if len(b.Partitions) > 0 {
		var sum int64
		for _, p := range b.Partitions {
			sum += p.Lag
		}
		if sum != b.Messages {
			t.Errorf("partition lags sum to %d; Messages = %d", sum, b.Messages)
		}
	}

	s := h.subscribe(t, c, topic, sub, transport.SubscriberConfig{})
	col := newCollector()
	r := h.run(t, s, col.handler)
	col.waitDistinct(t, n, h.Timeout)
	waitBacklog(t, h, c, topic, sub, 0, transport.Backlog.Pending)
	if err := r.stop(t, h.Timeout); err != nil {
		t.Fatal(err)
	}
}

// waitBacklog polls Backlog until count(backlog) is want (within ApproximateSlack of n
// where the broker's counts are approximate) and returns the last answer.
func waitBacklog(t *testing.T, h *Harness, c *transport.Conn, topic, sub string, want int, count func(transport.Backlog) int64) transport.Backlog {
	t.Helper()
	start, limit := time.Now(), h.Timeout
	var last transport.Backlog
	for {
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		b, err := c.Backlog(ctx, topic, sub)
		cancel()
		if err != nil {
			t.Fatalf("Backlog: %v", err)
		}
		if b.Approximate {
			limit = max(limit, ApproximateSettle)
		}
		got, slack := count(b), int64(0)
		if b.Approximate {
			slack = int64(float64(h.n(500)) * ApproximateSlack)
		}
		if got >= int64(want)-slack && got <= int64(want)+slack {
			return b
		}
		last = b
		if time.Since(start) > limit {
			t.Fatalf("backlog of %s/%s is %d (%+v); want %d (±%d)", topic, sub, got, last, want, slack)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
