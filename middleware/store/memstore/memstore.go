// Package memstore is an in-process store for the idempotency and ordering middleware: a
// bounded map with expiry behind one mutex. It needs no setup, so it suits tests, demos and a
// single process; it shares nothing between processes — several instances of a service need
// package redisstore or pgstore.
//
// Bounds: each of its four tables (idempotency claims, handled keys, publisher counters,
// ordering states) holds at most Options.MaxEntries entries. A full table drops the entry
// written longest ago — with the middleware's one lease and one retention per table, the
// expired entries first, then the one closest to expiring: the oldest handled key (a duplicate
// of it could then be handled again), the least recently used counter (it starts again in a
// new epoch, which consumers recognise), the least recently used ordering state (its key's
// next message waits GapTimeout, then the key continues). Claims live in their own table, so
// handled keys never push out a claim. Expiry is checked on read: no goroutine runs.
package memstore

import (
	"context"
	"sync"
	"time"

	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
)

// DefaultMaxEntries is the default bound of each table.
const DefaultMaxEntries = 1 << 20

// Options configures a Store. The zero value is valid.
type Options struct {
	// MaxEntries bounds each table. Default DefaultMaxEntries (1,048,576).
	MaxEntries int
	// Now is the store's clock. Default time.Now. Tests may move it.
	Now func() time.Time
}

// Store is an in-process idempotency.Store and ordering.Store. It is safe for concurrent use;
// its zero value is not usable, call New.
type Store struct {
	mu        sync.Mutex
	now       func() time.Time
	idem      *idemTable
	counters  *table[counter]
	states    *table[ordering.State]
	lastEpoch int64
}

type counter struct{ epoch, n int64 }

var (
	_ idempotency.Store = (*Store)(nil)
	_ ordering.Store    = (*Store)(nil)
)

// New returns an empty store.
func New(opts Options) *Store {
	n := opts.MaxEntries
	if n <= 0 {
		n = DefaultMaxEntries
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Store{now: now, idem: newIdemTable(n), counters: newTable[counter](n), states: newTable[ordering.State](n)}
}

// Len returns how many live or not yet evicted entries each table holds: idempotency claims,
// handled keys, publisher counters and ordering states. For tests and metrics.
func (s *Store) Len() (claims, done, counters, states int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idem.claims.n, s.idem.done.n, s.counters.len(), s.states.len()
}

// Claim implements idempotency.Store.
func (s *Store) Claim(ctx context.Context, key, owner string, lease time.Duration) (idempotency.Claim, error) {
	if err := ctx.Err(); err != nil {
		return idempotency.Claim{}, err
	}
	h := s.idem.hash(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r := s.idem.get(key, h, now)
	switch {
	case r != nil && r.done:
		return idempotency.Claim{Status: idempotency.Done}, nil
	case r != nil && r.owner != owner:
		return idempotency.Claim{Status: idempotency.Busy, Remaining: r.exp.Sub(now)}, nil
	}
	s.idem.claim(r, key, h, owner, now.Add(lease))
	return idempotency.Claim{Status: idempotency.Acquired}, nil
}

// Complete implements idempotency.Store.
func (s *Store) Complete(ctx context.Context, key, owner string, retention time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h := s.idem.hash(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r := s.idem.get(key, h, now)
	held := r != nil && !r.done && r.owner == owner
	s.idem.markDone(r, key, h, now.Add(retention))
	if !held {
		return idempotency.ErrLeaseLost
	}
	return nil
}

// Release implements idempotency.Store.
func (s *Store) Release(ctx context.Context, key, owner string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h := s.idem.hash(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.idem.get(key, h, s.now()); r != nil && !r.done && r.owner == owner {
		s.idem.remove(r)
	}
	return nil
}

// Reserve implements ordering.Store. A new counter's epoch is the clock in Unix milliseconds,
// or one more than the last epoch this store handed out, whichever is greater.
func (s *Store) Reserve(ctx context.Context, rs []ordering.Reservation, retention time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for i := range rs {
		r := &rs[i]
		var c counter
		it := s.counters.get(r.Key, now)
		if it != nil {
			c = it.val
		} else {
			c.epoch = max(now.UnixMilli(), s.lastEpoch+1)
			s.lastEpoch = c.epoch
		}
		c.n += r.Count
		s.counters.set(it, r.Key, c, now.Add(retention))
		r.Epoch, r.Last = c.epoch, c.n
	}
	return nil
}

// Issued implements ordering.Store.
func (s *Store) Issued(ctx context.Context, counter string) (epoch, last int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if it := s.counters.get(counter, s.now()); it != nil {
		return it.val.epoch, it.val.n, nil
	}
	return 0, 0, nil
}

// Begin implements ordering.Store.
func (s *Store) Begin(ctx context.Context, key string, req ordering.BeginRequest) (ordering.BeginResult, error) {
	if err := ctx.Err(); err != nil {
		return ordering.BeginResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var st ordering.State
	it := s.states.get(key, now)
	if it != nil {
		st = it.val
	}
	res, changed := st.Begin(now, req)
	if changed {
		s.states.set(it, key, st, now.Add(req.Retention))
	}
	return res, nil
}

// Commit implements ordering.Store.
func (s *Store) Commit(ctx context.Context, key string, seq int64, owner string, retention time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var st ordering.State
	it := s.states.get(key, now)
	if it != nil {
		st = it.val
	}
	if err := st.Commit(now, seq, owner); err != nil {
		return err
	}
	s.states.set(it, key, st, now.Add(retention))
	return nil
}

// Abort implements ordering.Store.
func (s *Store) Abort(ctx context.Context, key string, seq int64, owner string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	it := s.states.get(key, now)
	if it == nil {
		return nil
	}
	st := it.val
	if st.Abort(now, seq, owner) {
		s.states.set(it, key, st, it.exp)
	}
	return nil
}
