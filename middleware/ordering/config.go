package ordering

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/courierhq/courier/internal/lease"
	"github.com/courierhq/courier/message"
)

// ErrInvalidConfig is returned by Config.Validate and New for a configuration that cannot work.
var ErrInvalidConfig = errors.New("ordering: invalid configuration")

// GapPolicy decides where a message waits when it arrived before an earlier message of its
// key was handled (or while another consumer holds the key). Either way the wait is a
// deferral (message.Defer / message.Requeue): not a failure, never dead-lettered for it,
// bounded by GapTimeout; the message is checked again after WaitDelay for each message
// missing before it (at most MaxWaitDelay).
type GapPolicy int

const (
	// Hold keeps the message in the consuming process: the engine parks it, unacknowledged,
	// off its key's lane (the worker and the lane serve other messages meanwhile), within the
	// subscriber's Prefetch, and hands it back after the delay, or at once when the message it
	// waits for is handled in the same process — no broker round trip. Should the prefetch stay
	// full of parked messages, the engine gives those due last back to the broker so that it
	// can receive what they wait for. The default.
	Hold GapPolicy = iota
	// Redeliver gives the message back to the broker (a nack with the delay), so that any
	// consumer may get it next. Costlier: a broker round trip per wait (on SQS at least a
	// second), and brokers that count deliveries count each one.
	Redeliver
)

// GapTimeoutAction decides what happens when a gap stays unfilled for GapTimeout.
type GapTimeoutAction int

const (
	// SkipAhead gives up on the missing messages: the message that waited is handled and the
	// key continues from it; a Warn log line names the key and how many were skipped. A
	// skipped message that arrives later after all is handled then, late (logged too). The
	// default.
	SkipAhead GapTimeoutAction = iota
	// DeadLetter never handles a message out of order: the message that waited goes to the
	// dead-letter destination (a permanent error naming the gap) and the key continues after
	// it; a skipped message that arrives later goes there too (ErrLate).
	DeadLetter
)

// Defaults for Config.
const (
	DefaultWaitDelay    = 5 * time.Millisecond
	DefaultMaxWaitDelay = 500 * time.Millisecond
	DefaultGapTimeout   = 30 * time.Second
	DefaultLease        = 30 * time.Second
	DefaultRetention    = 7 * 24 * time.Hour
	DefaultStoreTimeout = 5 * time.Second
)

// Config configures an Ordering. Only Store is required; zero fields take the documented
// defaults.
type Config struct {
	// Store keeps the counters and per-key state. Share one store (Redis, PostgreSQL) between
	// every instance that publishes or consumes the same keys. Required.
	Store Store

	// KeyFunc derives a message's ordering key on publish. It wins over Key and KeyHeader; an
	// empty result leaves the message unordered (no key, no sequence number). Default: the
	// message's Key, else the KeyHeader header.
	KeyFunc func(*message.Message) string
	// KeyHeader names a header whose value becomes the key of a message published with an
	// empty Key. Default: none.
	KeyHeader string

	// OnGap is where a message waits for an earlier one. Default Hold.
	OnGap GapPolicy
	// WaitDelay is how long a waiting message is set aside per message missing before it.
	// Default 5ms.
	WaitDelay time.Duration
	// MaxWaitDelay caps the wait between two checks. Default 500ms.
	MaxWaitDelay time.Duration

	// GapTimeout is how long a key waits for a missing message that nobody is handling
	// before OnGapTimeout applies. The clock restarts whenever the missing message is seen
	// (each failed attempt at it), so it must exceed the subscriber's longest retry delay.
	// Default 30s; negative: wait forever.
	GapTimeout time.Duration
	// OnGapTimeout decides what an unfilled gap leads to. Default SkipAhead.
	OnGapTimeout GapTimeoutAction

	// Lease bounds a claim on a key: if a consumer dies while handling, the key is blocked
	// for at most this long. It must exceed the longest handler run. Default 30s.
	Lease time.Duration
	// Retention is how long a key's counter and state live after their last use. Default 7
	// days. A counter that expired starts a new epoch, so nothing is mistaken for a duplicate.
	Retention time.Duration
	// StoreTimeout bounds the store calls made after the handler returned (commit, release),
	// which do not use the handler's context. Default 5s.
	StoreTimeout time.Duration

	// Logger receives the middleware's log lines (message IDs and keys, never payloads).
	// Default: the logger the subscriber puts in the handler's context
	// (message.LoggerFrom), which is the connection's.
	Logger *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return fmt.Errorf("%w: Store is required", ErrInvalidConfig)
	case c.OnGap != Hold && c.OnGap != Redeliver:
		return fmt.Errorf("%w: unknown OnGap policy %d", ErrInvalidConfig, c.OnGap)
	case c.OnGapTimeout != SkipAhead && c.OnGapTimeout != DeadLetter:
		return fmt.Errorf("%w: unknown OnGapTimeout action %d", ErrInvalidConfig, c.OnGapTimeout)
	case c.WaitDelay < 0, c.MaxWaitDelay < 0:
		return fmt.Errorf("%w: WaitDelay and MaxWaitDelay must not be negative", ErrInvalidConfig)
	case c.WaitDelay != 0 && c.MaxWaitDelay != 0 && c.WaitDelay > c.MaxWaitDelay:
		return fmt.Errorf("%w: WaitDelay %v exceeds MaxWaitDelay %v", ErrInvalidConfig, c.WaitDelay, c.MaxWaitDelay)
	}
	if err := lease.CheckTiming(c.Lease, c.Retention, c.StoreTimeout); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.WaitDelay, DefaultWaitDelay)
	def(&c.MaxWaitDelay, max(DefaultMaxWaitDelay, c.WaitDelay))
	def(&c.GapTimeout, DefaultGapTimeout)
	def(&c.Lease, DefaultLease)
	def(&c.Retention, max(DefaultRetention, c.Lease))
	def(&c.StoreTimeout, DefaultStoreTimeout)
	return c
}
