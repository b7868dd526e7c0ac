// Command schema shows schema validation on both sides of the broker. It runs on the
// in-process broker by default and on any broker named by COURIER_URL:
//
//	go run ./examples/schema
//	COURIER_URL=amqp://guest:guest@127.0.0.1:5672/ go run ./examples/schema
//
// A JSON Schema is bound to the topic. The publisher refuses a batch holding an invalid order
// (and says which message broke which rule); an invalid order published without the
// middleware, as a legacy producer would, is dead-lettered by the consumer with the violation
// in a header.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/schema"
	"github.com/courierhq/courier/transport"
)

const orderSchema = `{
  "type": "object",
  "required": ["id", "customer", "total"],
  "properties": {
    "id":       {"type": "integer", "minimum": 1},
    "customer": {"type": "string", "minLength": 1},
    "total":    {"type": "number", "minimum": 0}
  }
}`

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "schema:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := transport.URLFromEnv()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	conn, err := transport.OpenConfig(ctx, url, transport.ConnConfig{Logger: quiet})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	topic := fmt.Sprintf("schema-orders-%06d", rand.IntN(1_000_000))
	fmt.Printf("broker  %s (%s)\ntopic   %s\n\n", transport.RedactURL(url), conn.Capabilities().Name, topic)

	// One registry and one validator serve both halves.
	reg := schema.NewRegistry()
	if err := reg.Bind(topic, schema.MustJSON("order.v1", []byte(orderSchema))); err != nil {
		return err
	}
	v, err := schema.New(schema.Config{Registry: reg})
	if err != nil {
		return err
	}
	sub, dlq, err := subscribe(ctx, conn, topic, v)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	handled, dead := make(chan string, 10), make(chan *message.Message, 10)
	runCtx, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = sub.Run(runCtx, func(_ context.Context, m *message.Message) error { handled <- string(m.Payload); return nil })
	}()
	go func() {
		defer wg.Done()
		_ = dlq.Run(runCtx, func(_ context.Context, m *message.Message) error { dead <- m.Clone(); return nil })
	}()

	pub := conn.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{v.Publish()}})
	if err := publishValid(ctx, pub, topic, handled); err != nil {
		return err
	}
	if err := publishInvalid(ctx, pub, topic); err != nil {
		return err
	}
	return publishLegacy(ctx, conn, topic, handled, dead)
}

// subscribe subscribes "billing", validating, to topic and a watcher to its dead-letter topic.
func subscribe(ctx context.Context, conn *transport.Conn, topic string, v *schema.Validator) (sub, dlq *transport.Subscriber, err error) {
	sub, err = conn.Subscribe(ctx, topic, "billing", transport.SubscriberConfig{
		Order:      transport.OrderDelivery, // order does not matter here; SQS standard queues keep no other
		Middleware: []message.Middleware{v.Consume()}})
	if err != nil {
		return nil, nil, err
	}
	dlq, err = conn.Subscribe(ctx, conn.DefaultDeadLetterTopic(topic), "billing"+transport.DeadLetterSuffix,
		transport.SubscriberConfig{Order: transport.OrderNone}) // a watcher: order does not matter
	if err != nil {
		return nil, nil, err
	}
	return sub, dlq, nil
}

// publishValid shows step 1: valid orders pass.
func publishValid(ctx context.Context, pub *transport.Publisher, topic string, handled <-chan string) error {
	if err := pub.Publish(ctx, topic,
		message.New([]byte(`{"id":1,"customer":"ada","total":19.9}`)),
		message.New([]byte(`{"id":2,"customer":"grace","total":5}`))); err != nil {
		return err
	}
	for i := 0; i < 2; i++ {
		fmt.Printf("handled        %s\n", <-handled)
	}
	return nil
}

// publishInvalid shows step 2: a batch with an invalid order is refused whole, nothing of it
// is sent, and the error says which message broke which rule.
func publishInvalid(ctx context.Context, pub *transport.Publisher, topic string) error {
	err := pub.Publish(ctx, topic,
		message.New([]byte(`{"id":3,"customer":"linus","total":7}`)),
		message.New([]byte(`{"id":4,"customer":"","total":-1}`)))
	var pe *transport.PublishError
	if !errors.As(err, &pe) {
		return fmt.Errorf("expected the batch to be refused, got %v", err)
	}
	fmt.Printf("\nrefused batch  %d of %d messages invalid, nothing sent:\n", len(pe.Failed), pe.Total)
	for _, f := range pe.Failed {
		var ve *schema.ValidationError
		errors.As(f.Err, &ve)
		for _, viol := range ve.Violations {
			fmt.Printf("               message %d: at %q rule %s: %s\n", f.Index, viol.InstanceLocation, viol.KeywordLocation, viol.Message)
		}
	}
	return nil
}

// publishLegacy shows step 3: a producer without the middleware sends an invalid order
// anyway; the consumer dead-letters it at once, with the violation in a header, and never
// hands it to the handler.
func publishLegacy(ctx context.Context, conn *transport.Conn, topic string, handled <-chan string, dead <-chan *message.Message) error {
	if err := conn.Publish(ctx, topic, &message.Message{ID: "legacy-5", Payload: []byte(`{"id":5,"customer":"barbara","total":"12.50"}`)}); err != nil {
		return err
	}
	select {
	case m := <-dead:
		fmt.Printf("\ndead-lettered  %s (attempts %s, permanent %s)\n", m.ID,
			m.Header(message.HeaderDeadLetterAttempts), m.Header(message.HeaderDeadLetterPermanent))
		fmt.Printf("               %s: %s\n", message.HeaderSchemaViolation, m.Header(message.HeaderSchemaViolation))
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case p := <-handled:
		return fmt.Errorf("an invalid order reached the handler: %s", p)
	case <-time.After(200 * time.Millisecond):
	}
	return nil
}
