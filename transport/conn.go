package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/courierhq/courier/transport/driver"

	"github.com/courierhq/courier/message"
)

// ConnConfig configures a Conn. The zero value is valid.
type ConnConfig struct {
	// Logger receives the connection's and its subscribers' log lines. Default: slog.Default().
	Logger *slog.Logger

	// Observer is told what the connection's publishers and subscribers do (tracing,
	// metrics: see package otelcourier); PublisherConfig.Observer and
	// SubscriberConfig.Observer override it. Default none: nothing is observed, at no cost.
	Observer Observer
}

// Validate reports whether the configuration can be used. The zero value is valid.
func (c ConnConfig) Validate() error { return nil }

// logger returns Logger, or slog.Default() when it is nil.
func (c ConnConfig) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// Conn is a connection to one broker: the value users hold. It publishes (Publish, or a
// Publisher with middleware) and consumes (Subscribe). A Conn is safe for concurrent use.
// Close it when done: it stops its subscribers, then the adapter's connection.
type Conn struct {
	drv  driver.Driver
	caps Capabilities
	log  *slog.Logger
	pub  *Publisher
	ids  idGen
	obs  Observer

	closed atomic.Bool
	mu     sync.Mutex
	subs   map[*Subscriber]struct{}
}

// NewConn wraps an adapter's driver.Driver. Adapters' typed constructors use it; most programs use
// Open instead.
func NewConn(d driver.Driver, cfg ConnConfig) *Conn {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Conn{drv: d, caps: d.Capabilities(), subs: map[*Subscriber]struct{}{}, obs: cfg.Observer}
	c.log = log.With("courier.broker", c.caps.Name)
	c.pub = c.Publisher(PublisherConfig{})
	return c
}

// Capabilities describes what the connected broker can do.
func (c *Conn) Capabilities() Capabilities { return c.caps }

// Driver returns the adapter behind the connection; adapters document which of their types
// it is, for use with a type assertion (the escape hatch to the native client).
func (c *Conn) Driver() driver.Driver { return c.drv }

// Publish publishes msgs to topic without middleware; see Publisher.Publish.
func (c *Conn) Publish(ctx context.Context, topic string, msgs ...*message.Message) error {
	return c.pub.Publish(ctx, topic, msgs...)
}

// Close stops every subscriber of the connection (each drains as its DrainTimeout allows,
// bounded by ctx), then closes the adapter. Further calls return ErrClosed.
func (c *Conn) Close(ctx context.Context) error {
	if !c.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	c.mu.Lock()
	subs := make([]*Subscriber, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	var errs []error
	for _, s := range subs {
		if err := s.Close(ctx); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
	}
	if err := c.drv.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("courier: close %s: %w", c.caps.Name, err))
	}
	return errors.Join(errs...)
}

func (c *Conn) track(s *Subscriber) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	c.subs[s] = struct{}{}
	return nil
}

func (c *Conn) untrack(s *Subscriber) {
	c.mu.Lock()
	delete(c.subs, s)
	c.mu.Unlock()
}
