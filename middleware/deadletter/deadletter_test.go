package deadletter_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/deadletter"
	"github.com/courierhq/courier/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t testing.TB) (*transport.Conn, *memory.Broker) {
	t.Helper()
	conn, err := memory.Open(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn, conn.Driver().(*memory.Broker)
}

// runSub runs a subscriber until the test ends.
func runSub(t testing.TB, s *transport.Subscriber, h message.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx, h) }()
	t.Cleanup(func() { cancel(); <-done })
}

func subscribe(t testing.TB, c *transport.Conn, topic, sub string, cfg transport.SubscriberConfig) *transport.Subscriber {
	t.Helper()
	s, err := c.Subscribe(context.Background(), topic, sub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRedriven(t *testing.T) {
	m := transport.DeadLetterCopy(&message.Message{ID: "a", Key: "k", Payload: []byte("p"),
		Headers: message.Headers{"app": "v", message.HeaderContentType: "application/json"}},
		transport.Failure{Err: errors.New("boom"), Attempts: 3, Topic: "orders", Subscription: "s",
			FirstFailure: time.Now(), LastFailure: time.Now()}, transport.Capabilities{})
	m.Headers[message.HeaderSchemaViolation] = "x"
	m.Topic, m.Attempt, m.PublishTime = "orders.dlq", 2, time.Now()
	m.Headers[message.HeaderRedriven] = "2020-01-01T00:00:00Z" // redriven before, failed again
	now := time.Date(2026, 11, 22, 10, 0, 0, 5, time.FixedZone("x", 3600))
	c, err := deadletter.Redriven(m, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "a" || c.Key != "k" || string(c.Payload) != "p" || c.Topic != "" || c.Attempt != 0 || !c.PublishTime.IsZero() {
		t.Errorf("redriven %+v", c)
	}
	if len(c.Headers) != 3 || c.Headers["app"] != "v" || c.Headers[message.HeaderContentType] != "application/json" ||
		c.Headers[message.HeaderRedriven] != "2026-11-22T09:00:00.000000005Z" {
		t.Errorf("headers %v; want the application's, content type and a fresh redrive time", c.Headers)
	}
	if m.Headers[message.HeaderDeadLetterTopic] != "orders" {
		t.Error("Redriven changed its input")
	}
}

func TestRedrivenRefuses(t *testing.T) {
	f := transport.Failure{Err: errors.New("boom"), Topic: "orders", Subscription: "s"}
	tests := []struct {
		name string
		m    *message.Message
		want error
	}{
		{"notice without payload", transport.DeadLetterCopy(&message.Message{ID: "a", Payload: make([]byte, 2000)}, f,
			transport.Capabilities{MaxMessageBytes: 1000}), deadletter.ErrPayloadOmitted},
		{"invalid original", transport.DeadLetterCopy(&message.Message{ID: "a", Headers: message.Headers{"k": "\xff"}}, f,
			transport.Capabilities{}), deadletter.ErrNotRepublishable},
		{"forged escape list", &message.Message{ID: "a", Headers: message.Headers{transport.HeaderDeadLetterEscaped: `"v:nope"`}},
			transport.ErrMalformedDeadLetter},
	}
	for _, tc := range tests {
		if _, err := deadletter.Redriven(tc.m, time.Now()); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	ok := transport.DeadLetterCopy(&message.Message{ID: "a", Headers: message.Headers{"": "v"}}, f, transport.Capabilities{})
	if _, err := deadletter.Redriven(ok, time.Now()); !errors.Is(err, deadletter.ErrNotRepublishable) {
		t.Errorf("empty header name: err = %v, want ErrNotRepublishable", err)
	}
}

// failing sets up topic "orders" with subscription "s" whose handler fails permanently while
// fail is set, and records what it handled.
type failing struct {
	fail    atomic.Bool
	mu      sync.Mutex
	handled []*message.Message
}

func (f *failing) handler(_ context.Context, m *message.Message) error {
	if f.fail.Load() {
		return message.Permanent(fmt.Errorf("cannot handle %s yet", m.ID))
	}
	f.mu.Lock()
	f.handled = append(f.handled, m.Clone())
	f.mu.Unlock()
	return nil
}

func (f *failing) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.handled)
}

func setupFailing(t *testing.T, conn *transport.Conn, b *memory.Broker, n int) *failing {
	t.Helper()
	f := &failing{}
	f.fail.Store(true)
	runSub(t, subscribe(t, conn, "orders", "s", transport.SubscriberConfig{}), f.handler)
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = &message.Message{ID: fmt.Sprintf("m-%03d", i), Key: fmt.Sprintf("k%d", i%3),
			Payload: []byte(fmt.Sprintf("payload %d \x00\xff", i)), Headers: message.Headers{"app": "v"}}
	}
	if err := conn.Publish(context.Background(), "orders", msgs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dead-lettering", func() bool { return b.Depth("orders.dlq", "s.dlq") == n })
	return f
}

var quick = deadletter.RedriveOptions{IdleTimeout: 100 * time.Millisecond, BatchSize: 7}

func TestRedriveMovesEverythingBack(t *testing.T) {
	conn, b := open(t)
	const n = 25
	f := setupFailing(t, conn, b, n)
	f.fail.Store(false)
	res, err := deadletter.Redrive(context.Background(), conn, "orders.dlq", "s.dlq", quick)
	if err != nil || res.Moved != n || res.Failed != 0 || res.Skipped != 0 {
		t.Fatalf("Redrive = %+v, %v; want %d moved", res, err, n)
	}
	waitFor(t, "redriven messages handled", func() bool { return f.count() == n })
	if d := b.Depth("orders.dlq", "s.dlq"); d != 0 {
		t.Errorf("%d messages still in the dead-letter subscription", d)
	}
	seen := map[string]bool{}
	for _, m := range f.handled {
		var i int
		if _, err := fmt.Sscanf(m.ID, "m-%03d", &i); err != nil {
			t.Fatalf("unexpected ID %q", m.ID)
		}
		seen[m.ID] = true
		if string(m.Payload) != fmt.Sprintf("payload %d \x00\xff", i) || m.Key != fmt.Sprintf("k%d", i%3) || m.Headers["app"] != "v" {
			t.Errorf("%s arrived as key %q payload %q headers %v", m.ID, m.Key, m.Payload, m.Headers)
		}
		for k := range m.Headers {
			if strings.HasPrefix(k, "courier-dlq-") || k == message.HeaderAttempt {
				t.Errorf("%s still has %s", m.ID, k)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, m.Headers[message.HeaderRedriven]); err != nil {
			t.Errorf("%s: %s = %q: %v", m.ID, message.HeaderRedriven, m.Headers[message.HeaderRedriven], err)
		}
		if m.Attempt != 1 {
			t.Errorf("%s handled at attempt %d; want 1", m.ID, m.Attempt)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages handled; want %d", len(seen), n)
	}
}

func TestRedriveLeavesWhatItCannotMove(t *testing.T) {
	ctx := context.Background()
	conn, b := open(t)
	setupFailing(t, conn, b, 3).fail.Store(false)
	// Natively dead-lettered (no Courier headers).
	if err := conn.Publish(ctx, "orders.dlq", &message.Message{ID: "orphan", Payload: []byte("o")}); err != nil {
		t.Fatal(err)
	}
	res, err := deadletter.Redrive(ctx, conn, "orders.dlq", "s.dlq", quick)
	if res.Moved != 3 || res.Failed != 1 || !errors.Is(err, deadletter.ErrNoOriginalTopic) || !strings.Contains(err.Error(), "orphan") {
		t.Fatalf("Redrive = %+v, %v; want 3 moved, orphan failed", res, err)
	}
	if d := b.Depth("orders.dlq", "s.dlq"); d != 1 {
		t.Fatalf("dead-letter depth %d; want the orphan left in place", d)
	}
	// With a fallback topic it moves.
	res, err = deadletter.Redrive(ctx, conn, "orders.dlq", "s.dlq", deadletter.RedriveOptions{IdleTimeout: 100 * time.Millisecond, FallbackTopic: "orders"})
	if err != nil || res.Moved != 1 {
		t.Errorf("fallback: %+v, %v", res, err)
	}
}

// TestRedriveHostileCopies: copies of hostile originals come back byte for byte where Courier
// can publish them; the others (invalid UTF-8, an empty header name, a payload-omitted notice)
// stay in place, each with its reason, and the publishable ones of the same batch still move.
func TestRedriveHostileCopies(t *testing.T) {
	ctx := context.Background()
	conn, b := open(t)
	got := make(chan *message.Message, 10)
	runSub(t, subscribe(t, conn, "orders", "s", transport.SubscriberConfig{}), func(_ context.Context, m *message.Message) error {
		got <- m.Clone()
		return nil
	})
	if err := conn.EnsureSubscription(ctx, "orders.dlq", "s.dlq"); err != nil {
		t.Fatal(err)
	}
	f := transport.Failure{Err: errors.New("boom"), Topic: "orders", Subscription: "s"}
	caps := transport.Capabilities{MaxHeaderValueBytes: 100, MaxMessageBytes: 2000}
	originals := []*message.Message{
		{ID: "ok", Key: "k", Payload: []byte("p"), Headers: message.Headers{"app": "v", "long": strings.Repeat("x", 200)}},
		{ID: "bad-value", Headers: message.Headers{"k": "\xff"}},
		{ID: "empty-name", Headers: message.Headers{"": "v"}},
		{ID: "notice", Payload: make([]byte, 4000)},
	}
	for _, m := range originals {
		if err := conn.Publish(ctx, "orders.dlq", transport.DeadLetterCopy(m, f, caps)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := deadletter.Redrive(ctx, conn, "orders.dlq", "s.dlq", quick)
	if res.Moved != 1 || res.Failed != 3 || !errors.Is(err, deadletter.ErrNotRepublishable) || !errors.Is(err, deadletter.ErrPayloadOmitted) {
		t.Fatalf("Redrive = %+v, %v; want 1 moved, 3 left with their reasons", res, err)
	}
	m := <-got
	if m.ID != "ok" || m.Key != "k" || string(m.Payload) != "p" || m.Headers["app"] != "v" || m.Headers["long"] != "" {
		t.Errorf("redriven %q %q %q %q; want the original without the cut header", m.ID, m.Key, m.Payload, m.Headers)
	}
	if d := b.Depth("orders.dlq", "s.dlq"); d != 3 {
		t.Errorf("dead-letter depth %d; want 3 left in place", d)
	}
}

func TestRedriveFilterAndMax(t *testing.T) {
	ctx := context.Background()
	conn, b := open(t)
	f := setupFailing(t, conn, b, 10)
	f.fail.Store(false)
	opts := quick
	opts.Filter = func(m *message.Message) bool { return m.Key != "k0" } // k0: m-000, 003, 006, 009
	opts.Max = 4
	res, err := deadletter.Redrive(ctx, conn, "orders.dlq", "s.dlq", opts)
	if err != nil || res.Moved != 4 {
		t.Fatalf("Redrive = %+v, %v; want 4 moved", res, err)
	}
	if d := b.Depth("orders.dlq", "s.dlq"); d != 6 {
		t.Errorf("depth %d after moving 4 of 10; want 6 (skipped ones released)", d)
	}
	opts.Max = 0
	res, err = deadletter.Redrive(ctx, conn, "orders.dlq", "s.dlq", opts)
	if err != nil || res.Moved != 2 || res.Skipped != 4 {
		t.Fatalf("second run %+v, %v; want 2 moved, 4 skipped", res, err)
	}
	waitFor(t, "handled", func() bool { return f.count() == 6 })
	for _, m := range f.handled {
		if m.Key == "k0" {
			t.Errorf("filtered message %s moved", m.ID)
		}
	}
}

// TestRedriveDoesNotLoop: a message that fails again during the redrive comes back to the
// dead-letter topic; the same run leaves it there instead of cycling it forever.
func TestRedriveDoesNotLoop(t *testing.T) {
	conn, b := open(t)
	setupFailing(t, conn, b, 2) // still failing
	res, err := deadletter.Redrive(context.Background(), conn, "orders.dlq", "s.dlq", deadletter.RedriveOptions{IdleTimeout: 300 * time.Millisecond})
	if err != nil || res.Moved != 2 || res.Skipped != 2 {
		t.Fatalf("Redrive = %+v, %v; want 2 moved, then 2 skipped when they came back", res, err)
	}
	waitFor(t, "back in the dead-letter subscription", func() bool { return b.Depth("orders.dlq", "s.dlq") == 2 })
}

func TestRedrivePublishFailure(t *testing.T) {
	ctx := context.Background()
	conn, b := open(t)
	setupFailing(t, conn, b, 3)
	closed, _ := open(t)
	_ = closed.Close(ctx)
	opts := quick
	opts.Target = closed
	res, err := deadletter.Redrive(ctx, conn, "orders.dlq", "s.dlq", opts)
	if res.Moved != 0 || res.Failed != 3 || !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Redrive = %+v, %v; want 3 failed with ErrClosed", res, err)
	}
	if d := b.Depth("orders.dlq", "s.dlq"); d != 3 {
		t.Errorf("depth %d; want all 3 left in place", d)
	}
}

func TestRedriveStopsOnCancel(t *testing.T) {
	conn, _ := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := deadletter.Redrive(ctx, conn, "orders.dlq", "s.dlq", deadletter.RedriveOptions{IdleTimeout: time.Hour})
	if !errors.Is(err, context.DeadlineExceeded) || res.Moved != 0 || time.Since(start) > 5*time.Second {
		t.Errorf("Redrive = %+v, %v after %v", res, err, time.Since(start))
	}
}

func TestRedriveEmptyWaitsStartTimeout(t *testing.T) {
	conn, _ := open(t)
	start := time.Now()
	res, err := deadletter.Redrive(context.Background(), conn, "orders.dlq", "s.dlq",
		deadletter.RedriveOptions{IdleTimeout: 10 * time.Millisecond, StartTimeout: 150 * time.Millisecond})
	if took := time.Since(start); err != nil || res.Moved+res.Skipped+res.Failed != 0 || took < 150*time.Millisecond {
		t.Errorf("empty subscription: %+v, %v after %v; want nothing, nil, after StartTimeout", res, err, took)
	}
}

func TestRedriveBadInput(t *testing.T) {
	conn, _ := open(t)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		conn       *transport.Conn
		topic, sub string
		opts       deadletter.RedriveOptions
		is         error
	}{
		"nil conn":         {nil, "t", "s", deadletter.RedriveOptions{}, deadletter.ErrInvalidConfig},
		"bad topic":        {conn, "a b", "s", deadletter.RedriveOptions{}, transport.ErrInvalidTopic},
		"bad subscription": {conn, "t", "", deadletter.RedriveOptions{}, transport.ErrInvalidTopic},
		"negative idle":    {conn, "t", "s", deadletter.RedriveOptions{IdleTimeout: -1}, deadletter.ErrInvalidConfig},
		"negative start":   {conn, "t", "s", deadletter.RedriveOptions{StartTimeout: -1}, deadletter.ErrInvalidConfig},
		"negative max":     {conn, "t", "s", deadletter.RedriveOptions{Max: -1}, deadletter.ErrInvalidConfig},
		"negative batch":   {conn, "t", "s", deadletter.RedriveOptions{BatchSize: -1}, deadletter.ErrInvalidConfig},
		"bad fallback":     {conn, "t", "s", deadletter.RedriveOptions{FallbackTopic: "a/b"}, deadletter.ErrInvalidConfig},
	} {
		if _, err := deadletter.Redrive(ctx, tc.conn, tc.topic, tc.sub, tc.opts); !errors.Is(err, tc.is) {
			t.Errorf("%s: err = %v; want %v", name, err, tc.is)
		}
	}
}

func TestDestinationToAnotherBroker(t *testing.T) {
	ctx := context.Background()
	conn, _ := open(t)
	other, otherBroker := open(t)
	var observed atomic.Int64
	dest, err := deadletter.New(deadletter.Config{Conn: other, OnDeadLetter: func(m *message.Message, f transport.Failure) {
		if f.Topic == "orders" && f.Permanent {
			observed.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	runSub(t, subscribe(t, conn, "orders", "s", transport.SubscriberConfig{DeadLetter: dest}),
		func(context.Context, *message.Message) error { return message.Permanent(errors.New("no")) })
	if err := conn.Publish(ctx, "orders", &message.Message{ID: "x", Payload: []byte("keep")}); err != nil {
		t.Fatal(err)
	}
	// Retained on the other broker although nobody subscribed there before.
	waitFor(t, "copy on the other broker", func() bool { return otherBroker.Depth("orders.dlq", "s.dlq") == 1 })
	if observed.Load() != 1 {
		t.Errorf("OnDeadLetter called %d times", observed.Load())
	}
	// And it redrives from there to the other broker's "orders".
	res, err := deadletter.Redrive(ctx, other, "orders.dlq", "s.dlq", quick)
	if err != nil || res.Moved != 1 {
		t.Errorf("Redrive from the other broker: %+v, %v", res, err)
	}
}

func TestDestinationFixedTopicAndErrors(t *testing.T) {
	ctx := context.Background()
	conn, b := open(t)
	dest, err := deadletter.New(deadletter.Config{Conn: conn, Topic: "graveyard"})
	if err != nil {
		t.Fatal(err)
	}
	if dest.TopicFor("orders") != "graveyard" {
		t.Errorf("TopicFor = %q", dest.TopicFor("orders"))
	}
	f := transport.Failure{Err: errors.New("x"), Topic: "orders", Subscription: "s", Attempts: 1}
	if err := dest.DeadLetter(ctx, &message.Message{ID: "a"}, f); err != nil {
		t.Fatal(err)
	}
	if b.Depth("graveyard", "s.dlq") != 1 {
		t.Error("copy not retained on the fixed topic")
	}
	noRetain, _ := deadletter.New(deadletter.Config{Conn: conn, DisableRetain: true})
	if err := noRetain.DeadLetter(ctx, &message.Message{ID: "b"}, f); err != nil {
		t.Fatal(err)
	}
	if b.Depth("orders.dlq", "s.dlq") != 0 {
		t.Error("DisableRetain created the subscription")
	}
	_ = conn.Close(ctx)
	if err := dest.DeadLetter(ctx, &message.Message{ID: "c"}, f); !errors.Is(err, transport.ErrClosed) || !strings.Contains(err.Error(), "c") {
		t.Errorf("closed connection: err = %v", err)
	}
	for name, cfg := range map[string]deadletter.Config{
		"no conn":          {},
		"bad topic":        {Conn: conn, Topic: "a b"},
		"negative timeout": {Conn: conn, PublishTimeout: -1},
	} {
		if _, err := deadletter.New(cfg); !errors.Is(err, deadletter.ErrInvalidConfig) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// FuzzRedriven: whatever sits in a dead-letter subscription (a copy, or a message anyone
// published there with forged annotations), Redriven returns a message Courier can publish
// — no annotations, valid UTF-8, the redrive time set — or an error saying why not.
func FuzzRedriven(f *testing.F) {
	fl := transport.Failure{Err: errors.New("boom"), Topic: "orders", Subscription: "s"}
	for _, m := range []*message.Message{
		{ID: "a", Key: "k", Headers: message.Headers{"app": "v"}},
		{ID: "a\xff", Key: "\xfe", Headers: message.Headers{"": "v", "n\xff": "\xff"}},
	} {
		c := transport.DeadLetterCopy(m, fl, transport.Capabilities{})
		f.Add(c.ID, c.Key, c.Headers[transport.HeaderDeadLetterEscaped], c.Headers[transport.HeaderDeadLetterPayloadOmitted], "app", "v")
	}
	f.Add("a", "k", `"v:x"`, "", "x", `"\xff"`)
	f.Add(`"a"`, "k", `"id",+2`, "12", "x", "y")
	f.Fuzz(func(t *testing.T, id, key, escaped, omitted, name, value string) {
		m := &message.Message{ID: id, Key: key, Payload: []byte("p"), Headers: message.Headers{
			transport.HeaderDeadLetterEscaped: escaped, message.HeaderDeadLetterTopic: "orders", name: value}}
		if omitted != "" {
			m.Headers[transport.HeaderDeadLetterPayloadOmitted] = omitted
		}
		c, err := deadletter.Redriven(m, time.Unix(0, 0))
		if err != nil {
			if !errors.Is(err, deadletter.ErrPayloadOmitted) && !errors.Is(err, deadletter.ErrNotRepublishable) && !errors.Is(err, transport.ErrMalformedDeadLetter) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !utf8.ValidString(c.ID) || !utf8.ValidString(c.Key) || c.Headers[message.HeaderRedriven] == "" {
			t.Fatalf("redriven %q %q %q", c.ID, c.Key, c.Headers)
		}
		for k, v := range c.Headers {
			if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) || transport.DeadLetterCopyStripped(k) {
				t.Fatalf("redriven message carries header %q=%q", k, v)
			}
		}
	})
}
