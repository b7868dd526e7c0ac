package kafka_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/courierhq/courier/adapters/kafka"
	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/integration/conformance"
	"github.com/courierhq/courier/internal/adaptertest"
	"github.com/courierhq/courier/transport"
)

func TestMain(m *testing.M) {
	code := m.Run()
	closeFake()
	brokers.TerminateAll()
	if code == 0 {
		// Known, not yet fixed: a request racing Driver.Close (seen only against containers
		// terminated just before this check) can make kafka-go's Transport open a new
		// connection pool after CloseIdleConnections; its discovery goroutine then waits on
		// a broker that is gone. Tracked in the closing note of 2026-12-02; every other
		// goroutine still fails the run.
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
			goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*conn).run")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// The in-process cluster (franz-go's kfake: the real Kafka protocol, no replication), shared
// by the tests of this binary when no real broker is configured.
var (
	fakeMu  sync.Mutex
	fake    *kfake.Cluster
	fakeErr error
)

func closeFake() {
	fakeMu.Lock()
	defer fakeMu.Unlock()
	if fake != nil {
		fake.Close()
		fake = nil
	}
}

// realBroker reports whether the tests run against a real Kafka: when COURIER_KAFKA_BROKERS
// is set or COURIER_REQUIRE_BROKERS=1 (make integration).
func realBroker() bool {
	if strings.TrimSpace(os.Getenv(brokers.Kafka.EnvVar())) != "" {
		return true
	}
	switch strings.ToLower(os.Getenv(brokers.RequireEnv)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// bootstrap returns the brokers to test against: the real Kafka (see realBroker), else the
// shared in-process kfake cluster.
func bootstrap(t testing.TB) string {
	t.Helper()
	if realBroker() {
		return brokers.Endpoint(t, brokers.Kafka)
	}
	fakeMu.Lock()
	defer fakeMu.Unlock()
	if fake == nil && fakeErr == nil {
		fake, fakeErr = kfake.NewCluster(kfake.NumBrokers(1))
	}
	if fakeErr != nil {
		t.Fatalf("start kfake: %v", fakeErr)
	}
	t.Logf("Kafka: in-process kfake cluster at %s (set %s for a real broker)", strings.Join(fake.ListenAddrs(), ","), brokers.Kafka.EnvVar())
	return strings.Join(fake.ListenAddrs(), ",")
}

// testParams make group membership changes prompt: tests start and stop subscribers
// constantly.
const testParams = "heartbeat_interval=200ms&session_timeout=6s&rebalance_timeout=8s&revoke_timeout=1s&join_group_backoff=200ms&max_wait=200ms"

// kafkaURL is a kafka:// URL for the test brokers with testParams, overridden or extended
// by extra ("a=1&b=2").
func kafkaURL(t testing.TB, extra string) string {
	q, err := url.ParseQuery(testParams)
	if err != nil {
		t.Fatal(err)
	}
	x, err := url.ParseQuery(extra)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range x {
		q[k] = v
	}
	return "kafka://" + bootstrap(t) + "/?" + q.Encode()
}

// openConn opens a connection closed at the end of the test.
func openConn(t testing.TB, extra string) *transport.Conn {
	t.Helper()
	return adaptertest.OpenURL(t, kafkaURL(t, extra)) // kafkaURL may start a container: not within the open's timeout
}

func driverOf(t testing.TB, c *transport.Conn) *kafka.Driver {
	d, ok := c.Driver().(*kafka.Driver)
	if !ok {
		t.Fatalf("Driver() is %T", c.Driver())
	}
	return d
}

// topicName returns a unique topic name.
func topicName(t testing.TB) string {
	var b strings.Builder
	b.WriteString("courier-test-")
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 80 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	fmt.Fprintf(&b, "-%06x", rand.Uint32()&0xffffff)
	return b.String()
}

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, t testing.TB) *transport.Conn {
			// Four partitions so that competing subscribers can share a topic.
			c, err := transport.Open(ctx, kafkaURL(t, "partitions=4"))
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Unsupported: map[conformance.Feature]string{
			conformance.NativeDeadLetter: "Kafka has no broker-side dead-lettering; Courier's engine dead-letters to <topic>.dlq",
		},
		Timeout: 30 * time.Second,
	})
}
