//go:build integration

package outbox_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	_ "github.com/courierhq/courier/adapters/rabbitmq"
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

// TestRabbitMQCommittedReachBrokerAndLatency relays to RabbitMQ: committed rows arrive at a
// subscriber, rolled-back ones never; it logs the commit → broker-confirmed latency of
// single-message transactions (relay woken by NOTIFY; the figure is logged, not asserted).
func TestRabbitMQCommittedReachBrokerAndLatency(t *testing.T) {
	brokerURL := brokers.Endpoint(t, brokers.RabbitMQ)
	u := schemaURL(t)
	pool := openPool(t, u)
	topic := fmt.Sprintf("outbox-rabbit-%06d", rand.IntN(1_000_000))
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
		write(t, pool, topic, false, &message.Message{Payload: []byte("rolled back")})
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
			if time.Since(committed) > 5*time.Second {
				t.Fatalf("message %d not relayed within 5 s (poll interval 10 s: NOTIFY did not wake the relay)", i)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	rec.waitFor(t, n, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
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
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("commit-to-broker-confirmed latency, RabbitMQ, %d single-message transactions: p50 %v, p90 %v, p99 %v",
		n, lat[n/2], lat[n*9/10], lat[n*99/100])
}
