package transport_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	_ "github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// Poll a subscription's backlog, as a metrics gauge's callback would: a short deadline per
// reading, unknown counts left out, and a broker that cannot tell skipped once.
func ExampleConn_Backlog() {
	ctx := context.Background()
	conn, err := transport.Open(ctx, "memory://")
	if err != nil {
		panic(err)
	}
	defer conn.Close(ctx)
	if err := conn.EnsureSubscription(ctx, "orders", "billing"); err != nil {
		panic(err)
	}
	for i := range 3 {
		if err := conn.Publish(ctx, "orders", &message.Message{Payload: fmt.Appendf(nil, "order %d", i)}); err != nil {
			panic(err)
		}
	}

	if !conn.Capabilities().Backlog {
		return // e.g. Pub/Sub: register no gauge
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	b, err := conn.Backlog(rctx, "orders", "billing")
	switch {
	case errors.Is(err, transport.ErrSubscriptionNotFound):
		fmt.Println("no such subscription")
	case err != nil:
		fmt.Println("no reading:", err)
	default:
		fmt.Println("ready:", b.Messages, "pending:", b.Pending())
		if b.InFlight != transport.BacklogUnknown {
			fmt.Println("in flight:", b.InFlight)
		}
	}
	// Output:
	// ready: 3 pending: 3
	// in flight: 0
}
