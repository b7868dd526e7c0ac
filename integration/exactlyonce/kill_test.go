//go:build integration

package exactlyonce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/exactlyonce"
	"github.com/courierhq/courier/outbox"
	"github.com/courierhq/courier/transport"
)

// The child's parameters, passed in its environment.
const (
	envChild = "COURIER_EO_CHILD" // "consumer" or "relay"
	envPG    = "COURIER_EO_PG"
	envURL   = "COURIER_EO_URL"
	envTopic = "COURIER_EO_TOPIC"
	envSub   = "COURIER_EO_SUB"
	envCount = "COURIER_KILL_MESSAGES"
)

const keys = 50

func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

func child(mode string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pool, err := pgxpool.New(ctx, os.Getenv(envPG))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer pool.Close()
	conn, err := transport.OpenConfig(ctx, os.Getenv(envURL), transport.ConnConfig{Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if mode == "relay" {
		err = relay(ctx, pool, conn, log)
	} else {
		err = consume(ctx, pool, conn, log)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// relay runs an outbox relay until ctx ends, then prints how many messages the broker
// confirmed to it ("relay confirmed N", read by TestTwoRelayProcesses).
func relay(ctx context.Context, pool *pgxpool.Pool, conn *transport.Conn, log *slog.Logger) error {
	pub := &countingPub{conn: conn}
	r, err := outbox.NewRelay(outbox.Config{DB: pool, Publisher: pub, PollInterval: 100 * time.Millisecond, Logger: log})
	if err != nil {
		return err
	}
	err = r.Run(ctx)
	fmt.Fprintf(os.Stderr, "relay confirmed %d\n", pub.n.Load())
	return err
}

// countingPub counts the messages the broker confirmed.
type countingPub struct {
	conn *transport.Conn
	n    atomic.Int64
}

func (p *countingPub) Publish(ctx context.Context, topic string, ms ...*message.Message) error {
	err := p.conn.Publish(ctx, topic, ms...)
	if err == nil {
		p.n.Add(int64(len(ms)))
	}
	return err
}

// consume handles with the exactlyonce middleware; each handling inserts one ledger row in
// the middleware's transaction.
func consume(ctx context.Context, pool *pgxpool.Pool, conn *transport.Conn, log *slog.Logger) error {
	eo, err := exactlyonce.New(exactlyonce.Config{DB: pool, Logger: log})
	if err != nil {
		return err
	}
	sub, err := conn.Subscribe(ctx, os.Getenv(envTopic), os.Getenv(envSub), transport.SubscriberConfig{
		Concurrency: 8, DrainTimeout: 5 * time.Second, Middleware: []message.Middleware{eo.Consume()},
	})
	if err != nil {
		return err
	}
	return sub.Run(ctx, func(ctx context.Context, m *message.Message) error {
		tx, ok := exactlyonce.TxFromContext(ctx)
		if !ok {
			return message.Permanent(errors.New("no transaction"))
		}
		_, err := tx.Exec(ctx, "INSERT INTO ledger (id, key, seq) VALUES ($1, $2, $3)", m.ID, m.Key, seqOf(m))
		time.Sleep(time.Millisecond)
		return err
	})
}

func seqOf(m *message.Message) int {
	n, _ := strconv.Atoi(m.Header("seq"))
	return n
}

func messageCount(t *testing.T) int {
	if v := os.Getenv(envCount); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < keys {
			t.Fatalf("%s=%q: want an integer ≥ %d", envCount, v, keys)
		}
		return n / keys * keys
	}
	return 10_000
}

// schema creates a fresh schema and returns a URL whose search_path points at it.
func schema(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	base := brokers.Endpoint(t, brokers.Postgres)
	ctx := context.Background()
	name := fmt.Sprintf("eo_kill_%d_%06d", time.Now().Unix(), rand.IntN(1_000_000))
	admin, err := pgxpool.New(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if a, err := pgxpool.New(context.Background(), base); err == nil {
			_, _ = a.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE")
			a.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return u.String(), pool
}

// killPoints returns three increasing random fractions in [0.1, 0.85).
func killPoints() []float64 {
	f := []float64{0.1 + rand.Float64()*0.75, 0.1 + rand.Float64()*0.75, 0.1 + rand.Float64()*0.75}
	slices.Sort(f)
	return f
}

// kids starts and stops child processes of one test.
type kids struct {
	t   *testing.T
	dir string
	env []string
	n   int
}

func (k *kids) start() *exec.Cmd {
	k.n++
	out, err := os.Create(filepath.Join(k.dir, fmt.Sprintf("child-%d.log", k.n)))
	if err != nil {
		k.t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), k.env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	return cmd
}

// stop ends a child gracefully, or kills it after 30 s.
func (k *kids) stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (k *kids) kill(cmd *exec.Cmd) {
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		k.t.Fatal(err)
	}
	_ = cmd.Wait()
}

// tail returns the end of the last child's output, for failure messages.
func (k *kids) tail() string {
	b, _ := os.ReadFile(filepath.Join(k.dir, fmt.Sprintf("child-%d.log", k.n)))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// waitUntil polls cond every 5 ms until it holds or ctx ends.
func waitUntil(ctx context.Context, cond func() bool) bool {
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	return true
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// keyedMessages returns n messages over keys keys, key by key in sequence order.
func keyedMessages(prefix string, n int) []*message.Message {
	out := make([]*message.Message, 0, n)
	for seq := 0; seq < n/keys; seq++ {
		for k := 0; k < keys; k++ {
			out = append(out, &message.Message{
				ID: fmt.Sprintf("%s-k%02d-%06d", prefix, k, seq), Key: fmt.Sprintf("k%02d", k),
				Payload: []byte("x"), Headers: message.Headers{"seq": strconv.Itoa(seq)},
			})
		}
	}
	return out
}
