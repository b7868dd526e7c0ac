package deadletter_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/deadletter"
	"github.com/courierhq/courier/transport"
)

func ExampleRedrive() {
	ctx := context.Background()
	conn, _ := memory.Open(memory.Config{})
	defer conn.Close(ctx)
	_ = conn.EnsureSubscription(ctx, "orders", "billing")
	_ = conn.EnsureSubscription(ctx, "orders.dlq", "billing.dlq")

	// What the engine stores when billing gives up on a message.
	dead := transport.DeadLetterCopy(&message.Message{ID: "order-7", Payload: []byte(`{"total":70}`)},
		transport.Failure{Err: fmt.Errorf("gateway down"), Attempts: 5, Topic: "orders", Subscription: "billing"}, conn.Capabilities())
	_ = conn.Publish(ctx, "orders.dlq", dead)

	res, err := deadletter.Redrive(ctx, conn, "orders.dlq", "billing.dlq", deadletter.RedriveOptions{
		IdleTimeout: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	fmt.Println(res.Moved, res.Failed, err)
	// Output: 1 0 <nil>
}

func ExampleNew() {
	ctx := context.Background()
	conn, _ := memory.Open(memory.Config{})
	defer conn.Close(ctx)
	other, _ := memory.Open(memory.Config{}) // another broker keeps the dead letters
	defer other.Close(ctx)

	dest, _ := deadletter.New(deadletter.Config{Conn: other})
	_, _ = conn.Subscribe(ctx, "orders", "billing", transport.SubscriberConfig{DeadLetter: dest})
	fmt.Println(dest.TopicFor("orders"))
	// Output: orders.dlq
}
