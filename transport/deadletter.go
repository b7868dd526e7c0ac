package transport

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

// DeadLetterMessage returns the copy of m that goes to a dead-letter topic: same ID, key,
// payload and headers, plus the courier-dlq-* headers describing f. Times are RFC 3339 UTC.
func DeadLetterMessage(m *message.Message, f Failure) *message.Message {
	d := m.Clone()
	d.PublishTime = time.Time{}
	d.Topic, d.Subscription, d.Attempt, d.BrokerTime = "", "", 0, time.Time{}
	reason := "unknown"
	if f.Err != nil {
		reason = f.Err.Error()
	}
	d.SetHeader(message.HeaderDeadLetterReason, headerValue(reason))
	d.SetHeader(message.HeaderDeadLetterPermanent, strconv.FormatBool(f.Permanent))
	d.SetHeader(message.HeaderDeadLetterAttempts, strconv.Itoa(f.Attempts))
	d.SetHeader(message.HeaderDeadLetterTopic, f.Topic)
	d.SetHeader(message.HeaderDeadLetterSubscription, f.Subscription)
	if !f.FirstFailure.IsZero() {
		d.SetHeader(message.HeaderDeadLetterFirstFailure, f.FirstFailure.UTC().Format(time.RFC3339Nano))
	}
	if !f.LastFailure.IsZero() {
		d.SetHeader(message.HeaderDeadLetterLastFailure, f.LastFailure.UTC().Format(time.RFC3339Nano))
	}
	d.SetHeader(message.HeaderAttempt, strconv.Itoa(f.Attempts))
	var dh DeadLetterHeaderer
	if f.Err != nil && errors.As(f.Err, &dh) {
		for k, v := range dh.DeadLetterHeaders() {
			if _, taken := d.Headers[k]; k != "" && !taken {
				d.SetHeader(k, headerValue(v))
			}
		}
	}
	return d
}

// DeadLetterHeaderer is implemented by errors that describe themselves in headers of the
// dead-letter copy (the schema middleware's violation, say). DeadLetterMessage adds the headers
// of the first such error in the chain (errors.As), without overwriting a header the copy
// already has, each value cut like the reason.
type DeadLetterHeaderer interface {
	DeadLetterHeaders() map[string]string
}

// maxDeadLetterHeader bounds the values DeadLetterMessage writes: it fits every broker's
// header limit.
const maxDeadLetterHeader = 512

// headerValue makes s a header value every broker carries: valid UTF-8, at most
// maxDeadLetterHeader bytes, cut at a rune boundary with "..." when longer.
func headerValue(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxDeadLetterHeader {
		return s
	}
	cut := maxDeadLetterHeader - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// DefaultDeadLetterTopic returns the dead-letter topic for topic on the connection's broker:
// topic + ".dlq", or the adapter's own form where its names need one (driver.DeadLetterNamer).
func (c *Conn) DefaultDeadLetterTopic(topic string) string {
	if n, ok := c.drv.(driver.DeadLetterNamer); ok {
		return n.DeadLetterTopic(topic)
	}
	return topic + DeadLetterSuffix
}

// TopicDeadLetterer publishes dead-lettered messages to a topic through a connection, with
// the headers DeadLetterMessage adds. It is the engine's default, on the subscriber's own
// connection; pass one built on another Conn to dead-letter to another broker.
type TopicDeadLetterer struct {
	// Conn to publish on.
	Conn *Conn
	// Topic receives the messages; empty means Conn.DefaultDeadLetterTopic(original topic).
	Topic string
}

// DeadLetter publishes the dead-letter copy of m and waits for the broker to accept it.
func (t TopicDeadLetterer) DeadLetter(ctx context.Context, m *message.Message, f Failure) error {
	topic := t.Topic
	if topic == "" {
		topic = t.Conn.DefaultDeadLetterTopic(f.Topic)
	}
	if err := t.Conn.Publish(ctx, topic, DeadLetterMessage(m, f)); err != nil {
		return fmt.Errorf("courier: dead-letter message %s to %q: %w", m.ID, topic, err)
	}
	return nil
}
