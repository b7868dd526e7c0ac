package deadletter_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/deadletter"
	"github.com/courierhq/courier/transport"
)

// BenchmarkDestination: one dead-letter hand-off (copy, headers, publish) on memory://, 1 KiB.
func BenchmarkDestination(b *testing.B) {
	ctx := context.Background()
	conn, _ := open(b)
	d, err := deadletter.New(deadletter.Config{Conn: conn})
	if err != nil {
		b.Fatal(err)
	}
	m := &message.Message{ID: "x", Key: "k", Payload: make([]byte, 1024), Headers: message.Headers{"app": "v"}}
	f := transport.Failure{Err: errors.New("order total is negative"), Permanent: true, Attempts: 1,
		Topic: "orders", Subscription: "s", FirstFailure: time.Now(), LastFailure: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if err := d.DeadLetter(ctx, m, f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedrive: moving dead-lettered 1 KiB messages back, per message, on memory://.
func BenchmarkRedrive(b *testing.B) {
	ctx := context.Background()
	conn, _ := open(b)
	if err := conn.EnsureSubscription(ctx, "orders", "s"); err != nil {
		b.Fatal(err)
	}
	if err := conn.EnsureSubscription(ctx, "orders.dlq", "s.dlq"); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 1024)
	batch := make([]*message.Message, 0, 100)
	for i := 0; i < b.N; i += len(batch) {
		batch = batch[:0]
		for j := i; j < min(i+100, b.N); j++ {
			batch = append(batch, transport.DeadLetterCopy(&message.Message{ID: fmt.Sprint(j), Payload: payload},
				transport.Failure{Err: errors.New("x"), Topic: "orders", Subscription: "s", Attempts: 1}, conn.Capabilities()))
		}
		if err := conn.Publish(ctx, "orders.dlq", batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	res, err := deadletter.Redrive(ctx, conn, "orders.dlq", "s.dlq", deadletter.RedriveOptions{IdleTimeout: time.Millisecond, Max: b.N, Logger: slog.New(slog.DiscardHandler)})
	b.StopTimer()
	if err != nil || res.Moved != b.N {
		b.Fatalf("moved %d of %d: %v", res.Moved, b.N, err)
	}
}
