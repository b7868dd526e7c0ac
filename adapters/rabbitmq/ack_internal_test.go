package rabbitmq

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/transport/driver"

	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/message"
)

// internalDriver opens a Driver on the test broker (see brokers.Endpoint).
func internalDriver(t *testing.T) *Driver {
	t.Helper()
	url := brokers.Endpoint(t, brokers.RabbitMQ)
	d, err := New(context.Background(), Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

// TestAckOrderStress acks, requeues and delay-nacks deliveries in random batches and random
// order, concurrently, and checks that the consume channel never fails (a wrong multiple
// ack would close it with "unknown delivery tag") and every message is settled once.
func TestAckOrderStress(t *testing.T) {
	d := internalDriver(t)
	ctx := context.Background()
	topic := fmt.Sprintf("c-ackstress-%06x", rand.Uint32()&0xffffff)
	t.Cleanup(func() {
		conn, _, err := d.pubSession.acquire(context.Background())
		if err != nil {
			return
		}
		ch, err := conn.Channel()
		if err == nil {
			_, _ = ch.QueueDelete(topic+".s", false, false, false)
			_ = ch.ExchangeDelete(topic, false, false)
			_ = ch.Close()
		}
	})
	r0, err := d.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Subscription: "s", Prefetch: 300})
	if err != nil {
		t.Fatal(err)
	}
	r := r0.(*receiver)
	defer r.Close(ctx)
	const n = 3000
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = &message.Message{ID: fmt.Sprint(i), Payload: []byte("x"), PublishTime: time.Now()}
	}
	if err := d.Publish(ctx, topic, msgs); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int{}
	var mu sync.Mutex
	var first *consumer
	buf := make([]*message.Message, 64)
	var wg sync.WaitGroup
	delivered := 0
	var retried atomic.Int64
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		done := len(acked)
		mu.Unlock()
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d acked", done, n)
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		k, err := r.Receive(rctx, buf)
		cancel()
		if err == context.DeadlineExceeded {
			wg.Wait() // the last acks may be in flight
			continue
		}
		if err != nil {
			wg.Wait()
			first.mu.Lock()
			t.Logf("floor %d, settled above floor %d, delivered %d, acked %d, retried %d", first.floor, len(first.settled), delivered, len(acked), retried.Load())
			first.mu.Unlock()
			t.Fatalf("receive: %v", err)
		}
		delivered += k
		got := append([]*message.Message(nil), buf[:k]...)
		c := message.ReceiptOf(got[0]).(*delivery).c
		if first == nil {
			first = c
		} else if c != first {
			t.Fatalf("consumer replaced: the channel failed")
		}
		rand.Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for len(got) > 0 {
				b := min(len(got), 1+rand.IntN(8))
				batch := got[:b]
				got = got[b:]
				time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
				switch rand.IntN(10) {
				case 0:
					if err := r.Nack(ctx, batch[0], 0); err != nil {
						t.Error(err)
					}
					batch = batch[1:]
				case 1:
					if err := r.Nack(ctx, batch[0], time.Millisecond); err != nil {
						t.Error(err)
					}
					retried.Add(1)
					batch = batch[1:]
				}
				if len(batch) == 0 {
					continue
				}
				if err := r.Ack(ctx, batch); err != nil {
					t.Error(err)
				}
				mu.Lock()
				for _, m := range batch {
					acked[m.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for id, c := range acked {
		if c != 1 {
			t.Errorf("message %s acked %d times", id, c)
		}
	}
	if first.ch.IsClosed() {
		t.Fatal("consume channel closed")
	}
}

// TestStaleAckAfterReconnect: a message received before the consuming connection was lost
// cannot be acknowledged on the new one (delivery tags belong to a channel): Ack and Nack
// drop it without error, and the broker redelivers it, flagged as a redelivery.
func TestStaleAckAfterReconnect(t *testing.T) {
	d := internalDriver(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := fmt.Sprintf("c-staleack-%06x", rand.Uint32()&0xffffff)
	r0, err := d.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Subscription: "s", Prefetch: 10})
	if err != nil {
		t.Fatal(err)
	}
	r := r0.(*receiver)
	defer r.Close(ctx)
	t.Cleanup(func() {
		conn, _, err := d.pubSession.acquire(context.Background())
		if err != nil {
			return
		}
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(topic+".s", false, false, false)
			_ = ch.ExchangeDelete(topic, false, false)
			_ = ch.Close()
		}
	})
	if err := d.Publish(ctx, topic, []*message.Message{{ID: "a", PublishTime: time.Now()}, {ID: "b", PublishTime: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	buf := make([]*message.Message, 10)
	got := 0
	for got < 2 {
		n, err := r.Receive(ctx, buf[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	old := append([]*message.Message(nil), buf[:2]...)

	conn, _, err := d.subSession.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close() // as if the network dropped it
	if err := r.Ack(ctx, old[:1]); err != nil {
		t.Errorf("Ack of a message from the lost connection: %v; want nil (dropped)", err)
	}
	if err := r.Nack(ctx, old[1], time.Millisecond); err != nil {
		t.Errorf("Nack of a message from the lost connection: %v; want nil (dropped)", err)
	}
	seen := map[string]int{}
	for len(seen) < 2 {
		n, err := r.Receive(ctx, buf)
		if err != nil {
			t.Fatalf("receive after the reconnect: %v (seen %v)", err, seen)
		}
		for _, m := range buf[:n] {
			seen[m.ID] = m.Attempt
			if err := r.Ack(ctx, []*message.Message{m}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for id, attempt := range seen {
		if attempt != 2 {
			t.Errorf("message %s redelivered with Attempt %d; want 2", id, attempt)
		}
	}
	if s := d.Stats(); s.Reconnects < 1 || s.ConsumersRestarted < 1 {
		t.Errorf("stats %+v: want a reconnect and a restarted consumer", s)
	}
}
