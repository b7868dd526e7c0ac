package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/courierhq/courier/message"
)

// ErrInvalidConfig is wrapped by Config.Validate's errors.
var ErrInvalidConfig = errors.New("outbox: invalid config")

// Publisher is where the relay sends messages: *transport.Conn and *transport.Publisher
// satisfy it. Publish must return nil only once the broker accepted every message durably,
// and may return a *transport.PublishError naming the messages it did not accept.
type Publisher interface {
	Publish(ctx context.Context, topic string, msgs ...*message.Message) error
}

// Defaults for Config's zero fields.
const (
	DefaultPollInterval   = time.Second
	DefaultBatchSize      = 100
	DefaultParallelism    = 16
	DefaultRetryMin       = 200 * time.Millisecond
	DefaultRetryMax       = 30 * time.Second
	DefaultPublishTimeout = 30 * time.Second
)

// Config configures a Relay. DB and Publisher are required; zero durations and sizes take
// the defaults above.
type Config struct {
	// DB is the pool the relay reads the outbox through; one connection of it is held for
	// LISTEN while the relay runs. The search_path decides which outbox table is relayed.
	DB *pgxpool.Pool
	// Publisher receives the messages (a *transport.Conn or *transport.Publisher).
	Publisher Publisher
	// PollInterval is how often the relay looks for rows without being woken (the fallback
	// when a notification is missed or LISTEN is off or broken). Default 1 s.
	PollInterval time.Duration
	// NoListen turns LISTEN/NOTIFY off: the relay only polls (e.g. behind a pooler in
	// transaction mode, where LISTEN does not work).
	NoListen bool
	// BatchSize bounds the keyed rows and, separately, the unkeyed rows one round takes.
	// Default 100.
	BatchSize int
	// Parallelism is how many ordering keys (and unkeyed batches) one round publishes at
	// once; a key's own rows always go one call after another. Default 16.
	Parallelism int
	// RetryMin and RetryMax bound the exponential backoff of a key whose publish failed
	// (its later rows wait; other keys go on). Defaults 200 ms and 30 s.
	RetryMin, RetryMax time.Duration
	// PublishTimeout bounds one round's publishing. A round in progress when the relay is
	// closed finishes (within this bound), so that what the broker confirmed is marked.
	// Default 30 s.
	PublishTimeout time.Duration
	// Logger receives the relay's warnings; default slog.Default().
	Logger *slog.Logger
	// OnDeadLetter, if set, is called for each row the relay moved to courier_outbox_dead
	// (a row the broker refuses permanently, or whose headers do not decode), after the move
	// committed. It runs on the relay's goroutine between rounds: keep it short. Optional.
	OnDeadLetter func(ctx context.Context, d DeadLetter)
}

// Validate reports a missing DB or Publisher and negative values.
func (c Config) Validate() error {
	switch {
	case c.DB == nil:
		return fmt.Errorf("%w: DB is required", ErrInvalidConfig)
	case c.Publisher == nil:
		return fmt.Errorf("%w: Publisher is required", ErrInvalidConfig)
	case c.PollInterval < 0, c.RetryMin < 0, c.RetryMax < 0, c.PublishTimeout < 0:
		return fmt.Errorf("%w: durations must not be negative", ErrInvalidConfig)
	case c.BatchSize < 0, c.Parallelism < 0:
		return fmt.Errorf("%w: BatchSize and Parallelism must not be negative", ErrInvalidConfig)
	case c.RetryMin > 0 && c.RetryMax > 0 && c.RetryMin > c.RetryMax:
		return fmt.Errorf("%w: RetryMin %v exceeds RetryMax %v", ErrInvalidConfig, c.RetryMin, c.RetryMax)
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.RetryMin, DefaultRetryMin)
	def(&c.RetryMax, DefaultRetryMax)
	def(&c.PublishTimeout, DefaultPublishTimeout)
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Parallelism == 0 {
		c.Parallelism = DefaultParallelism
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
