//go:build integration

package exactlyonce

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/outbox"
	"github.com/courierhq/courier/transport"
)

// ledger records what the test's consumer received from the broker.
type ledger struct {
	mu       sync.Mutex
	seen     map[string]int
	high     map[string]int // key → highest seq first received
	bad      map[string]string
	received int
}

func (l *ledger) handle(_ context.Context, m *message.Message) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.received++
	l.seen[m.ID]++
	if l.seen[m.ID] > 1 {
		return nil
	}
	seq := seqOf(m)
	if h, ok := l.high[m.Key]; ok && seq < h {
		if _, dup := l.bad[m.Key]; !dup {
			l.bad[m.Key] = fmt.Sprintf("%d after %d", seq, h)
		}
		return nil
	}
	l.high[m.Key] = seq
	return nil
}

func (l *ledger) distinct(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for id := range l.seen {
		if strings.HasPrefix(id, prefix) {
			n++
		}
	}
	return n
}

func TestRelayKill(t *testing.T) {
	n := messageCount(t)
	pgURL, pool := schema(t)
	brokerURL := brokers.Endpoint(t, brokers.RabbitMQ)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := outbox.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	id := rand.IntN(1_000_000)
	topic, subName := fmt.Sprintf("relay-kill-%06d", id), fmt.Sprintf("relay-ledger-%06d", id)
	l := &ledger{seen: map[string]int{}, high: map[string]int{}, bad: map[string]string{}}
	stopSub := consumeInto(t, ctx, brokerURL, topic, subName, l)
	defer stopSub()

	// Write while the relay runs: committed transactions of 50, a rolled-back one every 5th.
	msgs, rolled := keyedMessages("c", n), keyedMessages("rb", n/5)
	writeErr := make(chan error, 1)
	go func() { writeErr <- writeAll(ctx, pool, topic, msgs, rolled) }()

	k := &kids{t: t, dir: t.TempDir(), env: []string{envChild + "=relay", envPG + "=" + pgURL,
		envURL + "=" + brokerURL, envTopic + "=" + topic}}
	start := time.Now()
	cmd := k.start()
	points := killPoints()
	for i, f := range points {
		if !waitUntil(ctx, func() bool { return l.distinct("c-") >= int(f*float64(n)) }) {
			k.stop(cmd)
			t.Fatalf("kill %d: the relay stalled before %.0f%% (%s)", i+1, f*100, k.tail())
		}
		k.kill(cmd)
		cmd = k.start()
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	done := waitUntil(ctx, func() bool { return l.distinct("c-") >= n })
	time.Sleep(2 * time.Second) // late duplicates and any rolled-back row would show
	k.stop(cmd)
	rb := l.distinct("rb-")
	l.mu.Lock()
	defer l.mu.Unlock()
	got, dups := 0, 0
	for id, c := range l.seen {
		if strings.HasPrefix(id, "c-") {
			got++
			dups += c - 1
		}
	}
	t.Logf("relay ledger: %d committed rows, %d received, %d lost, %d duplicates (same ID, at least once), kills at %.0f%%/%.0f%%/%.0f%%, %v",
		n, l.received, n-got, dups, points[0]*100, points[1]*100, points[2]*100, time.Since(start).Round(time.Second))
	if !done || got != n {
		t.Errorf("%d of %d committed rows never reached the broker (%s)", n-got, n, k.tail())
	}
	if rb != 0 {
		t.Errorf("%d rolled-back rows reached the broker", rb)
	}
	if len(l.bad) != 0 {
		t.Errorf("%d keys first received out of order: %v", len(l.bad), l.bad)
	}
	var left int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM courier_outbox").Scan(&left); err != nil || left != 0 {
		t.Errorf("%d rows left in the outbox (err %v)", left, err)
	}
}

// writeAll writes msgs in committed transactions of 50 and, after every 5th, rolls back a
// transaction of 10 rolled messages.
func writeAll(ctx context.Context, pool *pgxpool.Pool, topic string, msgs, rolled []*message.Message) error {
	for i, j := 0, 0; i < len(msgs); i += 50 {
		if err := writeTx(ctx, pool, topic, true, msgs[i:min(i+50, len(msgs))]); err != nil {
			return err
		}
		if i/50%5 == 4 && j < len(rolled) {
			if err := writeTx(ctx, pool, topic, false, rolled[j:min(j+10, len(rolled))]); err != nil {
				return err
			}
			j += 10
		}
	}
	return nil
}

func writeTx(ctx context.Context, pool *pgxpool.Pool, topic string, commit bool, msgs []*message.Message) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := (outbox.Writer{}).Write(ctx, tx, topic, msgs...); err != nil {
		return err
	}
	if !commit {
		return tx.Rollback(ctx)
	}
	return tx.Commit(ctx)
}

// consumeInto subscribes l to topic on the broker and returns the function that stops it.
func consumeInto(t *testing.T, ctx context.Context, brokerURL, topic, sub string, l *ledger) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	conn, err := transport.OpenConfig(ctx, brokerURL, transport.ConnConfig{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := conn.Subscribe(ctx, topic, sub, transport.SubscriberConfig{Concurrency: 8, Start: transport.StartEarliest})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, l.handle) }()
	return func() {
		cancel()
		<-done
		_ = conn.Close(context.Background())
	}
}
