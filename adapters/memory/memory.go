// Package memory is Courier's in-process broker, registered as "memory://". It needs no setup,
// so it is the default for demos and tests, and it is the speed reference for the consumer
// engine: it must never be the bottleneck.
//
// Semantics, as the conformance suite checks them:
//
//   - A topic fans out to its subscriptions; a subscription is a queue that its receivers
//     compete for. A message published to a topic with no subscription is dropped (as on
//     Pub/Sub): subscribe before publishing.
//
//   - Nack redelivers after the delay with the attempt count raised; a receiver closed with
//     messages unacknowledged returns them to the queue. Attempts are counted by the broker.
//
//   - Keys are carried; per-key order is what the consumer engine gives on one subscriber.
//
//   - Nothing survives the Broker: each Open of "memory://" is a new, empty broker. Share one
//     *transport.Conn to share a broker.
//
//   - Native dead-lettering (SubscriberConfig.NativeDeadLetter) moves a rejected message, as
//     it is, to the dead-letter topic, like RabbitMQ's dead-letter exchange.
//
// URL: memory://[?max_message_bytes=N&max_header_value_bytes=N] (defaults 10 MiB and 64 KiB).
package memory

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/transport/driver"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

func init() {
	driver.Register("memory", func(_ context.Context, u *url.URL, _ driver.OpenOptions) (driver.Driver, error) {
		cfg, err := ConfigFromURL(u)
		if err != nil {
			return nil, err
		}
		return New(cfg)
	})
}

// Open returns a connection to a new in-process broker.
func Open(cfg Config) (*transport.Conn, error) {
	b, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return transport.NewConn(b, transport.ConnConfig{}), nil
}

// Broker is the in-process broker; it implements driver.Driver.
type Broker struct {
	cfg    Config
	mu     sync.RWMutex
	topics map[string]*topic
	closed atomic.Bool
}

type topic struct {
	mu     sync.RWMutex
	subs   []*queue
	byName map[string]*queue
}

// New returns an empty broker.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxHeaderValueBytes == 0 {
		cfg.MaxHeaderValueBytes = DefaultMaxHeaderValueBytes
	}
	return &Broker{cfg: cfg, topics: map[string]*topic{}}, nil
}

// Capabilities implements driver.Driver.
func (b *Broker) Capabilities() driver.Capabilities {
	return driver.Capabilities{
		Name:                "memory",
		Redelivery:          true,
		DeliveryCount:       true,
		FanOut:              true,
		Persistent:          false,
		NativeDeadLetter:    true,
		Backlog:             true,
		MaxMessageBytes:     b.cfg.MaxMessageBytes,
		MaxHeaderValueBytes: b.cfg.MaxHeaderValueBytes,
	}
}

func (b *Broker) topic(name string, create bool) *topic {
	b.mu.RLock()
	t := b.topics[name]
	b.mu.RUnlock()
	if t != nil || !create {
		return t
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if t = b.topics[name]; t == nil {
		t = &topic{byName: map[string]*queue{}}
		b.topics[name] = t
	}
	return t
}

// Publish implements driver.Driver: each subscription gets its own copy of every message.
// The payload is copied once and shared read-only by the subscriptions.
func (b *Broker) Publish(ctx context.Context, topicName string, msgs []*message.Message) error {
	if b.closed.Load() {
		return driver.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t := b.topic(topicName, false)
	if t == nil {
		return nil
	}
	t.mu.RLock()
	subs := t.subs
	t.mu.RUnlock()
	if len(subs) == 0 {
		return nil
	}
	now := time.Now()
	// One allocation for all payload copies and one slab of entries per subscription: the
	// per-message cost stays at zero allocations here (headers excepted).
	total := 0
	for _, m := range msgs {
		total += len(m.Payload)
	}
	arena := make([]byte, 0, total)
	payloads := make([][]byte, len(msgs))
	for i, m := range msgs {
		if m.Payload != nil {
			start := len(arena)
			arena = append(arena, m.Payload...)
			payloads[i] = arena[start:len(arena):len(arena)]
		}
	}
	slabs := make([][]entry, len(subs))
	for i := range subs {
		slabs[i] = make([]entry, len(msgs))
	}
	for _, q := range subs {
		q.mu.Lock()
	}
	for i, m := range msgs {
		for j, q := range subs {
			e := &slabs[j][i]
			e.q, e.attempt = q, 1
			e.msg = message.Message{
				ID: m.ID, Key: m.Key, Payload: payloads[i], PublishTime: m.PublishTime,
				Topic: topicName, Subscription: q.name, BrokerTime: now,
			}
			if len(m.Headers) > 0 {
				e.msg.Headers = make(message.Headers, len(m.Headers))
				for k, v := range m.Headers {
					e.msg.Headers[k] = v
				}
			}
			q.pushLocked(e)
		}
	}
	for _, q := range subs {
		q.mu.Unlock()
		q.signal()
	}
	return nil
}

// Subscribe implements driver.Driver. The subscription persists for the broker's lifetime.
func (b *Broker) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	if b.closed.Load() {
		return nil, driver.ErrClosed
	}
	t := b.topic(spec.Topic, true)
	t.mu.Lock()
	q := t.byName[spec.Subscription]
	if q == nil {
		q = &queue{name: spec.Subscription, notify: make(chan struct{}, 1)}
		t.byName[spec.Subscription] = q
		subs := make([]*queue, len(t.subs), len(t.subs)+1)
		copy(subs, t.subs)
		t.subs = append(subs, q)
	}
	t.mu.Unlock()
	r := &receiver{b: b, q: q}
	q.consumers.Add(1)
	if spec.NativeDeadLetter != nil {
		r.dlTopic = spec.NativeDeadLetter.Topic
	}
	return r, nil
}

// Close implements driver.Driver. Pending redelivery timers are dropped with the broker.
func (b *Broker) Close(context.Context) error {
	if !b.closed.CompareAndSwap(false, true) {
		return driver.ErrClosed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.topics {
		for _, q := range t.subs {
			q.mu.Lock()
			q.closed = true
			for tm := range q.timers {
				tm.Stop()
			}
			q.timers = nil
			q.mu.Unlock()
			q.signal()
		}
	}
	return nil
}

// Depth returns how many messages wait in a subscription (ready, not delivered). For tests.
func (b *Broker) Depth(topicName, subscription string) int {
	t := b.topic(topicName, false)
	if t == nil {
		return 0
	}
	t.mu.RLock()
	q := t.byName[subscription]
	t.mu.RUnlock()
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.len()
}

// entry is one message in one subscription; it is its own receipt.
type entry struct {
	msg     message.Message
	q       *queue
	attempt int
	owner   *receiver // receiver holding it unacked, nil while queued
	prev    *entry    // in the owner's unacked list
	next    *entry
}

// As implements message.Receipt: the memory broker has no native record.
func (e *entry) As(any) bool { return false }

// queue is a subscription: a FIFO ring of ready entries.
type queue struct {
	name   string
	mu     sync.Mutex
	ring   []*entry
	head   int
	n      int
	notify chan struct{}
	closed bool
	timers map[*time.Timer]struct{}

	held      atomic.Int64 // received and neither acked nor nacked (Backlog.InFlight)
	consumers atomic.Int64 // open receivers (Backlog.Consumers)
}

func (q *queue) len() int { return q.n }

func (q *queue) grow() {
	size := max(64, 2*len(q.ring))
	r := make([]*entry, size)
	for i := 0; i < q.n; i++ {
		r[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = r, 0
}

func (q *queue) pushLocked(e *entry) {
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = e
	q.n++
}

func (q *queue) pushFrontLocked(e *entry) {
	if q.n == len(q.ring) {
		q.grow()
	}
	q.head = (q.head - 1 + len(q.ring)) % len(q.ring)
	q.ring[q.head] = e
	q.n++
}

func (q *queue) popLocked() *entry {
	e := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	return e
}

// signal wakes one waiting receiver; a receiver that finds more than it takes passes the
// signal on.
func (q *queue) signal() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

type receiver struct {
	b       *Broker
	q       *queue
	mu      sync.Mutex // guards the unacked list
	head    *entry
	closed  atomic.Bool
	dlTopic string // native dead-letter topic, if set up
}

// Receive implements driver.Receiver.
func (r *receiver) Receive(ctx context.Context, buf []*message.Message) (int, error) {
	q := r.q
	for {
		if r.closed.Load() {
			return 0, driver.ErrClosed
		}
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return 0, driver.ErrClosed
		}
		n := 0
		r.mu.Lock()
		for n < len(buf) && q.n > 0 {
			e := q.popLocked()
			e.owner = r
			e.prev, e.next = nil, r.head
			if r.head != nil {
				r.head.prev = e
			}
			r.head = e
			e.msg.Attempt = e.attempt
			message.SetReceipt(&e.msg, e)
			buf[n] = &e.msg
			n++
		}
		q.held.Add(int64(n))
		r.mu.Unlock()
		more := q.n > 0
		q.mu.Unlock()
		if more {
			q.signal()
		}
		if n > 0 {
			return n, nil
		}
		select {
		case <-q.notify:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// unlink removes e from its owner's unacked list; it reports false if e is not held by r.
func (r *receiver) unlink(e *entry) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.owner != r {
		return false
	}
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		r.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	}
	e.prev, e.next, e.owner = nil, nil, nil
	e.q.held.Add(-1)
	return true
}

func entryOf(m *message.Message) (*entry, error) {
	e, ok := message.ReceiptOf(m).(*entry)
	if !ok {
		return nil, fmt.Errorf("%w: message %s was not received from memory://", driver.ErrInvalidMessage, m.ID)
	}
	return e, nil
}

// Ack implements driver.Receiver.
func (r *receiver) Ack(_ context.Context, msgs []*message.Message) error {
	for _, m := range msgs {
		e, err := entryOf(m)
		if err != nil {
			return err
		}
		r.unlink(e)
	}
	return nil
}

// Nack implements driver.Receiver: the message returns to the front of the queue after
// delay (at once for 0) with its attempt count raised.
func (r *receiver) Nack(_ context.Context, m *message.Message, delay time.Duration) error {
	e, err := entryOf(m)
	if err != nil {
		return err
	}
	if !r.unlink(e) {
		return nil // already acked, nacked or returned by Close
	}
	r.requeue(e, delay)
	return nil
}

func (r *receiver) requeue(e *entry, delay time.Duration) {
	q := e.q
	e.attempt++
	if delay <= 0 {
		q.mu.Lock()
		if !q.closed {
			q.pushFrontLocked(e)
		}
		q.mu.Unlock()
		q.signal()
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return
		}
		delete(q.timers, t)
		q.pushLocked(e)
		q.mu.Unlock()
		q.signal()
	})
	if q.timers == nil {
		q.timers = map[*time.Timer]struct{}{}
	}
	q.timers[t] = struct{}{}
}

// Reject implements driver.Rejecter: with native dead-lettering set up, the message moves
// unchanged to the dead-letter topic; without, it is an error.
func (r *receiver) Reject(ctx context.Context, m *message.Message, _ error) error {
	if r.dlTopic == "" {
		return fmt.Errorf("%w: memory: reject without native dead-lettering", driver.ErrInvalidConfig)
	}
	e, err := entryOf(m)
	if err != nil {
		return err
	}
	c := e.msg
	message.SetReceipt(&c, nil)
	c.Topic, c.Subscription, c.Attempt = "", "", 0
	if err := r.b.Publish(ctx, r.dlTopic, []*message.Message{&c}); err != nil {
		return err // still held: the engine's release or Close returns it to the queue
	}
	r.unlink(e)
	return nil
}

// Close implements driver.Receiver: unacknowledged messages go back to the queue's front,
// without counting an attempt (they were not handled).
func (r *receiver) Close(context.Context) error {
	if !r.closed.CompareAndSwap(false, true) {
		return driver.ErrClosed
	}
	r.mu.Lock()
	var held []*entry
	for e := r.head; e != nil; e = e.next {
		held = append(held, e)
	}
	for _, e := range held {
		e.prev, e.next, e.owner = nil, nil, nil
	}
	r.head = nil
	r.mu.Unlock()
	q := r.q
	q.held.Add(-int64(len(held)))
	q.consumers.Add(-1)
	q.mu.Lock()
	// held is newest first; pushing each to the front restores the original order.
	for _, e := range held {
		if !q.closed {
			q.pushFrontLocked(e)
		}
	}
	q.mu.Unlock()
	q.signal()
	return nil
}
