package rabbitmq

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/transport/driver"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/message"
)

// Publishing, in short: up to Config.PublishChannels confirm-mode channels on the publish
// connection, shared by concurrent Publish calls and opened as they are first needed. A call
// takes the first channel with fewer than shareLimit unconfirmed messages, publishes its batch on it in order (keeping up to
// Config.MaxInFlight of its confirms outstanding) and waits for its confirms by delivery tag
// (deferred confirmations) without holding the channel: other calls publish on it meanwhile,
// so the confirms of concurrent publishers are pipelined as with a raw client. With
// Config.ReportUnroutable messages carry the mandatory flag; the channel's basic.return frames
// are collected by one goroutine per channel, by Courier ID, and a call claims those of its
// messages once its confirms are in: RabbitMQ sends a message's basic.return before its
// basic.ack, and amqp091-go hands both over in that order.
//
// Outcomes per message: acked → published; acked but returned → ErrUnroutable; nacked →
// ErrNacked; channel or connection lost before the confirm → published again on a new
// channel once the connection is back (a duplicate is possible, a loss is not), for as long
// as ctx allows.

// pubChannel is a shared confirm-mode channel of one connection generation.
type pubChannel struct {
	ch     *amqp.Channel
	gen    uint64
	closes chan *amqp.Error
	load   atomic.Int64 // messages of calls on this channel not yet resolved

	// sendMu keeps a declaration (exchange.declare, queue.declare: one method frame, sent by
	// amqp091-go without the channel's publish lock) from landing between the method, header
	// and body frames of a concurrent publish on the shared channel, which the broker answers
	// with 505 UNEXPECTED_FRAME and closes the whole connection. Publishes share it (amqp091-go
	// serialises them itself); a declaration holds it alone.
	sendMu sync.RWMutex

	mu     sync.Mutex
	reason *amqp.Error

	// With the mandatory flag: returns holds the returns not yet claimed, by Courier ID,
	// filled by collectReturns; barrier asks collectReturns to confirm that every return
	// queued so far is in returns; collected closes when it has ended.
	retMu     sync.Mutex
	returned  map[string][]amqp.Return
	barrier   chan chan struct{}
	collected chan struct{}
}

// closeReason returns why the channel closed, when it says.
func (pc *pubChannel) closeReason() error {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.reason == nil {
		select {
		case e, ok := <-pc.closes:
			if ok && e != nil {
				pc.reason = e
			}
		default:
		}
	}
	if pc.reason != nil {
		return pc.reason
	}
	return amqp.ErrClosed
}

// collectReturns files the channel's basic.return frames by Courier ID until the channel
// closes, and answers barriers: once a barrier is answered, every return amqp091-go had
// queued before it was asked is filed.
func (pc *pubChannel) collectReturns(returns <-chan amqp.Return) {
	defer close(pc.collected)
	file := func(r amqp.Return) {
		id := publishedID(r.MessageId, r.Headers)
		pc.retMu.Lock()
		pc.returned[id] = append(pc.returned[id], r)
		pc.retMu.Unlock()
	}
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				return
			}
			file(r)
		case done := <-pc.barrier:
			for drained := false; !drained; {
				select {
				case r, ok := <-returns:
					if !ok {
						close(done)
						return
					}
					file(r)
				default:
					drained = true
				}
			}
			close(done)
		}
	}
}

// syncReturns waits until every return queued before the call is filed.
func (pc *pubChannel) syncReturns() {
	done := make(chan struct{})
	select {
	case pc.barrier <- done:
		select {
		case <-done:
		case <-pc.collected:
		}
	case <-pc.collected:
	}
}

// takeReturn claims a filed return of the message with this ID.
func (pc *pubChannel) takeReturn(id string) (amqp.Return, bool) {
	pc.retMu.Lock()
	defer pc.retMu.Unlock()
	rs := pc.returned[id]
	if len(rs) == 0 {
		return amqp.Return{}, false
	}
	if len(rs) == 1 {
		delete(pc.returned, id)
	} else {
		pc.returned[id] = rs[1:]
	}
	return rs[0], true
}

type declared struct {
	gen uint64
	at  time.Time
}

// slot holds one of the shared channels; lock (one token) guards opening it.
type slot struct {
	lock chan struct{}
	pc   atomic.Pointer[pubChannel]
}

type publisher struct {
	d      *Driver
	s      *session
	window int
	next   atomic.Uint64
	slots  []slot

	mu       sync.Mutex
	declared map[string]declared // "x:" + exchange or "q:" + queue → when it was declared
	closed   bool
}

func newPublisher(d *Driver) *publisher {
	p := &publisher{d: d, s: d.pubSession, window: d.cfg.MaxInFlight,
		slots: make([]slot, d.cfg.PublishChannels), declared: map[string]declared{}}
	for i := range p.slots {
		p.slots[i].lock = make(chan struct{}, 1)
	}
	return p
}

// shareLimit is how many unconfirmed messages a publish channel carries before calls go on to
// the next one. RabbitMQ confirms many messages of one channel at once: fewer, busier
// channels confirm sooner than many idle ones (16 publishers on one channel outran the same
// 16 spread over 8 channels about 2× with a raw client), so channels fill up in order.
const shareLimit = 256

// get returns the first publish channel that carries fewer than shareLimit unconfirmed
// messages (or the next in turn when all do), opening it when it is not open yet or was
// lost, waiting for the connection when it is being re-dialled.
func (p *publisher) get(ctx context.Context) (*pubChannel, error) {
	s := p.pick()
	if pc := s.pc.Load(); pc != nil && !pc.ch.IsClosed() && p.s.current(pc.gen) {
		return pc, nil
	}
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: rabbitmq: waiting for a publish channel to open: %w", driver.ErrUnavailable, ctx.Err())
	case <-p.s.done:
		return nil, driver.ErrClosed
	}
	defer func() { <-s.lock }()
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, driver.ErrClosed
	}
	if pc := s.pc.Load(); pc != nil {
		if !pc.ch.IsClosed() && p.s.current(pc.gen) {
			return pc, nil // opened by another call meanwhile
		}
		p.closeChannel(pc.ch)
		s.pc.Store(nil)
	}
	pc, err := p.open(ctx)
	if err != nil {
		return nil, err
	}
	s.pc.Store(pc)
	return pc, nil
}

// pick chooses the slot of the channel to publish on.
func (p *publisher) pick() *slot {
	for i := range p.slots {
		pc := p.slots[i].pc.Load()
		if pc == nil || pc.ch.IsClosed() || pc.load.Load() < shareLimit {
			return &p.slots[i]
		}
	}
	return &p.slots[p.next.Add(1)%uint64(len(p.slots))]
}

func (p *publisher) open(ctx context.Context) (*pubChannel, error) {
	conn, gen, err := p.s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	var pc *pubChannel
	err = p.d.rpc(ctx, func() error {
		ch, err := conn.Channel()
		if err != nil {
			return mapError("open publish channel", err)
		}
		if err := ch.Confirm(false); err != nil {
			p.closeChannel(ch)
			return mapError("enable publisher confirms", err)
		}
		pc = &pubChannel{ch: ch, gen: gen, closes: ch.NotifyClose(make(chan *amqp.Error, 1))}
		// Returns come for messages published with the mandatory flag: with
		// Config.ReportUnroutable, and the delayed redeliveries of the subscriber.
		pc.returned = map[string][]amqp.Return{}
		pc.barrier = make(chan chan struct{})
		pc.collected = make(chan struct{})
		returns := ch.NotifyReturn(make(chan amqp.Return, 256))
		if !p.d.background(func() { pc.collectReturns(returns) }) {
			p.closeChannel(ch)
			return p.d.errClosed("open publish channel")
		}
		return nil
	}, func() { p.closeChannel(pc.ch) })
	if err != nil {
		return nil, err
	}
	return pc, nil
}

// closeChannel closes ch in the background: channel.close waits for the broker's answer,
// which never comes while the broker blocks the connection (a resource alarm). A closed
// connection ends the wait.
func (p *publisher) closeChannel(ch *amqp.Channel) {
	if ch.IsClosed() {
		return
	}
	if !p.d.background(func() { _ = ch.Close() }) {
		_ = ch.Close() // the connection is closing: this returns at once
	}
}

// close stops publishing; the channels close with the connection.
func (p *publisher) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

// outgoing is a batch to send and where it goes. Messages are turned into AMQP publishings
// one at a time, as they are sent, into one reused header table: amqp091-go encodes a
// publishing before Publish returns and keeps nothing of it.
type outgoing struct {
	exchange string
	// build returns message i's routing key and publishing, filling h (empty) with its
	// headers when it has any.
	build func(i int, h amqp.Table) (key string, p amqp.Publishing)
	// id returns message i's Courier ID, to match returns; bodyLen its body's size.
	id      func(i int) string
	bodyLen func(i int) int

	// mandatory asks the broker to return a message no queue is bound for (ErrUnroutable)
	// instead of dropping it.
	mandatory bool

	declareKey string // cache key of the declaration; "" for none
	declare    func(ch *amqp.Channel) error
	maxAge     time.Duration // redeclare when the declaration is older; 0: once per connection
}

// Publish implements driver.Driver.
func (d *Driver) Publish(ctx context.Context, topic string, msgs []*message.Message) error {
	if d.closed.Load() {
		return d.errClosed("publish")
	}
	if err := checkName("exchange", topic); err != nil {
		return err
	}
	o := &outgoing{
		exchange:  topic,
		mandatory: d.cfg.ReportUnroutable,
		build: func(i int, h amqp.Table) (string, amqp.Publishing) {
			m := msgs[i]
			return routingKey(m.Key), toPublishing(m, h, d.cfg.PrecisePublishTime)
		},
		id:         func(i int) string { return msgs[i].ID },
		bodyLen:    func(i int) int { return len(msgs[i].Payload) },
		declareKey: "x:" + topic,
		declare:    func(ch *amqp.Channel) error { return declareExchange(ch, topic, d.cfg.ExchangeType) },
	}
	results := make([]error, len(msgs))
	pending := make([]int, 0, len(msgs))
	limit := int(d.frameMax.Load()) - 8
	for i, m := range msgs {
		if n := headerBytes(m); limit > 0 && n > limit {
			results[i] = fmt.Errorf("%w: rabbitmq: the message's headers take about %d bytes; all headers of a message must fit one AMQP frame of %d bytes",
				driver.ErrInvalidMessage, n, limit)
			continue
		}
		pending = append(pending, i)
	}
	d.pub.send(ctx, o, pending, results)
	var pe *driver.PublishError
	for i, err := range results {
		if err == nil {
			continue
		}
		if pe == nil {
			pe = &driver.PublishError{Topic: topic, Total: len(msgs)}
		}
		pe.Failed = append(pe.Failed, driver.FailedMessage{Index: i, ID: msgs[i].ID, Err: err})
	}
	if pe != nil {
		return pe
	}
	return nil
}

// send publishes o's messages listed in pending and sets results[i] for each that failed.
// Messages whose channel was lost before their confirm are sent again on a new channel.
func (p *publisher) send(ctx context.Context, o *outgoing, pending []int, results []error) {
	fail := func(idx []int, err error) {
		for _, i := range idx {
			results[i] = err
		}
	}
	redeclared := false
	for round := 0; len(pending) > 0; round++ {
		if round > 0 {
			// A channel lost again right after a reconnect should not spin.
			t := time.NewTimer(jitter(min(time.Duration(round)*50*time.Millisecond, time.Second)))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				fail(pending, fmt.Errorf("%w: rabbitmq: not published (%d left to send again after a lost connection): %w", driver.ErrUnavailable, len(pending), ctx.Err()))
				return
			}
		}
		if err := p.s.waitUnblocked(ctx); err != nil {
			fail(pending, err)
			return
		}
		pc, err := p.get(ctx)
		if err != nil {
			if retryable(err) && ctx.Err() == nil {
				continue // the connection died under us: wait for the next one
			}
			fail(pending, err)
			return
		}
		if err := p.ensure(ctx, pc, o); err != nil {
			if retryable(err) && ctx.Err() == nil {
				continue
			}
			fail(pending, err)
			return
		}
		retry, chErr := p.sendOn(ctx, pc, o, pending, results)
		if len(retry) == 0 {
			return
		}
		if limit, ok := brokerSizeLimit(chErr); ok {
			// The broker refused one message as too large and closed the channel: fail
			// the large ones, send the others again.
			kept := retry[:0]
			for _, i := range retry {
				if n := o.bodyLen(i); n > limit {
					results[i] = fmt.Errorf("%w: rabbitmq: the body of %d bytes exceeds the broker's max_message_size of %d bytes",
						driver.ErrMessageTooLarge, n, limit)
				} else {
					kept = append(kept, i)
				}
			}
			pending = kept
			continue
		}
		switch code := codeOf(chErr); {
		case code == codeNotFound && o.declare != nil && !redeclared:
			// Deleted under us: declare once more.
			redeclared = true
			p.forget(o.declareKey)
		case retryable(chErr):
			p.d.stats.republished.Add(int64(len(retry)))
			p.d.log.Debug("courier: rabbitmq publish channel lost; publishing unconfirmed messages again", "count", len(retry), "error", chErr)
		default:
			fail(retry, mapError(fmt.Sprintf("publish to exchange %q", o.exchange), chErr))
			return
		}
		pending = retry
	}
}

// ensure declares o's exchange or queue on pc unless that was done on its connection.
func (p *publisher) ensure(ctx context.Context, pc *pubChannel, o *outgoing) error {
	if o.declare == nil {
		return nil
	}
	p.mu.Lock()
	dd, ok := p.declared[o.declareKey]
	p.mu.Unlock()
	if ok && dd.gen == pc.gen && (o.maxAge == 0 || time.Since(dd.at) < o.maxAge) {
		return nil
	}
	if err := p.d.rpc(ctx, func() error {
		pc.sendMu.Lock()
		defer pc.sendMu.Unlock()
		return o.declare(pc.ch)
	}, nil); err != nil {
		return err
	}
	p.mu.Lock()
	p.declared[o.declareKey] = declared{gen: pc.gen, at: time.Now()}
	p.mu.Unlock()
	return nil
}

func (p *publisher) forget(key string) {
	p.mu.Lock()
	delete(p.declared, key)
	p.mu.Unlock()
}

type inflight struct {
	idx int
	dc  *amqp.DeferredConfirmation
}

// batchSend is one sendOn: the messages of a batch published on one shared channel and their
// confirms outstanding in a window.
type batchSend struct {
	p       *publisher
	ctx     context.Context
	pc      *pubChannel
	o       *outgoing
	pending []int
	results []error

	window  []inflight // published, confirm not yet resolved from head on
	head    int
	synced  int   // window positions before this have their returns filed
	retry   []int // to send again: their channel closed before they were confirmed
	notSent []int // left unpublished when the channel closed
	closed  bool
}

// sendOn publishes pending on pc, keeping at most p.window of them unconfirmed, and waits
// for every confirm. It returns the messages to send again (their channel closed before
// they were confirmed) and why the channel closed.
func (p *publisher) sendOn(ctx context.Context, pc *pubChannel, o *outgoing, pending []int, results []error) (retry []int, chErr error) {
	b := &batchSend{p: p, ctx: ctx, pc: pc, o: o, pending: pending, results: results,
		window: make([]inflight, 0, min(len(pending), p.window))}
	pc.load.Add(int64(len(pending)))
	defer pc.load.Add(-int64(len(pending)))
	if err := b.publishAll(); err != nil {
		b.abandon(err)
		return nil, nil
	}
	for ; b.head < len(b.window); b.head++ {
		if err := b.wait(b.window[b.head].dc); err != nil {
			b.abandon(err)
			return nil, nil
		}
		b.resolve(b.head)
	}
	b.retry = append(b.retry, b.notSent...)
	if len(b.retry) > 0 {
		return b.retry, pc.closeReason()
	}
	return nil, nil
}

// publishAll publishes the pending messages, resolving the oldest confirm whenever the window
// is full. It stops early when the channel breaks (the rest go to notSent) and returns an
// error only when ctx ended; notSent then holds what was not published.
func (b *batchSend) publishAll() error {
	h := make(amqp.Table, 8)
	for n, idx := range b.pending {
		if len(b.window)-b.head >= b.p.window {
			if err := b.wait(b.window[b.head].dc); err != nil {
				b.notSent = b.pending[n:]
				return err
			}
			b.resolve(b.head)
			b.head++
			if b.head > 4096 && b.head*2 > len(b.window) && b.synced <= b.head {
				b.window = append(b.window[:0], b.window[b.head:]...)
				b.head, b.synced = 0, 0
			}
		}
		if b.p.s.isBlocked.Load() {
			if err := b.p.s.waitUnblocked(b.ctx); err != nil {
				b.notSent = b.pending[n:]
				return err
			}
		}
		clear(h)
		key, pub := b.o.build(idx, h)
		b.pc.sendMu.RLock()
		dc, err := b.pc.ch.PublishWithDeferredConfirm(b.o.exchange, key, b.o.mandatory, false, pub)
		b.pc.sendMu.RUnlock()
		if err != nil {
			// Header tables are built from strings and cannot fail validation: the
			// channel or its connection broke (a write error can come before amqp091-go
			// notices). Closing the channel resolves the outstanding confirms as nacks,
			// which, on a closed channel, means "send again".
			b.p.closeChannel(b.pc.ch)
			b.closed = true
			b.notSent = b.pending[n:]
			return nil
		}
		b.window = append(b.window, inflight{idx: idx, dc: dc})
	}
	return nil
}

// wait waits for a confirm; it fails only when ctx ends.
func (b *batchSend) wait(dc *amqp.DeferredConfirmation) error {
	select {
	case <-dc.Done():
		return nil
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
}

// returned reports the basic.return of the message at window position k, whose confirm is
// in. One barrier files the returns of every message whose confirm was in before it.
func (b *batchSend) returned(k int) (amqp.Return, bool) {
	if !b.o.mandatory {
		return amqp.Return{}, false
	}
	if k >= b.synced {
		n := k + 1
		for n < len(b.window) && isDone(b.window[n].dc) {
			n++
		}
		b.pc.syncReturns()
		b.synced = n
	}
	return b.pc.takeReturn(b.o.id(b.window[k].idx))
}

func isDone(dc *amqp.DeferredConfirmation) bool {
	select {
	case <-dc.Done():
		return true
	default:
		return false
	}
}

// resolve records the outcome of the confirmed (or channel-lost) message at window position k.
func (b *batchSend) resolve(k int) {
	f := b.window[k]
	if r, ok := b.returned(k); ok {
		b.results[f.idx] = fmt.Errorf("%w: rabbitmq: no queue is bound to exchange %q for routing key %q (%d %s); subscribe before publishing",
			driver.ErrUnroutable, b.o.exchange, r.RoutingKey, r.ReplyCode, r.ReplyText)
		return
	}
	if f.dc.Acked() {
		return
	}
	if b.closed || b.pc.ch.IsClosed() {
		b.closed = true
		b.retry = append(b.retry, f.idx)
		return
	}
	b.results[f.idx] = fmt.Errorf("%w: rabbitmq: the broker nacked the message (exchange %q)", driver.ErrNacked, b.o.exchange)
}

// abandon fails what is still unresolved after ctx ended: messages awaiting their confirm may
// still be delivered; the rest were not published.
func (b *batchSend) abandon(err error) {
	for _, f := range b.window[b.head:] {
		b.results[f.idx] = fmt.Errorf("%w: rabbitmq: no confirm from the broker before the context ended; the message may still be delivered: %w", driver.ErrUnavailable, err)
	}
	for _, i := range append(b.retry, b.notSent...) {
		b.results[i] = fmt.Errorf("%w: rabbitmq: not published: %w", driver.ErrUnavailable, err)
	}
}
