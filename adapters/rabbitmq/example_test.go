package rabbitmq_test

import (
	"context"
	"fmt"
	"log"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/adapters/rabbitmq"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// Open a connection from a URL: importing the package registers amqp:// and amqps://.
func Example() {
	ctx := context.Background()
	conn, err := transport.Open(ctx, "amqp://guest:guest@localhost:5672/?queue_type=quorum")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)

	// Subscribe first: RabbitMQ drops messages no queue is bound for (with
	// Config.ReportUnroutable, Publish fails with ErrUnroutable instead).
	sub, err := conn.Subscribe(ctx, "orders", "billing", transport.SubscriberConfig{Concurrency: 8})
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		_ = sub.Run(ctx, func(ctx context.Context, m *message.Message) error {
			fmt.Printf("order %s (attempt %d): %s\n", m.ID, m.Attempt, m.Payload)
			return nil
		})
	}()

	// Publish returns once the broker confirmed every message.
	if err := conn.Publish(ctx, "orders", &message.Message{Key: "customer-7", Payload: []byte(`{"total":42}`)}); err != nil {
		log.Fatal(err)
	}
}

// Open a connection with a typed configuration.
func ExampleOpen() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := rabbitmq.Open(ctx, rabbitmq.Config{
		URL:                  "amqps://app:secret@rabbit.internal/prod",
		QueueType:            rabbitmq.Quorum,
		SingleActiveConsumer: true, // per-key order across all instances of the service
		MaxMessageBytes:      1 << 20,
	})
	if err != nil {
		log.Fatal(err) // wraps transport.ErrAccessDenied, ErrUnavailable, …
	}
	defer conn.Close(context.Background())
	drv := conn.Driver().(*rabbitmq.Driver)
	fmt.Printf("%+v\n", drv.Stats())
}

// Reach the native delivery behind a message.
func Example_nativeDelivery() {
	handler := func(ctx context.Context, m *message.Message) error {
		var d amqp.Delivery
		if m.As(&d) {
			fmt.Println(d.RoutingKey, d.Redelivered, d.Headers["x-death"])
		}
		return nil
	}
	_ = handler
}
