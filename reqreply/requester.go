package reqreply

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
	"github.com/courierhq/courier/transport/driver"
)

// DefaultReplyPrefix starts every reply topic's name: "<prefix><requester ID>". Responders
// accept only reply addresses with this prefix unless configured otherwise (see
// ResponderConfig.ReplyPrefix). It uses '-' only, since SQS queue names allow no '.'.
const DefaultReplyPrefix = "courier-reply-"

// replySubscription is the reply topic's one subscription.
const replySubscription = "requester"

// Publisher is what requests and replies are published with: a *transport.Conn, or a
// *transport.Publisher with publish middleware (encryption, schema).
type Publisher interface {
	Publish(ctx context.Context, topic string, msgs ...*message.Message) error
}

// RequesterConfig configures a Requester. The zero value is valid.
type RequesterConfig struct {
	// ReplyPrefix starts the reply topic's name. Default DefaultReplyPrefix.
	ReplyPrefix string
	// ID names this requester; the reply topic is ReplyPrefix + ID. Default: 16 random hex
	// digits, so that every instance has its own reply topic.
	ID string
	// Publisher publishes the requests. Default: the connection.
	Publisher Publisher
	// Concurrency is how many replies are matched at once. Default 16.
	Concurrency int
	// Logger receives the requester's log lines (late replies at debug). Default: slog.Default().
	Logger *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c RequesterConfig) Validate() error {
	if c.Concurrency < 0 {
		return fmt.Errorf("%w: negative Concurrency", transport.ErrInvalidConfig)
	}
	if err := transport.ValidateName(c.withDefaults().replyTopic()); err != nil {
		return fmt.Errorf("reply topic: %w", err)
	}
	return nil
}

func (c RequesterConfig) withDefaults() RequesterConfig {
	if c.ReplyPrefix == "" {
		c.ReplyPrefix = DefaultReplyPrefix
	}
	if c.ID == "" {
		c.ID = randomHex(8)
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c RequesterConfig) replyTopic() string { return c.ReplyPrefix + c.ID }

// Stats counts what a Requester did. Late counts replies that found no caller waiting: the
// request had timed out or been answered already (a duplicate after a retry), or the reply's
// correlation ID was never this requester's. Invalid counts replies without a usable
// correlation ID. Both are dropped: acknowledged and never delivered to a caller.
type Stats struct {
	Requests uint64 // requests published
	Replies  uint64 // replies delivered to their caller
	Late     uint64 // replies dropped because no caller waited for them
	Invalid  uint64 // replies dropped because their correlation ID was missing or malformed
}

// Requester sends requests and waits for their replies. It has one reply topic with one
// subscription, made by NewRequester and deleted by Close, shared by all its requests. It is
// safe for concurrent use.
type Requester struct {
	conn  *transport.Conn
	pub   Publisher
	cfg   RequesterConfig
	topic string
	sub   *transport.Subscriber
	stop  context.CancelFunc
	done  chan struct{}

	mu      sync.Mutex
	pending map[string]chan *message.Message
	err     error // set when the reply subscriber ended: every Request fails with it

	requests, replies, late, invalid atomic.Uint64
}

// NewRequester makes the requester's reply topic and its subscription on conn and starts
// consuming it. Replies published once it returned are retained for it. Close it when done.
func NewRequester(ctx context.Context, conn *transport.Conn, cfg RequesterConfig) (*Requester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("reqreply: new requester: %w", err)
	}
	cfg = cfg.withDefaults()
	r := &Requester{conn: conn, pub: cfg.Publisher, cfg: cfg, topic: cfg.replyTopic(),
		pending: map[string]chan *message.Message{}, done: make(chan struct{})}
	if r.pub == nil {
		r.pub = conn
	}
	sub, err := conn.Subscribe(ctx, r.topic, replySubscription, transport.SubscriberConfig{
		Concurrency: cfg.Concurrency,
		Order:       transport.OrderNone,
		// The reply handler never fails; nothing is dead-lettered, so no dead-letter topic.
		DeadLetter: transport.DeadLetterFunc(func(context.Context, *message.Message, transport.Failure) error { return nil }),
		Logger:     cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("reqreply: new requester: %w", err)
	}
	r.sub = sub
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stop = stop
	go r.run(runCtx)
	return r, nil
}

// run consumes the reply topic until Close; if the subscriber ends on its own, every waiting
// and later Request fails with its error.
func (r *Requester) run(ctx context.Context) {
	defer close(r.done)
	err := r.sub.Run(ctx, r.receive)
	if err == nil {
		err = transport.ErrClosed
	}
	r.mu.Lock()
	r.err = fmt.Errorf("reqreply: reply subscriber ended: %w", err)
	pending := r.pending
	r.pending = map[string]chan *message.Message{}
	r.mu.Unlock()
	for _, ch := range pending {
		close(ch)
	}
}

// ReplyTopic returns the topic this requester's replies are published to.
func (r *Requester) ReplyTopic() string { return r.topic }

// Stats returns the requester's counters.
func (r *Requester) Stats() Stats {
	return Stats{Requests: r.requests.Load(), Replies: r.replies.Load(), Late: r.late.Load(), Invalid: r.invalid.Load()}
}

// RequestOption adjusts one Request.
type RequestOption func(*requestOptions)

type requestOptions struct{ correlationID string }

// WithCorrelationID sends the request with this correlation ID instead of a new one. Use it to
// retry a timed-out request: the responder can tell the retry from a new request (make its
// side effects idempotent by CorrelationID), and whichever reply comes first answers the call.
func WithCorrelationID(id string) RequestOption {
	return func(o *requestOptions) { o.correlationID = id }
}

// NewCorrelationID returns a new random correlation ID (32 hex digits), for callers that
// choose it before the first attempt so they can retry with it.
func NewCorrelationID() string { return randomHex(16) }

// CorrelationID returns the correlation ID of a request or reply, or "".
func CorrelationID(m *message.Message) string { return m.Header(message.HeaderCorrelationID) }

// Request publishes a copy of msg to topic with a correlation ID and this requester's reply
// address, and waits for the matching reply or ctx's end. msg itself is not changed.
//
// It returns the reply; an error matching ErrRemote (a *RemoteError) when the responder's
// function failed; ctx.Err() wrapped (errors.Is(err, context.DeadlineExceeded) on a timeout)
// when ctx ended first — a reply arriving later is dropped and counted in Stats.Late; the
// publish error when the request could not be published; ErrDuplicateRequest when a request
// with the same correlation ID is waiting; transport.ErrClosed after Close.
//
// A request confirmed published is retained until a responder takes it, but a responder that
// stops after handling it and before its reply is published loses the reply. Callers that
// must have an answer retry on timeout with the same correlation ID (WithCorrelationID).
func (r *Requester) Request(ctx context.Context, topic string, msg *message.Message, opts ...RequestOption) (*message.Message, error) {
	if msg == nil {
		return nil, fmt.Errorf("reqreply: request to %s: %w: nil message", topic, transport.ErrInvalidMessage)
	}
	var o requestOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.correlationID == "" {
		o.correlationID = NewCorrelationID()
	}
	if err := validCorrelationID(o.correlationID); err != nil {
		return nil, fmt.Errorf("reqreply: request to %s: %w: %v", topic, transport.ErrInvalidMessage, err)
	}
	req := msg.Clone()
	req.SetHeader(message.HeaderCorrelationID, o.correlationID)
	req.SetHeader(message.HeaderReplyTo, r.topic)
	req.Headers = withoutReplyError(req.Headers)

	ch, err := r.wait(o.correlationID)
	if err != nil {
		return nil, fmt.Errorf("reqreply: request to %s: %w", topic, err)
	}
	if err := r.pub.Publish(ctx, topic, req); err != nil {
		r.forget(o.correlationID, ch)
		return nil, fmt.Errorf("reqreply: request to %s: %w", topic, err)
	}
	r.requests.Add(1)
	select {
	case reply, ok := <-ch:
		return r.answer(topic, reply, ok)
	case <-ctx.Done():
		if !r.forget(o.correlationID, ch) { // the reply won the race: it is here
			reply, ok := <-ch
			return r.answer(topic, reply, ok)
		}
		return nil, fmt.Errorf("reqreply: request to %s (correlation ID %s): no reply: %w", topic, o.correlationID, ctx.Err())
	}
}

// withoutReplyError drops a reply-error header a caller's message may carry (a reply being
// forwarded as a request), so the request is not mistaken for an error reply downstream.
func withoutReplyError(h message.Headers) message.Headers {
	delete(h, message.HeaderReplyError)
	return h
}

// answer turns a delivered reply into Request's result.
func (r *Requester) answer(topic string, reply *message.Message, ok bool) (*message.Message, error) {
	if !ok {
		r.mu.Lock()
		err := r.err
		r.mu.Unlock()
		return nil, fmt.Errorf("reqreply: request to %s: %w", topic, err)
	}
	if kind, isErr := reply.Headers[message.HeaderReplyError]; isErr {
		return nil, fmt.Errorf("reqreply: request to %s: %w", topic, remoteFromReply(kind, reply.Payload))
	}
	return reply, nil
}

// wait registers a caller for correlation ID id.
func (r *Requester) wait(id string) (chan *message.Message, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	if _, dup := r.pending[id]; dup {
		return nil, fmt.Errorf("%w: %s", ErrDuplicateRequest, id)
	}
	ch := make(chan *message.Message, 1)
	r.pending[id] = ch
	return ch, nil
}

// forget removes the caller waiting on ch for id; false when it was gone (answered or closed).
func (r *Requester) forget(id string, ch chan *message.Message) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending[id] != ch {
		return false
	}
	delete(r.pending, id)
	return true
}

// receive is the reply topic's handler: it hands a reply to its waiting caller, or drops it.
// It never fails, so every reply is acknowledged once matched or dropped.
func (r *Requester) receive(ctx context.Context, m *message.Message) error {
	id := CorrelationID(m)
	if err := validCorrelationID(id); err != nil {
		r.invalid.Add(1)
		message.LoggerFrom(ctx).Warn("reqreply: reply dropped: invalid correlation ID",
			"courier.message_id", cutText(m.ID, MaxCorrelationIDBytes), "error", err)
		return nil
	}
	r.mu.Lock()
	ch, ok := r.pending[id]
	delete(r.pending, id)
	r.mu.Unlock()
	if !ok {
		r.late.Add(1)
		message.LoggerFrom(ctx).Debug("reqreply: late reply dropped: no caller waits for it",
			"courier.correlation_id", id)
		return nil
	}
	r.replies.Add(1)
	ch <- m // buffered, and only this goroutine sends on it
	return nil
}

// Close stops consuming replies, fails waiting requests with transport.ErrClosed, and deletes
// the reply subscription, and the reply topic where the adapter can (driver.TopicDeleter):
// SQS, Kafka and Pub/Sub keep a topic until it is deleted. Errors deleting them are returned,
// the requester is closed regardless.
func (r *Requester) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.err == nil {
		r.err = fmt.Errorf("reqreply: requester: %w", transport.ErrClosed)
	}
	r.mu.Unlock()
	err := r.sub.Close(ctx)
	r.stop()
	<-r.done
	if errors.Is(err, transport.ErrClosed) {
		err = nil
	}
	return errors.Join(err, r.deleteReplyTopic(ctx))
}

// deleteReplyTopic removes the reply subscription and topic where the adapter can.
func (r *Requester) deleteReplyTopic(ctx context.Context) error {
	var errs []error
	if err := r.conn.DeleteSubscription(ctx, r.topic, replySubscription); err != nil && !errors.Is(err, transport.ErrUnsupported) {
		errs = append(errs, err)
	}
	if d, ok := r.conn.Driver().(driver.TopicDeleter); ok {
		if err := d.DeleteTopic(ctx, r.topic); err != nil {
			errs = append(errs, fmt.Errorf("reqreply: delete reply topic %s: %w", r.topic, err))
		}
	}
	return errors.Join(errs...)
}

// randomHex returns 2n random hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return strings.ToLower(hex.EncodeToString(b))
}
