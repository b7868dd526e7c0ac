package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/deadletter"
	"github.com/courierhq/courier/transport"
)

func init() {
	middlewareTests = append(middlewareTests,
		namedTest{"Middleware/DeadLetter/Redrive", testDeadLetterRedrive},
	)
}

// testDeadLetterRedrive: messages dead-lettered (through a deadletter.Destination) are moved
// back by Redrive to their topic with payload, key and application headers intact and without
// the dead-letter headers, and handled there; a message in the dead-letter subscription that
// names no original topic is left in place, counted as failed, and can be moved by a later
// run with a fallback topic.
func testDeadLetterRedrive(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	dlTopic := c.DefaultDeadLetterTopic(topic)
	var deadLettered atomic.Int64
	dest, err := deadletter.New(deadletter.Config{Conn: c,
		OnDeadLetter: func(*message.Message, transport.Failure) { deadLettered.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	failing.Store(true)
	col := newCollector()
	h.run(t, h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{DeadLetter: dest}),
		func(ctx context.Context, m *message.Message) error {
			if failing.Load() {
				return message.Permanent(errors.New("downstream rejected the order"))
			}
			return col.handler(ctx, m)
		})

	n := h.n(20)
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = &message.Message{ID: fmt.Sprintf("dl-%d", i), Key: fmt.Sprintf("k%d", i%3),
			Payload: append([]byte(fmt.Sprintf("order %d ", i)), 0x00, 0xff, byte(i)), Headers: message.Headers{"app": "v", "n": fmt.Sprint(i)}}
	}
	publish(t, c, topic, msgs, 10)
	deadline := time.Now().Add(2 * h.Timeout)
	for deadLettered.Load() < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages dead-lettered", deadLettered.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// One that names no original topic (as broker-native dead-lettering leaves them).
	publish(t, c, dlTopic, []*message.Message{{ID: "orphan", Payload: []byte("no origin")}}, 1)
	failing.Store(false)

	ctx, cancel := context.WithTimeout(context.Background(), 4*h.Timeout)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	res, err := deadletter.Redrive(ctx, c, dlTopic, "s1"+transport.DeadLetterSuffix,
		deadletter.RedriveOptions{IdleTimeout: max(h.Timeout/10, 1500*time.Millisecond), StartTimeout: h.Timeout, Logger: quiet})
	if res.Moved != n || res.Failed != 1 || !errors.Is(err, deadletter.ErrNoOriginalTopic) {
		t.Fatalf("Redrive = %+v, %v; want %d moved and the orphan failed with ErrNoOriginalTopic", res, err, n)
	}
	col.waitDistinct(t, n, h.Timeout)
	want := map[string]*message.Message{}
	for _, m := range msgs {
		want[m.ID] = m
	}
	for _, r := range col.snapshot() {
		w := want[r.ID]
		if w == nil {
			t.Errorf("unexpected message %s redriven", r.ID)
			continue
		}
		if !bytes.Equal(r.Payload, w.Payload) || r.Key != w.Key || r.Headers["app"] != "v" || r.Headers["n"] != w.Headers["n"] {
			t.Errorf("%s came back as key %q payload %q headers %v", r.ID, r.Key, r.Payload, r.Headers)
		}
		for k := range r.Headers {
			if strings.HasPrefix(k, message.ReservedPrefix+"dlq-") {
				t.Errorf("%s came back with %s", r.ID, k)
			}
		}
		if r.Headers[message.HeaderRedriven] == "" {
			t.Errorf("%s came back without %s", r.ID, message.HeaderRedriven)
		}
	}

	// The orphan was left in place: a run with a fallback topic finds and moves it.
	res, err = deadletter.Redrive(ctx, c, dlTopic, "s1"+transport.DeadLetterSuffix,
		deadletter.RedriveOptions{IdleTimeout: h.Timeout, StartTimeout: h.Timeout, Max: 1, FallbackTopic: topic, Logger: quiet})
	if err != nil || res.Moved != 1 {
		t.Fatalf("second Redrive = %+v, %v; want the orphan moved", res, err)
	}
	col.waitDistinct(t, n+1, h.Timeout)
}
