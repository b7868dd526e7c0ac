package transport_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
	"github.com/courierhq/courier/transport/driver"
)

// gateDriver records each Publish batch and holds it until the test releases it; it fails
// messages whose payload starts with "fail" (per message) and whole batches while batchErr is
// set.
type gateDriver struct {
	caps transport.Capabilities

	mu       sync.Mutex
	batches  [][]string // payloads per batch, in call order
	gate     chan struct{}
	batchErr error
}

func newGate(maxBatch int) *gateDriver {
	return &gateDriver{caps: transport.Capabilities{Name: "gate", MaxBatch: maxBatch, MaxMessageBytes: 100, Persistent: true}, gate: make(chan struct{})}
}

func (d *gateDriver) Capabilities() transport.Capabilities { return d.caps }

func (d *gateDriver) Publish(ctx context.Context, topic string, msgs []*message.Message) error {
	d.mu.Lock()
	var b []string
	for _, m := range msgs {
		b = append(b, string(m.Payload))
	}
	d.batches = append(d.batches, b)
	gate, berr := d.gate, d.batchErr
	d.mu.Unlock()
	select {
	case <-gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	if berr != nil {
		return berr
	}
	var failed []driver.FailedMessage
	for i, m := range msgs {
		if len(m.Payload) >= 4 && string(m.Payload[:4]) == "fail" {
			failed = append(failed, driver.FailedMessage{Index: i, ID: m.ID, Err: driver.ErrNacked})
		}
	}
	if failed != nil {
		return &driver.PublishError{Topic: topic, Total: len(msgs), Failed: failed}
	}
	return nil
}

// open releases batches as they come when open is true; otherwise they wait for release.
func (d *gateDriver) release() {
	d.mu.Lock()
	close(d.gate)
	d.gate = make(chan struct{})
	d.mu.Unlock()
}

func (d *gateDriver) openGate() {
	d.mu.Lock()
	close(d.gate)
	d.mu.Unlock()
}

func (d *gateDriver) seen() [][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.batches)
}

func (d *gateDriver) Subscribe(context.Context, driver.SubscriptionSpec) (driver.Receiver, error) {
	return nil, errors.ErrUnsupported
}

func (d *gateDriver) Close(context.Context) error { return nil }

func msgs(payloads ...string) []*message.Message {
	out := make([]*message.Message, len(payloads))
	for i, p := range payloads {
		out[i] = &message.Message{Payload: []byte(p)}
	}
	return out
}

// publishAsync starts a Publish and returns where its result arrives; synctest.Wait lets it
// reach the coalescer before the next one starts, so arrival order is the call order.
func publishAsync(ctx context.Context, p *transport.Publisher, topic string, m ...*message.Message) chan error {
	res := make(chan error, 1)
	go func() { res <- p.Publish(ctx, topic, m...) }()
	synctest.Wait()
	return res
}

func TestCoalesceMergesWhileInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newGate(0)
		c := transport.NewConn(d, transport.ConnConfig{})
		p := c.Publisher(transport.PublisherConfig{})
		ctx := context.Background()
		first := publishAsync(ctx, p, "t", msgs("a1")...)
		if got := d.seen(); len(got) != 1 || !slices.Equal(got[0], []string{"a1"}) {
			t.Fatalf("a lone publish must go at once, alone: %v", got)
		}
		b := publishAsync(ctx, p, "t", msgs("b1", "b2", "b3")...)
		cc := publishAsync(ctx, p, "t", msgs("c1")...)
		other := publishAsync(ctx, p, "u", msgs("x1")...) // another topic is not held back
		if got := d.seen(); len(got) != 2 {
			t.Fatalf("calls queued behind a batch in flight must wait: %v", got)
		}
		d.openGate()
		for name, ch := range map[string]chan error{"first": first, "b": b, "c": cc, "other": other} {
			if err := <-ch; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		want := [][]string{{"a1"}, {"x1"}, {"b1", "b2", "b3", "c1"}}
		if got := d.seen(); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("batches %v, want %v", got, want)
		}
	})
}

func TestCoalescePerCallerErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newGate(0)
		c := transport.NewConn(d, transport.ConnConfig{})
		p := c.Publisher(transport.PublisherConfig{})
		ctx := context.Background()
		first := publishAsync(ctx, p, "t", msgs("a1")...)
		ok := publishAsync(ctx, p, "t", msgs("b1", "b2")...)
		bad := publishAsync(ctx, p, "t", msgs("c1", "fail-c2", "c3", "fail-c4")...)
		big := publishAsync(ctx, p, "t", msgs("d1", string(make([]byte, 101)))...) // over MaxMessageBytes
		d.openGate()
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if err := <-ok; err != nil {
			t.Fatalf("a caller whose messages were all accepted must get nil: %v", err)
		}
		var pe *transport.PublishError
		if err := <-bad; !errors.As(err, &pe) || pe.Total != 4 || len(pe.Failed) != 2 ||
			pe.Failed[0].Index != 1 || pe.Failed[1].Index != 3 || !errors.Is(err, transport.ErrNacked) {
			t.Fatalf("failures must be reported with the caller's own indexes: %v", err)
		}
		if err := <-big; !errors.As(err, &pe) || pe.Total != 2 || len(pe.Failed) != 1 ||
			pe.Failed[0].Index != 1 || !errors.Is(err, transport.ErrMessageTooLarge) {
			t.Fatalf("a held-back message must be reported to its caller: %v", err)
		}
	})
}

func TestCoalesceWholeBatchError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newGate(0)
		c := transport.NewConn(d, transport.ConnConfig{})
		p := c.Publisher(transport.PublisherConfig{})
		ctx := context.Background()
		first := publishAsync(ctx, p, "t", msgs("a1")...)
		b := publishAsync(ctx, p, "t", msgs("b1", "b2")...)
		cc := publishAsync(ctx, p, "t", msgs("c1")...)
		d.mu.Lock()
		d.batchErr = fmt.Errorf("broker gone: %w", transport.ErrUnavailable)
		d.mu.Unlock()
		d.release() // first fails too: the error is read when released
		<-first
		d.openGate()
		for name, want := range map[string]struct {
			ch chan error
			n  int
		}{"b": {b, 2}, "c": {cc, 1}} {
			var pe *transport.PublishError
			err := <-want.ch
			if !errors.As(err, &pe) || pe.Total != want.n || len(pe.Failed) != want.n || !errors.Is(err, transport.ErrUnavailable) {
				t.Errorf("%s: every message of every caller must be reported failed: %v", name, err)
			}
		}
	})
}

func TestCoalesceCancelWhileQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newGate(0)
		c := transport.NewConn(d, transport.ConnConfig{})
		p := c.Publisher(transport.PublisherConfig{})
		ctx := context.Background()
		first := publishAsync(ctx, p, "t", msgs("a1")...)
		b := publishAsync(ctx, p, "t", msgs("b1")...)
		cctx, cancel := context.WithCancel(ctx)
		cc := publishAsync(cctx, p, "t", msgs("c1", "c2")...)
		d2 := publishAsync(ctx, p, "t", msgs("d1")...)
		cancel()
		if err := <-cc; !errors.Is(err, context.Canceled) {
			t.Fatalf("a cancelled waiting caller must return its context's error: %v", err)
		}
		d.openGate()
		for _, ch := range []chan error{first, b, d2} {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}
		want := [][]string{{"a1"}, {"b1", "d1"}}
		if got := d.seen(); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("withdrawn messages must not be sent: batches %v, want %v", got, want)
		}
	})
}

func TestCoalesceCancelledLeaderStillSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newGate(0)
		c := transport.NewConn(d, transport.ConnConfig{})
		p := c.Publisher(transport.PublisherConfig{})
		ctx := context.Background()
		first := publishAsync(ctx, p, "t", msgs("a1")...)
		lctx, cancel := context.WithCancel(ctx)
		lead := publishAsync(lctx, p, "t", msgs("b1")...)
		cc := publishAsync(ctx, p, "t", msgs("c1")...)
		d.release()
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		// b1+c1 are in flight now, sent by b's caller; b gives up.
		cancel()
		synctest.Wait()
		d.openGate()
		<-lead
		if err := <-cc; err != nil {
			t.Fatalf("one caller giving up must not fail the others in its batch: %v", err)
		}
		want := [][]string{{"a1"}, {"b1", "c1"}}
		if got := d.seen(); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("batches %v, want %v", got, want)
		}
	})
}

func TestCoalesceAllCancelledCancelsBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newGate(0)
		c := transport.NewConn(d, transport.ConnConfig{})
		p := c.Publisher(transport.PublisherConfig{})
		ctx := context.Background()
		first := publishAsync(ctx, p, "t", msgs("a1")...)
		bctx, cancelB := context.WithCancel(ctx)
		cctx, cancelC := context.WithCancel(ctx)
		b := publishAsync(bctx, p, "t", msgs("b1")...)
		cc := publishAsync(cctx, p, "t", msgs("c1")...)
		d.release()
		<-first
		cancelB()
		cancelC()
		// The gate stays shut: only the batch's context ending can free the driver.
		for _, ch := range []chan error{b, cc} {
			if err := <-ch; !errors.Is(err, context.Canceled) {
				t.Fatalf("want context.Canceled, got %v", err)
			}
		}
	})
}

func TestCoalesceBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newGate(3) // Capabilities.MaxBatch
		c := transport.NewConn(d, transport.ConnConfig{})
		p := c.Publisher(transport.PublisherConfig{})
		ctx := context.Background()
		var res []chan error
		res = append(res, publishAsync(ctx, p, "t", msgs("a1")...))
		res = append(res, publishAsync(ctx, p, "t", msgs("b1", "b2")...))
		res = append(res, publishAsync(ctx, p, "t", msgs("c1")...)) // queue full: goes now
		res = append(res, publishAsync(ctx, p, "t", msgs("d1", "d2", "d3", "d4")...))
		res = append(res, publishAsync(ctx, p, "t", msgs("e1", "e2")...))
		res = append(res, publishAsync(ctx, p, "t", msgs("f1", "f2")...)) // overflows e: e goes
		want := [][]string{{"a1"}, {"b1", "b2", "c1"}, {"d1", "d2", "d3", "d4"}, {"e1", "e2"}}
		if got := d.seen(); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("full batches must go at once: %v, want %v", got, want)
		}
		d.openGate()
		for _, ch := range res {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}
		if got := d.seen(); len(got) != 5 || !slices.Equal(got[4], []string{"f1", "f2"}) {
			t.Fatalf("the rest goes after the batch in flight: %v", got)
		}
	})
}

func TestCoalesceOffWithOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newGate(0)
		c := transport.NewConn(d, transport.ConnConfig{})
		p := c.Publisher(transport.PublisherConfig{CoalesceMessages: 1})
		ctx := context.Background()
		a := publishAsync(ctx, p, "t", msgs("a1")...)
		b := publishAsync(ctx, p, "t", msgs("b1")...)
		if got := d.seen(); len(got) != 2 {
			t.Fatalf("CoalesceMessages 1 must send every call on its own at once: %v", got)
		}
		d.openGate()
		<-a
		<-b
	})
}

func TestCoalesceOffInProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newGate(0)
		d.caps.Persistent = false // like memory://
		c := transport.NewConn(d, transport.ConnConfig{})
		p := c.Publisher(transport.PublisherConfig{})
		ctx := context.Background()
		a := publishAsync(ctx, p, "t", msgs("a1")...)
		b := publishAsync(ctx, p, "t", msgs("b1")...)
		if got := d.seen(); len(got) != 2 {
			t.Fatalf("an in-process broker must not be coalesced by default: %v", got)
		}
		d.openGate()
		<-a
		<-b
	})
}

func TestCoalesceOffWhenPipelined(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newGate(0)
		d.caps.PipelinedPublish = true // like RabbitMQ
		c := transport.NewConn(d, transport.ConnConfig{})
		p := c.Publisher(transport.PublisherConfig{})
		ctx := context.Background()
		a := publishAsync(ctx, p, "t", msgs("a1")...)
		b := publishAsync(ctx, p, "t", msgs("b1")...)
		if got := d.seen(); len(got) != 2 {
			t.Fatalf("a pipelining adapter must not be coalesced by default: %v", got)
		}
		d.openGate()
		<-a
		<-b
	})
}

func TestCoalesceMiddlewarePerCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newGate(0)
		c := transport.NewConn(d, transport.ConnConfig{})
		var mu sync.Mutex
		var seen [][]string
		mw := func(next message.PublishFunc) message.PublishFunc {
			return func(ctx context.Context, topic string, ms []*message.Message) error {
				var b []string
				for _, m := range ms {
					b = append(b, string(m.Payload))
				}
				mu.Lock()
				seen = append(seen, b)
				mu.Unlock()
				return next(ctx, topic, ms)
			}
		}
		p := c.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{mw}})
		ctx := context.Background()
		res := []chan error{
			publishAsync(ctx, p, "t", msgs("a1")...),
			publishAsync(ctx, p, "t", msgs("b1")...),
			publishAsync(ctx, p, "t", msgs("c1", "c2")...),
		}
		d.openGate()
		for _, ch := range res {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}
		want := [][]string{{"a1"}, {"b1"}, {"c1", "c2"}}
		if !slices.EqualFunc(seen, want, slices.Equal) {
			t.Fatalf("middleware must see each call: %v, want %v", seen, want)
		}
		if got := d.seen(); len(got) != 2 {
			t.Fatalf("want 2 broker batches, got %v", got)
		}
	})
}

// TestCoalesceConcurrent hammers one publisher from many goroutines under the race detector:
// every message is sent exactly once, each caller's messages contiguous and in order.
func TestCoalesceConcurrent(t *testing.T) {
	d := newGate(7)
	d.openGate()
	c := transport.NewConn(d, transport.ConnConfig{})
	p := c.Publisher(transport.PublisherConfig{})
	var wg sync.WaitGroup
	const callers, calls = 16, 50
	for g := range callers {
		wg.Go(func() {
			for i := range calls {
				n := 1 + (g+i)%3
				ms := make([]*message.Message, n)
				for k := range ms {
					ms[k] = &message.Message{Payload: fmt.Appendf(nil, "%d/%d/%d", g, i, k)}
				}
				if err := p.Publish(context.Background(), "t", ms...); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	total, prev := 0, map[int]int{}
	for _, b := range d.seen() {
		for j := 0; j < len(b); {
			var g, i, k int
			fmt.Sscanf(b[j], "%d/%d/%d", &g, &i, &k)
			if k != 0 {
				t.Fatalf("call %d/%d split or out of order in batch %v", g, i, b)
			}
			n := 1 + (g+i)%3
			for k := range n {
				if j+k >= len(b) || b[j+k] != fmt.Sprintf("%d/%d/%d", g, i, k) {
					t.Fatalf("call %d/%d not contiguous in batch %v", g, i, b)
				}
			}
			if last, ok := prev[g]; ok && i != last+1 {
				t.Fatalf("caller %d: call %d after %d", g, i, last)
			}
			prev[g] = i
			j += n
			total += n
		}
	}
	want := 0
	for g := range callers {
		for i := range calls {
			want += 1 + (g+i)%3
		}
	}
	if total != want {
		t.Fatalf("sent %d messages, want %d", total, want)
	}
}

func TestCoalesceInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newGate(0)
		c := transport.NewConn(d, transport.ConnConfig{})
		p := c.Publisher(transport.PublisherConfig{CoalesceInFlight: 2})
		ctx := context.Background()
		res := []chan error{
			publishAsync(ctx, p, "t", msgs("a1")...),
			publishAsync(ctx, p, "t", msgs("b1")...),
			publishAsync(ctx, p, "t", msgs("c1")...),
			publishAsync(ctx, p, "t", msgs("d1")...),
		}
		if got := d.seen(); len(got) != 2 {
			t.Fatalf("two batches may be in flight, then calls queue: %v", got)
		}
		d.openGate()
		for _, ch := range res {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}
		want := [][]string{{"a1"}, {"b1"}, {"c1", "d1"}}
		if got := d.seen(); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("batches %v, want %v", got, want)
		}
	})
}
