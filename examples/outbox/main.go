// Command outbox shows the transactional outbox and exactly-once processing with
// PostgreSQL: orders are placed in transactions that write the order row and its
// "order placed" event together (one is rolled back: its event never leaves); a relay moves
// the committed events to the broker; a billing consumer charges each order in one
// transaction with its processed mark and its own outgoing "payment" event — even when its
// first try fails after writing, and when the broker delivers an order twice.
//
// It needs PostgreSQL (COURIER_POSTGRES_URL) and runs on the in-process broker unless
// COURIER_URL names another. Without COURIER_POSTGRES_URL it says so and exits 0:
//
//	COURIER_POSTGRES_URL=postgres://postgres:postgres@127.0.0.1:5432/courier?sslmode=disable go run ./examples/outbox
package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/exactlyonce"
	"github.com/courierhq/courier/outbox"
	"github.com/courierhq/courier/transport"
)

const orders = 20

func main() {
	pg := os.Getenv("COURIER_POSTGRES_URL")
	if pg == "" {
		fmt.Println("outbox: this example needs PostgreSQL; set COURIER_POSTGRES_URL (e.g. postgres://postgres:postgres@127.0.0.1:5432/courier?sslmode=disable). Skipped.")
		return
	}
	if err := run(pg); err != nil {
		fmt.Fprintln(os.Stderr, "outbox:", err)
		os.Exit(1)
	}
}

func run(pg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	pool, drop, err := openSchema(ctx, pg)
	if err != nil {
		return err
	}
	defer drop()
	conn, err := transport.OpenConfig(ctx, transport.URLFromEnv(), transport.ConnConfig{Logger: quiet})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	id := rand.IntN(1_000_000)
	ordersTopic, paymentsTopic := fmt.Sprintf("outbox-orders-%06d", id), fmt.Sprintf("outbox-payments-%06d", id)
	fmt.Printf("broker  %s (%s)\ntopics  %s → %s\n\n", transport.RedactURL(transport.URLFromEnv()), conn.Capabilities().Name, ordersTopic, paymentsTopic)

	payments, err := watchPayments(ctx, conn, paymentsTopic)
	if err != nil {
		return err
	}
	if err := startBilling(ctx, conn, pool, ordersTopic, quiet); err != nil {
		return err
	}
	relay, err := outbox.NewRelay(outbox.Config{DB: pool, Publisher: conn, PollInterval: 200 * time.Millisecond, Logger: quiet,
		// A row the broker refuses for good (too large, invalid topic) is moved to
		// courier_outbox_dead instead of blocking its key; say so.
		OnDeadLetter: func(_ context.Context, d outbox.DeadLetter) {
			fmt.Printf("dead-lettered  %s on %s: %s (%v)\n", d.ID, d.Topic, d.Reason, d.Err)
		}})
	if err != nil {
		return err
	}
	go func() { _ = relay.Run(ctx) }()
	defer relay.Close(context.Background())

	first, err := placeOrders(ctx, pool, ordersTopic)
	if err != nil {
		return err
	}
	// A redelivery, as after a relay crash: the same message ID again.
	if err := conn.Publish(ctx, ordersTopic, &message.Message{ID: first.ID, Key: first.Key, Payload: first.Payload}); err != nil {
		return err
	}
	return report(ctx, pool, payments)
}

// openSchema connects with a fresh schema first on the search_path (so that the example's
// tables are its own), migrates the outbox and the processed marks, and creates the
// application's tables.
func openSchema(ctx context.Context, pg string) (*pgxpool.Pool, func(), error) {
	schema := fmt.Sprintf("courier_example_%06d", rand.IntN(1_000_000))
	u, err := url.Parse(pg)
	if err != nil {
		return nil, nil, fmt.Errorf("COURIER_POSTGRES_URL: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		return nil, nil, err
	}
	drop := func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		pool.Close()
	}
	eo, _ := exactlyonce.New(exactlyonce.Config{DB: pool})
	for _, step := range []func() error{
		func() error { _, err := pool.Exec(ctx, "CREATE SCHEMA "+schema); return err },
		func() error { return outbox.Migrate(ctx, pool) },
		func() error { return eo.Migrate(ctx) },
		func() error {
			_, err := pool.Exec(ctx, `CREATE TABLE orders (id text PRIMARY KEY, amount integer NOT NULL);
				CREATE TABLE charges (order_id text NOT NULL, amount integer NOT NULL)`) // no unique constraint: duplicates would show
			return err
		},
	} {
		if err := step(); err != nil {
			drop()
			return nil, nil, err
		}
	}
	return pool, drop, nil
}

// placeOrders commits orders transactions, each writing the order row and its event, and
// rolls one more back. It returns the first event.
func placeOrders(ctx context.Context, pool *pgxpool.Pool, topic string) (*message.Message, error) {
	var first *message.Message
	for i := range orders + 1 {
		orderID := fmt.Sprintf("order-%02d", i)
		tx, err := pool.Begin(ctx)
		if err != nil {
			return nil, err
		}
		ev := &message.Message{Key: "customer-" + fmt.Sprint(i%3), Payload: []byte(orderID)}
		_, err = tx.Exec(ctx, "INSERT INTO orders (id, amount) VALUES ($1, $2)", orderID, 10*(i+1))
		if err == nil {
			err = outbox.Writer{}.Write(ctx, tx, topic, ev)
		}
		if err == nil && i == orders {
			fmt.Printf("placed  %s, then rolled back: its event is never published\n", orderID)
			err = tx.Rollback(ctx)
		} else if err == nil {
			err = tx.Commit(ctx)
		}
		if err != nil {
			_ = tx.Rollback(ctx)
			return nil, err
		}
		if first == nil {
			first = ev
		}
	}
	fmt.Printf("placed  %d orders, each with its event in the same transaction\n", orders)
	return first, nil
}
