package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/courierhq/courier/message"
)

// ErrClosed is returned by Run on a closed relay, and ErrRunning by a second concurrent Run.
var (
	ErrClosed  = errors.New("outbox: relay closed")
	ErrRunning = errors.New("outbox: relay already running")
)

// relayKeyLock is the first half of the transaction-level advisory lock a relay holds on each
// ordering key it is sending ("obr" in ASCII).
const relayKeyLock = 0x6f6272

// Relay moves committed outbox rows to a Publisher. See the package documentation for the
// guarantees. Create it with NewRelay, start it with Run, stop it by cancelling Run's context
// or with Close.
type Relay struct {
	cfg Config

	mu      sync.Mutex
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
	backoff map[string]failure // "k:<key>" or "s:<seq>" → when to try again; Run's goroutine only
}

// failure is a failing key's (or unkeyed row's) backoff state.
type failure struct {
	n     int
	until time.Time
}

// NewRelay validates cfg and returns a relay.
func NewRelay(cfg Config) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Relay{cfg: cfg.withDefaults(), backoff: map[string]failure{}}, nil
}

// Run relays until ctx ends or Close is called, then returns nil (after finishing the round
// in progress, bounded by PublishTimeout). Database errors are logged and retried at the poll
// interval; they do not end Run. It returns ErrClosed after Close and ErrRunning while
// another Run of the same relay is active.
func (r *Relay) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return ErrClosed
	case r.done != nil:
		r.mu.Unlock()
		return ErrRunning
	}
	r.cancel, r.done = cancel, make(chan struct{})
	done := r.done
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.cancel, r.done = nil, nil
		r.mu.Unlock()
		close(done)
	}()
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	if !r.cfg.NoListen {
		wg.Go(func() { r.listen(ctx, wake) })
	}
	r.loop(ctx, wake)
	cancel()
	wg.Wait()
	return nil
}

// Close stops a running Run and waits for it to return (or for ctx to end). Later Runs
// return ErrClosed.
func (r *Relay) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("outbox: close: %w", context.Cause(ctx))
	}
}

// loop runs rounds: at once again while rounds come back full, else on a notification or
// after PollInterval.
func (r *Relay) loop(ctx context.Context, wake <-chan struct{}) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-timer.C:
		}
		for ctx.Err() == nil {
			full, err := r.round(ctx)
			if err != nil {
				r.cfg.Logger.Warn("outbox relay: round failed", "err", err)
			}
			if err != nil || !full {
				break
			}
		}
		timer.Reset(r.cfg.PollInterval)
	}
}

// listen holds a connection in LISTEN and turns notifications into wake-ups, reconnecting
// after PollInterval when the connection breaks.
func (r *Relay) listen(ctx context.Context, wake chan<- struct{}) {
	for {
		err := r.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		r.cfg.Logger.Warn("outbox relay: LISTEN failed; polling until it is back", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.PollInterval):
		}
	}
}

func (r *Relay) listenOnce(ctx context.Context, wake chan<- struct{}) error {
	pc, err := r.cfg.DB.Acquire(ctx)
	if err != nil {
		return err
	}
	conn := pc.Hijack() // a connection in LISTEN state must not go back to the pool
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return err
	}
	signal(wake) // rows committed before LISTEN took effect
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		signal(wake)
	}
}

func signal(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// row is one outbox row.
type row struct {
	seq     int64
	id      string
	topic   string
	key     string
	payload []byte
	headers []byte
	publish time.Time
}

// message decodes the row; headers that are not a JSON object of strings fail the row.
func (w *row) message() (*message.Message, error) {
	m := &message.Message{ID: w.id, Key: w.key, Payload: w.payload, PublishTime: w.publish, Headers: message.Headers{}}
	if err := json.Unmarshal(w.headers, &m.Headers); err != nil {
		return nil, fmt.Errorf("%w: row %d: %w", errBadHeaders, w.seq, err)
	}
	return m, nil
}

func scanRows(rows pgx.Rows) ([]row, error) {
	var out []row
	for rows.Next() {
		var w row
		if err := rows.Scan(&w.seq, &w.id, &w.topic, &w.key, &w.payload, &w.headers, &w.publish); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

func backoffName(w row) string {
	if w.key != "" {
		return "k:" + w.key
	}
	return "s:" + strconv.FormatInt(w.seq, 10)
}
