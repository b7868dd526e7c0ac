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
	producer, consumer, err := encryptors(k1, k2)
	if err != nil {
		return err
	}
	tap := &wireTap{}
	pub := conn.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{producer.Publish(), tap.middleware}})
	sub, dlq, err := subscribe(ctx, conn, topic, consumer)
	if err != nil {
		return err
	}
	if err := publish(ctx, conn, pub, producer, topic, tap, k1, k2); err != nil {
		return err
	}
	return consume(ctx, sub, dlq)
}

// encryptors returns the producer's encryptor, with k1 only, and the consumer's, with both.
func encryptors(k1, k2 []byte) (producer, consumer *encryption.Encryptor, err error) {
	producerKeys, err := encryption.NewKeyring("k1", map[string][]byte{"k1": k1})
	if err != nil {
		return nil, nil, err
	}
	// Step 1 of a rotation: consumers learn the new key before anyone encrypts with it.
	consumerKeys, err := encryption.NewKeyring("k1", map[string][]byte{"k1": k1, "k2": k2})
	if err != nil {
		return nil, nil, err
	}
	headers := []string{"card-holder"} // encrypted with the payload
	producer, err = encryption.New(encryption.Config{Keyring: producerKeys, Headers: headers})
	if err != nil {
		return nil, nil, err
	}
	consumer, err = encryption.New(encryption.Config{Keyring: consumerKeys, Headers: headers})
	if err != nil {
		return nil, nil, err
	}
	return producer, consumer, nil
}

// wireTap, as the innermost publish middleware, shows what actually goes to the broker.
type wireTap struct {
	mu   sync.Mutex
	msgs []*message.Message
}

func (t *wireTap) middleware(next message.PublishFunc) message.PublishFunc {
	return func(ctx context.Context, topic string, msgs []*message.Message) error {
		t.mu.Lock()
		t.msgs = append(t.msgs, msgs...)
		t.mu.Unlock()
		return next(ctx, topic, msgs)
	}
}

func (t *wireTap) first() *message.Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.msgs[0]
}

// subscribe subscribes "ledger", decrypting, to topic and a watcher to its dead-letter topic.
func subscribe(ctx context.Context, conn *transport.Conn, topic string, consumer *encryption.Encryptor) (sub, dlq *transport.Subscriber, err error) {
	sub, err = conn.Subscribe(ctx, topic, "ledger", transport.SubscriberConfig{
		Order:      transport.OrderDelivery, // order does not matter here; SQS standard queues keep no other
		Middleware: []message.Middleware{consumer.Consume()}})
	if err != nil {
		return nil, nil, err
	}
	dlq, err = conn.Subscribe(ctx, conn.DefaultDeadLetterTopic(topic), "ledger"+transport.DeadLetterSuffix,
		transport.SubscriberConfig{Order: transport.OrderNone}) // a watcher: order does not matter
	if err != nil {
		return nil, nil, err
	}
	return sub, dlq, nil
}

// publish publishes two payments under k1, shows the first as the broker carries it, rotates
// the producer to k2 and publishes a third, then publishes a tampered copy of the first.
func publish(ctx context.Context, conn *transport.Conn, pub *transport.Publisher, producer *encryption.Encryptor,
	topic string, tap *wireTap, k1, k2 []byte) error {
	// Two payments under k1, published before the consumer runs: they wait in the broker.
	for i := 1; i <= 2; i++ {
		m := &message.Message{Key: "acct-42", Payload: []byte(fmt.Sprintf(`{"payment":%d,"card":"4111 1111 1111 1111"}`, i)),
			Headers: message.Headers{"card-holder": "Ada Lovelace"}}
		if err := pub.Publish(ctx, topic, m); err != nil {
			return err
		}
	}
	w := tap.first()
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
	return conn.Publish(ctx, topic, tampered)
}

// consume runs both subscribers and prints the three decrypted payments and the
// dead-lettered tampered message.
func consume(ctx context.Context, sub, dlq *transport.Subscriber) error {
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
