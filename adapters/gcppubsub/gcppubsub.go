package gcppubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/courierhq/courier/transport/driver"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
	"google.golang.org/api/support/bundler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/transport"
)

func init() {
	driver.Register(Scheme, func(ctx context.Context, u *url.URL, opts driver.OpenOptions) (driver.Driver, error) {
		cfg, err := ConfigFromURL(u)
		if err != nil {
			return nil, err
		}
		cfg.Logger = opts.Logger
		return New(ctx, cfg)
	})
}

// Pub/Sub's limits, from https://cloud.google.com/pubsub/quotas#resource_limits.
const (
	// maxRequestBytes is the largest Publish request Pub/Sub accepts.
	maxRequestBytes = 10_000_000
	// MaxMessageBytes is the largest message (message.Size) Courier publishes: Pub/Sub's 10 MB
	// less room for Courier's own attributes and the request envelope.
	MaxMessageBytes = maxRequestBytes - 8<<10
	// MaxAttributes is how many attributes a Pub/Sub message may carry; Courier uses two
	// (courier-id, courier-published), leaving MaxAttributes-2 for headers.
	MaxAttributes = 100
	// MaxAttributeKeyBytes and MaxAttributeValueBytes bound a header's name and value.
	MaxAttributeKeyBytes   = 256
	MaxAttributeValueBytes = 1024
	// MaxOrderingKeyBytes bounds Message.Key.
	MaxOrderingKeyBytes = 1024
	// minDeadLetterAttempts and maxDeadLetterAttempts bound a dead-letter policy's
	// max_delivery_attempts.
	minDeadLetterAttempts = 5
	maxDeadLetterAttempts = 100
)

// Driver is the Pub/Sub adapter; it implements driver.Driver. Conn.Driver() returns it,
// and Client exposes the underlying client for what Courier does not cover.
type Driver struct {
	cfg    Config
	client *pubsub.Client
	log    *slog.Logger

	mu     sync.Mutex
	closed atomic.Bool
	pubs   map[string]*topicPublisher // by Pub/Sub topic ID

	attempts attemptTable
}

// Open connects to Pub/Sub and returns a Courier connection. It checks that Pub/Sub (or the
// emulator) answers, within Config.DialTimeout: an endpoint with nothing listening fails
// Open with driver.ErrUnavailable naming the endpoint. A missing permission shows on the
// first Publish or Subscribe, with an error that says so.
func Open(ctx context.Context, cfg Config) (*transport.Conn, error) {
	d, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return transport.NewConn(d, transport.ConnConfig{Logger: cfg.Logger}), nil
}

// New returns the Driver behind Open, for wrapping with transport.NewConn yourself.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var opts []option.ClientOption
	if cfg.Endpoint != "" {
		opts = append(opts,
			option.WithEndpoint(cfg.Endpoint),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
			option.WithTelemetryDisabled(),
		)
	}
	opts = append(opts, cfg.ClientOptions...)
	client, err := pubsub.NewClient(ctx, cfg.Project, opts...)
	if err != nil {
		return nil, fmt.Errorf("pubsub: create client for project %q: %w", cfg.Project, classify(err, driver.ErrInvalidConfig, driver.ErrInvalidConfig))
	}
	if err := checkReady(ctx, cfg, client); err != nil {
		_ = client.Close()
		return nil, err
	}
	return &Driver{
		cfg:    cfg,
		client: client,
		log:    cfg.Logger.With("courier.adapter", "pubsub", "pubsub.project", cfg.Project),
		pubs:   map[string]*topicPublisher{},
	}, nil
}

// Client returns the Pub/Sub client, for administration Courier does not do. Do not close it.
func (d *Driver) Client() *pubsub.Client { return d.client }

// Capabilities implements driver.Driver.
func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{
		Name:                "pubsub",
		Redelivery:          true,
		DeliveryCount:       false, // only with a dead-letter policy; see the package documentation
		FanOut:              true,
		Persistent:          true,
		NativeOrdering:      true,
		NativeDeadLetter:    true,
		MaxMessageBytes:     MaxMessageBytes,
		MaxHeaderValueBytes: MaxAttributeValueBytes,
		MaxHeaderNameBytes:  MaxAttributeKeyBytes,
		MaxHeaders:          MaxAttributes - 2, // Courier's own two
		MaxKeyBytes:         MaxOrderingKeyBytes,
		MaxIDBytes:          MaxAttributeValueBytes,
		MaxBatch:            pubsub.MaxPublishRequestCount,
	}
}

// Close implements driver.Driver: it sends what the publishers still hold, stops them and
// closes the client. It returns ctx's error if that takes longer than ctx allows (the
// publishers keep flushing in the background until their own timeout).
func (d *Driver) Close(ctx context.Context) error {
	d.mu.Lock()
	if !d.closed.CompareAndSwap(false, true) {
		d.mu.Unlock()
		return driver.ErrClosed
	}
	pubs := d.pubs
	d.pubs = nil
	d.mu.Unlock()

	done := make(chan error, 1)
	go func() {
		var wg sync.WaitGroup
		for _, tp := range pubs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-tp.ready
				if tp.p != nil {
					tp.p.Stop()
				}
			}()
		}
		wg.Wait()
		done <- d.client.Close()
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("pubsub: close client: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pubsub: close: publishers still flushing: %w", ctx.Err())
	}
}

func (d *Driver) topicPath(id string) string {
	return "projects/" + d.cfg.Project + "/topics/" + id
}

func (d *Driver) subscriptionPath(id string) string {
	return "projects/" + d.cfg.Project + "/subscriptions/" + id
}

// topicID maps a Courier topic name to its Pub/Sub topic ID (the prefix added) and checks it.
func (d *Driver) topicID(topic string) (string, error) {
	id := d.cfg.Prefix + topic
	if err := checkID("topic", id); err != nil {
		return "", fmt.Errorf("%w: %v", driver.ErrInvalidTopic, err)
	}
	return id, nil
}

// classify returns the Courier error kind for a client or gRPC error. notFound is the kind
// for codes.NotFound (a topic or a subscription); invalid the kind for InvalidArgument and
// FailedPrecondition (a bad message on publish, a bad setting on administration).
func classify(err error, notFound, invalid error) error {
	switch {
	case errors.Is(err, pubsub.ErrPublisherStopped):
		return driver.ErrClosed
	case errors.Is(err, bundler.ErrOversizedItem):
		return driver.ErrMessageTooLarge
	}
	switch status.Code(err) {
	case codes.NotFound:
		return notFound
	case codes.PermissionDenied, codes.Unauthenticated:
		return driver.ErrAccessDenied
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return invalid
	default:
		// Unavailable, DeadlineExceeded, ResourceExhausted, Aborted, Internal, Unknown, a
		// dial failure: the broker could not do it now.
		return driver.ErrUnavailable
	}
}

// wrap returns err, from a call made with ctx, as a Courier error: "pubsub: <what>: <kind>:
// <err>". When ctx ended, the error also matches ctx's error (gRPC reports it as a status):
// a deadline is driver.ErrUnavailable too (Pub/Sub did not answer in time; the client
// retries an unreachable endpoint until then), a cancellation is not (the caller gave up).
func wrap(ctx context.Context, what string, err error, notFound, invalid error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("pubsub: %s: no answer before the deadline: %w: %w", what, driver.ErrUnavailable, err)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("pubsub: %s: %w", what, err)
	}
	return fmt.Errorf("pubsub: %s: %w: %w", what, classify(err, notFound, invalid), err)
}
