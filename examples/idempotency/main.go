// Command idempotency shows effectively-once handling: a payment published three times (a
// retrying producer) whose first handling fails (so the broker redelivers it) is charged
// once; then two consumer instances sharing one store split a stream of duplicated payments
// and still charge each once.
//
// It runs on the in-process broker and store by default; COURIER_URL picks another broker, and
// COURIER_STORE_URL (redis://… or postgres://…, see package storeurl) a shared store:
//
//	go run ./examples/idempotency
//	COURIER_URL=amqp://guest:guest@127.0.0.1:5672/ COURIER_STORE_URL=redis://127.0.0.1:6379/0 go run ./examples/idempotency
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/store/storeurl"
	"github.com/courierhq/courier/transport"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "idempotency:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := transport.URLFromEnv()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	conn, err := transport.OpenConfig(ctx, url, transport.ConnConfig{Logger: quiet})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	storeURL := cmp.Or(os.Getenv(storeurl.EnvVar), "memory://")
	store, closeStore, err := storeurl.Open(ctx, storeURL)
	if err != nil {
		return err
	}
	defer closeStore()
	topic := fmt.Sprintf("idempotency-payments-%06d", rand.IntN(1_000_000))
	fmt.Printf("broker  %s (%s)\nstore   %s\ntopic   %s\n\n", transport.RedactURL(url), conn.Capabilities().Name, transport.RedactURL(storeURL), topic)

	if err := oneSubscriber(ctx, conn, store, topic); err != nil {
		return err
	}
	return twoInstances(ctx, conn, store, topic+"-2")
}

// acks counts the deliveries that ended acknowledged, whatever the inner middleware decided.
type acks struct{ n atomic.Int64 }

func (a *acks) middleware(next message.Handler) message.Handler {
	return func(ctx context.Context, m *message.Message) error {
		err := next(ctx, m)
		if err == nil {
			a.n.Add(1)
		}
		return err
	}
}

func (a *acks) wait(ctx context.Context, n int64) error {
	for a.n.Load() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d deliveries acknowledged: %w", a.n.Load(), n, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

func oneSubscriber(ctx context.Context, conn *transport.Conn, store idempotency.Store, topic string) error {
	fmt.Println("1. one payment, published three times; its first handling fails")
	idem, err := idempotency.New(idempotency.Config{Store: store, Lease: 5 * time.Second})
	if err != nil {
		return err
	}
	var a acks
	sub, err := conn.Subscribe(ctx, topic, "ledger", transport.SubscriberConfig{
		Order:      transport.OrderDelivery, // duplicates, not order, are the point; SQS standard queues keep no other
		Retry:      transport.RetryPolicy{InitialDelay: 50 * time.Millisecond},
		Middleware: []message.Middleware{a.middleware, idem.Consume()},
	})
	if err != nil {
		return err
	}
	var calls, charged atomic.Int64
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(runCtx, func(_ context.Context, m *message.Message) error {
			if calls.Add(1) == 1 {
				fmt.Printf("   handler: %s — the bank times out; failing, the broker will redeliver\n", m.ID)
				return errors.New("bank timeout")
			}
			charged.Add(1)
			fmt.Printf("   handler: %s — charged %s (attempt %d)\n", m.ID, m.Payload, m.Attempt)
			return nil
		})
	}()
	for i := 0; i < 3; i++ {
		if err := conn.Publish(ctx, topic, &message.Message{ID: "payment-42", Payload: []byte("€19.90")}); err != nil {
			return err
		}
	}
	err = a.wait(ctx, 3)
	time.Sleep(200 * time.Millisecond)
	stop()
	if rerr := <-done; err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	fmt.Printf("   3 copies acknowledged, handler called %d times, charged %d time(s)\n\n", calls.Load(), charged.Load())
	return nil
}

func twoInstances(ctx context.Context, conn *transport.Conn, store idempotency.Store, topic string) error {
	const payments = 10
	fmt.Printf("2. two instances of the ledger service share the store; %d payments, each published twice\n", payments)
	var a acks
	var mu sync.Mutex
	charges := map[string][]string{}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, instance := range []string{"A", "B"} {
		// Each instance builds its own middleware, as separate processes would.
		idem, err := idempotency.New(idempotency.Config{Store: store})
		if err != nil {
			stop()
			return err
		}
		sub, err := conn.Subscribe(ctx, topic, "ledger", transport.SubscriberConfig{Concurrency: 2, Prefetch: 2, Order: transport.OrderDelivery,
			Middleware: []message.Middleware{a.middleware, idem.Consume()}})
		if err != nil {
			stop()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- sub.Run(runCtx, func(_ context.Context, m *message.Message) error {
				mu.Lock()
				charges[m.ID] = append(charges[m.ID], instance)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				return nil
			})
		}()
	}
	for copyNo := 0; copyNo < 2; copyNo++ {
		for i := 0; i < payments; i++ {
			if err := conn.Publish(ctx, topic, &message.Message{ID: fmt.Sprintf("payment-%02d", i), Payload: []byte("€5")}); err != nil {
				stop()
				return err
			}
		}
	}
	err := a.wait(ctx, 2*payments)
	time.Sleep(200 * time.Millisecond)
	stop()
	wg.Wait()
	close(errs)
	for rerr := range errs {
		if err == nil {
			err = rerr
		}
	}
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(charges))
	for id := range charges {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	twice := 0
	for _, id := range ids {
		fmt.Printf("   %s charged by instance %v\n", id, charges[id])
		if len(charges[id]) > 1 {
			twice++
		}
	}
	fmt.Printf("   %d deliveries acknowledged, %d payments charged, %d charged twice\n", a.n.Load(), len(ids), twice)
	return nil
}
