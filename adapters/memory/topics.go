package memory

import (
	"context"
	"fmt"

	"github.com/courierhq/courier/transport/driver"
)

// DeleteTopic implements driver.TopicDeleter: the topic's subscriptions are deleted (as by
// DeleteSubscription) and the topic forgotten. A topic that does not exist is not an error.
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	if b.closed.Load() {
		return fmt.Errorf("memory: delete topic: %w", driver.ErrClosed)
	}
	t := b.topic(name, false)
	if t == nil {
		return nil
	}
	t.mu.Lock()
	subs := make([]string, 0, len(t.byName))
	for s := range t.byName {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	for _, s := range subs {
		if err := b.DeleteSubscription(ctx, name, s); err != nil {
			return err
		}
	}
	b.mu.Lock()
	if b.topics[name] == t {
		delete(b.topics, name)
	}
	b.mu.Unlock()
	return nil
}
