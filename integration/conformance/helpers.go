package conformance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// open opens a connection that is closed when the test ends.
func (h *Harness) open(t *testing.T) *transport.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	c := h.Open(ctx, t)
	if c == nil {
		t.Fatal("Harness.Open returned a nil connection")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		defer cancel()
		if err := c.Close(ctx); err != nil && !errors.Is(err, transport.ErrClosed) {
			t.Errorf("close connection: %v", err)
		}
	})
	return c
}

func (h *Harness) subscribe(t *testing.T, c *transport.Conn, topic, sub string, cfg transport.SubscriberConfig) *transport.Subscriber {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	if cfg.Retry == (transport.RetryPolicy{}) {
		cfg.Retry = fastRetry
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = h.Timeout
	}
	if cfg.Order == transport.OrderPublish && !cfg.DisableOrdering && !h.supports(DeliveryOrder) {
		// The broker refuses to promise publish order (testPublishOrderRefused); the tests
		// that need order check what OrderDelivery gives.
		cfg.Order = transport.OrderDelivery
	}
	s, err := c.Subscribe(ctx, topic, sub, cfg)
	if err != nil {
		t.Fatalf("subscribe %s/%s: %v", topic, sub, err)
	}
	return s
}

// running is a subscriber's Run in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// run starts s.Run(h); the returned value's stop cancels it and waits. The test fails if Run
// does not return within the harness timeout or returns an error.
func (h *Harness) run(t *testing.T, s *transport.Subscriber, handler message.Handler) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx, handler) }()
	t.Cleanup(func() { r.stop(t, h.Timeout) })
	return r
}

func (r *running) stop(t *testing.T, timeout time.Duration) error {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
			if r.err != nil {
				t.Errorf("Run returned %v after cancel; want nil", r.err)
			}
		case <-time.After(timeout + 5*time.Second):
			r.err = errors.New("Run did not return after cancel")
			t.Errorf("%v (within %v)", r.err, timeout+5*time.Second)
		}
	})
	return r.err
}

// received is a copy of a delivered message, safe to keep after the handler returns.
type received struct {
	ID, Key, Topic, Subscription string
	Payload                      []byte
	Headers                      map[string]string
	Attempt                      int
	PublishTime                  time.Time
}

// collector records deliveries and lets a test wait for them.
type collector struct {
	mu     sync.Mutex
	all    []received
	byID   map[string]int
	change chan struct{}
}

func newCollector() *collector {
	return &collector{byID: map[string]int{}, change: make(chan struct{}, 1)}
}

func (c *collector) record(m *message.Message) {
	r := received{ID: m.ID, Key: m.Key, Topic: m.Topic, Subscription: m.Subscription,
		Payload: append([]byte(nil), m.Payload...), Attempt: m.Attempt, PublishTime: m.PublishTime}
	if m.Headers != nil {
		r.Headers = make(map[string]string, len(m.Headers))
		for k, v := range m.Headers {
			r.Headers[k] = v
		}
	}
	c.mu.Lock()
	c.all = append(c.all, r)
	c.byID[m.ID]++
	c.mu.Unlock()
	select {
	case c.change <- struct{}{}:
	default:
	}
}

// handler records every delivery and acks it.
func (c *collector) handler(_ context.Context, m *message.Message) error {
	c.record(m)
	return nil
}

// distinct returns how many different IDs were seen.
func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID)
}

func (c *collector) snapshot() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]received(nil), c.all...)
}

// waitDistinct waits until n distinct IDs were delivered, failing the test after timeout.
func (c *collector) waitDistinct(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if c.distinct() >= n {
			return
		}
		select {
		case <-c.change:
		case <-deadline:
			t.Fatalf("timed out after %v: %d of %d distinct messages delivered", timeout, c.distinct(), n)
		}
	}
}

// quiet waits for d and reports whether nothing new arrived meanwhile.
func (c *collector) quiet(d time.Duration) bool {
	before := len(c.snapshot())
	time.Sleep(d)
	return len(c.snapshot()) == before
}

// publish publishes msgs (in batches of at most batch) and fails the test on error.
func publish(t *testing.T, c *transport.Conn, topic string, msgs []*message.Message, batch int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := 0; i < len(msgs); i += batch {
		j := min(i+batch, len(msgs))
		if err := c.Publish(ctx, topic, msgs[i:j]...); err != nil {
			t.Fatalf("publish %d messages to %s: %v", j-i, topic, err)
		}
	}
}

// numbered returns n messages with payload "prefix-i" and header "n" = i.
func numbered(prefix string, n int) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = &message.Message{Payload: []byte(fmt.Sprintf("%s-%d", prefix, i)),
			Headers: message.Headers{"n": strconv.Itoa(i)}}
	}
	return msgs
}

func ids(msgs []*message.Message) map[string]bool {
	s := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		s[m.ID] = true
	}
	return s
}
