package transport_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// Tests of parking with brokers that cannot redeliver, of held keys (message.DeferInOrder) and
// of dead-lettering that fails for a while.

// logRecorder is a slog.Handler that keeps the messages of the records it is given.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// TestRequeueWithoutRedeliveryParks: on a broker that cannot redeliver (Kafka), Requeue parks
// the message instead of sleeping on its lane: with one worker, other messages are handled
// while it waits. Nor is a deferral logged as a failure.
func TestRequeueWithoutRedeliveryParks(t *testing.T) {
	d := newFake(false)
	logs := &logRecorder{}
	var done handled
	var mu sync.Mutex
	calls := 0
	_, r, stop := start(t, d, transport.SubscriberConfig{Concurrency: 1, Logger: slog.New(logs)},
		func(_ context.Context, m *message.Message) error {
			if m.ID == "requeued" {
				mu.Lock()
				calls++
				n := calls
				mu.Unlock()
				if n == 1 {
					return message.Requeue(errNotYet, time.Hour)
				}
			}
			done.add(m.ID)
			return nil
		})
	r.deliver(&message.Message{ID: "requeued", Key: "k1"})
	r.deliver(&message.Message{ID: "other", Key: "k2"})
	r.deliver(&message.Message{ID: "same-key", Key: "k1"})
	eventually(t, "other messages handled while the requeued one waits (its delay is an hour)", func() bool {
		return len(done.list()) == 2
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Errorf("requeued message called %d times; want 1 (it waits an hour)", calls)
	}
	if n := logs.count("will retry"); n != 0 {
		t.Errorf("%d \"will retry\" lines for a deferral; want none", n)
	}
	if acked, nacked, _, _ := d.snapshot(); len(acked) != 2 || len(nacked) != 0 {
		t.Errorf("acked %v nacked %v; want the two others acked, nothing nacked", acked, nacked)
	}
}

// TestFailureLogsWillRetry: the debug line is for failures: it fires for a retried error.
func TestFailureLogsWillRetry(t *testing.T) {
	d := newFake(false)
	logs := &logRecorder{}
	var mu sync.Mutex
	calls := 0
	_, r, stop := start(t, d, transport.SubscriberConfig{Logger: slog.New(logs)}, func(context.Context, *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return errors.New("flaky")
		}
		return nil
	})
	r.deliver(&message.Message{ID: "m"})
	eventually(t, "ack", func() bool { a, _, _, _ := d.snapshot(); return len(a) == 1 })
	_ = stop()
	if n := logs.count("will retry"); n != 1 {
		t.Errorf("%d \"will retry\" lines for one failure; want 1", n)
	}
}

// TestDeferInOrderHoldsTheKey: a message deferred with DeferInOrder keeps its place: its key's
// later messages wait behind it (in order) until it is handled, while other keys flow.
func TestDeferInOrderHoldsTheKey(t *testing.T) {
	for _, redelivery := range []bool{true, false} {
		t.Run(map[bool]string{true: "redelivery", false: "no-redelivery"}[redelivery], func(t *testing.T) {
			d := newFake(redelivery)
			wake := make(chan struct{})
			var done handled
			var mu sync.Mutex
			holderCalls := 0
			_, r, stop := start(t, d, transport.SubscriberConfig{Concurrency: 1, Retry: transport.RetryPolicy{MaxAttempts: 1}},
				func(_ context.Context, m *message.Message) error {
					if m.ID == "k1-1" {
						mu.Lock()
						holderCalls++
						n := holderCalls
						mu.Unlock()
						if n == 1 {
							return message.DeferInOrder(errNotYet, time.Hour, wake)
						}
					}
					done.add(m.ID)
					return nil
				})
			for _, m := range []*message.Message{
				{ID: "k1-1", Key: "k1"}, {ID: "k2-1", Key: "k2"}, {ID: "k1-2", Key: "k1"},
				{ID: "k1-3", Key: "k1"}, {ID: "k2-2", Key: "k2"}, {ID: "none"},
			} {
				r.deliver(m)
			}
			eventually(t, "the other key and the unkeyed message handled", func() bool { return len(done.list()) == 3 })
			time.Sleep(20 * time.Millisecond)
			if got := strings.Join(done.list(), ","); strings.Contains(got, "k1") {
				t.Fatalf("handled %s while k1-1 waits in order; k1's later messages must wait behind it", got)
			}
			close(wake)
			eventually(t, "all handled once woken", func() bool { return len(done.list()) == 6 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			var k1 []string
			for _, id := range done.list() {
				if strings.HasPrefix(id, "k1") {
					k1 = append(k1, id)
				}
			}
			if strings.Join(k1, ",") != "k1-1,k1-2,k1-3" {
				t.Errorf("k1 handled in order %v; want k1-1,k1-2,k1-3", k1)
			}
			acked, nacked, _, _ := d.snapshot()
			if len(acked) != 6 || len(nacked) != 0 || len(d.published) != 0 {
				t.Errorf("acked %v nacked %v dead-lettered %v; want all 6 acked", acked, nacked, d.published)
			}
		})
	}
}

// TestDeferInOrderAgain: a message that waited behind a held key may hold it in turn; the
// key's order still holds, and a held key whose holder times out (no wake) goes on.
func TestDeferInOrderAgain(t *testing.T) {
	d := newFake(false)
	var done handled
	var mu sync.Mutex
	seen := map[string]int{}
	_, r, stop := start(t, d, transport.SubscriberConfig{Concurrency: 2}, func(_ context.Context, m *message.Message) error {
		mu.Lock()
		seen[m.ID]++
		n := seen[m.ID]
		mu.Unlock()
		if (m.ID == "a" || m.ID == "b") && n == 1 {
			return message.DeferInOrder(errNotYet, 10*time.Millisecond, nil)
		}
		done.add(m.ID)
		return nil
	})
	for _, id := range []string{"a", "b", "c"} {
		r.deliver(&message.Message{ID: id, Key: "k"})
	}
	eventually(t, "all handled", func() bool { return len(done.list()) == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(done.list(), ","); got != "a,b,c" {
		t.Errorf("handled %s; want a,b,c", got)
	}
}

// TestStopReleasesHeldKey: on stop, a holder and the messages waiting behind it are given back.
func TestStopReleasesHeldKey(t *testing.T) {
	d := newFake(true)
	_, r, stop := start(t, d, transport.SubscriberConfig{Concurrency: 1}, func(_ context.Context, m *message.Message) error {
		return message.DeferInOrder(errNotYet, time.Hour, nil)
	})
	r.deliver(&message.Message{ID: "holder", Key: "k"})
	r.deliver(&message.Message{ID: "behind", Key: "k"})
	eventually(t, "both in flight", func() bool { _, _, n, _ := d.snapshot(); return n == 2 })
	time.Sleep(20 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	acked, nacked, inflight, _ := d.snapshot()
	if len(acked) != 0 || len(nacked) != 2 || inflight != 0 {
		t.Errorf("after stop: acked %v nacked %v in flight %d; want both released", acked, nacked, inflight)
	}
}

// TestDeadLetterFailureBacksOff: a dead-letter destination that fails for a while costs one
// attempt per capped backoff step, one log line and one OnDeadLetterError call each; the
// message is kept (not acked) and holds only its own key, and is acked once stored.
func TestDeadLetterFailureBacksOff(t *testing.T) {
	d := newFake(false)
	logs := &logRecorder{}
	const failures = 4
	var mu sync.Mutex
	var tries []time.Time
	var stored []string
	var hooked []transport.DeadLetterRetry
	dl := transport.DeadLetterFunc(func(_ context.Context, m *message.Message, f transport.Failure) error {
		mu.Lock()
		defer mu.Unlock()
		tries = append(tries, time.Now())
		if len(tries) <= failures {
			return errors.New("dead-letter topic down")
		}
		stored = append(stored, m.ID)
		return nil
	})
	var done handled
	_, r, stop := start(t, d, transport.SubscriberConfig{
		Concurrency: 1,
		Logger:      slog.New(logs),
		DeadLetter:  dl,
		DeadLetterBackoff: transport.RetryPolicy{InitialDelay: 20 * time.Millisecond, MaxDelay: 40 * time.Millisecond,
			Multiplier: 2, Jitter: -1},
		OnDeadLetterError: func(r transport.DeadLetterRetry) {
			mu.Lock()
			hooked = append(hooked, r)
			mu.Unlock()
		},
	}, func(_ context.Context, m *message.Message) error {
		if m.ID == "poison" {
			return message.Permanent(errors.New("bad"))
		}
		done.add(m.ID)
		return nil
	})
	r.deliver(&message.Message{ID: "poison", Key: "k1"})
	r.deliver(&message.Message{ID: "k1-later", Key: "k1"})
	for _, id := range []string{"k2-1", "k2-2", "k3-1"} {
		r.deliver(&message.Message{ID: id, Key: id[:2]})
	}
	eventually(t, "other keys handled while the dead-letter copy cannot be stored", func() bool {
		return len(done.list()) == 3
	})
	mu.Lock()
	early := len(stored)
	mu.Unlock()
	if got := strings.Join(done.list(), ","); strings.Contains(got, "k1") && early == 0 {
		t.Errorf("handled %s before the poison message left; k1's later message must wait behind it", got)
	}
	eventually(t, "the poison acked once stored", func() bool {
		a, _, _, _ := d.snapshot()
		return len(a) == 5
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tries) != failures+1 || len(stored) != 1 || stored[0] != "poison" {
		t.Fatalf("%d tries, stored %v; want %d tries and the poison stored once", len(tries), stored, failures+1)
	}
	want := []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 40 * time.Millisecond, 40 * time.Millisecond}
	for i, w := range want {
		if gap := tries[i+1].Sub(tries[i]); gap < w {
			t.Errorf("attempt %d came %v after the previous one; the backoff says %v", i+2, gap, w)
		}
		if hooked[i].Attempt != i+1 || hooked[i].RetryIn != w || hooked[i].Message.ID != "poison" || hooked[i].Err == nil {
			t.Errorf("OnDeadLetterError call %d = %+v; want attempt %d, retry in %v", i, hooked[i], i+1, w)
		}
	}
	if len(hooked) != failures {
		t.Errorf("OnDeadLetterError called %d times; want %d", len(hooked), failures)
	}
	if n := logs.count("dead-lettering failed"); n != failures {
		t.Errorf("%d \"dead-lettering failed\" lines; want one per failed attempt (%d)", n, failures)
	}
	if got := done.list(); got[len(got)-1] != "k1-later" {
		t.Errorf("handled %v; k1-later must come after the poison message was stored", got)
	}
}

// TestHandlerContextCarriesLogger: middleware reaches the subscriber's logger through
// message.LoggerFrom.
func TestHandlerContextCarriesLogger(t *testing.T) {
	d := newFake(true)
	logs := &logRecorder{}
	_, r, stop := start(t, d, transport.SubscriberConfig{Logger: slog.New(logs)}, func(ctx context.Context, m *message.Message) error {
		message.LoggerFrom(ctx).Info("from the handler")
		return nil
	})
	r.deliver(&message.Message{ID: "m"})
	eventually(t, "ack", func() bool { a, _, _, _ := d.snapshot(); return len(a) == 1 })
	_ = stop()
	if n := logs.count("from the handler"); n != 1 {
		t.Errorf("%d lines reached the subscriber's logger through LoggerFrom; want 1", n)
	}
}
