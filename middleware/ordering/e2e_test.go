package ordering_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/memstore"
	"github.com/courierhq/courier/transport"
)

// TestEndToEndCompetingSubscribers: keyed messages published through the publish half and
// spread over two competing subscribers reach the handlers in order, each once.
func TestEndToEndCompetingSubscribers(t *testing.T) {
	ctx := context.Background()
	conn, err := memory.Open(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	store := memstore.New(memstore.Options{})
	const keys, per = 10, 50
	var (
		mu      sync.Mutex
		last    = map[string]int64{}
		errs    []string
		handled atomic.Int64
	)
	handler := func(_ context.Context, m *message.Message) error {
		_, seq, err := ordering.ParseStamp(m.Header(message.HeaderSequence))
		mu.Lock()
		if err != nil || seq != last[m.Key]+1 {
			errs = append(errs, fmt.Sprintf("key %s: seq %d after %d (%v)", m.Key, seq, last[m.Key], err))
		}
		last[m.Key] = seq
		mu.Unlock()
		handled.Add(1)
		return nil
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		o, _ := newOrdering(t, store, nil)
		sub, err := conn.Subscribe(ctx, "orders", "shipping", transport.SubscriberConfig{Concurrency: 4,
			Middleware: []message.Middleware{o.Consume()}})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sub.Run(runCtx, handler); err != nil {
				t.Error(err)
			}
		}()
	}
	o, _ := newOrdering(t, store, nil)
	pub := conn.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{o.Publish()}})
	for i := 0; i < per; i++ {
		batch := make([]*message.Message, keys)
		for k := range batch {
			batch[k] = &message.Message{Key: fmt.Sprint("customer-", k), Payload: []byte("x")}
		}
		if err := pub.Publish(ctx, "orders", batch...); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for handled.Load() < keys*per && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, e := range errs[:min(len(errs), 10)] {
		t.Error(e)
	}
	if n := handled.Load(); n != keys*per {
		t.Errorf("handled %d; want %d", n, keys*per)
	}
}
