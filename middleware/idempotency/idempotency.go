package idempotency

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/courierhq/courier/internal/lease"
	"github.com/courierhq/courier/message"
)

// ErrInvalidConfig is returned by Config.Validate and New for a configuration that cannot work.
var ErrInvalidConfig = errors.New("idempotency: invalid configuration")

// ErrInFlight is wrapped in the deferral (message.DeferInOrder) returned for a message whose key
// another consumer is handling right now.
var ErrInFlight = errors.New("idempotency: another consumer is handling this message")

// Defaults for Config.
const (
	DefaultLease        = 30 * time.Second
	DefaultRetention    = 24 * time.Hour
	DefaultStoreTimeout = 5 * time.Second
	// MinBusyDelay and MaxBusyDelay bound how long a copy of a message that another
	// consumer is handling waits before it looks again: the lease's remaining time, within
	// these bounds (and at once when the other handler runs in the same process).
	MinBusyDelay = 10 * time.Millisecond
	MaxBusyDelay = time.Second
)

// Config configures an Idempotency. Only Store is required; zero fields take the documented
// defaults.
type Config struct {
	// Store remembers claims and handled keys. Share one store (Redis, PostgreSQL) between
	// every instance of a consumer group. Required.
	Store Store

	// Key returns the deduplication key of a message. Default: its ID. A message whose key is
	// empty is handled without deduplication (and logged at Warn).
	Key func(*message.Message) string

	// Lease bounds a claim: if a consumer dies while handling, the message can be handled
	// again after this long. It must exceed the longest handler run, or a slow handler's
	// message may be handled twice. Default 30s.
	Lease time.Duration

	// Retention is how long a handled key is remembered: the deduplication window.
	// Default 24h.
	Retention time.Duration

	// StoreTimeout bounds the store calls made after the handler returned (complete,
	// release) when they are tried again, or the handler's context ended: they then run on
	// a context of their own, so that a message handled is recorded even when the
	// subscriber is stopping. Default 5s.
	StoreTimeout time.Duration

	// Logger receives the middleware's log lines (message IDs, never payloads).
	// Default: the logger the subscriber puts in the handler's context
	// (message.LoggerFrom), which is the connection's.
	Logger *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Store == nil {
		return fmt.Errorf("%w: Store is required", ErrInvalidConfig)
	}
	if err := lease.CheckTiming(c.Lease, c.Retention, c.StoreTimeout); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return nil
}

// Idempotency handles each message key at most once per consumer group. It is safe for
// concurrent use.
type Idempotency struct {
	store     Store
	key       func(*message.Message) string
	lease     time.Duration
	retention time.Duration
	timeout   time.Duration
	log       *slog.Logger // nil: message.LoggerFrom(ctx)

	owners *lease.Owners
	wakes  lease.Wakes
}

// New returns an Idempotency for cfg.
func New(cfg Config) (*Idempotency, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	i := &Idempotency{store: cfg.Store, key: cfg.Key, lease: cfg.Lease, retention: cfg.Retention,
		timeout: cfg.StoreTimeout, log: cfg.Logger}
	if i.lease == 0 {
		i.lease = DefaultLease
	}
	if i.retention == 0 {
		i.retention = max(DefaultRetention, i.lease)
	}
	if i.timeout == 0 {
		i.timeout = DefaultStoreTimeout
	}
	i.owners = lease.NewOwners()
	return i, nil
}

// logger returns Config.Logger, else the logger of the handler's context.
func (i *Idempotency) logger(ctx context.Context) *slog.Logger {
	if i.log != nil {
		return i.log
	}
	return message.LoggerFrom(ctx)
}

// Consume returns the consume middleware. Per message it claims "<topic>/<subscription>/<key>"
// in the store (the subscription is the consumer group, so each group handles a message
// once), then:
//
//   - claim acquired: calls the next handler; on success marks the key done (remembered for
//     Retention) and acknowledges; on failure (or panic) releases the claim, so that the
//     engine's retry can claim it again, and returns the error;
//   - already done: acknowledges without calling the handler;
//   - claimed by another consumer and its lease still running: returns a deferral that
//     keeps the message's place in its key's order (message.DeferInOrder, with the lease's
//     remaining time, at most MaxBusyDelay): the engine holds the message and the later
//     messages of its Key behind it, and it looks again then — or at once when the other
//     handler runs in this process and finishes — and normally finds the key done. It is
//     never handled by two consumers at once, and after a crash (the dead instance's claim
//     runs until its lease ends) its successors do not overtake it.
//
// It fails closed: when the store cannot be reached the message fails with a retryable
// error and is not handled; the engine retries it under its policy (and dead-letters it if
// the store stays down longer than the retries).
func (i *Idempotency) Consume() message.Middleware {
	return func(next message.Handler) message.Handler {
		return func(ctx context.Context, m *message.Message) error {
			return i.consume(ctx, next, m)
		}
	}
}

func (i *Idempotency) consume(ctx context.Context, next message.Handler, m *message.Message) error {
	k := m.ID
	if i.key != nil {
		k = i.key(m)
	}
	if k == "" {
		i.logger(ctx).Warn("idempotency: message has no deduplication key; handling it without", "message_id", m.ID)
		return next(ctx, m)
	}
	key := m.Topic + "/" + m.Subscription + "/" + k
	owner := i.owners.Next()
	c, err := i.store.Claim(ctx, key, owner, i.lease)
	if err != nil {
		return fmt.Errorf("idempotency: message %s: claim: %w", m.ID, err)
	}
	switch c.Status {
	case Acquired:
	case Done:
		if log := i.logger(ctx); log.Enabled(ctx, slog.LevelDebug) {
			log.Debug("idempotency: duplicate acknowledged without handling", "message_id", m.ID)
		}
		return nil
	case Busy:
		return message.DeferInOrder(fmt.Errorf("%w: message %s", ErrInFlight, m.ID),
			min(max(c.Remaining, MinBusyDelay), MaxBusyDelay), i.wakes.Wait(key))
	default:
		return fmt.Errorf("idempotency: message %s: store answered unknown status %d", m.ID, c.Status)
	}

	defer i.wakes.Wake(key) // copies waiting in this process look again at once
	return lease.Run(func() error { return next(ctx, m) },
		func() { i.release(ctx, m, key, owner) },
		func() { i.complete(ctx, m, key, owner) })
}

// complete marks the key handled. The message is acknowledged whatever happens: it was
// handled; only a duplicate arriving after the lease ends could now be handled again.
func (i *Idempotency) complete(ctx context.Context, m *message.Message, key, owner string) {
	err := lease.Settle(ctx, i.timeout, func(err error) bool { return !errors.Is(err, ErrLeaseLost) },
		func(ctx context.Context) error { return i.store.Complete(ctx, key, owner, i.retention) })
	switch {
	case err == nil:
	case errors.Is(err, ErrLeaseLost):
		i.logger(ctx).Warn("idempotency: claim expired before the handler finished, so another consumer may have handled the message too; raise Lease", "message_id", m.ID, "lease", i.lease)
	default:
		i.logger(ctx).Error("idempotency: could not mark the message handled", "message_id", m.ID, "error", err)
	}
}

func (i *Idempotency) release(ctx context.Context, m *message.Message, key, owner string) {
	err := lease.Settle(ctx, i.timeout, nil, func(ctx context.Context) error { return i.store.Release(ctx, key, owner) })
	if err != nil {
		i.logger(ctx).Warn("idempotency: could not release the claim; a retry waits until the lease ends", "message_id", m.ID, "error", err)
	}
}
