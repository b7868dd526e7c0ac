package transport

import (
	"context"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport/driver"
)

// Dead-letter hand-off: the engine executing actDeadLetter. The copy itself is built and
// stored by the DeadLetterer (deadletter.go); this file decides nothing, it carries out
// decide's verdicts for the hand-off and its failures.

// DeadLetterRetry describes a failed attempt to store a message's dead-letter copy; the
// subscriber passes it to SubscriberConfig.OnDeadLetterError. The message is kept
// (unacknowledged, holding its key's place) and the copy tried again after RetryIn.
type DeadLetterRetry struct {
	// Message is the message as received (not acknowledged).
	Message *message.Message
	// Failure is why it is being dead-lettered.
	Failure Failure
	// Err is the DeadLetterer's error.
	Err error
	// Attempt counts the failed attempts to store this copy, this one included.
	Attempt int
	// RetryIn is the wait before the next attempt (SubscriberConfig.DeadLetterBackoff).
	RetryIn time.Duration
}

// deadLetterRetry is what a message parked after a failed dead-letter attempt keeps.
type deadLetterRetry struct {
	failure  Failure
	attempts int
}

// deadLetter hands m to the broker's dead-lettering or stores its copy. It reports whether m
// now holds its key (the copy could not be stored and m waits for the next try).
// ctx is the handler call's (carrying its trace, which the dead-letter copy inherits).
func (e *engine) deadLetter(ctx context.Context, m *message.Message, f Failure) (held bool) {
	if !e.cfg.Native {
		return e.storeDeadLetter(ctx, m, &deadLetterRetry{failure: f})
	}
	e.log.Warn("courier: handing message to the broker's dead-lettering", "message_id", m.ID, "attempts", f.Attempts, "permanent", f.Permanent, "error", f.Err)
	e.observeEvent(ctx, m, Event{Kind: EventDeadLetter, Err: f.Err})
	defer e.finished(1)
	if rj, ok := e.recv.(driver.Rejecter); ok {
		if err := rj.Reject(e.opctx, m, f.Err); err != nil {
			e.log.Error("courier: reject failed; the broker will redeliver", "message_id", m.ID, "error", err)
		}
		return false
	}
	if err := e.recv.Nack(e.opctx, m, 0); err != nil {
		e.log.Error("courier: nack failed; the broker will redeliver", "message_id", m.ID, "error", err)
	}
	return false
}

// storeDeadLetter makes one attempt to store m's dead-letter copy: acks m once it is stored;
// otherwise logs one line, tells OnDeadLetterError, and parks m (holding its key where order
// matters) until the next attempt, as decide says.
func (e *engine) storeDeadLetter(ctx context.Context, m *message.Message, r *deadLetterRetry) (held bool) {
	f := r.failure
	err := e.cfg.DeadLetter.DeadLetter(ctx, m, f)
	if err == nil {
		e.log.Warn("courier: message dead-lettered", "message_id", m.ID, "attempts", f.Attempts, "permanent", f.Permanent, "error", f.Err)
		e.observeEvent(ctx, m, Event{Kind: EventDeadLetter, Err: f.Err})
		e.acks.add(m)
		e.finished(1)
		return false
	}
	r.attempts++
	v := decide(situation{err: f.Err, deadLetterErr: err, deadLetterAttempt: r.attempts,
		stopping: e.hctx.Err() != nil, keyed: m.Key != "", attempt: m.Attempt}, e.cfg.Policy)
	if v.act == actRelease {
		e.release(m)
		return false
	}
	e.log.Error("courier: dead-lettering failed; the message is kept and tried again",
		"message_id", m.ID, "attempt", r.attempts, "retry_in", v.delay, "error", err)
	e.observeEvent(ctx, m, Event{Kind: EventDeadLetterFailed, Delay: v.delay, Err: err})
	if e.cfg.OnDeadLetterError != nil {
		e.cfg.OnDeadLetterError(DeadLetterRetry{Message: m, Failure: f, Err: err, Attempt: r.attempts, RetryIn: v.delay})
	}
	return e.execute(m, v, r)
}
