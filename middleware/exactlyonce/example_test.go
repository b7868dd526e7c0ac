package exactlyonce_test

import (
	"context"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/exactlyonce"
	"github.com/courierhq/courier/outbox"
	"github.com/courierhq/courier/transport"
)

// The charge, the outgoing payment event and the processed mark commit in one transaction:
// however often "orders" delivers a message, it is charged once.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("COURIER_POSTGRES_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	eo, err := exactlyonce.New(exactlyonce.Config{DB: pool})
	if err != nil {
		log.Fatal(err)
	}
	if err := eo.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	conn, err := transport.Open(ctx, transport.URLFromEnv())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	sub, err := conn.Subscribe(ctx, "orders", "billing", transport.SubscriberConfig{
		Middleware: []message.Middleware{eo.Consume()},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = sub.Run(ctx, func(ctx context.Context, m *message.Message) error {
		tx, _ := exactlyonce.TxFromContext(ctx)
		if _, err := tx.Exec(ctx, "INSERT INTO charges (order_id) VALUES ($1)", string(m.Payload)); err != nil {
			return err
		}
		return outbox.Writer{}.Write(ctx, tx, "payments", &message.Message{Key: m.Key, Payload: m.Payload})
	})
}
