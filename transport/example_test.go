package transport_test

import (
	"context"
	"errors"
	"fmt"

	_ "github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// Open a broker by URL, subscribe, publish, and handle one message.
func Example() {
	ctx := context.Background()
	conn, err := transport.Open(ctx, "memory://") // or transport.URLFromEnv()
	if err != nil {
		panic(err)
	}
	defer conn.Close(ctx)

	// Subscribe first: the subscription retains what is published from now on.
	sub, err := conn.Subscribe(ctx, "orders", "billing", transport.SubscriberConfig{Concurrency: 4})
	if err != nil {
		panic(err)
	}
	if err := conn.Publish(ctx, "orders", &message.Message{Key: "customer-1", Payload: []byte("order 42")}); err != nil {
		panic(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	_ = sub.Run(runCtx, func(ctx context.Context, m *message.Message) error {
		fmt.Printf("%s: %s (attempt %d)\n", m.Topic, m.Payload, m.Attempt)
		stop() // Run drains and returns once this handler is done
		return nil
	})
	// Output: orders: order 42 (attempt 1)
}

// A partial batch failure names the messages that were not published.
func ExamplePublishError() {
	ctx := context.Background()
	conn, _ := transport.Open(ctx, "memory://?max_message_bytes=16")
	defer conn.Close(ctx)

	err := conn.Publish(ctx, "orders",
		&message.Message{ID: "a", Payload: []byte("small")},
		&message.Message{ID: "b", Payload: []byte("much larger than sixteen bytes")},
	)
	var pe *transport.PublishError
	if errors.As(err, &pe) {
		for _, f := range pe.Failed {
			fmt.Println(f.Index, f.ID, errors.Is(f.Err, transport.ErrMessageTooLarge))
		}
	}
	// Output: 1 b true
}

// Handlers steer retries with their errors: nil acks, an error retries with backoff, a
// permanent error dead-letters at once.
func ExampleSubscriber_Run() {
	ctx := context.Background()
	conn, _ := transport.Open(ctx, "memory://")
	defer conn.Close(ctx)
	sub, _ := conn.Subscribe(ctx, "payments", "ledger", transport.SubscriberConfig{})
	dlq, _ := conn.Subscribe(ctx, "payments.dlq", "ledger.dlq", transport.SubscriberConfig{})
	_ = conn.Publish(ctx, "payments", &message.Message{ID: "p1", Payload: []byte(`{"amount":-1}`)})

	go func() {
		_ = sub.Run(ctx, func(ctx context.Context, m *message.Message) error {
			return message.Permanent(errors.New("amount must be positive"))
		})
	}()
	dctx, stop := context.WithCancel(ctx)
	_ = dlq.Run(dctx, func(ctx context.Context, m *message.Message) error {
		fmt.Println(m.ID, m.Header(message.HeaderDeadLetterReason))
		stop()
		return nil
	})
	// Output: p1 amount must be positive
}
