package memory

import (
	"context"
	"fmt"

	"github.com/courierhq/courier/transport/driver"
)

var _ driver.BacklogReporter = (*Broker)(nil)

// Backlog implements driver.BacklogReporter, exactly: Messages are the subscription's ready
// messages, InFlight those received and neither acked nor nacked, Delayed those nacked with
// a delay that has not passed, Consumers its open receivers.
func (b *Broker) Backlog(_ context.Context, topicName, subscription string) (driver.Backlog, error) {
	if b.closed.Load() {
		return driver.Backlog{}, fmt.Errorf("memory: backlog: %w", driver.ErrClosed)
	}
	t := b.topic(topicName, false)
	if t == nil {
		return driver.Backlog{}, fmt.Errorf("memory: %w: topic %q does not exist: %w",
			driver.ErrSubscriptionNotFound, topicName, driver.ErrTopicNotFound)
	}
	t.mu.RLock()
	q := t.byName[subscription]
	t.mu.RUnlock()
	if q == nil {
		return driver.Backlog{}, fmt.Errorf("memory: %w: topic %q has no subscription %q", driver.ErrSubscriptionNotFound, topicName, subscription)
	}
	q.mu.Lock()
	bl := driver.Backlog{Messages: int64(q.len()), Delayed: int64(len(q.timers))}
	q.mu.Unlock()
	bl.InFlight = max(q.held.Load(), 0)
	bl.Consumers = int(max(q.consumers.Load(), 0))
	return bl, nil
}
