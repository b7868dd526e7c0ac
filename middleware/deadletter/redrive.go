package deadletter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// ErrNoOriginalTopic: a dead-lettered message has no message.HeaderDeadLetterTopic (and no
// RedriveOptions.FallbackTopic is set), so Redrive does not know where it belongs.
var ErrNoOriginalTopic = errors.New("deadletter: message names no original topic")

// ErrPayloadOmitted: the dead-lettered message is a notice whose payload did not fit the
// dead-letter topic (transport.HeaderDeadLetterPayloadOmitted); the original was kept on its
// subscription, so there is nothing to redrive. It is left in place.
var ErrPayloadOmitted = errors.New("deadletter: the copy's payload was omitted (a notice)")

// ErrNotRepublishable: the original message held an ID, key or header that is not valid
// UTF-8 (or an empty header name), which the copy escaped; Courier's Publish refuses such a
// message, so Redrive leaves it in place. Move it with Filter and a tool of your own.
var ErrNotRepublishable = errors.New("deadletter: the original message cannot be republished as it was")

// Defaults for RedriveOptions.
const (
	DefaultIdleTimeout  = 5 * time.Second
	DefaultStartTimeout = 15 * time.Second
	DefaultBatchSize    = 100
)

// RedriveOptions tune Redrive. The zero value is valid.
type RedriveOptions struct {
	// IdleTimeout ends the redrive once no message arrived for this long: the subscription
	// is drained. Default DefaultIdleTimeout (5s).
	IdleTimeout time.Duration

	// StartTimeout replaces IdleTimeout (when longer) until the first message arrived: it
	// covers attaching to the subscription, which on some brokers takes seconds (a Kafka
	// consumer group join). An empty subscription therefore takes this long to redrive.
	// Default DefaultStartTimeout (15s).
	StartTimeout time.Duration

	// Max ends the redrive once this many messages were moved. Default 0: no limit.
	Max int

	// BatchSize is how many messages are received, then published per topic as one batch.
	// Default DefaultBatchSize (100).
	BatchSize int

	// Filter, when set, picks the messages to move; the others are left in place and counted
	// as skipped.
	Filter func(m *message.Message) bool

	// FallbackTopic receives messages that name no original topic — those dead-lettered
	// natively by the broker, which adds no Courier headers. Default "": they are left in
	// place and counted as failed (ErrNoOriginalTopic).
	FallbackTopic string

	// Target publishes the moved messages. Default: the connection redriven from.
	Target *transport.Conn

	// Logger receives a line per batch and a summary. Default slog.Default(). Payloads are
	// never logged.
	Logger *slog.Logger
}

// Validate reports options that cannot work.
func (o RedriveOptions) Validate() error {
	switch {
	case o.IdleTimeout < 0 || o.StartTimeout < 0:
		return fmt.Errorf("%w: IdleTimeout and StartTimeout must not be negative", ErrInvalidConfig)
	case o.Max < 0:
		return fmt.Errorf("%w: Max %d is negative", ErrInvalidConfig, o.Max)
	case o.BatchSize < 0:
		return fmt.Errorf("%w: BatchSize %d is negative", ErrInvalidConfig, o.BatchSize)
	}
	if o.FallbackTopic != "" {
		if err := transport.ValidateName(o.FallbackTopic); err != nil {
			return fmt.Errorf("%w: FallbackTopic: %w", ErrInvalidConfig, err)
		}
	}
	return nil
}

// RedriveResult counts what Redrive did.
type RedriveResult struct {
	// Moved messages were published to their original topic and removed from the
	// dead-letter subscription.
	Moved int
	// Skipped messages were left in place on purpose: refused by Filter, or already moved
	// once by this run (they failed again and came back).
	Skipped int
	// Failed messages were left in place because of an error: no original topic, or the
	// publish failed. Errors holds the first few.
	Failed int
	// Errors are the first (at most 10) errors behind Failed.
	Errors []error
}

const maxErrors = 10

func (r *RedriveResult) fail(n int, err error) {
	r.Failed += n
	if len(r.Errors) < maxErrors {
		r.Errors = append(r.Errors, err)
	}
}

// Redrive moves the messages of subscription dlqSubscription on topic dlqTopic (on the default
// setup: conn.DefaultDeadLetterTopic(topic) and "<subscription>.dlq") back to the topic each
// names in message.HeaderDeadLetterTopic. A moved message is the original as Redriven gives
// it back (escapes reversed; what the copy cut stays cut): it keeps its ID, key, payload and
// application headers; the courier-dlq-* headers, message.HeaderAttempt and
// message.HeaderSchemaViolation are removed, so it starts again at attempt 1 (the same ID lets
// the idempotency middleware recognise a message that was in fact handled), and
// message.HeaderRedriven is set: the ordering middleware lets such a message through (it is
// out of its key's order by nature). The publish time is new, so a broker that deduplicates on
// ID and publish time (the SQS FIFO adapter) does not drop the copy as a duplicate.
//
// Each batch is published per topic and each message is acknowledged on the dead-letter
// subscription only after its publish succeeded: at least once — a crash in between publishes
// it again on the next run. Messages left in place (Filter, no original topic, a notice whose
// payload was omitted, an original Courier cannot publish, forged annotations, failed publish,
// or moved once already by this run) are not acknowledged; they are released when Redrive
// returns (nacked without delay where the broker redelivers, otherwise left unacknowledged —
// on Kafka this holds back the committed offset of the messages after them in the partition,
// which a later redrive moves again under the same IDs).
//
// Redrive stops when no message arrived for IdleTimeout (StartTimeout before the first one),
// when Max were moved, or when ctx is
// done (then it returns ctx's error with the counts so far). It returns an error wrapping
// the first failures when any message failed, and an error without counts when it could not
// consume the subscription at all.
func Redrive(ctx context.Context, conn *transport.Conn, dlqTopic, dlqSubscription string, opts RedriveOptions) (RedriveResult, error) {
	var res RedriveResult
	if conn == nil {
		return res, fmt.Errorf("%w: nil connection", ErrInvalidConfig)
	}
	if err := opts.Validate(); err != nil {
		return res, err
	}
	if err := transport.ValidateName(dlqTopic); err != nil {
		return res, fmt.Errorf("deadletter: redrive: topic: %w", err)
	}
	if err := transport.ValidateName(dlqSubscription); err != nil {
		return res, fmt.Errorf("deadletter: redrive: subscription: %w", err)
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultBatchSize
	}
	target := opts.Target
	if target == nil {
		target = conn
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("courier.topic", dlqTopic, "courier.subscription", dlqSubscription)

	recv, err := conn.Pull(ctx, dlqTopic, dlqSubscription, transport.PullConfig{Prefetch: max(4*opts.BatchSize, 256)})
	if err != nil {
		return res, fmt.Errorf("deadletter: redrive %s/%s: %w", dlqTopic, dlqSubscription, err)
	}
	r := &redriver{conn: conn, target: target, recv: recv, opts: opts, log: log, res: &res, moved: map[string]struct{}{}}
	defer r.release()

	buf := make([]*message.Message, opts.BatchSize)
	wait := max(opts.IdleTimeout, opts.StartTimeout)
	for opts.Max == 0 || res.Moved < opts.Max {
		want := len(buf)
		if opts.Max > 0 {
			want = min(want, opts.Max-res.Moved)
		}
		rctx, cancel := context.WithTimeout(ctx, wait)
		n, err := recv.Receive(rctx, buf[:want])
		cancel()
		if n > 0 {
			wait = opts.IdleTimeout
			r.batch(ctx, buf[:n])
			clear(buf[:n])
		}
		if err != nil {
			if ctx.Err() != nil {
				return res, r.summary(ctx.Err())
			}
			if rctx.Err() != nil {
				break // idle: drained
			}
			return res, r.summary(fmt.Errorf("deadletter: redrive %s/%s: receive: %w", dlqTopic, dlqSubscription, err))
		}
	}
	return res, r.summary(nil)
}

type redriver struct {
	conn, target *transport.Conn
	recv         *transport.Puller
	opts         RedriveOptions
	log          *slog.Logger
	res          *RedriveResult
	moved        map[string]struct{} // IDs moved by this run
	held         []*message.Message  // left in place, released at the end
}

// redriveGroup is the part of a batch going back to one topic.
type redriveGroup struct {
	topic      string
	originals  []*message.Message
	redirected []*message.Message
}

// batch moves one received batch: grouped by original topic, in order.
func (r *redriver) batch(ctx context.Context, msgs []*message.Message) {
	var ack []*message.Message
	for _, g := range r.group(msgs) {
		ack = append(ack, r.publish(ctx, g)...)
	}
	if len(ack) == 0 {
		return
	}
	for _, m := range ack {
		r.moved[m.ID] = struct{}{}
	}
	r.res.Moved += len(ack)
	if err := r.recv.Ack(ctx, ack...); err != nil {
		// Already published: they may come back, and are then skipped as moved by this run.
		r.log.Error("courier: acknowledging redriven messages failed; they may be redriven again later (same IDs)", "count", len(ack), "error", err)
	}
	r.log.Debug("courier: redrove a batch", "moved", len(ack), "total", r.res.Moved)
}

// group sorts a batch by original topic, holding back what is not to be moved.
func (r *redriver) group(msgs []*message.Message) []*redriveGroup {
	var groups []*redriveGroup
	for _, m := range msgs {
		topic, moved, err := r.prepare(m)
		if moved == nil {
			if err != nil {
				r.res.fail(1, err)
			} else {
				r.res.Skipped++
			}
			r.held = append(r.held, m)
			continue
		}
		i := slices.IndexFunc(groups, func(g *redriveGroup) bool { return g.topic == topic })
		if i < 0 {
			i = len(groups)
			groups = append(groups, &redriveGroup{topic: topic})
		}
		groups[i].originals = append(groups[i].originals, m)
		groups[i].redirected = append(groups[i].redirected, moved)
	}
	return groups
}

// prepare returns where m goes and what is published there, or nil and why not (a nil
// error: skipped on purpose).
func (r *redriver) prepare(m *message.Message) (string, *message.Message, error) {
	if r.opts.Filter != nil && !r.opts.Filter(m) {
		return "", nil, nil
	}
	if _, again := r.moved[m.ID]; again {
		r.log.Warn("courier: redriven message failed again and is back; left in place", "message_id", m.ID)
		return "", nil, nil
	}
	topic := m.Headers[message.HeaderDeadLetterTopic]
	if topic == "" {
		topic = r.opts.FallbackTopic
	}
	if topic == "" {
		return "", nil, fmt.Errorf("%w: message %s", ErrNoOriginalTopic, m.ID)
	}
	moved, err := Redriven(m, time.Now())
	return topic, moved, err
}

// publish publishes one group and returns the originals to acknowledge: those published.
func (r *redriver) publish(ctx context.Context, g *redriveGroup) []*message.Message {
	err := r.target.Publish(ctx, g.topic, g.redirected...)
	if err == nil {
		return g.originals
	}
	failed := make(map[int]bool, len(g.originals))
	var pe *transport.PublishError
	// Publish refuses a whole batch holding an invalid message but lists only that one:
	// then nothing is known to be sent (the ones sent are moved again, same IDs, later).
	if errors.As(err, &pe) && !errors.Is(err, transport.ErrInvalidMessage) {
		for _, f := range pe.Failed {
			failed[f.Index] = true
		}
	} else {
		for i := range g.originals {
			failed[i] = true
		}
	}
	r.res.fail(len(failed), fmt.Errorf("deadletter: redrive %d messages to %q: %w", len(failed), g.topic, err))
	var ack []*message.Message
	for i, m := range g.originals {
		if failed[i] {
			r.held = append(r.held, m)
		} else {
			ack = append(ack, m)
		}
	}
	return ack
}

// release hands back what was left in place, then closes the receiver.
func (r *redriver) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range r.held {
		if err := r.recv.Release(ctx, m); err != nil {
			r.log.Error("courier: releasing a message left in place failed; the broker redelivers it when its lease ends", "message_id", m.ID, "error", err)
		}
	}
	if err := r.recv.Close(ctx); err != nil {
		r.log.Error("courier: closing the dead-letter subscription failed", "error", err)
	}
}

func (r *redriver) summary(stop error) error {
	r.log.Info("courier: redrive finished", "moved", r.res.Moved, "skipped", r.res.Skipped, "failed", r.res.Failed)
	var errs []error
	if stop != nil {
		errs = append(errs, stop)
	}
	if r.res.Failed > 0 {
		errs = append(errs, fmt.Errorf("deadletter: %d messages left in place after errors: %w", r.res.Failed, errors.Join(r.res.Errors...)))
	}
	return errors.Join(errs...)
}

// Redriven returns the message Redrive publishes at time now for the dead-letter copy m:
// transport.UndoDeadLetterCopy's result (same ID, key, payload and application headers as the
// original, escapes reversed, annotations removed) with message.HeaderRedriven set to now.
// It fails, wrapping ErrPayloadOmitted, ErrNotRepublishable or
// transport.ErrMalformedDeadLetter, when m cannot be moved back as it was.
func Redriven(m *message.Message, now time.Time) (*message.Message, error) {
	if n := m.Headers[transport.HeaderDeadLetterPayloadOmitted]; n != "" {
		return nil, fmt.Errorf("%w: message %s: %s bytes", ErrPayloadOmitted, m.ID, n)
	}
	c, err := transport.UndoDeadLetterCopy(m)
	if err != nil {
		return nil, fmt.Errorf("deadletter: message %s: %w", m.ID, err)
	}
	if err := republishable(c); err != nil {
		return nil, fmt.Errorf("%w: message %s: %w", ErrNotRepublishable, m.ID, err)
	}
	c.Headers[message.HeaderRedriven] = now.UTC().Format(time.RFC3339Nano) // replaces an earlier redrive's
	return c, nil
}

// republishable reports what Courier's Publish would refuse in c.
func republishable(c *message.Message) error {
	switch {
	case !utf8.ValidString(c.ID):
		return errors.New("ID is not valid UTF-8")
	case !utf8.ValidString(c.Key):
		return errors.New("key is not valid UTF-8")
	}
	for k, v := range c.Headers {
		if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("header %q is empty or not valid UTF-8", k)
		}
	}
	return nil
}
