package logtest

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// RoundTrip opens rawURL with log as the connection's logger, subscribes to topic, publishes
// one message, waits until a second attempt handles it (the first fails, so that the retry
// path logs too), and closes everything: an ordinary life of a connection.
func RoundTrip(t testing.TB, rawURL, topic string, log *slog.Logger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := transport.OpenConfig(ctx, rawURL, transport.ConnConfig{Logger: log})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer func() {
		if err := conn.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	sub, err := conn.Subscribe(ctx, topic, "logtest", transport.SubscriberConfig{Order: transport.OrderDelivery}) // every broker, SQS standard queues too
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	handled := make(chan struct{})
	var attempts atomic.Int32
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(runCtx, func(_ context.Context, m *message.Message) error {
			if attempts.Add(1) == 1 {
				return message.RetryAfter(errFirst, 10*time.Millisecond)
			}
			close(handled)
			return nil
		})
	}()
	defer func() { stop(); <-done }()
	msg := message.New([]byte("logtest"))
	msg.ID = "logtest-1"
	if err := conn.Publish(ctx, topic, msg); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case <-handled:
	case <-ctx.Done():
		t.Fatalf("the message was not handled twice (attempts %d)", attempts.Load())
	}
}

type firstAttempt struct{}

func (firstAttempt) Error() string { return "logtest: first attempt fails" }

var errFirst error = firstAttempt{}

// OnlyTheGiven opens rawURL with a capturing logger (Capture), makes the round trip of
// RoundTrip on topic, and checks that the given logger received at least one line and a
// line containing each of wants, while slog.Default() received none: an adapter, and the
// client libraries it configures, log only through the logger in ConnConfig.
func OnlyTheGiven(t testing.TB, rawURL, topic string, wants ...string) {
	t.Helper()
	log, rec := Capture(t)
	RoundTrip(t, rawURL, topic, log)
	if len(rec.Lines()) == 0 {
		t.Error("the connection's logger received nothing (the failed first attempt logs)")
	}
	for _, w := range wants {
		if !rec.Contains(w) {
			t.Errorf("no line containing %q reached the given logger: %q", w, rec.Lines())
		}
	}
}
