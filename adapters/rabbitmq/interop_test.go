//go:build integration

package rabbitmq_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/internal/adaptertest"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// TestInteropPlainProducerToCourier: messages a plain amqp091 producer publishes to the
// topic's exchange, with native properties and headers only (no message-id, no courier-*
// header), reach Courier as adaptertest.PlainToCourier requires, the routing key as Key.
func TestInteropPlainProducerToCourier(t *testing.T) {
	url := endpoint(t)
	topic := topicName(t)
	deleteTopology(t, url, []string{topic, topic + ".dlq"}, []string{topic + ".interop", topic + ".dlq.interop.dlq"})
	ch := rawChannel(t, url)
	adaptertest.PlainToCourier(t, adaptertest.PlainProducer{
		Conn: openURL(t, url), Topic: topic,
		Publish: func(ctx context.Context, i int, b []byte) error {
			return ch.PublishWithContext(ctx, topic, fmt.Sprintf("cust-%d", i), true, false, amqp.Publishing{
				Body: b, DeliveryMode: amqp.Persistent, Headers: amqp.Table{"tenant": "acme", "n": fmt.Sprint(i)},
			})
		},
	})
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
	want := adaptertest.PublishAll(ctx, t, c, topic)
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
		adaptertest.CheckHeaders(t, m, func(k string) string { s, _ := d.Headers[k].(string); return s })
	}
}

// openURL opens a Courier connection to url and closes it when the test ends.
func openURL(t *testing.T, url string) *transport.Conn { return adaptertest.OpenURL(t, url) }
