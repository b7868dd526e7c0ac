package ordering_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/courierhq/courier/internal/testlog"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newOrdering(t *testing.T, st ordering.Store, mod func(*ordering.Config)) (*ordering.Ordering, *testlog.Buffer) {
	t.Helper()
	logger, logs := testlog.New()
	cfg := ordering.Config{Store: st, Logger: logger}
	if mod != nil {
		mod(&cfg)
	}
	o, err := ordering.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o, logs
}

// capture is a PublishFunc that keeps what it was given.
type capture struct{ got []*message.Message }

func (c *capture) publish(_ context.Context, _ string, msgs []*message.Message) error {
	c.got = append(c.got, msgs...)
	return nil
}

func stampOf(t *testing.T, m *message.Message) (epoch, seq int64) {
	t.Helper()
	e, s, err := ordering.ParseStamp(m.Headers[message.HeaderSequence])
	if err != nil {
		t.Fatalf("message %s: %v", m.ID, err)
	}
	return e, s
}

func TestPublishStampsConsecutiveNumbersPerKey(t *testing.T) {
	o, _ := newOrdering(t, memstore.New(memstore.Options{}), nil)
	var c capture
	pub := o.Publish()(c.publish)
	ctx := context.Background()
	// Twelve keys (more than the linear search handles), some keys several times, one
	// message without a key, in two batches.
	var batch1 []*message.Message
	for i := 0; i < 24; i++ {
		batch1 = append(batch1, &message.Message{ID: fmt.Sprint("a", i), Key: fmt.Sprint("k", i%12), Headers: message.Headers{"app": "v"}})
	}
	batch1 = append(batch1, &message.Message{ID: "nokey"})
	if err := pub(ctx, "t", batch1); err != nil {
		t.Fatal(err)
	}
	if err := pub(ctx, "t", []*message.Message{{ID: "b0", Key: "k0"}, {ID: "b1", Key: "k0"}}); err != nil {
		t.Fatal(err)
	}
	if len(c.got) != 27 {
		t.Fatalf("published %d messages; want 27 (length kept)", len(c.got))
	}
	next := map[string]int64{}
	epochs := map[string]int64{}
	for i, m := range c.got {
		if m.ID == "nokey" {
			if m != batch1[24] || m.Header(message.HeaderSequence) != "" {
				t.Errorf("a message without key was changed: %+v", m)
			}
			continue
		}
		e, s := stampOf(t, m)
		if epochs[m.Key] == 0 {
			epochs[m.Key] = e
		}
		if e != epochs[m.Key] {
			t.Errorf("message %d: epoch %d; want the key's counter epoch %d throughout", i, e, epochs[m.Key])
		}
		next[m.Key]++
		if s != next[m.Key] {
			t.Errorf("message %s (key %s): seq %d; want %d (consecutive in batch order)", m.ID, m.Key, s, next[m.Key])
		}
		if i < 24 && m.Header("app") != "v" {
			t.Errorf("message %s lost its headers", m.ID)
		}
	}
	// The caller's messages are untouched.
	for _, m := range batch1 {
		if m.Header(message.HeaderSequence) != "" {
			t.Fatalf("caller's message %s was stamped in place", m.ID)
		}
	}
	for i, m := range c.got[:24] {
		if m == batch1[i] {
			t.Fatalf("message %d passed on as the caller's own value, not a copy", i)
		}
	}
}

func TestPublishDerivesKeys(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*ordering.Config)
		msg     message.Message
		wantKey string
	}{
		{"message key", nil, message.Message{Key: "k"}, "k"},
		{"header when no key", func(c *ordering.Config) { c.KeyHeader = "customer" }, message.Message{Headers: message.Headers{"customer": "c7"}}, "c7"},
		{"key wins over header", func(c *ordering.Config) { c.KeyHeader = "customer" }, message.Message{Key: "k", Headers: message.Headers{"customer": "c7"}}, "k"},
		{"function wins", func(c *ordering.Config) {
			c.KeyFunc = func(m *message.Message) string { return "f-" + m.Header("x") }
		}, message.Message{Key: "k", Headers: message.Headers{"x": "1"}}, "f-1"},
		{"function may leave it unordered", func(c *ordering.Config) {
			c.KeyFunc = func(*message.Message) string { return "" }
		}, message.Message{Key: "k"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, _ := newOrdering(t, memstore.New(memstore.Options{}), tc.mod)
			var c capture
			m := tc.msg
			m.ID = "m"
			if err := o.Publish()(c.publish)(context.Background(), "t", []*message.Message{&m}); err != nil {
				t.Fatal(err)
			}
			got := c.got[0]
			if tc.wantKey == "" {
				if got.Header(message.HeaderSequence) != "" {
					t.Errorf("stamped a message whose key function returned empty")
				}
				return
			}
			if got.Key != tc.wantKey {
				t.Errorf("Key = %q; want %q", got.Key, tc.wantKey)
			}
			if _, s := stampOf(t, got); s != 1 {
				t.Errorf("seq %d; want 1", s)
			}
		})
	}
}

// failingStore fails every call.
type failingStore struct{ err error }

func (f failingStore) Reserve(context.Context, []ordering.Reservation, time.Duration) error {
	return f.err
}
func (f failingStore) Begin(context.Context, string, ordering.BeginRequest) (ordering.BeginResult, error) {
	return ordering.BeginResult{}, f.err
}
func (f failingStore) Commit(context.Context, string, int64, string, time.Duration) error {
	return f.err
}
func (f failingStore) Abort(context.Context, string, int64, string) error { return f.err }
func (f failingStore) Issued(context.Context, string) (int64, int64, error) {
	return 0, 0, f.err
}

func TestPublishStoreErrorSendsNothing(t *testing.T) {
	down := errors.New("store down")
	o, _ := newOrdering(t, failingStore{down}, nil)
	var c capture
	err := o.Publish()(c.publish)(context.Background(), "t", []*message.Message{{Key: "k"}})
	if !errors.Is(err, down) {
		t.Errorf("err = %v; want the store's error", err)
	}
	if len(c.got) != 0 {
		t.Errorf("%d messages sent despite the failure", len(c.got))
	}
}

// delivery builds a received message of key k with sequence seq.
func delivery(k string, seq int64) *message.Message {
	return &message.Message{ID: fmt.Sprintf("%s-%d", k, seq), Key: k, Topic: "t", Subscription: "s", Attempt: 1,
		Headers: message.Headers{message.HeaderSequence: ordering.FormatStamp(1, seq)}}
}

// recorder is a handler that records the sequence numbers it sees.
type recorder struct {
	mu   sync.Mutex
	seqs []string
	err  error
}

func (r *recorder) handle(_ context.Context, m *message.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seqs = append(r.seqs, m.ID)
	return r.err
}

func (r *recorder) seen() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.seqs, ",")
}

func TestConsumeInOrderDuplicateAndGap(t *testing.T) {
	o, _ := newOrdering(t, memstore.New(memstore.Options{}), nil)
	var r recorder
	h := o.Consume()(r.handle)
	ctx := context.Background()
	for _, seq := range []int64{1, 2} {
		if err := h(ctx, delivery("k", seq)); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
	if err := h(ctx, delivery("k", 2)); err != nil {
		t.Errorf("duplicate: err = %v; want nil (acknowledged)", err)
	}
	err := h(ctx, delivery("k", 5))
	if !message.IsDeferred(err) || !errors.Is(err, ordering.ErrGap) || message.IsRequeue(err) {
		t.Fatalf("gap: err = %v; want a Hold deferral wrapping ErrGap", err)
	}
	if d, ok := message.RetryDelay(err); !ok || d < 2*ordering.DefaultWaitDelay*8/10 || d > 2*ordering.DefaultWaitDelay*12/10 {
		t.Errorf("gap of 2 messages: delay %v; want about 2 × WaitDelay (with jitter)", d)
	}
	if message.WakeOf(err) == nil {
		t.Error("gap deferral has no wake channel")
	}
	if got := r.seen(); got != "k-1,k-2" {
		t.Errorf("handled %s; want k-1,k-2", got)
	}
}

func TestConsumeWakesSuccessorInProcess(t *testing.T) {
	o, _ := newOrdering(t, memstore.New(memstore.Options{}), nil)
	var r recorder
	h := o.Consume()(r.handle)
	ctx := context.Background()
	err3 := h(ctx, delivery("k", 3))
	err2 := h(ctx, delivery("k", 2))
	w2, w3 := message.WakeOf(err2), message.WakeOf(err3)
	if w2 == nil || w3 == nil {
		t.Fatalf("deferrals without wake channels: %v / %v", err2, err3)
	}
	// 3 waits behind 2, which waits here too: it need not poll the store often.
	if d, _ := message.RetryDelay(h(ctx, delivery("k", 3))); d < ordering.DefaultMaxWaitDelay*8/10 {
		t.Errorf("chained waiter's delay %v; want about MaxWaitDelay", d)
	}
	if err := h(ctx, delivery("k", 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w2:
	default:
		t.Fatal("2 not woken when 1 was handled in this process")
	}
	select {
	case <-w3:
		t.Fatal("3 woken before 2 was handled")
	default:
	}
	if err := h(ctx, delivery("k", 2)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w3:
	default:
		t.Fatal("3 not woken when 2 was handled")
	}
}

func TestConsumeRedeliverPolicy(t *testing.T) {
	o, _ := newOrdering(t, memstore.New(memstore.Options{}), func(c *ordering.Config) { c.OnGap = ordering.Redeliver })
	err := o.Consume()(func(context.Context, *message.Message) error { return nil })(context.Background(), delivery("k", 2))
	if !message.IsRequeue(err) || !errors.Is(err, ordering.ErrGap) {
		t.Errorf("err = %v; want a requeue wrapping ErrGap", err)
	}
}

func TestConsumeFailureLetsRetryRun(t *testing.T) {
	o, _ := newOrdering(t, memstore.New(memstore.Options{}), nil)
	boom := errors.New("boom")
	r := recorder{err: boom}
	h := o.Consume()(r.handle)
	ctx := context.Background()
	if err := h(ctx, delivery("k", 1)); !errors.Is(err, boom) || message.IsDeferred(err) {
		t.Fatalf("err = %v; want the handler's error unchanged", err)
	}
	err := h(ctx, delivery("k", 2))
	if !errors.Is(err, ordering.ErrGap) {
		t.Errorf("2 after 1 failed: %v; want a gap (1 is not done)", err)
	}
	r.err = nil
	if err := h(ctx, delivery("k", 1)); err != nil {
		t.Errorf("retry of 1: %v; want it handled (claim released)", err)
	}
	// A panicking handler releases too.
	p := o.Consume()(func(context.Context, *message.Message) error { panic("kaboom") })
	func() {
		defer func() { _ = recover() }()
		_ = p(ctx, delivery("k", 2))
	}()
	if err := h(ctx, delivery("k", 2)); err != nil {
		t.Errorf("2 after a panic: %v; want it handled", err)
	}
}

func TestConsumeGapTimeout(t *testing.T) {
	for _, action := range []ordering.GapTimeoutAction{ordering.SkipAhead, ordering.DeadLetter} {
		t.Run(fmt.Sprint(action), func(t *testing.T) {
			o, logs := newOrdering(t, memstore.New(memstore.Options{}), func(c *ordering.Config) {
				c.GapTimeout = 50 * time.Millisecond
				c.OnGapTimeout = action
			})
			var r recorder
			h := o.Consume()(r.handle)
			ctx := context.Background()
			if err := h(ctx, delivery("k", 3)); !errors.Is(err, ordering.ErrGap) {
				t.Fatalf("first look: %v; want a gap", err)
			}
			time.Sleep(80 * time.Millisecond)
			err := h(ctx, delivery("k", 3))
			if action == ordering.SkipAhead {
				if err != nil || r.seen() != "k-3" {
					t.Errorf("skip ahead: err = %v, handled %q; want k-3 handled", err, r.seen())
				}
				if !strings.Contains(logs.String(), "skipping ahead") || !strings.Contains(logs.String(), "missing=2") {
					t.Errorf("skip not logged with the count: %s", logs)
				}
			} else {
				if !message.IsPermanent(err) || !errors.Is(err, ordering.ErrGapTimeout) || r.seen() != "" {
					t.Errorf("dead-letter: err = %v, handled %q; want a permanent ErrGapTimeout, nothing handled", err, r.seen())
				}
			}
			// Either way the key moved on: 4 is next.
			if err := h(ctx, delivery("k", 4)); err != nil {
				t.Errorf("4: %v", err)
			}
			// A given-up 2 arriving late is not dropped as a duplicate.
			err = h(ctx, delivery("k", 2))
			if action == ordering.SkipAhead {
				if err != nil || r.seen() != "k-3,k-4,k-2" {
					t.Errorf("late 2: err = %v, handled %q; want it handled late", err, r.seen())
				}
			} else if !message.IsPermanent(err) || !errors.Is(err, ordering.ErrLate) {
				t.Errorf("late 2: err = %v; want a permanent ErrLate (dead-lettered, not handled out of order)", err)
			}
			// Once settled, another copy of 2 is a duplicate.
			before := r.seen()
			if err := h(ctx, delivery("k", 2)); err != nil || r.seen() != before {
				t.Errorf("copy of 2: err = %v, handled %q; want acknowledged, not handled", err, r.seen())
			}
		})
	}
}

func TestConsumePassThroughAndBadInput(t *testing.T) {
	o, logs := newOrdering(t, memstore.New(memstore.Options{}), nil)
	var r recorder
	h := o.Consume()(r.handle)
	ctx := context.Background()
	plain := &message.Message{ID: "plain", Key: "k"}
	redriven := delivery("k", 9)
	redriven.ID = "redriven"
	redriven.Headers[message.HeaderDeadLetterTopic] = "t"
	nokey := delivery("", 9)
	nokey.ID = "nokey"
	redriven2 := delivery("k", 8)
	redriven2.ID = "redriven2"
	redriven2.Headers[message.HeaderRedriven] = "2026-01-01T00:00:00Z"
	for _, m := range []*message.Message{plain, redriven, nokey, redriven2} {
		if err := h(ctx, m); err != nil {
			t.Errorf("%s: %v; want handled unchecked", m.ID, err)
		}
	}
	if got := r.seen(); got != "plain,redriven,nokey,redriven2" {
		t.Errorf("handled %s", got)
	}
	if !strings.Contains(logs.String(), "no key") {
		t.Error("sequenced message without key not logged")
	}
	bad := delivery("k", 1)
	bad.Headers[message.HeaderSequence] = "garbage"
	if err := h(ctx, bad); !message.IsPermanent(err) || !errors.Is(err, ordering.ErrBadStamp) {
		t.Errorf("malformed stamp: %v; want permanent ErrBadStamp", err)
	}
}

func TestConsumeStoreErrors(t *testing.T) {
	down := errors.New("store down")
	o, _ := newOrdering(t, failingStore{down}, nil)
	called := false
	err := o.Consume()(func(context.Context, *message.Message) error { called = true; return nil })(context.Background(), delivery("k", 1))
	if !errors.Is(err, down) || message.IsPermanent(err) || message.IsDeferred(err) || called {
		t.Errorf("err = %v, handler called %v; want a plain retryable error, no handling (fail closed)", err, called)
	}
}

// commitFails lets Begin through and fails Commit.
type commitFails struct {
	*memstore.Store
	calls int
}

func (c *commitFails) Commit(context.Context, string, int64, string, time.Duration) error {
	c.calls++
	return errors.New("commit lost")
}

func TestCommitFailureIsLoggedAndAcked(t *testing.T) {
	st := &commitFails{Store: memstore.New(memstore.Options{})}
	o, logs := newOrdering(t, st, nil)
	if err := o.Consume()(func(context.Context, *message.Message) error { return nil })(context.Background(), delivery("k", 1)); err != nil {
		t.Errorf("err = %v; want nil: the message was handled", err)
	}
	if st.calls != 2 || !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("commit tried %d times, logs %s; want one retry then an error line", st.calls, logs)
	}
}

func TestStaleEpochDeadLettered(t *testing.T) {
	o, logs := newOrdering(t, memstore.New(memstore.Options{}), nil)
	var r recorder
	h := o.Consume()(r.handle)
	ctx := context.Background()
	newer := delivery("k", 1)
	newer.Headers[message.HeaderSequence] = ordering.FormatStamp(2, 1) // no counter: an old epoch ≤ now passes
	if err := h(ctx, newer); err != nil {
		t.Fatal(err)
	}
	err := h(ctx, delivery("k", 7))
	if !message.IsPermanent(err) || !errors.Is(err, ordering.ErrStale) || r.seen() != "k-1" {
		t.Errorf("old epoch: err = %v, handled %q; want permanent ErrStale (dead-lettered, not acknowledged), not handled", err, r.seen())
	}
	if !strings.Contains(logs.String(), "earlier sequence epoch") {
		t.Error("stale message not logged")
	}
}

func TestConfigValidate(t *testing.T) {
	st := memstore.New(memstore.Options{})
	tests := []struct {
		name string
		cfg  ordering.Config
		ok   bool
	}{
		{"minimal", ordering.Config{Store: st}, true},
		{"no store", ordering.Config{}, false},
		{"unknown policy", ordering.Config{Store: st, OnGap: 7}, false},
		{"unknown timeout action", ordering.Config{Store: st, OnGapTimeout: 7}, false},
		{"negative delay", ordering.Config{Store: st, WaitDelay: -1}, false},
		{"delay above its cap", ordering.Config{Store: st, WaitDelay: time.Second, MaxWaitDelay: time.Millisecond}, false},
		{"retention below lease", ordering.Config{Store: st, Lease: time.Hour, Retention: time.Minute}, false},
		{"wait forever", ordering.Config{Store: st, GapTimeout: -1}, true},
		{"redeliver, dead-letter", ordering.Config{Store: st, OnGap: ordering.Redeliver, OnGapTimeout: ordering.DeadLetter}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ordering.New(tc.cfg)
			if tc.ok && err != nil {
				t.Errorf("New: %v", err)
			}
			if !tc.ok && !errors.Is(err, ordering.ErrInvalidConfig) {
				t.Errorf("New: err = %v; want ErrInvalidConfig", err)
			}
		})
	}
}

// TestLogsToContextLogger: without Config.Logger, log lines go to the logger the subscriber
// put in the handler's context (the connection's).
func TestLogsToContextLogger(t *testing.T) {
	o, err := ordering.New(ordering.Config{Store: memstore.New(memstore.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := testlog.New()
	m := delivery("", 1) // a stamp without a key: logged, handled unordered
	ctx := message.WithLogger(context.Background(), logger)
	if err := o.Consume()(func(context.Context, *message.Message) error { return nil })(ctx, m); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "no key") {
		t.Errorf("context logger got %q; want the warning", logs.String())
	}
}
