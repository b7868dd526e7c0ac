package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/transport/driver"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/internal/closing"
	"github.com/courierhq/courier/message"
)

// nackPublishTimeout bounds the republish of a delayed retry; when it fails the message is
// requeued at once instead.
const nackPublishTimeout = 10 * time.Second

var consumerSeq atomic.Uint64

// Subscribe implements driver.Driver: it declares the subscription's exchange, queue and
// binding (see topology), so that messages published from now on are kept, and returns a
// receiver. Consuming (basic.consume) starts with the first Receive.
//
// Errors: ErrInvalidTopic for names RabbitMQ refuses; ErrInvalidConfig when the queue or
// exchange exists with other arguments (queue arguments cannot change after declaration);
// ErrAccessDenied; ErrUnavailable.
func (d *Driver) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	if d.closed.Load() {
		return nil, d.errClosed("subscribe")
	}
	topo, err := d.topologyFor(spec)
	if err != nil {
		return nil, err
	}
	if err := d.subSession.start(ctx); err != nil {
		return nil, err
	}
	if err := d.declareSubscription(ctx, topo); err != nil {
		return nil, err
	}
	prefetch := min(max(spec.Prefetch, 1), 65535)
	tagQueue := topo.queue
	if len(tagQueue) > 200 {
		tagQueue = tagQueue[:200]
	}
	return &receiver{
		d:        d,
		spec:     spec,
		topo:     topo,
		prefetch: prefetch,
		tag:      "courier." + tagQueue + "." + strconv.FormatUint(consumerSeq.Add(1), 10),
		life:     closing.New(),
	}, nil
}

// declareSubscription declares topo on a short-lived channel of the consume connection,
// trying again while the connection is being re-dialled.
func (d *Driver) declareSubscription(ctx context.Context, topo *topology) error {
	delay := d.cfg.ReconnectDelay
	for {
		err := func() error {
			conn, _, err := d.subSession.acquire(ctx)
			if err != nil {
				return err
			}
			return d.rpc(ctx, func() error {
				ch, err := conn.Channel()
				if err != nil {
					return mapError("open channel", err)
				}
				defer func() { _ = ch.Close() }()
				return topo.declare(ch)
			}, nil)
		}()
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		if !sleep(ctx, nil, jitter(delay)) {
			return fmt.Errorf("rabbitmq: declare queue %q: %w", topo.queue, err)
		}
		delay = min(2*delay, d.cfg.MaxReconnectDelay)
	}
}

// sleep waits d; false when ctx or stop ends first.
func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

// receiver consumes one subscription's queue: one channel with one consumer, replaced when
// the connection or the channel is lost or the broker cancels the consumer.
type receiver struct {
	d        *Driver
	spec     driver.SubscriptionSpec
	topo     *topology
	prefetch int
	tag      string

	mu      sync.Mutex
	cur     *consumer
	started bool // a consumer was started before
	life    closing.Latch
}

// consumer is one basic.consume on one channel. Delivery tags are per channel: acks for a
// consumer that is gone are dropped (the broker redelivers those messages).
//
// Acknowledgements: every settled tag (acked, nacked, rejected) is recorded; floor is the
// highest tag up to which all are settled. An ack batch whose tags are all at or below
// the floor after recording it goes out as one basic.ack with multiple=true for its
// highest tag; tags above the floor are acked one by one. Settling and sending happen under
// one lock so that frames go out in the order they were decided.
type consumer struct {
	ch         *amqp.Channel
	gen        uint64
	deliveries <-chan amqp.Delivery
	closes     chan *amqp.Error // why the channel closed
	log        *slog.Logger

	mu      sync.Mutex
	floor   uint64
	settled map[uint64]struct{}
}

// delivery is a received message and its receipt.
type delivery struct {
	msg  message.Message
	d    amqp.Delivery
	c    *consumer
	done atomic.Bool // acked, nacked or rejected
}

// As implements message.Receipt: *amqp091.Delivery (a copy) and **amqp091.Delivery.
func (e *delivery) As(target any) bool {
	switch t := target.(type) {
	case *amqp.Delivery:
		*t = e.d
		return true
	case **amqp.Delivery:
		*t = &e.d
		return true
	}
	return false
}

// Receive implements driver.Receiver.
func (r *receiver) Receive(ctx context.Context, buf []*message.Message) (int, error) {
	for {
		c, err := r.consumer(ctx)
		if err != nil {
			return 0, err
		}
		select {
		case d, ok := <-c.deliveries:
			if !ok {
				r.lost(c)
				continue
			}
			buf[0] = r.wrap(c, &d)
			n := 1
			for n < len(buf) {
				select {
				case d, ok := <-c.deliveries:
					if !ok {
						return n, nil // the next call notices
					}
					buf[n] = r.wrap(c, &d)
					n++
					continue
				default:
				}
				break
			}
			return n, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-r.life.Done():
			return 0, driver.ErrClosed
		}
	}
}

func (r *receiver) wrap(c *consumer, d *amqp.Delivery) *message.Message {
	e := &delivery{d: *d, c: c}
	m := &e.msg
	fromDelivery(m, &e.d)
	m.Topic, m.Subscription = r.spec.Topic, r.spec.Subscription
	var fromRetry bool
	m.Attempt, fromRetry = attemptOf(&e.d, r.topo.delayPrefix, r.topo.quorum)
	if fromRetry && m.Headers != nil {
		delete(m.Headers, message.HeaderAttempt)
	}
	message.SetReceipt(m, e)
	return m
}

// consumer returns the live consumer, starting one (and waiting for the connection) when
// there is none. Refusals (permissions, inequivalent queue arguments) are returned; lost
// connections are waited out, bounded by ctx.
func (r *receiver) consumer(ctx context.Context) (*consumer, error) {
	r.mu.Lock()
	closed, c := r.life.Closed(), r.cur
	r.mu.Unlock()
	if closed {
		return nil, driver.ErrClosed
	}
	if c != nil {
		return c, nil
	}
	delay := r.d.cfg.ReconnectDelay
	for {
		c, err := r.start(ctx)
		if err == nil {
			r.mu.Lock()
			if r.life.Closed() {
				r.mu.Unlock()
				_ = c.ch.Close()
				return nil, driver.ErrClosed
			}
			restarted := r.started
			r.cur, r.started = c, true
			r.mu.Unlock()
			if restarted {
				r.d.stats.consumersRestarted.Add(1)
			}
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, driver.ErrClosed) || !retryable(err) {
			return nil, err
		}
		r.d.log.Warn("courier: rabbitmq could not start consuming; trying again", "queue", r.topo.queue, "delay", delay, "error", err)
		if !sleep(ctx, r.life.Done(), jitter(delay)) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, driver.ErrClosed
		}
		delay = min(2*delay, r.d.cfg.MaxReconnectDelay)
	}
}

// start opens a channel, re-declares the topology (it may be gone after a broker restart
// or a deletion), sets the prefetch and starts consuming, bounded by ctx.
func (r *receiver) start(ctx context.Context) (*consumer, error) {
	conn, gen, err := r.d.subSession.acquire(ctx)
	if err != nil {
		return nil, err
	}
	var c *consumer
	err = r.d.rpc(ctx, func() error {
		ch, err := conn.Channel()
		if err != nil {
			return mapError("open consume channel", err)
		}
		if err := r.topo.declare(ch); err != nil {
			_ = ch.Close()
			return err
		}
		if err := ch.Qos(r.prefetch, 0, false); err != nil {
			_ = ch.Close()
			return mapError("set prefetch", err)
		}
		closes := ch.NotifyClose(make(chan *amqp.Error, 1))
		deliveries, err := ch.Consume(r.topo.queue, r.tag, false, false, false, false, nil)
		if err != nil {
			_ = ch.Close()
			return mapError(fmt.Sprintf("consume queue %q", r.topo.queue), err)
		}
		c = &consumer{ch: ch, gen: gen, deliveries: deliveries, closes: closes, log: r.d.log, settled: map[uint64]struct{}{}}
		return nil
	}, func() { _ = c.ch.Close() })
	if err != nil {
		return nil, err
	}
	return c, nil
}

// lost forgets a consumer whose deliveries ended: its channel or connection closed, or the
// broker cancelled it (the queue was deleted, a quorum queue lost its leader). Its channel
// is closed so that the broker requeues what it had delivered.
func (r *receiver) lost(c *consumer) {
	r.mu.Lock()
	if r.cur == c {
		r.cur = nil
	}
	closed := r.life.Closed()
	r.mu.Unlock()
	if closed {
		return
	}
	if c.ch.IsClosed() {
		var reason error
		select {
		case e, ok := <-c.closes:
			if ok && e != nil {
				reason = e
			}
		default:
		}
		if r.d.subSession.current(c.gen) && reason != nil {
			r.d.log.Warn("courier: rabbitmq closed the consume channel; consuming again", "queue", r.topo.queue, "error", reason)
		} else {
			r.d.log.Info("courier: rabbitmq consume channel lost with its connection; consuming again", "queue", r.topo.queue)
		}
		return
	}
	r.d.log.Warn("courier: rabbitmq cancelled the consumer (queue deleted or moved?); consuming again", "queue", r.topo.queue)
	_ = c.ch.Close()
}

func receiptOf(m *message.Message) (*delivery, error) {
	e, ok := message.ReceiptOf(m).(*delivery)
	if !ok {
		return nil, fmt.Errorf("%w: rabbitmq: message %s was not received from RabbitMQ", driver.ErrInvalidMessage, m.ID)
	}
	return e, nil
}

// Ack implements driver.Receiver. Messages of a consumer that is gone are skipped: the
// broker has requeued them.
func (r *receiver) Ack(_ context.Context, msgs []*message.Message) error {
	var c *consumer
	tags := make([]uint64, 0, len(msgs))
	var errs []error
	for _, m := range msgs {
		e, err := receiptOf(m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !e.done.CompareAndSwap(false, true) {
			continue
		}
		if e.c != c {
			if c != nil {
				errs = append(errs, c.ack(tags))
			}
			c, tags = e.c, tags[:0]
		}
		tags = append(tags, e.d.DeliveryTag)
	}
	if c != nil {
		errs = append(errs, c.ack(tags))
	}
	return errors.Join(errs...)
}

// Nack implements driver.Receiver.
//
// With a delay, a copy of the message (same properties, body and headers, courier-attempt
// set to the next attempt) is published with a confirm to the subscription's delay queue
// for that delay; the broker dead-letters it back to the subscription's queue when its TTL
// runs out. Only then is the original acked, so a crash in between duplicates, never
// loses. If the copy cannot be published the message is requeued at once instead.
//
// With delay 0 (a release: received, not handled) the message is requeued
// (basic.nack requeue=true) and keeps its place in the queue.
func (r *receiver) Nack(ctx context.Context, m *message.Message, delay time.Duration) error {
	e, err := receiptOf(m)
	if err != nil {
		return err
	}
	if e.done.Load() || e.c.ch.IsClosed() {
		return nil // settled already, or its channel is gone and the broker requeued it
	}
	tag := e.d.DeliveryTag
	if delay <= 0 {
		if !e.done.CompareAndSwap(false, true) {
			return nil
		}
		return e.c.settle(tag, func(ch *amqp.Channel) error { return ch.Nack(tag, false, true) })
	}
	name, args := r.topo.delayQueue(delay)
	copyPub := retryPublishing(&e.d, m, m.Attempt+1)
	id := publishedID(copyPub.MessageId, copyPub.Headers)
	o := &outgoing{
		exchange:   "",
		mandatory:  true, // the delay queue was declared: a return means it is gone
		build:      func(int, amqp.Table) (string, amqp.Publishing) { return name, copyPub },
		id:         func(int) string { return id },
		bodyLen:    func(int) int { return len(copyPub.Body) },
		declareKey: "q:" + name,
		declare:    func(ch *amqp.Channel) error { return declareQueue(ch, name, args) },
		maxAge:     delayRedeclare,
	}
	pctx, cancel := context.WithTimeout(ctx, nackPublishTimeout)
	results := make([]error, 1)
	r.d.pub.send(pctx, o, []int{0}, results)
	cancel()
	if !e.done.CompareAndSwap(false, true) {
		return nil
	}
	if results[0] != nil {
		r.d.pub.forget(o.declareKey) // declare the delay queue again next time
		err := e.c.settle(tag, func(ch *amqp.Channel) error { return ch.Nack(tag, false, true) })
		return errors.Join(fmt.Errorf("rabbitmq: delayed redelivery of message %s through queue %q failed, requeued at once instead: %w", m.ID, name, results[0]), err)
	}
	return e.c.settle(tag, func(ch *amqp.Channel) error { return ch.Ack(tag, false) })
}

// Reject implements driver.Rejecter: basic.reject without requeue, so that RabbitMQ
// dead-letters the message to the exchange named by the queue's x-dead-letter-exchange.
func (r *receiver) Reject(_ context.Context, m *message.Message, _ error) error {
	if r.topo.dlExchange == "" {
		return fmt.Errorf("%w: rabbitmq: reject without native dead-lettering would drop message %s", driver.ErrInvalidConfig, m.ID)
	}
	e, err := receiptOf(m)
	if err != nil {
		return err
	}
	if !e.done.CompareAndSwap(false, true) {
		return nil
	}
	tag := e.d.DeliveryTag
	return e.c.settle(tag, func(ch *amqp.Channel) error { return ch.Reject(tag, false) })
}

// Close implements driver.Receiver: closing the channel makes the broker requeue what
// was delivered and not acknowledged.
func (r *receiver) Close(ctx context.Context) error {
	var c *consumer
	if !r.life.CloseUnder(&r.mu, func() { c, r.cur = r.cur, nil }) {
		return driver.ErrClosed
	}
	if c == nil || c.ch.IsClosed() {
		return nil
	}
	closed := make(chan error, 1)
	go func() { closed <- c.ch.Close() }()
	select {
	case err := <-closed:
		if err != nil && !c.ch.IsClosed() {
			return mapError("close consume channel", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("rabbitmq: close consume channel: %w", ctx.Err())
	}
}

// ack acknowledges tags (see consumer).
func (c *consumer) ack(tags []uint64) error {
	if len(tags) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range tags {
		c.settled[t] = struct{}{}
	}
	c.advance()
	var multi uint64
	for _, t := range tags {
		if t <= c.floor && t > multi {
			multi = t
		}
	}
	if multi > 0 {
		if err := c.ch.Ack(multi, true); err != nil {
			return c.sendError(err)
		}
	}
	for _, t := range tags {
		if t > c.floor {
			if err := c.ch.Ack(t, false); err != nil {
				return c.sendError(err)
			}
		}
	}
	return nil
}

// settle records one tag as settled and sends its frame with fn.
func (c *consumer) settle(tag uint64, fn func(*amqp.Channel) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settled[tag] = struct{}{}
	c.advance()
	if err := fn(c.ch); err != nil {
		return c.sendError(err)
	}
	return nil
}

func (c *consumer) advance() {
	for {
		if _, ok := c.settled[c.floor+1]; !ok {
			return
		}
		delete(c.settled, c.floor+1)
		c.floor++
	}
}

// sendError describes a failure to send an ack, nack or reject. Those frames carry nothing
// the broker could refuse before it has them, so a failure means the channel or its
// connection broke: the broker requeues the channel's unacknowledged deliveries and the
// receiver consumes again on a new channel. A closed channel (amqp.ErrClosed) is no error:
// the settlement is void and the broker delivers the message again. Anything else is
// returned, saying so and wrapping driver.ErrUnavailable.
func (c *consumer) sendError(err error) error {
	if errors.Is(err, amqp.ErrClosed) {
		// The channel is gone, and with it every unsettled delivery, which the broker
		// requeues: the settlement is void rather than failed. Nothing to report.
		return nil
	}
	return fmt.Errorf("%w: rabbitmq: the consume channel broke before the delivery was settled; the broker delivers it again: %w",
		driver.ErrUnavailable, err)
}
