package transport

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport/driver"
)

// DeadLetterSuffix is appended to a topic to name its default dead-letter topic, and to a
// subscription to name the subscription that retains the dead-lettered messages.
const DeadLetterSuffix = ".dlq"

// Failure describes why a message is being dead-lettered.
type Failure struct {
	// Err is the last error the handler returned.
	Err error
	// Permanent is true when Err was marked permanent (no retries were made).
	Permanent bool
	// Attempts is the number of delivery attempts made.
	Attempts int
	// Topic and Subscription the message was consumed from.
	Topic, Subscription string
	// FirstFailure is the first failure this subscriber observed for the message;
	// LastFailure the one that ended its retries.
	FirstFailure, LastFailure time.Time
}

// DeadLetterer takes a message whose handling failed for good. It returns nil only once the
// message is safely stored elsewhere; only then does the engine acknowledge the original. On
// error the engine keeps the message and tries again later, so nothing is lost.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, m *message.Message, f Failure) error
}

// DeadLetterFunc adapts a function to DeadLetterer.
type DeadLetterFunc func(ctx context.Context, m *message.Message, f Failure) error

// DeadLetter calls fn.
func (fn DeadLetterFunc) DeadLetter(ctx context.Context, m *message.Message, f Failure) error {
	return fn(ctx, m, f)
}

// DeadLetterHeaderer is implemented by errors that describe themselves in headers of the
// dead-letter copy (the schema middleware's violation, say). DeadLetterMessage adds the headers
// of the first such error in the chain (errors.As), without overwriting a header the copy
// already has, each value cut like the reason.
type DeadLetterHeaderer interface {
	DeadLetterHeaders() map[string]string
}

// DefaultDeadLetterTopic returns the dead-letter topic for topic on the connection's broker:
// topic + ".dlq", or the adapter's own form where its names need one (driver.DeadLetterNamer).
func (c *Conn) DefaultDeadLetterTopic(topic string) string {
	if n, ok := c.drv.(driver.DeadLetterNamer); ok {
		return n.DeadLetterTopic(topic)
	}
	return topic + DeadLetterSuffix
}

// TopicDeadLetterer is Courier's dead-letterer: it publishes the dead-letter copy
// (DeadLetterCopy, fitted to the connection's Capabilities) to a topic and waits for the
// broker to accept it. It is the engine's default, on the subscriber's own connection;
// middleware/deadletter's Destination adds retention and configuration around it.
//
// When the payload cannot fit the destination even without the original's headers (a
// dead-letter topic on a broker with a smaller limit), it stores a notice instead — the copy
// without payload, HeaderDeadLetterPayloadOmitted set — and returns an error wrapping
// ErrMessageTooLarge: the engine then keeps the original (never acknowledged unhandled,
// never truncated) and tries again after its backoff, storing one more notice each time.
type TopicDeadLetterer struct {
	// Conn to publish on.
	Conn *Conn
	// Topic receives the messages; empty means Conn.DefaultDeadLetterTopic(original topic).
	Topic string
	// PublishTimeout bounds each publish; 0 means only the caller's context does.
	PublishTimeout time.Duration
	// OnDeadLetter, when set, is called after each copy was stored, with the original
	// message and the failure: the place for metrics and alerts. It must not keep m.
	OnDeadLetter func(m *message.Message, f Failure)
}

// DeadLetter publishes the dead-letter copy of m and waits for the broker to accept it.
func (t TopicDeadLetterer) DeadLetter(ctx context.Context, m *message.Message, f Failure) error {
	topic := t.Topic
	if topic == "" {
		topic = t.Conn.DefaultDeadLetterTopic(f.Topic)
	}
	if t.PublishTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.PublishTimeout)
		defer cancel()
	}
	caps := t.Conn.Capabilities()
	c, rep := buildCopy(m, f, caps, false)
	err := t.Conn.Publish(ctx, topic, c)
	if err != nil && !rep.noBody && errors.Is(err, ErrMessageTooLarge) {
		// The broker counts more than message.Size (SQS's base64 bodies): store the notice.
		c, rep = buildCopy(m, f, caps, true)
		err = t.Conn.Publish(ctx, topic, c)
	}
	if err != nil {
		return fmt.Errorf("courier: dead-letter message %s to %q: %w", m.ID, topic, err)
	}
	if rep.noBody {
		return fmt.Errorf("courier: dead-letter message %s to %q: %w: its payload of %d bytes does not fit %s; a notice without it was stored and the message is kept",
			m.ID, topic, ErrMessageTooLarge, len(m.Payload), caps.Name)
	}
	if t.OnDeadLetter != nil {
		t.OnDeadLetter(m, f)
	}
	return nil
}

// EnsureSubscription makes sure subscription exists on topic, creating it where the adapter
// may, so that messages published to topic from now on are retained for it, without
// consuming anything. It is how the dead-letter subscription "<subscription>.dlq" is made
// before the first copy is published (RabbitMQ, Pub/Sub and memory:// drop messages nobody
// subscribed to).
func (c *Conn) EnsureSubscription(ctx context.Context, topic, subscription string) error {
	p, err := c.Pull(ctx, topic, subscription, PullConfig{Prefetch: 1})
	if err != nil {
		return err
	}
	return p.Close(ctx)
}
