// Command deadletter shows the dead-letter round trip: orders that fail for good land in the
// dead-letter topic with the reason; once the cause is fixed, Redrive moves them back and they
// are handled. It runs on the in-process broker by default and on any broker named by
// COURIER_URL:
//
//	go run ./examples/deadletter
//	COURIER_URL=amqp://guest:guest@127.0.0.1:5672/ go run ./examples/deadletter
package main

import (
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
	"github.com/courierhq/courier/middleware/deadletter"
	"github.com/courierhq/courier/transport"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "deadletter:", err)
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
	topic := fmt.Sprintf("deadletter-orders-%06d", rand.IntN(1_000_000))
	dlTopic := conn.DefaultDeadLetterTopic(topic)
	fmt.Printf("broker  %s (%s)\ntopic   %s\ndead    %s\n\n", transport.RedactURL(url), conn.Capabilities().Name, topic, dlTopic)

	var deadLettered atomic.Int64
	sub, err := subscribe(ctx, conn, topic, &deadLettered)
	if err != nil {
		return err
	}
	b := &billing{}
	b.gatewayDown.Store(true)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sub.Run(runCtx, b.handle)
	}()
	defer func() { stop(); <-done }()

	if err := publishOrders(ctx, conn, topic); err != nil {
		return err
	}
	if err := waitUntil(ctx, func() bool { return deadLettered.Load() >= 3 }); err != nil {
		return err
	}

	fmt.Println("\nthe gateway is back; redriving")
	b.gatewayDown.Store(false)
	res, err := deadletter.Redrive(ctx, conn, dlTopic, "billing"+transport.DeadLetterSuffix,
		deadletter.RedriveOptions{IdleTimeout: time.Second, Logger: quiet})
	if err != nil {
		return err
	}
	fmt.Printf("redrive        moved %d, skipped %d, failed %d\n", res.Moved, res.Skipped, res.Failed)
	if err := waitUntil(ctx, func() bool { return len(b.handledIDs()) == 6 }); err != nil {
		return err
	}
	handled := b.handledIDs()
	sort.Strings(handled)
	fmt.Printf("handled        %v\n", handled)
	return nil
}

// subscribe subscribes "billing" to topic with retries and a dead-letter destination that
// prints and counts in deadLettered what it dead-letters.
func subscribe(ctx context.Context, conn *transport.Conn, topic string, deadLettered *atomic.Int64) (*transport.Subscriber, error) {
	// The destination is the engine's default (<topic>.dlq, retained as <subscription>.dlq);
	// building it ourselves adds a hook that watches what is dead-lettered.
	dest, err := deadletter.New(deadletter.Config{Conn: conn, OnDeadLetter: func(m *message.Message, f transport.Failure) {
		fmt.Printf("dead-lettered  %s after %d attempt(s): %v\n", m.ID, f.Attempts, f.Err)
		deadLettered.Add(1)
	}})
	if err != nil {
		return nil, err
	}
	return conn.Subscribe(ctx, topic, "billing", transport.SubscriberConfig{
		Order:      transport.OrderDelivery, // order does not matter here; SQS standard queues keep no other
		DeadLetter: dest,
		Retry:      transport.RetryPolicy{MaxAttempts: 3, InitialDelay: 20 * time.Millisecond},
	})
}

// billing handles orders; card payments fail while the gateway is down.
type billing struct {
	gatewayDown atomic.Bool
	mu          sync.Mutex
	handled     []string // IDs, in handling order
}

func (b *billing) handle(_ context.Context, m *message.Message) error {
	if m.Header("method") == "card" && b.gatewayDown.Load() {
		return errors.New("payment gateway unavailable") // retried, then dead-lettered
	}
	b.mu.Lock()
	b.handled = append(b.handled, m.ID)
	b.mu.Unlock()
	return nil
}

// handledIDs returns a copy of the IDs handled so far.
func (b *billing) handledIDs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.handled...)
}

// publishOrders publishes six orders, the even ones paid by card.
func publishOrders(ctx context.Context, conn *transport.Conn, topic string) error {
	var batch []*message.Message
	for i := 1; i <= 6; i++ {
		method := "invoice"
		if i%2 == 0 {
			method = "card"
		}
		batch = append(batch, &message.Message{ID: fmt.Sprintf("order-%d", i), Payload: []byte(fmt.Sprintf(`{"order":%d}`, i)),
			Headers: message.Headers{"method": method}})
	}
	return conn.Publish(ctx, topic, batch...)
}

// waitUntil polls cond until it holds or ctx ends.
func waitUntil(ctx context.Context, cond func() bool) error {
	for !cond() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
