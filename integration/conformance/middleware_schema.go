package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/schema"
	"github.com/courierhq/courier/transport"
)

func init() {
	middlewareTests = append(middlewareTests,
		namedTest{"Middleware/Schema/ValidPasses", testSchemaValidPasses},
		namedTest{"Middleware/Schema/InvalidPublishRejected", testSchemaInvalidPublish},
		namedTest{"Middleware/Schema/PartialSends", testSchemaPartialSends},
		namedTest{"Middleware/Schema/InjectedInvalidDeadLettered", testSchemaInjectedInvalid},
	)
}

const conformanceOrderSchema = `{
  "type": "object",
  "required": ["id", "total"],
  "properties": {
    "id":    {"type": "string", "minLength": 1},
    "total": {"type": "number", "minimum": 0},
    "note":  {"type": "string"}
  }
}`

// newSchemaValidator binds topic to the order schema.
func newSchemaValidator(t *testing.T, topic string, partial bool) *schema.Validator {
	t.Helper()
	reg := schema.NewRegistry()
	if err := reg.Bind(topic, schema.MustJSON("order.v1", []byte(conformanceOrderSchema))); err != nil {
		t.Fatal(err)
	}
	v, err := schema.New(schema.Config{Registry: reg, PartialSends: partial})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func schemaOrder(id string, total int) *message.Message {
	return &message.Message{ID: id, Payload: []byte(fmt.Sprintf(`{"id":%q,"total":%d,"note":"héllo ✓"}`, id, total))}
}

// publishVia publishes msgs through p and fails the test on error.
func publishVia(t *testing.T, p *transport.Publisher, topic string, msgs ...*message.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Publish(ctx, topic, msgs...); err != nil {
		t.Fatalf("publish %d messages to %s: %v", len(msgs), topic, err)
	}
}

// testSchemaValidPasses: valid messages pass both halves and arrive unchanged.
func testSchemaValidPasses(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	v := newSchemaValidator(t, topic, false)
	col := newCollector()
	h.run(t, h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Middleware: []message.Middleware{v.Consume()}}), col.handler)
	pub := c.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{v.Publish()}})
	n := h.n(20)
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = schemaOrder(fmt.Sprintf("valid-%d", i), i)
	}
	for i := 0; i < n; i += 10 {
		publishVia(t, pub, topic, msgs[i:min(i+10, n)]...)
	}
	col.waitDistinct(t, n, h.Timeout)
	for _, r := range col.snapshot() {
		var want string
		for _, m := range msgs {
			if m.ID == r.ID {
				want = string(m.Payload)
			}
		}
		if string(r.Payload) != want {
			t.Errorf("%s arrived as %q; want %q", r.ID, r.Payload, want)
		}
	}
}

// testSchemaInvalidPublish: a batch with an invalid message is refused whole, with an error
// naming the message and the rule, and nothing of it reaches the broker.
func testSchemaInvalidPublish(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	v := newSchemaValidator(t, topic, false)
	col := newCollector()
	h.run(t, h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{}), col.handler) // raw: sees all that arrives
	pub := c.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{v.Publish()}})

	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	rejected := []*message.Message{schemaOrder("r-0", 1), schemaOrder("r-1", -5), schemaOrder("r-2", 2)}
	err := pub.Publish(ctx, topic, rejected...)
	var pe *transport.PublishError
	if !errors.As(err, &pe) || !errors.Is(err, schema.ErrInvalid) || !errors.Is(err, transport.ErrInvalidMessage) {
		t.Fatalf("publish with an invalid message: err = %v; want a PublishError matching ErrInvalid and ErrInvalidMessage", err)
	}
	if got := pe.FailedIndexes(); len(got) != 1 || got[0] != 1 || pe.Failed[0].ID != "r-1" {
		t.Errorf("failed %+v; want only message 1 (r-1)", pe.Failed)
	}
	for _, want := range []string{"r-1", `"/total"`, "#/properties/total/minimum"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// A sentinel published afterwards arrives; the refused batch never does.
	publishVia(t, pub, topic, schemaOrder("sentinel", 3))
	col.waitDistinct(t, 1, h.Timeout)
	col.quiet(300 * time.Millisecond)
	for _, r := range col.snapshot() {
		if r.ID != "sentinel" {
			t.Errorf("message %s of the refused batch reached the broker", r.ID)
		}
	}
}

// testSchemaPartialSends: with PartialSends the valid messages of a batch are published and
// the invalid ones reported by index.
func testSchemaPartialSends(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	v := newSchemaValidator(t, topic, true)
	col := newCollector()
	h.run(t, h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{}), col.handler)
	pub := c.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{v.Publish()}})
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	bad := &message.Message{ID: "p-1", Payload: []byte(`{"id":"p-1"}`)}
	err := pub.Publish(ctx, topic, schemaOrder("p-0", 1), bad, schemaOrder("p-2", 2))
	var pe *transport.PublishError
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Index != 1 || !errors.Is(err, schema.ErrInvalid) {
		t.Fatalf("partial send: err = %v; want a PublishError naming message 1", err)
	}
	if errors.Is(err, transport.ErrInvalidMessage) {
		t.Error("partial send matches ErrInvalidMessage, which means nothing was sent")
	}
	col.waitDistinct(t, 2, h.Timeout)
	col.quiet(300 * time.Millisecond)
	got := map[string]bool{}
	for _, r := range col.snapshot() {
		got[r.ID] = true
	}
	if !got["p-0"] || !got["p-2"] || got["p-1"] {
		t.Errorf("arrived %v; want p-0 and p-2 only", got)
	}
}

// testSchemaInjectedInvalid: an invalid message published without the middleware is
// dead-lettered at once by the consume half, with the violation in the headers, and the
// handler never sees it.
func testSchemaInjectedInvalid(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	v := newSchemaValidator(t, topic, false)
	var calls atomic.Int64
	h.run(t, h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Middleware: []message.Middleware{v.Consume()}}),
		func(_ context.Context, m *message.Message) error {
			calls.Add(1)
			return nil
		})
	dlq := h.dlqCollector(t, c, topic, "s1")
	invalid := &message.Message{ID: "injected", Key: "k1", Payload: []byte(`{"id":"x","total":"free"}`), Headers: message.Headers{"app": "v"}}
	publish(t, c, topic, []*message.Message{invalid, schemaOrder("fine", 1)}, 2)
	dlq.waitDistinct(t, 1, h.Timeout)
	got := dlq.snapshot()[0]
	if got.ID != "injected" || string(got.Payload) != string(invalid.Payload) || got.Headers["app"] != "v" {
		t.Errorf("dead-letter copy: id %q payload %q headers %v", got.ID, got.Payload, got.Headers)
	}
	if got.Headers[message.HeaderDeadLetterPermanent] != "true" || got.Headers[message.HeaderDeadLetterAttempts] != "1" {
		t.Errorf("dead-letter headers %v; want permanent after 1 attempt", got.Headers)
	}
	viol := got.Headers[message.HeaderSchemaViolation]
	if !strings.Contains(viol, "/total") || !strings.Contains(viol, "#/properties/total/type") {
		t.Errorf("%s = %q; want the instance location and the rule", message.HeaderSchemaViolation, viol)
	}
	if !strings.Contains(got.Headers[message.HeaderDeadLetterReason], "#/properties/total/type") {
		t.Errorf("reason %q does not carry the violation", got.Headers[message.HeaderDeadLetterReason])
	}
	deadline := time.Now().Add(h.Timeout)
	for calls.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times; want 1 (the valid message only)", n)
	}
}
