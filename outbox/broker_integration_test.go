//go:build integration

package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/outbox"
	"github.com/courierhq/courier/transport"
)

// confirmedAt publishes through a real connection and records when the broker confirmed.
type confirmedAt struct {
	conn *transport.Conn
	t    *tracker
}

func (c confirmedAt) Publish(ctx context.Context, topic string, ms ...*message.Message) error {
	if err := c.conn.Publish(ctx, topic, ms...); err != nil {
		return err
	}
	now := time.Now()
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	for _, m := range ms {
		c.t.sends[m.ID]++
		if _, ok := c.t.at[m.ID]; !ok {
			c.t.at[m.ID] = now
		}
	}
	return nil
}

// TestCommittedReachEveryBrokerAndLatency relays to each real broker (RabbitMQ, Kafka, SQS —
// a FIFO queue, since the rows are keyed and SQS keeps a key's order only there — and
// Pub/Sub, through brokers.CourierURLs: a missing broker skips, or fails under
// COURIER_REQUIRE_BROKERS=1): committed rows arrive at a subscriber once each, in key order,
// rolled-back ones never. It logs the commit → broker-confirmed latency of single-message
// transactions (relay woken by NOTIFY; the figure is logged, not asserted).
func TestCommittedReachEveryBrokerAndLatency(t *testing.T) {
	urls := brokers.CourierURLs(t, "courier-outbox-test")
	for _, name := range []string{"rabbitmq", "kafka", "sqs", "pubsub"} {
		t.Run(name, func(t *testing.T) {
			topic := fmt.Sprintf("outbox-%s-%06d", name, rand.IntN(1_000_000))
			if name == "sqs" {
				topic += ".fifo"
			}
			relayLatency(t, name, urls[name], topic)
		})
	}
}

func relayLatency(t *testing.T, name, brokerURL, topic string) {
	u := schemaURL(t)
	pool := openPool(t, u)
	rec := newReceived()
	conn := subscribe(t, brokerURL, topic, rec)
	pub := newTracker()
	startRelay(t, outbox.Config{DB: pool, Publisher: confirmedAt{conn, pub}, PollInterval: 10 * time.Second, Logger: quiet()})
	time.Sleep(200 * time.Millisecond) // LISTEN in place

	const n = 300
	lat := make([]time.Duration, 0, n)
	var sent []*message.Message
	for i := range n {
		m := &message.Message{Key: fmt.Sprintf("k%d", i%3), Payload: fmt.Appendf(nil, "%06d", i)}
		write(t, pool, topic, false, &message.Message{Key: "k0", Payload: []byte("rolled back")})
		write(t, pool, topic, true, m)
		committed := time.Now()
		sent = append(sent, m)
		for {
			pub.mu.Lock()
			at, ok := pub.at[m.ID]
			pub.mu.Unlock()
			if ok {
				lat = append(lat, at.Sub(committed))
				break
			}
			if time.Since(committed) > 10*time.Second {
				t.Fatalf("message %d not relayed within 10 s (poll interval 10 s: NOTIFY did not wake the relay)", i)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	rec.waitFor(t, n, 60*time.Second)
	time.Sleep(500 * time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.ids) != n {
		t.Fatalf("received %d distinct messages, want %d (rolled-back rows must not arrive)", len(rec.ids), n)
	}
	for _, m := range sent {
		if rec.ids[m.ID] != 1 {
			t.Fatalf("message %s received %d times", m.ID, rec.ids[m.ID])
		}
	}
	checkOrder(t, rec.keys)
	slices.Sort(lat)
	t.Logf("commit-to-broker-confirmed latency, %s, %d single-message transactions: p50 %v, p90 %v, p99 %v",
		name, n, lat[n/2], lat[n*9/10], lat[n*99/100])
}

// TestTooLargeRowDeadLetteredOnBrokers writes five rows of one key, the middle one larger
// than the broker's limit, and relays them to each real broker whose limit is at most
// 17 MB: the oversize row must land in courier_outbox_dead as message_too_large and the key's
// other four rows must arrive, in order, at once (RetryMin is a minute: a blocked key fails).
func TestTooLargeRowDeadLetteredOnBrokers(t *testing.T) {
	urls := brokers.CourierURLs(t, "courier-outbox-test")
	for _, name := range []string{"rabbitmq", "kafka", "sqs", "pubsub"} {
		t.Run(name, func(t *testing.T) {
			topic := fmt.Sprintf("outbox-big-%s-%06d", name, rand.IntN(1_000_000))
			if name == "sqs" {
				topic += ".fifo"
			}
			tooLargeOn(t, urls[name], topic)
		})
	}
}

func tooLargeOn(t *testing.T, brokerURL, topic string) {
	ctx := context.Background()
	pool := openPool(t, schemaURL(t))
	rec := newReceived()
	conn := subscribe(t, brokerURL, topic, rec)
	limit := conn.Capabilities().MaxMessageBytes
	if limit == 0 || limit > 17<<20 {
		// Every broker this runs on declares a limit below 17 MiB; one without must get its
		// own way to provoke a permanent refusal, not a silent pass.
		t.Fatalf("%s accepts messages up to %d bytes (0: no limit): this test cannot make a row it refuses", conn.Capabilities().Name, limit)
	}
	var dead []outbox.DeadLetter
	var mu sync.Mutex
	startRelay(t, outbox.Config{DB: pool, Publisher: conn, PollInterval: 50 * time.Millisecond,
		RetryMin: time.Minute, RetryMax: time.Minute, Logger: quiet(),
		OnDeadLetter: func(_ context.Context, d outbox.DeadLetter) { mu.Lock(); dead = append(dead, d); mu.Unlock() }})
	ms := make([]*message.Message, 5)
	for i := range ms {
		ms[i] = &message.Message{Key: "big", Payload: fmt.Appendf(nil, "%06d", i)}
	}
	ms[2].Payload = make([]byte, limit+1)
	write(t, pool, topic, true, ms...)
	rec.waitFor(t, 4, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	var reason string
	if err := pool.QueryRow(ctx, "SELECT reason FROM courier_outbox_dead WHERE id = $1", ms[2].ID).Scan(&reason); err != nil || reason != outbox.ReasonTooLarge {
		t.Fatalf("dead row: reason %q, err %v; want %s", reason, err, outbox.ReasonTooLarge)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.ids) != 4 || rec.ids[ms[2].ID] != 0 {
		t.Fatalf("received %d distinct messages (the oversize one %d times), want the 4 others", len(rec.ids), rec.ids[ms[2].ID])
	}
	if got := strings.Join(rec.keys["big"], ","); got != "000000,000001,000003,000004" {
		t.Fatalf("key order: %s", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dead) != 1 || dead[0].ID != ms[2].ID || !errors.Is(dead[0].Err, transport.ErrMessageTooLarge) {
		t.Fatalf("OnDeadLetter: %+v", dead)
	}
}
