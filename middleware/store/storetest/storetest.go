// Package storetest checks that a store implements idempotency.Store and ordering.Store as
// their documentation says. Every implementation in this repository runs it (memstore always;
// redisstore and pgstore against a real server when one is configured); a new implementation
// should too:
//
//	func TestContract(t *testing.T) {
//		storetest.Idempotency(t, func(t *testing.T) idempotency.Store { return newStore(t) })
//		storetest.Ordering(t, func(t *testing.T) ordering.Store { return newStore(t) })
//	}
//
// The tests use the real clock with leases and retentions of a few hundred milliseconds, and
// unique keys, so stores that share a server with other tests are fine; they run in parallel. open may return the
// same store or a new one sharing the same data on every call; two calls model two processes.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
)

// Short durations keep the suite quick; long enough for a store on a loaded machine.
const (
	short = 400 * time.Millisecond
	long  = time.Minute
)

var seq atomic.Int64

// uniqueKey returns a key no other test (or run) uses.
func uniqueKey(t *testing.T, name string) string {
	return fmt.Sprintf("storetest/%d-%06x/%s/%d", time.Now().UnixNano(), rand.Uint32()&0xffffff, name, seq.Add(1))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// Idempotency runs the idempotency.Store contract.
func Idempotency(t *testing.T, open func(t *testing.T) idempotency.Store) {
	t.Run("Idempotency", func(t *testing.T) { idempotencyTests(t, open) })
}

func idempotencyTests(t *testing.T, open func(t *testing.T) idempotency.Store) {
	t.Run("ClaimBusyComplete", func(t *testing.T) {
		t.Parallel()
		s, s2 := open(t), open(t)
		c, k := ctx(t), uniqueKey(t, "a")
		claim(t, s, k, "A", long, idempotency.Acquired)
		got := claim(t, s2, k, "B", long, idempotency.Busy)
		if got.Remaining <= 0 || got.Remaining > long {
			t.Errorf("Busy.Remaining = %v; want in (0, %v]", got.Remaining, long)
		}
		if err := s.Complete(c, k, "A", long); err != nil {
			t.Fatalf("Complete by the owner: %v", err)
		}
		claim(t, s2, k, "B", long, idempotency.Done)
		claim(t, s, k, "A", long, idempotency.Done)
	})
	t.Run("ReleaseLetsAnotherClaim", func(t *testing.T) {
		t.Parallel()
		s, s2 := open(t), open(t)
		c, k := ctx(t), uniqueKey(t, "r")
		claim(t, s, k, "A", long, idempotency.Acquired)
		if err := s2.Release(c, k, "B"); err != nil { // not the owner: no effect
			t.Fatalf("Release by a non-owner: %v", err)
		}
		claim(t, s2, k, "C", long, idempotency.Busy)
		if err := s.Release(c, k, "A"); err != nil {
			t.Fatalf("Release: %v", err)
		}
		claim(t, s2, k, "B", long, idempotency.Acquired)
		if err := s.Release(c, uniqueKey(t, "never"), "A"); err != nil {
			t.Errorf("Release of a key never claimed: %v", err)
		}
	})
	t.Run("LeaseExpires", func(t *testing.T) {
		t.Parallel()
		s, s2 := open(t), open(t)
		c, k := ctx(t), uniqueKey(t, "lease")
		claim(t, s, k, "A", short, idempotency.Acquired)
		time.Sleep(short + 100*time.Millisecond)
		claim(t, s2, k, "B", long, idempotency.Acquired)
		if err := s.Complete(c, k, "A", long); !errors.Is(err, idempotency.ErrLeaseLost) {
			t.Errorf("Complete after losing the lease: err = %v; want ErrLeaseLost", err)
		}
		claim(t, s2, k, "C", long, idempotency.Done) // marked done anyway
	})
	t.Run("RetentionExpires", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		c, k := ctx(t), uniqueKey(t, "ret")
		claim(t, s, k, "A", long, idempotency.Acquired)
		if err := s.Complete(c, k, "A", short); err != nil {
			t.Fatal(err)
		}
		claim(t, s, k, "B", long, idempotency.Done)
		time.Sleep(short + 100*time.Millisecond)
		claim(t, s, k, "B", long, idempotency.Acquired)
	})
	t.Run("CompleteWithoutClaim", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		c, k := ctx(t), uniqueKey(t, "noclaim")
		if err := s.Complete(c, k, "A", long); !errors.Is(err, idempotency.ErrLeaseLost) {
			t.Errorf("Complete without a claim: err = %v; want ErrLeaseLost", err)
		}
		claim(t, s, k, "B", long, idempotency.Done)
	})
	t.Run("ConcurrentClaimsOneWins", func(t *testing.T) {
		t.Parallel()
		k := uniqueKey(t, "race")
		const n = 16
		var acquired, busy atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			s := open(t)
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := s.Claim(context.Background(), k, fmt.Sprintf("owner-%d", i), long)
				switch {
				case err != nil:
					t.Errorf("Claim: %v", err)
				case c.Status == idempotency.Acquired:
					acquired.Add(1)
				case c.Status == idempotency.Busy:
					busy.Add(1)
				}
			}()
		}
		wg.Wait()
		if acquired.Load() != 1 || busy.Load() != n-1 {
			t.Errorf("%d concurrent claims: %d acquired, %d busy; want 1 and %d", n, acquired.Load(), busy.Load(), n-1)
		}
	})
	t.Run("KeysAreIndependent", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		k1, k2 := uniqueKey(t, "x"), uniqueKey(t, "y")
		claim(t, s, k1, "A", long, idempotency.Acquired)
		claim(t, s, k2, "B", long, idempotency.Acquired)
	})
	t.Run("CancelledContext", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		c, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Claim(c, uniqueKey(t, "cancel"), "A", long); err == nil {
			t.Error("Claim with a cancelled context succeeded; want an error")
		}
	})
}

func claim(t *testing.T, s idempotency.Store, key, owner string, lease time.Duration, want idempotency.Status) idempotency.Claim {
	t.Helper()
	c, err := s.Claim(ctx(t), key, owner, lease)
	if err != nil {
		t.Fatalf("Claim(%s): %v", owner, err)
	}
	if c.Status != want {
		t.Fatalf("Claim(%s) = %v; want %v", owner, c.Status, want)
	}
	return c
}

// Ordering runs the ordering.Store contract.
func Ordering(t *testing.T, open func(t *testing.T) ordering.Store) {
	t.Run("Ordering", func(t *testing.T) { orderingTests(t, open) })
}

func orderingTests(t *testing.T, open func(t *testing.T) ordering.Store) {
	t.Run("ReserveBlocks", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a, b := uniqueKey(t, "ctr-a"), uniqueKey(t, "ctr-b")
		rs := []ordering.Reservation{{Key: a, Count: 3}, {Key: b, Count: 1}}
		if err := s.Reserve(ctx(t), rs, long); err != nil {
			t.Fatal(err)
		}
		if rs[0].Last != 3 || rs[1].Last != 1 || rs[0].Epoch <= 0 || rs[1].Epoch <= 0 {
			t.Fatalf("first reservations: %+v; want Last 3 and 1 with positive epochs", rs)
		}
		epoch := rs[0].Epoch
		rs = []ordering.Reservation{{Key: a, Count: 2}}
		if err := s.Reserve(ctx(t), rs, long); err != nil {
			t.Fatal(err)
		}
		if rs[0].Last != 5 || rs[0].Epoch != epoch {
			t.Fatalf("second reservation: %+v; want Last 5 in epoch %d", rs[0], epoch)
		}
	})
	t.Run("ReserveConcurrentIsUnique", func(t *testing.T) {
		t.Parallel()
		k := uniqueKey(t, "ctr-race")
		const workers, per = 8, 25
		var mu sync.Mutex
		seen := map[int64]bool{}
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			s := open(t)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					rs := []ordering.Reservation{{Key: k, Count: 2}}
					if err := s.Reserve(context.Background(), rs, long); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for n := rs[0].Last - 1; n <= rs[0].Last; n++ {
						if seen[n] {
							t.Errorf("number %d handed out twice", n)
						}
						seen[n] = true
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for n := int64(1); n <= workers*per*2; n++ {
			if !seen[n] {
				t.Fatalf("number %d never handed out: the numbers are not contiguous", n)
			}
		}
	})
	t.Run("CounterExpiryStartsNewEpoch", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		k := uniqueKey(t, "ctr-exp")
		rs := []ordering.Reservation{{Key: k, Count: 4}}
		if err := s.Reserve(ctx(t), rs, short); err != nil {
			t.Fatal(err)
		}
		old := rs[0]
		time.Sleep(short + 100*time.Millisecond)
		rs = []ordering.Reservation{{Key: k, Count: 1}}
		if err := s.Reserve(ctx(t), rs, short); err != nil {
			t.Fatal(err)
		}
		if rs[0].Last != 1 || rs[0].Epoch <= old.Epoch {
			t.Errorf("after expiry: %+v; want Last 1 and an epoch above %d", rs[0], old.Epoch)
		}
	})
	t.Run("NextDuplicateGap", func(t *testing.T) {
		t.Parallel()
		s, s2 := open(t), open(t)
		k := uniqueKey(t, "state")
		begin(t, s, k, req(1, "A"), ordering.Proceed, 0)
		commit(t, s, k, 1, "A", nil)
		begin(t, s2, k, req(1, "B"), ordering.Duplicate, 1)
		r := begin(t, s2, k, req(3, "B"), ordering.Gap, 1)
		if r.InFlight {
			t.Error("Gap.InFlight with nobody holding the key")
		}
		begin(t, s, k, req(2, "C"), ordering.Proceed, 1)
		r = begin(t, s2, k, req(3, "D"), ordering.Gap, 1)
		if !r.InFlight {
			t.Error("Gap.InFlight = false while seq 2 is claimed")
		}
		r = begin(t, s2, k, req(2, "E"), ordering.Busy, 1)
		if r.Wait <= 0 || r.Wait > long {
			t.Errorf("Busy.Wait = %v; want in (0, %v]", r.Wait, long)
		}
		commit(t, s, k, 2, "C", nil)
		begin(t, s2, k, req(3, "D"), ordering.Proceed, 2)
		commit(t, s2, k, 3, "D", nil)
		begin(t, s, k, req(2, "F"), ordering.Duplicate, 3)
	})
	t.Run("AbortLetsRetry", func(t *testing.T) {
		t.Parallel()
		s, s2 := open(t), open(t)
		k := uniqueKey(t, "abort")
		begin(t, s, k, req(1, "A"), ordering.Proceed, 0)
		if err := s2.Abort(ctx(t), k, 1, "X"); err != nil { // not the owner: no effect
			t.Fatal(err)
		}
		begin(t, s2, k, req(1, "B"), ordering.Busy, 0)
		if err := s.Abort(ctx(t), k, 1, "A"); err != nil {
			t.Fatal(err)
		}
		begin(t, s2, k, req(1, "B"), ordering.Proceed, 0)
		commit(t, s2, k, 1, "B", nil)
		if err := s.Abort(ctx(t), uniqueKey(t, "never"), 1, "A"); err != nil {
			t.Errorf("Abort on a key never seen: %v", err)
		}
	})
	t.Run("Issued", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		k := uniqueKey(t, "issued")
		if e, l, err := s.Issued(ctx(t), k); err != nil || e != 0 || l != 0 {
			t.Fatalf("Issued on a counter never used = %d, %d, %v; want 0, 0, nil", e, l, err)
		}
		rs := []ordering.Reservation{{Key: k, Count: 3}}
		if err := s.Reserve(ctx(t), rs, long); err != nil {
			t.Fatal(err)
		}
		for range 2 { // reading changes nothing
			if e, l, err := s.Issued(ctx(t), k); err != nil || e != rs[0].Epoch || l != 3 {
				t.Fatalf("Issued = %d, %d, %v; want %d, 3", e, l, err, rs[0].Epoch)
			}
		}
		rs[0].Count = 1
		if err := s.Reserve(ctx(t), rs, long); err != nil || rs[0].Last != 4 {
			t.Fatalf("Reserve after Issued: %+v, %v; want Last 4", rs[0], err)
		}
	})
	t.Run("NewEpochNeedsAcceptance", func(t *testing.T) {
		// A stamp of a newer epoch changes nothing until the caller accepts the epoch
		// (after checking it against the counter): a forged stamp cannot reset the key.
		t.Parallel()
		s := open(t)
		k := uniqueKey(t, "forged")
		fresh := req(1, "A")
		fresh.AcceptEpoch = false
		begin(t, s, k, fresh, ordering.NewEpoch, 0) // a key never seen: epoch 0 < 1
		begin(t, s, k, req(1, "A"), ordering.Proceed, 0)
		commit(t, s, k, 1, "A", nil)
		forged := req(1, "X")
		forged.Epoch, forged.AcceptEpoch = 2, false
		for range 2 {
			begin(t, s, k, forged, ordering.NewEpoch, 1)
		}
		begin(t, s, k, req(1, "B"), ordering.Duplicate, 1)
		begin(t, s, k, req(2, "B"), ordering.Proceed, 1) // the real stream goes on
		commit(t, s, k, 2, "B", nil)
	})
	t.Run("Epochs", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		k := uniqueKey(t, "epoch")
		r := req(1, "A")
		r.Epoch = 100
		begin(t, s, k, r, ordering.Proceed, 0)
		commit(t, s, k, 1, "A", nil)
		r = req(2, "B")
		r.Epoch = 50
		begin(t, s, k, r, ordering.Stale, 1)
		r = req(1, "C")
		r.Epoch = 200 // the counter started again: a new stream
		begin(t, s, k, r, ordering.Proceed, 0)
		commit(t, s, k, 1, "C", nil)
	})
	t.Run("GapTimesOutAndSkips", func(t *testing.T) {
		t.Parallel()
		s, s2 := open(t), open(t)
		k := uniqueKey(t, "skip")
		r := req(3, "A")
		r.GapTimeout = short
		begin(t, s, k, r, ordering.Gap, 0)
		time.Sleep(short + 100*time.Millisecond)
		res := begin(t, s2, k, r, ordering.Proceed, 0)
		if res.Skipped != 2 {
			t.Errorf("Skipped = %d; want 2", res.Skipped)
		}
		// While the skip is claimed, the missing message finds the key busy.
		begin(t, s, k, req(1, "B"), ordering.Busy, 0)
		commit(t, s2, k, 3, "A", nil)
		begin(t, s, k, req(4, "B"), ordering.Proceed, 3)
	})
	t.Run("LateArrivalAfterSkip", func(t *testing.T) {
		t.Parallel()
		s, s2 := open(t), open(t)
		k := uniqueKey(t, "late")
		r := req(4, "A")
		r.GapTimeout = short
		begin(t, s, k, r, ordering.Gap, 0)
		time.Sleep(short + 100*time.Millisecond)
		begin(t, s, k, r, ordering.Proceed, 0)
		commit(t, s, k, 4, "A", nil) // gave up on 1, 2, 3
		begin(t, s2, k, req(2, "B"), ordering.Late, 4)
		begin(t, s, k, req(2, "C"), ordering.Busy, 4) // its copy, meanwhile
		if err := s2.Abort(ctx(t), k, 2, "B"); err != nil {
			t.Fatal(err)
		}
		begin(t, s, k, req(2, "C"), ordering.Late, 4) // retried after a failure
		commit(t, s, k, 2, "C", nil)
		begin(t, s2, k, req(2, "D"), ordering.Duplicate, 4)
		begin(t, s2, k, req(3, "D"), ordering.Late, 4)
		commit(t, s2, k, 3, "D", nil)
		begin(t, s2, k, req(5, "E"), ordering.Proceed, 4) // the key itself did not move back
		commit(t, s2, k, 5, "E", nil)
		begin(t, s2, k, req(1, "F"), ordering.Late, 5)
		// A new epoch forgets what was skipped in the old one.
		r1 := req(1, "G")
		r1.Epoch = 2
		begin(t, s2, k, r1, ordering.Proceed, 0)
	})
	t.Run("SkippedIsBounded", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		k := uniqueKey(t, "bounded")
		far := int64(ordering.MaxSkipped + 10)
		r := req(far, "A")
		r.GapTimeout = short
		begin(t, s, k, r, ordering.Gap, 0)
		time.Sleep(short + 100*time.Millisecond)
		begin(t, s, k, r, ordering.Proceed, 0)
		commit(t, s, k, far, "A", nil)
		begin(t, s, k, req(far-1, "B"), ordering.Late, far)
		begin(t, s, k, req(far-1-ordering.MaxSkipped, "C"), ordering.Duplicate, far) // beyond the memory
	})
	t.Run("AbortedSkipRetriesAtOnce", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		k := uniqueKey(t, "skip-abort")
		r := req(2, "A")
		r.GapTimeout = short
		begin(t, s, k, r, ordering.Gap, 0)
		time.Sleep(short + 100*time.Millisecond)
		begin(t, s, k, r, ordering.Proceed, 0)
		if err := s.Abort(ctx(t), k, 2, "A"); err != nil {
			t.Fatal(err)
		}
		r.Owner = "B"
		res := begin(t, s, k, r, ordering.Proceed, 0)
		if res.Skipped != 1 {
			t.Errorf("retry of the message skipped to: Skipped = %d; want 1", res.Skipped)
		}
	})
	t.Run("GapClockRestartsWhileMissingIsRetried", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		k := uniqueKey(t, "gapclock")
		r3 := req(3, "A")
		r3.GapTimeout = 2 * short
		begin(t, s, k, req(1, "P"), ordering.Proceed, 0)
		commit(t, s, k, 1, "P", nil)
		begin(t, s, k, req(2, "B"), ordering.Proceed, 1)
		if r := begin(t, s, k, r3, ordering.Gap, 1); !r.InFlight { // the gap clock starts
			t.Fatal("Gap.InFlight = false while seq 2 is claimed")
		}
		time.Sleep(short + 200*time.Millisecond)
		if err := s.Abort(ctx(t), k, 2, "B"); err != nil { // seq 2 failed; it will be retried
			t.Fatal(err)
		}
		time.Sleep(short)
		// 3 has waited longer than GapTimeout in all, but seq 2 was seen only short ago.
		begin(t, s, k, r3, ordering.Gap, 1)
	})
	t.Run("LeaseExpires", func(t *testing.T) {
		t.Parallel()
		s, s2 := open(t), open(t)
		k := uniqueKey(t, "lease")
		r := req(1, "A")
		r.Lease = short
		begin(t, s, k, r, ordering.Proceed, 0)
		time.Sleep(short + 100*time.Millisecond)
		begin(t, s2, k, req(1, "B"), ordering.Proceed, 0)
		commit(t, s, k, 1, "A", ordering.ErrLeaseLost)
		commit(t, s2, k, 1, "B", nil)
	})
	t.Run("CommitOfFreeNextMessage", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		k := uniqueKey(t, "free")
		r := req(1, "A")
		r.Lease = short
		begin(t, s, k, r, ordering.Proceed, 0)
		time.Sleep(short + 100*time.Millisecond)
		// Nobody took over the expired claim: the late commit still counts.
		commit(t, s, k, 1, "A", nil)
		begin(t, s, k, req(2, "B"), ordering.Proceed, 1)
		commit(t, s, k, 5, "C", ordering.ErrLeaseLost)
	})
	t.Run("StateRetention", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		k := uniqueKey(t, "retention")
		begin(t, s, k, req(1, "A"), ordering.Proceed, 0)
		if err := s.Commit(ctx(t), k, 1, "A", short); err != nil {
			t.Fatal(err)
		}
		time.Sleep(short + 100*time.Millisecond)
		begin(t, s, k, req(1, "B"), ordering.Proceed, 0) // forgotten: seq 1 is new again
	})
	t.Run("ConcurrentBeginOneWins", func(t *testing.T) {
		t.Parallel()
		k := uniqueKey(t, "race")
		const n = 16
		var proceed, busy atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			s := open(t)
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := s.Begin(context.Background(), k, req(1, fmt.Sprintf("owner-%d", i)))
				switch {
				case err != nil:
					t.Errorf("Begin: %v", err)
				case r.Outcome == ordering.Proceed:
					proceed.Add(1)
				case r.Outcome == ordering.Busy:
					busy.Add(1)
				}
			}()
		}
		wg.Wait()
		if proceed.Load() != 1 || busy.Load() != n-1 {
			t.Errorf("%d concurrent begins: %d proceed, %d busy; want 1 and %d", n, proceed.Load(), busy.Load(), n-1)
		}
	})
	t.Run("CancelledContext", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		c, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.Begin(c, uniqueKey(t, "cancel"), req(1, "A")); err == nil {
			t.Error("Begin with a cancelled context succeeded; want an error")
		}
		if err := s.Reserve(c, []ordering.Reservation{{Key: uniqueKey(t, "cancel"), Count: 1}}, long); err == nil {
			t.Error("Reserve with a cancelled context succeeded; want an error")
		}
	})
}

func req(seq int64, owner string) ordering.BeginRequest {
	return ordering.BeginRequest{Epoch: 1, Seq: seq, Owner: owner, Lease: long, GapTimeout: long, Retention: long, AcceptEpoch: true}
}

func begin(t *testing.T, s ordering.Store, key string, r ordering.BeginRequest, want ordering.Outcome, last int64) ordering.BeginResult {
	t.Helper()
	res, err := s.Begin(ctx(t), key, r)
	if err != nil {
		t.Fatalf("Begin(seq %d, %s): %v", r.Seq, r.Owner, err)
	}
	if res.Outcome != want || res.Last != last {
		t.Fatalf("Begin(seq %d, %s) = %v, last %d; want %v, last %d", r.Seq, r.Owner, res.Outcome, res.Last, want, last)
	}
	return res
}

func commit(t *testing.T, s ordering.Store, key string, seq int64, owner string, want error) {
	t.Helper()
	err := s.Commit(ctx(t), key, seq, owner, long)
	if (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
		t.Fatalf("Commit(seq %d, %s): err = %v; want %v", seq, owner, err, want)
	}
}
