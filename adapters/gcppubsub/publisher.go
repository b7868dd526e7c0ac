package gcppubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/courierhq/courier/transport/driver"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/message"
)

// topicPublisher is the client's publisher for one topic, made once per connection.
type topicPublisher struct {
	ready chan struct{} // closed once p or err is set
	p     *pubsub.Publisher
	err   error
	// recheck is set when Pub/Sub said the topic does not exist (deleted since it was
	// made): the next Publish creates it again, when creation is on.
	recheck atomic.Bool
}

// publisher returns the publisher for a topic, creating the topic first when allowed.
func (d *Driver) publisher(ctx context.Context, topic, id string) (*topicPublisher, error) {
	d.mu.Lock()
	if d.closed.Load() {
		d.mu.Unlock()
		return nil, driver.ErrClosed
	}
	tp := d.pubs[id]
	if tp == nil {
		tp = &topicPublisher{ready: make(chan struct{})}
		d.pubs[id] = tp
		d.mu.Unlock()
		tp.p, tp.err = d.newPublisher(ctx, topic, id)
		if tp.err != nil {
			d.mu.Lock()
			if d.pubs != nil {
				delete(d.pubs, id) // the next Publish tries again
			}
			d.mu.Unlock()
		}
		close(tp.ready)
	} else {
		d.mu.Unlock()
		select {
		case <-tp.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("pubsub: publish to %q: %w", topic, ctx.Err())
		}
	}
	if tp.err != nil {
		return nil, tp.err
	}
	if !d.cfg.DisableCreate && tp.recheck.CompareAndSwap(true, false) {
		if err := d.ensureTopic(ctx, topic, id); err != nil {
			tp.recheck.Store(true)
			return nil, err
		}
	}
	return tp, nil
}

func (d *Driver) newPublisher(ctx context.Context, topic, id string) (*pubsub.Publisher, error) {
	if !d.cfg.DisableCreate {
		if err := d.ensureTopic(ctx, topic, id); err != nil {
			return nil, err
		}
	}
	p := d.client.Publisher(d.topicPath(id))
	p.EnableMessageOrdering = true
	s := &p.PublishSettings
	s.DelayThreshold = d.cfg.PublishDelay
	s.CountThreshold = d.cfg.PublishBatch
	s.FlowControlSettings = pubsub.FlowControlSettings{
		MaxOutstandingMessages: d.cfg.PublishMaxOutstanding,
		MaxOutstandingBytes:    d.cfg.PublishMaxOutstandingBytes,
		LimitExceededBehavior:  pubsub.FlowControlBlock,
	}
	return p, nil
}

// ensureTopic creates a topic unless it exists. A publisher allowed to publish but not to
// create topics gets PermissionDenied here even for a topic that exists; then the adapter
// carries on and lets Publish (or CreateSubscription) say whether the topic is there.
func (d *Driver) ensureTopic(ctx context.Context, topic, id string) error {
	_, err := d.client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: d.topicPath(id)})
	switch status.Code(err) {
	case codes.OK:
		d.log.Debug("courier: created Pub/Sub topic", "pubsub.topic", id)
		return nil
	case codes.AlreadyExists:
		return nil
	case codes.PermissionDenied:
		d.log.Debug("courier: not allowed to create Pub/Sub topics; assuming the topic exists", "pubsub.topic", id)
		return nil
	case codes.NotFound:
		// CreateTopic answers NotFound only when the project itself is not there.
		return fmt.Errorf("pubsub: create topic %q: %w: project %q not found, or not visible to these credentials: %w",
			topic, driver.ErrInvalidConfig, d.cfg.Project, err)
	}
	return wrap(ctx, fmt.Sprintf("create topic %q", topic), err, driver.ErrTopicNotFound, driver.ErrInvalidConfig)
}

// Publish implements driver.Driver. It hands every message to the client's publisher for
// the topic (batching, ordering keys, flow control that blocks) and waits for each result.
//
// Ordering keys: when a message with key K fails, the client pauses K. Every later message
// of K in the same call then fails too, reported as not sent (so nothing of this call
// overtakes the failed message), and K is resumed before Publish returns, so that the next
// Publish on K goes out. Once the caller retries the failed messages, messages on K that
// other goroutines published after the resume may already be ahead of them: across calls,
// order after a failure is the caller's to restore.
func (d *Driver) Publish(ctx context.Context, topic string, msgs []*message.Message) error {
	if d.closed.Load() {
		return fmt.Errorf("pubsub: publish to %q: %w", topic, driver.ErrClosed)
	}
	id, err := d.topicID(topic)
	if err != nil {
		return fmt.Errorf("pubsub: publish: %w", err)
	}
	tp, err := d.publisher(ctx, topic, id)
	if err != nil {
		return err
	}
	c := &publishCall{msgs: msgs}
	results := c.submit(ctx, tp.p)
	c.await(ctx, topic, tp, results)
	for key := range c.firstFail {
		tp.p.ResumePublish(key)
	}
	if c.failed == nil {
		return nil
	}
	slices.SortFunc(c.failed, func(a, b driver.FailedMessage) int { return a.Index - b.Index })
	return &driver.PublishError{Topic: topic, Total: len(msgs), Failed: c.failed}
}

// publishCall is the state of one Publish: the messages that failed so far and, per ordering
// key, the first of them.
type publishCall struct {
	msgs   []*message.Message
	failed []driver.FailedMessage
	// firstFail maps an ordering key to the index of its first failed message.
	firstFail map[string]int
}

// fail records that message i failed with err.
func (c *publishCall) fail(i int, err error) {
	m := c.msgs[i]
	c.failed = append(c.failed, driver.FailedMessage{Index: i, ID: m.ID, Err: err})
	if m.Key != "" {
		if c.firstFail == nil {
			c.firstFail = map[string]int{}
		}
		if _, seen := c.firstFail[m.Key]; !seen {
			c.firstFail[m.Key] = i
		}
	}
}

// notSent is the error of a message held back because an earlier one with its key failed.
func (c *publishCall) notSent(first int) error {
	f := c.failed[slices.IndexFunc(c.failed, func(f driver.FailedMessage) bool { return f.Index == first })]
	return fmt.Errorf("pubsub: not published, to keep key order: message %d with the same key failed first: %w", first, f.Err)
}

// submit hands every message to p, except those whose key already failed in this call and
// those that do not marshal. results[i] is nil for a message not handed over.
func (c *publishCall) submit(ctx context.Context, p *pubsub.Publisher) []*pubsub.PublishResult {
	results := make([]*pubsub.PublishResult, len(c.msgs))
	var tf timeFormatter
	for i, m := range c.msgs {
		if first, blocked := c.firstFail[m.Key]; blocked && m.Key != "" {
			c.fail(i, c.notSent(first))
			continue
		}
		pm, err := marshal(m, &tf)
		if err != nil {
			c.fail(i, err)
			continue
		}
		results[i] = p.Publish(ctx, pm)
	}
	return results
}

// await waits for each result, in order, and records the messages that failed.
func (c *publishCall) await(ctx context.Context, topic string, tp *topicPublisher, results []*pubsub.PublishResult) {
	for i, r := range results {
		if r == nil {
			continue
		}
		if _, err := r.Get(ctx); err != nil {
			c.resultFailed(ctx, topic, tp, i, err)
		}
	}
}

// resultFailed records that the publish of message i failed with err, as the client
// reported it.
func (c *publishCall) resultFailed(ctx context.Context, topic string, tp *topicPublisher, i int, err error) {
	m := c.msgs[i]
	var paused pubsub.ErrPublishingPaused
	switch first, blocked := c.firstFail[m.Key]; {
	case errors.Is(err, context.DeadlineExceeded):
		c.fail(i, fmt.Errorf("pubsub: no publish result before the deadline; the message may or may not have been published: %w: %w", driver.ErrUnavailable, err))
	case errors.Is(err, context.Canceled):
		c.fail(i, fmt.Errorf("pubsub: publishing cancelled before its result; the message may or may not have been published: %w", err))
	case blocked && m.Key != "":
		c.fail(i, c.notSent(first))
	case errors.As(err, &paused):
		// Paused by a failure outside this call (another goroutine's, or one whose
		// result an earlier call stopped waiting for). Resumed before Publish returns.
		c.fail(i, fmt.Errorf("pubsub: not sent: key %q was paused by an earlier failed publish; retry: %w", m.Key, driver.ErrUnavailable))
	default:
		refused := driver.ErrInvalidMessage // InvalidArgument: Pub/Sub will never take it
		if status.Code(err) == codes.FailedPrecondition {
			refused = driver.ErrNacked // the topic cannot take messages now
		}
		c.fail(i, wrap(ctx, fmt.Sprintf("publish to %q", topic), err, driver.ErrTopicNotFound, refused))
		if status.Code(err) == codes.NotFound {
			tp.recheck.Store(true)
		}
	}
}
