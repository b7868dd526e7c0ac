package transport_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// Tests of deferrals (message.Defer, DeferUntil, Requeue): the engine parks a deferred message
// off its lane, never dead-letters it for the deferral, and gives it back on stop.

var errNotYet = errors.New("not yet")

// handled records the order in which IDs were handled successfully.
type handled struct {
	mu  sync.Mutex
	ids []string
}

func (h *handled) add(id string) {
	h.mu.Lock()
	h.ids = append(h.ids, id)
	h.mu.Unlock()
}

func (h *handled) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.ids...)
}

func TestDeferParksOffTheLane(t *testing.T) {
	for _, redelivery := range []bool{true, false} {
		t.Run(map[bool]string{true: "redelivery", false: "no-redelivery"}[redelivery], func(t *testing.T) {
			d := newFake(redelivery)
			var done handled
			var mu sync.Mutex
			deferrals := 0
			release := make(chan struct{})
			attempts := map[int]bool{}
			// One lane, MaxAttempts 1: a failure would dead-letter at once, a deferral must not.
			_, r, stop := start(t, d, transport.SubscriberConfig{Concurrency: 1,
				Retry: transport.RetryPolicy{MaxAttempts: 1}},
				func(_ context.Context, m *message.Message) error {
					if m.ID == "first" {
						mu.Lock()
						deferrals++
						attempts[m.Attempt] = true
						mu.Unlock()
						select {
						case <-release:
						default:
							return message.Defer(errNotYet, 5*time.Millisecond)
						}
					}
					done.add(m.ID)
					return nil
				})
			r.deliver(&message.Message{ID: "first", Key: "k1"})
			r.deliver(&message.Message{ID: "second", Key: "k2"}) // same (only) lane
			eventually(t, "the second message handled while the first waits", func() bool {
				l := done.list()
				return len(l) == 1 && l[0] == "second"
			})
			eventually(t, "several deferrals", func() bool { mu.Lock(); defer mu.Unlock(); return deferrals >= 5 })
			close(release)
			eventually(t, "the first handled", func() bool { return len(done.list()) == 2 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			acked, nacked, _, _ := d.snapshot()
			if len(acked) != 2 || len(nacked) != 0 {
				t.Errorf("acked %v nacked %v; want both acked, nothing nacked or dead-lettered", acked, nacked)
			}
			if len(d.published) != 0 {
				t.Errorf("dead-lettered %v; a deferral is not a failure", d.published)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(attempts) != 1 || !attempts[1] {
				t.Errorf("attempts seen %v; a parked message keeps its attempt", attempts)
			}
		})
	}
}

func TestDeferUntilEndsEarly(t *testing.T) {
	d := newFake(true)
	wake := make(chan struct{})
	var done handled
	var mu sync.Mutex
	calls := 0
	_, r, _ := start(t, d, transport.SubscriberConfig{}, func(_ context.Context, m *message.Message) error {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			return message.DeferUntil(errNotYet, time.Hour, wake)
		}
		done.add(m.ID)
		return nil
	})
	r.deliver(&message.Message{ID: "m", Key: "k"})
	eventually(t, "the first call", func() bool { mu.Lock(); defer mu.Unlock(); return calls == 1 })
	close(wake)
	eventually(t, "the message handled once woken (its delay is an hour)", func() bool { return len(done.list()) == 1 })
}

func TestRequeueGoesToTheBroker(t *testing.T) {
	d := newFake(true)
	_, r, stop := start(t, d, transport.SubscriberConfig{Retry: transport.RetryPolicy{MaxAttempts: 1}},
		func(context.Context, *message.Message) error { return message.Requeue(errNotYet, 42*time.Millisecond) })
	r.deliver(&message.Message{ID: "m", Key: "k"})
	eventually(t, "a nack", func() bool { _, n, _, _ := d.snapshot(); return len(n) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	_, nacked, _, _ := d.snapshot()
	if nacked[0].delay != 42*time.Millisecond {
		t.Errorf("nacked with %v; want the requeue's 42ms", nacked[0].delay)
	}
	if len(d.published) != 0 {
		t.Errorf("dead-lettered %v; a requeue is not a failure", d.published)
	}
}

func TestStopReleasesParkedMessages(t *testing.T) {
	d := newFake(true)
	_, r, stop := start(t, d, transport.SubscriberConfig{}, func(context.Context, *message.Message) error {
		return message.Defer(errNotYet, time.Hour)
	})
	r.deliver(&message.Message{ID: "parked"})
	eventually(t, "the message in flight", func() bool { _, _, n, _ := d.snapshot(); return n == 1 })
	time.Sleep(20 * time.Millisecond) // let it be parked
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	acked, nacked, inflight, _ := d.snapshot()
	if len(acked) != 0 || len(nacked) != 1 || nacked[0].delay != 0 || inflight != 0 {
		t.Errorf("after stop: acked %v, nacked %v, in flight %d; want the parked message released (nack 0)", acked, nacked, inflight)
	}
}

// TestFullParkEvicts: when every message in flight is parked waiting for ones the broker has
// not handed out, the engine gives some back so that it can receive more.
func TestFullParkEvicts(t *testing.T) {
	d := newFake(true)
	var done handled
	_, r, _ := start(t, d, transport.SubscriberConfig{Concurrency: 1, Prefetch: 4}, func(_ context.Context, m *message.Message) error {
		if m.ID != "free" {
			return message.Defer(errNotYet, time.Hour)
		}
		done.add(m.ID)
		return nil
	})
	for _, id := range []string{"w1", "w2", "w3", "w4"} {
		r.deliver(&message.Message{ID: id})
	}
	eventually(t, "the prefetch full", func() bool { _, _, n, _ := d.snapshot(); return n == 4 })
	r.deliver(&message.Message{ID: "free"})
	eventually(t, "the fifth message handled", func() bool { return len(done.list()) == 1 })
	_, nacked, _, _ := d.snapshot()
	if len(nacked) == 0 || nacked[0].delay < 50*time.Minute {
		t.Errorf("nacked %v; want a parked message given back with about its remaining hour", nacked)
	}
}
