package outbox

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// The relay's queries. The key lock query scans the oldest keyed rows (skipping keys in
// backoff) and locks the keys no other relay holds; the rows query then runs as a new
// statement — under READ COMMITTED a fresh snapshot taken after the locks — so it sees every
// deletion the previous holder of a key committed.
const (
	lockKeysSQL = `SELECT k FROM (SELECT DISTINCT key AS k FROM (
		SELECT key FROM courier_outbox WHERE key <> '' AND key <> ALL($1::text[]) ORDER BY seq LIMIT $2) s) c
		WHERE pg_try_advisory_xact_lock(` + "%d" + `, hashtext(k))`
	rowCols      = `seq, id, topic, key, payload, headers, publish_time`
	keyedRowsSQL = `SELECT ` + rowCols + ` FROM courier_outbox WHERE key = ANY($1::text[]) ORDER BY seq LIMIT $2`
	unkeyedSQL   = `SELECT ` + rowCols + ` FROM courier_outbox WHERE key = '' AND seq <> ALL($1::bigint[])
		ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED`
	deleteSQL = `DELETE FROM courier_outbox WHERE seq = ANY($1::bigint[])`
	failSQL   = `UPDATE courier_outbox SET attempts = attempts + 1, last_error = $2 WHERE seq = $1`
)

// round is one transaction: lock keys, read their rows and unkeyed rows, publish, delete what
// the broker confirmed, commit (which releases the locks). It reports whether a batch was
// full (more rows are probably waiting).
func (r *Relay) round(ctx context.Context) (bool, error) {
	// The round outlives a cancelled Run, so that confirmed sends are marked.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.PublishTimeout)
	defer cancel()
	tx, err := r.cfg.DB.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	skipKeys, skipSeqs := r.skipped(time.Now())
	keyed, err := r.keyedRows(ctx, tx, skipKeys)
	if err != nil {
		return false, err
	}
	rows, err := tx.Query(ctx, unkeyedSQL, skipSeqs, r.cfg.BatchSize)
	if err != nil {
		return false, fmt.Errorf("read unkeyed rows: %w", err)
	}
	unkeyed, err := scanRows(rows)
	if err != nil {
		return false, fmt.Errorf("read unkeyed rows: %w", err)
	}
	if len(keyed)+len(unkeyed) == 0 {
		return false, nil
	}
	sent, failed := r.publish(ctx, groups(keyed, unkeyed))
	if err := r.mark(ctx, tx, sent, failed); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit (%d sent rows stay and will be sent again): %w", len(sent), err)
	}
	r.settle(sent, failed)
	return len(keyed) >= r.cfg.BatchSize || len(unkeyed) >= r.cfg.BatchSize, nil
}

func (r *Relay) keyedRows(ctx context.Context, tx pgx.Tx, skip []string) ([]row, error) {
	rows, err := tx.Query(ctx, fmt.Sprintf(lockKeysSQL, relayKeyLock), skip, 4*r.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("lock keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(keys) == 0 {
		if err != nil {
			err = fmt.Errorf("lock keys: %w", err)
		}
		return nil, err
	}
	rows, err = tx.Query(ctx, keyedRowsSQL, keys, r.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("read keyed rows: %w", err)
	}
	out, err := scanRows(rows)
	if err != nil {
		return nil, fmt.Errorf("read keyed rows: %w", err)
	}
	return out, nil
}

// groups splits rows into what must go in order: one group per key (rows in seq order), and
// one group per unkeyed row.
func groups(keyed, unkeyed []row) [][]row {
	var out [][]row
	at := map[string]int{}
	for _, w := range keyed {
		i, ok := at[w.key]
		if !ok {
			i = len(out)
			at[w.key] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], w)
	}
	for _, w := range unkeyed {
		out = append(out, []row{w})
	}
	return out
}

// failedRow is the first row of a group that was not sent, and why.
type failedRow struct {
	row row
	err error
}

// publish sends the groups, Parallelism at a time; within a group, consecutive rows of one
// topic go in one call, and the group stops at its first failure.
func (r *Relay) publish(ctx context.Context, gs [][]row) (sent []int64, failed []failedRow) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.cfg.Parallelism)
	for _, g := range gs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ok, f := r.publishGroup(ctx, g)
			mu.Lock()
			defer mu.Unlock()
			sent = append(sent, ok...)
			if f != nil {
				failed = append(failed, *f)
			}
		})
	}
	wg.Wait()
	return sent, failed
}

func (r *Relay) publishGroup(ctx context.Context, g []row) ([]int64, *failedRow) {
	var sent []int64
	for len(g) > 0 {
		n := 1
		for n < len(g) && g[n].topic == g[0].topic {
			n++
		}
		run := g[:n]
		msgs := make([]*message.Message, 0, n)
		for i, w := range run {
			m, err := w.message()
			if err != nil {
				if i > 0 {
					break // send the good prefix first; the bad row fails next time round
				}
				return sent, &failedRow{row: w, err: err}
			}
			msgs = append(msgs, m)
		}
		err := r.cfg.Publisher.Publish(ctx, run[0].topic, msgs...)
		ok := confirmed(err, len(msgs))
		for _, w := range run[:ok] {
			sent = append(sent, w.seq)
		}
		if ok < len(msgs) {
			return sent, &failedRow{row: run[ok], err: err}
		}
		g = g[len(msgs):]
	}
	return sent, nil
}

// confirmed returns how many leading messages of a call the broker accepted: all on nil, the
// prefix before the first failed index on a *transport.PublishError, none otherwise. Rows
// after a failure stay unsent even if the broker took them (they will be sent again: at least
// once), so that a key's order holds.
func confirmed(err error, n int) int {
	if err == nil {
		return n
	}
	var pe *transport.PublishError
	if !errors.As(err, &pe) || len(pe.Failed) == 0 {
		return 0
	}
	first := n
	for _, f := range pe.Failed {
		first = min(first, f.Index)
	}
	return max(first, 0)
}

// mark deletes the sent rows and records the failures, in the round's transaction.
func (r *Relay) mark(ctx context.Context, tx pgx.Tx, sent []int64, failed []failedRow) error {
	if len(sent) > 0 {
		if _, err := tx.Exec(ctx, deleteSQL, sent); err != nil {
			return fmt.Errorf("delete %d sent rows (they will be sent again): %w", len(sent), err)
		}
	}
	for _, f := range failed {
		msg := f.err.Error()
		if len(msg) > 1000 {
			msg = msg[:1000]
		}
		msg = strings.ToValidUTF8(strings.ReplaceAll(msg, "\x00", ""), "?")
		if _, err := tx.Exec(ctx, failSQL, f.row.seq, msg); err != nil {
			return fmt.Errorf("record failure of row %d: %w", f.row.seq, err)
		}
	}
	return nil
}

// settle updates the backoff after a committed round: failures back off exponentially with
// jitter, keys that sent again are forgotten.
func (r *Relay) settle(sent []int64, failed []failedRow) {
	now := time.Now()
	for _, f := range failed {
		name := backoffName(f.row)
		st := r.backoff[name]
		st.n++
		d := min(r.cfg.RetryMax, r.cfg.RetryMin<<min(st.n-1, 20))
		d = d/2 + rand.N(d/2+1)
		st.until = now.Add(d)
		r.backoff[name] = st
		r.cfg.Logger.Warn("outbox relay: publish failed; the key waits", "topic", f.row.topic,
			"key", f.row.key, "id", f.row.id, "attempt", st.n, "retry_in", d, "err", f.err)
	}
	if len(failed) == 0 && len(sent) > 0 {
		clear(r.backoff) // everything went through: failures have passed
	}
}

// skipped returns the keys and unkeyed rows still in backoff, forgetting expired entries.
func (r *Relay) skipped(now time.Time) (keys []string, seqs []int64) {
	keys, seqs = []string{}, []int64{}
	for name, st := range r.backoff {
		if !now.Before(st.until) {
			continue // kept (attempt count) until the key succeeds
		}
		if k, ok := strings.CutPrefix(name, "k:"); ok {
			keys = append(keys, k)
		} else if s, err := strconv.ParseInt(name[2:], 10, 64); err == nil {
			seqs = append(seqs, s)
		}
	}
	return keys, seqs
}
