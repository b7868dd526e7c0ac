// Command quickstart is a small order-processing flow on Courier. It runs on the in-process
// broker by default and on any broker named by COURIER_URL:
//
//	go run ./examples/quickstart
//	COURIER_URL=amqp://guest:guest@127.0.0.1:5672/ go run ./examples/quickstart
//
// It publishes 20 orders keyed by customer, handles them with 4 workers (one customer's orders
// in order, where the broker can deliver them so; on an SQS standard queue, which cannot, it
// says so and continues in delivery order), and shows the three outcomes a handler can have: success, a transient failure that
// is retried, and a failure that ends in the dead-letter topic — either at once (a permanent
// error) or once the retries run out.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"time"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/codec"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// Order is the payload, JSON-encoded.
type Order struct {
	ID       int     `json:"id"`
	Customer string  `json:"customer"`
	Total    float64 `json:"total"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

const total = 20 // orders published

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := transport.URLFromEnv()
	// Courier logs retries and dead-letters; this demo prints its own summary instead.
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	conn, err := transport.OpenConfig(ctx, url, transport.ConnConfig{Logger: quiet})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	// Fresh names per run, so a persistent broker does not replay an earlier run.
	topic := fmt.Sprintf("quickstart-orders-%06d", rand.IntN(1_000_000))
	fmt.Printf("broker  %s (%s)\ntopic   %s\n\n", transport.RedactURL(url), conn.Capabilities().Name, topic)

	sub, dlq, err := subscribe(ctx, conn, topic)
	if err != nil {
		return err
	}
	t := newTally()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, r := range []struct {
		s *transport.Subscriber
		h message.Handler
	}{{sub, t.billing()}, {dlq, t.watchDLQ()}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.s.Run(runCtx, r.h); err != nil {
				fmt.Fprintln(os.Stderr, "subscriber:", err)
			}
		}()
	}

	if err := publishOrders(ctx, conn, topic); err != nil {
		return err
	}
	select {
	case <-t.done:
	case <-ctx.Done():
		return fmt.Errorf("not every order was accounted for: %w", ctx.Err())
	}
	stop()
	wg.Wait()
	t.report()
	return nil
}

// subscribe subscribes "billing" to topic, keyed orders in order where the broker can, and a
// watcher to its dead-letter topic.
func subscribe(ctx context.Context, conn *transport.Conn, topic string) (sub, dlq *transport.Subscriber, err error) {
	cfg := transport.SubscriberConfig{
		Concurrency: 4,
		Retry:       transport.RetryPolicy{MaxAttempts: 3, InitialDelay: 50 * time.Millisecond},
	}
	sub, err = conn.Subscribe(ctx, topic, "billing", cfg)
	if errors.Is(err, transport.ErrUnsupported) {
		// The broker cannot deliver one customer's orders in the order they were placed (an
		// SQS standard queue): say so, and take them in the order it delivers them. The
		// ordering middleware (examples/ordering) or a FIFO queue would keep publish order.
		fmt.Printf("note    %v\n        continuing with transport.OrderDelivery: a customer's orders may be handled out of order\n\n", err)
		cfg.Order = transport.OrderDelivery
		sub, err = conn.Subscribe(ctx, topic, "billing", cfg)
	}
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

// publishOrders publishes the orders in one batch, keyed by customer; order 7 has a negative
// total.
func publishOrders(ctx context.Context, conn *transport.Conn, topic string) error {
	customers := []string{"ada", "grace", "linus", "barbara"}
	batch := make([]*message.Message, 0, total)
	for id := 1; id <= total; id++ {
		o := Order{ID: id, Customer: customers[id%len(customers)], Total: float64(id) * 10}
		if id == 7 {
			o.Total = -5
		}
		m := codec.MustEncode(codec.JSON, o)
		m.Key = o.Customer // one customer's orders are handled in order
		batch = append(batch, m)
	}
	if err := conn.Publish(ctx, topic, batch...); err != nil {
		return err
	}
	fmt.Printf("published  %d orders for %d customers in one batch\n", total, len(customers))
	return nil
}

// tally is what the handlers saw; done closes once every order is handled or dead-lettered.
type tally struct {
	mu           sync.Mutex
	handled      map[string][]int // customer → order IDs, in handling order
	attempts     map[int]int      // order ID → attempts seen
	deadLettered map[int]string   // order ID → reason
	done         chan struct{}
}

func newTally() *tally {
	return &tally{handled: map[string][]int{}, attempts: map[int]int{}, deadLettered: map[int]string{}, done: make(chan struct{})}
}

// check closes done once every order is accounted for; t.mu is held.
func (t *tally) check() {
	n := len(t.deadLettered)
	for _, ids := range t.handled {
		n += len(ids)
	}
	if n == total {
		close(t.done)
	}
}

// billing handles an order: a negative total fails permanently, order 13 recovers on its
// third attempt and order 17 never does.
func (t *tally) billing() message.Handler {
	return codec.Handle(codec.JSON, func(ctx context.Context, o Order, m *message.Message) error {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.attempts[o.ID] = m.Attempt
		switch {
		case o.Total < 0:
			return message.Permanent(fmt.Errorf("order %d: negative total %.2f", o.ID, o.Total))
		case o.ID == 13 && m.Attempt < 3:
			return errors.New("payment gateway timeout") // recovers on the third attempt
		case o.ID == 17:
			return errors.New("card declined by issuer") // never recovers: retries run out
		}
		t.handled[o.Customer] = append(t.handled[o.Customer], o.ID)
		t.check()
		return nil
	})
}

// watchDLQ records each dead-lettered order with its reason.
func (t *tally) watchDLQ() message.Handler {
	return codec.Handle(codec.JSON, func(ctx context.Context, o Order, m *message.Message) error {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.deadLettered[o.ID] = fmt.Sprintf("%s (after %s attempt(s))", m.Header(message.HeaderDeadLetterReason), m.Header(message.HeaderDeadLetterAttempts))
		t.check()
		return nil
	})
}

// report prints the orders handled per customer, the retried ones and the dead-lettered ones.
func (t *tally) report() {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, ids := range t.handled {
		n += len(ids)
	}
	fmt.Printf("handled    %d orders\n", n)
	names := make([]string, 0, len(t.handled))
	for c := range t.handled {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		fmt.Printf("           %-8s %v\n", c, t.handled[c])
	}
	var retried []string
	for id, a := range t.attempts {
		if a > 1 {
			retried = append(retried, fmt.Sprintf("order %d (%d attempts)", id, a))
		}
	}
	sort.Strings(retried)
	fmt.Printf("retried    %v\n", retried)
	fmt.Printf("dead-lettered %d\n", len(t.deadLettered))
	ids := make([]int, 0, len(t.deadLettered))
	for id := range t.deadLettered {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		fmt.Printf("           order %d: %s\n", id, t.deadLettered[id])
	}
}
