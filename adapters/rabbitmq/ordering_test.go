package rabbitmq_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/adapters/rabbitmq"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// TestSingleActiveConsumer: with Config.SingleActiveConsumer, of two subscribers on one
// ordered subscription only one receives; when it stops, the other takes over, and each
// key's messages are handled in publish order throughout.
func TestSingleActiveConsumer(t *testing.T) {
	url := endpoint(t)
	c := openConfig(t, rabbitmq.Config{URL: url, SingleActiveConsumer: true})
	if !c.Capabilities().NativeOrdering {
		t.Error("Capabilities.NativeOrdering is false with SingleActiveConsumer")
	}
	topic := topicName(t)
	deleteTopology(t, url, []string{topic, topic + ".dlq"}, []string{topic + ".s", topic + ".dlq.s.dlq"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var mu sync.Mutex
	last := map[string]int{}
	var outOfOrder []string
	var counts [2]atomic.Int64
	all := newTally()
	handler := func(i int) message.Handler {
		return func(ctx context.Context, m *message.Message) error {
			n, _ := strconv.Atoi(m.Headers["n"])
			mu.Lock()
			if prev, ok := last[m.Key]; ok && n <= prev {
				outOfOrder = append(outOfOrder, m.Key+": "+strconv.Itoa(n)+" after "+strconv.Itoa(prev))
			}
			last[m.Key] = n
			mu.Unlock()
			counts[i].Add(1)
			return all.handler(ctx, m)
		}
	}
	var subs [2]*transport.Subscriber
	var stops [2]context.CancelFunc
	var dones [2]chan error
	for i := range subs {
		s, err := c.Subscribe(ctx, topic, "s", transport.SubscriberConfig{Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
		rctx, stop := context.WithCancel(ctx)
		stops[i], dones[i] = stop, make(chan error, 1)
		go func(i int) { dones[i] <- s.Run(rctx, handler(i)) }(i)
	}
	defer func() {
		for i := range stops {
			stops[i]()
			<-dones[i]
		}
	}()
	time.Sleep(200 * time.Millisecond) // both consumers registered

	publishN := func(from, to int) map[string]bool {
		want := map[string]bool{}
		var msgs []*message.Message
		for n := from; n < to; n++ {
			for k := 0; k < 4; k++ {
				m := &message.Message{Key: "k" + strconv.Itoa(k), Headers: message.Headers{"n": strconv.Itoa(n)}}
				msgs = append(msgs, m)
			}
		}
		if err := c.Publish(ctx, topic, msgs...); err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			want[m.ID] = true
		}
		return want
	}
	if missing := all.waitAll(publishN(0, 50), 20*time.Second); missing != nil {
		t.Fatalf("%d not delivered", len(missing))
	}
	a, b := counts[0].Load(), counts[1].Load()
	if a != 0 && b != 0 {
		t.Fatalf("both subscribers received (%d, %d); want one active", a, b)
	}
	active := 0
	if b > 0 {
		active = 1
	}
	stops[active]()
	if err := <-dones[active]; err != nil {
		t.Fatalf("Run: %v", err)
	}
	dones[active] <- nil // for the deferred cleanup
	if missing := all.waitAll(publishN(50, 100), 20*time.Second); missing != nil {
		t.Fatalf("%d not delivered after the active subscriber stopped", len(missing))
	}
	if counts[1-active].Load() == 0 {
		t.Fatal("the standby subscriber did not take over")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range outOfOrder[:min(len(outOfOrder), 5)] {
		t.Error("out of order:", e)
	}
}
