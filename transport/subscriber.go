package transport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport/driver"
)

// DefaultConcurrency is the number of handlers a subscriber runs at once unless configured.
const DefaultConcurrency = 8

// DefaultDrainTimeout bounds how long Close and a cancelled Run wait for in-flight handlers.
const DefaultDrainTimeout = 30 * time.Second

// SubscriberConfig configures a subscriber: how many handlers run at once, how failures are
// retried and where messages go when retries run out. The zero value is valid and means the
// documented defaults.
type SubscriberConfig struct {
	// Concurrency is the most handlers running at once. Messages with the same non-empty Key
	// are never handled concurrently and are handled in delivery order; messages with
	// different keys, or none, run in parallel. Default DefaultConcurrency (8).
	Concurrency int

	// Prefetch is the most messages received and not yet handled (waiting for a worker,
	// being handled, or parked). Handled messages whose acknowledgement is on its way to the
	// broker add at most another Prefetch, so that handling never waits for an ack round trip.
	// It bounds memory and sets the broker's flow control. Default 32 × Concurrency, at least
	// 256.
	Prefetch int

	// Retry is the retry policy for failed messages. Default DefaultRetryPolicy.
	Retry RetryPolicy

	// Middleware wraps the handler, outermost first (see message.Chain). Nil entries are
	// skipped, as in PublisherConfig.Middleware, so that optional middleware can be listed
	// unconditionally.
	Middleware []message.Middleware

	// DeadLetter receives messages whose retries ran out or whose error was permanent.
	// Default: a TopicDeadLetterer publishing to DeadLetterTopic on the same connection.
	DeadLetter DeadLetterer

	// DeadLetterBackoff spaces the attempts to store a dead-letter copy when the DeadLetterer
	// fails (the topic is down, the copy is refused): the message is kept, unacknowledged, and
	// tried again after InitialDelay·Multiplierⁿ⁻¹ capped at MaxDelay (±Jitter), for as long as
	// it takes; MaxAttempts is ignored. Meanwhile it waits off its lane, so that other keys keep
	// flowing, and holds only its own key (the key's later messages wait behind it). Each
	// failed attempt logs one line and calls OnDeadLetterError. Zero fields take
	// DefaultDeadLetterBackoff's (1s doubling to 1m).
	DeadLetterBackoff RetryPolicy

	// OnDeadLetterError, when set, is called after every failed attempt to store a dead-letter
	// copy, from the worker that made it: count it, raise an alert. It must not block.
	OnDeadLetterError func(DeadLetterRetry)

	// DeadLetterTopic names the default dead-letter topic. Default: the topic + ".dlq" (or
	// the adapter's form, see Conn.DefaultDeadLetterTopic). Unless DeadLetter is set, Subscribe
	// also makes sure a subscription named Subscription + ".dlq" exists on it, so that
	// dead-lettered messages are retained even on brokers that drop messages nobody
	// subscribed to (RabbitMQ, Pub/Sub, memory://).
	DeadLetterTopic string

	// NativeDeadLetter uses the broker's own dead-lettering (RabbitMQ dead-letter exchange,
	// SQS redrive policy, Pub/Sub dead-letter policy) instead of Courier's hand-off. Requires
	// Capabilities.NativeDeadLetter. The broker decides when to move a message (by its
	// delivery count), so a permanent error may be redelivered until the count runs out.
	NativeDeadLetter bool

	// Order says what the subscriber promises about one key's messages. Default OrderPublish:
	// one at a time, in publish order — and Subscribe fails (ErrUnsupported) where the broker
	// cannot deliver in publish order (an SQS standard queue), rather than promise it silently.
	// OrderDelivery: one at a time, in the order the broker delivers them (use it with the
	// ordering middleware, which restores publish order on any broker, or when delivery order
	// is good enough). OrderNone: keys are ignored.
	Order Ordering

	// DisableOrdering is OrderNone, kept for existing code: every message may run in parallel
	// with every other, and failed keyed messages are redelivered by the broker rather than
	// retried in place.
	DisableOrdering bool

	// Start is where a subscription that does not exist yet begins: StartLatest (default,
	// every broker: only what is published after Subscribe returns) or StartEarliest (also
	// what the broker still keeps from before, where it keeps history: Kafka). An existing
	// subscription resumes where it was.
	Start StartPosition

	// DrainTimeout bounds how long stopping waits for in-flight handlers before cancelling
	// their context. Default DefaultDrainTimeout (30s).
	DrainTimeout time.Duration

	// Logger receives the subscriber's log lines. Default: the connection's logger.
	Logger *slog.Logger

	// Observer is told of every handler call and every decision of the engine (tracing,
	// metrics: see package otelcourier). Default: ConnConfig.Observer; none when both are nil.
	Observer Observer
}

// Ordering is what a subscriber promises about the order of one key's messages
// (SubscriberConfig.Order).
type Ordering int

const (
	// OrderPublish: one key's messages are handled one at a time, in publish order. The
	// default; Subscribe fails with ErrUnsupported where the broker cannot keep it.
	OrderPublish Ordering = iota
	// OrderDelivery: one key's messages are handled one at a time, in the order the broker
	// delivers them, which on some brokers (SQS standard queues) is not publish order.
	OrderDelivery
	// OrderNone: keys are ignored; every message may run in parallel with every other.
	OrderNone
)

// String returns "publish", "delivery" or "none".
func (o Ordering) String() string {
	switch o {
	case OrderPublish:
		return "publish"
	case OrderDelivery:
		return "delivery"
	case OrderNone:
		return "none"
	}
	return fmt.Sprintf("Ordering(%d)", int(o))
}

// ordering is Order with DisableOrdering folded in.
func (c SubscriberConfig) ordering() Ordering {
	if c.DisableOrdering {
		return OrderNone
	}
	return c.Order
}

// Validate reports a configuration that cannot work.
func (c SubscriberConfig) Validate() error {
	switch {
	case c.Order < OrderPublish || c.Order > OrderNone:
		return fmt.Errorf("%w: Order %v is not one of OrderPublish, OrderDelivery, OrderNone", ErrInvalidConfig, c.Order)
	case c.Start < StartLatest || c.Start > StartEarliest:
		return fmt.Errorf("%w: Start %v is not StartLatest or StartEarliest", ErrInvalidConfig, c.Start)
	case c.Concurrency < 0:
		return fmt.Errorf("%w: Concurrency %d is negative", ErrInvalidConfig, c.Concurrency)
	case c.Prefetch < 0:
		return fmt.Errorf("%w: Prefetch %d is negative", ErrInvalidConfig, c.Prefetch)
	case c.DrainTimeout < 0:
		return fmt.Errorf("%w: DrainTimeout %v is negative", ErrInvalidConfig, c.DrainTimeout)
	case c.NativeDeadLetter && c.DeadLetter != nil:
		return fmt.Errorf("%w: NativeDeadLetter and DeadLetter are exclusive", ErrInvalidConfig)
	}
	if err := c.DeadLetterBackoff.Validate(); err != nil {
		return fmt.Errorf("DeadLetterBackoff: %w", err)
	}
	return c.Retry.Validate()
}

func (c SubscriberConfig) withDefaults() SubscriberConfig {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Prefetch == 0 {
		c.Prefetch = max(32*c.Concurrency, 256)
	}
	if c.Prefetch < c.Concurrency {
		c.Prefetch = c.Concurrency
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	c.Retry = c.Retry.withDefaults()
	c.DeadLetterBackoff = c.DeadLetterBackoff.withDefaultsFrom(DefaultDeadLetterBackoff)
	return c
}

// Subscriber consumes one subscription with the consumer engine. Create it with
// Conn.Subscribe, run it once with Run, stop it by cancelling Run's context or with Close.
type Subscriber struct {
	conn *Conn
	cfg  SubscriberConfig
	spec driver.SubscriptionSpec
	recv driver.Receiver
	dl   DeadLetterer
	log  *slog.Logger

	mu      sync.Mutex
	state   int // subIdle, subRunning, subDone
	stop    context.CancelFunc
	stopped chan struct{}
	runErr  error // what Run returned, for Status
}

const (
	subIdle = iota
	subRunning
	subDone
)

// Subscribe attaches to subscription on topic, creating it where the adapter may, so that
// every message published after Subscribe returns is retained for it. Call Run to consume.
//
// Errors wrap ErrInvalidTopic, ErrInvalidConfig, ErrClosed, or the adapter's error
// (ErrTopicNotFound, ErrSubscriptionNotFound, ErrUnavailable, …).
func (c *Conn) Subscribe(ctx context.Context, topic, subscription string, cfg SubscriberConfig) (*Subscriber, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("courier: subscribe: %w", ErrClosed)
	}
	if err := ValidateName(topic); err != nil {
		return nil, fmt.Errorf("courier: subscribe: topic: %w", err)
	}
	if err := ValidateName(subscription); err != nil {
		return nil, fmt.Errorf("courier: subscribe: subscription: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("courier: subscribe %s/%s: %w", topic, subscription, err)
	}
	if cfg.NativeDeadLetter && !c.caps.NativeDeadLetter {
		return nil, fmt.Errorf("courier: subscribe %s/%s: %w: %s has no native dead-lettering", topic, subscription, ErrInvalidConfig, c.caps.Name)
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = c.log
	}
	s := &Subscriber{
		conn: c,
		cfg:  cfg,
		log:  log.With("courier.topic", topic, "courier.subscription", subscription),
		spec: driver.SubscriptionSpec{
			Topic:        topic,
			Subscription: subscription,
			Prefetch:     cfg.Prefetch,
			Ordered:      cfg.ordering() != OrderNone,
			RequireOrder: cfg.ordering() == OrderPublish,
			Start:        cfg.Start,
		},
	}
	dlTopic := cfg.DeadLetterTopic
	if dlTopic == "" {
		dlTopic = c.DefaultDeadLetterTopic(topic)
	}
	switch {
	case cfg.NativeDeadLetter:
		s.spec.NativeDeadLetter = &driver.NativeDeadLetterSpec{Topic: dlTopic, MaxAttempts: cfg.Retry.MaxAttempts}
	case cfg.DeadLetter != nil:
		s.dl = cfg.DeadLetter
	default:
		s.dl = TopicDeadLetterer{Conn: c, Topic: dlTopic}
		if err := c.ensureSubscription(ctx, dlTopic, subscription+DeadLetterSuffix); err != nil {
			return nil, fmt.Errorf("courier: subscribe %s/%s: dead-letter topic %q: %w", topic, subscription, dlTopic, err)
		}
	}
	recv, err := c.drv.Subscribe(ctx, s.spec)
	if err != nil {
		return nil, fmt.Errorf("courier: subscribe %s/%s: %w", topic, subscription, err)
	}
	s.recv = recv
	if err := c.track(s); err != nil {
		_ = recv.Close(ctx)
		return nil, fmt.Errorf("courier: subscribe: %w", err)
	}
	return s, nil
}

// ensureSubscription creates a retained subscription without consuming from it.
func (c *Conn) ensureSubscription(ctx context.Context, topic, subscription string) error {
	r, err := c.drv.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Subscription: subscription, Prefetch: 1})
	if err != nil {
		return err
	}
	return r.Close(ctx)
}

// Topic returns the subscribed topic.
func (s *Subscriber) Topic() string { return s.spec.Topic }

// Subscription returns the subscription name.
func (s *Subscriber) Subscription() string { return s.spec.Subscription }

// Run consumes the subscription, calling h (wrapped in the configured middleware) for each
// message, until ctx is done or Close is called. Then it stops receiving, releases messages
// received but not started, waits up to DrainTimeout for handlers in flight, flushes
// acknowledgements, closes the subscription's receiver and returns nil.
//
// It returns an error when h is nil, when Run was already called, or when the adapter reports
// the subscription broken beyond its own recovery. A Subscriber runs once.
func (s *Subscriber) Run(ctx context.Context, h message.Handler) error {
	if h == nil {
		return fmt.Errorf("courier: run %s/%s: %w: nil handler", s.spec.Topic, s.spec.Subscription, ErrInvalidConfig)
	}
	s.mu.Lock()
	if s.state != subIdle {
		s.mu.Unlock()
		return fmt.Errorf("courier: run %s/%s: %w: a subscriber runs once", s.spec.Topic, s.spec.Subscription, ErrClosed)
	}
	runCtx, stop := context.WithCancel(ctx)
	s.state, s.stop, s.stopped = subRunning, stop, make(chan struct{})
	s.mu.Unlock()
	defer stop()

	e := newEngine(s.engineConfig(), s.recv, message.Chain(s.cfg.Middleware...)(h), ctx)
	err := e.run(runCtx)

	s.mu.Lock()
	s.state, s.runErr = subDone, err
	close(s.stopped)
	s.mu.Unlock()
	s.conn.untrack(s)
	return err
}

// engineConfig is what the engine of one Run needs.
func (s *Subscriber) engineConfig() engineConfig {
	return engineConfig{
		Topic:        s.spec.Topic,
		Subscription: s.spec.Subscription,
		Concurrency:  s.cfg.Concurrency,
		Prefetch:     s.cfg.Prefetch,
		DrainTimeout: s.cfg.DrainTimeout,
		Policy: policy{
			redelivery:        s.conn.caps.Redelivery,
			ordered:           s.cfg.ordering() != OrderNone,
			retry:             s.cfg.Retry,
			deadLetterBackoff: s.cfg.DeadLetterBackoff,
		},
		Native:            s.spec.NativeDeadLetter != nil,
		DeadLetter:        s.dl,
		OnDeadLetterError: s.cfg.OnDeadLetterError,
		Log:               s.log,
		Observer:          cmp.Or[Observer](s.cfg.Observer, s.conn.obs),
		Broker:            s.conn.caps.Name,
	}
}

// Close stops a running Run and waits for it to drain (bounded by ctx), or releases an idle
// subscriber. It is safe to call more than once; later calls return ErrClosed.
func (s *Subscriber) Close(ctx context.Context) error {
	s.mu.Lock()
	switch s.state {
	case subIdle:
		s.state = subDone
		s.mu.Unlock()
		s.conn.untrack(s)
		if err := s.recv.Close(ctx); err != nil {
			return fmt.Errorf("courier: close %s/%s: %w", s.spec.Topic, s.spec.Subscription, err)
		}
		return nil
	case subRunning:
		stop, stopped := s.stop, s.stopped
		s.mu.Unlock()
		stop()
		select {
		case <-stopped:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("courier: close %s/%s: %w", s.spec.Topic, s.spec.Subscription, ctx.Err())
		}
	default:
		s.mu.Unlock()
		return ErrClosed
	}
}

// errDrain reports handlers that outlived the drain timeout.
var errDrain = errors.New("courier: handlers still running after the drain timeout")
