package ordering

import (
	"context"
	"time"
)

// Store keeps the ordering state shared by every publisher and consumer instance: the
// publisher-side counters and each subscription's last handled sequence number per key. It
// must be safe for concurrent use, and each method must be atomic with respect to the others
// on the same key, across every process that shares the store.
//
// Implementations: package memstore (one process), redisstore and pgstore (shared); each
// also implements idempotency.Store. Package storetest checks an implementation.
type Store interface {
	// Reserve takes rs[i].Count consecutive numbers from the publisher-side counter named
	// rs[i].Key, for every i, and sets rs[i].Epoch and rs[i].Last: the block is
	// Last-Count+1 … Last. A counter that does not exist, or was unused for longer than
	// retention, starts again at 0 with a new epoch greater than any it had before (the
	// store's clock in Unix milliseconds). On error, no entry of rs may be used.
	Reserve(ctx context.Context, rs []Reservation, retention time.Duration) error

	// Issued reports what the publisher-side counter named counter has handed out: its
	// epoch and the last number taken in it; 0, 0 when the counter does not exist (never
	// used, or expired). It changes nothing.
	Issued(ctx context.Context, counter string) (epoch, last int64, err error)

	// Begin applies State.Begin to the consumer-side state named key, atomically, and stores
	// the result (for req.Retention) when it changed.
	Begin(ctx context.Context, key string, req BeginRequest) (BeginResult, error)

	// Commit applies State.Commit (ErrLeaseLost when the claim is gone) and keeps the state
	// for retention.
	Commit(ctx context.Context, key string, seq int64, owner string, retention time.Duration) error

	// Abort applies State.Abort.
	Abort(ctx context.Context, key string, seq int64, owner string) error
}

// Reservation is one counter's part of a Store.Reserve call.
type Reservation struct {
	// Key names the counter (set by the caller).
	Key string
	// Count of numbers to take, at least 1 (set by the caller).
	Count int64
	// Epoch and Last are set by the store: the counter's epoch and the last number taken.
	Epoch, Last int64
}
