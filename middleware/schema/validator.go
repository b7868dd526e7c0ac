package schema

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// Config configures a Validator.
type Config struct {
	// Registry holds the schemas. Required.
	Registry *Registry

	// Require makes a message to which no schema applies (no message.HeaderSchema header,
	// no schema bound to its topic) invalid (ErrNoSchema). Default false: it passes unchecked.
	Require bool

	// PartialSends publishes the valid messages of a batch that has invalid ones; the error
	// (a *transport.PublishError) lists the invalid ones. Default false: an invalid message
	// fails its whole batch and nothing of it is sent.
	PartialSends bool

	// Redact keeps everything derived from the payload out of violations, so that errors,
	// logs and dead-letter headers (courier-dlq-reason, courier-schema-violation) quote
	// nothing of it: a violation's Message says only which keyword was violated ("violates
	// minimum"), not the value found, and its InstanceLocation keeps only words of the schema
	// — property names a JSON Schema declares, Protobuf field names — while map keys and array
	// indexes of the payload become "*" ("/meta/*/sku"). The KeywordLocation, a location in
	// the schema, stays. Set it when payloads are confidential — package chain requires it
	// together with encryption. Default false: messages like "minimum: got -5, want 0" and
	// full instance locations.
	Redact bool
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Registry == nil {
		return fmt.Errorf("%w: Config.Registry is required", ErrInvalidConfig)
	}
	return nil
}

// Validator checks messages against the schemas of a Registry, with a publish half and a
// consume half that use the same rules. It is safe for concurrent use.
type Validator struct {
	reg     *Registry
	require bool
	partial bool
	redact  bool
}

// New returns a Validator for cfg.
func New(cfg Config) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Validator{reg: cfg.Registry, require: cfg.Require, partial: cfg.PartialSends, redact: cfg.Redact}, nil
}

// Redacts reports whether violations leave payload content out (Config.Redact).
func (v *Validator) Redacts() bool { return v.redact }

// Check validates m as a message of topic: nil when it conforms or no schema applies (and
// Config.Require is off), else a *ValidationError.
func (v *Validator) Check(topic string, m *message.Message) error {
	var s Schema
	if name, named := m.Headers[message.HeaderSchema]; named {
		var ok bool
		if s, ok = v.reg.Lookup(name); !ok {
			return &ValidationError{Schema: name, Err: ErrUnknownSchema}
		}
	} else {
		var ok bool
		if s, ok = v.reg.ForTopic(topic); !ok {
			if v.require {
				return &ValidationError{Err: fmt.Errorf("%w on topic %q", ErrNoSchema, topic)}
			}
			return nil
		}
	}
	err := s.Validate(m.Payload)
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		ve = &ValidationError{Violations: []Violation{{Message: err.Error()}}}
	}
	if ve.Schema == "" {
		ve.Schema = s.Name()
	}
	if v.redact {
		redact(s, ve.Violations)
	}
	return ve
}

// redact removes from violations what comes from the payload: messages (values, byte
// offsets, field numbers) and instance-location tokens that are not words of the schema.
func redact(s Schema, vs []Violation) {
	keep := func(string) bool { return false } // a schema of unknown make: nothing is known safe
	switch s := s.(type) {
	case *JSONSchema:
		keep = func(tok string) bool { return s.names[tok] && !isIndex(tok) }
	case *ProtoSchema:
		keep = func(string) bool { return true } // field names from the descriptor
	}
	for i := range vs {
		vs[i].Message = redacted(vs[i].KeywordLocation)
		vs[i].InstanceLocation = redactPointer(vs[i].InstanceLocation, keep)
	}
}

// redacted describes a violation by its keyword alone.
func redacted(keywordLocation string) string {
	kw := keywordLocation[strings.LastIndexAny(keywordLocation, "/#")+1:]
	if kw == "" {
		return "violates the schema (details redacted)"
	}
	return "violates " + kw + " (details redacted)"
}

// Publish returns the publish half: it validates every message of a batch before the next
// publish function sees it. See the package documentation for the errors.
func (v *Validator) Publish() message.PublishMiddleware {
	return func(next message.PublishFunc) message.PublishFunc {
		return func(ctx context.Context, topic string, msgs []*message.Message) error {
			var failed []transport.FailedMessage
			for i, m := range msgs {
				if m == nil {
					continue // Publish refuses nil messages before middleware runs
				}
				if err := v.Check(topic, m); err != nil {
					if !v.partial {
						err = fmt.Errorf("%w: %w", transport.ErrInvalidMessage, err)
					}
					failed = append(failed, transport.FailedMessage{Index: i, ID: m.ID, Err: err})
				}
			}
			if failed == nil {
				return next(ctx, topic, msgs)
			}
			if !v.partial || len(failed) == len(msgs) {
				return &transport.PublishError{Topic: topic, Total: len(msgs), Failed: failed}
			}
			return v.sendValid(ctx, next, topic, msgs, failed)
		}
	}
}

// sendValid publishes the messages not in failed and merges the next function's failures,
// mapped back to the caller's indexes, into one PublishError.
func (v *Validator) sendValid(ctx context.Context, next message.PublishFunc, topic string, msgs []*message.Message, failed []transport.FailedMessage) error {
	valid := make([]*message.Message, 0, len(msgs)-len(failed))
	pos := make([]int, 0, len(msgs)-len(failed))
	j := 0
	for i, m := range msgs {
		if j < len(failed) && failed[j].Index == i {
			j++
			continue
		}
		valid = append(valid, m)
		pos = append(pos, i)
	}
	if err := next(ctx, topic, valid); err != nil {
		var pe *transport.PublishError
		if errors.As(err, &pe) {
			for _, f := range pe.Failed {
				if f.Index >= 0 && f.Index < len(pos) {
					f.Index = pos[f.Index]
				}
				failed = append(failed, f)
			}
		} else {
			for k, m := range valid {
				failed = append(failed, transport.FailedMessage{Index: pos[k], ID: m.ID, Err: err})
			}
		}
		sortByIndex(failed)
	}
	return &transport.PublishError{Topic: topic, Total: len(msgs), Failed: failed}
}

func sortByIndex(f []transport.FailedMessage) {
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && f[j].Index < f[j-1].Index; j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
}

// Consume returns the consume half: an invalid message fails with a permanent error wrapping
// its *ValidationError, so the engine dead-letters it without retries; a valid one goes to the
// next handler unchanged.
func (v *Validator) Consume() message.Middleware {
	return func(next message.Handler) message.Handler {
		return func(ctx context.Context, m *message.Message) error {
			if err := v.Check(m.Topic, m); err != nil {
				return message.Permanent(fmt.Errorf("message %s on %q: %w", m.ID, m.Topic, err))
			}
			return next(ctx, m)
		}
	}
}
