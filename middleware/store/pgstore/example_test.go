package pgstore_test

import (
	"context"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/pgstore"
)

// One PostgreSQL store serves both middleware; Migrate creates its tables once (several
// instances may call it at start-up). Purge expired rows from a periodic job.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("COURIER_POSTGRES_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store := pgstore.New(pool)
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	idem, err := idempotency.New(idempotency.Config{Store: store})
	if err != nil {
		log.Fatal(err)
	}
	ord, err := ordering.New(ordering.Config{Store: store})
	if err != nil {
		log.Fatal(err)
	}
	_, _ = idem.Consume(), ord.Consume() // into transport.SubscriberConfig.Middleware
}
