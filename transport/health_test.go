package transport_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
	"github.com/courierhq/courier/transport/driver"
)

// statusDriver is a broker whose receivers block until their context ends or fail with
// recvErr, and report recovering while it is set.
type statusDriver struct {
	pingErr    error
	recovering atomic.Pointer[error]
	recvErr    chan error
}

func (d *statusDriver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Name: "status", Redelivery: true, FanOut: true}
}
func (d *statusDriver) Publish(context.Context, string, []*message.Message) error { return nil }
func (d *statusDriver) Subscribe(context.Context, driver.SubscriptionSpec) (driver.Receiver, error) {
	return &statusReceiver{d: d}, nil
}
func (d *statusDriver) Close(context.Context) error { return nil }

type pingingDriver struct{ *statusDriver }

func (d pingingDriver) Ping(context.Context) error { return d.pingErr }

type statusReceiver struct{ d *statusDriver }

func (r *statusReceiver) Receive(ctx context.Context, _ []*message.Message) (int, error) {
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case err := <-r.d.recvErr:
		return 0, err
	}
}
func (r *statusReceiver) Ack(context.Context, []*message.Message) error               { return nil }
func (r *statusReceiver) Nack(context.Context, *message.Message, time.Duration) error { return nil }
func (r *statusReceiver) Close(context.Context) error                                 { return nil }
func (r *statusReceiver) Recovering() error {
	if p := r.d.recovering.Load(); p != nil {
		return *p
	}
	return nil
}

func TestPing(t *testing.T) {
	ctx := context.Background()
	b, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	conn := transport.NewConn(b, transport.ConnConfig{})
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("memory ping: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := conn.Ping(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("ping with a cancelled context: %v", err)
	}
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := conn.Ping(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("ping after close: %v; want ErrClosed", err)
	}

	down := errors.New("broker at h:1 unreachable")
	pc := transport.NewConn(pingingDriver{&statusDriver{pingErr: down}}, transport.ConnConfig{})
	if err := pc.Ping(ctx); !errors.Is(err, down) {
		t.Errorf("ping of a failing driver: %v; want it to wrap the driver's error", err)
	}
	// A driver without Pinger is alive while open.
	if err := transport.NewConn(&statusDriver{}, transport.ConnConfig{}).Ping(ctx); err != nil {
		t.Errorf("ping without Pinger: %v", err)
	}
}

func waitState(t *testing.T, s *transport.Subscriber, want transport.State) transport.Status {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := s.Status()
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %v; want %v", st.State, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSubscriberStatus(t *testing.T) {
	ctx := context.Background()
	d := &statusDriver{recvErr: make(chan error, 1)}
	conn := transport.NewConn(d, transport.ConnConfig{})
	defer conn.Close(ctx)
	noop := func(context.Context, *message.Message) error { return nil }

	s, err := conn.Subscribe(ctx, "t", "clean", transport.SubscriberConfig{DeadLetter: transport.DeadLetterFunc(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.State != transport.StateIdle || st.Err != nil {
		t.Errorf("before Run: %+v", st)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx, noop) }()
	waitState(t, s, transport.StateRunning)
	lost := errors.New("connection lost")
	d.recovering.Store(&lost)
	if st := waitState(t, s, transport.StateReconnecting); !errors.Is(st.Err, lost) {
		t.Errorf("reconnecting: err %v", st.Err)
	}
	d.recovering.Store(nil)
	waitState(t, s, transport.StateRunning)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.State != transport.StateStopped || st.Err != nil {
		t.Errorf("after a clean stop: %+v", st)
	}

	// A broken subscription: stopped, with Run's error.
	s2, err := conn.Subscribe(ctx, "t", "broken", transport.SubscriberConfig{DeadLetter: transport.DeadLetterFunc(nil)})
	if err != nil {
		t.Fatal(err)
	}
	broken := errors.New("queue deleted")
	d.recvErr <- broken
	if err := s2.Run(ctx, noop); !errors.Is(err, broken) {
		t.Fatalf("Run: %v", err)
	}
	if st := s2.Status(); st.State != transport.StateStopped || !errors.Is(st.Err, broken) {
		t.Errorf("after a fatal error: %+v", st)
	}
	for st, want := range map[transport.State]string{transport.StateIdle: "idle", transport.StateRunning: "running",
		transport.StateReconnecting: "reconnecting", transport.StateStopped: "stopped", 9: "State(9)"} {
		if st.String() != want {
			t.Errorf("%d.String() = %q", int(st), st.String())
		}
	}
}

func TestDeleteSubscription(t *testing.T) {
	ctx := context.Background()
	b, _ := memory.New(memory.Config{})
	conn := transport.NewConn(b, transport.ConnConfig{})
	defer conn.Close(ctx)
	s, err := conn.Subscribe(ctx, "del", "s", transport.SubscriberConfig{DeadLetter: transport.DeadLetterFunc(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := conn.DeleteSubscription(ctx, "del", "s"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Publish(ctx, "del", &message.Message{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if n := b.Depth("del", "s"); n != 0 {
		t.Errorf("deleted subscription holds %d messages", n)
	}
	if err := conn.DeleteSubscription(ctx, "del", "missing"); err != nil {
		t.Errorf("deleting a missing subscription: %v", err)
	}
	other := transport.NewConn(&statusDriver{}, transport.ConnConfig{})
	if err := other.DeleteSubscription(ctx, "t", "s"); !errors.Is(err, transport.ErrUnsupported) {
		t.Errorf("driver without SubscriptionDeleter: %v", err)
	}
}
