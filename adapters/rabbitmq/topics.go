package rabbitmq

import (
	"context"
	"fmt"
)

// DeleteTopic implements driver.TopicDeleter: it deletes the topic's exchange. Queues bound to
// it stay, unbound (delete them first with DeleteSubscription). Deleting an exchange that does
// not exist is not an error (RabbitMQ 3.x and later).
func (d *Driver) DeleteTopic(ctx context.Context, topic string) error {
	if d.closed.Load() {
		return d.errClosed("delete topic")
	}
	conn, _, err := d.pubSession.acquire(ctx)
	if err != nil {
		return fmt.Errorf("rabbitmq: delete exchange %q: %w", topic, err)
	}
	return d.rpc(ctx, func() error {
		ch, err := conn.Channel()
		if err != nil {
			return mapError("open channel", err)
		}
		defer func() { _ = ch.Close() }()
		if err := ch.ExchangeDelete(topic, false, false); err != nil {
			return mapError(fmt.Sprintf("delete exchange %q", topic), err)
		}
		return nil
	}, nil)
}
