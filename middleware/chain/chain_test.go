package chain_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/chain"
	"github.com/courierhq/courier/middleware/encryption"
	"github.com/courierhq/courier/middleware/retry"
	"github.com/courierhq/courier/middleware/schema"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder appends name to a shared log when its middleware runs.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

func (r *recorder) consume(name string) message.Middleware {
	return func(next message.Handler) message.Handler {
		return func(ctx context.Context, m *message.Message) error {
			r.add(name)
			return next(ctx, m)
		}
	}
}

func (r *recorder) publish(name string) message.PublishMiddleware {
	return func(next message.PublishFunc) message.PublishFunc {
		return func(ctx context.Context, topic string, msgs []*message.Message) error {
			r.add(name)
			return next(ctx, topic, msgs)
		}
	}
}

const orderSchema = `{"type":"object","required":["n"],"properties":{"n":{"type":"integer"}}}`

type features struct {
	enc *encryption.Encryptor
	val *schema.Validator
	cls *retry.Classifier
	rec *recorder
}

func newFeatures(t testing.TB) features {
	t.Helper()
	kr, err := encryption.NewKeyring("k1", map[string][]byte{"k1": make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := encryption.New(encryption.Config{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	reg := schema.NewRegistry()
	if err := reg.Bind("orders", schema.MustJSON("order", []byte(orderSchema))); err != nil {
		t.Fatal(err)
	}
	val, err := schema.New(schema.Config{Registry: reg, Redact: true})
	if err != nil {
		t.Fatal(err)
	}
	cls, err := retry.New(retry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return features{enc: enc, val: val, cls: cls, rec: &recorder{}}
}

func (f features) step(s chain.Stage) chain.Step {
	switch s {
	case chain.StageOrdering:
		return chain.OrderingFuncs(f.rec.consume("ordering"), f.rec.publish("ordering"))
	case chain.StageIdempotency:
		return chain.IdempotencyFunc(f.rec.consume("idempotency"))
	case chain.StageDecrypt:
		return chain.Encryption(f.enc)
	case chain.StageValidate:
		return chain.Schema(f.val)
	default:
		return chain.Retry(f.cls)
	}
}

var stages = []chain.Stage{chain.StageOrdering, chain.StageIdempotency, chain.StageDecrypt, chain.StageValidate, chain.StageClassify}

func TestNewRejectsEveryInvertedPair(t *testing.T) {
	f := newFeatures(t)
	for i, a := range stages {
		for _, b := range stages[i+1:] {
			t.Run(fmt.Sprintf("%s-before-%s", a, b), func(t *testing.T) {
				if _, err := chain.New(f.step(a), f.step(b)); err != nil {
					t.Fatalf("recommended order refused: %v", err)
				}
				_, err := chain.New(f.step(b), f.step(a))
				if !errors.Is(err, chain.ErrOrder) {
					t.Fatalf("%s before %s: err = %v; want ErrOrder", b, a, err)
				}
				msg := err.Error()
				if !strings.Contains(msg, a.String()+" (step 1) must come before "+b.String()) || strings.HasSuffix(strings.SplitN(msg, ";", 2)[0], ": ") {
					t.Errorf("error does not say which and why: %q", msg)
				}
			})
		}
	}
}

func TestNewOtherErrors(t *testing.T) {
	f := newFeatures(t)
	if _, err := chain.New(f.step(chain.StageDecrypt), f.step(chain.StageDecrypt)); !errors.Is(err, chain.ErrOrder) || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate step: %v", err)
	}
	for name, s := range map[string]chain.Step{
		"nil encryptor":  chain.Encryption(nil),
		"nil validator":  chain.Schema(nil),
		"nil classifier": chain.Retry(nil),
		"nil custom":     chain.Custom("x", nil),
		"nil ordering":   chain.Ordering(nil),
		"nil idem":       chain.Idempotency(nil),
		"nil old form":   chain.OrderingFuncs(nil, nil),
	} {
		if _, err := chain.New(s); !errors.Is(err, chain.ErrInvalidStep) {
			t.Errorf("%s: err = %v; want ErrInvalidStep", name, err)
		}
	}
	// Subsets and custom steps anywhere are fine.
	for _, steps := range [][]chain.Step{
		{},
		{f.step(chain.StageDecrypt)},
		{chain.Custom("trace", f.rec.consume("trace")), f.step(chain.StageIdempotency), chain.Custom("log", f.rec.consume("log")), f.step(chain.StageClassify)},
	} {
		if _, err := chain.New(steps...); err != nil {
			t.Errorf("%d steps: %v", len(steps), err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("MustNew did not panic")
		}
	}()
	chain.MustNew(f.step(chain.StageClassify), f.step(chain.StageOrdering))
}

func TestEncryptionNeedsARedactingValidator(t *testing.T) {
	f := newFeatures(t)
	leaky, err := schema.New(schema.Config{Registry: schema.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chain.New(chain.Encryption(f.enc), chain.Schema(leaky)); !errors.Is(err, chain.ErrUnsafe) {
		t.Errorf("encryption with a validator quoting payloads: err = %v; want ErrUnsafe", err)
	}
	if _, err := chain.New(chain.Schema(leaky)); err != nil {
		t.Errorf("a quoting validator without encryption: %v", err)
	}
}

func TestConsumeRunsInOrder(t *testing.T) {
	f := newFeatures(t)
	c := chain.MustNew(
		chain.Custom("trace", f.rec.consume("trace")),
		f.step(chain.StageOrdering),
		f.step(chain.StageIdempotency),
		f.step(chain.StageDecrypt),
		chain.Custom("after-decrypt", f.rec.consume("after-decrypt")),
		f.step(chain.StageValidate),
		f.step(chain.StageClassify),
	)
	want := "consume: trace → ordering → idempotency → decrypt → after-decrypt → validate → classify → handler; publish: validate → ordering → encrypt → broker"
	if c.String() != want {
		t.Errorf("String() =\n%s\nwant\n%s", c, want)
	}
	if len(c.Consume()) != 7 || len(c.Publish()) != 3 {
		t.Fatalf("%d consume, %d publish middleware", len(c.Consume()), len(c.Publish()))
	}

	// Publish through the chain, then consume what reached the broker.
	var sent []*message.Message
	pub := message.ChainPublish(c.Publish()...)(func(_ context.Context, _ string, msgs []*message.Message) error {
		f.rec.add("broker")
		sent = msgs
		return nil
	})
	if err := pub(context.Background(), "orders", []*message.Message{{ID: "a", Payload: []byte(`{"n":1}`)}}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sent[0].Payload), `"n"`) {
		t.Fatal("the broker got plaintext: encryption is not last")
	}
	received := sent[0].Clone()
	received.Topic = "orders"
	var got string
	err := c.Handler(func(_ context.Context, m *message.Message) error {
		f.rec.add("handler")
		got = string(m.Payload)
		return nil
	})(context.Background(), received)
	if err != nil {
		t.Fatal(err)
	}
	if got != `{"n":1}` {
		t.Errorf("handler saw %q", got)
	}
	if log := strings.Join(f.rec.log, " "); log != "ordering broker trace ordering idempotency after-decrypt handler" {
		t.Errorf("ran: %s", log)
	}

	// An invalid batch stops at validation, before ordering reserves sequence numbers.
	f.rec.log = nil
	err = pub(context.Background(), "orders", []*message.Message{{ID: "b", Payload: []byte(`{}`)}})
	if !errors.Is(err, schema.ErrInvalid) || len(f.rec.log) != 0 {
		t.Errorf("invalid batch: err %v, ran %v; want ErrInvalid before ordering", err, f.rec.log)
	}
}

// TestTheWrongOrderBreaks shows what New prevents: a validator placed before decryption sees
// ciphertext, and dead-letters every valid message.
func TestTheWrongOrderBreaks(t *testing.T) {
	f := newFeatures(t)
	enc, err := f.enc.Encrypt(context.Background(), "orders", &message.Message{ID: "a", Payload: []byte(`{"n":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	enc.Topic = "orders"
	h := func(context.Context, *message.Message) error { return nil }
	wrong := message.Chain(f.val.Consume(), f.enc.Consume())(h)
	if err := wrong(context.Background(), enc.Clone()); !message.IsPermanent(err) || !errors.Is(err, schema.ErrInvalid) {
		t.Errorf("validate before decrypt: err = %v; want a permanent schema violation", err)
	}
	right := chain.MustNew(chain.Encryption(f.enc), chain.Schema(f.val)).Handler(h)
	if err := right(context.Background(), enc.Clone()); err != nil {
		t.Errorf("decrypt before validate: %v", err)
	}
}
