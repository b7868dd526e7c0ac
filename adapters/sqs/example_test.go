package sqs_test

import (
	"context"
	"fmt"
	"log"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/courierhq/courier/adapters/sqs"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// Open a connection by URL, publish to a FIFO queue with ordering keys, and consume it.
func Example() {
	ctx := context.Background()
	// Region and credentials come from the AWS chain; endpoint= points at an emulator.
	conn, err := transport.Open(ctx, "sqs://?region=eu-west-1&endpoint=http://127.0.0.1:9324")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)

	// The queue "orders.fifo" is created if missing. Key → MessageGroupId: one customer's
	// orders are stored and handled in order.
	err = conn.Publish(ctx, "orders.fifo",
		&message.Message{Key: "customer-7", Payload: []byte(`{"order":1}`)},
		&message.Message{Key: "customer-7", Payload: []byte(`{"order":2}`)},
	)
	if err != nil {
		log.Fatal(err)
	}

	sub, err := conn.Subscribe(ctx, "orders.fifo", "billing", transport.SubscriberConfig{Concurrency: 8})
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	_ = sub.Run(runCtx, func(ctx context.Context, m *message.Message) error {
		var rec types.Message
		if m.As(&rec) { // the SQS record behind the message
			log.Printf("order %s (attempt %d, SQS id %s)", m.Payload, m.Attempt, *rec.MessageId)
		}
		return nil // deleted from the queue
	})
}

// A typed configuration: a 2-minute lease renewed while handlers run, and no queue creation.
func ExampleOpen() {
	ctx := context.Background()
	conn, err := sqs.Open(ctx, sqs.Config{
		Region:            "eu-west-1",
		VisibilityTimeout: 2 * time.Minute,
		DisableCreate:     true, // queues are managed elsewhere (Terraform, CloudFormation)
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	fmt.Println(conn.DefaultDeadLetterTopic("orders.fifo"))
	// Output: orders-dlq.fifo
}

func ExampleConfigFromURL() {
	u, _ := url.Parse("sqs://?region=us-east-1&endpoint=http://127.0.0.1:9324&create=false&visibility_timeout=90")
	cfg, err := sqs.ConfigFromURL(u)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Region, cfg.Endpoint, cfg.DisableCreate, cfg.VisibilityTimeout)
	// Output: us-east-1 http://127.0.0.1:9324 true 1m30s
}
