package message_test

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
)

// TestErrorKinds: what each constructor marks, as the engine reads it, including through
// fmt.Errorf("%w") wrapping, and that the cause stays reachable with errors.Is and errors.As.
func TestErrorKinds(t *testing.T) {
	cause := io.ErrUnexpectedEOF
	wake := make(chan struct{})
	type kinds struct {
		permanent, deferred, requeue, keepsOrder bool
		delay                                    time.Duration
		hasDelay, hasWake                        bool
	}
	tests := []struct {
		name string
		err  error
		want kinds
	}{
		{"plain", cause, kinds{}},
		{"permanent", message.Permanent(cause), kinds{permanent: true}},
		{"retry after", message.RetryAfter(cause, time.Second), kinds{delay: time.Second, hasDelay: true}},
		{"defer", message.Defer(cause, time.Second), kinds{deferred: true, delay: time.Second, hasDelay: true}},
		{"defer until", message.DeferUntil(cause, time.Second, wake), kinds{deferred: true, delay: time.Second, hasDelay: true, hasWake: true}},
		{"requeue", message.Requeue(cause, time.Second), kinds{deferred: true, requeue: true, delay: time.Second, hasDelay: true}},
		{"defer in order", message.DeferInOrder(cause, time.Second, wake), kinds{deferred: true, keepsOrder: true, delay: time.Second, hasDelay: true, hasWake: true}},
		{"defer in order without wake", message.DeferInOrder(cause, time.Second, nil), kinds{deferred: true, keepsOrder: true, delay: time.Second, hasDelay: true}},
		{"permanent stays permanent when deferred", message.Defer(message.Permanent(cause), time.Second), kinds{permanent: true}},
		{"permanent stays permanent when deferred in order", message.DeferInOrder(message.Permanent(cause), time.Second, nil), kinds{permanent: true}},
		{"permanent stays permanent when requeued", message.Requeue(message.Permanent(cause), time.Second), kinds{permanent: true}},
		{"permanent wins over a deferral it wraps", message.Permanent(message.DeferInOrder(cause, time.Second, nil)), kinds{permanent: true, delay: time.Second, hasDelay: true}},
		{"permanent of a requeue is no requeue", message.Permanent(message.Requeue(cause, 0)), kinds{permanent: true, hasDelay: true}},
	}
	for _, tc := range tests {
		for _, wrap := range []bool{false, true} {
			err := tc.err
			name := tc.name
			if wrap {
				err = fmt.Errorf("middleware: %w", err)
				name += " (wrapped)"
			}
			t.Run(name, func(t *testing.T) {
				got := kinds{
					permanent:  message.IsPermanent(err),
					deferred:   message.IsDeferred(err),
					requeue:    message.IsRequeue(err),
					keepsOrder: message.KeepsOrder(err),
					hasWake:    message.WakeOf(err) != nil,
				}
				got.delay, got.hasDelay = message.RetryDelay(err)
				if got != tc.want {
					t.Errorf("kinds = %+v; want %+v", got, tc.want)
				}
				if !errors.Is(err, cause) {
					t.Error("the cause is no longer reachable with errors.Is")
				}
				if got.permanent != errors.Is(err, message.ErrPermanent) {
					t.Error("IsPermanent disagrees with errors.Is(err, ErrPermanent)")
				}
				if err.Error() != "middleware: "+cause.Error() && err.Error() != cause.Error() {
					t.Errorf("Error() = %q; want the cause's text", err.Error())
				}
			})
		}
	}
}

func TestErrorKindsNil(t *testing.T) {
	for name, err := range map[string]error{
		"Permanent":    message.Permanent(nil),
		"RetryAfter":   message.RetryAfter(nil, time.Second),
		"Defer":        message.Defer(nil, time.Second),
		"DeferUntil":   message.DeferUntil(nil, time.Second, nil),
		"Requeue":      message.Requeue(nil, time.Second),
		"DeferInOrder": message.DeferInOrder(nil, time.Second, nil),
	} {
		if err != nil {
			t.Errorf("%s(nil) = %v; want nil", name, err)
		}
	}
	if message.IsPermanent(nil) || message.IsDeferred(nil) || message.IsRequeue(nil) || message.KeepsOrder(nil) || message.WakeOf(nil) != nil {
		t.Error("a nil error is of some kind")
	}
	if _, ok := message.RetryDelay(nil); ok {
		t.Error("a nil error carries a delay")
	}
}

// TestErrorsAs: a custom error type wrapped by the kinds is still found with errors.As.
func TestErrorsAs(t *testing.T) {
	cause := &customError{code: 7}
	for _, err := range []error{
		message.Permanent(cause), message.RetryAfter(cause, time.Second), message.Defer(cause, 0),
		message.Requeue(cause, 0), message.DeferInOrder(cause, 0, nil), message.DeferUntil(cause, 0, nil),
	} {
		var c *customError
		if !errors.As(err, &c) || c.code != 7 {
			t.Errorf("errors.As(%v) did not find the cause", err)
		}
	}
}

func TestPermanentIsIdempotent(t *testing.T) {
	p := message.Permanent(io.EOF)
	if message.Permanent(p) != p {
		t.Error("Permanent of a permanent error wraps it again")
	}
	if message.Permanent(message.ErrPermanent) != message.ErrPermanent {
		t.Error("Permanent(ErrPermanent) wraps it")
	}
}

type customError struct{ code int }

func (e *customError) Error() string { return fmt.Sprintf("custom %d", e.code) }
