package rabbitmq

import (
	"context"
	"errors"
	"fmt"

	"github.com/courierhq/courier/transport/driver"
)

// errReconnecting is what a receiver reports while its connection is being re-dialled and no
// dial failed yet.
var errReconnecting = errors.New("rabbitmq: connection lost; reconnecting")

// Ping implements driver.Pinger: it opens and closes a channel on the publishing connection,
// one round trip to the broker, waiting (bounded by ctx) while the connection reconnects.
func (d *Driver) Ping(ctx context.Context) error {
	if d.closed.Load() {
		return d.errClosed("ping")
	}
	endpoint := driver.RedactURL(d.cfg.URL)
	conn, _, err := d.pubSession.acquire(ctx)
	if err != nil {
		return fmt.Errorf("rabbitmq: ping %s: %w", endpoint, err)
	}
	err = d.rpc(ctx, func() error {
		ch, err := conn.Channel()
		if err != nil {
			return mapError("open channel", err)
		}
		return ch.Close()
	}, nil)
	if err != nil {
		return fmt.Errorf("rabbitmq: ping %s: %w", endpoint, err)
	}
	return nil
}

// DeleteSubscription implements driver.SubscriptionDeleter: it deletes the subscription's
// queue (with the messages in it). Deleting a queue that does not exist succeeds.
func (d *Driver) DeleteSubscription(ctx context.Context, topic, subscription string) error {
	if d.closed.Load() {
		return d.errClosed("delete subscription")
	}
	queue := d.cfg.QueueName(topic, subscription)
	conn, _, err := d.pubSession.acquire(ctx)
	if err != nil {
		return fmt.Errorf("rabbitmq: delete queue %q: %w", queue, err)
	}
	return d.rpc(ctx, func() error {
		ch, err := conn.Channel()
		if err != nil {
			return mapError("open channel", err)
		}
		defer func() { _ = ch.Close() }()
		if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
			return mapError(fmt.Sprintf("delete queue %q", queue), err)
		}
		return nil
	}, nil)
}

// Recovering implements driver.ReceiverStatus: the cause while the consuming connection is
// being re-dialled, nil while it is up.
func (r *receiver) Recovering() error { return r.d.subSession.recovering() }

// recovering returns why the session is reconnecting, or nil while its connection is up (or
// before it started, or after it closed).
func (s *session) recovering() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.started || (s.conn != nil && !s.conn.IsClosed()) {
		return nil
	}
	if s.lastErr != nil {
		return s.lastErr
	}
	return errReconnecting
}
