package adaptertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// Payloads are what a plain producer sends in PlainToCourier: binary, empty and text.
var Payloads = [][]byte{{0, 1, 2, 0xfe, 0xff}, {}, []byte(`{"text":"héllo"}`)}

// PlainProducer describes, for PlainToCourier, how a plain client of one broker publishes.
type PlainProducer struct {
	// Conn is a Courier connection to the broker, Topic a topic of this test only.
	Conn  *transport.Conn
	Topic string
	// Payloads default to the package's Payloads.
	Payloads [][]byte
	// Publish sends payloads[i] as a non-Courier application would, with the broker's own
	// key (if it has one) "cust-<i>" and the native headers tenant=acme and n=<i>.
	Publish func(ctx context.Context, i int, payload []byte) error
	// Key is the key Courier must report for payload i; nil: "cust-<i>".
	Key func(i int) string
	// NativeID, if set, is the ID the broker gave the received message (read from the
	// message's native record); Courier's ID must be it.
	NativeID func(m *message.Message) string
	// Check, if set, adds the adapter's own checks of payload i's two deliveries.
	Check func(t *testing.T, i int, first, second *message.Message)
	// Later is the configuration of the later subscriber of the same subscription that must
	// receive nothing; nil: the first one's.
	Later func(transport.SubscriberConfig) transport.SubscriberConfig
	// Quiet is how long to wait for deliveries that must not come; zero: 2 s.
	Quiet time.Duration
}

// PlainToCourier: what a plain producer publishes with native properties only reaches
// Courier byte-exact, with its headers (exactly tenant and n), its key, an ID that is the same
// on the redelivery after a failed first attempt (Attempt 2), and is settled for good: each
// payload is delivered exactly twice, and a later subscriber of the subscription gets nothing.
func PlainToCourier(t *testing.T, p PlainProducer) {
	t.Helper()
	p.defaults()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := transport.SubscriberConfig{Order: transport.OrderDelivery,
		Retry: transport.RetryPolicy{MaxAttempts: 5, InitialDelay: 50 * time.Millisecond}}
	s, err := p.Conn.Subscribe(ctx, p.Topic, "interop", cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range p.Payloads {
		if err := p.Publish(ctx, i, b); err != nil {
			t.Fatalf("plain publish %d: %v", i, err)
		}
	}
	l := runFailingFirst(t, s, p.NativeID)
	l.waitTwice(t, p.Payloads, 60*time.Second)
	time.Sleep(p.Quiet) // nothing more may arrive
	if n := l.count(); n != 2*len(p.Payloads) {
		t.Errorf("%d deliveries; want %d (each fails once, then succeeds for good)", n, 2*len(p.Payloads))
	}
	for i, b := range p.Payloads {
		ds := l.deliveries(b)
		checkRedelivered(t, i, b, p.Key(i), ds[0], ds[1])
		if p.Check != nil {
			p.Check(t, i, ds[0].Message, ds[1].Message)
		}
	}
	s2, err := p.Conn.Subscribe(ctx, p.Topic, "interop", p.Later(cfg))
	if err != nil {
		t.Fatal(err)
	}
	l2 := runFailingFirst(t, s2, nil)
	time.Sleep(p.Quiet)
	if n := l2.count(); n != 0 {
		t.Errorf("a later subscriber received %d messages; want none (all settled)", n)
	}
}

func (p *PlainProducer) defaults() {
	if p.Payloads == nil {
		p.Payloads = Payloads
	}
	if p.Key == nil {
		p.Key = func(i int) string { return fmt.Sprintf("cust-%d", i) }
	}
	if p.Later == nil {
		p.Later = func(c transport.SubscriberConfig) transport.SubscriberConfig { return c }
	}
	if p.Quiet == 0 {
		p.Quiet = 2 * time.Second
	}
}

// checkRedelivered checks payload i's two deliveries against what the plain producer sent.
func checkRedelivered(t *testing.T, i int, payload []byte, key string, first, second delivery) {
	t.Helper()
	if !bytes.Equal(second.Payload, payload) {
		t.Errorf("payload %x; want %x", second.Payload, payload)
	}
	if first.ID == "" || first.ID != second.ID {
		t.Errorf("message %d: IDs %q then %q; want one non-empty ID across redeliveries", i, first.ID, second.ID)
	}
	if first.nativeID != second.nativeID || first.ID != first.nativeID {
		t.Errorf("message %d: IDs %q then %q; want the broker's ID %q, %q", i, first.ID, second.ID, first.nativeID, second.nativeID)
	}
	if first.Key != key || second.Key != key {
		t.Errorf("message %d: keys %q, %q; want %q", i, first.Key, second.Key, key)
	}
	if second.Headers["tenant"] != "acme" || second.Headers["n"] != fmt.Sprint(i) || len(second.Headers) != 2 {
		t.Errorf("message %d: headers %v; want exactly tenant=acme n=%d", i, second.Headers, i)
	}
	if second.Attempt != 2 {
		t.Errorf("message %d: the second delivery has Attempt %d", i, second.Attempt)
	}
}

// delivery is one recorded delivery: a clone of the message and, where asked for, the ID
// the broker gave it (read before the receipt is gone).
type delivery struct {
	*message.Message
	nativeID string
}

// deliveryLog records deliveries by payload.
type deliveryLog struct {
	mu        sync.Mutex
	byPayload map[string][]delivery
	total     int
}

// runFailingFirst runs s with a handler that fails each payload's first delivery with a
// plain error and records every delivery; it stops when the test ends.
func runFailingFirst(t *testing.T, s *transport.Subscriber, nativeID func(*message.Message) string) *deliveryLog {
	t.Helper()
	l := &deliveryLog{byPayload: map[string][]delivery{}}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(_ context.Context, m *message.Message) error {
			d := delivery{Message: m.Clone(), nativeID: m.ID}
			if nativeID != nil {
				d.nativeID = nativeID(m)
			}
			if l.add(d) == 1 {
				return errors.New("first delivery fails")
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
	})
	return l
}

func (l *deliveryLog) add(d delivery) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := string(d.Payload)
	l.byPayload[k] = append(l.byPayload[k], d)
	l.total++
	return len(l.byPayload[k])
}

func (l *deliveryLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

func (l *deliveryLog) deliveries(p []byte) []delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byPayload[string(p)]
}

// waitTwice waits until every payload was delivered at least twice.
func (l *deliveryLog) waitTwice(t *testing.T, payloads [][]byte, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, p := range payloads {
			ok = ok && len(l.deliveries(p)) >= 2
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every payload delivered twice in %v: %d deliveries", timeout, l.count())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Published are the messages CourierToPlain-style tests publish: text, binary and empty
// payloads, each with a key and application headers.
func Published() []*message.Message {
	return []*message.Message{
		{ID: "id-text", Key: "cust-7", Payload: []byte(`{"a":1}`), Headers: message.Headers{"tenant": "acme", "trace": "t1"}},
		{ID: "id-bin", Key: "cust-8", Payload: []byte{0, 0, 0, 0xff}, Headers: message.Headers{"tenant": "beta"}},
		{ID: "id-empty", Key: "cust-9", Payload: []byte{}, Headers: message.Headers{"tenant": "gamma"}},
	}
}

// PublishAll publishes Published() to topic through c and returns the messages.
func PublishAll(ctx context.Context, t *testing.T, c *transport.Conn, topic string) []*message.Message {
	t.Helper()
	want := Published()
	for _, m := range want {
		if err := c.Publish(ctx, topic, m); err != nil {
			t.Fatalf("publish %s: %v", m.ID, err)
		}
	}
	return want
}

// CheckHeaders checks that a plain consumer sees every application header of m, reading the
// native header named k with get.
func CheckHeaders(t *testing.T, m *message.Message, get func(k string) string) {
	t.Helper()
	for k, v := range m.Headers {
		if got := get(k); got != v {
			t.Errorf("%s: native header %q = %q; want %q", m.ID, k, got, v)
		}
	}
}
