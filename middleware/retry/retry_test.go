package retry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/goleak"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/retry"
	"github.com/courierhq/courier/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	errBad       = errors.New("bad input")
	errTransient = errors.New("downstream timeout")
	errRateLimit = errors.New("rate limited")
)

type codeErr struct{ code int }

func (e *codeErr) Error() string { return fmt.Sprintf("status %d", e.code) }

func TestClassify(t *testing.T) {
	c, err := retry.New(retry.Config{Rules: []retry.Rule{
		retry.RetryableIs(context.DeadlineExceeded),
		retry.PermanentIs(errBad, fs.ErrNotExist),
		retry.PermanentAs[*json.SyntaxError](),
		retry.After(func(err error) (time.Duration, bool) {
			if errors.Is(err, errRateLimit) {
				return 3 * time.Second, true
			}
			return 0, false
		}),
		retry.PermanentIf(func(err error) bool {
			var ce *codeErr
			return errors.As(err, &ce) && ce.code >= 400 && ce.code < 500
		}),
		retry.PermanentIf(func(error) bool { return true }), // everything else…
	}})
	if err != nil {
		t.Fatal(err)
	}
	var syntaxErr error = &json.SyntaxError{Offset: 3}
	tests := []struct {
		name      string
		err       error
		permanent bool
		delay     time.Duration // 0: none requested
	}{
		{"nil stays nil", nil, false, 0},
		{"errors.Is match", fmt.Errorf("parse: %w", errBad), true, 0},
		{"second target", fs.ErrNotExist, true, 0},
		{"errors.As match", fmt.Errorf("decode: %w", syntaxErr), true, 0},
		{"after rule", fmt.Errorf("call: %w", errRateLimit), false, 3 * time.Second},
		{"func rule", &codeErr{404}, true, 0},
		{"retryable rule shields from the catch-all", fmt.Errorf("x: %w", context.DeadlineExceeded), false, 0},
		{"catch-all", errTransient, true, 0},
		{"already permanent stays permanent", message.Permanent(context.DeadlineExceeded), true, 0},
		{"handler's own delay wins", message.RetryAfter(errBad, time.Minute), false, time.Minute},
		{"a deferral is never classified", message.Defer(errTransient, time.Second), false, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := c.Classify(tc.err, 1)
			if tc.err == nil {
				if got != nil {
					t.Fatalf("Classify(nil) = %v", got)
				}
				return
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("classified error %v no longer matches the original", got)
			}
			if got.Error() != tc.err.Error() {
				t.Errorf("text changed: %q → %q", tc.err, got)
			}
			if message.IsPermanent(got) != tc.permanent {
				t.Errorf("permanent = %v; want %v", message.IsPermanent(got), tc.permanent)
			}
			d, ok := message.RetryDelay(got)
			if ok != (tc.delay != 0) || d != tc.delay {
				t.Errorf("delay = %v, %v; want %v", d, ok, tc.delay)
			}
		})
	}
}

func TestZeroConfigClassifiesNothing(t *testing.T) {
	c, err := retry.New(retry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Classify(errBad, 1); got != errBad {
		t.Errorf("Classify = %#v; want the error unchanged", got)
	}
}

func TestConfigValidate(t *testing.T) {
	_, err := retry.New(retry.Config{Rules: []retry.Rule{retry.PermanentIs(errBad), {}}})
	if !errors.Is(err, retry.ErrInvalidConfig) || !strings.Contains(err.Error(), "Rules[1]") {
		t.Errorf("zero rule: err = %v; want ErrInvalidConfig naming Rules[1]", err)
	}
}

// stopAfter is a schedule of n waits of d, then Stop.
type stopAfter struct {
	n, left int
	d       time.Duration
}

func (s *stopAfter) Reset() { s.left = s.n }
func (s *stopAfter) NextBackOff() time.Duration {
	if s.left == 0 {
		return backoff.Stop
	}
	s.left--
	return s.d * time.Duration(s.n-s.left)
}

func TestBackOffSchedule(t *testing.T) {
	c, err := retry.New(retry.Config{
		Rules:   []retry.Rule{retry.PermanentIs(errBad)},
		BackOff: func() backoff.BackOff { return &stopAfter{n: 3, d: 10 * time.Millisecond} },
	})
	if err != nil {
		t.Fatal(err)
	}
	for attempt, want := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 3: 30 * time.Millisecond} {
		got, ok := message.RetryDelay(c.Classify(errTransient, attempt))
		if !ok || got != want {
			t.Errorf("attempt %d: delay %v, %v; want %v", attempt, got, ok, want)
		}
	}
	if err := c.Classify(errTransient, 4); !message.IsPermanent(err) || !errors.Is(err, errTransient) {
		t.Errorf("schedule exhausted: %v; want permanent, wrapping the cause", err)
	}
	if err := c.Classify(errBad, 1); !message.IsPermanent(err) {
		t.Errorf("a permanent rule must win over the schedule: %v", err)
	}
}

// TestConsumeWithEngine: on memory://, a permanent rule sends the message to the dead-letter
// topic after one call, a transient error is retried until it succeeds, and an After delay is
// honoured by the engine.
func TestConsumeWithEngine(t *testing.T) {
	ctx := context.Background()
	conn, err := memory.Open(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	c, err := retry.New(retry.Config{Rules: []retry.Rule{
		retry.PermanentIs(errBad),
		retry.After(func(err error) (time.Duration, bool) { return 150 * time.Millisecond, errors.Is(err, errRateLimit) }),
	}})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := conn.Subscribe(ctx, "orders", "s", transport.SubscriberConfig{
		Middleware: []message.Middleware{c.Consume()},
		Retry:      transport.RetryPolicy{MaxAttempts: 5, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := conn.Subscribe(ctx, "orders.dlq", "s.dlq", transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := map[string][]time.Time{}
	handled := make(chan string, 10)
	dead := make(chan *message.Message, 10)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = sub.Run(rctx, func(_ context.Context, m *message.Message) error {
			mu.Lock()
			calls[m.ID] = append(calls[m.ID], time.Now())
			n := len(calls[m.ID])
			mu.Unlock()
			switch {
			case m.ID == "bad":
				return errBad
			case m.ID == "limited" && n == 1:
				return errRateLimit
			case m.ID == "flaky" && n < 3:
				return errTransient
			}
			handled <- m.ID
			return nil
		})
	}()
	go func() {
		defer wg.Done()
		_ = dlq.Run(rctx, func(_ context.Context, m *message.Message) error { dead <- m.Clone(); return nil })
	}()
	defer func() { cancel(); wg.Wait() }()

	if err := conn.Publish(ctx, "orders", &message.Message{ID: "bad"}, &message.Message{ID: "flaky"}, &message.Message{ID: "limited"}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	timeout := time.After(10 * time.Second)
	for len(got) < 2 {
		select {
		case id := <-handled:
			got[id] = true
		case <-timeout:
			t.Fatalf("handled %v; want flaky and limited", got)
		}
	}
	select {
	case m := <-dead:
		if m.ID != "bad" || m.Header(message.HeaderDeadLetterPermanent) != "true" || m.Header(message.HeaderDeadLetterAttempts) != "1" {
			t.Errorf("dead-lettered %s with headers %v; want bad, permanent, 1 attempt", m.ID, m.Headers)
		}
	case <-timeout:
		t.Fatal("bad message not dead-lettered")
	}
	mu.Lock()
	defer mu.Unlock()
	if n := len(calls["bad"]); n != 1 {
		t.Errorf("bad handled %d times; want 1 (permanent: no retries)", n)
	}
	if n := len(calls["flaky"]); n != 3 {
		t.Errorf("flaky handled %d times; want 3", n)
	}
	if l := calls["limited"]; len(l) != 2 || l[1].Sub(l[0]) < 140*time.Millisecond {
		t.Errorf("limited: calls %v; want 2, at least 150ms apart (the After rule's delay)", l)
	}
}

func TestDo(t *testing.T) {
	ctx := context.Background()
	fast := func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }

	t.Run("succeeds after retries", func(t *testing.T) {
		calls := 0
		v, err := retry.Do(ctx, retry.Policy{BackOff: fast}, func(context.Context) (int, error) {
			calls++
			if calls < 3 {
				return 0, errTransient
			}
			return 42, nil
		})
		if err != nil || v != 42 || calls != 3 {
			t.Errorf("got %v, %v after %d calls; want 42, nil after 3", v, err, calls)
		}
	})
	t.Run("gives up after MaxTries", func(t *testing.T) {
		calls := 0
		_, err := retry.Do(ctx, retry.Policy{BackOff: fast, MaxTries: 4}, func(context.Context) (int, error) {
			calls++
			return 0, errTransient
		})
		if !errors.Is(err, errTransient) || calls != 4 {
			t.Errorf("err %v after %d calls; want errTransient after 4", err, calls)
		}
	})
	t.Run("default is 3 tries", func(t *testing.T) {
		calls := 0
		_, _ = retry.Do(ctx, retry.Policy{BackOff: fast}, func(context.Context) (struct{}, error) {
			calls++
			return struct{}{}, errTransient
		})
		if calls != retry.DefaultMaxTries {
			t.Errorf("%d calls; want %d", calls, retry.DefaultMaxTries)
		}
	})
	t.Run("permanent stops at once and stays permanent", func(t *testing.T) {
		calls := 0
		_, err := retry.Do(ctx, retry.Policy{BackOff: fast, MaxTries: 5}, func(context.Context) (int, error) {
			calls++
			return 0, message.Permanent(errBad)
		})
		if calls != 1 || !message.IsPermanent(err) || !errors.Is(err, errBad) {
			t.Errorf("err %v after %d calls; want permanent errBad after 1", err, calls)
		}
	})
	t.Run("classifier rules apply", func(t *testing.T) {
		c, _ := retry.New(retry.Config{Rules: []retry.Rule{retry.PermanentIs(errBad)}})
		calls := 0
		_, err := retry.Do(ctx, retry.Policy{BackOff: fast, MaxTries: 5, Classifier: c}, func(context.Context) (int, error) {
			calls++
			return 0, errBad
		})
		if calls != 1 || !message.IsPermanent(err) {
			t.Errorf("err %v after %d calls; want permanent after 1", err, calls)
		}
	})
	t.Run("RetryAfter sets the wait", func(t *testing.T) {
		var waits []time.Duration
		calls := 0
		_, err := retry.Do(ctx, retry.Policy{BackOff: fast, Notify: func(_ error, d time.Duration) { waits = append(waits, d) }},
			func(context.Context) (int, error) {
				calls++
				if calls == 1 {
					return 0, message.RetryAfter(errRateLimit, 30*time.Millisecond)
				}
				return 1, nil
			})
		if err != nil || len(waits) != 1 || waits[0] != 30*time.Millisecond {
			t.Errorf("err %v, waits %v; want nil, [30ms]", err, waits)
		}
	})
	t.Run("context cancel ends the wait", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		var calls atomic.Int32
		start := time.Now()
		go func() { time.Sleep(50 * time.Millisecond); cancel() }()
		_, err := retry.Do(cctx, retry.Policy{BackOff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) }, MaxElapsed: 2 * time.Hour},
			func(context.Context) (int, error) { calls.Add(1); return 0, errTransient })
		if !errors.Is(err, context.Canceled) || calls.Load() != 1 || time.Since(start) > 5*time.Second {
			t.Errorf("err %v after %d calls in %v; want context.Canceled after 1", err, calls.Load(), time.Since(start))
		}
	})
	t.Run("negative MaxElapsed is refused", func(t *testing.T) {
		_, err := retry.Do(ctx, retry.Policy{MaxElapsed: -1}, func(context.Context) (int, error) { return 0, nil })
		if !errors.Is(err, retry.ErrInvalidConfig) {
			t.Errorf("err = %v", err)
		}
	})
}
