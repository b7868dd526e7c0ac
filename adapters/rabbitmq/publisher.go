package rabbitmq

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/courierhq/courier/transport/driver"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/message"
)

// Publishing, in short: a pool of confirm-mode channels on the publish connection (at most
// Config.PublishChannels). A Publish call takes one channel for its whole batch, publishes
// every message, keeping up to Config.MaxInFlight confirms
// outstanding, then waits for the rest. With Config.ReportUnroutable messages carry the
// mandatory flag. Holding the channel for the batch makes the
// basic.return frames on it belong to this batch: RabbitMQ sends a message's basic.return
// before its basic.ack, and amqp091-go hands both over in that order, so once a message's
// confirm is in, its return (if any) is already waiting in the channel's return queue.
//
// Outcomes per message: acked → published; acked but returned → ErrUnroutable; nacked →
// ErrNacked; channel or connection lost before the confirm → published again on a new
// channel once the connection is back (a duplicate is possible, a loss is not), for as long
// as ctx allows.

// pubChannel is a confirm-mode channel of one connection generation.
type pubChannel struct {
	ch      *amqp.Channel
	gen     uint64
	returns chan amqp.Return
	closes  chan *amqp.Error
	reason  *amqp.Error
}

// closeReason returns why the channel closed, when it says.
func (pc *pubChannel) closeReason() error {
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

type declared struct {
	gen uint64
	at  time.Time
}

type publisher struct {
	d      *Driver
	s      *session
	window int
	sem    chan struct{} // one token per channel in use

	mu       sync.Mutex
	idle     []*pubChannel
	declared map[string]declared // "x:" + exchange or "q:" + queue → when it was declared
	closed   bool
}

func newPublisher(d *Driver) *publisher {
	return &publisher{d: d, s: d.pubSession, window: d.cfg.MaxInFlight,
		sem: make(chan struct{}, d.cfg.PublishChannels), declared: map[string]declared{}}
}

// get takes a publish channel, opening one when none is idle, waiting for the connection
// when it is being re-dialled.
func (p *publisher) get(ctx context.Context) (*pubChannel, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: rabbitmq: all %d publish channels busy: %w", driver.ErrUnavailable, cap(p.sem), ctx.Err())
	case <-p.s.done:
		return nil, driver.ErrClosed
	}
	for {
		p.mu.Lock()
		var pc *pubChannel
		if n := len(p.idle); n > 0 {
			pc = p.idle[n-1]
			p.idle = p.idle[:n-1]
		}
		p.mu.Unlock()
		if pc == nil {
			break
		}
		if !pc.ch.IsClosed() && p.s.current(pc.gen) {
			return pc, nil
		}
		p.closeChannel(pc.ch)
	}
	pc, err := p.open(ctx)
	if err != nil {
		<-p.sem
		return nil, err
	}
	return pc, nil
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
		pc = &pubChannel{
			ch:      ch,
			gen:     gen,
			returns: ch.NotifyReturn(make(chan amqp.Return, 256)),
			closes:  ch.NotifyClose(make(chan *amqp.Error, 1)),
		}
		return nil
	}, func() { p.closeChannel(pc.ch) })
	if err != nil {
		return nil, err
	}
	return pc, nil
}

// put gives a channel back; a channel that is closed or has confirms outstanding is closed
// instead.
func (p *publisher) put(pc *pubChannel, reuse bool) {
	if reuse && !pc.ch.IsClosed() {
		p.mu.Lock()
		if !p.closed {
			p.idle = append(p.idle, pc)
			p.mu.Unlock()
			<-p.sem
			return
		}
		p.mu.Unlock()
	}
	p.closeChannel(pc.ch)
	<-p.sem
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

// close stops pooling; the idle channels close with the connection.
func (p *publisher) close() {
	p.mu.Lock()
	p.closed = true
	p.idle = nil
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
			p.put(pc, false)
			if retryable(err) && ctx.Err() == nil {
				continue
			}
			fail(pending, err)
			return
		}
		retry, reuse, chErr := p.sendOn(ctx, pc, o, pending, results)
		p.put(pc, reuse)
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
	if err := p.d.rpc(ctx, func() error { return o.declare(pc.ch) }, nil); err != nil {
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

// batchSend is one sendOn: the messages of a batch published on one channel, their confirms
// outstanding in a window, and the basic.return frames that came back for them.
type batchSend struct {
	p       *publisher
	ctx     context.Context
	pc      *pubChannel
	o       *outgoing
	pending []int
	results []error

	returns  <-chan amqp.Return // nil once the channel's return queue closed
	byID     map[string][]int   // Courier ID → batch positions (built at the first return)
	returned map[int]amqp.Return

	window  []inflight // published, confirm not yet resolved from head on
	head    int
	retry   []int // to send again: their channel closed before they were confirmed
	notSent []int // left unpublished when the channel closed
	closed  bool
}

// sendOn publishes pending on pc, keeping at most p.window confirms outstanding, and waits
// for every confirm. It returns the messages to send again (their channel closed before
// they were confirmed), whether pc can be reused, and why the channel closed.
func (p *publisher) sendOn(ctx context.Context, pc *pubChannel, o *outgoing, pending []int, results []error) (retry []int, reuse bool, chErr error) {
	b := &batchSend{p: p, ctx: ctx, pc: pc, o: o, pending: pending, results: results, returns: pc.returns,
		window: make([]inflight, 0, min(len(pending), p.window))}
	if err := b.publishAll(); err != nil {
		b.abandon(err)
		return nil, false, nil
	}
	for ; b.head < len(b.window); b.head++ {
		if err := b.wait(b.window[b.head].dc); err != nil {
			b.abandon(err)
			return nil, false, nil
		}
		b.resolve(b.window[b.head])
	}
	b.drain()
	b.retry = append(b.retry, b.notSent...)
	if b.closed || pc.ch.IsClosed() {
		return b.retry, false, pc.closeReason()
	}
	return b.retry, true, nil
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
			b.resolve(b.window[b.head])
			b.head++
			if b.head > 4096 && b.head*2 > len(b.window) {
				b.window = append(b.window[:0], b.window[b.head:]...)
				b.head = 0
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
		dc, err := b.pc.ch.PublishWithDeferredConfirm(b.o.exchange, key, b.o.mandatory, false, pub)
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
		b.drain()
	}
	return nil
}

// takeReturn matches a basic.return to the first batch position with its ID not yet returned.
func (b *batchSend) takeReturn(r amqp.Return) {
	if b.byID == nil {
		b.byID = make(map[string][]int, len(b.pending))
		for _, i := range b.pending {
			id := b.o.id(i)
			b.byID[id] = append(b.byID[id], i)
		}
		b.returned = map[int]amqp.Return{}
	}
	id := publishedID(r.MessageId, r.Headers)
	for _, i := range b.byID[id] {
		if _, dup := b.returned[i]; !dup {
			b.returned[i] = r
			return
		}
	}
}

// drain takes the returns already queued, without waiting.
func (b *batchSend) drain() {
	for b.returns != nil {
		select {
		case r, ok := <-b.returns:
			if !ok {
				b.returns = nil
				return
			}
			b.takeReturn(r)
		default:
			return
		}
	}
}

// wait waits for a confirm, taking returns meanwhile; it fails only when ctx ends.
func (b *batchSend) wait(dc *amqp.DeferredConfirmation) error {
	for {
		select {
		case <-dc.Done():
			return nil
		case r, ok := <-b.returns:
			if !ok {
				b.returns = nil
				continue
			}
			b.takeReturn(r)
		case <-b.ctx.Done():
			return b.ctx.Err()
		}
	}
}

// resolve records the outcome of a confirmed (or channel-lost) message.
func (b *batchSend) resolve(f inflight) {
	b.drain() // a return precedes its confirm
	if r, ok := b.returned[f.idx]; ok {
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
