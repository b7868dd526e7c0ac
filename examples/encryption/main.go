// Command encryption shows end-to-end payload encryption: what the broker carries, key
// rotation with messages in flight, and what happens to a tampered message. It runs on the
// in-process broker by default and on any broker named by COURIER_URL:
//
//	go run ./examples/encryption
//	COURIER_URL=amqp://guest:guest@127.0.0.1:5672/ go run ./examples/encryption
package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/encryption"
	"github.com/courierhq/courier/transport"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "encryption:", err)
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
	topic := fmt.Sprintf("encryption-payments-%06d", rand.IntN(1_000_000))
	fmt.Printf("broker  %s (%s)\ntopic   %s\n\n", transport.RedactURL(url), conn.Capabilities().Name, topic)

	// Keys would come from a secret store; two random ones here.
	k1, k2 := encryption.GenerateKey(), encryption.GenerateKey()
	producerKeys, err := encryption.NewKeyring("k1", map[string][]byte{"k1": k1})
	if err != nil {
		return err
	}
	// Step 1 of a rotation: consumers learn the new key before anyone encrypts with it.
	consumerKeys, err := encryption.NewKeyring("k1", map[string][]byte{"k1": k1, "k2": k2})
	if err != nil {
		return err
	}
	headers := []string{"card-holder"} // encrypted with the payload
	producer, err := encryption.New(encryption.Config{Keyring: producerKeys, Headers: headers})
	if err != nil {
		return err
	}
	consumer, err := encryption.New(encryption.Config{Keyring: consumerKeys, Headers: headers})
	if err != nil {
		return err
	}

	// The innermost publish middleware shows what actually goes to the broker.
	var wireMu sync.Mutex
	var wire []*message.Message
	onTheWire := func(next message.PublishFunc) message.PublishFunc {
		return func(ctx context.Context, topic string, msgs []*message.Message) error {
			wireMu.Lock()
			wire = append(wire, msgs...)
			wireMu.Unlock()
			return next(ctx, topic, msgs)
		}
	}
	pub := conn.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{producer.Publish(), onTheWire}})

	sub, err := conn.Subscribe(ctx, topic, "ledger", transport.SubscriberConfig{
		Order:      transport.OrderDelivery, // order does not matter here; SQS standard queues keep no other
		Middleware: []message.Middleware{consumer.Consume()}})
	if err != nil {
		return err
	}
	dlq, err := conn.Subscribe(ctx, conn.DefaultDeadLetterTopic(topic), "ledger"+transport.DeadLetterSuffix,
		transport.SubscriberConfig{Order: transport.OrderNone}) // a watcher: order does not matter
	if err != nil {
		return err
	}

	// Two payments under k1, published before the consumer runs: they wait in the broker.
	for i := 1; i <= 2; i++ {
		m := &message.Message{Key: "acct-42", Payload: []byte(fmt.Sprintf(`{"payment":%d,"card":"4111 1111 1111 1111"}`, i)),
			Headers: message.Headers{"card-holder": "Ada Lovelace"}}
		if err := pub.Publish(ctx, topic, m); err != nil {
			return err
		}
	}
	wireMu.Lock()
	w := wire[0]
	wireMu.Unlock()
	fmt.Printf("on the wire    payload %s… (%d bytes)\n", hex.EncodeToString(w.Payload[:16]), len(w.Payload))
	fmt.Printf("               headers %v\n\n", w.Headers)

	// Step 2: the producer switches to k2 while the k1 messages are still in flight.
	rotated, err := encryption.NewKeyring("k2", map[string][]byte{"k1": k1, "k2": k2})
	if err != nil {
		return err
	}
	if err := producer.SetKeyring(rotated); err != nil {
		return err
	}
	if err := pub.Publish(ctx, topic, &message.Message{Key: "acct-42", Payload: []byte(`{"payment":3,"card":"4111 1111 1111 1111"}`),
		Headers: message.Headers{"card-holder": "Ada Lovelace"}}); err != nil {
		return err
	}

	// A tampered copy of the first message, published without the middleware.
	tampered := &message.Message{ID: "tampered", Key: w.Key, Headers: w.Headers, Payload: append([]byte(nil), w.Payload...)}
	tampered.Payload[20] ^= 0x01
	if err := conn.Publish(ctx, topic, tampered); err != nil {
		return err
	}

	handled := make(chan string, 10)
	dead := make(chan *message.Message, 10)
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = sub.Run(runCtx, func(_ context.Context, m *message.Message) error {
			handled <- fmt.Sprintf("%s  card-holder=%q", m.Payload, m.Header("card-holder"))
			return nil
		})
	}()
	go func() {
		defer wg.Done()
		_ = dlq.Run(runCtx, func(_ context.Context, m *message.Message) error { dead <- m.Clone(); return nil })
	}()
	for i := 0; i < 3; i++ {
		select {
		case s := <-handled:
			fmt.Printf("decrypted      %s\n", s)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case m := <-dead:
		fmt.Printf("\ndead-lettered  %s, still encrypted (%d bytes), permanent %s\n", m.ID, len(m.Payload), m.Header(message.HeaderDeadLetterPermanent))
		fmt.Printf("               reason: %s\n", m.Header(message.HeaderDeadLetterReason))
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}
