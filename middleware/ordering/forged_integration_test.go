//go:build integration

package ordering_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/pgstore"
	"github.com/courierhq/courier/middleware/store/redisstore"
)

// The forged-stamp tests run on the shared stores too.
func init() {
	forgedStores = append(forgedStores,
		struct {
			name string
			open func(t testing.TB) ordering.Store
		}{"redis", func(t testing.TB) ordering.Store {
			s, closeFn, err := redisstore.Open(context.Background(), brokers.Endpoint(t, brokers.Redis), redisstore.Options{Prefix: "courier-forged-test:"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = closeFn() })
			return s
		}},
		struct {
			name string
			open func(t testing.TB) ordering.Store
		}{"postgres", func(t testing.TB) ordering.Store {
			pool, err := pgxpool.New(context.Background(), brokers.Endpoint(t, brokers.Postgres))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			s := pgstore.New(pool)
			if err := s.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			return s
		}},
	)
}
