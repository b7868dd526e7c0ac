package rabbitmq

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/transport/driver"

	amqp "github.com/rabbitmq/amqp091-go"
)

// session is one AMQP connection that re-dials itself. The driver keeps two: one for
// publishing and one for consuming, as RabbitMQ recommends, so that a publisher blocked by
// a resource alarm never stalls the acknowledgements that would relieve it.
//
// After the first successful dial a watcher goroutine waits for the connection to close;
// unless the session was closed, it re-dials with capped, jittered exponential backoff
// until it succeeds. Users of the session (publish channels, receivers) notice the loss
// through their own channels and call acquire, which waits for the next connection. Each
// connection has a generation number so that channels and delivery tags of an old one are
// recognised and dropped.
type session struct {
	cfg   *Config
	role  string // "publish" or "consume"
	log   *slog.Logger
	stats *counters

	dialMu sync.Mutex // serialises the first dial

	mu        sync.Mutex
	conn      *amqp.Connection
	gen       uint64
	ready     chan struct{} // closed while conn is usable; replaced when it is lost
	lastErr   error         // why the last dial failed
	started   bool
	closed    bool
	blocked   string        // non-empty while the broker blocks the connection: its reason
	unblocked chan struct{} // closed while not blocked
	isBlocked atomic.Bool   // blocked != "", for the publish loop

	done   chan struct{}      // closed by close
	ctx    context.Context    // cancelled by close: bounds re-dials
	cancel context.CancelFunc //
	wg     sync.WaitGroup
}

func newSession(cfg *Config, role string, stats *counters) *session {
	s := &session{cfg: cfg, role: role, stats: stats, log: cfg.Logger.With("courier.rabbitmq.connection", role),
		ready: make(chan struct{}), unblocked: make(chan struct{}), done: make(chan struct{})}
	close(s.unblocked)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// start dials the first connection, once; later calls return at once. A failure is
// returned (and a later call tries again): the first connection fails fast so that a wrong
// URL, password or vhost is reported to the caller instead of retried forever.
func (s *session) start(ctx context.Context) error {
	s.dialMu.Lock()
	defer s.dialMu.Unlock()
	s.mu.Lock()
	started, closed := s.started, s.closed
	s.mu.Unlock()
	if closed {
		return driver.ErrClosed
	}
	if started {
		return nil
	}
	conn, err := s.dial(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = conn.Close()
		return driver.ErrClosed
	}
	s.started = true
	s.up(conn)
	gen := s.gen
	s.mu.Unlock()
	s.wg.Add(1)
	go s.watch(conn, gen)
	return nil
}

// dial opens one connection, bounded by ctx and Config.DialTimeout.
func (s *session) dial(ctx context.Context) (*amqp.Connection, error) {
	cfg := s.cfg
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(cfg.ConnectionName + " (" + s.role + ")")
	ac := amqp.Config{
		Heartbeat:  cfg.Heartbeat,
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
			defer cancel()
			var d net.Dialer
			c, err := d.DialContext(dctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The TLS and AMQP handshakes must finish within the same bounds; amqp091-go
			// clears the deadline once the connection is open.
			deadline, _ := dctx.Deadline()
			if err := c.SetDeadline(deadline); err != nil {
				_ = c.Close()
				return nil, err
			}
			return c, nil
		},
	}
	if cfg.TLS != nil {
		ac.TLSClientConfig = cfg.TLS.Clone()
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rabbitmq: connect to %s: %w: %w", driver.RedactURL(cfg.URL), driver.ErrUnavailable, err)
	}
	conn, err := amqp.DialConfig(cfg.URL, ac)
	if err != nil {
		u, _ := parseURI(cfg.URL)
		return nil, mapError(fmt.Sprintf("connect to %s (vhost %q)", driver.RedactURL(cfg.URL), u.Vhost), err)
	}
	return conn, nil
}

// up installs a new connection; s.mu is held.
func (s *session) up(conn *amqp.Connection) {
	s.conn = conn
	s.gen++
	s.lastErr = nil
	close(s.ready)
	if s.blocked != "" {
		s.blocked = ""
		s.isBlocked.Store(false)
		close(s.unblocked)
	}
}

// down marks the connection of generation gen as lost; s.mu is held. It is a no-op when
// that connection is already replaced or marked.
func (s *session) down(gen uint64) {
	if s.conn == nil || s.gen != gen {
		return
	}
	s.conn = nil
	s.ready = make(chan struct{})
}

// watch follows the connection conn of generation gen: blocked/unblocked notifications
// while it lives, re-dialling when it dies, until the session is closed.
func (s *session) watch(conn *amqp.Connection, gen uint64) {
	defer s.wg.Done()
	for {
		reason := s.follow(conn)
		s.mu.Lock()
		s.down(gen)
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return
		}
		s.stats.connectionsLost.Add(1)
		if reason != nil {
			s.log.Warn("courier: rabbitmq connection lost; reconnecting", "error", reason)
		} else {
			s.log.Warn("courier: rabbitmq connection closed without a reason; reconnecting")
		}
		var ok bool
		if conn, gen, ok = s.redial(); !ok {
			return
		}
	}
}

// follow relays conn's blocked notifications until it closes, and returns why it closed
// (nil for a close of ours).
func (s *session) follow(conn *amqp.Connection) *amqp.Error {
	closes := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	for {
		select {
		case b, ok := <-blocks:
			if !ok {
				blocks = nil // closed with the connection; closes follows
				continue
			}
			s.setBlocked(b)
		case e := <-closes:
			return e
		}
	}
}

// redial dials until it succeeds or the session is closed (ok false).
func (s *session) redial() (conn *amqp.Connection, gen uint64, ok bool) {
	delay := s.cfg.ReconnectDelay
	for attempt := 1; ; attempt++ {
		t := time.NewTimer(jitter(delay))
		select {
		case <-s.done:
			t.Stop()
			return nil, 0, false
		case <-t.C:
		}
		conn, err := s.dial(s.ctx)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			if conn != nil {
				_ = conn.Close()
			}
			return nil, 0, false
		}
		if err == nil {
			s.up(conn)
			gen := s.gen
			s.mu.Unlock()
			s.stats.reconnects.Add(1)
			s.log.Info("courier: rabbitmq reconnected", "attempts", attempt)
			return conn, gen, true
		}
		s.lastErr = err
		s.mu.Unlock()
		s.log.Warn("courier: rabbitmq reconnect failed; trying again", "attempt", attempt, "delay", delay, "error", err)
		delay = min(2*delay, s.cfg.MaxReconnectDelay)
	}
}

// jitter spreads d by ±20%.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// acquire returns the current connection and its generation, waiting (bounded by ctx) while
// the session reconnects.
func (s *session) acquire(ctx context.Context) (*amqp.Connection, uint64, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, 0, driver.ErrClosed
		}
		if !s.started {
			s.mu.Unlock()
			return nil, 0, fmt.Errorf("%w: rabbitmq: %s connection not started", driver.ErrUnavailable, s.role)
		}
		if s.conn != nil {
			if !s.conn.IsClosed() {
				c, g := s.conn, s.gen
				s.mu.Unlock()
				return c, g, nil
			}
			s.down(s.gen) // the watcher will notice too, and re-dial
		}
		ready, lastErr := s.ready, s.lastErr
		s.mu.Unlock()
		select {
		case <-ready:
		case <-s.done:
			return nil, 0, driver.ErrClosed
		case <-ctx.Done():
			if lastErr != nil {
				return nil, 0, fmt.Errorf("%w: rabbitmq: reconnecting (last attempt: %v): %w", driver.ErrUnavailable, lastErr, ctx.Err())
			}
			return nil, 0, fmt.Errorf("%w: rabbitmq: reconnecting: %w", driver.ErrUnavailable, ctx.Err())
		}
	}
}

// current reports whether gen is the generation of the live connection.
func (s *session) current(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn != nil && s.gen == gen && !s.conn.IsClosed()
}

func (s *session) setBlocked(b amqp.Blocking) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case b.Active && s.blocked == "":
		s.blocked = b.Reason
		if s.blocked == "" {
			s.blocked = "resource alarm"
		}
		s.unblocked = make(chan struct{})
		s.isBlocked.Store(true)
		s.log.Warn("courier: rabbitmq blocked the connection; publishing waits", "reason", b.Reason)
	case !b.Active && s.blocked != "":
		s.blocked = ""
		s.isBlocked.Store(false)
		close(s.unblocked)
		s.log.Info("courier: rabbitmq unblocked the connection")
	}
}

// waitUnblocked returns at once unless the broker blocked the connection (a resource alarm:
// memory or disk); then it waits until it is unblocked, the connection is lost, or ctx ends.
func (s *session) waitUnblocked(ctx context.Context) error {
	s.mu.Lock()
	reason, ch := s.blocked, s.unblocked
	s.mu.Unlock()
	if reason == "" {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-s.done:
		return driver.ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("%w: rabbitmq: the broker blocks publishing (%s): %w", driver.ErrUnavailable, reason, ctx.Err())
	}
}

// close closes the connection and stops re-dialling; it waits for the watcher, bounded by
// ctx.
func (s *session) close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.cancel()
	conn := s.conn
	s.conn = nil
	s.mu.Unlock()
	var err error
	if conn != nil && !conn.IsClosed() {
		deadline := time.Now().Add(5 * time.Second)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		if cerr := conn.CloseDeadline(deadline); cerr != nil && !conn.IsClosed() {
			err = mapError("close "+s.role+" connection", cerr)
		}
	}
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		return fmt.Errorf("rabbitmq: close %s connection: %w", s.role, ctx.Err())
	}
	return err
}
