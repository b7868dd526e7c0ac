// Package runner runs a service's subscriptions with one lifecycle: it subscribes them all,
// runs them, stops them all when the process gets SIGTERM or SIGINT, when the context ends or
// when one of them fails beyond recovery, drains them (each within its DrainTimeout) and
// reports their health for liveness and readiness probes.
//
//	r := runner.New(conn, runner.Config{})
//	r.Add(runner.Route{Topic: "orders", Subscription: "billing", Handler: bill})
//	r.Add(runner.Route{Topic: "orders", Subscription: "shipping", Handler: ship})
//	http.Handle("/", r.HealthHandler()) // /healthz, /readyz
//	err := r.Run(ctx)
//
// It replaces what every service writes by hand: a goroutine per subscriber, an error
// channel, a WaitGroup and signal handling.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// ErrRunning is returned by Add after Run started, and by a second Run.
var ErrRunning = errors.New("runner: already running")

// Route is one subscription the runner consumes.
type Route struct {
	// Topic and Subscription are what Conn.Subscribe is called with.
	Topic, Subscription string
	// Config configures the subscriber. A zero DrainTimeout takes Config.DrainTimeout of the
	// runner.
	Config transport.SubscriberConfig
	// Handler handles each message (wrapped in Config.Middleware).
	Handler message.Handler
	// Conn is the connection to subscribe on. Default: the runner's.
	Conn *transport.Conn
}

// Config configures a Runner. The zero value is valid.
type Config struct {
	// DrainTimeout is the drain timeout of routes that set none: how long stopping waits for
	// their handlers in flight. Default transport.DefaultDrainTimeout (30s).
	DrainTimeout time.Duration
	// Signals stop the runner. Default SIGINT and SIGTERM. Run listens for them only while
	// it runs.
	Signals []os.Signal
	// PingTimeout bounds the broker round trip of a readiness check. Default 2s.
	PingTimeout time.Duration
	// Logger receives the runner's log lines. Default slog.Default().
	Logger *slog.Logger
}

// DefaultPingTimeout is Config.PingTimeout's default.
const DefaultPingTimeout = 2 * time.Second

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.DrainTimeout < 0:
		return fmt.Errorf("%w: runner: DrainTimeout %v is negative", transport.ErrInvalidConfig, c.DrainTimeout)
	case c.PingTimeout < 0:
		return fmt.Errorf("%w: runner: PingTimeout %v is negative", transport.ErrInvalidConfig, c.PingTimeout)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.DrainTimeout == 0 {
		c.DrainTimeout = transport.DefaultDrainTimeout
	}
	if len(c.Signals) == 0 {
		c.Signals = []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = DefaultPingTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Runner runs many subscriptions with one lifecycle. Add routes, then Run once. Its health
// methods are safe to call from any goroutine at any time.
type Runner struct {
	conn *transport.Conn
	cfg  Config

	mu      sync.Mutex
	routes  []Route
	subs    []*transport.Subscriber
	started bool
	done    bool
}

// New returns a Runner whose routes subscribe on conn unless they name their own.
func New(conn *transport.Conn, cfg Config) *Runner {
	return &Runner{conn: conn, cfg: cfg}
}

// Add adds a route. It fails when Run has started, or when the route lacks a topic, a
// subscription, a handler or a connection.
func (r *Runner) Add(rt Route) error {
	if rt.Conn == nil {
		rt.Conn = r.conn
	}
	switch {
	case rt.Topic == "" || rt.Subscription == "":
		return fmt.Errorf("%w: runner: route needs a topic and a subscription", transport.ErrInvalidConfig)
	case rt.Handler == nil:
		return fmt.Errorf("%w: runner: route %s/%s has no handler", transport.ErrInvalidConfig, rt.Topic, rt.Subscription)
	case rt.Conn == nil:
		return fmt.Errorf("%w: runner: route %s/%s has no connection", transport.ErrInvalidConfig, rt.Topic, rt.Subscription)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return ErrRunning
	}
	r.routes = append(r.routes, rt)
	return nil
}

// Run subscribes every route, then consumes them all until ctx ends, one of Config.Signals
// arrives, or a subscriber fails beyond its adapter's recovery. Then it stops them all, each
// draining within its DrainTimeout, and returns: nil after a stop by signal or ctx, else the
// subscribers' errors joined. If a route cannot subscribe, the routes subscribed before it
// are closed and Run returns that error. A Runner runs once.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.cfg.Validate(); err != nil {
		return err
	}
	cfg := r.cfg.withDefaults()
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return ErrRunning
	}
	r.started = true
	routes := r.routes
	r.mu.Unlock()
	defer r.finish()
	if len(routes) == 0 {
		return fmt.Errorf("%w: runner: no routes", transport.ErrInvalidConfig)
	}
	ctx, stopSignals := signal.NotifyContext(ctx, cfg.Signals...)
	defer stopSignals()
	subs, err := r.subscribe(ctx, routes, cfg)
	if err != nil {
		return err
	}
	return r.runAll(ctx, routes, subs, cfg.Logger)
}

func (r *Runner) finish() {
	r.mu.Lock()
	r.done = true
	r.mu.Unlock()
}

// subscribe subscribes every route, or none.
func (r *Runner) subscribe(ctx context.Context, routes []Route, cfg Config) ([]*transport.Subscriber, error) {
	subs := make([]*transport.Subscriber, 0, len(routes))
	for _, rt := range routes {
		sc := rt.Config
		if sc.DrainTimeout == 0 {
			sc.DrainTimeout = cfg.DrainTimeout
		}
		s, err := rt.Conn.Subscribe(ctx, rt.Topic, rt.Subscription, sc)
		if err != nil {
			for _, prev := range subs {
				_ = prev.Close(context.WithoutCancel(ctx))
			}
			return nil, fmt.Errorf("runner: %w", err)
		}
		subs = append(subs, s)
	}
	r.mu.Lock()
	r.subs = subs
	r.mu.Unlock()
	return subs, nil
}

// runAll runs every subscriber and stops them all when ctx ends or the first one returns.
func (r *Runner) runAll(ctx context.Context, routes []Route, subs []*transport.Subscriber, log *slog.Logger) error {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make([]error, len(subs))
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Run(runCtx, routes[i].Handler)
			if runCtx.Err() == nil {
				log.Error("runner: a subscriber stopped; stopping the others",
					"courier.topic", s.Topic(), "courier.subscription", s.Subscription(), "error", errs[i])
			}
			stop()
		}()
	}
	log.Info("runner: started", "subscriptions", len(subs))
	<-runCtx.Done()
	log.Info("runner: stopping", "subscriptions", len(subs))
	wg.Wait()
	return errors.Join(errs...)
}
