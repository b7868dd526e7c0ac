package message_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/courierhq/courier/message"
)

func TestNewHasEmptyHeaders(t *testing.T) {
	m := message.New([]byte("p"))
	if m.Headers == nil || len(m.Headers) != 0 {
		t.Fatalf("Headers = %#v; want an empty, non-nil map", m.Headers)
	}
	m.Headers.Set("a", "b") // would panic on a nil map
	if m.Header("a") != "b" || string(m.Payload) != "p" {
		t.Errorf("message %+v", m)
	}
}

func TestCloneOwnsHeaders(t *testing.T) {
	m := message.New([]byte("p"))
	m.SetHeader("a", "1")
	message.SetReceipt(m, receipt{})
	c := m.Clone()
	c.SetHeader("a", "2")
	if m.Header("a") != "1" {
		t.Error("Clone shares the header map")
	}
	if message.ReceiptOf(c) != nil || c.As(new(int)) {
		t.Error("Clone carries the receipt")
	}
	if !m.As(new(int)) {
		t.Error("As does not reach the receipt")
	}
}

func TestSize(t *testing.T) {
	m := &message.Message{ID: "id", Key: "k", Payload: []byte("12345"), Headers: message.Headers{"ab": "cde"}}
	if got := m.Size(); got != 2+1+5+2+3 {
		t.Errorf("Size = %d; want 13", got)
	}
}

func TestNilSafeAccessors(t *testing.T) {
	var m *message.Message
	if m.As(new(int)) {
		t.Error("As on a nil message")
	}
	var h message.Headers
	if h.Get("x") != "" {
		t.Error("Get on nil headers")
	}
	var zero message.Message
	zero.SetHeader("x", "y")
	if zero.Header("x") != "y" {
		t.Error("SetHeader did not allocate the map")
	}
}

type receipt struct{}

func (receipt) As(target any) bool {
	if p, ok := target.(*int); ok {
		*p = 1
		return true
	}
	return false
}

// TestChainSkipsNil: nil middleware is skipped on both sides; the first listed is outermost.
func TestChainSkipsNil(t *testing.T) {
	var trace []string
	mw := func(name string) message.Middleware {
		return func(next message.Handler) message.Handler {
			return func(ctx context.Context, m *message.Message) error {
				trace = append(trace, name)
				return next(ctx, m)
			}
		}
	}
	h := message.Chain(mw("a"), nil, mw("b"))(func(context.Context, *message.Message) error {
		trace = append(trace, "h")
		return nil
	})
	if err := h(context.Background(), message.New(nil)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(trace, ","); got != "a,b,h" {
		t.Errorf("consume chain ran %s; want a,b,h", got)
	}

	trace = nil
	pmw := func(name string) message.PublishMiddleware {
		return func(next message.PublishFunc) message.PublishFunc {
			return func(ctx context.Context, topic string, msgs []*message.Message) error {
				trace = append(trace, name)
				return next(ctx, topic, msgs)
			}
		}
	}
	p := message.ChainPublish(nil, pmw("a"), nil, pmw("b"))(func(context.Context, string, []*message.Message) error {
		trace = append(trace, "send")
		return nil
	})
	if err := p(context.Background(), "t", nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(trace, ","); got != "a,b,send" {
		t.Errorf("publish chain ran %s; want a,b,send", got)
	}
}

func TestLoggerFrom(t *testing.T) {
	if message.LoggerFrom(context.Background()) != slog.Default() {
		t.Error("LoggerFrom without a logger is not slog.Default()")
	}
	//lint:ignore SA1012 a nil context is what this checks
	if message.LoggerFrom(nil) != slog.Default() {
		t.Error("LoggerFrom(nil) is not slog.Default()")
	}
	l := slog.New(slog.DiscardHandler)
	ctx := message.WithLogger(context.Background(), l)
	if message.LoggerFrom(ctx) != l {
		t.Error("LoggerFrom does not return the logger given to WithLogger")
	}
	if message.WithLogger(ctx, nil) != ctx {
		t.Error("WithLogger(ctx, nil) changed the context")
	}
}
