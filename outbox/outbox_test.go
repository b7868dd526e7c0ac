package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"

	_ "github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/outbox"
	"github.com/courierhq/courier/transport"
)

// TestMain checks for leaked goroutines, except those the broker clients of the integration
// tests leave behind by design (Pub/Sub's stats worker and stream keep-alive, idle HTTP
// connections of the SQS client's pool, kafka-go's connection pool).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreTopFunction("cloud.google.com/go/pubsub/v2.(*messageIterator).streamKeepAliveHandler"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*conn).run"))
}

// schemaURL returns a PostgreSQL URL whose search_path is a fresh schema holding a migrated
// outbox, so that tests (and other helpers' tests) never share a table.
func schemaURL(t testing.TB) string {
	t.Helper()
	base := brokers.Endpoint(t, brokers.Postgres)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	schema := fmt.Sprintf("outbox_test_%d_%06d", time.Now().Unix(), rand.IntN(1_000_000))
	admin, err := pgxpool.New(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if a, err := pgxpool.New(ctx, base); err == nil {
			_, _ = a.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			a.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	pool := openPool(t, u.String())
	if err := outbox.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := outbox.Migrate(ctx, pool); err != nil { // idempotent
		t.Fatalf("second migrate: %v", err)
	}
	return u.String()
}

func openPool(t testing.TB, u string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// write commits (or rolls back) one transaction writing msgs to topic.
func write(t testing.TB, pool *pgxpool.Pool, topic string, commit bool, msgs ...*message.Message) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := (outbox.Writer{}).Write(ctx, tx, topic, msgs...); err != nil {
		_ = tx.Rollback(ctx)
		t.Fatal(err)
	}
	if commit {
		err = tx.Commit(ctx)
	} else {
		err = tx.Rollback(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func startRelay(t testing.TB, cfg outbox.Config) *outbox.Relay {
	t.Helper()
	r, err := outbox.NewRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- r.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Error(err)
		}
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// received collects what a subscription got, by ID.
type received struct {
	mu   sync.Mutex
	ids  map[string]int
	keys map[string][]string // key → payloads in receive order
	at   map[string]time.Time
}

func newReceived() *received {
	return &received{ids: map[string]int{}, keys: map[string][]string{}, at: map[string]time.Time{}}
}

func (r *received) handle(_ context.Context, m *message.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids[m.ID]++
	if r.ids[m.ID] == 1 {
		r.at[m.ID] = time.Now()
		r.keys[m.Key] = append(r.keys[m.Key], string(m.Payload))
	}
	return nil
}

func (r *received) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

func (r *received) waitFor(t testing.TB, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for r.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d messages within %v", r.count(), n, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// subscribe opens url and subscribes a fresh subscription to topic.
func subscribe(t testing.TB, rawURL, topic string, rec *received) *transport.Conn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := transport.OpenConfig(ctx, rawURL, transport.ConnConfig{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := conn.Subscribe(ctx, topic, "outbox-test-"+strconv.Itoa(rand.IntN(1_000_000)), transport.SubscriberConfig{Concurrency: 4, Start: transport.StartEarliest})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx, rec.handle) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = conn.Close(context.Background())
	})
	return conn
}

func msgs(prefix string, n, keys int) []*message.Message {
	out := make([]*message.Message, n)
	for i := range out {
		out[i] = &message.Message{Payload: fmt.Appendf(nil, "%s-%06d", prefix, i), Headers: message.Headers{"n": strconv.Itoa(i)}}
		if keys > 0 {
			out[i].Key = fmt.Sprintf("k%02d", i%keys)
		}
	}
	return out
}

func TestCommittedReachBrokerRolledBackNever(t *testing.T) {
	u := schemaURL(t)
	pool := openPool(t, u)
	topic := fmt.Sprintf("outbox-memory-%06d", rand.IntN(1_000_000))
	rec := newReceived()
	conn := subscribe(t, "memory://", topic, rec)
	startRelay(t, outbox.Config{DB: pool, Publisher: conn, PollInterval: 50 * time.Millisecond, Logger: quiet()})

	committed := msgs("c", 200, 7)
	write(t, pool, topic, true, committed[:100]...)
	rolled := msgs("r", 50, 3)
	write(t, pool, topic, false, rolled...)
	// database/sql through pgx's stdlib driver
	db, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, commit := range []bool{true, false} {
		tx, err := db.BeginTx(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		batch := committed[100:]
		if !commit {
			batch = msgs("rs", 30, 0)
			rolled = append(rolled, batch...)
		}
		if err := (outbox.Writer{}).WriteSQL(context.Background(), tx, topic, batch...); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	rec.waitFor(t, len(committed), 20*time.Second)
	time.Sleep(300 * time.Millisecond) // several poll intervals: anything rolled back would show
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, m := range committed {
		if m.ID == "" || rec.ids[m.ID] != 1 {
			t.Fatalf("committed message %q (ID %q) received %d times", m.Payload, m.ID, rec.ids[m.ID])
		}
	}
	for _, m := range rolled {
		if rec.ids[m.ID] != 0 {
			t.Fatalf("rolled-back message %q was published", m.Payload)
		}
	}
	checkOrder(t, rec.keys)
	var left int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM courier_outbox").Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d rows left in the outbox (err %v): sent rows must be deleted", left, err)
	}
}

// checkOrder fails when a key's payloads (…-<n>) were first received out of order.
func checkOrder(t testing.TB, keys map[string][]string) {
	t.Helper()
	for k, ps := range keys {
		if k == "" {
			continue
		}
		if !slices.IsSortedFunc(ps, strings.Compare) {
			t.Fatalf("key %s received out of order: %v", k, ps)
		}
	}
}

func TestWriteRejectsInvalid(t *testing.T) {
	for name, c := range map[string]struct {
		topic string
		msgs  []*message.Message
	}{
		"no topic":     {"", msgs("x", 1, 0)},
		"no messages":  {"t", nil},
		"nil message":  {"t", []*message.Message{nil}},
		"bad key":      {"t", []*message.Message{{Key: "\xff"}}},
		"NUL in ID":    {"t", []*message.Message{{ID: "a\x00"}}},
		"empty header": {"t", []*message.Message{{Headers: message.Headers{"": "v"}}}},
		"too many":     {"t", msgs("x", outbox.MaxWrite+1, 0)},
	} {
		t.Run(name, func(t *testing.T) {
			err := (outbox.Writer{}).Write(context.Background(), nil, c.topic, c.msgs...)
			if !errors.Is(err, outbox.ErrInvalidMessage) {
				t.Fatalf("err = %v, want ErrInvalidMessage", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	pool := &pgxpool.Pool{}
	for name, c := range map[string]outbox.Config{
		"no DB":        {Publisher: fakePub{}},
		"no publisher": {DB: pool},
		"negative":     {DB: pool, Publisher: fakePub{}, PollInterval: -1},
		"batch":        {DB: pool, Publisher: fakePub{}, BatchSize: -1},
		"retry order":  {DB: pool, Publisher: fakePub{}, RetryMin: time.Minute, RetryMax: time.Second},
	} {
		if err := c.Validate(); !errors.Is(err, outbox.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
		}
	}
	if err := (outbox.Config{DB: pool, Publisher: fakePub{}}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

// counting counts one relay's sends before passing them on.
type counting struct {
	p *tracker
	n *atomic.Int64
}

func (c counting) Publish(ctx context.Context, topic string, ms ...*message.Message) error {
	c.n.Add(int64(len(ms)))
	return c.p.Publish(ctx, topic, ms...)
}

type fakePub struct{}

func (fakePub) Publish(context.Context, string, ...*message.Message) error { return nil }

// tracker is a Publisher that records every send, flags a row sent by two relays at the
// same time, and slows sends down to widen any race.
type tracker struct {
	mu         sync.Mutex
	inFlight   map[string]int
	sends      map[string]int
	concurrent int
	order      map[string][]string
	at         map[string]time.Time
	failKey    string // publishes of this key fail while failFor > 0
	failFor    int
}

func newTracker() *tracker {
	return &tracker{inFlight: map[string]int{}, sends: map[string]int{}, order: map[string][]string{}, at: map[string]time.Time{}}
}

func (p *tracker) Publish(ctx context.Context, topic string, ms ...*message.Message) error {
	p.mu.Lock()
	if p.failFor > 0 && ms[0].Key == p.failKey {
		p.failFor--
		p.mu.Unlock()
		return fmt.Errorf("injected failure")
	}
	for _, m := range ms {
		p.inFlight[m.ID]++
		if p.inFlight[m.ID] > 1 {
			p.concurrent++
		}
	}
	p.mu.Unlock()
	time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range ms {
		p.inFlight[m.ID]--
		p.sends[m.ID]++
		if p.sends[m.ID] == 1 {
			p.order[m.Key] = append(p.order[m.Key], string(m.Payload))
			p.at[m.ID] = time.Now()
		}
	}
	return nil
}

func TestTwoRelaysSendEachRowOnceInKeyOrder(t *testing.T) {
	u := schemaURL(t)
	pool := openPool(t, u)
	pub := newTracker()
	var byRelay [2]atomic.Int64
	for i := range 2 {
		startRelay(t, outbox.Config{DB: openPool(t, u), Publisher: counting{pub, &byRelay[i]}, BatchSize: 20, Parallelism: 4,
			PollInterval: 20 * time.Millisecond, Logger: quiet()})
	}
	const writers, per = 8, 250
	all := make([][]*message.Message, writers)
	var wg sync.WaitGroup
	for w := range writers {
		all[w] = msgs(fmt.Sprintf("w%d", w), per, 0)
		for i, m := range all[w] {
			if i%5 != 0 { // one in five unkeyed
				m.Key = fmt.Sprintf("k%02d", i%10)
				m.Payload = fmt.Appendf(nil, "%s", m.Payload)
			}
		}
		wg.Go(func() {
			for i := 0; i < per; i += 10 {
				write(t, pool, "two-relays", true, all[w][i:i+10]...)
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for {
		pub.mu.Lock()
		n := len(pub.sends)
		pub.mu.Unlock()
		if n == writers*per {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d rows sent", n, writers*per)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	dups := 0
	for _, n := range pub.sends {
		dups += n - 1
	}
	t.Logf("two relays: %d rows (%d and %d by each), %d duplicate sends, %d sent by two relays at once",
		writers*per, byRelay[0].Load(), byRelay[1].Load(), dups, pub.concurrent)
	if byRelay[0].Load() == 0 || byRelay[1].Load() == 0 {
		t.Fatal("one relay sent nothing: the test did not run two relays in parallel")
	}
	if pub.concurrent != 0 || dups != 0 {
		t.Fatalf("%d rows sent concurrently, %d duplicate sends (no crash happened: want 0)", pub.concurrent, dups)
	}
	// Per key: writers interleave, so check each writer's rows of a key stay in order.
	for k, ps := range pub.order {
		if k == "" {
			continue
		}
		byWriter := map[string][]string{}
		for _, p := range ps {
			w, _, _ := strings.Cut(p, "-")
			byWriter[w] = append(byWriter[w], p)
		}
		checkOrder(t, byWriter)
	}
}

func TestFailedKeyBlocksOnlyItself(t *testing.T) {
	u := schemaURL(t)
	pool := openPool(t, u)
	pub := newTracker()
	pub.failKey, pub.failFor = "k00", 3
	startRelay(t, outbox.Config{DB: pool, Publisher: pub, PollInterval: 20 * time.Millisecond,
		RetryMin: 50 * time.Millisecond, RetryMax: 100 * time.Millisecond, Logger: quiet()})
	ms := msgs("f", 100, 4)
	write(t, pool, "fail-key", true, ms...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		pub.mu.Lock()
		n, others := len(pub.sends), len(pub.order["k01"])+len(pub.order["k02"])+len(pub.order["k03"])
		k0 := len(pub.order["k00"])
		pub.mu.Unlock()
		if others == 75 && k0 == 0 {
			break // the other keys went while k00 was failing
		}
		if n == 100 || time.Now().After(deadline) {
			t.Fatalf("want the other keys sent while k00 fails: k00 %d, others %d", k0, others)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for time.Now().Before(deadline) {
		pub.mu.Lock()
		n := len(pub.sends)
		pub.mu.Unlock()
		if n == 100 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if len(pub.sends) != 100 {
		t.Fatalf("%d of 100 sent after the failures passed", len(pub.sends))
	}
	checkOrder(t, pub.order)
	var attempts int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM courier_outbox").Scan(&attempts); err != nil || attempts != 0 {
		t.Fatalf("rows left: %d (%v)", attempts, err)
	}
}

// TestCommitToBrokerLatency measures commit → broker-confirmed latency on memory:// with one
// write transaction at a time (the relay woken by NOTIFY). The figure is logged, not
// asserted.
func TestCommitToBrokerLatency(t *testing.T) {
	u := schemaURL(t)
	pool := openPool(t, u)
	pub := newTracker()
	startRelay(t, outbox.Config{DB: pool, Publisher: latencyPub{pub}, PollInterval: 10 * time.Second, Logger: quiet()})
	time.Sleep(200 * time.Millisecond) // LISTEN in place
	const n = 200
	lat := make([]time.Duration, 0, n)
	for i := range n {
		m := &message.Message{Key: "lat", Payload: fmt.Appendf(nil, "%06d", i)}
		write(t, pool, "latency", true, m)
		committed := time.Now()
		for {
			pub.mu.Lock()
			at, ok := pub.at[m.ID]
			pub.mu.Unlock()
			if ok {
				lat = append(lat, at.Sub(committed))
				break
			}
			if time.Since(committed) > 5*time.Second {
				t.Fatalf("message %d not relayed within 5 s (the poll interval is 10 s: NOTIFY did not wake the relay)", i)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("commit-to-broker latency over %d single-message transactions (memory publisher): p50 %v, p90 %v, p99 %v",
		n, lat[n/2], lat[n*9/10], lat[n*99/100])
}

// latencyPub publishes without the tracker's random delay.
type latencyPub struct{ p *tracker }

func (l latencyPub) Publish(_ context.Context, _ string, ms ...*message.Message) error {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	for _, m := range ms {
		l.p.sends[m.ID]++
		l.p.at[m.ID] = time.Now()
	}
	return nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Two transactions writing one key: the second waits for the first, so seq order is commit
// order.
func TestWritersOfOneKeyCommitInSeqOrder(t *testing.T) {
	u := schemaURL(t)
	pool := openPool(t, u)
	ctx := context.Background()
	a, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Rollback(ctx)
	if err := (outbox.Writer{}).Write(ctx, a, "t", &message.Message{Key: "K", Payload: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	bDone := make(chan error, 1)
	go func() {
		b, err := pool.Begin(ctx)
		if err == nil {
			err = (outbox.Writer{}).Write(ctx, b, "t", &message.Message{Key: "K", Payload: []byte("b")})
			if err == nil {
				err = b.Commit(ctx)
			}
		}
		bDone <- err
	}()
	select {
	case err := <-bDone:
		t.Fatalf("the second writer of key K finished (%v) while the first was open", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	var order string
	if err := pool.QueryRow(ctx, "SELECT string_agg(convert_from(payload, 'UTF8'), '' ORDER BY seq) FROM courier_outbox").Scan(&order); err != nil || order != "ab" {
		t.Fatalf("seq order %q (%v), want ab", order, err)
	}
}

func TestPollingWithoutListen(t *testing.T) {
	u := schemaURL(t)
	pool := openPool(t, u)
	pub := newTracker()
	startRelay(t, outbox.Config{DB: pool, Publisher: latencyPub{pub}, NoListen: true, PollInterval: 30 * time.Millisecond, Logger: quiet()})
	write(t, pool, "poll", true, msgs("p", 10, 2)...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		pub.mu.Lock()
		n := len(pub.sends)
		pub.mu.Unlock()
		if n == 10 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 10 relayed by polling", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunLifecycle(t *testing.T) {
	u := schemaURL(t)
	pool := openPool(t, u)
	r, err := outbox.NewRelay(outbox.Config{DB: pool, Publisher: fakePub{}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	time.Sleep(100 * time.Millisecond)
	if err := r.Run(ctx); !errors.Is(err, outbox.ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background()); !errors.Is(err, outbox.ErrClosed) {
		t.Fatalf("Run after Close = %v, want ErrClosed", err)
	}
}
