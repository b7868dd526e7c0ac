//go:build integration

package gcppubsub_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/adapters/gcppubsub"
	"github.com/courierhq/courier/integration/faults"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// TestSoakConnectionCuts: 600 messages (half on 20 ordering keys) through two competing
// subscribers while every connection to the emulator is dropped every second and handlers
// fail one delivery in ten. Every message is handled, each key's messages in publish order
// (a redelivered duplicate may repeat a number, never go back), and no Run fails: the client
// reconnects under the adapter. Messages in flight on a dropped stream come back after the
// ack deadline (10s), which is most of this test's time.
//
// It uses an in-process pstest server rather than the shared one, so that the proxy sees
// all its traffic; it stays well under pstest's 30-second client ping interval because
// pstest can deadlock when a ping meets a stream that is going away.
func TestSoakConnectionCuts(t *testing.T) {
	srv := newServer(t)
	proxy := faults.NewProxy(t, srv.Addr)
	c := openConn(t, proxy.Addr(), gcppubsub.Config{})
	const total, keys = 600, 20

	var (
		mu      sync.Mutex
		done    = map[string]bool{}
		last    = map[string]int{}
		errs    []string
		allDone = make(chan struct{})
	)
	handler := func(_ context.Context, m *message.Message) error {
		if rand.IntN(10) == 0 {
			return errors.New("flaky")
		}
		n, _ := strconv.Atoi(m.Headers["n"])
		mu.Lock()
		defer mu.Unlock()
		if m.Key != "" {
			if prev, ok := last[m.Key]; ok && n < prev {
				errs = append(errs, fmt.Sprintf("key %s: %d after %d", m.Key, n, prev))
			}
			last[m.Key] = n
		}
		if !done[m.ID] {
			done[m.ID] = true
			if len(done) == total {
				close(allDone)
			}
		}
		return nil
	}
	cfg := transport.SubscriberConfig{Concurrency: 8, DeadLetter: ownDLQ.DeadLetter,
		Retry: transport.RetryPolicy{MaxAttempts: 1000, InitialDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond}}
	var runs sync.WaitGroup
	ctx, stop := context.WithCancel(context.Background())
	for range 2 {
		s, err := c.Subscribe(ctxT(t), "soak", "soak-sub", cfg)
		if err != nil {
			t.Fatal(err)
		}
		runs.Add(1)
		go func() {
			defer runs.Done()
			if err := s.Run(ctx, handler); err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
	}
	cuts, stopCuts := 0, make(chan struct{})
	var cutting sync.WaitGroup
	cutting.Add(1)
	go func() {
		defer cutting.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if proxy.Cut() > 0 {
					cuts++
				}
			case <-stopCuts:
				return
			}
		}
	}()

	start := time.Now()
	for i := 0; i < total; i += 50 {
		batch := make([]*message.Message, 50)
		for j := range batch {
			n := i + j
			m := &message.Message{ID: fmt.Sprintf("m%d", n), Payload: []byte("x"), Headers: message.Headers{"n": strconv.Itoa(n)}}
			if n%2 == 0 {
				m.Key = fmt.Sprintf("key-%d", n/2%keys)
			}
			batch[j] = m
		}
		// A publish cut off mid-flight may fail or be retried by the client; publish the
		// failed messages again, as a caller would.
		for attempt := 0; ; attempt++ {
			err := c.Publish(ctxT(t), "soak", batch...)
			var pe *transport.PublishError
			if err == nil {
				break
			}
			if !errors.As(err, &pe) || attempt == 20 {
				t.Fatalf("publish: %v", err)
			}
			var again []*message.Message
			for _, idx := range pe.FailedIndexes() {
				again = append(again, batch[idx])
			}
			batch = again
		}
	}
	select {
	case <-allDone:
	case <-time.After(25 * time.Second):
		mu.Lock()
		t.Errorf("%d of %d messages handled after 25s", len(done), total)
		mu.Unlock()
	}
	close(stopCuts)
	cutting.Wait()
	t.Logf("%d messages in %v through %d connection cuts", total, time.Since(start), cuts)
	stop()
	runs.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, e := range errs[:min(len(errs), 10)] {
		t.Error(e)
	}
}
