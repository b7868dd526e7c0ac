package retry

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/courierhq/courier/message"
)

// Defaults for Policy. They are short on purpose: Do runs inside a handler, and the message
// itself is retried by the engine when Do gives up, so long waits here only hold a worker and
// delay the messages queued behind it.
const (
	DefaultMaxTries     = 3
	DefaultMaxElapsed   = 5 * time.Second
	DefaultInitialDelay = 50 * time.Millisecond
	DefaultMaxDelay     = time.Second
)

// Policy configures Do. The zero value is valid and means the documented defaults.
type Policy struct {
	// MaxTries is the most calls, the first included. Default DefaultMaxTries (3).
	MaxTries uint
	// MaxElapsed bounds the time spent, waits included; no wait starts that would end after
	// it. Default DefaultMaxElapsed (5s).
	MaxElapsed time.Duration
	// BackOff returns the schedule of waits. Default: exponential from DefaultInitialDelay,
	// ×2 per call, capped at DefaultMaxDelay, ±50% jitter (backoff.ExponentialBackOff).
	BackOff func() backoff.BackOff
	// Classifier, when set, classifies each error as the consume middleware does: errors it
	// marks permanent stop the loop at once, After rules set the next wait.
	Classifier *Classifier
	// Notify, when set, is called before each wait with the error and the wait.
	Notify func(err error, wait time.Duration)
}

// Validate reports a policy that cannot work.
func (p Policy) Validate() error {
	if p.MaxElapsed < 0 {
		return fmt.Errorf("%w: Policy.MaxElapsed %v is negative", ErrInvalidConfig, p.MaxElapsed)
	}
	return nil
}

// Do calls op until it returns nil, returns an error marked message.Permanent (or classified
// permanent by Policy.Classifier), ctx is done, or the policy's tries or time run out, waiting
// between calls per the policy's backoff. A delay requested with message.RetryAfter replaces
// the next wait. It returns op's last result and error; when ctx ends first, ctx's cause.
//
// Use it for a call to a downstream inside a handler; return its error from the handler and
// the engine retries the message under the subscription's policy.
func Do[T any](ctx context.Context, p Policy, op func(context.Context) (T, error)) (T, error) {
	if err := p.Validate(); err != nil {
		var zero T
		return zero, err
	}
	if p.MaxTries == 0 {
		p.MaxTries = DefaultMaxTries
	}
	if p.MaxElapsed == 0 {
		p.MaxElapsed = DefaultMaxElapsed
	}
	var b backoff.BackOff
	if p.BackOff != nil {
		b = p.BackOff()
	}
	if b == nil {
		eb := backoff.NewExponentialBackOff()
		eb.InitialInterval, eb.MaxInterval, eb.Multiplier = DefaultInitialDelay, DefaultMaxDelay, 2
		b = eb
	}
	try := 0
	opts := []backoff.RetryOption{
		backoff.WithBackOff(b),
		backoff.WithMaxTries(p.MaxTries),
		backoff.WithMaxElapsedTime(p.MaxElapsed),
	}
	if p.Notify != nil {
		opts = append(opts, backoff.WithNotify(p.Notify))
	}
	return backoff.Retry(ctx, func() (T, error) {
		try++
		v, err := op(ctx)
		if err == nil {
			return v, nil
		}
		if p.Classifier != nil {
			err = p.Classifier.Classify(err, try)
		}
		switch {
		case message.IsPermanent(err):
			return v, backoff.Permanent(err) // Retry returns err itself, still permanent
		default:
			if d, ok := message.RetryDelay(err); ok {
				return v, &retryAfter{err: err, RetryAfterError: backoff.RetryAfterError{Duration: d}}
			}
			return v, err
		}
	}, opts...)
}

// retryAfter carries backoff's RetryAfterError (so Retry waits the requested delay) while
// still reading and unwrapping as the operation's error.
type retryAfter struct {
	backoff.RetryAfterError
	err error
}

func (e *retryAfter) Error() string { return e.err.Error() }
func (e *retryAfter) Unwrap() error { return e.err }

// As lets backoff.Retry find the requested delay with errors.As.
func (e *retryAfter) As(target any) bool {
	if t, ok := target.(**backoff.RetryAfterError); ok {
		*t = &e.RetryAfterError
		return true
	}
	return false
}
