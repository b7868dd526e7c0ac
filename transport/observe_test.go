package transport_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// recorder is an Observer that writes down every call as a line.
type recorder struct {
	mu    sync.Mutex
	lines []string
	runs  int
	occ   func() transport.Occupancy
}

type ctxKey struct{}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

func (r *recorder) PublishStart(ctx context.Context, p transport.PublishInfo, msgs []*message.Message) context.Context {
	r.add("publish-start %s %s %d", p.Broker, p.Topic, len(msgs))
	for _, m := range msgs {
		h := make(message.Headers, len(m.Headers)+1)
		for k, v := range m.Headers {
			h[k] = v
		}
		h["traceparent"] = "tp-" + m.ID
		m.Headers = h
	}
	return context.WithValue(ctx, ctxKey{}, "pub")
}

func (r *recorder) PublishEnd(ctx context.Context, p transport.PublishInfo, msgs []*message.Message, err error) {
	r.add("publish-end %s %v %v", p.Topic, ctx.Value(ctxKey{}), err != nil)
}

func (r *recorder) ProcessStart(ctx context.Context, d transport.Delivery) context.Context {
	r.add("start %s/%s %s #%d", d.Topic, d.Subscription, d.Message.ID, d.Message.Attempt)
	return context.WithValue(ctx, ctxKey{}, d.Message.Header("traceparent"))
}

func (r *recorder) ProcessEnd(ctx context.Context, s transport.SubscriptionInfo, err error, elapsed time.Duration) {
	r.add("end %v %v", ctx.Value(ctxKey{}), err != nil)
}

func (r *recorder) Event(ctx context.Context, d transport.Delivery, ev transport.Event) {
	r.add("event %s %s %v", d.Message.ID, ev.Kind, ctx.Value(ctxKey{}))
}

func (r *recorder) SubscriberStart(s transport.SubscriptionInfo, occ func() transport.Occupancy) func() {
	r.mu.Lock()
	r.runs++
	r.occ = occ
	r.mu.Unlock()
	return func() { r.add("stopped %s", s.Subscription) }
}

// TestObserverSequence: every handler call is ProcessStart, one Event, ProcessEnd, in that
// order, with the context ProcessStart returned reaching the handler and the later calls; a
// dead-lettered message reports its hand-off inside its last call.
func TestObserverSequence(t *testing.T) {
	d := newFake(false) // retries in place
	rec := &recorder{}
	var seen sync.Map
	_, r, stop := start(t, d, transport.SubscriberConfig{Concurrency: 1, Observer: rec,
		Retry: transport.RetryPolicy{MaxAttempts: 2, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}},
		func(ctx context.Context, m *message.Message) error {
			seen.Store(m.ID, ctx.Value(ctxKey{}))
			switch m.ID {
			case "flaky":
				if m.Attempt == 1 {
					return errors.New("once")
				}
			case "dead":
				return message.Permanent(errors.New("never"))
			case "later":
				if m.Attempt == 1 && rec.deferred() == 0 {
					return message.Defer(errors.New("not yet"), time.Millisecond)
				}
			}
			return nil
		})
	for _, id := range []string{"ok", "flaky", "dead", "later"} {
		r.deliver(&message.Message{ID: id, Attempt: 1, Headers: message.Headers{"traceparent": "tp-" + id}})
	}
	eventually(t, "four messages settled", func() bool {
		n := 0
		for _, l := range rec.snapshot() {
			if strings.HasPrefix(l, "event") && !strings.Contains(l, " retry ") && !strings.Contains(l, " defer ") {
				n++
			}
		}
		return n == 4
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(rec.snapshot(), "\n")
	want := []string{
		"start t/s ok #1\nevent ok ack tp-ok\nend tp-ok false",
		"start t/s flaky #1\nevent flaky retry tp-flaky\nend tp-flaky true\nstart t/s flaky #2\nevent flaky ack tp-flaky\nend tp-flaky false",
		"start t/s dead #1\nevent dead dead_letter tp-dead\nend tp-dead true",
		"start t/s later #1\nevent later defer tp-later\nend tp-later true",
		"stopped s",
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("calls lack\n%s\n--- got:\n%s", w, got)
		}
	}
	if v, _ := seen.Load("flaky"); v != "tp-flaky" {
		t.Errorf("handler's context carried %v; want what ProcessStart returned (tp-flaky)", v)
	}
	if rec.runs != 1 || rec.occ().Prefetch == 0 {
		t.Errorf("SubscriberStart called %d times, prefetch %d; want once, with the prefetch", rec.runs, rec.occ().Prefetch)
	}
	// The dead-letter copy keeps the original's trace header: the Observer is not on the
	// dead-letter publish (the subscriber's, not the connection's), and the copy keeps
	// non-Courier headers.
	d.mu.Lock()
	defer d.mu.Unlock()
	dl := d.published["t.dlq"]
	if len(dl) != 1 || dl[0].Header("traceparent") != "tp-dead" {
		t.Errorf("dead-letter copies %v; want one with traceparent tp-dead", dl)
	}
}

func (r *recorder) deferred() int {
	n := 0
	for _, l := range r.snapshot() {
		if strings.Contains(l, " defer ") {
			n++
		}
	}
	return n
}

// TestObserverPublish: PublishStart may add headers (the driver gets them) and its context
// reaches PublishEnd; the connection's Observer applies to Conn.Publish; a PublisherConfig
// Observer overrides it.
func TestObserverPublish(t *testing.T) {
	d := newFake(true)
	connObs, pubObs := &recorder{}, &recorder{}
	c := transport.NewConn(d, transport.ConnConfig{Observer: connObs})
	defer c.Close(context.Background())
	shared := message.Headers{"app": "x"}
	m1, m2 := &message.Message{ID: "a", Headers: shared}, &message.Message{ID: "b", Headers: shared}
	if err := c.Publish(context.Background(), "orders", m1, m2); err != nil {
		t.Fatal(err)
	}
	if err := c.Publisher(transport.PublisherConfig{Observer: pubObs}).Publish(context.Background(), "other", &message.Message{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	d.pubErr = errors.New("down")
	_ = c.Publish(context.Background(), "orders", &message.Message{ID: "d"})

	want := []string{"publish-start fake orders 2", "publish-end orders pub false", "publish-start fake orders 1", "publish-end orders pub true"}
	if got := connObs.snapshot(); !slices.Equal(got, want) {
		t.Errorf("connection observer saw %q; want %q", got, want)
	}
	if got := pubObs.snapshot(); len(got) != 2 || got[0] != "publish-start fake other 1" {
		t.Errorf("publisher observer saw %q; want the one publish to other", got)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if got := d.published["orders"]; len(got) != 2 || got[0].Header("traceparent") != "tp-a" || got[1].Header("traceparent") != "tp-b" {
		t.Errorf("driver got %v; want the observer's headers", got)
	}
	if len(shared) != 1 {
		t.Errorf("the caller's shared header map was written to: %v", shared)
	}
}

// TestTraceHeadersSurviveDeadLetterAndRedrive: the W3C trace headers are ordinary headers to
// Courier: the dead-letter copy keeps them, and undoing the copy (what Redrive publishes)
// keeps them too, so a dead-lettered and a redriven message stay in their original trace.
func TestTraceHeadersSurviveDeadLetterAndRedrive(t *testing.T) {
	trace := message.Headers{
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"tracestate":  "vendor=value",
		"baggage":     "tenant=acme",
	}
	m := &message.Message{ID: "m", Payload: []byte("x"), Headers: message.Headers{"app": "v"}}
	for k, v := range trace {
		m.Headers[k] = v
	}
	f := transport.Failure{Err: errors.New("bad"), Permanent: true, Attempts: 1, Topic: "t", Subscription: "s"}
	for _, caps := range []transport.Capabilities{{Name: "roomy"}, {Name: "sqs-like", MaxHeaderValueBytes: 256, MaxMessageBytes: 4096}} {
		c := transport.DeadLetterCopy(m, f, caps)
		back, err := transport.UndoDeadLetterCopy(c)
		if err != nil {
			t.Fatalf("%s: undo: %v", caps.Name, err)
		}
		for k, v := range trace {
			if c.Header(k) != v || back.Header(k) != v {
				t.Errorf("%s: header %s: copy %q, redriven %q; want %q", caps.Name, k, c.Header(k), back.Header(k), v)
			}
		}
	}
}
