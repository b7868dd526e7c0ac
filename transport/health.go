package transport

import (
	"context"
	"fmt"

	"github.com/courierhq/courier/transport/driver"
)

// Ping checks that the broker answers, with one cheap round trip where the adapter can make
// one (driver.Pinger: RabbitMQ opens and closes a channel, Kafka asks for metadata, SQS lists
// one queue, Pub/Sub looks a topic up). An adapter without a round trip (memory://) is alive
// while the connection is open. Use it for readiness probes, bounded by ctx's deadline.
//
// Errors wrap ErrClosed once the connection is closed, else the adapter's error, which names
// the endpoint (without credentials) and wraps ErrUnavailable when the broker is unreachable.
func (c *Conn) Ping(ctx context.Context) error {
	if c.closed.Load() {
		return fmt.Errorf("courier: ping %s: %w", c.caps.Name, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("courier: ping %s: %w", c.caps.Name, err)
	}
	p, ok := c.drv.(driver.Pinger)
	if !ok {
		return nil
	}
	if err := p.Ping(ctx); err != nil {
		return fmt.Errorf("courier: ping %s: %w", c.caps.Name, err)
	}
	return nil
}

// DeleteSubscription deletes subscription on topic where the adapter can
// (driver.SubscriptionDeleter); it returns an error wrapping ErrUnsupported where it cannot.
// Deleting a subscription that does not exist is not an error. Stop its subscribers first.
func (c *Conn) DeleteSubscription(ctx context.Context, topic, subscription string) error {
	if c.closed.Load() {
		return fmt.Errorf("courier: delete subscription: %w", ErrClosed)
	}
	d, ok := c.drv.(driver.SubscriptionDeleter)
	if !ok {
		return fmt.Errorf("courier: delete subscription %s/%s: %w: %s cannot delete subscriptions", topic, subscription, ErrUnsupported, c.caps.Name)
	}
	if err := d.DeleteSubscription(ctx, topic, subscription); err != nil {
		return fmt.Errorf("courier: delete subscription %s/%s: %w", topic, subscription, err)
	}
	return nil
}

// State is where a Subscriber is in its life, for liveness and readiness probes.
type State int

const (
	// StateIdle: subscribed, Run not called yet.
	StateIdle State = iota
	// StateRunning: Run is consuming.
	StateRunning
	// StateReconnecting: Run is on, but the adapter lost its connection and is recovering
	// (reported by adapters that recover themselves; Status.Err says why).
	StateReconnecting
	// StateStopped: Run returned, or the subscriber was closed. Status.Err is Run's error,
	// nil after a clean stop.
	StateStopped
)

// String returns "idle", "running", "reconnecting" or "stopped".
func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateRunning:
		return "running"
	case StateReconnecting:
		return "reconnecting"
	case StateStopped:
		return "stopped"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Status is a Subscriber's state and its last error.
type Status struct {
	State State
	// Err is the last error: while reconnecting, why the connection was lost; once stopped,
	// what Run returned (nil after a clean stop).
	Err error
}

// Status reports the subscriber's state and last error. It is cheap and safe to call from
// any goroutine (a probe handler).
func (s *Subscriber) Status() Status {
	s.mu.Lock()
	st, err := s.state, s.runErr
	s.mu.Unlock()
	switch st {
	case subIdle:
		return Status{State: StateIdle}
	case subDone:
		return Status{State: StateStopped, Err: err}
	}
	if rs, ok := s.recv.(driver.ReceiverStatus); ok {
		if cause := rs.Recovering(); cause != nil {
			return Status{State: StateReconnecting, Err: cause}
		}
	}
	return Status{State: StateRunning}
}

// State is Status().State.
func (s *Subscriber) State() State { return s.Status().State }
