package memory

import (
	"context"

	"github.com/courierhq/courier/transport/driver"
)

var _ driver.SubscriptionLister = (*Broker)(nil)

// Subscriptions implements driver.SubscriptionLister: the subscriptions made on topic, exactly.
func (b *Broker) Subscriptions(_ context.Context, topicName string) ([]string, error) {
	if b.closed.Load() {
		return nil, driver.ErrClosed
	}
	t := b.topic(topicName, false)
	if t == nil {
		return nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.byName))
	for name := range t.byName {
		names = append(names, name)
	}
	return names, nil
}
