package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// Run runs the whole suite against the broker h opens. Subtests run one after another: real
// brokers on small machines give clearer failures that way.
func Run(t *testing.T, h Harness) {
	if h.Open == nil {
		t.Fatal("conformance: Harness.Open is required")
	}
	h.fill()
	tests := []namedTest{
		{"RoundTrip", testRoundTrip},
		{"BinaryAndEmptyPayloads", testBinaryAndEmpty},
		{"UnicodeHeaders", testUnicodeHeaders},
		{"OversizeMessage", testOversizeMessage},
		{"OversizeHeader", testOversizeHeader},
		{"LargeBatch", testLargeBatch},
		{"FanOut", testFanOut},
		{"CompetingConsumers", testCompetingConsumers},
		{"NackRedelivery", testNackRedelivery},
		{"PermanentErrorDeadLetters", testPermanentDeadLetter},
		{"RetriesExhaustedDeadLetters", testExhaustedDeadLetter},
		{"NativeDeadLetter", testNativeDeadLetter},
		{"KeyOrderUnderConcurrency", testKeyOrder},
		{"SubscriberRestartLosesNothing", testSubscriberRestart},
		{"ReconnectLosesNothing", testReconnect},
		{"PublishAfterClose", testPublishAfterClose},
		{"CancelStopsPromptly", testCancelStopsPromptly},
		{"CloseWaitsForInFlight", testCloseWaitsForInFlight},
		{"BadInput", testBadInput},
	}
	tests = append(tests, portabilityTests...)
	tests = append(tests, middlewareTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, &h) })
	}
}

type namedTest struct {
	name string
	fn   func(*testing.T, *Harness)
}

// middlewareTests are the middleware features' checks against the broker under test; each
// middleware_*.go file of this package adds its own from init, so every adapter runs them.
var middlewareTests []namedTest

// testRoundTrip: payload, headers, key and ID arrive intact, with the receive-side fields set.
func testRoundTrip(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{})
	col := newCollector()
	h.run(t, sub, col.handler)

	want := &message.Message{
		ID:      "order-42",
		Key:     "customer-7",
		Payload: []byte(`{"order":42,"total":"19.90"}`),
		Headers: message.Headers{"tenant": "acme", "trace-id": "abc123"},
	}
	publish(t, c, topic, []*message.Message{want}, 1)
	col.waitDistinct(t, 1, h.Timeout)

	got := col.snapshot()[0]
	if got.ID != want.ID || got.Key != want.Key || !bytes.Equal(got.Payload, want.Payload) {
		t.Errorf("got id=%q key=%q payload=%q; want id=%q key=%q payload=%q", got.ID, got.Key, got.Payload, want.ID, want.Key, want.Payload)
	}
	for k, v := range want.Headers {
		if got.Headers[k] != v {
			t.Errorf("header %q = %q; want %q (all: %v)", k, got.Headers[k], v, got.Headers)
		}
	}
	if got.Topic != topic || got.Subscription != "s1" {
		t.Errorf("receive side: topic=%q subscription=%q; want %q, %q", got.Topic, got.Subscription, topic, "s1")
	}
	if got.Attempt != 1 {
		t.Errorf("Attempt = %d on a first delivery; want 1", got.Attempt)
	}
	if got.PublishTime.IsZero() {
		t.Error("PublishTime is zero on receive")
	} else if d := time.Since(got.PublishTime); d < -time.Minute || d > 10*time.Minute {
		t.Errorf("PublishTime %v is not near now (off by %v)", got.PublishTime, d)
	}

	// An ID left empty is set at publish, and the caller sees it.
	m := &message.Message{Payload: []byte("no id")}
	publish(t, c, topic, []*message.Message{m}, 1)
	if len(m.ID) != 36 {
		t.Fatalf("Publish set ID %q; want a UUID", m.ID)
	}
	col.waitDistinct(t, 2, h.Timeout)
	col.mu.Lock()
	seen := col.byID[m.ID]
	col.mu.Unlock()
	if seen == 0 {
		t.Errorf("message published with generated ID %s was not delivered under that ID", m.ID)
	}
}

func testBinaryAndEmpty(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{})
	col := newCollector()
	h.run(t, sub, col.handler)

	binary := make([]byte, 512)
	for i := range binary {
		binary[i] = byte(i)
	}
	msgs := []*message.Message{
		{ID: "binary", Payload: binary},
		{ID: "empty", Payload: []byte{}},
		{ID: "nil"},
	}
	publish(t, c, topic, msgs, 3)
	col.waitDistinct(t, 3, h.Timeout)
	for _, r := range col.snapshot() {
		switch r.ID {
		case "binary":
			if !bytes.Equal(r.Payload, binary) {
				t.Errorf("binary payload corrupted: got %d bytes %x…", len(r.Payload), r.Payload[:min(16, len(r.Payload))])
			}
		case "empty", "nil":
			if len(r.Payload) != 0 {
				t.Errorf("%s payload arrived as %q; want empty", r.ID, r.Payload)
			}
		}
	}
}

func testUnicodeHeaders(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{})
	col := newCollector()
	h.run(t, sub, col.handler)

	headers := message.Headers{
		"greeting":   "héllo wörld — こんにちは 👋",
		"empty":      "",
		"emoji-🚀":    "rocket",
		"with space": "a b\tc",
	}
	publish(t, c, topic, []*message.Message{{ID: "u1", Key: "ключ", Headers: headers, Payload: []byte("x")}}, 1)
	col.waitDistinct(t, 1, h.Timeout)
	got := col.snapshot()[0]
	if got.Key != "ключ" {
		t.Errorf("unicode key = %q", got.Key)
	}
	for k, v := range headers {
		if gv, ok := got.Headers[k]; !ok || gv != v {
			t.Errorf("header %q = %q (present %v); want %q", k, gv, ok, v)
		}
	}
}

// testOversizeMessage: a message over the broker's limit fails with ErrMessageTooLarge naming
// the limit; the rest of its batch is published.
func testOversizeMessage(t *testing.T, h *Harness) {
	c := h.open(t)
	limit := c.Capabilities().MaxMessageBytes
	if limit == 0 {
		t.Skip("broker declares no message size limit")
	}
	topic := h.NewTopic(t)
	sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{})
	col := newCollector()
	h.run(t, sub, col.handler)

	msgs := []*message.Message{
		{ID: "small-1", Payload: []byte("ok")},
		{ID: "huge", Payload: bytes.Repeat([]byte("x"), limit+1)},
		{ID: "small-2", Payload: []byte("ok")},
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	err := c.Publish(ctx, topic, msgs...)
	if !errors.Is(err, transport.ErrMessageTooLarge) {
		t.Fatalf("publish oversize: err = %v; want ErrMessageTooLarge", err)
	}
	var pe *transport.PublishError
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Index != 1 || pe.Failed[0].ID != "huge" {
		t.Fatalf("publish oversize: want a PublishError naming only message 1 (huge); got %#v", err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(limit)) {
		t.Errorf("error %q does not name the limit %d", err, limit)
	}
	col.waitDistinct(t, 2, h.Timeout)
	if col.quiet(200 * time.Millisecond); col.distinct() != 2 {
		t.Errorf("delivered %d distinct messages; want the 2 small ones", col.distinct())
	}
	for _, r := range col.snapshot() {
		if r.ID == "huge" {
			t.Error("the oversize message was delivered")
		}
	}
}

func testOversizeHeader(t *testing.T, h *Harness) {
	c := h.open(t)
	caps := c.Capabilities()
	if caps.MaxHeaderValueBytes == 0 && caps.MaxHeaderNameBytes == 0 {
		t.Skip("broker declares no header size limit")
	}
	topic := h.NewTopic(t)
	m := &message.Message{ID: "big-header", Payload: []byte("x"), Headers: message.Headers{}}
	if caps.MaxHeaderValueBytes > 0 {
		m.Headers["big"] = strings.Repeat("v", caps.MaxHeaderValueBytes+1)
	} else {
		m.Headers[strings.Repeat("k", caps.MaxHeaderNameBytes+1)] = "v"
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	err := c.Publish(ctx, topic, &message.Message{ID: "fine", Payload: []byte("y")}, m)
	if !errors.Is(err, transport.ErrInvalidMessage) {
		t.Fatalf("publish with oversize header: err = %v; want ErrInvalidMessage", err)
	}
	if !strings.Contains(err.Error(), "header") {
		t.Errorf("error %q does not say it is about a header", err)
	}
}

func testLargeBatch(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{})
	col := newCollector()
	h.run(t, sub, col.handler)
	n := h.n(1000)
	msgs := numbered("batch", n)
	publish(t, c, topic, msgs, n)
	col.waitDistinct(t, n, 4*h.Timeout)
	want := ids(msgs)
	for _, r := range col.snapshot() {
		if !want[r.ID] {
			t.Fatalf("unexpected message %s", r.ID)
		}
	}
}

func testFanOut(t *testing.T, h *Harness) {
	h.require(t, FanOut)
	c := h.open(t)
	topic := h.NewTopic(t)
	a, b := newCollector(), newCollector()
	h.run(t, h.subscribe(t, c, topic, "fan-a", transport.SubscriberConfig{}), a.handler)
	h.run(t, h.subscribe(t, c, topic, "fan-b", transport.SubscriberConfig{}), b.handler)
	n := h.n(50)
	publish(t, c, topic, numbered("fan", n), 10)
	a.waitDistinct(t, n, h.Timeout)
	b.waitDistinct(t, n, h.Timeout)
	for _, r := range a.snapshot() {
		if r.Subscription != "fan-a" {
			t.Fatalf("subscription a saw Subscription=%q", r.Subscription)
		}
	}
}

// testCompetingConsumers: two subscribers on one subscription split the messages and lose
// none.
func testCompetingConsumers(t *testing.T, h *Harness) {
	h.require(t, CompetingConsumers)
	c1 := h.open(t)
	topic := h.NewTopic(t)
	cfg := transport.SubscriberConfig{Concurrency: 1, Prefetch: 1}
	s1 := h.subscribe(t, c1, topic, "shared", cfg)
	s2 := h.subscribe(t, c1, topic, "shared", cfg)
	all := newCollector()
	var n1, n2 atomic.Int64
	slow := func(n *atomic.Int64) message.Handler {
		return func(ctx context.Context, m *message.Message) error {
			n.Add(1)
			time.Sleep(5 * time.Millisecond)
			return all.handler(ctx, m)
		}
	}
	h.run(t, s1, slow(&n1))
	h.run(t, s2, slow(&n2))
	n := h.n(200)
	msgs := numbered("work", n)
	publish(t, c1, topic, msgs, 50)
	all.waitDistinct(t, n, 4*h.Timeout)
	if n1.Load() == 0 || n2.Load() == 0 {
		t.Errorf("work not split: subscriber 1 handled %d, subscriber 2 handled %d", n1.Load(), n2.Load())
	}
	t.Logf("split %d / %d (%d deliveries for %d messages)", n1.Load(), n2.Load(), n1.Load()+n2.Load(), n)
}

// testNackRedelivery: a failed message comes back with its attempt count rising, and is handled
// once it succeeds.
func testNackRedelivery(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{})
	var mu sync.Mutex
	attempts := map[string][]int{}
	done := make(chan struct{})
	h.run(t, sub, func(_ context.Context, m *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[m.ID] = append(attempts[m.ID], m.Attempt)
		if len(attempts[m.ID]) < 3 {
			return errors.New("not yet")
		}
		if len(attempts[m.ID]) == 3 {
			close(done)
		}
		return nil
	})
	publish(t, c, topic, []*message.Message{{ID: "flaky", Payload: []byte("x")}}, 1)
	select {
	case <-done:
	case <-time.After(2 * h.Timeout):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("message not redelivered 3 times; attempts seen: %v", attempts["flaky"])
	}
	time.Sleep(300 * time.Millisecond) // a 4th delivery would mean the ack was lost
	mu.Lock()
	defer mu.Unlock()
	got := attempts["flaky"]
	if len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Errorf("attempts seen %v; want [1 2 3]", got)
	}
}

// dlqCollector subscribes to the default dead-letter subscription of topic/sub.
func (h *Harness) dlqCollector(t *testing.T, c *transport.Conn, topic, sub string) *collector {
	dlq := newCollector()
	s := h.subscribe(t, c, c.DefaultDeadLetterTopic(topic), sub+transport.DeadLetterSuffix, transport.SubscriberConfig{})
	h.run(t, s, dlq.handler)
	return dlq
}

func testPermanentDeadLetter(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{})
	var calls atomic.Int64
	h.run(t, sub, func(context.Context, *message.Message) error {
		calls.Add(1)
		return message.Permanent(errors.New("order total is negative"))
	})
	dlq := h.dlqCollector(t, c, topic, "s1")
	publish(t, c, topic, []*message.Message{{ID: "bad-order", Key: "k1", Payload: []byte("payload-intact"), Headers: message.Headers{"app": "v"}}}, 1)
	dlq.waitDistinct(t, 1, h.Timeout)
	got := dlq.snapshot()[0]
	checks := map[string]string{
		message.HeaderDeadLetterReason:       "order total is negative",
		message.HeaderDeadLetterPermanent:    "true",
		message.HeaderDeadLetterAttempts:     "1",
		message.HeaderDeadLetterTopic:        topic,
		message.HeaderDeadLetterSubscription: "s1",
		"app":                                "v",
	}
	for k, v := range checks {
		if got.Headers[k] != v {
			t.Errorf("dead-letter header %q = %q; want %q", k, got.Headers[k], v)
		}
	}
	for _, k := range []string{message.HeaderDeadLetterFirstFailure, message.HeaderDeadLetterLastFailure} {
		if _, err := time.Parse(time.RFC3339Nano, got.Headers[k]); err != nil {
			t.Errorf("dead-letter header %q = %q: %v", k, got.Headers[k], err)
		}
	}
	if got.ID != "bad-order" || got.Key != "k1" || string(got.Payload) != "payload-intact" {
		t.Errorf("dead-letter copy: id=%q key=%q payload=%q", got.ID, got.Key, got.Payload)
	}
	time.Sleep(300 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times for a permanent failure; want 1 (no retries, acked after dead-lettering)", n)
	}
}

func testExhaustedDeadLetter(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Retry: transport.RetryPolicy{
		MaxAttempts: 3, InitialDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}})
	var calls atomic.Int64
	h.run(t, sub, func(context.Context, *message.Message) error {
		calls.Add(1)
		return errors.New("downstream unavailable")
	})
	dlq := h.dlqCollector(t, c, topic, "s1")
	publish(t, c, topic, []*message.Message{{ID: "doomed", Payload: []byte("x")}}, 1)
	dlq.waitDistinct(t, 1, 2*h.Timeout)
	got := dlq.snapshot()[0]
	if got.Headers[message.HeaderDeadLetterAttempts] != "3" || got.Headers[message.HeaderDeadLetterPermanent] != "false" {
		t.Errorf("dead-letter headers %v; want attempts=3 permanent=false", got.Headers)
	}
	if !strings.Contains(got.Headers[message.HeaderDeadLetterReason], "downstream unavailable") {
		t.Errorf("reason %q", got.Headers[message.HeaderDeadLetterReason])
	}
	time.Sleep(300 * time.Millisecond)
	if n := calls.Load(); n != 3 {
		t.Errorf("handler called %d times; want 3", n)
	}
}

func testNativeDeadLetter(t *testing.T, h *Harness) {
	h.require(t, NativeDeadLetter)
	c := h.open(t)
	if !c.Capabilities().NativeDeadLetter {
		t.Fatalf("harness does not list %q as unsupported, but Capabilities.NativeDeadLetter is false", NativeDeadLetter)
	}
	topic := h.NewTopic(t)
	dlTopic := c.DefaultDeadLetterTopic(topic)
	dlq := newCollector()
	h.run(t, h.subscribe(t, c, dlTopic, "native-dlq", transport.SubscriberConfig{}), dlq.handler)
	sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{NativeDeadLetter: true,
		Retry: transport.RetryPolicy{MaxAttempts: 2, InitialDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond}})
	h.run(t, sub, func(context.Context, *message.Message) error { return errors.New("always fails") })
	publish(t, c, topic, []*message.Message{{ID: "native", Payload: []byte("keep me")}}, 1)
	dlq.waitDistinct(t, 1, 4*h.Timeout)
	if got := dlq.snapshot()[0]; string(got.Payload) != "keep me" {
		t.Errorf("natively dead-lettered payload = %q", got.Payload)
	}
}

// testKeyOrder: with concurrency > 1 and failures retried, each key's messages are handled one
// at a time, in publish order (where the broker delivers in order: DeliveryOrder), while
// different keys run in parallel.
func testKeyOrder(t *testing.T, h *Harness) {
	ordered := h.supports(DeliveryOrder)
	if !ordered {
		t.Logf("broker lacks %q (%s): checking only that one key's messages never run concurrently", DeliveryOrder, h.Unsupported[DeliveryOrder])
	}
	c := h.open(t)
	topic := h.NewTopic(t)
	sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Concurrency: 8})
	keys, per := h.n(20), h.n(50)
	var (
		mu        sync.Mutex
		last      = map[string]int{}
		active    = map[string]bool{}
		failed    = map[string]bool{}
		inFlight  int
		maxFlight int
		errs      []string
	)
	col := newCollector()
	h.run(t, sub, func(ctx context.Context, m *message.Message) error {
		n, _ := strconv.Atoi(m.Headers["n"])
		mu.Lock()
		if active[m.Key] {
			errs = append(errs, fmt.Sprintf("key %s handled concurrently", m.Key))
		}
		active[m.Key] = true
		inFlight++
		maxFlight = max(maxFlight, inFlight)
		fail := n%7 == 3 && !failed[m.ID]
		if fail {
			failed[m.ID] = true
		} else {
			if prev, ok := last[m.Key]; ok && n <= prev && ordered {
				errs = append(errs, fmt.Sprintf("key %s: %d after %d", m.Key, n, prev))
			}
			last[m.Key] = max(last[m.Key], n)
		}
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		active[m.Key] = false
		inFlight--
		mu.Unlock()
		if fail {
			return errors.New("transient")
		}
		return col.handler(ctx, m)
	})
	var msgs []*message.Message
	for i := 0; i < per; i++ {
		for k := 0; k < keys; k++ {
			m := &message.Message{Key: fmt.Sprintf("key-%d", k), Payload: []byte("x"),
				Headers: message.Headers{"n": strconv.Itoa(i)}}
			msgs = append(msgs, m)
		}
	}
	publish(t, c, topic, msgs, 100)
	col.waitDistinct(t, len(msgs), 8*h.Timeout)
	mu.Lock()
	defer mu.Unlock()
	for _, e := range errs[:min(len(errs), 10)] {
		t.Error(e)
	}
	for k := 0; k < keys; k++ {
		if got := last[fmt.Sprintf("key-%d", k)]; got != per-1 {
			t.Errorf("key-%d ended at %d; want %d", k, got, per-1)
		}
	}
	if maxFlight < 2 {
		t.Errorf("at most %d handler ran at once; different keys should run in parallel", maxFlight)
	}
}

// testSubscriberRestart: stop a subscriber halfway; a new one on the same subscription gets
// every message the first did not ack.
func testSubscriberRestart(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	n := h.n(100)
	col := newCollector()
	// A short drain timeout cancels the handlers blocked below, as a deploy would.
	s1 := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Concurrency: 2, DrainTimeout: 300 * time.Millisecond})
	var handled atomic.Int64
	var r1 *running
	halfway := make(chan struct{})
	var once sync.Once
	r1 = h.run(t, s1, func(ctx context.Context, m *message.Message) error {
		if handled.Add(1) > int64(n/2) {
			once.Do(func() { close(halfway) })
			<-ctx.Done() // the rest are interrupted by the restart: not acked
			return ctx.Err()
		}
		return col.handler(ctx, m)
	})
	msgs := numbered("restart", n)
	publish(t, c, topic, msgs, 25)
	select {
	case <-halfway:
	case <-time.After(2 * h.Timeout):
		t.Fatalf("first subscriber handled only %d messages", handled.Load())
	}
	if err := r1.stop(t, 2*h.Timeout); err != nil {
		t.Fatal(err)
	}
	s2 := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Concurrency: 2})
	h.run(t, s2, col.handler)
	col.waitDistinct(t, n, 4*h.Timeout)
	want := ids(msgs)
	for _, r := range col.snapshot() {
		delete(want, r.ID)
	}
	if len(want) != 0 {
		t.Errorf("%d messages lost across the restart", len(want))
	}
}

// testReconnect: messages published and not consumed survive closing every connection.
func testReconnect(t *testing.T, h *Harness) {
	h.require(t, Reconnect)
	topic := h.NewTopic(t)
	n := h.n(50)
	msgs := numbered("persist", n)
	{
		c := h.open(t)
		s := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{})
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Fatalf("close idle subscriber: %v", err)
		}
		publish(t, c, topic, msgs, 25)
		if err := c.Close(ctx); err != nil {
			t.Fatalf("close connection: %v", err)
		}
	}
	c := h.open(t)
	col := newCollector()
	h.run(t, h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{}), col.handler)
	col.waitDistinct(t, n, 4*h.Timeout)
}

func testPublishAfterClose(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	err := c.Publish(ctx, topic, &message.Message{Payload: []byte("late")})
	if !errors.Is(err, transport.ErrClosed) {
		t.Errorf("publish after close: err = %v; want ErrClosed", err)
	}
	if _, err := c.Subscribe(ctx, topic, "s1", transport.SubscriberConfig{}); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("subscribe after close: err = %v; want ErrClosed", err)
	}
	if err := c.Close(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("second close: err = %v; want ErrClosed", err)
	}
}

func testCancelStopsPromptly(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	s := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(context.Context, *message.Message) error { return nil }) }()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after cancel; want nil", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Run took %v to return after cancel", d)
		}
	case <-time.After(h.Timeout):
		t.Fatalf("Run did not return within %v of cancel", h.Timeout)
	}
	if err := s.Run(context.Background(), func(context.Context, *message.Message) error { return nil }); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("second Run: err = %v; want ErrClosed", err)
	}
}

// testCloseWaitsForInFlight: Close lets a running handler finish and acks its message.
func testCloseWaitsForInFlight(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	s := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{})
	started := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	var calls atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- s.Run(context.Background(), func(ctx context.Context, m *message.Message) error {
			if calls.Add(1) == 1 {
				close(started)
				<-release
				finished.Store(true)
			}
			return nil
		})
	}()
	publish(t, c, topic, []*message.Message{{ID: "inflight", Payload: []byte("x")}}, 1)
	select {
	case <-started:
	case <-time.After(h.Timeout):
		t.Fatal("handler never started")
	}
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*h.Timeout)
		defer cancel()
		closed <- s.Close(ctx)
	}()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a handler was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(2 * h.Timeout):
		t.Fatal("Close did not return after the handler finished")
	}
	if !finished.Load() {
		t.Error("Close returned before the in-flight handler finished")
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	// The message was acked: a new subscriber on the same subscription sees nothing.
	col := newCollector()
	h.run(t, h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{}), col.handler)
	if !col.quiet(500*time.Millisecond) || col.distinct() != 0 {
		t.Errorf("message handled before Close was redelivered %d times", col.distinct())
	}
}

func testBadInput(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{})
	col := newCollector()
	h.run(t, sub, col.handler)

	for _, bad := range []string{"", "has space", "new\nline", "a/b", strings.Repeat("x", 300)} {
		if err := c.Publish(ctx, bad, &message.Message{Payload: []byte("x")}); !errors.Is(err, transport.ErrInvalidTopic) {
			t.Errorf("publish to topic %q: err = %v; want ErrInvalidTopic", bad, err)
		}
	}
	if err := c.Publish(ctx, topic); !errors.Is(err, transport.ErrInvalidMessage) {
		t.Errorf("publish of no messages: err = %v; want ErrInvalidMessage", err)
	}
	err := c.Publish(ctx, topic, &message.Message{ID: "ok-1"}, nil, &message.Message{ID: "ok-2"})
	var pe *transport.PublishError
	if !errors.Is(err, transport.ErrInvalidMessage) || !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Index != 1 {
		t.Errorf("publish with a nil message: err = %v; want ErrInvalidMessage naming index 1", err)
	}
	err = c.Publish(ctx, topic, &message.Message{ID: "bad-header", Headers: message.Headers{"k": "\xff\xfe"}})
	if !errors.Is(err, transport.ErrInvalidMessage) {
		t.Errorf("publish with a non-UTF-8 header: err = %v; want ErrInvalidMessage", err)
	}
	if _, err := c.Subscribe(ctx, "bad topic", "s1", transport.SubscriberConfig{}); !errors.Is(err, transport.ErrInvalidTopic) {
		t.Errorf("subscribe to a bad topic: err = %v; want ErrInvalidTopic", err)
	}
	if _, err := c.Subscribe(ctx, topic, "s1", transport.SubscriberConfig{Concurrency: -1}); !errors.Is(err, transport.ErrInvalidConfig) {
		t.Errorf("subscribe with Concurrency -1: err = %v; want ErrInvalidConfig", err)
	}
	s2 := h.subscribe(t, c, topic, "s2", transport.SubscriberConfig{})
	if err := s2.Run(ctx, nil); !errors.Is(err, transport.ErrInvalidConfig) {
		t.Errorf("Run(nil handler): err = %v; want ErrInvalidConfig", err)
	}
	_ = s2.Close(ctx)
	// Nothing of the rejected batches was sent.
	if !col.quiet(300*time.Millisecond) || col.distinct() != 0 {
		t.Errorf("%d messages of rejected batches were delivered", col.distinct())
	}
}
