package exactlyonce_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/exactlyonce"
	"github.com/courierhq/courier/outbox"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// setup returns a pool on a fresh schema holding courier_processed, the outbox and an
// effects table without any unique constraint.
func setup(t *testing.T) (*pgxpool.Pool, *exactlyonce.ExactlyOnce) {
	t.Helper()
	base := brokers.Endpoint(t, brokers.Postgres)
	ctx := context.Background()
	schema := fmt.Sprintf("eo_test_%d_%06d", time.Now().Unix(), rand.IntN(1_000_000))
	admin, err := pgxpool.New(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if a, err := pgxpool.New(context.Background(), base); err == nil {
			_, _ = a.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			a.Close()
		}
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	eo, err := exactlyonce.New(exactlyonce.Config{DB: pool})
	if err != nil {
		t.Fatal(err)
	}
	if err := eo.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := outbox.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "CREATE TABLE effects (id text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	return pool, eo
}

func count(t *testing.T, pool *pgxpool.Pool, q string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// effect is a handler that writes one effect row and one outbox row in the middleware's
// transaction, then returns fail's result.
func effect(calls *atomic.Int32, fail func() error) message.Handler {
	return func(ctx context.Context, m *message.Message) error {
		calls.Add(1)
		tx, ok := exactlyonce.TxFromContext(ctx)
		if !ok {
			return errors.New("no transaction in context")
		}
		if _, err := tx.Exec(ctx, "INSERT INTO effects (id) VALUES ($1)", m.ID); err != nil {
			return err
		}
		if err := (outbox.Writer{}).Write(ctx, tx, "out", &message.Message{Key: m.ID, Payload: []byte("reply")}); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond) // widen the window for concurrent copies
		return fail()
	}
}

func msg(id string) *message.Message {
	return &message.Message{ID: id, Topic: "orders", Subscription: "billing", Payload: []byte("x")}
}

func TestRedeliveryIsNotHandledAgain(t *testing.T) {
	pool, eo := setup(t)
	var calls atomic.Int32
	h := eo.Consume()(effect(&calls, func() error { return nil }))
	for range 3 {
		if err := h(context.Background(), msg("m1")); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("handler called %d times for one message delivered 3 times, want 1", calls.Load())
	}
	if n := count(t, pool, "SELECT count(*) FROM effects WHERE id = 'm1'"); n != 1 {
		t.Fatalf("%d effects, want 1", n)
	}
	if n := count(t, pool, "SELECT count(*) FROM courier_outbox"); n != 1 {
		t.Fatalf("%d outbox rows, want 1", n)
	}
	// Another consumer group handles it too.
	other := msg("m1")
	other.Subscription = "shipping"
	if err := h(context.Background(), other); err != nil || calls.Load() != 2 {
		t.Fatalf("other group: err %v, calls %d (want handled)", err, calls.Load())
	}
}

func TestHandlerErrorRollsBackEverything(t *testing.T) {
	pool, eo := setup(t)
	var calls atomic.Int32
	boom := errors.New("boom")
	fail := true
	h := eo.Consume()(effect(&calls, func() error {
		if fail {
			return boom
		}
		return nil
	}))
	if err := h(context.Background(), msg("m2")); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the handler's", err)
	}
	if n := count(t, pool, "SELECT count(*) FROM effects") + count(t, pool, "SELECT count(*) FROM courier_outbox") +
		count(t, pool, "SELECT count(*) FROM courier_processed"); n != 0 {
		t.Fatalf("%d rows survived a failed handler, want none", n)
	}
	fail = false
	if err := h(context.Background(), msg("m2")); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, "SELECT count(*) FROM effects"); n != 1 || calls.Load() != 2 {
		t.Fatalf("after the retry: %d effects, %d calls; want 1 and 2", n, calls.Load())
	}
}

func TestConcurrentCopiesHandledOnce(t *testing.T) {
	pool, eo := setup(t)
	var calls atomic.Int32
	h := eo.Consume()(effect(&calls, func() error { return nil }))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- h(context.Background(), msg("m3")) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, pool, "SELECT count(*) FROM effects"); n != 1 || calls.Load() != 1 {
		t.Fatalf("8 concurrent copies: %d effects, %d handler calls; want 1 and 1", n, calls.Load())
	}
}

func TestUnusableKeyIsPermanent(t *testing.T) {
	_, eo := setup(t)
	var calls atomic.Int32
	h := eo.Consume()(effect(&calls, func() error { return nil }))
	for _, id := range []string{"", "\xff", "a\x00b", string(make([]byte, exactlyonce.MaxKeyLen+1))} {
		err := h(context.Background(), msg(id))
		if !errors.Is(err, exactlyonce.ErrNoKey) || !message.IsPermanent(err) {
			t.Fatalf("ID %q: err = %v, want permanent ErrNoKey", id, err)
		}
	}
	if calls.Load() != 0 {
		t.Fatal("handler called for a message without a usable key")
	}
}

func TestPurge(t *testing.T) {
	pool, eo := setup(t)
	var calls atomic.Int32
	h := eo.Consume()(effect(&calls, func() error { return nil }))
	for _, id := range []string{"old", "new"} {
		if err := h(context.Background(), msg(id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(context.Background(), "UPDATE courier_processed SET processed_at = now() - interval '8 days' WHERE message_id = 'old'"); err != nil {
		t.Fatal(err)
	}
	n, err := eo.Purge(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1", n, err)
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := exactlyonce.New(exactlyonce.Config{}); !errors.Is(err, exactlyonce.ErrInvalidConfig) {
		t.Fatalf("no DB: %v", err)
	}
	if err := (exactlyonce.Config{DB: &pgxpool.Pool{}, Retention: -1}).Validate(); !errors.Is(err, exactlyonce.ErrInvalidConfig) {
		t.Fatalf("negative retention: %v", err)
	}
}
