package transport_test

import (
	"context"
	"log/slog"
	"testing"

	_ "github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// TestPublishMiddlewareGetsTheConnectionsLogger: publish middleware finds the logger given in
// ConnConfig with message.LoggerFrom, as consume middleware does.
func TestPublishMiddlewareGetsTheConnectionsLogger(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	conn, err := transport.OpenConfig(ctx, "memory://publisher-logger", transport.ConnConfig{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var got *slog.Logger
	mw := func(next message.PublishFunc) message.PublishFunc {
		return func(ctx context.Context, topic string, msgs []*message.Message) error {
			got = message.LoggerFrom(ctx)
			return next(ctx, topic, msgs)
		}
	}
	if err := conn.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{mw}}).Publish(ctx, "t", &message.Message{}); err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Handler() != log.Handler() {
		t.Fatalf("publish middleware got logger %v; want the connection's", got)
	}
}
