package transport

import (
	"context"
	"time"

	"github.com/courierhq/courier/message"
)

// Observer is told what publishers and the consumer engine do, so that tracing and metrics can
// be attached without the core depending on them (package otelcourier implements it with
// OpenTelemetry). Set it for a whole connection with ConnConfig.Observer, or for one
// publisher or subscriber with PublisherConfig.Observer / SubscriberConfig.Observer, which
// take precedence. With none set, nothing is called and nothing is allocated.
//
// Methods are called concurrently, from the publishing goroutines and the subscriber's
// workers; they must be safe for concurrent use, must not block, and must not keep the
// messages they are given. A panic in an Observer is not recovered.
//
// Calls for one handler call come in this order: ProcessStart, then Event for the engine's
// decision (ack, retry, deferral, nack, release, dead-letter), then ProcessEnd. A message
// retried in place gets this sequence once per attempt.
type Observer interface {
	// PublishStart is called once per Publish call, after IDs and publish times are set and
	// before publish middleware runs. It may add headers to msgs (trace context: it must
	// replace a message's Headers map rather than write into it, since callers may share one
	// map between messages). The context it returns is the one PublishEnd receives and the
	// one the middleware and the driver run with.
	PublishStart(ctx context.Context, p PublishInfo, msgs []*message.Message) context.Context
	// PublishEnd is called when the Publish call returns, with its error (a *PublishError
	// when only some messages failed).
	PublishEnd(ctx context.Context, p PublishInfo, msgs []*message.Message, err error)

	// ProcessStart is called before the handler is called for d.Message. The context it
	// returns is the one the handler receives (carrying a span, say, extracted from the
	// message's headers), and the one Event and ProcessEnd receive.
	ProcessStart(ctx context.Context, d Delivery) context.Context
	// ProcessEnd is called after the handler returned (err is its error, nil on success)
	// and the engine carried out its decision; elapsed is the handler's own duration. It is
	// given no message: by then the message may be another worker's (redelivered, or
	// queued again after a park).
	ProcessEnd(ctx context.Context, s SubscriptionInfo, err error, elapsed time.Duration)
	// Event reports a decision of the engine about d.Message.
	Event(ctx context.Context, d Delivery, ev Event)

	// SubscriberStart is called when a subscriber's Run begins. occupancy reports, at any
	// time and from any goroutine, how much of its prefetch is used, until the returned
	// function is called when Run ends (a gauge's callback reads it).
	SubscriberStart(s SubscriptionInfo, occupancy func() Occupancy) (stop func())
}

// PublishInfo describes one Publish call to an Observer.
type PublishInfo struct {
	// Broker is the adapter's name (Capabilities.Name: "kafka", "rabbitmq", "sqs", "pubsub",
	// "memory", …).
	Broker string
	// Topic is the destination.
	Topic string
}

// SubscriptionInfo names a subscriber to an Observer.
type SubscriptionInfo struct {
	// Broker is the adapter's name (Capabilities.Name).
	Broker string
	// Topic and Subscription are what the subscriber consumes.
	Topic, Subscription string
}

// Delivery is one handler call, as an Observer sees it.
type Delivery struct {
	SubscriptionInfo
	// Message is the message as received (its Attempt counts this call). Read it only
	// during the Observer call.
	Message *message.Message
}

// Occupancy is how much of a subscriber's prefetch is used.
type Occupancy struct {
	// Held is the number of messages received and not yet acknowledged or given back
	// (waiting for a worker, being handled, or parked).
	Held int
	// Prefetch is the most the subscriber holds (SubscriberConfig.Prefetch).
	Prefetch int
}

// EventKind is a decision of the consumer engine.
type EventKind int

// The engine's decisions an Observer hears of.
const (
	// EventAck: the message was handled and is being acknowledged.
	EventAck EventKind = iota + 1
	// EventRetry: the handler failed; the message is retried in place after Delay.
	EventRetry
	// EventNack: the handler failed; the message is given back to the broker, to be
	// redelivered after Delay.
	EventNack
	// EventDefer: the handler deferred the message (message.Defer and its kin): it waits
	// Delay (parked, or with the broker) without counting a failure.
	EventDefer
	// EventPark: the message waits off its lane for Delay (a failed dead-letter attempt, or
	// a deferral where the broker cannot redeliver).
	EventPark
	// EventRelease: the message is given back unhandled because the subscriber is stopping.
	EventRelease
	// EventDeadLetter: the message's dead-letter copy was stored (or the broker's own
	// dead-lettering took it) and the original is acknowledged.
	EventDeadLetter
	// EventDeadLetterFailed: storing the dead-letter copy failed (Err); the message is kept
	// and tried again after Delay.
	EventDeadLetterFailed
)

// String returns the kind's name: "ack", "retry", "nack", "defer", "park", "release",
// "dead_letter", "dead_letter_failed".
func (k EventKind) String() string {
	switch k {
	case EventAck:
		return "ack"
	case EventRetry:
		return "retry"
	case EventNack:
		return "nack"
	case EventDefer:
		return "defer"
	case EventPark:
		return "park"
	case EventRelease:
		return "release"
	case EventDeadLetter:
		return "dead_letter"
	case EventDeadLetterFailed:
		return "dead_letter_failed"
	}
	return "event(?)"
}

// Event is a decision of the engine about one message.
type Event struct {
	Kind EventKind
	// Delay before the message is handled again (retry, nack, defer, park).
	Delay time.Duration
	// Err is the handler's error (or, for EventDeadLetterFailed, the dead-letterer's).
	Err error
}

// eventOf maps a verdict to what an Observer is told. Dead-lettering is reported where it
// happens (handoff.go), so actDeadLetter maps to no event (ok false).
func eventOf(v verdict, err error) (ev Event, ok bool) {
	ev = Event{Delay: v.delay, Err: err}
	switch v.act {
	case actAck:
		ev.Kind = EventAck
	case actRetry:
		ev.Kind = EventRetry
	case actNack:
		ev.Kind = EventNack
		if !v.failed {
			ev.Kind = EventDefer // message.Requeue
		}
	case actPark, actHold:
		ev.Kind = EventDefer
		if !message.IsDeferred(err) {
			ev.Kind = EventPark
		}
	case actRelease:
		ev.Kind = EventRelease
	default:
		return Event{}, false
	}
	return ev, true
}

// observed is one handler call as observed: the handler's context and when it started.
type observed struct {
	ctx     context.Context
	start   time.Time
	elapsed time.Duration // the handler's, set by call
}

// observeStart begins an observed handler call; with no Observer it returns the handlers'
// context and costs nothing (not even a clock read).
func (e *engine) observeStart(m *message.Message) observed {
	if e.obs == nil {
		return observed{ctx: e.hctx}
	}
	return observed{ctx: e.obs.ProcessStart(e.hctx, e.delivery(m)), start: time.Now()}
}

// observeVerdict reports decide's verdict on a handler call.
func (e *engine) observeVerdict(ctx context.Context, m *message.Message, v verdict, err error) {
	if e.obs == nil {
		return
	}
	if ev, ok := eventOf(v, err); ok {
		e.obs.Event(ctx, e.delivery(m), ev)
	}
}

// observeEvent reports ev about m.
func (e *engine) observeEvent(ctx context.Context, m *message.Message, ev Event) {
	if e.obs != nil {
		e.obs.Event(ctx, e.delivery(m), ev)
	}
}

// observeEnd ends an observed handler call.
func (e *engine) observeEnd(o observed, err error) {
	if e.obs != nil {
		e.obs.ProcessEnd(o.ctx, e.info, err, o.elapsed)
	}
}

func (e *engine) delivery(m *message.Message) Delivery {
	return Delivery{SubscriptionInfo: e.info, Message: m}
}

// observeRun tells the Observer that the engine runs; the returned function ends it.
func (e *engine) observeRun() (stop func()) {
	if e.obs == nil {
		return func() {}
	}
	return e.obs.SubscriberStart(e.info, func() Occupancy {
		return Occupancy{Held: int(e.inflight.Load()), Prefetch: int(e.prefetch)}
	})
}

// observePublish begins an observed Publish call.
func (p *Publisher) observePublish(ctx context.Context, topic string, msgs []*message.Message) error {
	info := PublishInfo{Broker: p.conn.caps.Name, Topic: topic}
	ctx = p.obs.PublishStart(ctx, info, msgs)
	err := p.run(ctx, topic, msgs)
	p.obs.PublishEnd(ctx, info, msgs, err)
	return err
}
