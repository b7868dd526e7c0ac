package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/courierhq/courier/internal/urlparam"
	"github.com/courierhq/courier/transport/driver"

	"github.com/courierhq/courier/transport"
)

func init() {
	open := func(ctx context.Context, u *url.URL, opts driver.OpenOptions) (driver.Driver, error) {
		cfg, err := ConfigFromURL(u)
		if err != nil {
			return nil, err
		}
		cfg.Logger = opts.Logger
		return New(ctx, cfg)
	}
	driver.Register("amqp", open)
	driver.Register("amqps", open)
}

// Driver is the RabbitMQ adapter; it implements driver.Driver. transport.Conn.Driver
// returns it for a connection opened with an amqp:// or amqps:// URL.
type Driver struct {
	cfg Config
	log *slog.Logger

	pubSession *session // publishing, delayed-retry copies
	subSession *session // consuming, started on the first Subscribe
	pub        *publisher

	frameMax atomic.Int64 // negotiated AMQP frame size of the publish connection
	closed   atomic.Bool
	stats    counters
	bgMu     sync.Mutex
	bgDone   bool           // Close is waiting for bg: nothing new may start
	bg       sync.WaitGroup // calls and channel closes left running in the background
}

// Stats are counters since the Driver was opened, for monitoring and tests.
type Stats struct {
	// ConnectionsLost counts connections (publishing or consuming) that closed without
	// Close being called.
	ConnectionsLost int64
	// Reconnects counts successful re-dials after a loss.
	Reconnects int64
	// Republished counts messages published again because their channel was lost before
	// the broker confirmed them.
	Republished int64
	// ConsumersRestarted counts consumers started again after their channel was lost or
	// the broker cancelled them.
	ConsumersRestarted int64
}

type counters struct {
	connectionsLost, reconnects, republished, consumersRestarted atomic.Int64
}

// Stats returns the driver's counters.
func (d *Driver) Stats() Stats {
	return Stats{
		ConnectionsLost:    d.stats.connectionsLost.Load(),
		Reconnects:         d.stats.reconnects.Load(),
		Republished:        d.stats.republished.Load(),
		ConsumersRestarted: d.stats.consumersRestarted.Load(),
	}
}

// New connects to RabbitMQ. It dials the publishing connection at once, so that a wrong
// address, password or vhost fails here (ErrUnavailable, ErrAccessDenied); the consuming
// connection is dialled by the first Subscribe. Lost connections are re-dialled in the
// background from then on.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	d := &Driver{cfg: cfg, log: cfg.Logger.With("courier.broker", "rabbitmq")}
	d.cfg.Logger = d.log
	urlparam.LogNotes(d.log, cfg.urlNotes)
	d.pubSession = newSession(&d.cfg, "publish", &d.stats)
	d.subSession = newSession(&d.cfg, "consume", &d.stats)
	d.pub = newPublisher(d)
	if err := d.pubSession.start(ctx); err != nil {
		_ = d.pubSession.close(context.Background())
		return nil, err
	}
	conn, _, err := d.pubSession.acquire(ctx)
	if err != nil {
		_ = d.pubSession.close(context.Background())
		return nil, err
	}
	d.frameMax.Store(int64(conn.Config.FrameSize))
	return d, nil
}

// Open connects to RabbitMQ (see New) and returns the connection users hold.
func Open(ctx context.Context, cfg Config) (*transport.Conn, error) {
	d, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return transport.NewConn(d, transport.ConnConfig{Logger: cfg.Logger}), nil
}

// Config returns the configuration in use, defaults filled in. Its URL holds credentials:
// do not log it.
func (d *Driver) Config() Config { return d.cfg }

// Capabilities implements driver.Driver.
func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{
		Name:                "rabbitmq",
		Redelivery:          true,
		DeliveryCount:       d.cfg.QueueType == Quorum,
		FanOut:              true,
		Persistent:          true,
		NativeOrdering:      d.cfg.SingleActiveConsumer,
		NativeDeadLetter:    true,
		Backlog:             true,
		MaxMessageBytes:     d.cfg.MaxMessageBytes,
		MaxHeaderValueBytes: d.cfg.MaxHeaderValueBytes,
		MaxHeaderNameBytes:  maxShortString,
		MaxHeaderBytes:      120 << 10, // all headers fit one AMQP frame (128 KiB by default)
		MaxBatch:            d.cfg.MaxInFlight,
		PipelinedPublish:    true,
	}
}

// Close implements driver.Driver: it closes both connections. Publishes still waiting
// for a reconnect fail with ErrClosed.
func (d *Driver) Close(ctx context.Context) error {
	if !d.closed.CompareAndSwap(false, true) {
		return driver.ErrClosed
	}
	d.pub.close()
	err := errors.Join(d.subSession.close(ctx), d.pubSession.close(ctx))
	// Channel closes still running in the background end with their connection.
	d.bgMu.Lock()
	d.bgDone = true
	d.bgMu.Unlock()
	waited := make(chan struct{})
	go func() { d.bg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("rabbitmq: close: %w", ctx.Err()))
	}
	return err
}

func (d *Driver) errClosed(what string) error {
	return fmt.Errorf("rabbitmq: %s: %w", what, driver.ErrClosed)
}

// rpc runs synchronous AMQP calls, which amqp091-go cannot cancel, bounded by ctx: while
// the broker blocks the connection (a resource alarm) it answers nothing. When ctx ends
// first, the calls go on in the background (ending at the latest with the connection) and
// undo runs if they succeed.
func (d *Driver) rpc(ctx context.Context, fn func() error, undo func()) error {
	var mu sync.Mutex
	abandoned := false
	done := make(chan error, 1)
	if !d.background(func() {
		err := fn()
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			if err == nil && undo != nil {
				undo()
			}
			return
		}
		done <- err
	}) {
		return d.errClosed("call")
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		select {
		case err := <-done:
			return err
		default:
		}
		abandoned = true
		return fmt.Errorf("%w: rabbitmq: no answer from the broker: %w", driver.ErrUnavailable, ctx.Err())
	}
}

// background runs fn in a goroutine that Close waits for; false (and fn not run) once Close
// has started waiting.
func (d *Driver) background(fn func()) bool {
	d.bgMu.Lock()
	defer d.bgMu.Unlock()
	if d.bgDone {
		return false
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		fn()
	}()
	return true
}
