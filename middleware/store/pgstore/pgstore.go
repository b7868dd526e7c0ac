// Package pgstore keeps the idempotency and ordering middleware's state in PostgreSQL
// (github.com/jackc/pgx/v5), shared by every instance of a service.
//
// # Migration
//
// The tables (courier_idempotency, courier_sequence, courier_ordering, in the connection's
// search_path) are created by Store.Migrate, which runs the embedded migrate.sql — read it
// for the columns — in one transaction under an advisory lock, so several instances may call
// it at start-up. It only creates what is missing. To manage the schema yourself, apply
// MigrationSQL with your own tool instead.
//
// # Semantics
//
// Times are the database clock (clock_timestamp(), as Unix milliseconds), so every instance
// judges leases alike. Idempotency claims are single statements (INSERT … ON CONFLICT … DO
// UPDATE … WHERE, returning what was there); counters are one upsert per key, sent as one
// pipelined batch per publish ("UPDATE … RETURNING" of the counter row); an ordering step
// reads the key's row, applies ordering.State's rules in Go and writes the row back only if
// its version did not change meanwhile (else it reads again): two round trips, no explicit
// transaction. Expired rows are treated as absent; Store.Purge deletes them — call it
// periodically (say hourly), or let your own job run the DELETE statements it runs.
package pgstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
)

// MigrationSQL is the schema Migrate applies (migrate.sql); it is idempotent.
//
//go:embed migrate.sql
var MigrationSQL string

// DB is what the store needs from PostgreSQL: a *pgxpool.Pool (recommended: safe for
// concurrent use) satisfies it; a single *pgx.Conn does too but must not be shared between
// goroutines.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Store is an idempotency.Store and ordering.Store on PostgreSQL. It is safe for concurrent
// use when its DB is. Closing the DB is the caller's business.
type Store struct {
	db DB
}

var (
	_ idempotency.Store = (*Store)(nil)
	_ ordering.Store    = (*Store)(nil)
)

// New returns a store on db. Call Migrate once before use (or apply MigrationSQL yourself).
func New(db DB) *Store { return &Store{db: db} }

// Open connects a pool to the PostgreSQL named by a URL (postgres://user:password@host/db?…;
// see pgxpool.ParseConfig), checks that it answers, applies the migration (Migrate), and
// returns a store and a function that closes the pool. Errors never include the password
// (pgx masks it in what it reports about the URL).
func Open(ctx context.Context, url string) (*Store, func(), error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, nil, fmt.Errorf("pgstore: invalid PostgreSQL URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("pgstore: connect to %s: %w", cfg.ConnConfig.Host, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("pgstore: connect to %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	s := New(pool)
	if err := s.Migrate(ctx); err != nil {
		pool.Close()
		return nil, nil, err
	}
	return s, pool.Close, nil
}

// nowMS is the database clock in Unix milliseconds.
const nowMS = `(extract(epoch FROM clock_timestamp()) * 1000)::bigint`

// migrateLock is the advisory lock key Migrate holds ("courier" in ASCII).
const migrateLock = 0x636f7572696572

// Migrate creates the store's tables and indexes if they are missing. Several processes may
// call it at once: an advisory lock serialises them.
func (s *Store) Migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrateLock)); err != nil {
		return fmt.Errorf("pgstore: migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, MigrationSQL); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: migrate: commit: %w", err)
	}
	return nil
}

// Purge deletes the rows that have expired and returns how many.
func (s *Store) Purge(ctx context.Context) (int64, error) {
	var n int64
	for _, table := range []string{"courier_idempotency", "courier_sequence", "courier_ordering"} {
		tag, err := s.db.Exec(ctx, "DELETE FROM "+table+" WHERE expires_at <= "+nowMS)
		if err != nil {
			return n, fmt.Errorf("pgstore: purge %s: %w", table, err)
		}
		n += tag.RowsAffected()
	}
	return n, nil
}

func ms(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(int64(d/time.Millisecond), 1)
}

// claimSQL takes the key when it is absent, expired, or already the owner's; otherwise it
// returns the row as it was. Status 1 acquired, 2 done, 3 busy; then the remaining ms.
const claimSQL = `WITH now AS (SELECT ` + nowMS + ` AS ms),
ins AS (
	INSERT INTO courier_idempotency AS t (key, owner, done, expires_at)
	SELECT $1, $2, false, now.ms + $3 FROM now
	ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, done = false, expires_at = EXCLUDED.expires_at
	WHERE t.expires_at <= (SELECT ms FROM now) OR (NOT t.done AND t.owner = EXCLUDED.owner)
	RETURNING 1
)
SELECT 1, 0::bigint FROM ins
UNION ALL
SELECT CASE WHEN t.done THEN 2 ELSE 3 END, t.expires_at - now.ms
FROM courier_idempotency t, now
WHERE t.key = $1 AND NOT EXISTS (SELECT 1 FROM ins)`

// Claim implements idempotency.Store.
func (s *Store) Claim(ctx context.Context, key, owner string, lease time.Duration) (idempotency.Claim, error) {
	for try := 0; ; try++ {
		var status, remaining int64
		err := s.db.QueryRow(ctx, claimSQL, key, owner, ms(lease)).Scan(&status, &remaining)
		if errors.Is(err, pgx.ErrNoRows) && try < 5 {
			// A row committed by another transaction after this statement's snapshot: the
			// insert saw it, the read did not. Ask again.
			continue
		}
		if err != nil {
			return idempotency.Claim{}, fmt.Errorf("pgstore: claim: %w", err)
		}
		return idempotency.Claim{Status: idempotency.Status(status), Remaining: time.Duration(max(remaining, 0)) * time.Millisecond}, nil
	}
}

// completeSQL marks the key done and reports whether owner held a live claim on it.
const completeSQL = `WITH now AS (SELECT ` + nowMS + ` AS ms),
old AS (SELECT owner, done, expires_at FROM courier_idempotency WHERE key = $1 FOR UPDATE),
up AS (
	INSERT INTO courier_idempotency AS t (key, owner, done, expires_at)
	SELECT $1, '', true, now.ms + $3 FROM now
	ON CONFLICT (key) DO UPDATE SET owner = '', done = true, expires_at = EXCLUDED.expires_at
	RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM old, now WHERE NOT old.done AND old.owner = $2 AND old.expires_at > now.ms)
	AND EXISTS (SELECT 1 FROM up)`

// Complete implements idempotency.Store.
func (s *Store) Complete(ctx context.Context, key, owner string, retention time.Duration) error {
	var held bool
	if err := s.db.QueryRow(ctx, completeSQL, key, owner, ms(retention)).Scan(&held); err != nil {
		return fmt.Errorf("pgstore: complete: %w", err)
	}
	if !held {
		return idempotency.ErrLeaseLost
	}
	return nil
}

// Release implements idempotency.Store.
func (s *Store) Release(ctx context.Context, key, owner string) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM courier_idempotency WHERE key = $1 AND owner = $2 AND NOT done`, key, owner); err != nil {
		return fmt.Errorf("pgstore: release: %w", err)
	}
	return nil
}

// reserveSQL adds $2 to the counter, starting it again (epoch = now) when it expired.
const reserveSQL = `INSERT INTO courier_sequence AS t (key, epoch, seq, expires_at)
SELECT $1, now.ms, $2, now.ms + $3 FROM (SELECT ` + nowMS + ` AS ms) now
ON CONFLICT (key) DO UPDATE SET
	epoch = CASE WHEN t.expires_at <= EXCLUDED.epoch THEN EXCLUDED.epoch ELSE t.epoch END,
	seq = CASE WHEN t.expires_at <= EXCLUDED.epoch THEN EXCLUDED.seq ELSE t.seq + EXCLUDED.seq END,
	expires_at = EXCLUDED.expires_at
RETURNING epoch, seq`

// Reserve implements ordering.Store: one upsert per counter, all in one pipelined batch (one
// round trip), in key order so that concurrent batches cannot deadlock.
func (s *Store) Reserve(ctx context.Context, rs []ordering.Reservation, retention time.Duration) error {
	if len(rs) == 1 {
		if err := s.db.QueryRow(ctx, reserveSQL, rs[0].Key, rs[0].Count, ms(retention)).Scan(&rs[0].Epoch, &rs[0].Last); err != nil {
			return fmt.Errorf("pgstore: reserve: %w", err)
		}
		return nil
	}
	order := make([]int, len(rs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		switch {
		case rs[a].Key < rs[b].Key:
			return -1
		case rs[a].Key > rs[b].Key:
			return 1
		}
		return 0
	})
	b := &pgx.Batch{}
	for _, i := range order {
		b.Queue(reserveSQL, rs[i].Key, rs[i].Count, ms(retention))
	}
	br := s.db.SendBatch(ctx, b)
	for _, i := range order {
		if err := br.QueryRow().Scan(&rs[i].Epoch, &rs[i].Last); err != nil {
			_ = br.Close()
			return fmt.Errorf("pgstore: reserve: %w", err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("pgstore: reserve: %w", err)
	}
	return nil
}

// issuedSQL reads a live counter.
const issuedSQL = `SELECT epoch, seq FROM courier_sequence WHERE key = $1 AND expires_at > ` + nowMS

// Issued implements ordering.Store.
func (s *Store) Issued(ctx context.Context, counter string) (epoch, last int64, err error) {
	err = s.db.QueryRow(ctx, issuedSQL, counter).Scan(&epoch, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("pgstore: issued: %w", err)
	}
	return epoch, last, nil
}

// readStateSQL reads key's row (all zero when there is none) and the clock.
const readStateSQL = `SELECT coalesce(o.epoch, 0), coalesce(o.last, 0), coalesce(o.claim_seq, 0),
	coalesce(o.claim_owner, ''), coalesce(o.claim_until, 0), coalesce(o.gap_since, 0),
	coalesce(o.expires_at, 0), coalesce(o.version, 0), coalesce(o.skipped, '{}'), n.ms
FROM (SELECT ` + nowMS + ` AS ms) n LEFT JOIN courier_ordering o ON o.key = $1`

// insertStateSQL creates key's row; it does nothing if another writer created it first.
const insertStateSQL = `INSERT INTO courier_ordering (key, epoch, last, claim_seq, claim_owner, claim_until,
	gap_since, expires_at, skipped, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1) ON CONFLICT (key) DO NOTHING`

// updateStateSQL writes key's row if it is still at the version read.
const updateStateSQL = `UPDATE courier_ordering SET epoch = $2, last = $3, claim_seq = $4, claim_owner = $5,
	claim_until = $6, gap_since = $7, expires_at = $8, skipped = $9, version = version + 1 WHERE key = $1 AND version = $10`

// row is an ordering row as read.
type row struct {
	st      ordering.State
	now     time.Time
	expires int64
}

// withState applies fn to key's state with optimistic concurrency: read the row (one round
// trip), apply fn, and when it asks to write, write only if no one else wrote since (one more
// round trip); on a conflict, start again. fn returns whether to write and the new expiry
// (Unix ms; 0 keeps the row's).
func (s *Store) withState(ctx context.Context, key string, fn func(r *row) (write bool, expires int64, err error)) error {
	for {
		var (
			r                  row
			claimUntil, gapSin int64
			version, nowMs     int64
		)
		if err := s.db.QueryRow(ctx, readStateSQL, key).Scan(&r.st.Epoch, &r.st.Last, &r.st.ClaimSeq, &r.st.ClaimOwner,
			&claimUntil, &gapSin, &r.expires, &version, &r.st.Skipped, &nowMs); err != nil {
			return err
		}
		r.now = time.UnixMilli(nowMs)
		if r.expires <= nowMs {
			r.st = ordering.State{} // absent or expired
		} else {
			r.st.ClaimUntil, r.st.GapSince = fromMS(claimUntil), fromMS(gapSin)
		}
		write, expires, err := fn(&r)
		if err != nil || !write {
			return err
		}
		if expires == 0 {
			expires = r.expires
		}
		skipped := r.st.Skipped
		if skipped == nil {
			skipped = []int64{}
		}
		args := []any{key, r.st.Epoch, r.st.Last, r.st.ClaimSeq, r.st.ClaimOwner, toMS(r.st.ClaimUntil), toMS(r.st.GapSince), expires, skipped}
		var tag pgconn.CommandTag
		if version == 0 {
			tag, err = s.db.Exec(ctx, insertStateSQL, args...)
		} else {
			tag, err = s.db.Exec(ctx, updateStateSQL, append(args, version)...)
		}
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Another writer got there first: read again.
	}
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

func toMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// Begin implements ordering.Store.
func (s *Store) Begin(ctx context.Context, key string, req ordering.BeginRequest) (ordering.BeginResult, error) {
	var res ordering.BeginResult
	err := s.withState(ctx, key, func(r *row) (bool, int64, error) {
		var changed bool
		res, changed = r.st.Begin(r.now, req)
		return changed, r.now.UnixMilli() + ms(req.Retention), nil
	})
	if err != nil {
		return ordering.BeginResult{}, fmt.Errorf("pgstore: begin: %w", err)
	}
	return res, nil
}

// Commit implements ordering.Store.
func (s *Store) Commit(ctx context.Context, key string, seq int64, owner string, retention time.Duration) error {
	var lost error
	err := s.withState(ctx, key, func(r *row) (bool, int64, error) {
		if lost = r.st.Commit(r.now, seq, owner); lost != nil {
			return false, 0, nil
		}
		return true, r.now.UnixMilli() + ms(retention), nil
	})
	if err != nil {
		return fmt.Errorf("pgstore: commit: %w", err)
	}
	return lost
}

// Abort implements ordering.Store.
func (s *Store) Abort(ctx context.Context, key string, seq int64, owner string) error {
	err := s.withState(ctx, key, func(r *row) (bool, int64, error) {
		return r.st.Abort(r.now, seq, owner), 0, nil
	})
	if err != nil {
		return fmt.Errorf("pgstore: abort: %w", err)
	}
	return nil
}
