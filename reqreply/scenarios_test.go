package reqreply

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// The scenarios run against any connection: memory:// in the unit tests, every real broker
// in the integration tests (integration_test.go).

// uniqueName returns a fresh topic name: the brokers are shared between test runs.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%06d", prefix, time.Now().UnixNano()%1e9, rand.IntN(1_000_000))
}

// responderCfg is the request subscription's configuration: parallel, unordered.
func responderCfg() transport.SubscriberConfig {
	return transport.SubscriberConfig{Concurrency: 64, Order: transport.OrderNone, DrainTimeout: 5 * time.Second}
}

// serve subscribes a responder running fn on topic and runs it until the test ends or stop
// is called; stop waits for Run to return.
func serve(t testing.TB, conn *transport.Conn, topic string, fn Func) (stop func()) {
	t.Helper()
	ctx := context.Background()
	sub, err := conn.Subscribe(ctx, topic, "responder", responderCfg())
	if err != nil {
		t.Fatalf("subscribe responder: %v", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := sub.Run(runCtx, Responder(conn, fn)); err != nil {
			t.Errorf("responder run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// newRequester makes a requester on conn, closed when the test ends.
func newRequester(t testing.TB, conn *transport.Conn) *Requester {
	t.Helper()
	r, err := NewRequester(context.Background(), conn, RequesterConfig{})
	if err != nil {
		t.Fatalf("NewRequester: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(context.Background()); err != nil {
			t.Errorf("requester close: %v", err)
		}
	})
	return r
}

// echo answers "echo:<payload>" and copies the correlation ID into a header of its own, so the
// test can check it was the responder that saw it.
func echo(_ context.Context, req *message.Message) (*message.Message, error) {
	reply := message.New([]byte("echo:" + string(req.Payload)))
	reply.SetHeader("seen-correlation-id", CorrelationID(req))
	return reply, nil
}

// scenarioConcurrent: n concurrent requests each get their own reply.
func scenarioConcurrent(t *testing.T, conn *transport.Conn, n int, timeout time.Duration) {
	topic := uniqueName("rr-conc")
	serve(t, conn, topic, echo)
	r := newRequester(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	var bad atomic.Int64
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("corr-%d-%s", i, NewCorrelationID())
			body := strconv.Itoa(i)
			reply, err := r.Request(ctx, topic, message.New([]byte(body)), WithCorrelationID(id))
			switch {
			case err != nil:
				t.Errorf("request %d: %v", i, err)
			case string(reply.Payload) != "echo:"+body || CorrelationID(reply) != id || reply.Header("seen-correlation-id") != id:
				bad.Add(1)
				t.Errorf("request %d got another's reply: payload %q, correlation %q, seen %q", i, reply.Payload, CorrelationID(reply), reply.Header("seen-correlation-id"))
			}
		})
	}
	wg.Wait()
	s := r.Stats()
	if s.Requests != uint64(n) || s.Replies != uint64(n) || s.Late != 0 || s.Invalid != 0 {
		t.Errorf("stats %+v, want %d requests and replies, none late or invalid", s, n)
	}
	t.Logf("%s: %d concurrent requests: %+v, %d mismatched", conn.Capabilities().Name, n, s, bad.Load())
}

// scenarioTimeout: a timed-out request returns context.DeadlineExceeded; its late reply is
// dropped and counted, and a later request still gets its own reply.
func scenarioTimeout(t *testing.T, conn *transport.Conn, wait time.Duration) {
	topic := uniqueName("rr-late")
	release := make(chan struct{})
	serve(t, conn, topic, func(ctx context.Context, req *message.Message) (*message.Message, error) {
		if string(req.Payload) == "slow" {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return echo(ctx, req)
	})
	r := newRequester(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err := r.Request(ctx, topic, message.New([]byte("slow")))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timed-out request: %v, want context.DeadlineExceeded", err)
	}
	close(release)
	waitFor(t, wait, "the late reply to be counted", func() bool { return r.Stats().Late == 1 })
	ctx, cancel = context.WithTimeout(context.Background(), wait)
	defer cancel()
	reply, err := r.Request(ctx, topic, message.New([]byte("fast")))
	if err != nil || string(reply.Payload) != "echo:fast" {
		t.Fatalf("request after the late reply: %v, %v", reply, err)
	}
	if s := r.Stats(); s.Late != 1 || s.Replies != 1 {
		t.Errorf("stats %+v, want 1 late reply and 1 delivered", s)
	}
}

// scenarioErrors: a responder's error reaches the caller, matchable with errors.Is/As.
func scenarioErrors(t *testing.T, conn *transport.Conn, timeout time.Duration) {
	topic := uniqueName("rr-err")
	serve(t, conn, topic, func(_ context.Context, req *message.Message) (*message.Message, error) {
		switch string(req.Payload) {
		case "permanent":
			return nil, message.Permanent(errors.New("no such sku"))
		case "kind":
			return nil, &RemoteError{Kind: "not-found", Message: "sku 42"}
		}
		return nil, errors.New("database busy")
	})
	r := newRequester(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, tc := range []struct{ body, kind, text string }{
		{"permanent", KindPermanent, "no such sku"},
		{"kind", "not-found", "sku 42"},
		{"plain", KindError, "database busy"},
	} {
		_, err := r.Request(ctx, topic, message.New([]byte(tc.body)))
		var re *RemoteError
		if !errors.As(err, &re) || !errors.Is(err, ErrRemote) {
			t.Fatalf("%s: %v, want a *RemoteError", tc.body, err)
		}
		if re.Kind != tc.kind || re.Message != tc.text {
			t.Errorf("%s: kind %q text %q, want %q %q", tc.body, re.Kind, re.Message, tc.kind, tc.text)
		}
		if got := errors.Is(err, message.ErrPermanent); got != (tc.kind == KindPermanent) {
			t.Errorf("%s: errors.Is(err, message.ErrPermanent) = %v", tc.body, got)
		}
	}
}

// scenarioRestart: the responder is stopped and started again while n callers wait; each
// retries on timeout with the same correlation ID, and every request is answered. The first
// responder answers a quarter of the requests and then hangs on the rest until it is stopped,
// so that the stop always catches requests in flight and callers always wait past a timeout.
func scenarioRestart(t *testing.T, conn *transport.Conn, n int, attemptTimeout, total time.Duration) {
	topic := uniqueName("rr-restart")
	var handled atomic.Int64
	var hang atomic.Bool
	hang.Store(true)
	fn := func(ctx context.Context, req *message.Message) (*message.Message, error) {
		if handled.Add(1) > int64(n/4) && hang.Load() {
			<-ctx.Done() // stopped mid-request: the engine gives the request back
			return nil, ctx.Err()
		}
		return echo(ctx, req)
	}
	stop := serve(t, conn, topic, fn)
	r := newRequester(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), total)
	defer cancel()
	var answered, retries atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := strconv.Itoa(i)
			if err := requestWithRetry(ctx, r, topic, body, attemptTimeout, &retries); err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			answered.Add(1)
		})
	}
	waitFor(t, total/2, "a quarter of the requests to be answered", func() bool { return answered.Load() >= int64(n/4) })
	time.Sleep(attemptTimeout) // callers time out and retry while the responder hangs
	stop()
	stopped := answered.Load()
	hang.Store(false)
	serve(t, conn, topic, fn)
	wg.Wait()
	if answered.Load() != int64(n) {
		t.Errorf("answered %d of %d", answered.Load(), n)
	}
	if stopped == int64(n) || retries.Load() == 0 {
		t.Errorf("the restart caught nothing: %d of %d answered before it, %d retries", stopped, n, retries.Load())
	}
	t.Logf("%s restart: %d answered before the stop, %d after; %d retries, %d handled, stats %+v",
		conn.Capabilities().Name, stopped, int64(n)-stopped, retries.Load(), handled.Load(), r.Stats())
}

// requestWithRetry is the documented caller: retry on timeout with the same correlation ID.
func requestWithRetry(ctx context.Context, r *Requester, topic, body string, attemptTimeout time.Duration, retries *atomic.Int64) error {
	id := NewCorrelationID()
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		reply, err := r.Request(actx, topic, message.New([]byte(body)), WithCorrelationID(id))
		cancel()
		switch {
		case err == nil && string(reply.Payload) != "echo:"+body:
			return fmt.Errorf("got another's reply %q", reply.Payload)
		case err == nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			retries.Add(1)
		default:
			return fmt.Errorf("attempt %d: %w", attempt+1, err)
		}
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
