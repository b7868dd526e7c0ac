package transport

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
)

// TestDecide is the engine's failure policy as a table: every action, and every combination
// of error kind, message facts, capabilities and ordering that changes the answer.
func TestDecide(t *testing.T) {
	noJitter := RetryPolicy{MaxAttempts: 3, InitialDelay: 10 * time.Millisecond, MaxDelay: 40 * time.Millisecond, Multiplier: 2, Jitter: -1}.withDefaults()
	dlBackoff := RetryPolicy{InitialDelay: time.Second, MaxDelay: 4 * time.Second, Multiplier: 2, Jitter: -1}.withDefaultsFrom(DefaultDeadLetterBackoff)
	pol := func(redelivery, ordered bool) policy {
		return policy{redelivery: redelivery, ordered: ordered, retry: noJitter, deadLetterBackoff: dlBackoff}
	}
	fail := errors.New("flaky")
	wake := make(chan struct{})
	type want struct {
		act   action
		delay time.Duration
		wake  bool
	}
	tests := []struct {
		name string
		s    situation
		p    policy
		want want
	}{
		{"handled", situation{attempt: 1}, pol(true, true), want{act: actAck}},
		{"handled while stopping is still acked", situation{stopping: true, attempt: 1}, pol(false, true), want{act: actAck}},
		{"failure while stopping: released, no attempt counted", situation{err: fail, stopping: true, attempt: 1}, pol(true, true), want{act: actRelease}},
		{"dead-letter failure while stopping: released", situation{err: fail, deadLetterErr: fail, deadLetterAttempt: 1, stopping: true, keyed: true}, pol(false, true), want{act: actRelease}},

		// Retryable failures.
		{"unkeyed, redelivery: nack with backoff", situation{err: fail, attempt: 1}, pol(true, true), want{act: actNack, delay: 10 * time.Millisecond}},
		{"keyed, redelivery, ordered: retry in place (order)", situation{err: fail, keyed: true, attempt: 2}, pol(true, true), want{act: actRetry, delay: 20 * time.Millisecond}},
		{"keyed, redelivery, unordered: nack", situation{err: fail, keyed: true, attempt: 1}, pol(true, false), want{act: actNack, delay: 10 * time.Millisecond}},
		{"unkeyed, no redelivery: retry in place", situation{err: fail, attempt: 1}, pol(false, true), want{act: actRetry, delay: 10 * time.Millisecond}},
		{"keyed, no redelivery: retry in place", situation{err: fail, keyed: true, attempt: 1}, pol(false, false), want{act: actRetry, delay: 10 * time.Millisecond}},
		{"backoff capped", situation{err: fail, attempt: 2}, policy{redelivery: true, retry: RetryPolicy{MaxAttempts: 9, InitialDelay: 30 * time.Millisecond, MaxDelay: 40 * time.Millisecond, Multiplier: 2, Jitter: -1}.withDefaults()}, want{act: actNack, delay: 40 * time.Millisecond}},
		{"RetryAfter overrides the backoff", situation{err: message.RetryAfter(fail, time.Minute), attempt: 1}, pol(false, true), want{act: actRetry, delay: time.Minute}},
		{"panic is a plain failure", situation{err: fmt.Errorf("%w: boom", ErrHandlerPanic), attempt: 1}, pol(false, true), want{act: actRetry, delay: 10 * time.Millisecond}},

		// Dead-lettering.
		{"attempts run out", situation{err: fail, attempt: 3}, pol(true, true), want{act: actDeadLetter}},
		{"permanent on first attempt", situation{err: message.Permanent(fail), attempt: 1}, pol(true, true), want{act: actDeadLetter}},
		{"permanent wrapped", situation{err: fmt.Errorf("ctx: %w", message.Permanent(fail)), keyed: true, attempt: 1}, pol(false, true), want{act: actDeadLetter}},
		{"permanent beats defer", situation{err: message.Permanent(message.Defer(fail, time.Second)), attempt: 1}, pol(true, true), want{act: actDeadLetter}},

		// Deferrals: never dead-lettered, even with attempts used up.
		{"defer parks", situation{err: message.Defer(fail, time.Second), keyed: true, attempt: 9}, pol(true, true), want{act: actPark, delay: time.Second}},
		{"defer parks without redelivery", situation{err: message.Defer(fail, time.Second), attempt: 1}, pol(false, true), want{act: actPark, delay: time.Second}},
		{"defer-until parks with its wake", situation{err: message.DeferUntil(fail, time.Second, wake), keyed: true, attempt: 1}, pol(false, true), want{act: actPark, delay: time.Second, wake: true}},
		{"requeue with redelivery: nack", situation{err: message.Requeue(fail, time.Second), keyed: true, attempt: 5}, pol(true, true), want{act: actNack, delay: time.Second}},
		{"requeue without redelivery: parked, not slept in place", situation{err: message.Requeue(fail, time.Second), keyed: true, attempt: 1}, pol(false, true), want{act: actPark, delay: time.Second}},
		{"defer-in-order, keyed, ordered: holds the key", situation{err: message.DeferInOrder(fail, time.Second, wake), keyed: true, attempt: 1}, pol(false, true), want{act: actHold, delay: time.Second, wake: true}},
		{"defer-in-order with redelivery: holds the key", situation{err: message.DeferInOrder(fail, time.Second, nil), keyed: true, attempt: 1}, pol(true, true), want{act: actHold, delay: time.Second}},
		{"defer-in-order unkeyed: parks", situation{err: message.DeferInOrder(fail, time.Second, nil), attempt: 1}, pol(true, true), want{act: actPark, delay: time.Second}},
		{"defer-in-order unordered: parks", situation{err: message.DeferInOrder(fail, time.Second, nil), keyed: true, attempt: 1}, pol(true, false), want{act: actPark, delay: time.Second}},

		// The dead-letter copy could not be stored: capped backoff, kept off the lane.
		{"dead-letter failed, keyed, ordered: holds the key", situation{err: fail, deadLetterErr: fail, deadLetterAttempt: 1, keyed: true}, pol(false, true), want{act: actHold, delay: time.Second}},
		{"dead-letter failed, unkeyed: parks", situation{err: fail, deadLetterErr: fail, deadLetterAttempt: 2}, pol(true, true), want{act: actPark, delay: 2 * time.Second}},
		{"dead-letter failed, unordered: parks", situation{err: fail, deadLetterErr: fail, deadLetterAttempt: 3, keyed: true}, pol(true, false), want{act: actPark, delay: 4 * time.Second}},
		{"dead-letter backoff capped", situation{err: fail, deadLetterErr: fail, deadLetterAttempt: 40, keyed: true}, pol(true, true), want{act: actHold, delay: 4 * time.Second}},
	}
	seen := map[action]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := decide(tc.s, tc.p)
			seen[v.act] = true
			if v.act != tc.want.act || v.delay != tc.want.delay || (v.wake != nil) != tc.want.wake {
				t.Errorf("decide = %v %v wake=%v; want %v %v wake=%v", v.act, v.delay, v.wake != nil, tc.want.act, tc.want.delay, tc.want.wake)
			}
			wantFailed := tc.s.err != nil && tc.s.deadLetterErr == nil && !message.IsDeferred(tc.s.err) && (v.act == actRetry || v.act == actNack)
			if v.failed != wantFailed {
				t.Errorf("failed = %v; want %v (only retried failures are logged as such)", v.failed, wantFailed)
			}
		})
	}
	for a := actAck; a <= actRelease; a++ {
		if !seen[a] {
			t.Errorf("no case decides %v", a)
		}
	}
}
