package gcppubsub_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/courierhq/courier/adapters/gcppubsub"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// Open a connection with a typed Config, publish with an ordering key, and consume. Against
// Google, leave Endpoint empty and let the standard credential chain do its work.
func Example() {
	ctx := context.Background()
	conn, err := gcppubsub.Open(ctx, gcppubsub.Config{
		Project:  "my-project",
		Endpoint: "localhost:8085", // an emulator; omit for Google
		Prefix:   "staging-",       // topic "orders" is Pub/Sub topic "staging-orders"
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)

	// Subscribe first: Pub/Sub keeps messages only for subscriptions that exist.
	sub, err := conn.Subscribe(ctx, "orders", "order-emails", transport.SubscriberConfig{})
	if err != nil {
		log.Fatal(err)
	}
	err = conn.Publish(ctx, "orders",
		&message.Message{Key: "customer-7", Payload: []byte(`{"order":1}`)},
		&message.Message{Key: "customer-7", Payload: []byte(`{"order":2}`)},
	)
	if err != nil {
		log.Fatal(err) // a *transport.PublishError says which messages failed
	}
	runCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	_ = sub.Run(runCtx, func(ctx context.Context, m *message.Message) error {
		fmt.Printf("%s: %s (attempt %d)\n", m.Key, m.Payload, m.Attempt)
		return nil
	})
}

// The same connection from a URL, as transport.Open (and COURIER_URL) take it.
func Example_url() {
	ctx := context.Background()
	conn, err := transport.Open(ctx, "gcppubsub://my-project?endpoint=localhost:8085&prefix=staging-&ack_deadline=30s")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	fmt.Println(conn.Capabilities().Name)
}
