package message

import (
	"errors"
	"time"
)

// ErrPermanent marks a failure that retrying cannot fix: bad schema, failed decryption, a
// handler's own verdict. A handler returning an error for which errors.Is(err, ErrPermanent)
// holds sends the message straight to the dead-letter destination, without retries.
var ErrPermanent = errors.New("permanent failure")

// permanentError wraps a cause and matches both ErrPermanent and the cause.
type permanentError struct{ err error }

func (e *permanentError) Error() string {
	if e.err == nil {
		return ErrPermanent.Error()
	}
	return e.err.Error()
}

func (e *permanentError) Unwrap() []error { return []error{ErrPermanent, e.err} }

// Permanent marks err as permanent: the message is dead-lettered without retries. The result
// still matches err with errors.Is and errors.As. Permanent(nil) returns nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	if IsPermanent(err) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err was marked permanent.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }

// retryAfterError asks for a specific delay before the next attempt.
type retryAfterError struct {
	err   error
	delay time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter wraps err so that the next attempt waits at least delay instead of the retry
// policy's computed backoff. Use it when the handler knows better (a rate limit's reset time).
// RetryAfter(nil, d) returns nil.
func RetryAfter(err error, delay time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, delay: delay}
}

// RetryDelay returns the delay requested with RetryAfter anywhere in err's chain.
func RetryDelay(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.delay, true
	}
	return 0, false
}
