package rabbitmq

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/transport/driver"
)

var _ driver.BacklogReporter = (*Driver)(nil)

// Backlog implements driver.BacklogReporter with a passive queue.declare of the
// subscription's queue (Config.QueueName), one round trip that creates nothing. AMQP's answer
// holds two counts, exact at that moment:
//
//   - Messages: the queue's ready messages (message-count);
//   - Consumers: the consumers attached to it (consumer-count).
//
// It does not hold the messages delivered and not yet acknowledged, nor those waiting in the
// subscription's delay queues (<queue>.delay.<ms>) for a retry: both only appear in the
// management plugin's HTTP API, which the adapter does not use, so InFlight and Delayed are
// driver.BacklogUnknown. A queue that does not exist is ErrSubscriptionNotFound.
func (d *Driver) Backlog(ctx context.Context, topic, subscription string) (driver.Backlog, error) {
	if d.closed.Load() {
		return driver.Backlog{}, d.errClosed("backlog")
	}
	queue := d.cfg.QueueName(topic, subscription)
	if err := checkName("queue", queue); err != nil {
		return driver.Backlog{}, err
	}
	conn, _, err := d.pubSession.acquire(ctx)
	if err != nil {
		return driver.Backlog{}, fmt.Errorf("rabbitmq: backlog of queue %q: %w", queue, err)
	}
	var q amqp.Queue
	err = d.rpc(ctx, func() error {
		ch, err := conn.Channel()
		if err != nil {
			return mapError("open channel", err)
		}
		defer func() { _ = ch.Close() }()
		q, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		switch {
		case err == nil:
			return nil
		case codeOf(err) == codeNotFound:
			return wrapError(driver.ErrSubscriptionNotFound, err, "%v: queue %q does not exist",
				driver.ErrSubscriptionNotFound, queue)
		default:
			return mapError(fmt.Sprintf("inspect queue %q", queue), err)
		}
	}, nil)
	if err != nil {
		return driver.Backlog{}, err
	}
	return driver.Backlog{
		Messages:  int64(q.Messages),
		InFlight:  driver.BacklogUnknown,
		Delayed:   driver.BacklogUnknown,
		Consumers: q.Consumers,
	}, nil
}
