package transport

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
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
//   - what a failure does: ack on nil; on error, retry — by nacking with the backoff delay when
//     the broker redelivers and the message has no key, else in place (sleep, call again) so
//     the key's order holds and brokers without redelivery (Kafka) work; dead-letter when the
//     error is permanent or attempts run out, and ack only once the dead-letter copy is stored;
//     a deferral (message.Defer) is no failure: the message is parked — kept in flight, off its
//     lane — and queued again after its delay;
//   - how it stops: no more receiving, unstarted messages released, in-flight handlers given
//     DrainTimeout, acks flushed, receiver closed.
type engine struct {
	s       *Subscriber
	recv    driver.Receiver
	h       message.Handler
	caps    Capabilities
	retry   RetryPolicy
	ordered bool
	log     *slog.Logger

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

	parkMu     sync.Mutex
	parked     map[*message.Message]*parking // deferred messages waiting off their lane
	parkClosed bool
}

func newEngine(s *Subscriber, h message.Handler, parent context.Context) *engine {
	cfg := &s.cfg
	e := &engine{
		s:        s,
		recv:     s.recv,
		h:        h,
		caps:     s.conn.caps,
		retry:    cfg.Retry,
		ordered:  cfg.ordering() != OrderNone,
		log:      s.log,
		lanes:    make([]chan *message.Message, cfg.Concurrency),
		shared:   make(chan *message.Message, cfg.Prefetch),
		stopping: make(chan struct{}),
		prefetch: int64(cfg.Prefetch),
		room:     make(chan struct{}, 1),
		parked:   map[*message.Message]*parking{},
	}
	e.opctx = context.WithoutCancel(parent)
	e.hctx, e.hcancel = context.WithCancel(e.opctx)
	for i := range e.lanes {
		if e.ordered || i == 0 {
			e.lanes[i] = make(chan *message.Message, cfg.Prefetch)
		} else {
			e.lanes[i] = e.lanes[0]
		}
	}
	e.acks = acker{recv: e.recv, log: e.log, ctx: e.opctx, limit: cfg.Prefetch,
		wake: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
	e.acks.taken = sync.NewCond(&e.acks.mu)
	return e
}

func (e *engine) run(ctx context.Context) error {
	go e.acks.loop()
	for i := range e.lanes {
		e.wg.Add(1)
		go e.worker(e.lanes[i])
	}

	fatal := e.fetch(ctx)
	close(e.stopping)

	drained := make(chan struct{})
	go func() { e.wg.Wait(); close(drained) }()
	var drainErr error
	timer := time.NewTimer(e.s.cfg.DrainTimeout)
	select {
	case <-drained:
		timer.Stop()
	case <-timer.C:
		e.hcancel() // ask the stragglers to give up
		select {
		case <-drained:
		case <-time.After(time.Second):
			drainErr = errDrain
			e.log.Error("courier: handlers did not return after the drain timeout and their context was cancelled; their messages are not acknowledged and will be redelivered",
				"drain_timeout", e.s.cfg.DrainTimeout)
		}
	}
	e.unparkAll()
	e.releaseQueued()
	e.acks.close()
	e.hcancel()

	cctx, cancel := context.WithTimeout(e.opctx, 10*time.Second)
	defer cancel()
	var closeErr error
	if err := e.recv.Close(cctx); err != nil {
		closeErr = fmt.Errorf("courier: close subscription %s/%s: %w", e.s.spec.Topic, e.s.spec.Subscription, err)
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

// fetch receives and dispatches until ctx is done or the receiver breaks.
func (e *engine) fetch(ctx context.Context) error {
	buf := make([]*message.Message, min(e.prefetch, 512))
	nlanes := uint32(len(e.lanes))
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
				e.dispatch(m, nlanes)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			e.log.Error("courier: subscription broken", "error", err)
			return fmt.Errorf("courier: receive %s/%s: %w", e.s.spec.Topic, e.s.spec.Subscription, err)
		}
	}
}

// dispatch queues m for a worker: on its key's lane, or on the shared queue. It never blocks:
// every queue holds Prefetch messages and at most Prefetch are in flight.
func (e *engine) dispatch(m *message.Message, nlanes uint32) {
	if e.ordered && m.Key != "" {
		e.lanes[keyhash.Sum32(m.Key)%nlanes] <- m
	} else {
		e.shared <- m
	}
}

// park keeps a deferred message (message.Defer) in flight but off its lane, and queues it
// again after delay, or as soon as wake is closed: the lane serves other keys meanwhile, and
// nothing goes back to the broker, so the order in which the broker handed out messages is
// kept. Every message in flight may be parked; when the park holds up the subscription (see
// evict), the broker takes some back. It declines (false) once the engine is stopping.
func (e *engine) park(m *message.Message, delay time.Duration, wake <-chan struct{}) bool {
	e.parkMu.Lock()
	defer e.parkMu.Unlock()
	if e.parkClosed {
		return false
	}
	p := &parking{done: make(chan struct{}), due: time.Now().Add(delay)}
	p.timer = time.AfterFunc(delay, func() { e.unpark(m, p) })
	e.parked[m] = p
	if wake != nil {
		go func() {
			select {
			case <-wake:
				e.unpark(m, p)
			case <-p.done:
			}
		}()
	}
	return true
}

// evict runs when the prefetch has been full for a while with at least half of it parked:
// the parked messages may wait for ones the broker has not handed out yet (redelivered to the
// back of the queue, say), which could never arrive. It gives an eighth of the parked messages,
// those due last, back to the broker, to come back when they were due, so that room is made.
// Brokers without redelivery keep theirs: released, they would not come back before a restart.
func (e *engine) evict() {
	if !e.caps.Redelivery {
		return
	}
	e.parkMu.Lock()
	if e.parkClosed || int64(len(e.parked))*2 < e.inflight.Load() {
		e.parkMu.Unlock()
		return
	}
	type due struct {
		m *message.Message
		p *parking
	}
	all := make([]due, 0, len(e.parked))
	for m, p := range e.parked {
		all = append(all, due{m, p})
	}
	slices.SortFunc(all, func(a, b due) int { return b.p.due.Compare(a.p.due) })
	all = all[:max(len(all)/8, 1)]
	for _, d := range all {
		delete(e.parked, d.m)
		d.p.timer.Stop()
		close(d.p.done)
	}
	e.parkMu.Unlock()
	now := time.Now()
	for _, d := range all {
		e.nack(d.m, max(d.p.due.Sub(now), 0))
	}
}

// parking is a parked message's timer, when it is due, and done, closed when it leaves the
// park.
type parking struct {
	timer *time.Timer
	due   time.Time
	done  chan struct{}
}

// unpark queues m again, unless it left the park already.
func (e *engine) unpark(m *message.Message, p *parking) {
	e.parkMu.Lock()
	defer e.parkMu.Unlock() // held while queueing, so that unparkAll cannot miss m
	if e.parked[m] != p || e.parkClosed {
		return
	}
	delete(e.parked, m)
	p.timer.Stop()
	close(p.done)
	e.dispatch(m, uint32(len(e.lanes)))
}

// unparkAll gives the parked messages back on stop.
func (e *engine) unparkAll() {
	e.parkMu.Lock()
	e.parkClosed = true
	parked := e.parked
	e.parked = nil
	e.parkMu.Unlock()
	for m, p := range parked {
		p.timer.Stop()
		close(p.done)
		e.release(m)
	}
}

// evictAfter is how long the prefetch must stay full before parked messages are evicted.
const evictAfter = 250 * time.Millisecond

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
		e.process(m)
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

func (e *engine) process(m *message.Message) {
	// The handler chain may replace Payload, Headers, Key (decryption, say); what goes back to
	// the broker or to the dead-letter topic is the message as received.
	payload, headers, key, id := m.Payload, m.Headers, m.Key, m.ID
	var first time.Time
	for {
		err := e.call(m)
		if err == nil {
			e.acks.add(m)
			e.finished(1)
			return
		}
		m.Payload, m.Headers, m.Key, m.ID = payload, headers, key, id
		if e.hctx.Err() != nil {
			// Stopping cancelled the handler: not the message's fault, so no attempt counts.
			e.release(m)
			return
		}
		now := time.Now()
		permanent := message.IsPermanent(err)
		// A deferral (message.Defer) is not a failure: it never dead-letters. It is parked;
		// a Requeue (or a deferral once stopping) goes back to the broker, keyed or not, so
		// that its lane is free while it waits.
		deferred := !permanent && message.IsDeferred(err)
		if first.IsZero() && !deferred {
			first = now
		}
		if !deferred && (permanent || m.Attempt >= e.retry.MaxAttempts) {
			e.deadLetter(m, Failure{
				Err: err, Permanent: permanent, Attempts: m.Attempt,
				Topic: e.s.spec.Topic, Subscription: e.s.spec.Subscription,
				FirstFailure: first, LastFailure: now,
			})
			return
		}
		delay, ok := message.RetryDelay(err)
		if !ok {
			delay = e.retry.delay(m.Attempt)
		}
		e.log.Debug("courier: handler failed; will retry", "message_id", m.ID, "attempt", m.Attempt, "delay", delay, "error", err)
		if deferred && !message.IsRequeue(err) && e.park(m, delay, message.WakeOf(err)) {
			return
		}
		if e.caps.Redelivery && (m.Key == "" || !e.ordered || deferred) {
			e.nack(m, delay)
			return
		}
		if !e.sleep(delay) {
			e.release(m)
			return
		}
		if !deferred {
			m.Attempt++
		}
	}
}

func (e *engine) call(m *message.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrHandlerPanic, r)
			e.log.Error("courier: handler panicked", "message_id", m.ID, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	return e.h(e.hctx, m)
}

func (e *engine) deadLetter(m *message.Message, f Failure) {
	if e.s.spec.NativeDeadLetter != nil {
		e.log.Warn("courier: handing message to the broker's dead-lettering", "message_id", m.ID, "attempts", f.Attempts, "permanent", f.Permanent, "error", f.Err)
		defer e.finished(1)
		if rj, ok := e.recv.(driver.Rejecter); ok {
			if err := rj.Reject(e.opctx, m, f.Err); err != nil {
				e.log.Error("courier: reject failed; the broker will redeliver", "message_id", m.ID, "error", err)
			}
			return
		}
		if err := e.recv.Nack(e.opctx, m, 0); err != nil {
			e.log.Error("courier: nack failed; the broker will redeliver", "message_id", m.ID, "error", err)
		}
		return
	}
	for attempt := 1; ; attempt++ {
		err := e.s.dl.DeadLetter(e.hctx, m, f)
		if err == nil {
			e.log.Warn("courier: message dead-lettered", "message_id", m.ID, "attempts", f.Attempts, "permanent", f.Permanent, "error", f.Err)
			e.acks.add(m)
			e.finished(1)
			return
		}
		delay := e.retry.delay(attempt)
		e.log.Error("courier: dead-lettering failed; the message is kept and tried again", "message_id", m.ID, "error", err, "delay", delay)
		if e.caps.Redelivery {
			e.nack(m, delay)
			return
		}
		if !e.sleep(delay) {
			e.release(m)
			return
		}
	}
}

func (e *engine) nack(m *message.Message, delay time.Duration) {
	if err := e.recv.Nack(e.opctx, m, delay); err != nil {
		e.log.Error("courier: nack failed; the broker will redeliver when its lease ends", "message_id", m.ID, "error", err)
	}
	e.finished(1)
}

// release gives back a message that was received but is not being handled now.
func (e *engine) release(m *message.Message) {
	if e.caps.Redelivery {
		e.nack(m, 0)
		return
	}
	e.finished(1) // not acked: the broker delivers it again after a restart
}

func (e *engine) releaseQueued() {
	for {
		select {
		case m := <-e.shared:
			e.release(m)
			continue
		default:
		}
		found := false
		for _, l := range e.lanes {
			select {
			case m := <-l:
				e.release(m)
				found = true
			default:
			}
		}
		if !found {
			return
		}
	}
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

// acker batches acknowledgements: workers append, one goroutine sends whatever accumulated
// while the previous batch was in flight. No timers: an idle subscriber acks at once, a busy
// one in large batches.
//
// A handled message gives its prefetch slot back as soon as it is queued here, so that
// handling goes on while a batch of acks is on its way to the broker (a Kafka commit, an SQS
// delete: a round trip). What waits here is bounded too: a worker that finds limit messages
// waiting or on their way blocks until the broker has answered for a batch. Messages received
// and not yet acknowledged are therefore at most 2 × Prefetch.
type acker struct {
	recv  driver.Receiver
	log   *slog.Logger
	ctx   context.Context
	limit int

	mu      sync.Mutex
	taken   *sync.Cond // broadcast when the broker answered for a batch (room for limit more)
	pending []*message.Message
	sending int // messages of the batch on its way to the broker
	spare   []*message.Message
	stopped bool
	wake    chan struct{}
	done    chan struct{}
	exited  chan struct{}
}

func (a *acker) add(m *message.Message) {
	a.mu.Lock()
	for len(a.pending)+a.sending >= a.limit && !a.stopped {
		a.taken.Wait()
	}
	a.pending = append(a.pending, m)
	first := len(a.pending) == 1
	a.mu.Unlock()
	if first {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

func (a *acker) loop() {
	defer close(a.exited)
	for {
		select {
		case <-a.wake:
			a.flush()
		case <-a.done:
			a.flush()
			return
		}
	}
}

func (a *acker) flush() {
	a.mu.Lock()
	batch := a.pending
	a.pending = a.spare[:0]
	a.sending = len(batch)
	a.mu.Unlock()
	if len(batch) == 0 {
		a.spare = batch
		return
	}
	if err := a.recv.Ack(a.ctx, batch); err != nil {
		a.log.Error("courier: ack failed; the broker will redeliver these messages", "count", len(batch), "error", err)
	}
	clear(batch)
	a.spare = batch
	a.mu.Lock()
	a.sending = 0
	a.taken.Broadcast()
	a.mu.Unlock()
}

// close flushes what is pending and stops the loop. Workers still adding afterwards (ones that
// outlived the drain timeout) no longer wait; their acks are not sent.
func (a *acker) close() {
	close(a.done)
	<-a.exited
	a.mu.Lock()
	a.stopped = true
	a.taken.Broadcast()
	a.mu.Unlock()
}
