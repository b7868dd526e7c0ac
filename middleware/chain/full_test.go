package chain_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/chain"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/memstore"
	"github.com/courierhq/courier/transport"
)

// fullChain is the recommended chain with every feature, on the in-process store.
func fullChain(t testing.TB, f features, withEncryption bool) *chain.Chain {
	t.Helper()
	st := memstore.New(memstore.Options{})
	ord, err := ordering.New(ordering.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	idem, err := idempotency.New(idempotency.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	steps := []chain.Step{chain.Ordering(ord), chain.Idempotency(idem)}
	if withEncryption {
		steps = append(steps, chain.Encryption(f.enc))
	}
	steps = append(steps, chain.Schema(f.val), chain.Retry(f.cls))
	c, err := chain.New(steps...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFullChainOnMemory: every feature together through the engine — messages published
// through the chain arrive decrypted, validated, once each and in key order, a duplicate
// injected raw is acknowledged without handling, and an invalid message injected raw (with a
// valid encryption) is dead-lettered with its violation.
func TestFullChainOnMemory(t *testing.T) {
	ctx := context.Background()
	f := newFeatures(t)
	c := fullChain(t, f, true)
	conn, err := memory.Open(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	sub, err := conn.Subscribe(ctx, "orders", "billing", transport.SubscriberConfig{Concurrency: 4, Middleware: c.Consume()})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := conn.Subscribe(ctx, "orders.dlq", "billing.dlq", transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string][]int{} // key → n in handling order
	calls := map[string]int{}  // ID → handler calls
	dead := make(chan *message.Message, 4)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = sub.Run(rctx, func(_ context.Context, m *message.Message) error {
			var body struct{ N int }
			if err := json.Unmarshal(m.Payload, &body); err != nil {
				return message.Permanent(err)
			}
			mu.Lock()
			seen[m.Key] = append(seen[m.Key], body.N)
			calls[m.ID]++
			mu.Unlock()
			return nil
		})
	}()
	go func() {
		defer wg.Done()
		_ = dlq.Run(rctx, func(_ context.Context, m *message.Message) error { dead <- m.Clone(); return nil })
	}()
	defer func() { cancel(); wg.Wait() }()

	// The publisher keeps what reached the broker (innermost), to replay one raw.
	var capMu sync.Mutex
	var sent []*message.Message
	capture := func(next message.PublishFunc) message.PublishFunc {
		return func(ctx context.Context, topic string, msgs []*message.Message) error {
			capMu.Lock()
			sent = append(sent, msgs...)
			capMu.Unlock()
			return next(ctx, topic, msgs)
		}
	}
	pub := conn.Publisher(transport.PublisherConfig{Middleware: append(c.Publish(), capture)})
	const keys, perKey = 3, 20
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			m := &message.Message{Key: fmt.Sprintf("k%d", k), Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))}
			if err := pub.Publish(ctx, "orders", m); err != nil {
				t.Fatal(err)
			}
		}
	}
	capMu.Lock()
	dup := sent[5].Clone()
	capMu.Unlock()
	if strings.Contains(string(dup.Payload), `"n"`) || dup.Header(message.HeaderSequence) == "" {
		t.Fatalf("broker copy is not encrypted and sequenced: %q %v", dup.Payload, dup.Headers)
	}
	if err := conn.Publish(ctx, "orders", dup); err != nil {
		t.Fatal(err)
	}
	bad, err := f.enc.Encrypt(ctx, "orders", &message.Message{ID: "bad", Payload: []byte(`{"n":"one"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Publish(ctx, "orders", bad); err != nil {
		t.Fatal(err)
	}

	select {
	case m := <-dead:
		if m.ID != "bad" || !strings.Contains(m.Header(message.HeaderSchemaViolation), "/n") {
			t.Errorf("dead-lettered %s with %v", m.ID, m.Headers)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("invalid message not dead-lettered")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(calls)
		mu.Unlock()
		if n == keys*perKey {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages handled", n, keys*perKey)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // room for a duplicate to be (wrongly) handled
	mu.Lock()
	defer mu.Unlock()
	for id, n := range calls {
		if n != 1 {
			t.Errorf("message %s handled %d times", id, n)
		}
	}
	for k, ns := range seen {
		for i, n := range ns {
			if n != i {
				t.Fatalf("key %s handled out of order: %v", k, ns)
			}
		}
	}
}
