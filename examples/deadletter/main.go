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

	// The destination is the engine's default (<topic>.dlq, retained as <subscription>.dlq);
	// building it ourselves adds a hook that watches what is dead-lettered.
	var deadLettered atomic.Int64
	dest, err := deadletter.New(deadletter.Config{Conn: conn, OnDeadLetter: func(m *message.Message, f transport.Failure) {
		fmt.Printf("dead-lettered  %s after %d attempt(s): %v\n", m.ID, f.Attempts, f.Err)
		deadLettered.Add(1)
	}})
	if err != nil {
		return err
	}
	var gatewayDown atomic.Bool
	gatewayDown.Store(true)
	var mu sync.Mutex
	var handled []string
	sub, err := conn.Subscribe(ctx, topic, "billing", transport.SubscriberConfig{
		Order:      transport.OrderDelivery, // order does not matter here; SQS standard queues keep no other
		DeadLetter: dest,
		Retry:      transport.RetryPolicy{MaxAttempts: 3, InitialDelay: 20 * time.Millisecond},
	})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sub.Run(runCtx, func(_ context.Context, m *message.Message) error {
			if m.Header("method") == "card" && gatewayDown.Load() {
				return errors.New("payment gateway unavailable") // retried, then dead-lettered
			}
			mu.Lock()
			handled = append(handled, m.ID)
			mu.Unlock()
			return nil
		})
	}()
	defer func() { stop(); <-done }()

	var batch []*message.Message
	for i := 1; i <= 6; i++ {
		method := "invoice"
		if i%2 == 0 {
			method = "card"
		}
		batch = append(batch, &message.Message{ID: fmt.Sprintf("order-%d", i), Payload: []byte(fmt.Sprintf(`{"order":%d}`, i)),
			Headers: message.Headers{"method": method}})
	}
	if err := conn.Publish(ctx, topic, batch...); err != nil {
		return err
	}
	for deadLettered.Load() < 3 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(10 * time.Millisecond)
	}

	fmt.Println("\nthe gateway is back; redriving")
	gatewayDown.Store(false)
	res, err := deadletter.Redrive(ctx, conn, dlTopic, "billing"+transport.DeadLetterSuffix,
		deadletter.RedriveOptions{IdleTimeout: time.Second, Logger: quiet})
	if err != nil {
		return err
	}
	fmt.Printf("redrive        moved %d, skipped %d, failed %d\n", res.Moved, res.Skipped, res.Failed)
	for {
		mu.Lock()
		n := len(handled)
		mu.Unlock()
		if n == 6 {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	sort.Strings(handled)
	fmt.Printf("handled        %v\n", handled)
	return nil
}
