package schema_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/schema"
	"github.com/courierhq/courier/transport"
)

// metaSchema has an object keyed by payload data (additionalProperties) and an array: with
// Redact, neither its keys nor its indexes may appear anywhere.
const metaSchema = `{
  "type": "object",
  "properties": {
    "meta": {"type": "object", "additionalProperties": {"type": "string"}},
    "lines": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}}},
    "tags": {"type": "object", "propertyNames": {"maxLength": 3}},
    "closed": {"type": "object", "additionalProperties": false}
  }
}`

// secretPayload's keys are secrets; each breaks a rule somewhere below them.
const secretPayload = `{"meta":{"sk_live_TOPSECRET":5},"lines":[{"qty":1},{"qty":1},{"qty":1},{"qty":1},{"qty":1},{"qty":1},{"qty":1},{"qty":-7}],` +
	`"tags":{"hunter2hunter2":"x"},"closed":{"ssn-078-05-1120":"x"}}`

var secrets = []string{"sk_live_TOPSECRET", "hunter2", "078-05-1120", "/7", "-7", `"5"`, ": 5"}

func redactingValidator(t *testing.T) *schema.Validator {
	t.Helper()
	reg := schema.NewRegistry()
	if err := reg.Bind("accounts", schema.MustJSON("account.v1", []byte(metaSchema))); err != nil {
		t.Fatal(err)
	}
	v, err := schema.New(schema.Config{Registry: reg, Redact: true})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func leaks(text string) string {
	for _, s := range secrets {
		if strings.Contains(text, s) {
			return s
		}
	}
	return ""
}

func TestRedactHidesKeysAndIndexes(t *testing.T) {
	v := redactingValidator(t)
	err := v.Check("accounts", &message.Message{Payload: []byte(secretPayload)})
	var ve *schema.ValidationError
	if !errors.As(err, &ve) || len(ve.Violations) < 4 {
		t.Fatalf("err = %v; want a violation under each of meta, lines, tags, closed", err)
	}
	text := err.Error() + ve.DeadLetterHeaders()[message.HeaderSchemaViolation]
	for _, vi := range ve.Violations {
		text += vi.InstanceLocation + vi.KeywordLocation + vi.Message
	}
	if s := leaks(text); s != "" {
		t.Errorf("redacted violations quote %q: %s", s, text)
	}
	got := map[string]bool{}
	for _, vi := range ve.Violations {
		got[vi.InstanceLocation] = true
	}
	for _, want := range []string{"/meta/*", "/lines/*/qty"} {
		if !got[want] {
			t.Errorf("instance locations %v; want %s (declared names kept, keys and indexes as *)", got, want)
		}
	}
}

// TestRedactEndToEnd: through the engine, the dead-letter headers and the log lines of a
// rejected message quote nothing of its payload.
func TestRedactEndToEnd(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	conn, err := transport.OpenConfig(ctx, "memory://redact-end-to-end", transport.ConnConfig{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	v := redactingValidator(t)
	sub, err := conn.Subscribe(ctx, "accounts", "audit", transport.SubscriberConfig{Middleware: []message.Middleware{v.Consume()}})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := conn.Subscribe(ctx, "accounts.dlq", "audit.dlq", transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	dead := make(chan *message.Message, 1)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = sub.Run(rctx, func(context.Context, *message.Message) error { return nil })
	}()
	go func() {
		defer wg.Done()
		_ = dlq.Run(rctx, func(_ context.Context, m *message.Message) error { dead <- m.Clone(); return nil })
	}()
	defer func() { cancel(); wg.Wait() }()
	if err := conn.Publish(ctx, "accounts", &message.Message{ID: "acct-1", Payload: []byte(secretPayload)}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-dead:
		reason, violation := m.Header(message.HeaderDeadLetterReason), m.Header(message.HeaderSchemaViolation)
		if reason == "" || violation == "" {
			t.Fatalf("headers %v; want a reason and a violation", m.Headers)
		}
		for name, val := range m.Headers {
			if s := leaks(val); s != "" {
				t.Errorf("header %s quotes %q: %s", name, s, val)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("invalid message not dead-lettered")
	}
	// The engine logs the dead-lettering once the copy is stored, which may be after the
	// dead-letter subscriber received it: wait for the line.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		found := strings.Contains(logs.String(), "acct-1")
		mu.Unlock()
		if found {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "acct-1") {
		t.Errorf("no log line about the dead-lettered message: %s", logs.String())
	}
	if s := leaks(logs.String()); s != "" {
		t.Errorf("a log line quotes %q: %s", s, logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
