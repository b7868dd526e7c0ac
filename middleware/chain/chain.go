// Package chain puts Courier's middleware in the recommended order, and refuses any other.
//
//	c, err := chain.New(
//		chain.Ordering(ord),
//		chain.Idempotency(idem),
//		chain.Encryption(enc),
//		chain.Schema(validator),
//		chain.Retry(classifier),
//	)
//	pub := conn.Publisher(transport.PublisherConfig{Middleware: c.Publish()})
//	sub, _ := conn.Subscribe(ctx, topic, group, transport.SubscriberConfig{Middleware: c.Consume()})
//
// Steps are listed in consume order, outermost first; any subset may be used, and New fails
// (ErrOrder, saying why) when two known steps are out of order or one appears twice. Custom
// steps (tracing, metrics, logging) may go anywhere. The publish side is derived: a feature
// with a publish half contributes it in the publish order below, whatever the order of the
// arguments. To deviate deliberately, compose with message.Chain yourself.
//
// # Consume order (outermost first)
//
//		ordering → idempotency → decrypt → validate → classify → handler
//
//	  - decrypt before validate: a validator cannot read ciphertext. This is the one order no
//	    configuration could make work the other way round.
//	  - ordering and idempotency before decrypt and validate: they are the checks that end most
//	    deliveries early in an at-least-once system — a duplicate is acknowledged, a message that
//	    must wait for an earlier one of its key is deferred — and placing them first means those
//	    deliveries cost one store lookup, not a decryption and a schema check each time (JSON
//	    Schema costs tens of microseconds per KiB; a gap can redeliver a message many times). It
//	    is safe although what they read is not yet authenticated: they record success (the key's
//	    sequence advances, the ID is marked handled) only after the inner chain returned nil,
//	    which requires decryption to succeed, and decryption authenticates the message ID, key,
//	    topic and sequence number (encryption.BoundHeaders). What ordering does change before
//	    that — a key moving to a newer counter epoch, a key skipping ahead over a gap — it
//	    checks first against what the store's counter has issued, and a stamp the counter
//	    cannot have issued is dead-lettered (see package ordering's threat model). A forged or
//	    tampered message can at most hold a claim until it fails (then it is released), or be
//	    acknowledged as a duplicate of a message that was really handled — which drops a
//	    forgery, as it should. The price: invalid and undecryptable messages, which are rare,
//	    touch the stores before they are dead-lettered.
//	  - ordering before idempotency: a message the ordering middleware holds back while an
//	    earlier one of its key is missing must not sit on an idempotency claim meanwhile, whose
//	    lease could run out and let a redelivered copy be handled concurrently.
//	  - classify (package retry) innermost: its rules are about the handler's errors; outside
//	    the stores or decryption, a broad rule would turn their outages — which retrying fixes —
//	    into dead-letters.
//
// # Publish order (outermost first)
//
//		validate → ordering → encrypt → broker
//
//	  - validate first: an invalid batch is refused before the ordering middleware reserves
//	    sequence numbers for it, which would leave gaps that consumers wait for.
//	  - encrypt last: it needs the final payload, ID, key and sequence number, which it binds into
//	    the ciphertext, and everything before it needs the plaintext.
//
// Dead-lettering is not a step: it is the engine's hand-off (SubscriberConfig.DeadLetter,
// package deadletter), and what it stores is the message as received — still encrypted. To
// keep it so, New also refuses encryption together with a schema validator that quotes
// payload values in its violations (ErrUnsafe; set schema.Config.Redact).
package chain

import (
	"errors"
	"fmt"
	"strings"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/encryption"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/retry"
	"github.com/courierhq/courier/middleware/schema"
)

// ErrOrder is wrapped by the error New returns for steps out of the recommended order.
var ErrOrder = errors.New("chain: middleware out of order")

// ErrInvalidStep is wrapped by the error New returns for a step without middleware.
var ErrInvalidStep = errors.New("chain: invalid step")

// ErrUnsafe is wrapped by the error New returns for a combination that would leak
// plaintext: schema validation of encrypted payloads whose violations quote payload values
// (schema.Config.Redact off). Violation texts end up in dead-letter headers and logs, which
// encryption promises to keep free of plaintext.
var ErrUnsafe = errors.New("chain: unsafe combination")

// Stage is the position of a known feature in the consume chain; 0 is a custom step.
type Stage int

// Known stages, in consume order.
const (
	custom Stage = iota
	StageOrdering
	StageIdempotency
	StageDecrypt
	StageValidate
	StageClassify
)

var stageNames = [...]string{"custom", "ordering", "idempotency", "decrypt", "validate", "classify"}

// String names the stage.
func (s Stage) String() string {
	if s >= 0 && int(s) < len(stageNames) {
		return stageNames[s]
	}
	return fmt.Sprintf("Stage(%d)", int(s))
}

// publishRank orders the publish halves: validate, ordering, encrypt.
var publishRank = map[Stage]int{StageValidate: 1, StageOrdering: 2, StageDecrypt: 3}

// why explains each pair of known stages (earlier, later) of the consume order.
var why = map[[2]Stage]string{
	{StageDecrypt, StageValidate}:     "a validator cannot read ciphertext",
	{StageOrdering, StageIdempotency}: "a message held back for an earlier one of its key must not hold an idempotency claim whose lease can run out meanwhile",
	{StageOrdering, StageDecrypt}:     "a message that must wait or is a duplicate is settled before it is decrypted; decryption later authenticates its sequence number",
	{StageOrdering, StageValidate}:    "a message that must wait or is a duplicate is settled before it is validated again",
	{StageIdempotency, StageDecrypt}:  "a duplicate is acknowledged without being decrypted again; its ID is marked handled only after decryption authenticated it",
	{StageIdempotency, StageValidate}: "a duplicate is acknowledged without being validated again",
	{StageOrdering, StageClassify}:    "classification rules are about the handler's errors, not the ordering store's",
	{StageIdempotency, StageClassify}: "classification rules are about the handler's errors, not the idempotency store's",
	{StageDecrypt, StageClassify}:     "classification rules are about the handler's errors; decryption classifies its own",
	{StageValidate, StageClassify}:    "classification rules are about the handler's errors; validation classifies its own",
}

// Step is one middleware in a chain: a known feature (built with Ordering, Idempotency,
// Encryption, Schema, Retry) or a custom one (Custom).
type Step struct {
	stage   Stage
	name    string
	consume message.Middleware
	publish message.PublishMiddleware
	leaky   bool // a validator whose violations quote payload values
}

// Stage returns the step's stage (0 for a custom step).
func (s Step) Stage() Stage { return s.stage }

// Ordering is the ordering feature's step (package ordering): check sequence numbers on
// consume, stamp them on publish.
func Ordering(o *ordering.Ordering) Step {
	if o == nil {
		return OrderingFuncs(nil, nil)
	}
	return OrderingFuncs(o.Consume(), o.Publish())
}

// OrderingFuncs is the ordering step from its two halves; publish may be nil.
//
// Deprecated: use Ordering(o), which takes the value as Encryption does.
func OrderingFuncs(consume message.Middleware, publish message.PublishMiddleware) Step {
	return Step{stage: StageOrdering, name: "ordering", consume: consume, publish: publish}
}

// Idempotency is the idempotency feature's step (package idempotency): its consume half.
func Idempotency(i *idempotency.Idempotency) Step {
	if i == nil {
		return IdempotencyFunc(nil)
	}
	return IdempotencyFunc(i.Consume())
}

// IdempotencyFunc is the idempotency step from its consume half.
//
// Deprecated: use Idempotency(i), which takes the value as Encryption does.
func IdempotencyFunc(consume message.Middleware) Step {
	return Step{stage: StageIdempotency, name: "idempotency", consume: consume}
}

// Encryption is the encryption feature's step: decrypt on consume, encrypt on publish.
func Encryption(e *encryption.Encryptor) Step {
	s := Step{stage: StageDecrypt, name: "decrypt"}
	if e != nil {
		s.consume, s.publish = e.Consume(), e.Publish()
	}
	return s
}

// Schema is the schema validation step: validate on consume and on publish.
func Schema(v *schema.Validator) Step {
	s := Step{stage: StageValidate, name: "validate"}
	if v != nil {
		s.consume, s.publish, s.leaky = v.Consume(), v.Publish(), !v.Redacts()
	}
	return s
}

// Retry is the error classification step (package retry), just around the handler.
func Retry(c *retry.Classifier) Step {
	s := Step{stage: StageClassify, name: "classify"}
	if c != nil {
		s.consume = c.Consume()
	}
	return s
}

// Custom is a consume middleware of your own, allowed anywhere in the chain; name appears in
// String and errors. Mind what it sees: before the decrypt step, ciphertext.
func Custom(name string, consume message.Middleware) Step {
	return Step{name: name, consume: consume}
}

// Chain is a checked sequence of steps. It is immutable.
type Chain struct {
	steps   []Step
	publish []Step
}

// New checks steps (in consume order, outermost first) against the recommended order and
// returns the chain.
func New(steps ...Step) (*Chain, error) {
	var last Step
	seen := map[Stage]bool{}
	for i, s := range steps {
		if s.consume == nil {
			return nil, fmt.Errorf("%w: step %d (%s) has no consume middleware", ErrInvalidStep, i, s.name)
		}
		if s.stage == custom {
			continue
		}
		if seen[s.stage] {
			return nil, fmt.Errorf("%w: %s appears twice", ErrOrder, s.stage)
		}
		seen[s.stage] = true
		if last.stage > s.stage {
			return nil, fmt.Errorf("%w: %s (step %d) must come before %s: %s; recommended consume order: %s",
				ErrOrder, s.stage, i, last.stage, why[[2]Stage{s.stage, last.stage}], recommended())
		}
		last = s
	}
	if seen[StageDecrypt] {
		for _, s := range steps {
			if s.leaky {
				return nil, fmt.Errorf("%w: with encryption, the schema validator must set schema.Config.Redact, or its violations quote decrypted values in dead-letter headers and logs", ErrUnsafe)
			}
		}
	}
	c := &Chain{steps: append([]Step(nil), steps...)}
	for rank := 1; rank <= len(publishRank); rank++ {
		for _, s := range steps {
			if s.publish != nil && publishRank[s.stage] == rank {
				c.publish = append(c.publish, s)
			}
		}
	}
	return c, nil
}

// MustNew is New that panics on error, for chains fixed in the program.
func MustNew(steps ...Step) *Chain {
	c, err := New(steps...)
	if err != nil {
		panic(err)
	}
	return c
}

func recommended() string {
	return strings.Join(stageNames[1:], " → ") + " → handler"
}

// Consume returns the consume middleware, outermost first: SubscriberConfig.Middleware.
func (c *Chain) Consume() []message.Middleware {
	out := make([]message.Middleware, len(c.steps))
	for i, s := range c.steps {
		out[i] = s.consume
	}
	return out
}

// Publish returns the publish middleware, outermost first (validate, ordering, encrypt):
// PublisherConfig.Middleware. Publish middleware of your own goes before these, so that
// encryption stays last.
func (c *Chain) Publish() []message.PublishMiddleware {
	out := make([]message.PublishMiddleware, len(c.publish))
	for i, s := range c.publish {
		out[i] = s.publish
	}
	return out
}

// Handler wraps h in the consume chain.
func (c *Chain) Handler(h message.Handler) message.Handler {
	return message.Chain(c.Consume()...)(h)
}

// String shows both orders, e.g. "consume: ordering → decrypt → handler; publish: ordering →
// encrypt → broker".
func (c *Chain) String() string {
	var b strings.Builder
	b.WriteString("consume: ")
	for _, s := range c.steps {
		b.WriteString(s.name)
		b.WriteString(" → ")
	}
	b.WriteString("handler; publish: ")
	for _, s := range c.publish {
		name := s.name
		if s.stage == StageDecrypt {
			name = "encrypt"
		}
		b.WriteString(name)
		b.WriteString(" → ")
	}
	b.WriteString("broker")
	return b.String()
}
