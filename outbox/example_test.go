package outbox_test

import (
	"context"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/outbox"
	"github.com/courierhq/courier/transport"
)

// The order row and its event commit together; a relay (in this or any other process)
// publishes the event once the transaction committed.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("COURIER_POSTGRES_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if err := outbox.Migrate(ctx, pool); err != nil {
		log.Fatal(err)
	}
	conn, err := transport.Open(ctx, transport.URLFromEnv())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	relay, err := outbox.NewRelay(outbox.Config{DB: pool, Publisher: conn})
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = relay.Run(ctx) }()
	defer relay.Close(ctx)

	tx, err := pool.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "INSERT INTO orders (id) VALUES ($1)", "o-1"); err != nil {
		log.Fatal(err)
	}
	ev := &message.Message{Key: "customer-7", Payload: []byte(`{"order":"o-1"}`)}
	if err := (outbox.Writer{}).Write(ctx, tx, "orders", ev); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	log.Printf("order event %s will be published", ev.ID)
}
