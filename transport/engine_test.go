package transport_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/transport/driver"

	"go.uber.org/goleak"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeDriver is a scripted broker: tests push messages into it and read back what the engine
// acked, nacked and published (dead-letters).
type fakeDriver struct {
	caps transport.Capabilities

	mu        sync.Mutex
	acked     []string
	nacked    []nack
	published map[string][]*message.Message
	pubErr    error // returned by Publish while set
	recvs     []*fakeReceiver
	inflight  int // received, not yet acked/nacked
	maxFlight int
	ackGate   chan struct{} // when set, Ack waits until it is closed
}

type nack struct {
	id    string
	delay time.Duration
}

type fakeReceipt struct{}

func (fakeReceipt) As(any) bool { return false }

func newFake(redelivery bool) *fakeDriver {
	return &fakeDriver{
		caps:      transport.Capabilities{Name: "fake", Redelivery: redelivery, FanOut: true, MaxMessageBytes: 1 << 20},
		published: map[string][]*message.Message{},
	}
}

func (d *fakeDriver) Capabilities() transport.Capabilities { return d.caps }

func (d *fakeDriver) Publish(_ context.Context, topic string, msgs []*message.Message) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pubErr != nil {
		return d.pubErr
	}
	d.published[topic] = append(d.published[topic], msgs...)
	return nil
}

func (d *fakeDriver) Subscribe(_ context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	r := &fakeReceiver{d: d, spec: spec, in: make(chan *message.Message, 100000)}
	d.mu.Lock()
	d.recvs = append(d.recvs, r)
	d.mu.Unlock()
	return r, nil
}

func (d *fakeDriver) Close(context.Context) error { return nil }

// receiver returns the receiver of the subscription being consumed (not the dead-letter one).
func (d *fakeDriver) receiver(sub string) *fakeReceiver {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.recvs {
		if r.spec.Subscription == sub {
			return r
		}
	}
	return nil
}

func (d *fakeDriver) snapshot() (acked []string, nacked []nack, inflight, maxFlight int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.acked...), append([]nack(nil), d.nacked...), d.inflight, d.maxFlight
}

type fakeReceiver struct {
	d      *fakeDriver
	spec   driver.SubscriptionSpec
	in     chan *message.Message
	closed atomic.Bool
}

func (r *fakeReceiver) deliver(m *message.Message) {
	m.Topic, m.Subscription = r.spec.Topic, r.spec.Subscription
	message.SetReceipt(m, fakeReceipt{})
	r.in <- m
}

func (r *fakeReceiver) Receive(ctx context.Context, buf []*message.Message) (int, error) {
	select {
	case m := <-r.in:
		buf[0] = m
		n := 1
		for n < len(buf) {
			select {
			case m := <-r.in:
				buf[n] = m
				n++
				continue
			default:
			}
			break
		}
		r.d.mu.Lock()
		r.d.inflight += n
		r.d.maxFlight = max(r.d.maxFlight, r.d.inflight)
		r.d.mu.Unlock()
		return n, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (r *fakeReceiver) Ack(ctx context.Context, msgs []*message.Message) error {
	r.d.mu.Lock()
	gate := r.d.ackGate
	r.d.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	for _, m := range msgs {
		r.d.acked = append(r.d.acked, m.ID)
	}
	r.d.inflight -= len(msgs)
	return nil
}

func (r *fakeReceiver) Nack(_ context.Context, m *message.Message, delay time.Duration) error {
	r.d.mu.Lock()
	r.d.nacked = append(r.d.nacked, nack{m.ID, delay})
	r.d.inflight--
	r.d.mu.Unlock()
	return nil
}

func (r *fakeReceiver) Close(context.Context) error {
	r.closed.Store(true)
	return nil
}

func start(t *testing.T, d *fakeDriver, cfg transport.SubscriberConfig, h message.Handler) (*transport.Conn, *fakeReceiver, func() error) {
	t.Helper()
	c := transport.NewConn(d, transport.ConnConfig{})
	if cfg.Retry == (transport.RetryPolicy{}) {
		cfg.Retry = transport.RetryPolicy{MaxAttempts: 3, InitialDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
	}
	s, err := c.Subscribe(context.Background(), "t", "s", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, h) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				runErr = errors.New("Run did not return")
			}
			_ = c.Close(context.Background())
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return c, d.receiver("s"), stop
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestEngineRetryStrategy(t *testing.T) {
	tests := []struct {
		name       string
		redelivery bool
		key        string
		wantNacks  int // nacks with a delay (broker redelivery)
	}{
		{"unkeyed on a redelivering broker is nacked with the backoff", true, "", 1},
		{"keyed on a redelivering broker is retried in place (order)", true, "k", 0},
		{"no redelivery (Kafka-like) retries in place", false, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newFake(tc.redelivery)
			var attempts []int
			var mu sync.Mutex
			_, r, stop := start(t, d, transport.SubscriberConfig{}, func(_ context.Context, m *message.Message) error {
				mu.Lock()
				defer mu.Unlock()
				attempts = append(attempts, m.Attempt)
				if len(attempts) == 1 {
					return errors.New("flaky")
				}
				return nil
			})
			r.deliver(&message.Message{ID: "m1", Key: tc.key})
			if tc.wantNacks > 0 {
				eventually(t, "nack", func() bool { _, n, _, _ := d.snapshot(); return len(n) == 1 })
				_, n, _, _ := d.snapshot()
				if n[0].delay <= 0 {
					t.Errorf("nack delay %v; want the retry policy's backoff", n[0].delay)
				}
				r.deliver(&message.Message{ID: "m1", Key: tc.key, Attempt: 2}) // the broker redelivers
			}
			eventually(t, "ack", func() bool { a, _, _, _ := d.snapshot(); return len(a) == 1 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			_, n, _, _ := d.snapshot()
			if len(n) != tc.wantNacks {
				t.Errorf("nacks = %v; want %d", n, tc.wantNacks)
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(attempts) != "[1 2]" {
				t.Errorf("attempts seen by the handler = %v; want [1 2]", attempts)
			}
		})
	}
}

func TestEngineDeadLetterFailureKeepsMessage(t *testing.T) {
	d := newFake(false)
	var calls atomic.Int64
	_, r, stop := start(t, d, transport.SubscriberConfig{DeadLetterBackoff: transport.RetryPolicy{InitialDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}}, func(context.Context, *message.Message) error {
		calls.Add(1)
		return message.Permanent(errors.New("bad"))
	})
	d.mu.Lock()
	d.pubErr = errors.New("dead-letter topic down")
	d.mu.Unlock()
	r.deliver(&message.Message{ID: "m1", Payload: []byte("p")})
	time.Sleep(50 * time.Millisecond)
	if a, _, _, _ := d.snapshot(); len(a) != 0 {
		t.Fatalf("message acked while its dead-letter copy could not be stored: %v", a)
	}
	d.mu.Lock()
	d.pubErr = nil
	d.mu.Unlock()
	eventually(t, "ack after dead-letter", func() bool { a, _, _, _ := d.snapshot(); return len(a) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	dl := d.published["t.dlq"]
	d.mu.Unlock()
	if len(dl) != 1 || string(dl[0].Payload) != "p" || dl[0].Headers[message.HeaderDeadLetterPermanent] != "true" {
		t.Fatalf("dead-letter topic got %v", dl)
	}
	if calls.Load() != 1 {
		t.Errorf("handler called %d times for a permanent error; want 1", calls.Load())
	}
}

func TestEngineRestoresMessageForDeadLetter(t *testing.T) {
	d := newFake(true)
	_, r, stop := start(t, d, transport.SubscriberConfig{}, func(_ context.Context, m *message.Message) error {
		m.Payload = []byte("decrypted secret") // what a decrypting middleware would do
		m.Headers = message.Headers{"plain": "yes"}
		return message.Permanent(errors.New("no"))
	})
	r.deliver(&message.Message{ID: "m1", Payload: []byte("ciphertext"), Headers: message.Headers{"enc": "1"}})
	eventually(t, "ack", func() bool { a, _, _, _ := d.snapshot(); return len(a) == 1 })
	_ = stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	dl := d.published["t.dlq"][0]
	if string(dl.Payload) != "ciphertext" || dl.Headers["enc"] != "1" || dl.Headers["plain"] != "" {
		t.Errorf("dead-letter copy is the handler's view, not the message as received: %q %v", dl.Payload, dl.Headers)
	}
}

func TestEnginePanicIsRetried(t *testing.T) {
	d := newFake(false)
	var calls atomic.Int64
	_, r, stop := start(t, d, transport.SubscriberConfig{}, func(context.Context, *message.Message) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return nil
	})
	r.deliver(&message.Message{ID: "m1"})
	eventually(t, "ack", func() bool { a, _, _, _ := d.snapshot(); return len(a) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Errorf("handler calls = %d; want 2 (panic, then success)", calls.Load())
	}
}

func TestEnginePrefetchBoundsInFlight(t *testing.T) {
	d := newFake(true)
	release := make(chan struct{})
	_, r, stop := start(t, d, transport.SubscriberConfig{Concurrency: 2, Prefetch: 5}, func(context.Context, *message.Message) error {
		<-release
		return nil
	})
	for i := 0; i < 50; i++ {
		r.deliver(&message.Message{ID: strconv.Itoa(i)})
	}
	time.Sleep(100 * time.Millisecond)
	if _, _, inflight, _ := d.snapshot(); inflight != 5 {
		t.Errorf("in flight = %d with Prefetch 5", inflight)
	}
	close(release)
	eventually(t, "all acked", func() bool { a, _, _, _ := d.snapshot(); return len(a) == 50 })
	_ = stop()
	// Received and not acknowledged: at most Prefetch being handled plus Prefetch whose acks
	// are on their way.
	if _, _, _, maxFlight := d.snapshot(); maxFlight > 10 {
		t.Errorf("max unacknowledged = %d; Prefetch is 5, so at most 10", maxFlight)
	}
}

// TestEngineAcksOnTheirWayCount: while the broker takes its time answering an ack, the
// messages of that batch still count against the bound: received and not acknowledged stays
// at most 2 × Prefetch however long the answer takes.
func TestEngineAcksOnTheirWayCount(t *testing.T) {
	d := newFake(true)
	gate := make(chan struct{})
	d.ackGate = gate
	_, r, stop := start(t, d, transport.SubscriberConfig{Concurrency: 2, Prefetch: 5}, func(context.Context, *message.Message) error {
		return nil
	})
	for i := 0; i < 50; i++ {
		r.deliver(&message.Message{ID: strconv.Itoa(i)})
	}
	// The first ack is stuck at the broker; everything else that can happen, happens.
	eventually(t, "the bound reached", func() bool { _, _, inflight, _ := d.snapshot(); return inflight >= 10 })
	time.Sleep(50 * time.Millisecond)
	if _, _, inflight, maxFlight := d.snapshot(); maxFlight > 10 {
		t.Errorf("received and unacknowledged reached %d (now %d) while an ack was on its way; Prefetch 5 allows 10", maxFlight, inflight)
	}
	close(gate)
	eventually(t, "all acked", func() bool { a, _, _, _ := d.snapshot(); return len(a) == 50 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestEngineStopReleasesQueuedAndDrainsInFlight(t *testing.T) {
	d := newFake(true)
	started := make(chan struct{})
	var once sync.Once
	release := make(chan struct{})
	_, r, stop := start(t, d, transport.SubscriberConfig{Concurrency: 1, Prefetch: 10}, func(context.Context, *message.Message) error {
		once.Do(func() { close(started) })
		<-release
		return nil
	})
	for i := 0; i < 5; i++ {
		r.deliver(&message.Message{ID: strconv.Itoa(i)})
	}
	<-started
	time.Sleep(20 * time.Millisecond) // the other 4 are queued in the engine
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-stopped:
		t.Fatalf("stop returned (%v) with a handler in flight", err)
	default:
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	acked, nacked, _, _ := d.snapshot()
	if len(acked) != 1 || acked[0] != "0" {
		t.Errorf("acked %v; want only the in-flight message 0", acked)
	}
	if len(nacked) != 4 {
		t.Errorf("released %v; want the 4 queued messages", nacked)
	}
	for _, n := range nacked {
		if n.delay != 0 {
			t.Errorf("released message %s with delay %v; want 0", n.id, n.delay)
		}
	}
	if !r.closed.Load() {
		t.Error("receiver not closed after Run returned")
	}
}

func TestEngineDrainTimeoutCancelsHandlers(t *testing.T) {
	d := newFake(true)
	started := make(chan struct{})
	_, r, stop := start(t, d, transport.SubscriberConfig{DrainTimeout: 50 * time.Millisecond}, func(ctx context.Context, m *message.Message) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	r.deliver(&message.Message{ID: "slow"})
	<-started
	if err := stop(); err != nil {
		t.Fatalf("Run: %v; handlers honoured the cancellation, so no error was due", err)
	}
	acked, nacked, _, _ := d.snapshot()
	if len(acked) != 0 || len(nacked) != 1 || nacked[0].delay != 0 {
		t.Errorf("acked %v nacked %v; want the cancelled message released (nack, delay 0), not counted as a failure", acked, nacked)
	}
}

func TestSubscribeValidation(t *testing.T) {
	c := transport.NewConn(newFake(true), transport.ConnConfig{})
	defer c.Close(context.Background())
	ctx := context.Background()
	bad := []transport.SubscriberConfig{
		{Concurrency: -1},
		{Prefetch: -1},
		{DrainTimeout: -time.Second},
		{Retry: transport.RetryPolicy{MaxAttempts: -1}},
		{Retry: transport.RetryPolicy{Multiplier: 0.5}},
		{Retry: transport.RetryPolicy{Jitter: 2}},
		{Retry: transport.RetryPolicy{InitialDelay: time.Minute, MaxDelay: time.Second}},
		{NativeDeadLetter: true}, // the fake broker has none
		{DeadLetterBackoff: transport.RetryPolicy{Multiplier: 0.5}},
		{DeadLetterBackoff: transport.RetryPolicy{InitialDelay: -time.Second}},
	}
	for i, cfg := range bad {
		if _, err := c.Subscribe(ctx, "t", "s", cfg); !errors.Is(err, transport.ErrInvalidConfig) {
			t.Errorf("config %d (%+v): err = %v; want ErrInvalidConfig", i, cfg, err)
		}
	}
	// Nil middleware is skipped, as on the publish side.
	s, err := c.Subscribe(ctx, "t", "s", transport.SubscriberConfig{Middleware: []message.Middleware{nil}})
	if err != nil {
		t.Fatalf("nil middleware: %v; want it skipped", err)
	}
	_ = s.Close(ctx)
}

func TestRetryPolicyDelay(t *testing.T) {
	p := transport.RetryPolicy{InitialDelay: 100 * time.Millisecond, MaxDelay: time.Second, Multiplier: 2, Jitter: -1}
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 5: time.Second, 500: time.Second} {
		if got := p.Delay(attempt); got != want {
			t.Errorf("Delay(%d) = %v; want %v", attempt, got, want)
		}
	}
	j := transport.RetryPolicy{InitialDelay: 100 * time.Millisecond, Jitter: 0.5}
	lo, hi := time.Hour, time.Duration(0)
	for i := 0; i < 1000; i++ {
		d := j.Delay(1)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 50*time.Millisecond || hi > 150*time.Millisecond || hi-lo < 50*time.Millisecond {
		t.Errorf("jittered delays span [%v, %v]; want spread within [50ms, 150ms]", lo, hi)
	}
}

func TestPublishErrorReporting(t *testing.T) {
	d := newFake(true)
	d.caps.MaxMessageBytes = 10
	c := transport.NewConn(d, transport.ConnConfig{})
	defer c.Close(context.Background())
	err := c.Publish(context.Background(), "t",
		&message.Message{ID: "a", Payload: []byte("ok")},
		&message.Message{ID: "b", Payload: []byte("this is far too long")},
		&message.Message{ID: "c", Payload: []byte("ok")})
	var pe *transport.PublishError
	if !errors.As(err, &pe) || !errors.Is(err, transport.ErrMessageTooLarge) {
		t.Fatalf("err = %v; want a PublishError wrapping ErrMessageTooLarge", err)
	}
	if fmt.Sprint(pe.FailedIndexes()) != "[1]" || pe.Total != 3 {
		t.Errorf("failed %v of %d; want [1] of 3", pe.FailedIndexes(), pe.Total)
	}
	if got := len(d.published["t"]); got != 2 {
		t.Errorf("driver got %d messages; want the 2 that fit", got)
	}

	// A whole-request failure reports every message, with batch indexes.
	d.pubErr = transport.ErrUnavailable
	err = c.Publish(context.Background(), "t", &message.Message{ID: "x"}, &message.Message{ID: "toolongtoolong"}, &message.Message{ID: "y"})
	if !errors.As(err, &pe) || fmt.Sprint(pe.FailedIndexes()) != "[0 1 2]" || !errors.Is(err, transport.ErrUnavailable) {
		t.Errorf("err = %v; want all three failed, wrapping ErrUnavailable", err)
	}
}

// BenchmarkEngine measures the consumer engine's own cost per message: a receiver that hands
// out prepared messages, a handler that does nothing, acks that cost nothing.
func BenchmarkEngine(b *testing.B) {
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			msgs := make([]*message.Message, b.N)
			for i := range msgs {
				msgs[i] = &message.Message{ID: "id", Key: ""}
			}
			r := &benchReceiver{msgs: msgs}
			d := &benchDriver{r: r}
			c := transport.NewConn(d, transport.ConnConfig{})
			s, err := c.Subscribe(context.Background(), "t", "s", transport.SubscriberConfig{Concurrency: conc, DeadLetter: transport.DeadLetterFunc(func(context.Context, *message.Message, transport.Failure) error { return nil })})
			if err != nil {
				b.Fatal(err)
			}
			var handled atomic.Int64
			done := make(chan struct{})
			ctx, cancel := context.WithCancel(context.Background())
			b.ReportAllocs()
			b.ResetTimer()
			go func() {
				_ = s.Run(ctx, func(context.Context, *message.Message) error {
					if handled.Add(1) == int64(b.N) {
						close(done)
					}
					return nil
				})
			}()
			<-done
			b.StopTimer()
			cancel()
			_ = c.Close(context.Background())
		})
	}
}

type benchDriver struct{ r *benchReceiver }

func (d *benchDriver) Capabilities() transport.Capabilities {
	return transport.Capabilities{Name: "bench", Redelivery: true}
}
func (d *benchDriver) Publish(context.Context, string, []*message.Message) error { return nil }
func (d *benchDriver) Subscribe(context.Context, driver.SubscriptionSpec) (driver.Receiver, error) {
	return d.r, nil
}
func (d *benchDriver) Close(context.Context) error { return nil }

type benchReceiver struct {
	msgs []*message.Message
	next int
}

func (r *benchReceiver) Receive(ctx context.Context, buf []*message.Message) (int, error) {
	if r.next >= len(r.msgs) {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	n := copy(buf, r.msgs[r.next:])
	r.next += n
	return n, nil
}
func (r *benchReceiver) Ack(context.Context, []*message.Message) error { return nil }
func (r *benchReceiver) Nack(context.Context, *message.Message, time.Duration) error {
	return nil
}
func (r *benchReceiver) Close(context.Context) error { return nil }
