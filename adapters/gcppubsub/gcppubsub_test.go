package gcppubsub_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
	"go.uber.org/goleak"

	"github.com/courierhq/courier/adapters/gcppubsub"
	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/integration/conformance"
	"github.com/courierhq/courier/internal/adaptertest"
	"github.com/courierhq/courier/transport"
)

const project = "courier-test"

// runID keeps this test binary's topic and subscription IDs apart from any earlier run's on
// a shared emulator (subscription IDs are project-wide, and the suite reuses names like "s1").
var runID = func() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

var (
	sharedOnce sync.Once
	shared     *pstest.Server
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		_ = shared.Close()
	}
	brokers.TerminateAll()
	if code == 0 {
		if err := goleak.Find(
			// go.opencensus.io/stats/view starts this worker from its package init; the
			// Pub/Sub client imports it for its (deprecated) OpenCensus metrics. It lives for
			// the process and cannot be stopped.
			goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
			// The client's stream keep-alive goroutine checks for shutdown only when its
			// 10-second server-monitor ticker fires, so it outlives a finished Receive by up
			// to 10s. The iterator's other goroutines are still checked.
			goleak.IgnoreTopFunction("cloud.google.com/go/pubsub/v2.(*messageIterator).streamKeepAliveHandler"),
		); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// emulator returns the Pub/Sub emulator to test against: the one brokers.Endpoint finds
// when COURIER_PUBSUB_EMULATOR_HOST is set or brokers are required (make integration), else
// an in-process pstest server shared by the package's tests.
func emulator(t testing.TB) string {
	t.Helper()
	if os.Getenv(brokers.PubSub.EnvVar()) != "" || os.Getenv(brokers.RequireEnv) == "1" {
		return brokers.Endpoint(t, brokers.PubSub)
	}
	sharedOnce.Do(func() { shared = pstest.NewServer() })
	t.Logf("Pub/Sub: in-process pstest server at %s (set %s to use another emulator)", shared.Addr, brokers.PubSub.EnvVar())
	return shared.Addr
}

// testPrefix returns a Prefix unique to t (and to this run), so that tests reusing
// subscription names ("s1") do not meet on a shared emulator, not even with -count. The
// suite opens every connection of a test from the same t, so each gets the same prefix.
func testPrefix(t testing.TB) string {
	if p, ok := prefixes.Load(t); ok {
		return p.(string)
	}
	p, loaded := prefixes.LoadOrStore(t, fmt.Sprintf("t%s%05x-", runID, prefixSeq.Add(1)))
	if !loaded {
		t.Cleanup(func() { prefixes.Delete(t) })
	}
	return p.(string)
}

var (
	prefixes  sync.Map // testing.TB -> string
	prefixSeq atomic.Int64
)

// quietLogger drops the adapter's info lines (resource creation) to keep test output short.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// noPrefix asks openConn for a connection without a Prefix.
const noPrefix = "\x00none"

// openConn opens a connection to addr with cfg's Project, Endpoint, Prefix (testPrefix, or
// none for noPrefix) and Logger filled in where empty, closed when the test ends.
func openConn(t testing.TB, addr string, cfg gcppubsub.Config) *transport.Conn {
	t.Helper()
	if cfg.Project == "" {
		cfg.Project = project
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = addr
	}
	switch cfg.Prefix {
	case "":
		cfg.Prefix = testPrefix(t)
	case noPrefix:
		cfg.Prefix = ""
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	return adaptertest.Open(t, func(ctx context.Context) (*transport.Conn, error) { return gcppubsub.Open(ctx, cfg) })
}

// TestConformance runs the shared suite. pstest delivers about 100 messages a second per
// stream and hands out one message per ordering key at a time, so the untagged run scales
// the message counts down; the integration run (conformance_integration_test.go) runs them
// in full.
func TestConformance(t *testing.T) {
	addr := emulator(t)
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, t testing.TB) *transport.Conn {
			u := fmt.Sprintf("gcppubsub://%s?endpoint=%s&prefix=%s", project, addr, testPrefix(t))
			c, err := transport.OpenConfig(ctx, u, transport.ConnConfig{Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Unsupported: map[conformance.Feature]string{
			conformance.History: "Pub/Sub keeps messages for existing subscriptions only (seeking to a time needs topic retention, which the adapter does not set up)",
		},
		Timeout: 30 * time.Second,
		Scale:   conformanceScale,
	})
}
