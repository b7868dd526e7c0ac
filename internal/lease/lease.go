// Package lease is the skeleton that the ordering and idempotency middleware share around
// claims on keys held with a lease: claim owners unique across processes (Owners), store
// calls that settle a claim after the handler returned, retried once on a context of their
// own (Settle), and in-process wake-ups for messages waiting on a claim (Wakes, Closed).
package lease

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
	"time"
)

// Owners hands out claim owner IDs unique across processes: a random prefix drawn once and a
// counter. It is safe for concurrent use; the zero value is not usable, call NewOwners.
type Owners struct {
	prefix string
	n      atomic.Uint64
}

// NewOwners returns a generator with a fresh random prefix.
func NewOwners() *Owners {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return &Owners{prefix: hex.EncodeToString(b[:])}
}

// Next returns a new owner ID: "<16 hex digits>-<counter in base 36>".
func (o *Owners) Next() string {
	var b [40]byte
	out := append(b[:0], o.prefix...)
	out = append(out, '-')
	out = strconv.AppendUint(out, o.n.Add(1), 36)
	return string(out)
}

// Settle runs fn, a store call that records the end of a claim (commit, complete, release),
// with ctx — unless ctx is already done — and when that fails with an error for which
// again(err) is true (again nil: any error), once more on a context of its own: ctx's values
// without its cancellation, bounded by timeout. The handler's context may end while the
// handler returns, and a handled message must still be recorded. It returns the last error.
func Settle(ctx context.Context, timeout time.Duration, again func(error) bool, fn func(context.Context) error) error {
	err := ctx.Err()
	if err == nil {
		err = fn(ctx)
	}
	if err == nil || (again != nil && !again(err)) {
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	return fn(sctx)
}

// Run calls handle under a claim and settles the claim after it: release when handle failed
// or panicked (the panic goes on up, for the engine to recover), commit when it succeeded. It
// returns handle's error.
func Run(handle func() error, release, commit func()) error {
	finished := false
	defer func() {
		if !finished {
			release()
		}
	}()
	err := handle()
	finished = true
	if err != nil {
		release()
		return err
	}
	commit()
	return nil
}
