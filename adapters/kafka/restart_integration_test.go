//go:build integration

package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// TestBrokerRestartLosesNothing stops the native Kafka broker while 10,000 messages are being
// published and consumed, starts it again, and checks that every message is consumed: the
// publisher republishes what Publish reported as failed (at-least-once), the subscriber rides
// out the outage and resumes from its last commit.
func TestBrokerRestartLosesNothing(t *testing.T) {
	brokers.Endpoint(t, brokers.Kafka) // skips (or fails under COURIER_REQUIRE_BROKERS=1) without a broker
	if !realBroker() {
		t.Skip("runs against the real Kafka only (COURIER_KAFKA_BROKERS); the in-process kfake cannot be restarted")
	}
	brokers.RequireControl(t, brokers.Kafka)
	const n = 10000
	c := openConn(t, "partitions=3&request_timeout=5s")
	topic := topicName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	sub, err := c.Subscribe(ctx, topic, "restart", transport.SubscriberConfig{Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := make(map[string]int, n)
	deliveries := 0
	allSeen := make(chan struct{})
	rctx, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() {
		runDone <- sub.Run(rctx, func(_ context.Context, m *message.Message) error {
			mu.Lock()
			defer mu.Unlock()
			seen[m.ID]++
			deliveries++
			if len(seen) == n && seen[m.ID] == 1 {
				close(allSeen)
			}
			return nil
		})
	}()

	var published atomic.Int64
	var publishFailures atomic.Int64
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		const batch = 20
		for i := 0; i < n; i += batch {
			msgs := make([]*message.Message, 0, batch)
			for j := i; j < min(i+batch, n); j++ {
				msgs = append(msgs, &message.Message{ID: fmt.Sprintf("r-%05d", j), Key: fmt.Sprintf("k-%d", j%50), Payload: []byte("x")})
			}
			// At-least-once publishing: resend what was not confirmed until it is.
			for len(msgs) > 0 && ctx.Err() == nil {
				pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
				err := c.Publish(pctx, topic, msgs...)
				pcancel()
				if err == nil {
					break
				}
				publishFailures.Add(1)
				var pe *transport.PublishError
				if errors.As(err, &pe) && !errors.Is(err, context.DeadlineExceeded) {
					retry := make([]*message.Message, 0, len(pe.Failed))
					for _, f := range pe.Failed {
						retry = append(retry, msgs[f.Index])
					}
					msgs = retry
				}
				time.Sleep(500 * time.Millisecond)
			}
			published.Store(int64(min(i+batch, n)))
		}
	}()

	// However the test ends (a skip or failure included), stop both goroutines before it does.
	runWaited := false
	defer func() {
		cancel()
		<-pubDone
		stopRun()
		if !runWaited {
			<-runDone
		}
	}()

	for published.Load() < 3000 {
		if ctx.Err() != nil {
			t.Fatal("publishing stalled before the restart")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopAt, atStop := time.Now(), published.Load()
	brokers.StopService(t, brokers.Kafka)
	time.Sleep(2 * time.Second)
	brokers.StartService(t, brokers.Kafka)
	t.Logf("broker down for %v (stop, 2s, start); %d of %d published when it stopped",
		time.Since(stopAt).Round(time.Millisecond), atStop, n)

	select {
	case <-pubDone:
	case <-ctx.Done():
		t.Fatalf("publishing did not finish: %d of %d", published.Load(), n)
	}
	recovered := time.Now()
	select {
	case <-allSeen:
	case <-ctx.Done():
	}
	stopRun()
	runWaited = true
	if err := <-runDone; err != nil {
		t.Errorf("run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	missing := 0
	for i := 0; i < n; i++ {
		if seen[fmt.Sprintf("r-%05d", i)] == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d messages lost across the broker restart", missing, n)
	}
	t.Logf("all %d messages consumed (%d deliveries, %d duplicates); %d publish calls failed and were retried; last message consumed %v after publishing ended",
		n, deliveries, deliveries-n, publishFailures.Load(), time.Since(recovered).Round(time.Millisecond))
}
