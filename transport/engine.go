package transport

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/internal/keyhash"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport/driver"
)

// The consumer engine. One per Run. It is the only place in Courier that decides:
//
//   - how many handlers run (Concurrency workers);
//   - per-key order: a message with a non-empty Key goes to the worker its key hashes to, so one
//     key's messages are handled one at a time in delivery order; messages without a key go to
//     a shared queue any idle worker takes from;
//   - how much is held (Prefetch: received and not yet acked/nacked/released);
//   - what a failure does: decide (decide.go) maps the outcome of each handler call to an
//     action — ack, retry in place, nack with a delay, park, hold the key, dead-letter,
//     release — and the engine executes it (parking in park.go, acknowledgements in ack.go,
//     dead-letter hand-off in handoff.go);
//   - how it stops: no more receiving, unstarted messages released, in-flight handlers given
//     DrainTimeout, acks flushed, receiver closed.

// engineConfig is everything the engine needs from its Subscriber, with defaults filled.
type engineConfig struct {
	Topic, Subscription string
	Concurrency         int
	Prefetch            int
	DrainTimeout        time.Duration
	// Policy is what decide is given: capabilities, ordering, retry policies.
	Policy policy
	// Native hands dead-lettered messages to the broker's own dead-lettering (Reject/Nack).
	Native bool
	// DeadLetter stores dead-letter copies when Native is false.
	DeadLetter DeadLetterer
	// OnDeadLetterError, when set, is told of every failed attempt to store a copy.
	OnDeadLetterError func(DeadLetterRetry)
	Log               *slog.Logger
	// Observer, when set, is told of every handler call and decision (observe.go).
	Observer Observer
	// Broker is the adapter's name, for the Observer.
	Broker string
}

type engine struct {
	cfg  engineConfig
	recv driver.Receiver
	h    message.Handler
	log  *slog.Logger

	hctx    context.Context // handlers' context: outlives Run's ctx until the drain timeout
	hcancel context.CancelFunc
	opctx   context.Context // for acks, nacks and the final close

	lanes    []chan *message.Message
	shared   chan *message.Message
	stopping chan struct{}
	wg       sync.WaitGroup

	prefetch int64
	inflight atomic.Int64
	room     chan struct{}

	acks acker
	park parkLot

	obs  Observer // nil: nothing is observed
	info SubscriptionInfo
}

func newEngine(cfg engineConfig, recv driver.Receiver, h message.Handler, parent context.Context) *engine {
	e := &engine{
		cfg:      cfg,
		recv:     recv,
		h:        h,
		log:      cfg.Log,
		lanes:    make([]chan *message.Message, cfg.Concurrency),
		shared:   make(chan *message.Message, cfg.Prefetch),
		stopping: make(chan struct{}),
		prefetch: int64(cfg.Prefetch),
		room:     make(chan struct{}, 1),
		obs:      cfg.Observer,
		info:     SubscriptionInfo{Broker: cfg.Broker, Topic: cfg.Topic, Subscription: cfg.Subscription},
	}
	e.park.init()
	e.opctx = context.WithoutCancel(parent)
	e.hctx, e.hcancel = context.WithCancel(message.WithLogger(e.opctx, cfg.Log))
	for i := range e.lanes {
		if cfg.Policy.ordered || i == 0 {
			e.lanes[i] = make(chan *message.Message, cfg.Prefetch)
		} else {
			e.lanes[i] = e.lanes[0]
		}
	}
	e.acks.init(recv, cfg.Log, e.opctx, cfg.Prefetch)
	return e
}

func (e *engine) run(ctx context.Context) error {
	defer e.observeRun()()
	go e.acks.loop()
	for i := range e.lanes {
		e.wg.Add(1)
		go e.worker(e.lanes[i])
	}

	fatal := e.fetch(ctx)
	close(e.stopping)
	drainErr := e.drain()
	e.unparkAll()
	e.releaseQueued()
	e.acks.close()
	e.hcancel()

	cctx, cancel := context.WithTimeout(e.opctx, 10*time.Second)
	defer cancel()
	var closeErr error
	if err := e.recv.Close(cctx); err != nil {
		closeErr = fmt.Errorf("courier: close subscription %s/%s: %w", e.cfg.Topic, e.cfg.Subscription, err)
	}
	switch {
	case fatal != nil:
		return fatal
	case drainErr != nil:
		return drainErr
	default:
		return closeErr
	}
}

// drain waits for the workers up to DrainTimeout, then cancels the handlers' context and gives
// them another second.
func (e *engine) drain() error {
	drained := make(chan struct{})
	go func() { e.wg.Wait(); close(drained) }()
	timer := time.NewTimer(e.cfg.DrainTimeout)
	defer timer.Stop()
	select {
	case <-drained:
		return nil
	case <-timer.C:
	}
	e.hcancel() // ask the stragglers to give up
	select {
	case <-drained:
		return nil
	case <-time.After(time.Second):
		e.log.Error("courier: handlers did not return after the drain timeout and their context was cancelled; their messages are not acknowledged and will be redelivered",
			"drain_timeout", e.cfg.DrainTimeout)
		return errDrain
	}
}

// fetch receives and dispatches until ctx is done or the receiver breaks.
func (e *engine) fetch(ctx context.Context) error {
	buf := make([]*message.Message, min(e.prefetch, 512))
	var evictTimer *time.Timer
	for {
		free := e.prefetch - e.inflight.Load()
		if free <= 0 {
			if evictTimer == nil {
				evictTimer = time.NewTimer(evictAfter)
				defer evictTimer.Stop()
			} else {
				evictTimer.Reset(evictAfter)
			}
			select {
			case <-e.room:
				continue
			case <-evictTimer.C:
				e.evict() // full for a while: maybe held up by parked messages
				continue
			case <-ctx.Done():
				return nil
			}
		}
		n, err := e.recv.Receive(ctx, buf[:min(free, int64(len(buf)))])
		if n > 0 {
			e.inflight.Add(int64(n))
			for i := 0; i < n; i++ {
				m := buf[i]
				buf[i] = nil
				if m.Attempt < 1 {
					m.Attempt = 1
				}
				e.dispatch(m)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			e.log.Error("courier: subscription broken", "error", err)
			return fmt.Errorf("courier: receive %s/%s: %w", e.cfg.Topic, e.cfg.Subscription, err)
		}
	}
}

// dispatch queues m for a worker: on its key's lane, or on the shared queue. It never blocks:
// every queue holds Prefetch messages and at most Prefetch are in flight.
func (e *engine) dispatch(m *message.Message) {
	if e.cfg.Policy.ordered && m.Key != "" {
		e.lanes[keyhash.Sum32(m.Key)%uint32(len(e.lanes))] <- m
	} else {
		e.shared <- m
	}
}

func (e *engine) worker(lane chan *message.Message) {
	defer e.wg.Done()
	for {
		var m *message.Message
		select {
		case <-e.stopping:
			return
		default:
		}
		select {
		case m = <-lane:
		case m = <-e.shared:
		case <-e.stopping:
			return
		}
		select {
		case <-e.stopping:
			e.release(m)
			return
		default:
		}
		if e.waitBehind(m) {
			continue
		}
		e.handle(m)
	}
}

// handle processes m and then, while m's key was held and m let it go, the messages that
// waited behind it, in order.
func (e *engine) handle(m *message.Message) {
	for m != nil {
		key := m.Key // as received; once processed, m may be another worker's again
		if e.process(m) {
			return // m holds its key again
		}
		select {
		case <-e.stopping:
			return // the waiting messages are given back by unparkAll
		default:
		}
		m = e.nextBehind(m, key)
	}
}

// finished returns n messages' prefetch slots, once they are acked or given back.
func (e *engine) finished(n int) {
	if v := e.inflight.Add(-int64(n)); v < e.prefetch && v+int64(n) >= e.prefetch {
		select {
		case e.room <- struct{}{}:
		default:
		}
	}
}

// received is a message as it came from the broker. The handler chain may replace Payload,
// Headers, Key (decryption, say); what goes back to the broker or to the dead-letter topic is
// the message as received.
type received struct {
	payload []byte
	headers message.Headers
	key, id string
}

func receivedOf(m *message.Message) received {
	return received{m.Payload, m.Headers, m.Key, m.ID}
}

func (r received) restore(m *message.Message) {
	m.Payload, m.Headers, m.Key, m.ID = r.payload, r.headers, r.key, r.id
}

// process calls the handler for m until m leaves the worker, executing decide's verdicts. It
// reports whether m now holds its key (parked with the key's later messages behind it).
func (e *engine) process(m *message.Message) (held bool) {
	if r := e.park.takeDeadLetter(m); r != nil {
		return e.storeDeadLetter(e.hctx, m, r) // parked after a failed dead-letter attempt
	}
	orig := receivedOf(m)
	var first time.Time
	for {
		o := e.observeStart(m)
		err := e.call(&o, m)
		if err != nil {
			orig.restore(m)
		}
		v := decide(situation{err: err, stopping: e.hctx.Err() != nil, keyed: m.Key != "", attempt: m.Attempt}, e.cfg.Policy)
		e.observeVerdict(o.ctx, m, v, err)
		if err != nil && first.IsZero() && !message.IsDeferred(err) {
			first = time.Now()
		}
		if v.failed {
			e.log.Debug("courier: handler failed; will retry", "message_id", m.ID, "attempt", m.Attempt, "delay", v.delay, "action", v.act.String(), "error", err)
		}
		switch v.act {
		case actRetry:
			e.observeEnd(o, err)
			if !e.sleep(v.delay) {
				e.release(m)
				return false
			}
			m.Attempt++
		case actDeadLetter:
			held = e.deadLetter(o.ctx, m, Failure{
				Err: err, Permanent: message.IsPermanent(err), Attempts: m.Attempt,
				Topic: e.cfg.Topic, Subscription: e.cfg.Subscription,
				FirstFailure: first, LastFailure: time.Now(),
			})
		default:
			held = e.execute(m, v, nil)
		}
		if v.act != actRetry {
			e.observeEnd(o, err) // m is no longer read: it may be another worker's now
			return held
		}
	}
}

// execute carries out a verdict that ends the message's turn on the worker: ack, nack,
// release, park or hold. r is the dead-letter state a park keeps, if any. It reports whether m
// now holds its key.
func (e *engine) execute(m *message.Message, v verdict, r *deadLetterRetry) (held bool) {
	switch v.act {
	case actAck:
		e.acks.add(m)
		e.finished(1)
	case actNack:
		e.nack(m, v.delay)
	case actPark, actHold:
		if e.parkMessage(m, v, r) {
			return v.act == actHold
		}
		// Stopping: the park is closed. Give the message back, keeping its delay.
		if e.cfg.Policy.redelivery {
			e.nack(m, v.delay)
		} else {
			e.finished(1)
		}
	default:
		e.release(m)
	}
	return false
}

func (e *engine) call(o *observed, m *message.Message) (err error) {
	defer func() {
		if e.obs != nil {
			o.elapsed = time.Since(o.start)
		}
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrHandlerPanic, r)
			e.log.Error("courier: handler panicked", "message_id", m.ID, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	return e.h(o.ctx, m)
}

// sleep waits d, or returns false when the engine is stopping.
func (e *engine) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-e.stopping:
		return false
	}
}
