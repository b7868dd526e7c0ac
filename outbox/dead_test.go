package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/outbox"
	"github.com/courierhq/courier/transport"
)

// refusing refuses the messages whose "refuse" header is set, as a broker refusing them as
// too large: with a *transport.PublishError naming them (the others are accepted), or, when
// plain, with a bare error for the whole call (nothing accepted).
type refusing struct {
	p     *tracker
	plain bool
}

func (r refusing) Publish(ctx context.Context, topic string, ms ...*message.Message) error {
	var ok []*message.Message
	pe := &transport.PublishError{Topic: topic, Total: len(ms)}
	for i, m := range ms {
		if m.Header("refuse") != "" {
			pe.Failed = append(pe.Failed, transport.FailedMessage{Index: i, ID: m.ID,
				Err: fmt.Errorf("record of %d bytes: %w", len(m.Payload), transport.ErrMessageTooLarge)})
		} else {
			ok = append(ok, m)
		}
	}
	switch {
	case len(pe.Failed) == 0:
		return r.p.Publish(ctx, topic, ms...)
	case r.plain:
		return fmt.Errorf("kafka: %w", transport.ErrMessageTooLarge)
	}
	if len(ok) > 0 {
		if err := r.p.Publish(ctx, topic, ok...); err != nil {
			return err
		}
	}
	return pe
}

// TestPermanentRowsAreDeadLettered: rows the broker refuses as too large, and a row whose
// stored headers do not decode, move to courier_outbox_dead with their reason (hook called)
// and their keys go on at once, in order. RetryMin is a minute, so a key left backing off
// would fail the test.
func TestPermanentRowsAreDeadLettered(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) { testDeadLetter(t, plain) })
	}
}

func testDeadLetter(t *testing.T, plain bool) {
	u := schemaURL(t)
	pool := openPool(t, u)
	ctx := context.Background()
	pub := newTracker()
	var mu sync.Mutex
	var hooked []outbox.DeadLetter
	ms := msgs("d", 30, 3)
	for _, i := range []int{4, 10, 21} {
		ms[i].Headers["refuse"] = "1"
	}
	write(t, pool, "dead", true, ms[:15]...)
	if _, err := pool.Exec(ctx, `INSERT INTO courier_outbox (id, topic, key, payload, headers)
		VALUES ('bad-headers', 'dead', 'k02', 'x', '{"n": 1}')`); err != nil {
		t.Fatal(err)
	}
	write(t, pool, "dead", true, ms[15:]...)
	startRelay(t, outbox.Config{DB: pool, Publisher: refusing{pub, plain}, PollInterval: 20 * time.Millisecond,
		RetryMin: time.Minute, RetryMax: time.Minute, Logger: quiet(),
		OnDeadLetter: func(_ context.Context, d outbox.DeadLetter) {
			mu.Lock()
			defer mu.Unlock()
			hooked = append(hooked, d)
		}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		var left int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM courier_outbox").Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows still in the outbox after 20 s: a refused row blocks its key", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pub.mu.Lock()
	if len(pub.order["k00"])+len(pub.order["k01"])+len(pub.order["k02"]) != 27 {
		t.Errorf("sent per key: %d/%d/%d, want 27 in all", len(pub.order["k00"]), len(pub.order["k01"]), len(pub.order["k02"]))
	}
	checkOrder(t, pub.order)
	pub.mu.Unlock()

	rows, err := pool.Query(ctx, "SELECT id, key, reason, error, attempts FROM courier_outbox_dead ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id, key, reason, text string
		var attempts int
		if err := rows.Scan(&id, &key, &reason, &text, &attempts); err != nil {
			t.Fatal(err)
		}
		if text == "" || attempts != 1 {
			t.Errorf("dead row %s: error %q, attempts %d", id, text, attempts)
		}
		got = append(got, key+" "+reason)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"k01 message_too_large", "k01 message_too_large", "k02 undecodable_headers", "k00 message_too_large"}
	if !slices.Equal(got, want) {
		t.Errorf("dead rows %v, want %v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 4 {
		t.Fatalf("OnDeadLetter called %d times, want 4", len(hooked))
	}
	for _, d := range hooked {
		if d.Reason == outbox.ReasonTooLarge && !errors.Is(d.Err, transport.ErrMessageTooLarge) {
			t.Errorf("hook: %s: error %v does not match ErrMessageTooLarge", d.ID, d.Err)
		}
	}
}
