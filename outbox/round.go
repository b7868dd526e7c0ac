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
	out := r.publish(ctx, groups(keyed, unkeyed))
	if err := r.mark(ctx, tx, out); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit (%d sent rows stay and will be sent again): %w", len(out.sent), err)
	}
	r.settle(ctx, out)
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

// outcome is what publishing a round's groups came to.
type outcome struct {
	sent   []int64
	dead   []deadRow
	failed []failedRow
}

// publish sends the groups, Parallelism at a time; within a group, consecutive rows of one
// topic go in one call, and the group stops at its first retryable failure.
func (r *Relay) publish(ctx context.Context, gs [][]row) outcome {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var out outcome
	sem := make(chan struct{}, r.cfg.Parallelism)
	for _, g := range gs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res := r.publishGroup(ctx, g)
			mu.Lock()
			defer mu.Unlock()
			out.sent = append(out.sent, res.sent...)
			out.dead = append(out.dead, res.dead...)
			out.failed = append(out.failed, res.failed...)
		})
	}
	wg.Wait()
	return out
}

// publishGroup sends one group in order. A row refused permanently (see decide) is set aside
// for the dead table and the group goes on; a retryable failure ends the group.
func (r *Relay) publishGroup(ctx context.Context, g []row) (res outcome) {
	alone := false
	for len(g) > 0 {
		n := 1
		for !alone && n < len(g) && g[n].topic == g[0].topic {
			n++
		}
		run := g[:n]
		msgs := make([]*message.Message, 0, n)
		var decodeErr error
		for _, w := range run {
			m, err := w.message()
			if err != nil {
				decodeErr = err // send the good prefix first; the bad row comes next
				break
			}
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			_, reason, err := decide(decodeErr, 0, 1)
			res.dead = append(res.dead, deadRow{row: g[0], reason: reason, err: err})
			g = g[1:]
			continue
		}
		err := r.cfg.Publisher.Publish(ctx, run[0].topic, msgs...)
		ok := confirmed(err, len(msgs))
		for _, w := range run[:ok] {
			res.sent = append(res.sent, w.seq)
		}
		if ok == len(msgs) {
			g = g[ok:]
			continue
		}
		switch v, reason, rowErr := decide(err, ok, len(msgs)); v {
		case deadLetter:
			res.dead = append(res.dead, deadRow{row: run[ok], reason: reason, err: rowErr})
			g = g[ok+1:]
		case sendAlone:
			alone, g = true, g[ok:]
		default:
			res.failed = append(res.failed, failedRow{row: run[ok], err: err})
			return res
		}
	}
	return res
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

// mark deletes the sent rows, moves the dead ones to the dead table and records the
// failures, in the round's transaction.
func (r *Relay) mark(ctx context.Context, tx pgx.Tx, out outcome) error {
	if len(out.sent) > 0 {
		if _, err := tx.Exec(ctx, deleteSQL, out.sent); err != nil {
			return fmt.Errorf("delete %d sent rows (they will be sent again): %w", len(out.sent), err)
		}
	}
	for _, d := range out.dead {
		if _, err := tx.Exec(ctx, deadSQL, d.row.seq, d.reason, errText(d.err)); err != nil {
			return fmt.Errorf("move row %d to courier_outbox_dead: %w", d.row.seq, err)
		}
	}
	for _, f := range out.failed {
		if _, err := tx.Exec(ctx, failSQL, f.row.seq, errText(f.err)); err != nil {
			return fmt.Errorf("record failure of row %d: %w", f.row.seq, err)
		}
	}
	return nil
}

// errText is err's text as PostgreSQL text: at most 1000 bytes, valid UTF-8, no NUL.
func errText(err error) string {
	msg := err.Error()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	return strings.ToValidUTF8(strings.ReplaceAll(msg, "\x00", ""), "?")
}

// settle runs after a committed round: it reports the dead-lettered rows (log and
// OnDeadLetter), backs failures off exponentially with jitter, and forgets the backoff of
// keys once a round had no failure.
func (r *Relay) settle(ctx context.Context, out outcome) {
	for _, d := range out.dead {
		r.cfg.Logger.Warn("outbox relay: row refused permanently; moved to courier_outbox_dead",
			"topic", d.row.topic, "key", d.row.key, "id", d.row.id, "seq", d.row.seq, "reason", d.reason, "err", d.err)
		if r.cfg.OnDeadLetter != nil {
			r.cfg.OnDeadLetter(ctx, DeadLetter{Seq: d.row.seq, ID: d.row.id, Topic: d.row.topic, Key: d.row.key,
				Reason: d.reason, Err: d.err})
		}
	}
	now := time.Now()
	for _, f := range out.failed {
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
	if len(out.failed) == 0 && len(out.sent)+len(out.dead) > 0 {
		clear(r.backoff) // everything went through or was set aside: failures have passed
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
