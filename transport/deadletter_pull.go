package transport

import (
	"context"
	"fmt"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport/driver"
)

// PullConfig configures a Puller. The zero value is valid.
type PullConfig struct {
	// Prefetch is how many unacknowledged messages the Puller holds at most. Default 256.
	Prefetch int
}

// DefaultPullPrefetch is PullConfig.Prefetch's default.
const DefaultPullPrefetch = 256

// Validate reports a configuration that cannot work.
func (c PullConfig) Validate() error {
	if c.Prefetch < 0 {
		return fmt.Errorf("%w: Prefetch %d is negative", ErrInvalidConfig, c.Prefetch)
	}
	return nil
}

// Puller consumes a subscription by hand, without the engine: no middleware, retries,
// ordering or dead-lettering — the caller receives batches and acknowledges or releases each
// message itself. Tools use it (deadletter.Redrive, `courier dlq`); applications want
// Subscribe. Receive is called from one goroutine; Ack and Release may run concurrently.
type Puller struct {
	conn        *Conn
	recv        driver.Receiver
	topic, name string
}

// Pull attaches to subscription on topic (creating it where the adapter may, like
// Subscribe) and returns a Puller. Close it when done.
func (c *Conn) Pull(ctx context.Context, topic, subscription string, cfg PullConfig) (*Puller, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("courier: pull: %w", ErrClosed)
	}
	if err := ValidateName(topic); err != nil {
		return nil, fmt.Errorf("courier: pull: topic: %w", err)
	}
	if err := ValidateName(subscription); err != nil {
		return nil, fmt.Errorf("courier: pull: subscription: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("courier: pull %s/%s: %w", topic, subscription, err)
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = DefaultPullPrefetch
	}
	r, err := c.drv.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Subscription: subscription, Prefetch: cfg.Prefetch})
	if err != nil {
		return nil, fmt.Errorf("courier: pull %s/%s: %w", topic, subscription, err)
	}
	return &Puller{conn: c, recv: r, topic: topic, name: subscription}, nil
}

// Receive blocks until at least one message is available or ctx is done, then fills buf with
// up to len(buf) messages and returns how many. It returns ctx's error once ctx is done.
func (p *Puller) Receive(ctx context.Context, buf []*message.Message) (int, error) {
	if len(buf) == 0 {
		return 0, fmt.Errorf("courier: pull %s/%s: %w: empty buffer", p.topic, p.name, ErrInvalidConfig)
	}
	return p.recv.Receive(ctx, buf)
}

// Ack acknowledges msgs: the broker will not deliver them again.
func (p *Puller) Ack(ctx context.Context, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	return p.recv.Ack(ctx, msgs)
}

// Release gives m back without acknowledging it: the broker delivers it again at once where
// it redelivers (Capabilities.Redelivery); elsewhere (Kafka) it stays unacknowledged and comes
// back after a restart.
func (p *Puller) Release(ctx context.Context, m *message.Message) error {
	if !p.conn.caps.Redelivery {
		return nil
	}
	return p.recv.Nack(ctx, m, 0)
}

// Close stops consuming; messages neither acknowledged nor released become available again.
func (p *Puller) Close(ctx context.Context) error { return p.recv.Close(ctx) }
