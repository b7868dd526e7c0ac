//go:build integration

package rabbitmq_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// interopRun runs s with a handler that fails each message's first delivery with a plain
// error and records every delivery; it stops when the test ends.
func interopRun(t *testing.T, s *transport.Subscriber) *interopLog {
	t.Helper()
	l := &interopLog{byPayload: map[string][]*message.Message{}}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(_ context.Context, m *message.Message) error {
			if l.add(m) == 1 {
				return errors.New("first delivery fails")
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
	})
	return l
}

// interopLog records deliveries by payload.
type interopLog struct {
	mu        sync.Mutex
	byPayload map[string][]*message.Message
	total     int
}

func (l *interopLog) add(m *message.Message) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := string(m.Payload)
	l.byPayload[k] = append(l.byPayload[k], m.Clone())
	l.total++
	return len(l.byPayload[k])
}

// waitTwice waits until every payload was delivered at least twice.
func (l *interopLog) waitTwice(t *testing.T, payloads [][]byte, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		ok := true
		for _, p := range payloads {
			ok = ok && len(l.byPayload[string(p)]) >= 2
		}
		l.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("not every payload delivered twice in %v: %d deliveries", timeout, l.total)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *interopLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// TestInteropPlainProducerToCourier: messages a plain amqp091 producer publishes to the
// topic's exchange, with native properties and headers only (no message-id, no courier-*
// header), reach Courier byte-exact with their headers, the routing key as Key, an ID that is
// the same on the redelivery after a failed attempt, and are acknowledged for good.
func TestInteropPlainProducerToCourier(t *testing.T) {
	url := endpoint(t)
	c := openURL(t, url)
	topic := topicName(t)
	deleteTopology(t, url, []string{topic, topic + ".dlq"}, []string{topic + ".interop", topic + ".dlq.interop.dlq"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := transport.SubscriberConfig{Order: transport.OrderDelivery,
		Retry: transport.RetryPolicy{MaxAttempts: 5, InitialDelay: 50 * time.Millisecond}}
	s, err := c.Subscribe(ctx, topic, "interop", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ch := rawChannel(t, url)
	bodies := [][]byte{{0, 1, 2, 0xfe, 0xff}, {}, []byte(`{"text":"héllo"}`)}
	for i, b := range bodies {
		err := ch.PublishWithContext(ctx, topic, fmt.Sprintf("cust-%d", i), true, false, amqp.Publishing{
			Body: b, DeliveryMode: amqp.Persistent, Headers: amqp.Table{"tenant": "acme", "n": fmt.Sprint(i)},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	l := interopRun(t, s)
	l.waitTwice(t, bodies, 30*time.Second)
	time.Sleep(time.Second) // nothing more may arrive
	if n := l.count(); n != 2*len(bodies) {
		t.Errorf("%d deliveries; want %d (each fails once, then succeeds for good)", n, 2*len(bodies))
	}
	for i, b := range bodies {
		ds := l.byPayload[string(b)]
		first, second := ds[0], ds[1]
		if !bytes.Equal(second.Payload, b) {
			t.Errorf("payload %x; want %x", second.Payload, b)
		}
		if first.ID == "" || first.ID != second.ID {
			t.Errorf("body %d: IDs %q then %q; want one non-empty ID across redeliveries", i, first.ID, second.ID)
		}
		if want := fmt.Sprintf("cust-%d", i); first.Key != want || second.Key != want {
			t.Errorf("body %d: keys %q, %q; want the routing key %q", i, first.Key, second.Key, want)
		}
		if second.Headers["tenant"] != "acme" || second.Headers["n"] != fmt.Sprint(i) {
			t.Errorf("body %d: headers %v", i, second.Headers)
		}
		if second.Attempt != 2 {
			t.Errorf("body %d: second delivery has Attempt %d", i, second.Attempt)
		}
	}
	// A second subscriber of the same subscription finds nothing left.
	s2, err := c.Subscribe(ctx, topic, "interop", cfg)
	if err != nil {
		t.Fatal(err)
	}
	l2 := interopRun(t, s2)
	time.Sleep(2 * time.Second)
	if n := l2.count(); n != 0 {
		t.Errorf("a second subscriber received %d messages; want none (all acknowledged)", n)
	}
}

// TestInteropCourierToPlainConsumer: a plain amqp091 consumer of a queue bound to the topic's
// exchange reads Courier's payload, the ID as message-id, the key as routing key (and
// courier-key header) and the application headers as AMQP headers.
func TestInteropCourierToPlainConsumer(t *testing.T) {
	url := endpoint(t)
	c := openURL(t, url)
	topic := topicName(t)
	queue := topic + ".plain"
	deleteTopology(t, url, []string{topic}, []string{queue})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ch := rawChannel(t, url)
	if err := ch.ExchangeDeclare(topic, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "#", topic, false, nil); err != nil {
		t.Fatal(err)
	}
	want := []*message.Message{
		{ID: "id-bin", Key: "cust-7", Payload: []byte{0, 0, 0, 0xff}, Headers: message.Headers{"tenant": "acme", "trace": "t1"}},
		{ID: "id-empty", Key: "cust-8", Payload: []byte{}, Headers: message.Headers{"tenant": "beta"}},
	}
	for _, m := range want {
		if err := c.Publish(ctx, topic, m); err != nil {
			t.Fatal(err)
		}
	}
	deliveries, err := ch.ConsumeWithContext(ctx, queue, "", false, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]amqp.Delivery{}
	for len(got) < len(want) {
		select {
		case d := <-deliveries:
			got[d.MessageId] = d
			_ = d.Ack(false)
		case <-ctx.Done():
			t.Fatalf("plain consumer got %d of %d", len(got), len(want))
		}
	}
	for _, m := range want {
		d, ok := got[m.ID]
		if !ok {
			t.Errorf("no delivery with message-id %q", m.ID)
			continue
		}
		if !bytes.Equal(d.Body, m.Payload) || d.RoutingKey != m.Key || d.Headers[message.HeaderKey] != m.Key {
			t.Errorf("%s: body %x routing key %q courier-key %v", m.ID, d.Body, d.RoutingKey, d.Headers[message.HeaderKey])
		}
		for k, v := range m.Headers {
			if d.Headers[k] != v {
				t.Errorf("%s: header %q = %v; want %q", m.ID, k, d.Headers[k], v)
			}
		}
	}
}

// openURL opens a Courier connection to url and closes it when the test ends.
func openURL(t *testing.T, url string) *transport.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := transport.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}
