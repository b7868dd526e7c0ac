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

// ErrDeferred marks a delivery that is put off rather than failed: the message cannot be
// handled yet because of something outside it (an earlier message of its ordering key has not
// been handled; another consumer holds its idempotency claim). Test with IsDeferred.
var ErrDeferred = errors.New("deferred")

// deferredError wraps a cause and matches both ErrDeferred and the cause.
type deferredError struct {
	err     error
	broker  bool            // Requeue: back to the broker rather than parked in the engine
	wake    <-chan struct{} // DeferUntil: ends the wait early when closed
	inOrder bool            // DeferInOrder: the key's later messages wait behind this one
}

func (e *deferredError) Error() string   { return e.err.Error() }
func (e *deferredError) Unwrap() []error { return []error{ErrDeferred, e.err} }

// Defer wraps err to say "not now, try again after delay". The delivery is not counted as a
// failure: the consumer engine never dead-letters a message for it. The engine parks the
// message — keeps it, unacknowledged, off its key's lane, so the worker and the lane serve
// other messages — and hands it to a handler again after delay, without a round trip to the
// broker. (Should the prefetch stay full with most of it parked, the engine gives the messages
// due last back to the broker, so that it can receive the ones they wait for.) Middleware that waits for
// other messages returns it and bounds the waiting itself. RetryDelay reports delay.
// Defer(nil, d) returns nil; a permanent error stays permanent.
func Defer(err error, delay time.Duration) error { return deferErr(err, delay, false, nil) }

// DeferUntil is Defer that may end early: the engine hands the message back as soon as wake
// is closed, or after delay, whichever comes first. Middleware that learns in-process when
// the wait is over (the key's previous message was just handled here) closes wake.
func DeferUntil(err error, delay time.Duration, wake <-chan struct{}) error {
	return deferErr(err, delay, false, wake)
}

// Requeue is Defer that gives the message back to the broker (on a broker that can
// redeliver; otherwise the engine parks it), so that any consumer of the subscription may get
// it next. On brokers that count deliveries the redelivery counts: Message.Attempt grows,
// although the engine still does not dead-letter for a deferral.
func Requeue(err error, delay time.Duration) error { return deferErr(err, delay, true, nil) }

// DeferInOrder is DeferUntil for a message that must keep its place in its key's order: while
// it waits, the engine holds back the later messages of its Key (they wait behind it, parked,
// in the order they arrived), and other keys go on. Plain Defer lets them pass, which is what
// middleware wants when the message waits for an earlier one of its own key (the ordering
// middleware); DeferInOrder is for waits on something outside the key's order, such as another
// instance's idempotency claim on this very message. wake may be nil. For a message without a
// Key, or on a subscriber that ignores keys (transport.OrderNone), it is the same as
// DeferUntil. A message holding its key is never given back to the broker to make room.
func DeferInOrder(err error, delay time.Duration, wake <-chan struct{}) error {
	if err == nil {
		return nil
	}
	if IsPermanent(err) {
		return err
	}
	return &retryAfterError{err: &deferredError{err: err, wake: wake, inOrder: true}, delay: delay}
}

func deferErr(err error, delay time.Duration, broker bool, wake <-chan struct{}) error {
	if err == nil {
		return nil
	}
	if IsPermanent(err) {
		return err
	}
	return &retryAfterError{err: &deferredError{err: err, broker: broker, wake: wake}, delay: delay}
}

// KeepsOrder reports whether err was marked with DeferInOrder (and not also permanent).
func KeepsOrder(err error) bool {
	var d *deferredError
	return errors.As(err, &d) && d.inOrder && !IsPermanent(err)
}

// IsDeferred reports whether err was marked with Defer or Requeue (and not also permanent).
func IsDeferred(err error) bool { return errors.Is(err, ErrDeferred) && !IsPermanent(err) }

// IsRequeue reports whether err was marked with Requeue (and not also permanent).
func IsRequeue(err error) bool {
	var d *deferredError
	return errors.As(err, &d) && d.broker && !IsPermanent(err)
}

// WakeOf returns the channel given to DeferUntil anywhere in err's chain, or nil.
func WakeOf(err error) <-chan struct{} {
	var d *deferredError
	if errors.As(err, &d) {
		return d.wake
	}
	return nil
}
