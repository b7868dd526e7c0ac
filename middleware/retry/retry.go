package retry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/courierhq/courier/message"
)

// ErrInvalidConfig is wrapped by the errors New and Do return for a configuration that
// cannot work.
var ErrInvalidConfig = errors.New("retry: invalid configuration")

// verdict is what a matching rule decides.
type verdict uint8

const (
	retryable verdict = iota + 1 // leave it to the engine's policy (or Config.BackOff)
	permanent                    // dead-letter now
	after                        // retry after the rule's delay
)

// Rule classifies errors. Build rules with PermanentIs, PermanentAs, PermanentIf,
// RetryableIs, RetryableIf and After; the zero Rule matches nothing.
type Rule struct {
	name    string
	verdict verdict
	match   func(error) (time.Duration, bool)
}

// String names the rule, for logs and test failures.
func (r Rule) String() string { return r.name }

// PermanentIs marks errors matching any of targets (errors.Is) permanent: the message is
// dead-lettered without retries.
func PermanentIs(targets ...error) Rule {
	return Rule{name: fmt.Sprintf("permanent if errors.Is %v", targets), verdict: permanent, match: isAny(targets)}
}

// PermanentAs marks errors that errors.As can turn into a T permanent (T is usually a pointer
// to an error type, such as *json.SyntaxError).
func PermanentAs[T error]() Rule {
	var zero T
	return Rule{name: fmt.Sprintf("permanent if errors.As %T", zero), verdict: permanent, match: asType[T]}
}

// PermanentIf marks errors for which fn returns true permanent.
func PermanentIf(fn func(error) bool) Rule {
	return Rule{name: "permanent if func", verdict: permanent, match: pred(fn)}
}

// RetryableIs keeps errors matching any of targets retryable under the engine's policy: no
// later rule is consulted for them. It does not undo a message.Permanent marking.
func RetryableIs(targets ...error) Rule {
	return Rule{name: fmt.Sprintf("retryable if errors.Is %v", targets), verdict: retryable, match: isAny(targets)}
}

// RetryableIf keeps errors for which fn returns true retryable; no later rule is consulted.
func RetryableIf(fn func(error) bool) Rule {
	return Rule{name: "retryable if func", verdict: retryable, match: pred(fn)}
}

// After retries the errors for which fn reports true after the delay it returns (a rate
// limit's reset time, a Retry-After header), instead of the policy's backoff; see
// message.RetryAfter. A delay requested by the handler itself with message.RetryAfter wins.
func After(fn func(error) (time.Duration, bool)) Rule {
	return Rule{name: "retry after func", verdict: after, match: fn}
}

func isAny(targets []error) func(error) (time.Duration, bool) {
	return func(err error) (time.Duration, bool) {
		for _, t := range targets {
			if errors.Is(err, t) {
				return 0, true
			}
		}
		return 0, false
	}
}

func asType[T error](err error) (time.Duration, bool) {
	var target T
	return 0, errors.As(err, &target)
}

func pred(fn func(error) bool) func(error) (time.Duration, bool) {
	return func(err error) (time.Duration, bool) { return 0, fn(err) }
}

// Config configures a Classifier. The zero value is valid and classifies nothing.
type Config struct {
	// Rules are tried in order; the first that matches decides. Errors no rule matches are
	// retried under the engine's policy.
	Rules []Rule

	// BackOff, when set, computes the delay before the next delivery of a retryable failure
	// that no After rule (and no message.RetryAfter) gave a delay for: a new BackOff is made,
	// Reset, and asked NextBackOff once per attempt made so far (Message.Attempt times), so the
	// schedule is a function of the attempt number, like the engine's. A backoff.Stop marks the
	// failure permanent. The engine's RetryPolicy.MaxAttempts still bounds the attempts.
	// Default nil: the engine's RetryPolicy computes delays.
	BackOff func() backoff.BackOff
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	for i, r := range c.Rules {
		if r.match == nil {
			return fmt.Errorf("%w: Rules[%d] is the zero Rule; build rules with PermanentIs, After, …", ErrInvalidConfig, i)
		}
	}
	return nil
}

// Classifier applies a Config's rules to handler errors. It is safe for concurrent use.
type Classifier struct {
	rules   []Rule
	backoff func() backoff.BackOff
}

// New returns a Classifier for cfg.
func New(cfg Config) (*Classifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Classifier{rules: append([]Rule(nil), cfg.Rules...), backoff: cfg.BackOff}, nil
}

// Classify returns err as the engine should see it after a failed attempt (1 for the first
// delivery): marked permanent, given a delay, or unchanged. nil stays nil.
func (c *Classifier) Classify(err error, attempt int) error {
	if err == nil || message.IsPermanent(err) || message.IsDeferred(err) {
		return err // decided already; a deferral (message.Defer) is not a failure at all
	}
	if _, ok := message.RetryDelay(err); ok {
		return err // the handler asked for its own delay
	}
	for i := range c.rules {
		r := &c.rules[i]
		d, ok := r.match(err)
		if !ok {
			continue
		}
		switch r.verdict {
		case permanent:
			return message.Permanent(err)
		case after:
			return message.RetryAfter(err, max(d, 0))
		default:
			return c.schedule(err, attempt)
		}
	}
	return c.schedule(err, attempt)
}

// schedule applies Config.BackOff to a retryable error.
func (c *Classifier) schedule(err error, attempt int) error {
	if c.backoff == nil {
		return err
	}
	b := c.backoff()
	if b == nil {
		return err
	}
	b.Reset()
	var d time.Duration
	for i := 0; i < max(attempt, 1); i++ {
		if d = b.NextBackOff(); d == backoff.Stop {
			return message.Permanent(fmt.Errorf("retry schedule exhausted after %d attempts: %w", attempt, err))
		}
	}
	return message.RetryAfter(err, d)
}

// Consume returns the consume middleware: it calls the next handler and classifies the error
// it returns. Place it innermost, just around the handler.
func (c *Classifier) Consume() message.Middleware {
	return func(next message.Handler) message.Handler {
		return func(ctx context.Context, m *message.Message) error {
			err := next(ctx, m)
			if err == nil {
				return nil
			}
			return c.Classify(err, m.Attempt)
		}
	}
}
