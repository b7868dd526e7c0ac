package chain_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/chain"
	"github.com/courierhq/courier/middleware/deadletter"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/memstore"
	"github.com/courierhq/courier/transport"
)

// TestRedriveThroughOrdering: a sequenced message that was dead-lettered, while later messages
// of its key went on (after the ordering gap timeout), is handled when redriven — the ordering
// middleware must let a redriven copy (message.HeaderRedriven) through instead of taking it
// for a duplicate of an old sequence number.
func TestRedriveThroughOrdering(t *testing.T) {
	// Redrive removes courier-dlq-topic and sets courier-redriven; ordering must let the
	// redriven message through rather than take it for a duplicate of an old sequence number.
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	st := memstore.New(memstore.Options{})
	ord, err := ordering.New(ordering.Config{Store: st, GapTimeout: 50 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	c := chain.MustNew(chain.Ordering(ord))
	conn, err := memory.Open(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	sub, err := conn.Subscribe(ctx, "orders", "billing", transport.SubscriberConfig{Middleware: c.Consume(),
		Retry: transport.RetryPolicy{MaxAttempts: 2, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	var broken atomic.Bool
	broken.Store(true)
	var mu sync.Mutex
	var handled []string
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sub.Run(rctx, func(_ context.Context, m *message.Message) error {
			if m.ID == "first" && broken.Load() {
				return message.Permanent(errors.New("cannot handle it yet"))
			}
			mu.Lock()
			handled = append(handled, m.ID)
			mu.Unlock()
			return nil
		})
	}()
	defer func() { cancel(); <-done }()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(handled) }
	waitFor := func(what string, n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for count() < n {
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("%s: handled %v", what, handled)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	pub := conn.Publisher(transport.PublisherConfig{Middleware: c.Publish()})
	for _, id := range []string{"first", "second", "third"} {
		if err := pub.Publish(ctx, "orders", &message.Message{ID: id, Key: "customer-7", Payload: []byte(id)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("the key goes on after the gap timeout", 2)
	broken.Store(false)
	res, err := deadletter.Redrive(ctx, conn, "orders.dlq", "billing.dlq", deadletter.RedriveOptions{IdleTimeout: 100 * time.Millisecond, Logger: quiet})
	if err != nil || res.Moved != 1 {
		t.Fatalf("Redrive = %+v, %v", res, err)
	}
	waitFor("the redriven message is handled", 3)
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(handled) != "[second third first]" {
		t.Errorf("handled %v", handled)
	}
}
