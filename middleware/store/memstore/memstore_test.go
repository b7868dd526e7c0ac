package memstore_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/memstore"
	"github.com/courierhq/courier/middleware/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestContract(t *testing.T) {
	t.Parallel()
	shared := memstore.New(memstore.Options{}) // two "processes" share one store
	storetest.Idempotency(t, func(*testing.T) idempotency.Store { return shared })
	storetest.Ordering(t, func(*testing.T) ordering.Store { return shared })
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Unix(1_700_000_000, 0)} }

func TestBoundedEvictsClosestToExpiry(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := memstore.New(memstore.Options{MaxEntries: 3, Now: clk.now})
	for i, k := range []string{"a", "b", "c"} {
		claimAndComplete(t, s, k, time.Duration(i+1)*time.Hour)
	}
	claimAndComplete(t, s, "d", 10*time.Hour) // full: "a" (closest to expiring) goes
	if _, done, _, _ := s.Len(); done != 3 {
		t.Fatalf("done table holds %d; want 3 (the bound)", done)
	}
	if c, _ := s.Claim(ctx, "a", "x", time.Minute); c.Status != idempotency.Acquired {
		t.Errorf("evicted key a: %v; want acquired", c.Status)
	}
	for _, k := range []string{"b", "c", "d"} {
		if c, _ := s.Claim(ctx, k, "x", time.Minute); c.Status != idempotency.Done {
			t.Errorf("key %s: %v; want done", k, c.Status)
		}
	}
}

func TestExpiredGoFirst(t *testing.T) {
	clk := newClock()
	s := memstore.New(memstore.Options{MaxEntries: 2, Now: clk.now})
	claimAndComplete(t, s, "old", time.Minute)
	claimAndComplete(t, s, "keep", time.Hour)
	clk.add(2 * time.Minute) // "old" expired
	claimAndComplete(t, s, "new", 30*time.Minute)
	ctx := context.Background()
	if c, _ := s.Claim(ctx, "keep", "x", time.Minute); c.Status != idempotency.Done {
		t.Errorf("live key evicted while an expired one was there: %v", c.Status)
	}
}

func TestClaimsDoNotEvictDoneKeys(t *testing.T) {
	// Claims live in their own table, so a burst of claims cannot push out handled keys.
	ctx := context.Background()
	clk := newClock()
	s := memstore.New(memstore.Options{MaxEntries: 2, Now: clk.now})
	claimAndComplete(t, s, "done-1", time.Hour)
	for _, k := range []string{"c1", "c2", "c3"} {
		if _, err := s.Claim(ctx, k, "o", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := s.Claim(ctx, "done-1", "x", time.Minute); c.Status != idempotency.Done {
		t.Errorf("handled key lost to claims: %v", c.Status)
	}
}

func TestEpochsIncreaseEvenWithinOneMillisecond(t *testing.T) {
	ctx := context.Background()
	clk := newClock() // frozen: every call is the same millisecond
	s := memstore.New(memstore.Options{MaxEntries: 1, Now: clk.now})
	var last int64
	for i, k := range []string{"k1", "k2", "k1", "k2"} { // bound 1: each reserve evicts the other
		rs := []ordering.Reservation{{Key: k, Count: 1}}
		if err := s.Reserve(ctx, rs, time.Hour); err != nil {
			t.Fatal(err)
		}
		if rs[0].Epoch <= last || rs[0].Last != 1 {
			t.Fatalf("reserve %d: epoch %d last %d; want a new counter with an epoch above %d", i, rs[0].Epoch, rs[0].Last, last)
		}
		last = rs[0].Epoch
	}
}

func claimAndComplete(t *testing.T, s *memstore.Store, key string, retention time.Duration) {
	t.Helper()
	ctx := context.Background()
	if c, err := s.Claim(ctx, key, "o", time.Minute); err != nil || c.Status != idempotency.Acquired {
		t.Fatalf("claim %s: %v %v", key, c.Status, err)
	}
	if err := s.Complete(ctx, key, "o", retention); err != nil {
		t.Fatalf("complete %s: %v", key, err)
	}
}
