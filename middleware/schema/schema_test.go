package schema_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/schema"
	"github.com/courierhq/courier/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const orderSchema = `{
  "type": "object",
  "required": ["id", "total", "items"],
  "properties": {
    "id":    {"type": "string", "minLength": 1},
    "total": {"type": "number", "minimum": 0},
    "items": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/item"}}
  },
  "$defs": {
    "item": {"type": "object", "required": ["sku"], "properties": {
      "sku": {"type": "string", "pattern": "^SKU-[0-9]+$"},
      "qty": {"type": "integer", "minimum": 1}}}
  }
}`

const validOrderJSON = `{"id":"o-1","total":19.9,"items":[{"sku":"SKU-1","qty":2}]}`

func TestJSON(t *testing.T) {
	s, err := schema.JSON("order.v1", []byte(orderSchema))
	if err != nil {
		t.Fatal(err)
	}
	type want struct{ instance, keyword string }
	tests := []struct {
		name    string
		payload string
		want    []want // nil: valid
	}{
		{"valid", validOrderJSON, nil},
		{"valid with unicode", `{"id":"ö—✓","total":0,"items":[{"sku":"SKU-9"}]}`, nil},
		{"minimum", `{"id":"o-1","total":-1,"items":[{"sku":"SKU-1"}]}`, []want{{"/total", "#/properties/total/minimum"}}},
		{"nested through $ref", `{"id":"o-1","total":1,"items":[{"sku":"SKU-1"},{"sku":"nope","qty":0}]}`,
			[]want{{"/items/1/qty", "#/$defs/item/properties/qty/minimum"}, {"/items/1/sku", "#/$defs/item/properties/sku/pattern"}}},
		{"required", `{"id":"o-1","items":[{"sku":"SKU-1"}]}`, []want{{"", "#/required"}}},
		{"type", `["not","an","object"]`, []want{{"", "#/type"}}},
		{"not JSON", `{"id":`, []want{{"", "json"}}},
		{"trailing data", validOrderJSON + ` {}`, []want{{"", "json"}}},
		{"empty payload", ``, []want{{"", "json"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Validate([]byte(tc.payload))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("valid payload rejected: %v", err)
				}
				return
			}
			var ve *schema.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, schema.ErrInvalid) {
				t.Fatalf("err = %v; want a *ValidationError", err)
			}
			if ve.Schema != "order.v1" {
				t.Errorf("Schema = %q", ve.Schema)
			}
			if len(ve.Violations) != len(tc.want) {
				t.Fatalf("violations %+v; want %d", ve.Violations, len(tc.want))
			}
			for i, w := range tc.want {
				v := ve.Violations[i]
				if v.InstanceLocation != w.instance || v.KeywordLocation != w.keyword || v.Message == "" {
					t.Errorf("violation %d = %+v; want at %q rule %q", i, v, w.instance, w.keyword)
				}
				if !strings.Contains(err.Error(), w.keyword) {
					t.Errorf("error %q does not name rule %q", err, w.keyword)
				}
			}
		})
	}
}

func TestJSONOptions(t *testing.T) {
	item := `{"$id":"https://schemas.example.com/item.json","type":"object","required":["sku"]}`
	s, err := schema.JSON("order.v2", []byte(`{"type":"array","items":{"$ref":"https://schemas.example.com/item.json"}}`),
		schema.WithResource("https://schemas.example.com/item.json", []byte(item)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate([]byte(`[{"sku":"a"}]`)); err != nil {
		t.Errorf("valid: %v", err)
	}
	err = s.Validate([]byte(`[{}]`))
	var ve *schema.ValidationError
	if !errors.As(err, &ve) || ve.Violations[0].KeywordLocation != "https://schemas.example.com/item.json#/required" {
		t.Errorf("rule in another resource: %v; want its absolute location", err)
	}

	// Nothing is fetched: an unknown remote $ref fails at compile time.
	if _, err := schema.JSON("remote", []byte(`{"$ref":"https://example.com/elsewhere.json"}`)); !errors.Is(err, schema.ErrInvalidConfig) {
		t.Errorf("remote $ref: err = %v; want ErrInvalidConfig", err)
	}
	// format is an annotation in 2020-12 unless asserted.
	emailSchema := []byte(`{"type":"string","format":"email"}`)
	lax := schema.MustJSON("lax", emailSchema)
	strict := schema.MustJSON("strict", emailSchema, schema.AssertFormat())
	if err := lax.Validate([]byte(`"not an email"`)); err != nil {
		t.Errorf("format annotation rejected: %v", err)
	}
	if err := strict.Validate([]byte(`"not an email"`)); err == nil {
		t.Error("AssertFormat: bad email accepted")
	}
	// $schema picks another draft.
	d7 := schema.MustJSON("d7", []byte(`{"$schema":"http://json-schema.org/draft-07/schema#","items":[{"type":"string"}]}`))
	if err := d7.Validate([]byte(`[1]`)); err == nil {
		t.Error("draft-07 tuple items not applied")
	}
	for name, doc := range map[string]string{"not JSON": `{`, "bad keyword value": `{"type":"nope"}`} {
		if _, err := schema.JSON("bad", []byte(doc)); !errors.Is(err, schema.ErrInvalidConfig) {
			t.Errorf("%s: err = %v; want ErrInvalidConfig", name, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("MustJSON did not panic on a bad schema")
		}
	}()
	schema.MustJSON("bad", []byte(`{`))
}

type funcSchema struct {
	name string
	fn   func([]byte) error
}

func (f funcSchema) Name() string            { return f.name }
func (f funcSchema) Validate(p []byte) error { return f.fn(p) }
func nonEmpty(name string) *funcSchema {
	return &funcSchema{name, func(p []byte) error {
		if len(p) == 0 {
			return errors.New("payload is empty")
		}
		return nil
	}}
}

func TestRegistry(t *testing.T) {
	r := schema.NewRegistry()
	a, b := nonEmpty("a"), funcSchema{name: "a", fn: func([]byte) error { return nil }}
	if err := r.Register(a); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(a); err != nil {
		t.Errorf("registering the same schema again: %v", err)
	}
	if err := r.Register(b); !errors.Is(err, schema.ErrInvalidConfig) {
		t.Errorf("another schema under a taken name: err = %v", err)
	}
	// Values of a type that cannot be compared are never "the same" (and must not panic).
	if err := r.Register(funcSchema{name: "u", fn: b.fn}); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(funcSchema{name: "u", fn: b.fn}); !errors.Is(err, schema.ErrInvalidConfig) {
		t.Errorf("uncomparable schema registered twice: err = %v", err)
	}
	for _, bad := range []schema.Schema{nil, nonEmpty(""), nonEmpty("\xff"), nonEmpty(strings.Repeat("n", 256))} {
		if err := r.Register(bad); !errors.Is(err, schema.ErrInvalidConfig) {
			t.Errorf("Register(%v): err = %v; want ErrInvalidConfig", bad, err)
		}
	}
	if err := r.Bind("", a); !errors.Is(err, schema.ErrInvalidConfig) {
		t.Errorf("Bind empty topic: %v", err)
	}
	if err := r.Bind("orders", a); err != nil {
		t.Fatal(err)
	}
	if s, ok := r.ForTopic("orders"); !ok || s.Name() != "a" {
		t.Errorf("ForTopic = %v, %v", s, ok)
	}
	if _, ok := r.ForTopic("other"); ok {
		t.Error("unbound topic found")
	}
	if s, ok := r.Lookup("a"); !ok || s.Name() != "a" {
		t.Errorf("Lookup = %v, %v", s, ok)
	}

	// Writers and readers at once (run with -race).
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				_ = r.Bind(fmt.Sprintf("t-%d-%d", i, j), nonEmpty(fmt.Sprintf("s-%d-%d", i, j)))
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				r.ForTopic("orders")
				r.Lookup(fmt.Sprintf("s-%d-%d", i, j))
			}
		}()
	}
	wg.Wait()
	if _, ok := r.ForTopic("t-3-99"); !ok {
		t.Error("concurrent Bind lost")
	}
}

func newValidator(t testing.TB, cfg schema.Config) *schema.Validator {
	t.Helper()
	if cfg.Registry == nil {
		cfg.Registry = schema.NewRegistry()
		if err := cfg.Registry.Bind("orders", schema.MustJSON("order.v1", []byte(orderSchema))); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Registry.Register(nonEmpty("nonempty")); err != nil {
			t.Fatal(err)
		}
	}
	v, err := schema.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestNewRequiresRegistry(t *testing.T) {
	if _, err := schema.New(schema.Config{}); !errors.Is(err, schema.ErrInvalidConfig) {
		t.Errorf("err = %v; want ErrInvalidConfig", err)
	}
}

func TestCheck(t *testing.T) {
	v := newValidator(t, schema.Config{})
	req := newValidator(t, schema.Config{Require: true})
	tests := []struct {
		name  string
		v     *schema.Validator
		topic string
		m     *message.Message
		is    error // nil: valid
	}{
		{"topic schema, valid", v, "orders", &message.Message{Payload: []byte(validOrderJSON)}, nil},
		{"topic schema, invalid", v, "orders", &message.Message{Payload: []byte(`{}`)}, schema.ErrInvalid},
		{"header wins over topic", v, "orders", &message.Message{Payload: []byte("x"), Headers: message.Headers{message.HeaderSchema: "nonempty"}}, nil},
		{"header schema, invalid", v, "other", &message.Message{Headers: message.Headers{message.HeaderSchema: "nonempty"}}, schema.ErrInvalid},
		{"unknown schema named", v, "orders", &message.Message{Payload: []byte(validOrderJSON), Headers: message.Headers{message.HeaderSchema: "order.v9"}}, schema.ErrUnknownSchema},
		{"no schema passes", v, "other", &message.Message{Payload: []byte("anything")}, nil},
		{"no schema with Require", req, "other", &message.Message{Payload: []byte("anything")}, schema.ErrNoSchema},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.v.Check(tc.topic, tc.m)
			if tc.is == nil {
				if err != nil {
					t.Fatalf("Check = %v; want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.is) || !errors.Is(err, schema.ErrInvalid) {
				t.Fatalf("Check = %v; want %v and ErrInvalid", err, tc.is)
			}
		})
	}
	// A custom schema's plain error becomes one violation.
	err := v.Check("x", &message.Message{Headers: message.Headers{message.HeaderSchema: "nonempty"}})
	var ve *schema.ValidationError
	if !errors.As(err, &ve) || ve.Schema != "nonempty" || len(ve.Violations) != 1 || ve.Violations[0].Message != "payload is empty" {
		t.Errorf("custom schema error = %#v", err)
	}
}

// capture is an innermost PublishFunc that records what reached it and can fail some indexes.
type capture struct {
	batches [][]*message.Message
	fail    map[int]error // index in the batch it receives → error
}

func (c *capture) publish(_ context.Context, topic string, msgs []*message.Message) error {
	c.batches = append(c.batches, msgs)
	if len(c.fail) == 0 {
		return nil
	}
	pe := &transport.PublishError{Topic: topic, Total: len(msgs)}
	for i, m := range msgs {
		if err, ok := c.fail[i]; ok {
			pe.Failed = append(pe.Failed, transport.FailedMessage{Index: i, ID: m.ID, Err: err})
		}
	}
	return pe
}

func batch() []*message.Message {
	return []*message.Message{
		{ID: "m0", Payload: []byte(validOrderJSON)},
		{ID: "m1", Payload: []byte(`{"id":"o-1","total":-3,"items":[{"sku":"SKU-1"}]}`)},
		{ID: "m2", Payload: []byte(validOrderJSON)},
		{ID: "m3", Payload: []byte(`{"id":""}`)},
	}
}

func TestPublishAllOrNothing(t *testing.T) {
	v := newValidator(t, schema.Config{})
	c := &capture{}
	pub := v.Publish()(c.publish)
	msgs := batch()
	err := pub(context.Background(), "orders", msgs)
	if len(c.batches) != 0 {
		t.Fatalf("%d batches reached the broker; want none", len(c.batches))
	}
	var pe *transport.PublishError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v; want a *transport.PublishError", err)
	}
	if !errors.Is(err, transport.ErrInvalidMessage) || !errors.Is(err, schema.ErrInvalid) {
		t.Errorf("err does not match ErrInvalidMessage and ErrInvalid: %v", err)
	}
	if got := pe.FailedIndexes(); len(got) != 2 || got[0] != 1 || got[1] != 3 || pe.Failed[0].ID != "m1" || pe.Total != 4 {
		t.Fatalf("failed %+v; want messages 1 and 3", pe.Failed)
	}
	for _, want := range []string{"message 1 (id m1)", `"/total"`, "#/properties/total/minimum", "order.v1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := pub(context.Background(), "orders", msgs[:1]); err != nil || len(c.batches) != 1 {
		t.Errorf("valid batch: err %v, %d batches", err, len(c.batches))
	}
}

func TestPublishPartialSends(t *testing.T) {
	v := newValidator(t, schema.Config{PartialSends: true})
	boom := errors.New("broker said no")
	c := &capture{fail: map[int]error{1: boom}} // the 2nd valid message = batch index 2
	pub := v.Publish()(c.publish)
	msgs := batch()
	err := pub(context.Background(), "orders", msgs)
	if len(c.batches) != 1 || len(c.batches[0]) != 2 || c.batches[0][0].ID != "m0" || c.batches[0][1].ID != "m2" {
		t.Fatalf("sent %v; want m0 and m2", c.batches)
	}
	var pe *transport.PublishError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v", err)
	}
	if got := pe.FailedIndexes(); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Errorf("failed indexes %v; want [1 2 3] (2 mapped back from the inner batch)", got)
	}
	if errors.Is(err, transport.ErrInvalidMessage) {
		t.Error("partial send matches ErrInvalidMessage, which means nothing was sent")
	}
	if !errors.Is(pe.Failed[0].Err, schema.ErrInvalid) || !errors.Is(pe.Failed[1].Err, boom) {
		t.Errorf("failures %+v", pe.Failed)
	}

	// A whole-request failure of the inner publish marks every sent message failed.
	c2 := &capture{}
	down := errors.New("unavailable")
	pub2 := v.Publish()(func(ctx context.Context, topic string, m []*message.Message) error {
		c2.batches = append(c2.batches, m)
		return down
	})
	err = pub2(context.Background(), "orders", batch())
	if !errors.As(err, &pe) || len(pe.Failed) != 4 || !errors.Is(pe.Failed[0].Err, down) || !errors.Is(pe.Failed[1].Err, schema.ErrInvalid) {
		t.Errorf("inner failure: %v", err)
	}
	// All invalid: nothing sent.
	c3 := &capture{}
	_ = v.Publish()(c3.publish)(context.Background(), "orders", batch()[1:2])
	if len(c3.batches) != 0 {
		t.Error("an all-invalid batch reached the broker")
	}
}

func TestConsume(t *testing.T) {
	v := newValidator(t, schema.Config{})
	called := 0
	h := v.Consume()(func(context.Context, *message.Message) error { called++; return nil })
	m := &message.Message{ID: "x", Topic: "orders", Payload: []byte(`{"total":"free"}`), Headers: message.Headers{"a": "b"}}
	err := h(context.Background(), m)
	if !message.IsPermanent(err) || !errors.Is(err, schema.ErrInvalid) {
		t.Fatalf("err = %v; want permanent ErrInvalid", err)
	}
	if called != 0 {
		t.Error("handler called for an invalid message")
	}
	if string(m.Payload) != `{"total":"free"}` || len(m.Headers) != 1 {
		t.Error("message changed")
	}
	var dh transport.DeadLetterHeaderer
	if !errors.As(err, &dh) || !strings.Contains(dh.DeadLetterHeaders()[message.HeaderSchemaViolation], "#/required") {
		t.Errorf("no violation header from %v", err)
	}
	m.Payload = []byte(validOrderJSON)
	if err := h(context.Background(), m); err != nil || called != 1 {
		t.Errorf("valid: err %v, called %d", err, called)
	}
}

// TestEndToEndMemory: through the engine on memory://, an invalid message published raw is
// dead-lettered at once with the violation in headers; a valid one is handled.
func TestEndToEndMemory(t *testing.T) {
	ctx := context.Background()
	conn, err := memory.Open(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	v := newValidator(t, schema.Config{})
	sub, err := conn.Subscribe(ctx, "orders", "billing", transport.SubscriberConfig{Middleware: []message.Middleware{v.Consume()}})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := conn.Subscribe(ctx, "orders.dlq", "billing.dlq", transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	handled, dead := make(chan *message.Message, 4), make(chan *message.Message, 4)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = sub.Run(rctx, func(_ context.Context, m *message.Message) error { handled <- m.Clone(); return nil })
	}()
	go func() {
		defer wg.Done()
		_ = dlq.Run(rctx, func(_ context.Context, m *message.Message) error { dead <- m.Clone(); return nil })
	}()
	defer func() { cancel(); wg.Wait() }()

	if err := conn.Publish(ctx, "orders", &message.Message{ID: "bad", Payload: []byte(`{"id":"o","total":-1,"items":[{"sku":"SKU-1"}]}`)}, &message.Message{ID: "good", Payload: []byte(validOrderJSON)}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-dead:
		if m.ID != "bad" || m.Header(message.HeaderDeadLetterPermanent) != "true" {
			t.Errorf("dead-lettered %s %v", m.ID, m.Headers)
		}
		if got := m.Header(message.HeaderSchemaViolation); !strings.Contains(got, "#/properties/total/minimum") || !strings.Contains(got, "/total") {
			t.Errorf("violation header %q", got)
		}
		if !strings.Contains(m.Header(message.HeaderDeadLetterReason), "minimum") {
			t.Errorf("reason %q", m.Header(message.HeaderDeadLetterReason))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("invalid message not dead-lettered")
	}
	select {
	case m := <-handled:
		if m.ID != "good" {
			t.Errorf("handled %s", m.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("valid message not handled")
	}
}

func TestRedact(t *testing.T) {
	v := newValidator(t, schema.Config{Redact: true})
	secretish := []*message.Message{
		{Payload: []byte(`{"id":"o","total":-31337,"items":[{"sku":"SKU-1"}]}`)},
		{Payload: []byte(`{"id":"o","total":1,"items":[{"sku":"card 4111 1111 1111 1111"}]}`)},
		{Payload: []byte(`{"id":"card 4111 1111 1111 1111"`)},
		{Payload: nil, Headers: message.Headers{message.HeaderSchema: "nonempty"}},
	}
	for i, m := range secretish {
		err := v.Check("orders", m)
		var ve *schema.ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("%d: err = %v", i, err)
		}
		text := err.Error() + ve.DeadLetterHeaders()[message.HeaderSchemaViolation]
		if strings.Contains(text, "31337") || strings.Contains(text, "4111") || !strings.Contains(text, "redacted") {
			t.Errorf("%d: redacted error quotes the payload or says nothing: %s", i, text)
		}
	}
	var ve *schema.ValidationError
	errors.As(v.Check("orders", secretish[0]), &ve)
	if got := ve.Violations[0]; got.InstanceLocation != "/total" || got.KeywordLocation != "#/properties/total/minimum" || got.Message != "violates minimum (details redacted)" {
		t.Errorf("redacted violation %+v; want location and rule kept", got)
	}
	if !v.Redacts() || newValidator(t, schema.Config{}).Redacts() {
		t.Error("Redacts() does not reflect Config.Redact")
	}
}
