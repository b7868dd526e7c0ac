package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/middleware/store/memstore"
	"github.com/courierhq/courier/middleware/store/pgstore"
	"github.com/courierhq/courier/middleware/store/redisstore"
	"github.com/courierhq/courier/middleware/store/storeurl"
)

// Names are the stores Open knows, for tests and benchmarks that run on each.
var Names = []string{"memstore", "redis", "postgres"}

// Open returns the store called name (one of Names) for a test or benchmark, closed when it
// ends: a new memstore, or the test Redis (keys under "courier-test:") or PostgreSQL (migrated)
// from integration/brokers — which skips the test when that server is not configured.
func Open(tb testing.TB, name string) storeurl.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch name {
	case "memstore":
		return memstore.New(memstore.Options{})
	case "redis":
		s, closeFn, err := redisstore.Open(ctx, brokers.Endpoint(tb, brokers.Redis), redisstore.Options{Prefix: "courier-test:"})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = closeFn() })
		return s
	case "postgres":
		s, closeFn, err := pgstore.Open(ctx, brokers.Endpoint(tb, brokers.Postgres))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(closeFn)
		return s
	}
	tb.Fatalf("storetest: no store called %q", name)
	return nil
}
