package pgstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/pgstore"
	"github.com/courierhq/courier/middleware/store/storetest"
)

func TestMain(m *testing.M) {
	// pgxpool's health check goroutine stops when the pool is closed; every test closes its pools.
	goleak.VerifyTestMain(m)
}

var migrateOnce sync.Once

// open connects a new pool (two calls model two processes) and migrates once.
func open(t *testing.T) *pgstore.Store {
	t.Helper()
	url := brokers.Endpoint(t, brokers.Postgres)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := pgstore.New(pool)
	var merr error
	migrateOnce.Do(func() { merr = s.Migrate(ctx) })
	if merr != nil {
		t.Fatal(merr)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Idempotency(t, func(t *testing.T) idempotency.Store { return open(t) })
	storetest.Ordering(t, func(t *testing.T) ordering.Store { return open(t) })
}

// TestMigrateConcurrentlyAndAgain: instances starting together all succeed, and so does a
// second migration.
func TestMigrateConcurrentlyAndAgain(t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		s := open(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Migrate(context.Background()); err != nil {
				t.Errorf("Migrate: %v", err)
			}
		}()
	}
	wg.Wait()
}

func TestPurgeDeletesExpiredRows(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	key := "purge/" + time.Now().Format(time.RFC3339Nano)
	if _, err := s.Claim(ctx, key, "a", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	n, err := s.Purge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 {
		t.Errorf("Purge deleted %d rows; want at least the expired claim", n)
	}
	c, err := s.Claim(ctx, key, "b", time.Minute)
	if err != nil || c.Status != idempotency.Acquired {
		t.Errorf("claim after purge: %v %v; want acquired", c.Status, err)
	}
}

func TestUnreachableDatabaseFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, "postgres://u:p@127.0.0.1:1/x?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := pgstore.New(pool)
	if _, err := s.Claim(ctx, "k", "o", time.Second); err == nil {
		t.Error("Claim against a closed port succeeded")
	}
	if err := s.Reserve(ctx, []ordering.Reservation{{Key: "a", Count: 1}, {Key: "b", Count: 1}}, time.Minute); err == nil {
		t.Error("Reserve against a closed port succeeded")
	}
}
