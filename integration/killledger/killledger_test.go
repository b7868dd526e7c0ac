//go:build integration

package killledger

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/store/storeurl"
	"github.com/courierhq/courier/transport"
)

// The child's parameters, passed in its environment.
const (
	envChild  = "COURIER_KILL_CHILD" // set: this process is the consumer, not the test
	envURL    = "COURIER_KILL_URL"
	envTopic  = "COURIER_KILL_TOPIC"
	envSub    = "COURIER_KILL_SUB"
	envLedger = "COURIER_KILL_LEDGER"
	envStore  = "COURIER_KILL_STORE" // idempotency store URL; empty: no idempotency
	envCount  = "COURIER_KILL_MESSAGES"
)

const (
	keys         = 50
	handlerDelay = time.Millisecond
	lease        = 3 * time.Second // the idempotency lease a killed consumer's claims hold
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// child consumes until SIGTERM (or SIGKILL), appending "<key> <seq>\n" for every handling.
func child() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := consume(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

func consume(ctx context.Context) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	conn, err := transport.OpenConfig(ctx, os.Getenv(envURL), transport.ConnConfig{Logger: log})
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	f, err := os.OpenFile(os.Getenv(envLedger), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	cfg := transport.SubscriberConfig{Concurrency: 8, DrainTimeout: 5 * time.Second}
	if su := os.Getenv(envStore); su != "" {
		store, closeStore, err := storeurl.Open(ctx, su)
		if err != nil {
			return err
		}
		defer closeStore()
		idem, err := idempotency.New(idempotency.Config{Store: store, Lease: lease, Logger: log})
		if err != nil {
			return err
		}
		cfg.Middleware = []message.Middleware{idem.Consume()}
	}
	sub, err := conn.Subscribe(ctx, os.Getenv(envTopic), os.Getenv(envSub), cfg)
	if err != nil {
		return err
	}
	return sub.Run(ctx, func(_ context.Context, m *message.Message) error {
		// One write per handling: the ledger line exists before the handler returns.
		if _, err := f.Write(append(bytes.Clone(m.Payload), '\n')); err != nil {
			return err
		}
		time.Sleep(handlerDelay)
		return nil
	})
}

// target is one broker under test.
type target struct {
	name  string
	url   func(t *testing.T) string
	topic func(base string) string
}

func targets() []target {
	return []target{
		{name: "rabbitmq", url: func(t *testing.T) string { return brokers.Endpoint(t, brokers.RabbitMQ) }},
		{name: "kafka", url: func(t *testing.T) string {
			// Prompt group changes: a killed member is noticed after the session timeout.
			return "kafka://" + brokers.Endpoint(t, brokers.Kafka) +
				"/?heartbeat_interval=200ms&session_timeout=6s&rebalance_timeout=8s&join_group_backoff=200ms&max_wait=200ms"
		}},
		{name: "sqs-fifo", url: func(t *testing.T) string {
			return "sqs://?region=us-east-1&wait_time=1s&visibility_timeout=5s&endpoint=" + url.QueryEscape(brokers.Endpoint(t, brokers.SQS))
		}, topic: func(base string) string { return base + ".fifo" }},
		{name: "gcppubsub", url: func(t *testing.T) string {
			return "gcppubsub://courier-kill?endpoint=" + brokers.Endpoint(t, brokers.PubSub)
		}},
	}
}

func messageCount(t *testing.T) int {
	if v := os.Getenv(envCount); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < keys {
			t.Fatalf("%s=%q: want an integer ≥ %d", envCount, v, keys)
		}
		return n
	}
	return 10_000
}

func TestKillLedger(t *testing.T) {
	n := messageCount(t)
	storeURL := brokers.Endpoint(t, brokers.Redis)
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			u := tg.url(t)
			for _, mode := range []string{"plain", "idempotency"} {
				t.Run(mode, func(t *testing.T) {
					r := run{t: t, url: u, n: n, dir: t.TempDir()}
					id := rand.IntN(1_000_000)
					r.topic = fmt.Sprintf("kill-%s-%06d", mode, id)
					r.sub = fmt.Sprintf("ledger-%06d", id)
					if tg.topic != nil {
						r.topic = tg.topic(r.topic)
					}
					if mode == "idempotency" {
						r.store = storeURL
					}
					r.do()
				})
			}
		})
	}
}

// run is one broker × mode.
type run struct {
	t     *testing.T
	url   string
	topic string
	sub   string
	store string
	n     int
	dir   string
	kids  int
}

func (r *run) do() {
	t := r.t
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	r.prepare(ctx)
	ledger := filepath.Join(r.dir, "ledger")
	start := time.Now()
	cmd := r.start(ledger)
	for i, frac := range []float64{0.15, 0.40, 0.65} {
		if !r.waitLines(ctx, ledger, int(float64(r.n)*frac)) {
			r.stop(cmd)
			t.Fatalf("kill %d: the consumer stalled before %.0f%% of the messages (%s)", i+1, frac*100, r.tail())
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		cmd = r.start(ledger)
	}
	done := r.waitAll(ctx, ledger)
	r.stop(cmd)
	res := analyse(t, ledger, r.n)
	t.Logf("%s: %d published, %d handlings, %d lost, %d duplicates, %d keys out of order, 3 kills, %v",
		filepath.Base(t.Name()), r.n, res.handlings, res.lost, res.duplicates, res.outOfOrder, time.Since(start).Round(time.Second))
	if !done || res.lost != 0 {
		t.Errorf("%d of %d messages never handled (first missing: %v); child output: %s", res.lost, r.n, res.missing, r.tail())
	}
	if res.outOfOrder != 0 {
		t.Errorf("%d keys had a message first handled after a later message of the key: %v", res.outOfOrder, res.examples)
	}
}

// prepare creates the subscription (so that it retains what follows) and publishes n keyed
// messages, key by key in sequence order, each confirmed.
func (r *run) prepare(ctx context.Context) {
	t := r.t
	conn, err := transport.OpenConfig(ctx, r.url, transport.ConnConfig{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	sub, err := conn.Subscribe(ctx, r.topic, r.sub, transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	per := r.n / keys
	r.n = per * keys
	batch := make([]*message.Message, 0, 100)
	for seq := 0; seq < per; seq++ {
		for k := 0; k < keys; k++ {
			body := fmt.Sprintf("k%02d %06d", k, seq)
			batch = append(batch, &message.Message{ID: strings.ReplaceAll(body, " ", "/"), Key: body[:3], Payload: []byte(body)})
			if len(batch) == cap(batch) {
				if err := conn.Publish(ctx, r.topic, batch...); err != nil {
					t.Fatal(err)
				}
				batch = batch[:0]
			}
		}
	}
	if len(batch) > 0 {
		if err := conn.Publish(ctx, r.topic, batch...); err != nil {
			t.Fatal(err)
		}
	}
}

func (r *run) start(ledger string) *exec.Cmd {
	r.kids++
	out, err := os.Create(filepath.Join(r.dir, fmt.Sprintf("child-%d.log", r.kids)))
	if err != nil {
		r.t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envURL+"="+r.url, envTopic+"="+r.topic,
		envSub+"="+r.sub, envLedger+"="+ledger, envStore+"="+r.store)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	out.Close()
	return cmd
}

// stop ends a child gracefully, or kills it after 30 s.
func (r *run) stop(cmd *exec.Cmd) {
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

// tail returns the end of the last child's output, for failure messages.
func (r *run) tail() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, fmt.Sprintf("child-%d.log", r.kids)))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func (r *run) waitLines(ctx context.Context, ledger string, want int) bool {
	for {
		b, _ := os.ReadFile(ledger)
		if bytes.Count(b, []byte{'\n'}) >= want {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// waitAll waits until every message was handled at least once and the ledger stopped
// growing for a moment (late duplicates counted too).
func (r *run) waitAll(ctx context.Context, ledger string) bool {
	for {
		res := analyse(nil, ledger, r.n)
		if res.lost == 0 {
			time.Sleep(2 * time.Second)
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type result struct {
	handlings, lost, duplicates, outOfOrder int
	missing                                 []string
	examples                                []string
}

// analyse reads the ledger: complete lines only (a kill cannot cut a single write of a line,
// but a torn last line would be ignored rather than miscounted).
func analyse(t *testing.T, ledger string, n int) result {
	f, err := os.Open(ledger)
	if err != nil {
		if t != nil {
			t.Fatal(err)
		}
		return result{lost: n}
	}
	defer f.Close()
	var res result
	seen := map[string]bool{}
	high := map[string]int{} // key → highest seq first-handled so far
	bad := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, seqText, ok := strings.Cut(sc.Text(), " ")
		seq, err := strconv.Atoi(seqText)
		if !ok || err != nil {
			if t != nil {
				t.Errorf("malformed ledger line %q", sc.Text())
			}
			continue
		}
		res.handlings++
		id := sc.Text()
		if seen[id] {
			res.duplicates++
			continue
		}
		seen[id] = true
		if h, ok := high[key]; ok && seq < h {
			if !bad[key] && len(res.examples) < 5 {
				res.examples = append(res.examples, fmt.Sprintf("%s: %d after %d", key, seq, h))
			}
			bad[key] = true
			continue
		}
		high[key] = seq
	}
	res.outOfOrder = len(bad)
	res.lost = n - len(seen)
	if res.lost > 0 {
		per := n / keys
		for k := 0; k < keys && len(res.missing) < 5; k++ {
			for s := 0; s < per && len(res.missing) < 5; s++ {
				if id := fmt.Sprintf("k%02d %06d", k, s); !seen[id] {
					res.missing = append(res.missing, id)
				}
			}
		}
	}
	return res
}

func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}
