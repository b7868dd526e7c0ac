package transport

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/message"
)

// Parking: messages kept in flight but off their lane (deferrals, dead-letter attempts that
// wait for their next try), and keys held by such a message so that the key's later messages
// wait behind it (message.DeferInOrder, dead-lettering that failed).

// parkLot is the engine's parked messages and held keys, under one mutex.
type parkLot struct {
	mu     sync.Mutex
	parked map[*message.Message]*parking
	closed bool

	// holds: per held key, the holder and the messages waiting behind it in arrival order.
	holds  map[string]*hold
	nholds atomic.Int64 // len(holds), read without the lock on the hot path

	// deadLetters: parked messages whose next turn is a dead-letter attempt, not a handler call.
	deadLetters map[*message.Message]*deadLetterRetry
	ndl         atomic.Int64
}

// parking is a parked message's timer, when it is due, whether it holds its key, and done,
// closed when it leaves the park.
type parking struct {
	timer *time.Timer
	due   time.Time
	hold  bool
	done  chan struct{}
}

// hold is a held key: holder is the message the key waits for; waiting, its later messages.
type hold struct {
	holder  *message.Message
	waiting []*message.Message
}

func (p *parkLot) init() {
	p.parked = map[*message.Message]*parking{}
	p.holds = map[string]*hold{}
	p.deadLetters = map[*message.Message]*deadLetterRetry{}
}

// takeDeadLetter returns (and forgets) the dead-letter state of a message coming back from
// the park to try dead-lettering again, or nil.
func (p *parkLot) takeDeadLetter(m *message.Message) *deadLetterRetry {
	if p.ndl.Load() == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.deadLetters[m]
	if r != nil {
		delete(p.deadLetters, m)
		p.ndl.Add(-1)
	}
	return r
}

// forgetLocked drops m's dead-letter state; parkLot.mu is held.
func (p *parkLot) forgetLocked(m *message.Message) {
	if _, ok := p.deadLetters[m]; ok {
		delete(p.deadLetters, m)
		p.ndl.Add(-1)
	}
}

// parkMessage keeps m in flight but off its lane, and queues it again after v.delay, or as
// soon as v.wake is closed: the lane serves other messages meanwhile, and nothing goes back to
// the broker, so the order in which the broker handed out messages is kept. With actHold, the
// later messages of m's key wait behind it (waitBehind) until it is handled. r, when set, makes
// m's next turn a dead-letter attempt. Every message in flight may be parked; when the park
// holds up the subscription (see evict), the broker takes some back. It declines (false) once
// the engine is stopping.
func (e *engine) parkMessage(m *message.Message, v verdict, r *deadLetterRetry) bool {
	p := &e.park
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	pk := &parking{done: make(chan struct{}), due: time.Now().Add(v.delay), hold: v.act == actHold}
	pk.timer = time.AfterFunc(v.delay, func() { e.unpark(m, pk) })
	p.parked[m] = pk
	if r != nil {
		p.deadLetters[m] = r
		p.ndl.Add(1)
	}
	if pk.hold {
		h := p.holds[m.Key]
		if h == nil {
			h = &hold{}
			p.holds[m.Key] = h
			p.nholds.Add(1)
		}
		h.holder = m
	}
	if v.wake != nil {
		go func() {
			select {
			case <-v.wake:
				e.unpark(m, pk)
			case <-pk.done:
			}
		}()
	}
	return true
}

// waitBehind queues m behind its key's holder, if its key is held by another message, and
// reports whether it did. The message then waits in flight until nextBehind hands it out.
func (e *engine) waitBehind(m *message.Message) bool {
	p := &e.park
	if m.Key == "" || p.nholds.Load() == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.holds[m.Key]
	if h == nil || h.holder == m || p.closed {
		return false
	}
	h.waiting = append(h.waiting, m)
	return true
}

// nextBehind is called once m, which may hold its key, has been handled or given up without
// holding it again: it returns the next message waiting behind m (which becomes the holder),
// or nil, releasing the key when nobody waits. key is m's key as received: m itself may be
// handled by another worker by now, so only its identity is used.
func (e *engine) nextBehind(m *message.Message, key string) *message.Message {
	p := &e.park
	if key == "" || p.nholds.Load() == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.holds[key]
	if h == nil || h.holder != m || p.closed {
		return nil
	}
	if len(h.waiting) == 0 {
		delete(p.holds, key)
		p.nholds.Add(-1)
		return nil
	}
	next := h.waiting[0]
	h.waiting[0] = nil
	h.waiting = h.waiting[1:]
	h.holder = next
	return next
}

// evict runs when the prefetch has been full for a while with at least half of it parked:
// the parked messages may wait for ones the broker has not handed out yet (redelivered to the
// back of the queue, say), which could never arrive. It gives an eighth of the parked messages,
// those due last, back to the broker, to come back when they were due, so that room is made.
// Messages holding their key stay: the key's order depends on them. Brokers without
// redelivery keep theirs: released, they would not come back before a restart.
func (e *engine) evict() {
	if !e.cfg.Policy.redelivery {
		return
	}
	p := &e.park
	p.mu.Lock()
	if p.closed || int64(len(p.parked))*2 < e.inflight.Load() {
		p.mu.Unlock()
		return
	}
	type due struct {
		m  *message.Message
		pk *parking
	}
	all := make([]due, 0, len(p.parked))
	for m, pk := range p.parked {
		if !pk.hold {
			all = append(all, due{m, pk})
		}
	}
	slices.SortFunc(all, func(a, b due) int { return b.pk.due.Compare(a.pk.due) })
	all = all[:min(max(len(all)/8, 1), len(all))]
	for _, d := range all {
		delete(p.parked, d.m)
		p.forgetLocked(d.m)
		d.pk.timer.Stop()
		close(d.pk.done)
	}
	p.mu.Unlock()
	now := time.Now()
	for _, d := range all {
		e.nack(d.m, max(d.pk.due.Sub(now), 0))
	}
}

// unpark queues m again, unless it left the park already.
func (e *engine) unpark(m *message.Message, pk *parking) {
	p := &e.park
	p.mu.Lock()
	defer p.mu.Unlock() // held while queueing, so that unparkAll cannot miss m
	if p.parked[m] != pk || p.closed {
		return
	}
	delete(p.parked, m)
	pk.timer.Stop()
	close(pk.done)
	e.dispatch(m)
}

// unparkAll gives the parked messages, and those waiting behind held keys, back on stop.
func (e *engine) unparkAll() {
	p := &e.park
	p.mu.Lock()
	p.closed = true
	parked, holds := p.parked, p.holds
	p.parked, p.holds, p.deadLetters = nil, nil, nil
	p.nholds.Store(0)
	p.ndl.Store(0)
	p.mu.Unlock()
	for m, pk := range parked {
		pk.timer.Stop()
		close(pk.done)
		e.release(m)
	}
	for _, h := range holds {
		for _, m := range h.waiting {
			e.release(m)
		}
	}
}

// evictAfter is how long the prefetch must stay full before parked messages are evicted.
const evictAfter = 250 * time.Millisecond
