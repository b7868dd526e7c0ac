package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/memstore"
	"github.com/courierhq/courier/middleware/store/pgstore"
	"github.com/courierhq/courier/middleware/store/redisstore"
	"github.com/courierhq/courier/transport"
)

func init() {
	middlewareTests = append(middlewareTests,
		namedTest{"Middleware/Idempotency/DuplicatesAndNack", testIdempotencyDuplicates},
		namedTest{"Middleware/Idempotency/TwoInstances", testIdempotencyTwoInstances},
		namedTest{"Middleware/Idempotency/EachGroupOnce", testIdempotencyGroups},
	)
}

// mwStore is a store backend for the middleware tests. open returns a new handle on the
// backend's shared data each call (a new client for Redis and PostgreSQL), so two calls model
// two processes; the memory store is one per test, shared by its handles.
type mwStore struct {
	name string
	open func(t *testing.T) mwStoreHandle
}

// mwStoreHandle is one client of a store backend: it serves both middleware.
type mwStoreHandle interface {
	idempotency.Store
	ordering.Store
}

// middlewareStores lists the backends; Redis and PostgreSQL come from brokers.Endpoint, so
// their subtests skip without a server (and fail under COURIER_REQUIRE_BROKERS=1).
func middlewareStores(t *testing.T) []mwStore {
	var (
		once sync.Once
		mem  *memstore.Store
	)
	var pgMigrated sync.Once
	return []mwStore{
		{"memory", func(t *testing.T) mwStoreHandle {
			once.Do(func() { mem = memstore.New(memstore.Options{}) })
			return mem
		}},
		{"redis", func(t *testing.T) mwStoreHandle {
			url := brokers.Endpoint(t, brokers.Redis)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, closeFn, err := redisstore.Open(ctx, url, redisstore.Options{Prefix: "courier-conformance:"})
			if err != nil {
				t.Fatalf("redis store: %v", err)
			}
			t.Cleanup(func() { _ = closeFn() })
			return s
		}},
		{"postgres", func(t *testing.T) mwStoreHandle {
			url := brokers.Endpoint(t, brokers.Postgres)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				t.Fatalf("postgres store: %v", err)
			}
			t.Cleanup(pool.Close)
			s := pgstore.New(pool)
			var merr error
			pgMigrated.Do(func() { merr = s.Migrate(ctx) })
			if merr != nil {
				t.Fatalf("postgres store: migrate: %v", merr)
			}
			return s
		}},
	}
}

// forEachStore runs fn as a subtest per store backend.
func forEachStore(t *testing.T, h *Harness, fn func(t *testing.T, h *Harness, st mwStore)) {
	for _, st := range middlewareStores(t) {
		t.Run(st.name, func(t *testing.T) { fn(t, h, st) })
	}
}

// ackCounter is an outer middleware that counts, per message ID, the deliveries that ended in
// an acknowledgement (nil), whatever the inner middleware decided.
type ackCounter struct {
	mu     sync.Mutex
	acks   map[string]int
	total  int
	change chan struct{}
}

func newAckCounter() *ackCounter {
	return &ackCounter{acks: map[string]int{}, change: make(chan struct{}, 1)}
}

func (a *ackCounter) middleware(next message.Handler) message.Handler {
	return func(ctx context.Context, m *message.Message) error {
		err := next(ctx, m)
		if err == nil {
			a.mu.Lock()
			a.acks[m.ID]++
			a.total++
			a.mu.Unlock()
			select {
			case a.change <- struct{}{}:
			default:
			}
		}
		return err
	}
}

func (a *ackCounter) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total
}

// wait waits until n deliveries were acknowledged.
func (a *ackCounter) wait(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for a.count() < n {
		select {
		case <-a.change:
		case <-deadline:
			t.Fatalf("timed out after %v: %d of %d deliveries acknowledged", timeout, a.count(), n)
		}
	}
}

func newIdempotency(t *testing.T, st idempotency.Store) *idempotency.Idempotency {
	t.Helper()
	// A short lease: a copy that finds another's claim comes back within it.
	i, err := idempotency.New(idempotency.Config{Store: st, Lease: 2 * time.Second, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// testIdempotencyDuplicates: the same message published three times, its first handling
// failing (a forced nack, so it is redelivered), is handled once; all three copies are
// acknowledged.
func testIdempotencyDuplicates(t *testing.T, h *Harness) {
	forEachStore(t, h, func(t *testing.T, h *Harness, st mwStore) {
		c := h.open(t)
		topic := h.NewTopic(t)
		acks := newAckCounter()
		idem := newIdempotency(t, st.open(t))
		sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{
			Middleware: []message.Middleware{acks.middleware, idem.Consume()}})
		var calls, handled atomic.Int64
		h.run(t, sub, func(_ context.Context, m *message.Message) error {
			if calls.Add(1) == 1 {
				return errors.New("forced failure: nack and redeliver")
			}
			handled.Add(1)
			return nil
		})
		for i := 0; i < 3; i++ {
			publish(t, c, topic, []*message.Message{{ID: "dup-1", Payload: []byte("pay once")}}, 1)
		}
		acks.wait(t, 3, 2*h.Timeout)
		time.Sleep(300 * time.Millisecond) // a fourth acknowledgement or handling would show now
		if n := handled.Load(); n != 1 {
			t.Errorf("handled %d times; want 1", n)
		}
		if n := calls.Load(); n != 2 {
			t.Errorf("handler called %d times; want 2 (the forced failure, then the one success)", n)
		}
		if n := acks.count(); n != 3 {
			t.Errorf("%d acknowledgements; want 3 (one per published copy)", n)
		}
	})
}

// testIdempotencyTwoInstances: two consumer instances of one group, each with its own
// middleware and store client, share the store: every message, published three times, is
// handled once in all.
func testIdempotencyTwoInstances(t *testing.T, h *Harness) {
	h.require(t, CompetingConsumers)
	forEachStore(t, h, func(t *testing.T, h *Harness, st mwStore) {
		c := h.open(t)
		topic := h.NewTopic(t)
		acks := newAckCounter()
		var mu sync.Mutex
		handled := map[string]int{}
		var inst [2]atomic.Int64
		for i := range inst {
			idem := newIdempotency(t, st.open(t))
			sub := h.subscribe(t, c, topic, "group", transport.SubscriberConfig{Concurrency: 4, Prefetch: 4,
				Middleware: []message.Middleware{acks.middleware, idem.Consume()}})
			h.run(t, sub, func(_ context.Context, m *message.Message) error {
				inst[i].Add(1)
				mu.Lock()
				handled[m.ID]++
				mu.Unlock()
				time.Sleep(time.Millisecond) // let the copies overlap
				return nil
			})
		}
		n := h.n(50)
		for copyNo := 0; copyNo < 3; copyNo++ {
			msgs := make([]*message.Message, n)
			for i := range msgs {
				msgs[i] = &message.Message{ID: fmt.Sprintf("once-%d", i), Payload: []byte("x")}
			}
			publish(t, c, topic, msgs, 25)
		}
		acks.wait(t, 3*n, 4*h.Timeout)
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		if len(handled) != n {
			t.Errorf("%d distinct messages handled; want %d", len(handled), n)
		}
		for id, k := range handled {
			if k != 1 {
				t.Errorf("message %s handled %d times; want 1", id, k)
			}
		}
		t.Logf("instance 1 handled %d, instance 2 handled %d", inst[0].Load(), inst[1].Load())
	})
}

// testIdempotencyGroups: the key is scoped to the subscription, so each consumer group
// handles a message once.
func testIdempotencyGroups(t *testing.T, h *Harness) {
	h.require(t, FanOut)
	forEachStore(t, h, func(t *testing.T, h *Harness, st mwStore) {
		c := h.open(t)
		topic := h.NewTopic(t)
		store := st.open(t)
		acks := newAckCounter()
		var mu sync.Mutex
		handled := map[string]int{}
		for _, group := range []string{"g1", "g2"} {
			sub := h.subscribe(t, c, topic, group, transport.SubscriberConfig{
				Middleware: []message.Middleware{acks.middleware, newIdempotency(t, store).Consume()}})
			h.run(t, sub, func(_ context.Context, m *message.Message) error {
				mu.Lock()
				handled[m.Subscription+"/"+m.ID]++
				mu.Unlock()
				return nil
			})
		}
		for i := 0; i < 2; i++ {
			publish(t, c, topic, []*message.Message{{ID: "fan-1", Payload: []byte("x")}, {ID: "fan-2", Payload: []byte("y")}}, 2)
		}
		acks.wait(t, 8, 2*h.Timeout)
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		for _, k := range []string{"g1/fan-1", "g1/fan-2", "g2/fan-1", "g2/fan-2"} {
			if handled[k] != 1 {
				t.Errorf("%s handled %d times; want 1 (once per group)", k, handled[k])
			}
		}
	})
}
