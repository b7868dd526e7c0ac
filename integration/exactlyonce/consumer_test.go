//go:build integration

package exactlyonce

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/exactlyonce"
	"github.com/courierhq/courier/transport"
)

func TestExactlyOnceKill(t *testing.T) {
	n := messageCount(t)
	pgURL, pool := schema(t)
	brokerURL := brokers.Endpoint(t, brokers.RabbitMQ)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	eo, err := exactlyonce.New(exactlyonce.Config{DB: pool})
	if err != nil {
		t.Fatal(err)
	}
	if err := eo.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// No unique constraint on id: a repeated effect is a second row, counted below.
	if _, err := pool.Exec(ctx, "CREATE TABLE ledger (n bigserial PRIMARY KEY, id text NOT NULL, key text NOT NULL, seq integer NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	id := rand.IntN(1_000_000)
	topic, sub := fmt.Sprintf("eo-kill-%06d", id), fmt.Sprintf("eo-ledger-%06d", id)
	publishAll(t, ctx, brokerURL, topic, sub, keyedMessages("m", n))

	k := &kids{t: t, dir: t.TempDir(), env: []string{envChild + "=consumer", envPG + "=" + pgURL,
		envURL + "=" + brokerURL, envTopic + "=" + topic, envSub + "=" + sub}}
	rows := func() (total, distinct int) {
		_ = pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT id) FROM ledger").Scan(&total, &distinct)
		return total, distinct
	}
	start := time.Now()
	cmd := k.start()
	points := killPoints()
	for i, f := range points {
		if !waitUntil(ctx, func() bool { _, d := rows(); return d >= int(f*float64(n)) }) {
			k.stop(cmd)
			t.Fatalf("kill %d: the consumer stalled before %.0f%% (%s)", i+1, f*100, k.tail())
		}
		k.kill(cmd)
		cmd = k.start()
	}
	done := waitUntil(ctx, func() bool { _, d := rows(); return d >= n })
	time.Sleep(2 * time.Second) // late duplicates would show
	k.stop(cmd)
	total, distinct := rows()
	t.Logf("exactly-once ledger: %d published, %d effects, %d distinct, %d duplicates, %d lost, kills at %.0f%%/%.0f%%/%.0f%%, %v",
		n, total, distinct, total-distinct, n-distinct, points[0]*100, points[1]*100, points[2]*100, time.Since(start).Round(time.Second))
	if !done || distinct != n {
		t.Errorf("%d of %d messages have no effect (%s)", n-distinct, n, k.tail())
	}
	if total != distinct {
		var dups []string
		r, _ := pool.Query(ctx, "SELECT id FROM ledger GROUP BY id HAVING count(*) > 1 LIMIT 5")
		for r.Next() {
			var s string
			_ = r.Scan(&s)
			dups = append(dups, s)
		}
		r.Close()
		t.Errorf("%d effects written more than once, e.g. %v", total-distinct, dups)
	}
	var bad int
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT key) FROM (SELECT key, seq, lag(seq) OVER (PARTITION BY key ORDER BY n) AS prev FROM ledger) s
		WHERE prev IS NOT NULL AND seq < prev`).Scan(&bad); err != nil || bad != 0 {
		t.Errorf("%d keys had effects committed out of publish order (err %v)", bad, err)
	}
}

// publishAll creates the subscription (so that it retains what follows) and publishes msgs,
// 100 per confirmed batch.
func publishAll(t *testing.T, ctx context.Context, brokerURL, topic, sub string, msgs []*message.Message) {
	t.Helper()
	conn, err := transport.OpenConfig(ctx, brokerURL, transport.ConnConfig{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	s, err := conn.Subscribe(ctx, topic, sub, transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(msgs); i += 100 {
		if err := conn.Publish(ctx, topic, msgs[i:min(i+100, len(msgs))]...); err != nil {
			t.Fatal(err)
		}
	}
}
