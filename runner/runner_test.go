package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/runner"
	"github.com/courierhq/courier/transport"
)

// The integration tests link the Pub/Sub client: its OpenCensus dependency starts a worker
// from a package init that lives for the process, and its stream keep-alive goroutine notices
// a finished Receive only when its 10-second ticker fires (see adapters/gcppubsub's tests).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreTopFunction("cloud.google.com/go/pubsub/v2.(*messageIterator).streamKeepAliveHandler"))
}

func newConn(t *testing.T) (*transport.Conn, *memory.Broker) {
	t.Helper()
	b, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := transport.NewConn(b, transport.ConnConfig{})
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c, b
}

// waitReady waits until every route runs.
func waitReady(t *testing.T, r *runner.Runner) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !r.Readiness(context.Background()).Ready {
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %+v", r.Readiness(context.Background()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStopsOnSIGTERM: N subscribers each have a handler in flight when SIGTERM arrives; one
// group finishes within the drain timeout and is acknowledged, the other ignores the stop
// and has its context cancelled at the drain timeout. Run returns nil and every subscriber
// is stopped.
func TestStopsOnSIGTERM(t *testing.T) {
	const n = 6
	conn, b := newConn(t)
	r := runner.New(conn, runner.Config{DrainTimeout: 300 * time.Millisecond})
	var started, finished, cancelled atomic.Int32
	inFlight := make(chan struct{}, n)
	for i := range n {
		slow := i%2 == 1
		err := r.Add(runner.Route{Topic: fmt.Sprintf("sigterm-%d", i), Subscription: "s", Handler: func(ctx context.Context, m *message.Message) error {
			started.Add(1)
			inFlight <- struct{}{}
			if slow {
				<-ctx.Done() // outlives the drain timeout: cancelled
				cancelled.Add(1)
				return ctx.Err()
			}
			time.Sleep(50 * time.Millisecond) // finishes while draining
			finished.Add(1)
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	waitReady(t, r)
	for i := range n {
		if err := conn.Publish(context.Background(), fmt.Sprintf("sigterm-%d", i), &message.Message{Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		<-inFlight
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after SIGTERM")
	}
	if started.Load() != n || finished.Load() != n/2 || cancelled.Load() != n/2 {
		t.Errorf("started %d, finished %d, cancelled %d; want %d, %d, %d", started.Load(), finished.Load(), cancelled.Load(), n, n/2, n/2)
	}
	for i := 0; i < n; i += 2 {
		if d := b.Depth(fmt.Sprintf("sigterm-%d", i), "s"); d != 0 {
			t.Errorf("fast route %d: %d messages back in the queue; the drain should have let it finish", i, d)
		}
	}
	h := r.Liveness()
	for _, s := range h.Subscriptions {
		if s.State != "stopped" {
			t.Errorf("%s/%s: state %s after Run", s.Topic, s.Subscription, s.State)
		}
	}
}

// TestFatalErrorStopsTheOthers: one subscription is deleted under its subscriber, which
// fails; the runner stops the others and returns the error.
func TestFatalErrorStopsTheOthers(t *testing.T) {
	conn, _ := newConn(t)
	r := runner.New(conn, runner.Config{DrainTimeout: time.Second})
	noop := func(context.Context, *message.Message) error { return nil }
	for i := range 3 {
		if err := r.Add(runner.Route{Topic: fmt.Sprintf("fatal-%d", i), Subscription: "s", Handler: noop}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	waitReady(t, r)
	if err := conn.DeleteSubscription(context.Background(), "fatal-1", "s"); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after a subscriber failed")
	}
	if !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Run: %v; want the failed subscriber's error", err)
	}
	h := r.Liveness()
	if h.Live {
		t.Error("live after a fatal error")
	}
	for i, s := range h.Subscriptions {
		if s.State != "stopped" || (i == 1) != (s.Error != "") {
			t.Errorf("route %d: %+v", i, s)
		}
	}
	if h.Err() == nil {
		t.Error("Health.Err is nil after a fatal error")
	}
}

func TestContextEndStops(t *testing.T) {
	conn, _ := newConn(t)
	r := runner.New(conn, runner.Config{})
	if err := r.Add(runner.Route{Topic: "ctx", Subscription: "s", Handler: func(context.Context, *message.Message) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitReady(t, r)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := r.Run(context.Background()); !errors.Is(err, runner.ErrRunning) {
		t.Errorf("second Run: %v", err)
	}
	if err := r.Add(runner.Route{Topic: "late", Subscription: "s", Handler: func(context.Context, *message.Message) error { return nil }}); !errors.Is(err, runner.ErrRunning) {
		t.Errorf("Add after Run: %v", err)
	}
}

func TestAddAndRunErrors(t *testing.T) {
	conn, _ := newConn(t)
	h := func(context.Context, *message.Message) error { return nil }
	r := runner.New(conn, runner.Config{})
	for _, rt := range []runner.Route{{Subscription: "s", Handler: h}, {Topic: "t", Handler: h}, {Topic: "t", Subscription: "s"}} {
		if err := r.Add(rt); !errors.Is(err, transport.ErrInvalidConfig) {
			t.Errorf("Add(%+v): %v", rt, err)
		}
	}
	if err := runner.New(nil, runner.Config{}).Add(runner.Route{Topic: "t", Subscription: "s", Handler: h}); !errors.Is(err, transport.ErrInvalidConfig) {
		t.Errorf("route without a connection: %v", err)
	}
	if err := r.Run(context.Background()); !errors.Is(err, transport.ErrInvalidConfig) {
		t.Errorf("Run without routes: %v", err)
	}
	if err := (runner.Config{DrainTimeout: -1}).Validate(); err == nil {
		t.Error("negative DrainTimeout accepted")
	}

	// A route that cannot subscribe: the ones before it are closed, Run fails at once.
	r2 := runner.New(conn, runner.Config{})
	_ = r2.Add(runner.Route{Topic: "ok", Subscription: "s", Handler: h})
	_ = r2.Add(runner.Route{Topic: "bad topic", Subscription: "s", Handler: h})
	if err := r2.Run(context.Background()); !errors.Is(err, transport.ErrInvalidTopic) {
		t.Errorf("Run with an invalid route: %v", err)
	}
}

func TestHealthHandler(t *testing.T) {
	conn, _ := newConn(t)
	r := runner.New(conn, runner.Config{})
	_ = r.Add(runner.Route{Topic: "probe", Subscription: "s", Handler: func(context.Context, *message.Message) error { return nil }})
	srv := httptest.NewServer(r.HealthHandler())
	defer srv.Close()
	get := func(path string) (int, runner.Health) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h runner.Health
		if resp.StatusCode != http.StatusNotFound {
			if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, h
	}
	if code, h := get("/readyz"); code != http.StatusServiceUnavailable || h.Ready || h.Subscriptions[0].State != "pending" {
		t.Errorf("readyz before Run: %d %+v", code, h)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("healthz before Run: %d", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitReady(t, r)
	if code, h := get("/readyz"); code != http.StatusOK || !h.Ready || len(h.Brokers) != 1 || h.Brokers[0].Error != "" || h.Subscriptions[0].State != "running" {
		t.Errorf("readyz while running: %d %+v", code, h)
	}
	if code, _ := get("/other"); code != http.StatusNotFound {
		t.Errorf("/other: %d", code)
	}
	cancel()
	<-done
	if code, h := get("/healthz"); code != http.StatusServiceUnavailable || h.Live {
		t.Errorf("healthz after Run: %d %+v", code, h)
	}
	_ = conn.Close(context.Background())
	if _, h := get("/readyz"); h.Ready || h.Brokers[0].Error == "" {
		t.Errorf("readyz with a closed connection: %+v", h)
	}
}
