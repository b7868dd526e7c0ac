package idempotency_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/internal/testlog"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/store/memstore"
	"github.com/courierhq/courier/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeStore records calls and answers what the test says.
type fakeStore struct {
	mu          sync.Mutex
	claim       idempotency.Claim
	claimErr    error
	completeErr []error // consumed one per call
	calls       []string
	keys        []string
	owners      []string
	ctxErrs     []error // ctx.Err() seen by Complete and Release
}

func (f *fakeStore) Claim(ctx context.Context, key, owner string, lease time.Duration) (idempotency.Claim, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "claim")
	f.keys = append(f.keys, key)
	f.owners = append(f.owners, owner)
	return f.claim, f.claimErr
}

func (f *fakeStore) Complete(ctx context.Context, key, owner string, retention time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "complete")
	f.owners = append(f.owners, owner)
	f.ctxErrs = append(f.ctxErrs, ctx.Err())
	if len(f.completeErr) > 0 {
		err := f.completeErr[0]
		f.completeErr = f.completeErr[1:]
		return err
	}
	return nil
}

func (f *fakeStore) Release(ctx context.Context, key, owner string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "release")
	f.owners = append(f.owners, owner)
	f.ctxErrs = append(f.ctxErrs, ctx.Err())
	return nil
}

func (f *fakeStore) callList() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, ",")
}

func newMW(t *testing.T, st idempotency.Store, mod func(*idempotency.Config)) (message.Middleware, *testlog.Buffer) {
	t.Helper()
	logger, logs := testlog.New()
	cfg := idempotency.Config{Store: st, Logger: logger}
	if mod != nil {
		mod(&cfg)
	}
	i, err := idempotency.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return i.Consume(), logs
}

func msg() *message.Message {
	return &message.Message{ID: "m-1", Topic: "orders", Subscription: "billing", Payload: []byte("x"), Attempt: 1}
}

func TestConsumeOutcomes(t *testing.T) {
	boom := errors.New("handler failed")
	storeDown := errors.New("store unreachable")
	tests := []struct {
		name       string
		claim      idempotency.Claim
		claimErr   error
		handlerErr error
		wantCalled bool
		wantCalls  string
		check      func(t *testing.T, err error)
	}{
		{
			name: "acquired and handled", claim: idempotency.Claim{Status: idempotency.Acquired},
			wantCalled: true, wantCalls: "claim,complete",
			check: func(t *testing.T, err error) {
				if err != nil {
					t.Errorf("err = %v; want nil (ack)", err)
				}
			},
		},
		{
			name: "already done", claim: idempotency.Claim{Status: idempotency.Done},
			wantCalls: "claim",
			check: func(t *testing.T, err error) {
				if err != nil {
					t.Errorf("err = %v; want nil (ack without handling)", err)
				}
			},
		},
		{
			name: "busy elsewhere", claim: idempotency.Claim{Status: idempotency.Busy, Remaining: 1500 * time.Millisecond},
			wantCalls: "claim",
			check: func(t *testing.T, err error) {
				if !message.IsDeferred(err) || !errors.Is(err, idempotency.ErrInFlight) {
					t.Fatalf("err = %v; want a deferral wrapping ErrInFlight", err)
				}
				if !message.KeepsOrder(err) {
					t.Error("a message waiting on another instance's claim must keep its key's place (message.DeferInOrder)")
				}
				if message.WakeOf(err) == nil {
					t.Error("no wake channel: the wait cannot end early when the claim is released here")
				}
				if d, ok := message.RetryDelay(err); !ok || d != idempotency.MaxBusyDelay {
					t.Errorf("RetryDelay = %v, %v; want the lease's remaining 1.5s capped at MaxBusyDelay", d, ok)
				}
				if message.IsPermanent(err) {
					t.Error("a busy key is not a permanent failure")
				}
			},
		},
		{
			name: "busy with a short lease left", claim: idempotency.Claim{Status: idempotency.Busy, Remaining: 300 * time.Millisecond},
			wantCalls: "claim",
			check: func(t *testing.T, err error) {
				if d, _ := message.RetryDelay(err); d != 300*time.Millisecond {
					t.Errorf("RetryDelay = %v; want the lease's remaining 300ms", d)
				}
			},
		},
		{
			name: "busy with an almost expired lease", claim: idempotency.Claim{Status: idempotency.Busy, Remaining: 0},
			wantCalls: "claim",
			check: func(t *testing.T, err error) {
				if d, _ := message.RetryDelay(err); d != idempotency.MinBusyDelay {
					t.Errorf("RetryDelay = %v; want MinBusyDelay", d)
				}
			},
		},
		{
			name: "store down fails closed", claimErr: storeDown,
			wantCalls: "claim",
			check: func(t *testing.T, err error) {
				if !errors.Is(err, storeDown) || message.IsPermanent(err) || message.IsDeferred(err) {
					t.Errorf("err = %v; want a plain retryable error wrapping the store's", err)
				}
			},
		},
		{
			name: "handler fails: released for the retry", claim: idempotency.Claim{Status: idempotency.Acquired},
			handlerErr: boom, wantCalled: true, wantCalls: "claim,release",
			check: func(t *testing.T, err error) {
				if !errors.Is(err, boom) || message.IsPermanent(err) {
					t.Errorf("err = %v; want the handler's error, unchanged", err)
				}
			},
		},
		{
			name: "handler fails permanently: released, still permanent", claim: idempotency.Claim{Status: idempotency.Acquired},
			handlerErr: message.Permanent(boom), wantCalled: true, wantCalls: "claim,release",
			check: func(t *testing.T, err error) {
				if !message.IsPermanent(err) {
					t.Errorf("err = %v; want permanent", err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeStore{claim: tc.claim, claimErr: tc.claimErr}
			mw, _ := newMW(t, st, nil)
			called := false
			err := mw(func(context.Context, *message.Message) error {
				called = true
				return tc.handlerErr
			})(context.Background(), msg())
			if called != tc.wantCalled {
				t.Errorf("handler called = %v; want %v", called, tc.wantCalled)
			}
			if got := st.callList(); got != tc.wantCalls {
				t.Errorf("store calls = %s; want %s", got, tc.wantCalls)
			}
			tc.check(t, err)
		})
	}
}

func TestKeyIsScopedToTopicAndSubscription(t *testing.T) {
	st := &fakeStore{claim: idempotency.Claim{Status: idempotency.Done}}
	mw, _ := newMW(t, st, nil)
	h := mw(func(context.Context, *message.Message) error { return nil })
	_ = h(context.Background(), msg())
	m2 := msg()
	m2.Subscription = "shipping"
	_ = h(context.Background(), m2)
	want := []string{"orders/billing/m-1", "orders/shipping/m-1"}
	if strings.Join(st.keys, " ") != strings.Join(want, " ") {
		t.Errorf("keys %v; want %v", st.keys, want)
	}
}

func TestCustomKeyAndEmptyKey(t *testing.T) {
	st := &fakeStore{claim: idempotency.Claim{Status: idempotency.Acquired}}
	mw, logs := newMW(t, st, func(c *idempotency.Config) {
		c.Key = func(m *message.Message) string { return m.Header("order-id") }
	})
	calls := 0
	h := mw(func(context.Context, *message.Message) error { calls++; return nil })
	m := msg()
	m.Headers = message.Headers{"order-id": "o-9"}
	if err := h(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if len(st.keys) != 1 || st.keys[0] != "orders/billing/o-9" {
		t.Errorf("keys %v; want the custom key", st.keys)
	}
	// No key: handled without deduplication, and said so.
	if err := h(context.Background(), msg()); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || len(st.keys) != 1 {
		t.Errorf("handler calls %d, store claims %d; want 2 and 1", calls, len(st.keys))
	}
	if !strings.Contains(logs.String(), "no deduplication key") {
		t.Errorf("missing key not logged: %s", logs)
	}
}

func TestOwnersAreUniquePerAttempt(t *testing.T) {
	st := &fakeStore{claim: idempotency.Claim{Status: idempotency.Acquired}}
	mw, _ := newMW(t, st, nil)
	h := mw(func(context.Context, *message.Message) error { return errors.New("x") })
	_ = h(context.Background(), msg())
	_ = h(context.Background(), msg())
	// claim, release, claim, release: each pair shares an owner, the two pairs differ.
	o := st.owners
	if len(o) != 4 || o[0] != o[1] || o[2] != o[3] || o[0] == o[2] || o[0] == "" {
		t.Errorf("owners %v; want one unique owner per attempt, used for its claim and release", o)
	}
}

func TestCompleteAndReleaseOutliveACancelledContext(t *testing.T) {
	st := &fakeStore{claim: idempotency.Claim{Status: idempotency.Acquired}}
	mw, _ := newMW(t, st, nil)
	for _, herr := range []error{nil, errors.New("x")} {
		ctx, cancel := context.WithCancel(context.Background())
		_ = mw(func(context.Context, *message.Message) error { cancel(); return herr })(ctx, msg())
	}
	for i, err := range st.ctxErrs {
		if err != nil {
			t.Errorf("store call %d after the handler ran with a cancelled context: %v", i, err)
		}
	}
	if len(st.ctxErrs) != 2 {
		t.Errorf("%d complete/release calls; want 2", len(st.ctxErrs))
	}
}

func TestPanicReleasesTheClaim(t *testing.T) {
	st := &fakeStore{claim: idempotency.Claim{Status: idempotency.Acquired}}
	mw, _ := newMW(t, st, nil)
	func() {
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Errorf("recovered %v; want the handler's panic to propagate", r)
			}
		}()
		_ = mw(func(context.Context, *message.Message) error { panic("kaboom") })(context.Background(), msg())
	}()
	if got := st.callList(); got != "claim,release" {
		t.Errorf("store calls = %s; want claim,release", got)
	}
}

func TestCompleteFailures(t *testing.T) {
	t.Run("store error is retried once, then logged; message acked", func(t *testing.T) {
		down := errors.New("down")
		st := &fakeStore{claim: idempotency.Claim{Status: idempotency.Acquired}, completeErr: []error{down, down}}
		mw, logs := newMW(t, st, nil)
		if err := mw(func(context.Context, *message.Message) error { return nil })(context.Background(), msg()); err != nil {
			t.Errorf("err = %v; want nil: the handler succeeded", err)
		}
		if got := st.callList(); got != "claim,complete,complete" {
			t.Errorf("store calls = %s; want one retry of complete", got)
		}
		if !strings.Contains(logs.String(), "could not mark the message handled") {
			t.Errorf("failure not logged: %s", logs)
		}
	})
	t.Run("transient store error recovers", func(t *testing.T) {
		st := &fakeStore{claim: idempotency.Claim{Status: idempotency.Acquired}, completeErr: []error{errors.New("blip")}}
		mw, logs := newMW(t, st, nil)
		_ = mw(func(context.Context, *message.Message) error { return nil })(context.Background(), msg())
		if strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("logged an error after a successful retry: %s", logs)
		}
	})
	t.Run("lease lost is a warning", func(t *testing.T) {
		st := &fakeStore{claim: idempotency.Claim{Status: idempotency.Acquired}, completeErr: []error{idempotency.ErrLeaseLost}}
		mw, logs := newMW(t, st, nil)
		if err := mw(func(context.Context, *message.Message) error { return nil })(context.Background(), msg()); err != nil {
			t.Errorf("err = %v; want nil", err)
		}
		if got := st.callList(); got != "claim,complete" {
			t.Errorf("store calls = %s; want no retry for a lost lease", got)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "raise Lease") {
			t.Errorf("lost lease not logged as a warning: %s", logs)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	st := &fakeStore{}
	tests := []struct {
		name string
		cfg  idempotency.Config
		ok   bool
	}{
		{"minimal", idempotency.Config{Store: st}, true},
		{"no store", idempotency.Config{}, false},
		{"negative lease", idempotency.Config{Store: st, Lease: -time.Second}, false},
		{"negative retention", idempotency.Config{Store: st, Retention: -time.Second}, false},
		{"retention shorter than lease", idempotency.Config{Store: st, Lease: time.Hour, Retention: time.Minute}, false},
		{"explicit", idempotency.Config{Store: st, Lease: time.Minute, Retention: time.Hour, StoreTimeout: time.Second}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := idempotency.New(tc.cfg)
			if tc.ok && err != nil {
				t.Errorf("New: %v", err)
			}
			if !tc.ok && !errors.Is(err, idempotency.ErrInvalidConfig) {
				t.Errorf("New: err = %v; want ErrInvalidConfig", err)
			}
		})
	}
}

func TestBusyCopyIsWokenWhenLocalHolderFinishes(t *testing.T) {
	st := memstore.New(memstore.Options{})
	mw, _ := newMW(t, st, func(c *idempotency.Config) { c.Lease = time.Minute })
	started, release := make(chan struct{}), make(chan struct{})
	h := mw(func(context.Context, *message.Message) error {
		close(started)
		<-release
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- h(context.Background(), msg()) }()
	<-started
	err := h(context.Background(), msg()) // a copy, while the first is being handled
	wake := message.WakeOf(err)
	if !message.IsDeferred(err) || !message.KeepsOrder(err) || wake == nil {
		t.Fatalf("copy: err = %v (wake %v); want an in-order deferral with a wake channel", err, wake)
	}
	select {
	case <-wake:
		t.Fatal("woken while the first copy is still being handled")
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("copy not woken after the first finished")
	}
	if err := h(context.Background(), msg()); err != nil { // and it now finds the key done
		t.Errorf("copy after the first finished: %v; want nil", err)
	}
}

// TestEndToEndOnMemoryBroker: the same message published three times, its first handling
// failing, is handled once through a real subscriber.
func TestEndToEndOnMemoryBroker(t *testing.T) {
	ctx := context.Background()
	conn, err := memory.Open(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	idem, err := idempotency.New(idempotency.Config{Store: memstore.New(memstore.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	var acks atomic.Int64
	countAcks := func(next message.Handler) message.Handler {
		return func(ctx context.Context, m *message.Message) error {
			err := next(ctx, m)
			if err == nil {
				acks.Add(1)
			}
			return err
		}
	}
	sub, err := conn.Subscribe(ctx, "orders", "billing", transport.SubscriberConfig{
		Retry:      transport.RetryPolicy{InitialDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond},
		Middleware: []message.Middleware{countAcks, idem.Consume()}})
	if err != nil {
		t.Fatal(err)
	}
	var calls, handled atomic.Int64
	rctx, cancel := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() {
		runDone <- sub.Run(rctx, func(context.Context, *message.Message) error {
			if calls.Add(1) == 1 {
				return errors.New("first attempt fails")
			}
			handled.Add(1)
			return nil
		})
	}()
	for i := 0; i < 3; i++ {
		if err := conn.Publish(ctx, "orders", &message.Message{ID: "order-1", Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for acks.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	if acks.Load() != 3 || handled.Load() != 1 || calls.Load() != 2 {
		t.Errorf("acks %d, handled %d, handler calls %d; want 3, 1, 2", acks.Load(), handled.Load(), calls.Load())
	}
}

// TestLogsToContextLogger: without Config.Logger, log lines go to the logger the subscriber
// put in the handler's context (the connection's).
func TestLogsToContextLogger(t *testing.T) {
	i, err := idempotency.New(idempotency.Config{Store: memstore.New(memstore.Options{}),
		Key: func(*message.Message) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := testlog.New()
	ctx := message.WithLogger(context.Background(), logger)
	if err := i.Consume()(func(context.Context, *message.Message) error { return nil })(ctx, &message.Message{ID: "m"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "no deduplication key") {
		t.Errorf("context logger got %q; want the warning", logs.String())
	}
}
