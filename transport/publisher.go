package transport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport/driver"
)

// PublisherConfig configures a Publisher. The zero value is valid.
type PublisherConfig struct {
	// Middleware wraps every Publish, outermost first (see message.ChainPublish). Publish
	// middleware may replace messages in the batch (encrypting a copy, say) but must keep the
	// batch's length and order, so that failures can be reported by position; to refuse a
	// batch it returns an error. It runs after IDs and publish times are set and before the
	// size check, so it sees final IDs and its additions count toward the broker's limit.
	Middleware []message.PublishMiddleware

	// CoalesceMessages bounds how many messages of concurrent Publish calls to one topic are
	// merged into one broker batch (see Publisher.Publish). Default: the broker's
	// Capabilities.MaxBatch, or DefaultCoalesceMessages (1000) when it reports none; 1 for a
	// broker that is not Capabilities.Persistent (memory://: in process, there is no round
	// trip to share, and handing calls over costs more than it saves) and for an adapter that
	// pipelines concurrent calls itself (Capabilities.PipelinedPublish: RabbitMQ). 1 turns
	// merging off: every call is sent on its own.
	CoalesceMessages int
	// CoalesceBytes bounds the message bytes (message.Size) of one merged batch. Default
	// DefaultCoalesceBytes (1 MiB).
	CoalesceBytes int
	// CoalesceInFlight is how many batches of one topic may be in flight before further
	// calls queue for the next batch. Default 1: the queue goes as soon as the batch in
	// flight returns. More overlaps broker round trips at the cost of smaller batches.
	CoalesceInFlight int

	// Observer is told of every Publish call and may add headers (trace context) to its
	// messages; see Observer. Default: ConnConfig.Observer; none when both are nil.
	Observer Observer
}

// Validate reports whether the configuration can be used.
func (c PublisherConfig) Validate() error {
	if c.CoalesceMessages < 0 || c.CoalesceBytes < 0 || c.CoalesceInFlight < 0 {
		return fmt.Errorf("courier: publisher: %w: CoalesceMessages, CoalesceBytes and CoalesceInFlight must not be negative", ErrInvalidConfig)
	}
	return nil
}

// Publisher publishes messages through a chain of publish middleware. It is safe for
// concurrent use and costs nothing to keep; create one per middleware chain.
type Publisher struct {
	conn *Conn
	fn   message.PublishFunc
	mw   bool     // publish middleware is configured: it gets the connection's logger in ctx
	obs  Observer // nil: nothing is observed
}

// Publisher returns a publisher that runs cfg.Middleware around every publish. Negative
// Coalesce bounds count as their defaults.
func (c *Conn) Publisher(cfg PublisherConfig) *Publisher {
	p := &Publisher{conn: c, mw: len(cfg.Middleware) > 0, obs: cmp.Or[Observer](cfg.Observer, c.obs)}
	msgs, bytes := cfg.CoalesceMessages, cfg.CoalesceBytes
	if msgs <= 0 && (!c.caps.Persistent || c.caps.PipelinedPublish) {
		msgs = 1 // an in-process broker (memory://) has no round trip to share; a pipelining adapter overlaps calls itself
	}
	if msgs <= 0 {
		msgs = c.caps.MaxBatch
	}
	if msgs <= 0 {
		msgs = DefaultCoalesceMessages
	}
	if bytes <= 0 {
		bytes = DefaultCoalesceBytes
	}
	p.fn = message.ChainPublish(cfg.Middleware...)(newCoalescer(p.send, msgs, bytes, max(1, cfg.CoalesceInFlight)).publish)
	return p
}

// Publish sends msgs to topic as one batch and returns nil only once the broker has accepted
// every message durably. It sets ID (a UUIDv7) and PublishTime on messages that lack them —
// the caller's messages are updated, so the caller learns the IDs.
//
// Errors:
//   - ErrClosed once the connection is closed;
//   - ErrInvalidTopic for a name no broker accepts;
//   - ErrInvalidMessage for an empty batch, a nil message, or a header the broker cannot
//     carry (empty name, invalid UTF-8, over the broker's length limit); then nothing of the
//     batch is sent, and the *PublishError lists every offending message;
//   - a *PublishError when some messages were not accepted (too large for the broker, nacked,
//     unroutable): the others were published.
//
// Concurrent calls to one topic share broker batches. Middleware runs per call; then a call
// is sent at once when no batch of the topic is in flight, and otherwise waits for the one in
// flight to return and goes with the calls that arrived meanwhile, as one batch, in arrival
// order (a call's messages stay together and in order). A single caller therefore waits no
// longer than without merging, and many callers make few broker requests. Each call gets its
// own result: the errors above, with indexes into its own msgs. A merged batch is bounded by
// PublisherConfig.CoalesceMessages and CoalesceBytes (a full batch goes at once, even while
// another is in flight); a call larger than the bounds goes alone. When ctx ends while the
// call waits, its messages are withdrawn and it returns an error wrapping ctx's cause; once
// they are in flight, it returns at once with its outcome unknown, and the batch goes on for
// the other callers (the first caller of a merged batch sends it and waits for it).
func (p *Publisher) Publish(ctx context.Context, topic string, msgs ...*message.Message) error {
	if p.conn.closed.Load() {
		return fmt.Errorf("courier: publish to %q: %w", topic, ErrClosed)
	}
	if err := ValidateName(topic); err != nil {
		return fmt.Errorf("courier: publish: %w", err)
	}
	if len(msgs) == 0 {
		return fmt.Errorf("courier: publish to %q: %w: no messages given", topic, ErrInvalidMessage)
	}
	if err := p.prepare(topic, msgs); err != nil {
		return err
	}
	if p.obs != nil {
		return p.observePublish(ctx, topic, msgs)
	}
	return p.run(ctx, topic, msgs)
}

// run sends a prepared batch through the middleware.
func (p *Publisher) run(ctx context.Context, topic string, msgs []*message.Message) error {
	if p.mw && p.conn.log != nil {
		ctx = message.WithLogger(ctx, p.conn.log) // middleware logs through the connection's logger
	}
	return p.fn(ctx, topic, msgs)
}

// prepare stamps IDs and times and checks what every broker would refuse. It rejects the whole
// batch on any invalid message so that nothing is half-sent because of a programming error.
func (p *Publisher) prepare(topic string, msgs []*message.Message) error {
	var failed []FailedMessage
	var now time.Time
	caps := &p.conn.caps
	if err := p.conn.ids.fill(msgs); err != nil {
		return fmt.Errorf("courier: publish to %q: generate message IDs: %w", topic, err)
	}
	for i, m := range msgs {
		if m == nil {
			failed = append(failed, FailedMessage{Index: i, Err: fmt.Errorf("%w: message is nil", ErrInvalidMessage)})
			continue
		}
		if !utf8.ValidString(m.ID) {
			failed = append(failed, FailedMessage{Index: i, ID: m.ID, Err: fmt.Errorf("%w: ID is not valid UTF-8", ErrInvalidMessage)})
			continue
		}
		if m.PublishTime.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			m.PublishTime = now
		}
		if !utf8.ValidString(m.Key) {
			failed = append(failed, FailedMessage{Index: i, ID: m.ID, Err: fmt.Errorf("%w: key is not valid UTF-8", ErrInvalidMessage)})
			continue
		}
		if err := checkHeaders(m.Headers, caps); err != nil {
			failed = append(failed, FailedMessage{Index: i, ID: m.ID, Err: err})
		}
	}
	if failed != nil {
		return &PublishError{Topic: topic, Total: len(msgs), Failed: failed}
	}
	return nil
}

func checkHeaders(h message.Headers, caps *Capabilities) error {
	for k, v := range h {
		switch {
		case k == "":
			return fmt.Errorf("%w: empty header name", ErrInvalidMessage)
		case !utf8.ValidString(k):
			return fmt.Errorf("%w: header name %q is not valid UTF-8", ErrInvalidMessage, k)
		case !utf8.ValidString(v):
			return fmt.Errorf("%w: header %q: value is not valid UTF-8", ErrInvalidMessage, k)
		case caps.MaxHeaderNameBytes > 0 && len(k) > caps.MaxHeaderNameBytes:
			return fmt.Errorf("%w: header name %.32q… is %d bytes; %s allows %d", ErrInvalidMessage, k, len(k), caps.Name, caps.MaxHeaderNameBytes)
		case caps.MaxHeaderValueBytes > 0 && len(v) > caps.MaxHeaderValueBytes:
			return fmt.Errorf("%w: header %q: value is %d bytes; %s allows %d", ErrInvalidMessage, k, len(v), caps.Name, caps.MaxHeaderValueBytes)
		}
	}
	return nil
}

// send is the innermost PublishFunc: it holds back messages over the broker's size limit,
// hands the rest to the driver, and merges both kinds of failure into one PublishError whose
// indexes refer to the caller's batch.
func (p *Publisher) send(ctx context.Context, topic string, msgs []*message.Message) error {
	caps := &p.conn.caps
	var failed []FailedMessage
	send := msgs
	var pos []int // pos[i] is the batch index of send[i], when some were held back
	if limit := caps.MaxMessageBytes; limit > 0 {
		for i, m := range msgs {
			if m == nil {
				return fmt.Errorf("courier: publish to %q: %w: publish middleware left message %d nil", topic, ErrInvalidMessage, i)
			}
			if size := m.Size(); size > limit {
				if pos == nil {
					send = make([]*message.Message, 0, len(msgs))
					pos = make([]int, 0, len(msgs))
					for j := 0; j < i; j++ {
						send = append(send, msgs[j])
						pos = append(pos, j)
					}
				}
				failed = append(failed, FailedMessage{Index: i, ID: m.ID,
					Err: fmt.Errorf("%w: %d bytes exceeds %s's limit of %d bytes", ErrMessageTooLarge, size, caps.Name, limit)})
				continue
			}
			if pos != nil {
				send = append(send, m)
				pos = append(pos, i)
			}
		}
	}
	var err error
	if len(send) > 0 {
		err = p.conn.drv.Publish(ctx, topic, send)
	}
	if err == nil && failed == nil {
		return nil
	}
	if err != nil {
		var pe *PublishError
		if errors.As(err, &pe) {
			for _, f := range pe.Failed {
				if pos != nil && f.Index >= 0 && f.Index < len(pos) {
					f.Index = pos[f.Index]
				}
				failed = append(failed, f)
			}
		} else {
			// The whole request failed: every message handed to the driver is unconfirmed.
			for i, m := range send {
				idx := i
				if pos != nil {
					idx = pos[i]
				}
				failed = append(failed, FailedMessage{Index: idx, ID: m.ID, Err: err})
			}
		}
	}
	sortFailed(failed)
	return &PublishError{Topic: topic, Total: len(msgs), Failed: failed}
}

func sortFailed(f []FailedMessage) {
	// Insertion sort: failures are few and nearly sorted.
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && f[j].Index < f[j-1].Index; j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
}

// ValidateName checks a topic or subscription name against the rules every supported broker
// shares: non-empty, at most 249 bytes, valid UTF-8, no spaces or control characters, no "/"
// or "#" or "*" (routing and path separators). Adapters check their broker's stricter rules.
func ValidateName(name string) error { return driver.ValidateName(name) }
