package kafka_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"time"

	"github.com/courierhq/courier/adapters/kafka"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// Open a connection from a URL, publish a keyed message and consume it. Messages with the
// same key land on the same partition and are handled in order.
func Example() {
	ctx := context.Background()
	conn, err := transport.Open(ctx, "kafka://127.0.0.1:9092?partitions=6")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)

	sub, err := conn.Subscribe(ctx, "orders", "billing", transport.SubscriberConfig{Concurrency: 16})
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		_ = sub.Run(ctx, func(ctx context.Context, m *message.Message) error {
			fmt.Printf("order %s for %s: %s\n", m.ID, m.Key, m.Payload)
			return nil // committed once every earlier record of the partition is done too
		})
	}()

	err = conn.Publish(ctx, "orders", &message.Message{Key: "customer-7", Payload: []byte(`{"total":"19.90"}`)})
	if err != nil {
		log.Fatal(err)
	}
}

// Build the configuration in code: SASL/SCRAM over TLS, topics never created by Courier.
func ExampleOpen() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := kafka.Open(ctx, kafka.Config{
		Brokers:              []string{"kafka-1.internal:9093", "kafka-2.internal:9093"},
		TLS:                  &tls.Config{MinVersion: tls.VersionTLS12},
		SASL:                 &kafka.SASL{Mechanism: kafka.SASLScramSHA512, Username: "billing", Password: "…"},
		DisableTopicCreation: true,
		Compression:          kafka.CompressionZstd,
	})
	if err != nil {
		log.Fatal(err) // wraps transport.ErrUnavailable or ErrAccessDenied
	}
	defer conn.Close(ctx)
}
