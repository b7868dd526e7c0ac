package idempotency

import (
	"context"
	"errors"
	"time"
)

// ErrLeaseLost is returned by Store.Complete when the caller's claim had expired and another
// consumer claimed the key meanwhile (or it was released). The key is marked done anyway.
var ErrLeaseLost = errors.New("idempotency: claim lost (lease expired)")

// Status is the outcome of Store.Claim.
type Status int

// Claim outcomes.
const (
	// Acquired: the caller holds the key until its lease ends, Complete or Release.
	Acquired Status = iota + 1
	// Done: the key was handled and is remembered (within its retention).
	Done
	// Busy: another consumer holds a live claim on the key.
	Busy
)

// String returns the status's name.
func (s Status) String() string {
	switch s {
	case Acquired:
		return "acquired"
	case Done:
		return "done"
	case Busy:
		return "busy"
	}
	return "unknown"
}

// Claim is a Store's answer to a claim.
type Claim struct {
	// Status decides what happens to the message.
	Status Status
	// Remaining is, with Busy, how long the other consumer's lease still runs.
	Remaining time.Duration
}

// Store remembers which keys are being handled and which were handled. It must be safe for
// concurrent use, and each method must be atomic with respect to the others on the same key,
// across every process that shares the store. Times are the store's own clock.
//
// A record is: absent (or expired) → Claim acquires it for lease; claimed by an owner until
// an instant → Claim by another owner answers Busy with the time left, Complete turns it into
// done, Release (by the same owner) removes it; done until an instant → Claim answers Done.
//
// Implementations: package memstore (one process), redisstore and pgstore (shared); each
// also implements ordering.Store. Package storetest checks an implementation.
type Store interface {
	// Claim takes key for owner for lease, unless it is done or claimed by someone else.
	Claim(ctx context.Context, key, owner string, lease time.Duration) (Claim, error)
	// Complete marks key done for retention, whoever holds it; it returns ErrLeaseLost
	// (after marking it done) when the key was not claimed by owner anymore.
	Complete(ctx context.Context, key, owner string, retention time.Duration) error
	// Release removes owner's claim on key so that a retry can claim it; it does nothing when
	// owner does not hold the key.
	Release(ctx context.Context, key, owner string) error
}
