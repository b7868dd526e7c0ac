package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/courierhq/courier/message"
)

// Coalescing defaults (PublisherConfig.CoalesceMessages and CoalesceBytes).
const (
	// DefaultCoalesceMessages bounds a merged batch when the broker reports no
	// Capabilities.MaxBatch.
	DefaultCoalesceMessages = 1000
	// DefaultCoalesceBytes bounds the message bytes (message.Size) of a merged batch.
	DefaultCoalesceBytes = 1 << 20
)

// errLead is sent to a queued call that must send the batch it heads.
var errLead = errors.New("courier: lead the batch")

// coalescer merges concurrent publishes to one topic into one driver batch. Per topic at most
// depth batches that are not full are in flight (1 by default): the first call goes at once; calls that arrive while
// it is in flight queue, and the queue goes as the next batch as soon as the one in flight
// returns, sent by the first queued caller. A queue that reaches the bounds goes at once. No
// goroutine and no timer is involved: callers send batches themselves.
type coalescer struct {
	send     message.PublishFunc // sends one merged batch; indexes of its errors refer to it
	maxMsgs  int
	maxBytes int
	depth    int // batches that were not full allowed in flight per topic

	mu     sync.Mutex
	topics map[string]*topicQueue
}

// topicQueue is one topic's state. It exists while the topic's batch that was not full is in
// flight; calls that arrive meanwhile wait in it.
type topicQueue struct {
	flying int     // batches that were not full in flight
	queue  []*call // calls waiting for the next batch, in arrival order
	msgs   int     // messages in queue
	bytes  int     // message bytes in queue
}

// call is one Publish waiting in a queue.
type call struct {
	ctx   context.Context
	msgs  []*message.Message
	bytes int
	done  chan error // receives the call's result, or errLead; buffered
	taken bool       // put in a batch (under coalescer.mu)
	batch []*call    // the batch to send, when this call leads it
	count bool       // the batch is the topic's one that was not full
}

func newCoalescer(send message.PublishFunc, maxMsgs, maxBytes, depth int) *coalescer {
	return &coalescer{send: send, maxMsgs: maxMsgs, maxBytes: maxBytes, depth: depth, topics: map[string]*topicQueue{}}
}

// publish is the PublishFunc under the middleware: it sends msgs, merged with concurrent
// calls to the same topic, and returns this call's own result.
func (c *coalescer) publish(ctx context.Context, topic string, msgs []*message.Message) error {
	size := 0
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("courier: publish to %q: %w: publish middleware left message %d nil", topic, ErrInvalidMessage, i)
		}
		size += m.Size()
	}
	full := len(msgs) >= c.maxMsgs || size >= c.maxBytes
	c.mu.Lock()
	q := c.topics[topic]
	if full || q == nil || q.flying < c.depth {
		// Nothing in flight (or a batch that needs no company): go at once, after what
		// is already queued.
		if q != nil && len(q.queue) > 0 {
			c.flushLocked(q, false)
		}
		if !full {
			if q == nil {
				q = &topicQueue{}
				c.topics[topic] = q
			}
			q.flying++
		}
		c.mu.Unlock()
		if !full {
			defer c.finish(topic) // even if the driver panics: the queue must go on
		}
		return c.send(ctx, topic, msgs)
	}
	if len(q.queue) > 0 && (q.msgs+len(msgs) > c.maxMsgs || q.bytes+size > c.maxBytes) {
		// This call would overflow the queue: the queue goes now as a full batch, led by
		// its first caller, and this call starts the next one.
		c.flushLocked(q, false)
	}
	me := &call{ctx: ctx, msgs: msgs, bytes: size, done: make(chan error, 1)}
	q.queue = append(q.queue, me)
	q.msgs += len(msgs)
	q.bytes += size
	if q.msgs >= c.maxMsgs || q.bytes >= c.maxBytes {
		c.flushLocked(q, false)
	}
	c.mu.Unlock()
	return c.wait(topic, q, me)
}

// flushLocked takes q's queue as one batch and hands it to its first caller to send. counted
// marks a batch that was not full: it counts toward the topic's batches in flight.
func (c *coalescer) flushLocked(q *topicQueue, counted bool) {
	batch := q.queue
	q.queue, q.msgs, q.bytes = nil, 0, 0
	for _, k := range batch {
		k.taken = true
	}
	if counted {
		q.flying++
	}
	lead := batch[0]
	lead.batch, lead.count = batch, counted
	lead.done <- errLead
}

// wait blocks until the call's result arrives, or until it must lead its batch, or until its
// context ends: then it leaves the queue if its messages were not taken yet.
func (c *coalescer) wait(topic string, q *topicQueue, me *call) error {
	select {
	case err := <-me.done:
		if err == errLead {
			return c.lead(topic, me)
		}
		return err
	case <-me.ctx.Done():
	}
	c.mu.Lock()
	if !me.taken {
		c.removeLocked(q, me)
		c.mu.Unlock()
		return fmt.Errorf("courier: publish to %q: nothing was sent: %w", topic, context.Cause(me.ctx))
	}
	leads := me.batch != nil
	c.mu.Unlock()
	if leads {
		// Others' messages ride on this batch: send it anyway.
		<-me.done
		return c.lead(topic, me)
	}
	return fmt.Errorf("courier: publish to %q: outcome unknown, the batch was in flight: %w", topic, context.Cause(me.ctx))
}

func (c *coalescer) removeLocked(q *topicQueue, me *call) {
	for i, k := range q.queue {
		if k == me {
			q.queue = append(q.queue[:i], q.queue[i+1:]...)
			q.msgs -= len(me.msgs)
			q.bytes -= me.bytes
			return
		}
	}
}

// lead sends the batch me heads, gives every caller in it its own result, and returns me's.
func (c *coalescer) lead(topic string, me *call) error {
	batch := me.batch
	if me.count {
		defer c.finish(topic)
	}
	served := false
	defer func() {
		if !served { // the driver panicked: the others must not wait forever
			for _, k := range batch {
				if k != me {
					k.done <- fmt.Errorf("courier: publish to %q: outcome unknown: %w: the adapter panicked", topic, ErrUnavailable)
				}
			}
		}
	}()
	var mine error
	if len(batch) == 1 {
		mine = c.send(me.ctx, topic, me.msgs)
	} else {
		n := 0
		for _, k := range batch {
			n += len(k.msgs)
		}
		msgs := make([]*message.Message, 0, n)
		for _, k := range batch {
			msgs = append(msgs, k.msgs...)
		}
		ctx, stop := batchContext(batch)
		err := c.send(ctx, topic, msgs)
		stop()
		off := 0
		for _, k := range batch {
			r := splitResult(err, topic, off, len(k.msgs))
			off += len(k.msgs)
			if k == me {
				mine = r
			} else {
				k.done <- r
			}
		}
	}
	served = true
	return mine
}

// finish ends the topic's batch that was not full: the queue, if any, goes next.
func (c *coalescer) finish(topic string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.topics[topic]
	q.flying--
	if len(q.queue) == 0 {
		if q.flying == 0 {
			delete(c.topics, topic)
		}
		return
	}
	c.flushLocked(q, true)
}

// batchContext returns the context a merged batch is sent with: it keeps the values of the
// first caller's context and ends only when every caller's context has ended, so that one
// caller giving up does not fail the others' messages.
func batchContext(batch []*call) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(batch[0].ctx))
	var left atomic.Int32
	left.Store(int32(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, k := range batch {
		stops[i] = context.AfterFunc(k.ctx, func() {
			if left.Add(-1) == 0 {
				cancel(context.Cause(k.ctx))
			}
		})
	}
	return ctx, func() {
		for _, s := range stops {
			s()
		}
		cancel(nil)
	}
}

// splitResult is the part of a merged batch's result that concerns the n messages from off.
func splitResult(err error, topic string, off, n int) error {
	if err == nil {
		return nil
	}
	var pe *PublishError
	if !errors.As(err, &pe) {
		return err
	}
	var failed []FailedMessage
	for _, f := range pe.Failed {
		if f.Index < 0 || f.Index >= pe.Total {
			return err // not attributable to a caller: everyone learns of it
		}
		if f.Index >= off && f.Index < off+n {
			f.Index -= off
			failed = append(failed, f)
		}
	}
	if failed == nil {
		return nil
	}
	return &PublishError{Topic: topic, Total: n, Failed: failed}
}
