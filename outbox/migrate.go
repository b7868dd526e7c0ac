package outbox

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// MigrationSQL is the schema Migrate applies (migrate.sql): the courier_outbox table, its
// (key, seq) index, the courier_outbox_dead table of rows refused permanently, and the trigger that notifies channel NotifyChannel at commit. It is
// idempotent; apply it with your own migration tool if you prefer.
//
//go:embed migrate.sql
var MigrationSQL string

// NotifyChannel is the LISTEN/NOTIFY channel the outbox trigger notifies on commit.
const NotifyChannel = "courier_outbox"

// migrateLock is the advisory lock Migrate holds ("outbox" in ASCII).
const migrateLock = 0x6f7574626f78

// Beginner is what Migrate needs: *pgxpool.Pool and *pgx.Conn satisfy it.
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Migrate creates the outbox table, index and trigger if they are missing (MigrationSQL), in
// one transaction. Several processes may call it at once: an advisory lock serialises them.
func Migrate(ctx context.Context, db Beginner) error {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return fmt.Errorf("outbox: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrateLock)); err != nil {
		return fmt.Errorf("outbox: migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, MigrationSQL); err != nil {
		return fmt.Errorf("outbox: migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("outbox: migrate: commit: %w", err)
	}
	return nil
}
