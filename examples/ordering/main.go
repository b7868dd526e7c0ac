// Command ordering shows per-key order kept across competing consumers: two instances of a
// shipping service share one subscription, so each customer's orders are spread over both,
// yet every customer's orders are handled one at a time, in the order they were placed. Then
// a broker-level duplicate is acknowledged without being handled, and a message that arrives
// before its predecessor waits for it.
//
// It runs on the in-process broker and store by default; COURIER_URL picks another broker, and
// COURIER_STORE_URL (redis://… or postgres://…, see package storeurl) a shared store:
//
//	go run ./examples/ordering
//	COURIER_URL=amqp://guest:guest@127.0.0.1:5672/ COURIER_STORE_URL=redis://127.0.0.1:6379/0 go run ./examples/ordering
package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/storeurl"
	"github.com/courierhq/courier/transport"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ordering:", err)
		os.Exit(1)
	}
}

// journal records what each instance handled, and checks each key's sequence as it goes.
type journal struct {
	mu      sync.Mutex
	last    map[string]int64
	lines   map[string][]string // per key
	handled int
	wrong   int
}

func (j *journal) handler(instance string) message.Handler {
	return func(_ context.Context, m *message.Message) error {
		_, seq, err := ordering.ParseStamp(m.Header(message.HeaderSequence))
		if err != nil {
			return message.Permanent(err)
		}
		j.mu.Lock()
		defer j.mu.Unlock()
		mark := ""
		if seq != j.last[m.Key]+1 {
			j.wrong++
			mark = "  <-- out of order!"
		}
		j.last[m.Key] = seq
		j.lines[m.Key] = append(j.lines[m.Key], fmt.Sprintf("%s#%d@%s%s", m.Payload, seq, instance, mark))
		j.handled++
		return nil
	}
}

func (j *journal) count() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.handled
}

func waitFor(ctx context.Context, what string, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := transport.URLFromEnv()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	conn, err := transport.OpenConfig(ctx, url, transport.ConnConfig{Logger: quiet})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	storeURL := cmp.Or(os.Getenv(storeurl.EnvVar), "memory://")
	store, closeStore, err := storeurl.Open(ctx, storeURL)
	if err != nil {
		return err
	}
	defer closeStore()
	topic := fmt.Sprintf("ordering-orders-%06d", rand.IntN(1_000_000))
	fmt.Printf("broker  %s (%s)\nstore   %s\ntopic   %s\n\n", transport.RedactURL(url), conn.Capabilities().Name, transport.RedactURL(storeURL), topic)

	j := &journal{last: map[string]int64{}, lines: map[string][]string{}}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	if err := startInstances(ctx, runCtx, &wg, conn, store, quiet, topic, j); err != nil {
		return err
	}
	n, err := inOrder(ctx, conn, store, topic, j)
	if err != nil {
		return err
	}
	if err := duplicateAndOvertaken(ctx, conn, topic, j, n); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond) // a duplicate handled would show now
	stop()
	wg.Wait()
	j.mu.Lock()
	defer j.mu.Unlock()
	fmt.Printf("   %-6s %s\n", "dave", strings.Join(j.lines["dave"], " → "))
	fmt.Printf("\n%d events handled, %d out of order\n", j.handled, j.wrong)
	if j.wrong > 0 {
		return fmt.Errorf("%d events handled out of order", j.wrong)
	}
	return nil
}

// startInstances starts two instances of the shipping service, competing on one
// subscription, until runCtx ends. Each builds its own Ordering (as separate processes
// would); the store is what they share.
func startInstances(ctx, runCtx context.Context, wg *sync.WaitGroup, conn *transport.Conn, store storeurl.Store,
	logger *slog.Logger, topic string, j *journal) error {
	for _, instance := range []string{"A", "B"} {
		ord, err := ordering.New(ordering.Config{Store: store, Logger: logger})
		if err != nil {
			return err
		}
		// A small prefetch, so that the two instances share every customer's events.
		// OrderDelivery: the middleware restores publish order itself, so the subscriber takes
		// the broker's delivery order as it comes — on every broker, including SQS standard
		// queues (which refuse OrderPublish) and Pub/Sub (where OrderPublish turns on message
		// ordering, which would hold a key's later message back behind the one that waits).
		sub, err := conn.Subscribe(ctx, topic, "shipping", transport.SubscriberConfig{Concurrency: 2, Prefetch: 2,
			Order: transport.OrderDelivery, Middleware: []message.Middleware{ord.Consume()}})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sub.Run(runCtx, j.handler(instance)); err != nil {
				fmt.Fprintln(os.Stderr, "subscriber:", err)
			}
		}()
	}
	return nil
}

// inOrder publishes three customers' order events through the publisher's Ordering, waits
// until all are handled and prints each customer's; it returns how many it published.
func inOrder(ctx context.Context, conn *transport.Conn, store storeurl.Store, topic string, j *journal) (int, error) {
	// The publisher's Ordering stamps each customer's next sequence number.
	ord, err := ordering.New(ordering.Config{Store: store, KeyHeader: "customer"})
	if err != nil {
		return 0, err
	}
	pub := conn.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{ord.Publish()}})
	customers := []string{"alice", "bob", "carol"}
	steps := []string{"placed", "paid", "packed", "shipped", "delivered"}
	fmt.Println("1. 3 customers × 5 order events, published in order, consumed by instances A and B")
	var batch []*message.Message
	for _, step := range steps {
		for _, c := range customers {
			batch = append(batch, &message.Message{Payload: []byte(step), Headers: message.Headers{"customer": c}})
		}
	}
	if err := pub.Publish(ctx, topic, batch...); err != nil {
		return 0, err
	}
	if err := waitFor(ctx, "the order events", func() bool { return j.count() == len(batch) }); err != nil {
		return 0, err
	}
	j.mu.Lock()
	for _, c := range customers {
		fmt.Printf("   %-6s %s\n", c, strings.Join(j.lines[c], " → "))
	}
	j.mu.Unlock()
	return len(batch), nil
}

// duplicateAndOvertaken publishes dave's events stamped by hand: one twice, and one before its
// predecessor; it waits until the three distinct ones are handled (n were handled before).
func duplicateAndOvertaken(ctx context.Context, conn *transport.Conn, topic string, j *journal, n int) error {
	// A stamped message sent again as it was (what a broker-level duplicate looks like), and
	// a message whose predecessor arrives after it.
	fmt.Println("\n2. a duplicate, and a message that overtook its predecessor")
	stamp := func(customer string, seq int64, payload string) *message.Message {
		return &message.Message{Key: customer, Payload: []byte(payload),
			Headers: message.Headers{message.HeaderSequence: ordering.FormatStamp(42, seq)}}
	}
	// A new epoch (42) for dave: a counter as the publish half would have made it.
	for _, m := range []*message.Message{
		stamp("dave", 1, "placed"), stamp("dave", 1, "placed"), // the second is a duplicate
		stamp("dave", 3, "packed"), stamp("dave", 2, "paid"), // 3 overtook 2
	} {
		if err := conn.Publish(ctx, topic, m); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return waitFor(ctx, "dave's events", func() bool { return j.count() == n+3 })
}
