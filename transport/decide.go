package transport

import (
	"time"

	"github.com/courierhq/courier/message"
)

// The engine's failure decision, in one place: decide maps what happened to a message (the
// handler's error, or a failed attempt to store its dead-letter copy), the message's facts,
// the broker's capabilities, the retry policy and the ordering mode to one action. It reads no
// engine state; the engine executes what it returns (engine.go, park.go, ack.go, handoff.go).

// action is what the engine does with a message after a handler call or a dead-letter attempt.
type action int

const (
	// actAck: the message was handled; acknowledge it.
	actAck action = iota + 1
	// actRetry: call the handler again in place after the delay, with Attempt+1. The worker
	// (and so the key's lane) waits: it keeps the key's order, and works without redelivery.
	actRetry
	// actNack: give the message back to the broker, to be redelivered after the delay.
	actNack
	// actPark: keep the message in flight but off its lane, and queue it again after the
	// delay (or once wake is closed). Later messages of its key may pass it.
	actPark
	// actHold: park, and make the later messages of the key wait behind the message until it
	// leaves the park and is handled (or given up). Other keys keep flowing.
	actHold
	// actDeadLetter: store a dead-letter copy (or hand the message to the broker's own
	// dead-lettering), then acknowledge.
	actDeadLetter
	// actRelease: give the message back without counting an attempt (the engine is stopping).
	actRelease
)

// String names the action for logs and test failures.
func (a action) String() string {
	switch a {
	case actAck:
		return "ack"
	case actRetry:
		return "retry"
	case actNack:
		return "nack"
	case actPark:
		return "park"
	case actHold:
		return "hold"
	case actDeadLetter:
		return "dead-letter"
	case actRelease:
		return "release"
	}
	return "action(?)"
}

// situation is what happened to one message, as decide sees it.
type situation struct {
	// err is the handler's error; nil when it handled the message.
	err error
	// deadLetterErr is set when storing the dead-letter copy failed (err led there).
	deadLetterErr error
	// deadLetterAttempt counts the failed attempts to store the copy, this one included.
	deadLetterAttempt int
	// stopping: the handlers' context was cancelled (the drain timeout passed).
	stopping bool
	// keyed: the message has a non-empty Key.
	keyed bool
	// attempt is the message's delivery attempt (1 for the first).
	attempt int
}

// policy is what decide knows of the subscriber: capabilities, ordering, retry policies.
type policy struct {
	// redelivery: the broker redelivers a nacked message (Capabilities.Redelivery).
	redelivery bool
	// ordered: one key's messages are handled one at a time in order (Order is not OrderNone).
	ordered bool
	// retry is the subscriber's retry policy, defaults filled.
	retry RetryPolicy
	// deadLetterBackoff spaces the attempts to store a dead-letter copy, defaults filled.
	deadLetterBackoff RetryPolicy
}

// verdict is decide's answer: the action, the delay before the message is handled again, and
// the channel that ends a park early (DeferUntil, DeferInOrder).
type verdict struct {
	act   action
	delay time.Duration
	wake  <-chan struct{}
	// failed: the verdict retries a failure (not a deferral); the engine logs it.
	failed bool
}

// decide is the engine's whole failure policy. Delays carry the policies' jitter.
func decide(s situation, p policy) verdict {
	switch {
	case s.err == nil && s.deadLetterErr == nil:
		return verdict{act: actAck}
	case s.stopping:
		// The handler was cancelled by the stop: not the message's fault, no attempt counts.
		return verdict{act: actRelease}
	case s.deadLetterErr != nil:
		// Keep the message (never ack it) and try again after a capped backoff, off its lane
		// so that other keys flow; its own key waits behind it to keep its order.
		return verdict{act: parkOrHold(s, p), delay: p.deadLetterBackoff.delay(s.deadLetterAttempt)}
	case message.IsPermanent(s.err):
		return verdict{act: actDeadLetter}
	case message.IsDeferred(s.err):
		return decideDeferral(s, p)
	case s.attempt >= p.retry.MaxAttempts:
		return verdict{act: actDeadLetter}
	}
	delay, ok := message.RetryDelay(s.err)
	if !ok {
		delay = p.retry.delay(s.attempt)
	}
	if p.redelivery && (!s.keyed || !p.ordered) {
		// Nobody's order depends on it: the broker keeps it meanwhile.
		return verdict{act: actNack, delay: delay, failed: true}
	}
	return verdict{act: actRetry, delay: delay, failed: true}
}

// decideDeferral: a deferral (message.Defer, DeferUntil, DeferInOrder, Requeue) is not a
// failure: it never dead-letters and no attempt counts.
func decideDeferral(s situation, p policy) verdict {
	delay, _ := message.RetryDelay(s.err)
	wake := message.WakeOf(s.err)
	switch {
	case message.KeepsOrder(s.err):
		return verdict{act: parkOrHold(s, p), delay: delay, wake: wake}
	case message.IsRequeue(s.err) && p.redelivery:
		return verdict{act: actNack, delay: delay}
	default:
		// Defer, DeferUntil, and Requeue where the broker cannot redeliver (Kafka): parked,
		// so that the lane serves other messages meanwhile.
		return verdict{act: actPark, delay: delay, wake: wake}
	}
}

// parkOrHold holds the key where there is a key's order to keep, else parks.
func parkOrHold(s situation, p policy) action {
	if s.keyed && p.ordered {
		return actHold
	}
	return actPark
}
