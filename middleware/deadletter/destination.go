package deadletter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// ErrInvalidConfig is wrapped by the errors of a Config or options that cannot work.
var ErrInvalidConfig = errors.New("deadletter: invalid configuration")

// DefaultPublishTimeout bounds one dead-letter publish unless Config.PublishTimeout says
// otherwise.
const DefaultPublishTimeout = 30 * time.Second

// Config configures a Destination.
type Config struct {
	// Conn receives the dead-letter copies; it may be another broker than the subscriber's.
	// Required.
	Conn *transport.Conn

	// Topic receives every copy. Default: Conn.DefaultDeadLetterTopic(original topic), i.e.
	// "<topic>.dlq".
	Topic string

	// DisableRetain skips creating the retaining subscription. By default, before the first
	// copy goes to a dead-letter topic, the subscription "<failing subscription>.dlq" is
	// created on it (what Redrive and `courier dlq` read), because RabbitMQ, Pub/Sub and
	// memory:// drop messages published to a topic nobody subscribed to. Disable it when the
	// topic is retained otherwise (Kafka, SQS, an existing subscription).
	DisableRetain bool

	// PublishTimeout bounds each publish. Default DefaultPublishTimeout (30s).
	PublishTimeout time.Duration

	// OnDeadLetter, when set, is called after each copy was stored, with the original message
	// and the failure: the place for metrics and alerts. It must not keep m.
	OnDeadLetter func(m *message.Message, f transport.Failure)
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Conn == nil:
		return fmt.Errorf("%w: Config.Conn is required", ErrInvalidConfig)
	case c.PublishTimeout < 0:
		return fmt.Errorf("%w: PublishTimeout %v is negative", ErrInvalidConfig, c.PublishTimeout)
	}
	if c.Topic != "" {
		if err := transport.ValidateName(c.Topic); err != nil {
			return fmt.Errorf("%w: Topic: %w", ErrInvalidConfig, err)
		}
	}
	return nil
}

// Destination is a transport.DeadLetterer that publishes dead-letter copies to a topic on a
// connection of your choice: transport.TopicDeadLetterer (the one implementation, which fits
// the copy to that connection's broker, see transport.DeadLetterCopy) with the retaining
// subscription made first and a timeout. Use one per subscription, as
// SubscriberConfig.DeadLetter. It is safe for concurrent use.
type Destination struct {
	cfg      Config
	retained sync.Map // "topic\x00subscription" → struct{}
}

// New returns a Destination for cfg.
func New(cfg Config) (*Destination, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	return &Destination{cfg: cfg}, nil
}

// TopicFor returns the dead-letter topic of messages failed on topic.
func (d *Destination) TopicFor(topic string) string {
	if d.cfg.Topic != "" {
		return d.cfg.Topic
	}
	return d.cfg.Conn.DefaultDeadLetterTopic(topic)
}

// DeadLetter implements transport.DeadLetterer: it makes sure the copy will be retained,
// publishes it and waits for the broker to accept it. Where the payload cannot fit the
// destination, it stores a notice and fails (see transport.TopicDeadLetterer): the engine
// keeps the original.
func (d *Destination) DeadLetter(ctx context.Context, m *message.Message, f transport.Failure) error {
	topic := d.TopicFor(f.Topic)
	ctx, cancel := context.WithTimeout(ctx, d.cfg.PublishTimeout)
	defer cancel()
	if !d.cfg.DisableRetain && f.Subscription != "" {
		if err := d.retain(ctx, topic, f.Subscription+transport.DeadLetterSuffix); err != nil {
			return fmt.Errorf("deadletter: message %s: retain %q on %q: %w", m.ID, f.Subscription+transport.DeadLetterSuffix, topic, err)
		}
	}
	t := transport.TopicDeadLetterer{Conn: d.cfg.Conn, Topic: topic, OnDeadLetter: d.cfg.OnDeadLetter}
	return t.DeadLetter(ctx, m, f)
}

// retain creates subscription on topic once per Destination.
func (d *Destination) retain(ctx context.Context, topic, subscription string) error {
	key := topic + "\x00" + subscription
	if _, ok := d.retained.Load(key); ok {
		return nil
	}
	if err := d.cfg.Conn.EnsureSubscription(ctx, topic, subscription); err != nil {
		return err
	}
	d.retained.Store(key, struct{}{})
	return nil
}

// EnsureSubscription makes sure subscription exists on topic without consuming anything.
//
// Deprecated: use conn.EnsureSubscription.
func EnsureSubscription(ctx context.Context, conn *transport.Conn, topic, subscription string) error {
	return conn.EnsureSubscription(ctx, topic, subscription)
}
