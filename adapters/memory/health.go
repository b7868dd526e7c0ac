package memory

import (
	"context"
	"fmt"

	"github.com/courierhq/courier/transport/driver"
)

// Ping implements driver.Pinger: the in-process broker answers while it is open.
func (b *Broker) Ping(context.Context) error {
	if b.closed.Load() {
		return fmt.Errorf("memory: ping: %w", driver.ErrClosed)
	}
	return nil
}

// DeleteSubscription implements driver.SubscriptionDeleter: the subscription stops receiving
// the topic's messages and its waiting messages are dropped. Receivers still attached see it
// as closed. Deleting one that does not exist returns nil.
func (b *Broker) DeleteSubscription(_ context.Context, topicName, subscription string) error {
	if b.closed.Load() {
		return fmt.Errorf("memory: delete subscription: %w", driver.ErrClosed)
	}
	t := b.topic(topicName, false)
	if t == nil {
		return nil
	}
	t.mu.Lock()
	q := t.byName[subscription]
	if q != nil {
		delete(t.byName, subscription)
		subs := make([]*queue, 0, len(t.subs))
		for _, s := range t.subs {
			if s != q {
				subs = append(subs, s)
			}
		}
		t.subs = subs
	}
	t.mu.Unlock()
	if q == nil {
		return nil
	}
	q.mu.Lock()
	q.closed = true
	for tm := range q.timers {
		tm.Stop()
	}
	q.timers = nil
	q.mu.Unlock()
	q.signal()
	return nil
}
