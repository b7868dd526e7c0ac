package exactlyonce

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/courierhq/courier/message"
)

// MigrationSQL is the schema Migrate applies (migrate.sql): the courier_processed table.
//
//go:embed migrate.sql
var MigrationSQL string

// ErrInvalidConfig is wrapped by Config.Validate's errors.
var ErrInvalidConfig = errors.New("exactlyonce: invalid config")

// ErrNoKey is wrapped (as message.Permanent) for a message whose deduplication key is empty,
// over MaxKeyLen bytes or not valid UTF-8 text: it cannot be marked, so it is dead-lettered
// rather than handled without the guarantee.
var ErrNoKey = errors.New("exactlyonce: message has no usable deduplication key")

// MaxKeyLen bounds a deduplication key (a PostgreSQL index entry must stay small).
const MaxKeyLen = 1024

// commitTimeout bounds the commit after a successful handler.
const commitTimeout = 10 * time.Second

// DefaultRetention is Config.Retention's default.
const DefaultRetention = 7 * 24 * time.Hour

// DB is what the middleware needs from PostgreSQL: *pgxpool.Pool satisfies it.
type DB interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Config configures the middleware. DB is required.
type Config struct {
	// DB is the database of the handler's own tables, the processed marks and (if the
	// handler writes any) the outbox — all in one transaction.
	DB DB
	// Consumer names the consumer group the marks belong to. Default: "<topic>/<subscription>"
	// of each message. Give two deployments that share a subscription name different names.
	Consumer string
	// Key returns a message's deduplication key. Default: its ID.
	Key func(*message.Message) string
	// Retention is how long Purge keeps marks: a duplicate arriving later is handled again.
	// Default 7 days.
	Retention time.Duration
	// Logger receives the middleware's debug lines; default: the subscriber's logger in the
	// handler's context.
	Logger *slog.Logger
}

// Validate reports a missing DB and a negative Retention.
func (c Config) Validate() error {
	if c.DB == nil {
		return fmt.Errorf("%w: DB is required", ErrInvalidConfig)
	}
	if c.Retention < 0 {
		return fmt.Errorf("%w: Retention must not be negative", ErrInvalidConfig)
	}
	return nil
}

// ExactlyOnce is the middleware factory. It is safe for concurrent use.
type ExactlyOnce struct {
	cfg Config
}

// New validates cfg and returns an ExactlyOnce.
func New(cfg Config) (*ExactlyOnce, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Key == nil {
		cfg.Key = func(m *message.Message) string { return m.ID }
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	return &ExactlyOnce{cfg: cfg}, nil
}

// Migrate creates the courier_processed table if it is missing (MigrationSQL). Several
// processes may call it at once: an advisory lock serialises them.
func (e *ExactlyOnce) Migrate(ctx context.Context) error {
	tx, err := e.cfg.DB.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return fmt.Errorf("exactlyonce: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(6872316418296115813)"); err != nil { // "_exonce_"
		return fmt.Errorf("exactlyonce: migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, MigrationSQL); err != nil {
		return fmt.Errorf("exactlyonce: migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("exactlyonce: migrate: commit: %w", err)
	}
	return nil
}

// Purge deletes the marks older than Retention and returns how many. Run it periodically.
func (e *ExactlyOnce) Purge(ctx context.Context) (int64, error) {
	tag, err := e.cfg.DB.Exec(ctx, "DELETE FROM courier_processed WHERE processed_at < now() - $1::bigint * interval '1 millisecond'",
		e.cfg.Retention.Milliseconds())
	if err != nil {
		return 0, fmt.Errorf("exactlyonce: purge: %w", err)
	}
	return tag.RowsAffected(), nil
}

type txKey struct{}

// TxFromContext returns the transaction the middleware opened for the message being handled.
// The handler writes through it (its own tables, outbox.Writer) and must neither commit nor
// roll it back: the middleware commits it, with the processed mark, when the handler returns
// nil, and rolls it back otherwise.
func TxFromContext(ctx context.Context) (pgx.Tx, bool) {
	tx, ok := ctx.Value(txKey{}).(pgx.Tx)
	return tx, ok
}

// Consume returns the consume-side middleware. See the package documentation.
func (e *ExactlyOnce) Consume() message.Middleware {
	return func(next message.Handler) message.Handler {
		return func(ctx context.Context, m *message.Message) error {
			return e.handle(ctx, next, m)
		}
	}
}

// handle runs begin → mark → handler → commit. Its outcome is the handler's, or a
// retryable error when the database fails (the engine retries and dead-letters as usual).
func (e *ExactlyOnce) handle(ctx context.Context, next message.Handler, m *message.Message) error {
	key := e.cfg.Key(m)
	if key == "" || len(key) > MaxKeyLen || !utf8.ValidString(key) || containsNUL(key) {
		return message.Permanent(fmt.Errorf("%w (message %q)", ErrNoKey, truncate(m.ID)))
	}
	consumer := e.cfg.Consumer
	if consumer == "" {
		consumer = m.Topic + "/" + m.Subscription
	}
	tx, err := e.cfg.DB.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("exactlyonce: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // no-op after Commit
	// A concurrent copy of the message waits here on the primary key until the first
	// transaction ends: then it inserts nothing (committed) or goes on (rolled back).
	tag, err := tx.Exec(ctx, "INSERT INTO courier_processed (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
		consumer, key)
	if err != nil {
		return fmt.Errorf("exactlyonce: mark: %w", err)
	}
	if tag.RowsAffected() == 0 {
		e.logger(ctx).Debug("exactlyonce: already processed; acknowledged without handling",
			"consumer", consumer, "id", m.ID)
		return nil
	}
	if err := next(context.WithValue(ctx, txKey{}, tx), m); err != nil {
		return err
	}
	// The handler's work is done: commit it even if the subscriber is stopping.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := tx.Commit(cctx); err != nil {
		// Unknown outcome: if it did commit, the redelivery finds the mark.
		return fmt.Errorf("exactlyonce: commit: %w", err)
	}
	return nil
}

func (e *ExactlyOnce) logger(ctx context.Context) *slog.Logger {
	if e.cfg.Logger != nil {
		return e.cfg.Logger
	}
	return message.LoggerFrom(ctx)
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
