package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/courierhq/courier/message"
)

// ErrInvalidMessage is returned by Write for a message that cannot be stored (nil, invalid
// UTF-8 in ID, key or a header, a reserved or empty topic). Nothing of the call is written.
var ErrInvalidMessage = errors.New("outbox: invalid message")

// Execer is the part of a pgx transaction the Writer uses: pgx.Tx satisfies it (so do
// *pgx.Conn and *pgxpool.Pool, but then the rows are not part of any transaction of yours).
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// writerKeyLock is the first half of the transaction-level advisory lock a Writer takes per
// ordering key ("obw" in ASCII); the relay uses relayKeyLock, so the two never wait on each
// other.
const writerKeyLock = 0x6f6277

// MaxWrite is the most messages one Write call takes (PostgreSQL allows 65,535 parameters
// per statement, and a message uses six); write more in several calls of one transaction.
const MaxWrite = 5000

// Writer writes messages into the outbox table inside the caller's transaction. It holds no
// state and is safe for concurrent use; the zero value is ready.
//
// Write sets each message's ID (a UUIDv7, unless the caller set one) and PublishTime (now,
// unless set) before the INSERT, so the caller learns the IDs; the relay publishes the
// messages with exactly these IDs, which is what lets the idempotency or exactly-once
// middleware fold a redelivery after a relay crash. If the transaction rolls back, nothing
// was written and nothing is published.
//
// Per-key order: for keyed messages, Write takes a transaction-level advisory lock per key
// before inserting, so transactions writing the same key commit their rows in seq order
// (a second writer of the key waits for the first to commit or roll back). Without it, a
// later seq could commit first and be relayed before an earlier one.
type Writer struct{}

// Write inserts msgs for topic through tx (a pgx.Tx). See Writer.
func (Writer) Write(ctx context.Context, tx Execer, topic string, msgs ...*message.Message) error {
	q, args, err := buildInsert(topic, msgs)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("outbox: write to %q: %w", topic, err)
	}
	return nil
}

// WriteSQL inserts msgs for topic through a database/sql transaction on PostgreSQL (any
// driver taking $n parameters: pgx's stdlib, lib/pq). See Writer.
func (Writer) WriteSQL(ctx context.Context, tx *sql.Tx, topic string, msgs ...*message.Message) error {
	q, args, err := buildInsert(topic, msgs)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("outbox: write to %q: %w", topic, err)
	}
	return nil
}

// buildInsert stamps IDs and publish times and returns one INSERT for all msgs, preceded (in
// the same statement) by the advisory locks of their keys, taken in sorted order.
func buildInsert(topic string, msgs []*message.Message) (string, []any, error) {
	if err := validate(topic, msgs); err != nil {
		return "", nil, err
	}
	now := time.Now()
	var b strings.Builder
	args := make([]any, 0, 6*len(msgs)+8)
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var keys []string
	for _, m := range msgs {
		if m.Key != "" && !slices.Contains(keys, m.Key) {
			keys = append(keys, m.Key)
		}
	}
	slices.Sort(keys)
	b.WriteString("INSERT INTO courier_outbox (id, topic, key, payload, headers, publish_time) SELECT v.* FROM (VALUES ")
	for i, m := range msgs {
		if m.ID == "" {
			id, err := uuid.NewV7()
			if err != nil {
				return "", nil, fmt.Errorf("outbox: write to %q: generate message ID: %w", topic, err)
			}
			m.ID = id.String()
		}
		if m.PublishTime.IsZero() {
			m.PublishTime = now
		}
		h, err := json.Marshal(m.Headers)
		if err != nil || m.Headers == nil {
			h = []byte("{}")
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%s::text, %s::text, %s::text, %s::bytea, %s::jsonb, %s::timestamptz)",
			param(m.ID), param(topic), param(m.Key), param(payloadOf(m)), param(string(h)), param(m.PublishTime))
	}
	b.WriteString(") AS v(id, topic, key, payload, headers, publish_time)")
	if len(keys) > 0 {
		// The aggregate must finish before the join yields a row, so every lock is held
		// before the first row (and its seq) reaches the INSERT.
		b.WriteString(" CROSS JOIN (SELECT count(pg_advisory_xact_lock(" + strconv.Itoa(writerKeyLock) + ", hashtext(k))) FROM (VALUES ")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(" + param(k) + "::text)")
		}
		b.WriteString(") AS l(k)) AS locks")
	}
	return b.String(), args, nil
}

func payloadOf(m *message.Message) []byte {
	if m.Payload == nil {
		return []byte{}
	}
	return m.Payload
}

// validate rejects what no broker (or PostgreSQL's text type) accepts, before anything is
// written.
func validate(topic string, msgs []*message.Message) error {
	if topic == "" || !utf8.ValidString(topic) || strings.ContainsRune(topic, 0) {
		return fmt.Errorf("%w: topic %q is empty or not valid UTF-8", ErrInvalidMessage, topic)
	}
	if len(msgs) == 0 || len(msgs) > MaxWrite {
		return fmt.Errorf("%w: %d messages given, want 1 to %d", ErrInvalidMessage, len(msgs), MaxWrite)
	}
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("%w: message %d is nil", ErrInvalidMessage, i)
		}
		if !validText(m.ID) || !validText(m.Key) {
			return fmt.Errorf("%w: message %d: ID or key is not valid UTF-8 text", ErrInvalidMessage, i)
		}
		for k, v := range m.Headers {
			if k == "" || !validText(k) || !validText(v) {
				return fmt.Errorf("%w: message %d: header %q is empty or not valid UTF-8 text", ErrInvalidMessage, i, k)
			}
		}
	}
	return nil
}

// validText reports whether s can be stored in a PostgreSQL text column.
func validText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
