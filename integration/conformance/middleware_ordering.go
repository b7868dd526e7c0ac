package conformance

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/encryption"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/memstore"
	"github.com/courierhq/courier/transport"
)

func init() {
	middlewareTests = append(middlewareTests,
		namedTest{"Middleware/Ordering/CompetingConsumers", testOrderingCompeting},
		namedTest{"Middleware/Ordering/ReorderAndDuplicates", testOrderingReorder},
		namedTest{"Middleware/Ordering/GapTimeout", testOrderingGapTimeout},
		namedTest{"Middleware/Ordering/ForgedStamps", testOrderingForged},
	)
}

func newOrdering(t *testing.T, st ordering.Store, mod func(*ordering.Config)) *ordering.Ordering {
	t.Helper()
	cfg := ordering.Config{Store: st}
	if mod != nil {
		mod(&cfg)
	}
	o, err := ordering.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// seqChecker is a handler that checks, across every subscriber it serves, that each key's
// messages are handled one at a time with sequence numbers 1, 2, 3, … — strictly increasing,
// no gaps — and in publish order (header "n" is the message's index within its key).
type seqChecker struct {
	mu      sync.Mutex
	last    map[string]int64
	active  map[string]bool
	handled int
	errs    []string
	change  chan struct{}
}

func newSeqChecker() *seqChecker {
	return &seqChecker{last: map[string]int64{}, active: map[string]bool{}, change: make(chan struct{}, 1)}
}

func (c *seqChecker) fail(format string, args ...any) {
	if len(c.errs) < 20 {
		c.errs = append(c.errs, fmt.Sprintf(format, args...))
	}
}

func (c *seqChecker) handler(_ context.Context, m *message.Message) error {
	_, seq, err := ordering.ParseStamp(m.Headers[message.HeaderSequence])
	c.mu.Lock()
	if err != nil {
		c.fail("message %s: %v", m.ID, err)
	}
	if c.active[m.Key] {
		c.fail("key %s handled concurrently (seq %d)", m.Key, seq)
	}
	c.active[m.Key] = true
	if prev := c.last[m.Key]; seq != prev+1 {
		c.fail("key %s: seq %d handled after %d", m.Key, seq, prev)
	}
	if n, ok := m.Headers["n"]; ok && n != strconv.FormatInt(seq-1, 10) {
		c.fail("key %s: seq %d carries n=%s; want publish order", m.Key, seq, n)
	}
	c.last[m.Key] = max(c.last[m.Key], seq)
	c.mu.Unlock()
	time.Sleep(100 * time.Microsecond) // a moment in which a concurrent run would overlap
	c.mu.Lock()
	c.active[m.Key] = false
	c.handled++
	c.mu.Unlock()
	select {
	case c.change <- struct{}{}:
	default:
	}
	return nil
}

func (c *seqChecker) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handled
}

func (c *seqChecker) wait(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for c.count() < n {
		select {
		case <-c.change:
		case <-deadline:
			c.report(t)
			t.Fatalf("timed out after %v: %d of %d messages handled", timeout, c.count(), n)
		}
	}
}

func (c *seqChecker) report(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.errs {
		t.Error(e)
	}
}

// testOrderingCompeting: 50 keys × 200 messages through two competing subscribers with
// concurrency 16 each, sharing the ordering store: each key's handler sees 1, 2, …, 200.
func testOrderingCompeting(t *testing.T, h *Harness) {
	h.require(t, CompetingConsumers)
	forEachStore(t, h, func(t *testing.T, h *Harness, st mwStore) {
		c := h.open(t)
		topic := h.NewTopic(t)
		keys, per := h.n(50), h.n(200)
		if st.name == "postgres" {
			// Two round trips per store call, and a slower client: a quarter of the load
			// shows the same on PostgreSQL in a quarter of the time.
			keys, per = max(keys/2, 10), max(per/2, 10)
		}
		check := newSeqChecker()
		for i := 0; i < 2; i++ {
			ord := newOrdering(t, st.open(t), nil)
			sub := h.subscribe(t, c, topic, "shared", transport.SubscriberConfig{Concurrency: 16,
				Middleware: []message.Middleware{ord.Consume()}})
			h.run(t, sub, check.handler)
		}
		pub := c.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{newOrdering(t, st.open(t), nil).Publish()}})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		var batch []*message.Message
		for i := 0; i < per; i++ {
			for k := 0; k < keys; k++ {
				batch = append(batch, &message.Message{Key: fmt.Sprintf("key-%d", k), Payload: []byte("x"),
					Headers: message.Headers{"n": strconv.Itoa(i)}})
				if len(batch) == 100 {
					if err := pub.Publish(ctx, topic, batch...); err != nil {
						t.Fatalf("publish: %v", err)
					}
					batch = batch[:0]
				}
			}
		}
		if len(batch) > 0 {
			if err := pub.Publish(ctx, topic, batch...); err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
		check.wait(t, keys*per, 8*h.Timeout)
		time.Sleep(200 * time.Millisecond) // anything handled twice would show now
		check.report(t)
		if n := check.count(); n != keys*per {
			t.Errorf("handled %d messages; want %d", n, keys*per)
		}
		check.mu.Lock()
		defer check.mu.Unlock()
		for k := 0; k < keys; k++ {
			if got := check.last[fmt.Sprintf("key-%d", k)]; got != int64(per) {
				t.Errorf("key-%d ended at seq %d; want %d", k, got, per)
			}
		}
		t.Logf("%d keys × %d messages in order over 2 competing subscribers in %v", keys, per, time.Since(start).Round(time.Millisecond))
	})
}

// stamped returns a message of key k with sequence stamp seq (epoch 1), as the publish half
// would have made it.
func stamped(k string, seq int64) *message.Message {
	return &message.Message{ID: fmt.Sprintf("%s-%d", k, seq), Key: k, Payload: []byte(strconv.FormatInt(seq, 10)),
		Headers: message.Headers{message.HeaderSequence: ordering.FormatStamp(1, seq)}}
}

// testOrderingReorder: messages that arrive out of order, and duplicates, reach the handler
// in order and once. Brokers that hold a key's later messages back until its earlier one is
// acknowledged (Pub/Sub ordering keys, SQS FIFO groups) cannot hand the earlier ones over
// while the first one waits: there the wait ends by GapTimeout, and what was skipped is then
// handled late — still each message once, and nothing out of order before GapTimeout.
func testOrderingReorder(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	const gapTimeout = 2 * time.Second
	var (
		mu    sync.Mutex
		order []int64
		at    []time.Duration
		count = map[int64]int{}
	)
	ord := newOrdering(t, memstore.New(memstore.Options{}), func(cfg *ordering.Config) { cfg.GapTimeout = gapTimeout })
	sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Middleware: []message.Middleware{ord.Consume()}})
	start := time.Now()
	done := newCollector()
	h.run(t, sub, func(ctx context.Context, m *message.Message) error {
		_, seq, err := ordering.ParseStamp(m.Headers[message.HeaderSequence])
		if err != nil {
			return err
		}
		mu.Lock()
		order = append(order, seq)
		at = append(at, time.Since(start))
		count[seq]++
		mu.Unlock()
		return done.handler(ctx, m)
	})
	for _, seq := range []int64{3, 1, 1, 2, 5, 4, 2} { // the repeats are duplicates (same ID)
		publish(t, c, topic, []*message.Message{stamped("k", seq)}, 1)
	}
	done.waitDistinct(t, 5, 2*h.Timeout)
	time.Sleep(300 * time.Millisecond) // a duplicate handled would show now
	mu.Lock()
	defer mu.Unlock()
	for seq := int64(1); seq <= 5; seq++ {
		if count[seq] != 1 {
			t.Errorf("seq %d handled %d times; want once", seq, count[seq])
		}
	}
	for i := range order {
		if order[i] != int64(i+1) {
			// Out of order is only allowed once the gap timed out: a broker held the key back.
			if at[i] < gapTimeout {
				t.Errorf("handled %v (at %v); seq %d out of order before GapTimeout", order, at, order[i])
			} else {
				t.Logf("broker held the key back: handled %v; the wait ended by GapTimeout, the rest handled late", order)
			}
			break
		}
	}
}

// testOrderingGapTimeout: a gap nobody fills ends after GapTimeout: SkipAhead handles the
// message that waited (and the missing one late, should it come); DeadLetter sends the one
// that waited to the dead-letter topic with the reason.
func testOrderingGapTimeout(t *testing.T, h *Harness) {
	t.Run("SkipAhead", func(t *testing.T) {
		c := h.open(t)
		topic := h.NewTopic(t)
		acks := newAckCounter()
		var mu sync.Mutex
		var seen []string
		ord := newOrdering(t, memstore.New(memstore.Options{}), func(cfg *ordering.Config) { cfg.GapTimeout = 300 * time.Millisecond })
		sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{
			Middleware: []message.Middleware{acks.middleware, ord.Consume()}})
		h.run(t, sub, func(_ context.Context, m *message.Message) error {
			mu.Lock()
			seen = append(seen, string(m.Payload))
			mu.Unlock()
			return nil
		})
		publish(t, c, topic, []*message.Message{stamped("k", 1), stamped("k", 3)}, 2)
		acks.wait(t, 2, 2*h.Timeout)
		publish(t, c, topic, []*message.Message{stamped("k", 2)}, 1) // late
		acks.wait(t, 3, h.Timeout)
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		if got := strings.Join(seen, ","); got != "1,3,2" {
			t.Errorf("handled %s; want 1,3,2 (2 given up on, then handled late when it came)", got)
		}
	})
	t.Run("DeadLetter", func(t *testing.T) {
		c := h.open(t)
		topic := h.NewTopic(t)
		check := &sync.Map{}
		ord := newOrdering(t, memstore.New(memstore.Options{}), func(cfg *ordering.Config) {
			cfg.GapTimeout = 300 * time.Millisecond
			cfg.OnGapTimeout = ordering.DeadLetter
		})
		sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Middleware: []message.Middleware{ord.Consume()}})
		handled := newCollector()
		h.run(t, sub, func(ctx context.Context, m *message.Message) error {
			check.Store(string(m.Payload), true)
			return handled.handler(ctx, m)
		})
		dlq := h.dlqCollector(t, c, topic, "s1")
		publish(t, c, topic, []*message.Message{stamped("k", 1), stamped("k", 3), stamped("k", 4)}, 3)
		dlq.waitDistinct(t, 1, 2*h.Timeout)
		handled.waitDistinct(t, 2, h.Timeout)
		got := dlq.snapshot()[0]
		if string(got.Payload) != "3" || !strings.Contains(got.Headers[message.HeaderDeadLetterReason], "gap") ||
			got.Headers[message.HeaderDeadLetterPermanent] != "true" {
			t.Errorf("dead-lettered payload %q reason %q permanent %q; want message 3, a gap reason, permanent",
				got.Payload, got.Headers[message.HeaderDeadLetterReason], got.Headers[message.HeaderDeadLetterPermanent])
		}
		if _, ok := check.Load("3"); ok {
			t.Error("message 3 was handled out of order")
		}
		if _, ok := check.Load("4"); !ok {
			t.Error("message 4 was not handled after 3 was dead-lettered")
		}
	})
}

// testOrderingForged: plain messages with forged courier-seq stamps, published into a key that
// a publisher with ordering and encryption writes, never make a real message of the key go
// unhandled or out of order: a newer epoch and a number never issued are dead-lettered as
// implausible, a plausible number fails decryption and is dead-lettered; the real messages are
// all handled, once, in order.
func testOrderingForged(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	st := memstore.New(memstore.Options{})
	ord := newOrdering(t, st, func(cfg *ordering.Config) { cfg.GapTimeout = 500 * time.Millisecond })
	enc := newEncryptor(t, encryption.Config{Keyring: encKeyring(t, "k1", "k1")})
	pub := c.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{ord.Publish(), enc.Publish()}})
	sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Middleware: []message.Middleware{ord.Consume(), enc.Consume()}})
	handled := newCollector()
	h.run(t, sub, handled.handler)
	dlq := h.dlqCollector(t, c, topic, "s1")
	real := func(i int) *message.Message {
		return &message.Message{ID: fmt.Sprintf("real-%d", i), Key: "k", Payload: []byte(strconv.Itoa(i))}
	}
	publishVia(t, pub, topic, real(1))
	handled.waitDistinct(t, 1, h.Timeout)
	epoch, last, err := st.Issued(context.Background(), topic+"/k")
	if err != nil || epoch == 0 || last != 1 {
		t.Fatalf("counter: epoch %d, last %d, %v; want the first number issued", epoch, last, err)
	}
	forged := func(id, stamp string) *message.Message {
		return &message.Message{ID: id, Key: "k", Payload: []byte("forged"), Headers: message.Headers{message.HeaderSequence: stamp}}
	}
	publish(t, c, topic, []*message.Message{
		forged("forged-epoch", ordering.FormatStamp(epoch+1, 1)),
		forged("forged-far", ordering.FormatStamp(epoch, 1000)),
		forged("forged-next", ordering.FormatStamp(epoch, 2)),
	}, 1)
	for i := 2; i <= 5; i++ {
		publishVia(t, pub, topic, real(i))
	}
	handled.waitDistinct(t, 5, 3*h.Timeout)
	dlq.waitDistinct(t, 3, 3*h.Timeout)
	var order []string
	for _, r := range handled.snapshot() {
		order = append(order, r.ID)
	}
	if got := strings.Join(order, ","); got != "real-1,real-2,real-3,real-4,real-5" {
		t.Errorf("handled %s; want real-1 … real-5, each once, in order, and no forgery", got)
	}
	for _, r := range dlq.snapshot() {
		if !strings.HasPrefix(r.ID, "forged-") || r.Headers[message.HeaderDeadLetterPermanent] != "true" {
			t.Errorf("dead-lettered %s (permanent %q); want only the forgeries, as permanent", r.ID, r.Headers[message.HeaderDeadLetterPermanent])
		}
	}
}
