package rabbitmq_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/courierhq/courier/adapters/rabbitmq"
	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/integration/conformance"
	"github.com/courierhq/courier/integration/faults"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

func TestMain(m *testing.M) {
	code := m.Run()
	brokers.TerminateAll()
	if code == 0 {
		// No goroutine may outlive a closed connection: amqp091-go's reader, heartbeater
		// and consumer buffers all end with their connection, so nothing is ignored.
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// endpoint returns the broker URL, skipping (or failing under COURIER_REQUIRE_BROKERS=1)
// when there is none.
func endpoint(t testing.TB) string {
	t.Helper()
	return brokers.Endpoint(t, brokers.RabbitMQ)
}

func TestConformance(t *testing.T) {
	url := endpoint(t)
	rec := newRecorder(t, url)
	conformance.Run(t, conformance.Harness{
		Open:        func(ctx context.Context, t testing.TB) *transport.Conn { return rec.open(ctx, t, url) },
		Unsupported: map[conformance.Feature]string{conformance.History: "RabbitMQ keeps messages only in queues; a new subscription's queue holds nothing published before it existed"},
	})
}

// TestOpenErrors: a wrong password, a missing vhost and an unreachable broker fail at Open
// with the right kind, a clear message and no password.
func TestOpenErrors(t *testing.T) {
	url := endpoint(t)
	const secret = "s3cret-Pa55"
	wrongPass := withPassword(t, url, secret)
	closedPort := withHost(t, url, "127.0.0.1:1")
	tests := []struct {
		name     string
		url      string
		kind     error
		contains []string
	}{
		{"wrong password", wrongPass, transport.ErrAccessDenied, []string{"password", "403"}},
		{"missing vhost", withPath(t, url, "/nope"), transport.ErrAccessDenied, []string{`vhost "nope"`, "530", "not found"}},
		{"unreachable", closedPort, transport.ErrUnavailable, []string{"connection refused"}},
		{"unknown parameter", url + "?prefetch=10", transport.ErrInvalidURL, []string{`unknown parameter "prefetch"`}},
		{"bad queue type", url + "?queue_type=stream", transport.ErrInvalidURL, []string{`QueueType "stream"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := transport.Open(ctx, tc.url)
			if err == nil {
				_ = c.Close(ctx)
				t.Fatal("Open succeeded")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, tc.kind) {
				t.Errorf("err = %v; want %v", err, tc.kind)
			}
			for _, s := range tc.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func withPath(t testing.TB, rawURL, path string) string {
	t.Helper()
	i := strings.Index(rawURL, "://")
	j := strings.IndexByte(rawURL[i+3:], '/')
	if j < 0 {
		return rawURL + path
	}
	return rawURL[:i+3+j] + path
}

// TestUnroutable: with ReportUnroutable and a direct exchange, only messages whose key matches
// a binding route; the others fail with ErrUnroutable by position, and the rest of the batch
// is delivered. A topic nobody subscribed to fails entirely — and succeeds (dropped) without
// ReportUnroutable, the portable default.
func TestUnroutable(t *testing.T) {
	url := endpoint(t)
	c := openConfig(t, rabbitmq.Config{URL: url, ExchangeType: "direct", ReportUnroutable: true})
	topic := topicName(t)
	deleteTopology(t, url, []string{topic, topic + ".dlq", topic + "-nobody"}, []string{topic + ".s", topic + ".dlq.s.dlq"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := c.Subscribe(ctx, topic, "s", transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ta := newTally()
	done := make(chan error, 1)
	rctx, stop := context.WithCancel(ctx)
	go func() { done <- sub.Run(rctx, ta.handler) }()
	defer func() { stop(); <-done }()

	msgs := []*message.Message{{ID: "routed-1"}, {ID: "keyed", Key: "no-binding"}, {ID: "routed-2"}}
	err = c.Publish(ctx, topic, msgs...)
	var pe *transport.PublishError
	if !errors.Is(err, transport.ErrUnroutable) || !errors.As(err, &pe) {
		t.Fatalf("err = %v; want a PublishError with ErrUnroutable", err)
	}
	if len(pe.Failed) != 1 || pe.Failed[0].Index != 1 || pe.Failed[0].ID != "keyed" {
		t.Fatalf("failed = %+v; want only index 1 (keyed)", pe.Failed)
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "NO_ROUTE") || !strings.Contains(err.Error(), topic) {
		t.Errorf("error %q should name the exchange and the broker's reason", err)
	}
	if missing := ta.waitAll(map[string]bool{"routed-1": true, "routed-2": true}, 10*time.Second); missing != nil {
		t.Fatalf("routed messages not delivered: %v", missing)
	}

	// A topic without any subscription: every message is unroutable.
	err = c.Publish(ctx, topic+"-nobody", &message.Message{ID: "a"}, &message.Message{ID: "b"})
	if !errors.As(err, &pe) || len(pe.Failed) != 2 || !errors.Is(err, transport.ErrUnroutable) {
		t.Fatalf("publish to a topic without subscriptions: err = %v; want both unroutable", err)
	}
	quiet := openConfig(t, rabbitmq.Config{URL: url, ExchangeType: "direct"})
	if err := quiet.Publish(ctx, topic+"-nobody", &message.Message{ID: "c"}); err != nil {
		t.Errorf("publish to a topic without subscriptions, ReportUnroutable off: %v; want nil (dropped)", err)
	}
}

// TestQueueArgumentsCannotChange: subscribing again with native dead-lettering, which needs
// a queue argument the existing queue lacks, fails with a clear ErrInvalidConfig.
func TestQueueArgumentsCannotChange(t *testing.T) {
	url := endpoint(t)
	c := openConfig(t, rabbitmq.Config{URL: url})
	topic := topicName(t)
	deleteTopology(t, url, []string{topic, topic + ".dlq"}, []string{topic + ".s", topic + ".dlq.s.dlq"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s1, err := c.Subscribe(ctx, topic, "s", transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s1.Close(ctx)
	_, err = c.Subscribe(ctx, topic, "s", transport.SubscriberConfig{NativeDeadLetter: true})
	if !errors.Is(err, transport.ErrInvalidConfig) {
		t.Fatalf("err = %v; want ErrInvalidConfig", err)
	}
	t.Logf("error: %v", err)
	for _, s := range []string{topic + ".s", "x-dead-letter-exchange", "cannot change"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != 406 {
		t.Errorf("the broker's *amqp091.Error (406) is not in the chain: %v", err)
	}
	// The connection is still usable.
	if _, err := c.Subscribe(ctx, topic, "s", transport.SubscriberConfig{}); err != nil {
		t.Errorf("subscribe with the original arguments after the refusal: %v", err)
	}
}

// TestHeadersTooLargeForFrame: headers that would not fit one AMQP frame fail with
// ErrInvalidMessage for that message only, instead of breaking the connection.
func TestHeadersTooLargeForFrame(t *testing.T) {
	url := endpoint(t)
	c := openConfig(t, rabbitmq.Config{URL: url})
	topic := topicName(t)
	deleteTopology(t, url, []string{topic, topic + ".dlq"}, []string{topic + ".s", topic + ".dlq.s.dlq"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, topic, "s", transport.SubscriberConfig{}); err != nil {
		t.Fatal(err)
	}
	big := &message.Message{ID: "big", Headers: message.Headers{}}
	for _, k := range []string{"a", "b", "c"} {
		big.Headers[k] = strings.Repeat("v", 60<<10) // each under the value limit, together over a frame
	}
	err := c.Publish(ctx, topic, &message.Message{ID: "ok-1"}, big, &message.Message{ID: "ok-2"})
	var pe *transport.PublishError
	if !errors.Is(err, transport.ErrInvalidMessage) || !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Index != 1 {
		t.Fatalf("err = %v; want ErrInvalidMessage for index 1 only", err)
	}
	if !strings.Contains(err.Error(), "frame") {
		t.Errorf("error %q does not explain the frame limit", err)
	}
	if err := c.Publish(ctx, topic, &message.Message{ID: "after"}); err != nil {
		t.Errorf("publish after the refusal: %v", err)
	}
}

// TestLongIDAndKey: IDs and keys over AMQP's 255-byte short strings travel in headers.
func TestLongIDAndKey(t *testing.T) {
	url := endpoint(t)
	c := openConfig(t, rabbitmq.Config{URL: url})
	topic := topicName(t)
	deleteTopology(t, url, []string{topic, topic + ".dlq"}, []string{topic + ".s", topic + ".dlq.s.dlq"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := c.Subscribe(ctx, topic, "s", transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *message.Message, 1)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(rctx, func(_ context.Context, m *message.Message) error {
			var d amqp.Delivery
			if !m.As(&d) {
				t.Error("As(*amqp091.Delivery) = false")
			}
			select {
			case got <- m.Clone():
			default:
			}
			return nil
		})
	}()
	defer func() { stop(); <-done }()
	id, key := strings.Repeat("i", 300), strings.Repeat("k", 400)
	if err := c.Publish(ctx, topic, &message.Message{ID: id, Key: key, Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.ID != id || m.Key != key {
			t.Errorf("got id of %d bytes, key of %d bytes; want 300 and 400", len(m.ID), len(m.Key))
		}
		for k := range m.Headers {
			if strings.HasPrefix(k, message.ReservedPrefix) {
				t.Errorf("transport header %q leaked into Headers", k)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not delivered")
	}
}

// TestConsumerCancelledByBroker: deleting the queue under a running subscriber makes the
// broker cancel the consumer; the receiver declares the queue again and keeps consuming.
func TestConsumerCancelledByBroker(t *testing.T) {
	url := endpoint(t)
	c := openConfig(t, rabbitmq.Config{URL: url, ReconnectDelay: 20 * time.Millisecond})
	topic := topicName(t)
	queue := topic + ".s"
	deleteTopology(t, url, []string{topic, topic + ".dlq"}, []string{queue, topic + ".dlq.s.dlq"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := c.Subscribe(ctx, topic, "s", transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ta := newTally()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sub.Run(rctx, ta.handler) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if err := c.Publish(ctx, topic, &message.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	if missing := ta.waitAll(map[string]bool{"before": true}, 10*time.Second); missing != nil {
		t.Fatal("first message not delivered")
	}
	ch := rawChannel(t, url)
	if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	drv := c.Driver().(*rabbitmq.Driver)
	deadline := time.Now().Add(10 * time.Second)
	for drv.Stats().ConsumersRestarted == 0 {
		if time.Now().After(deadline) {
			t.Fatal("consumer not restarted after its queue was deleted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Publish(ctx, topic, &message.Message{ID: "after"}); err != nil {
		t.Fatalf("publish after the queue was re-declared: %v", err)
	}
	if missing := ta.waitAll(map[string]bool{"after": true}, 10*time.Second); missing != nil {
		t.Fatal("message published after the cancellation not delivered")
	}
}

// TestTLS connects with amqps through a TLS-terminating proxy using a test CA.
func TestTLS(t *testing.T) {
	url := endpoint(t)
	cert, pool := selfSigned(t)
	p := faults.NewTLSProxy(t, hostOf(t, url), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	amqps := "amqps" + strings.TrimPrefix(withHost(t, url, p.Addr()), "amqp")

	t.Run("untrusted", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := rabbitmq.Open(ctx, rabbitmq.Config{URL: amqps, TLS: &tls.Config{MinVersion: tls.VersionTLS12}})
		if !errors.Is(err, transport.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v; want ErrUnavailable about the certificate", err)
		}
	})
	t.Run("trusted", func(t *testing.T) {
		tcfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		c := openConfig(t, rabbitmq.Config{URL: amqps, TLS: tcfg})
		if tcfg.ServerName != "" {
			t.Error("Config.TLS was modified")
		}
		topic := topicName(t)
		deleteTopology(t, url, []string{topic, topic + ".dlq"}, []string{topic + ".s", topic + ".dlq.s.dlq"})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sub, err := c.Subscribe(ctx, topic, "s", transport.SubscriberConfig{})
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan []byte, 1)
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- sub.Run(rctx, func(_ context.Context, m *message.Message) error {
				got <- bytes.Clone(m.Payload)
				return nil
			})
		}()
		defer func() { stop(); <-done }()
		if err := c.Publish(ctx, topic, &message.Message{Payload: []byte("over TLS")}); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-got:
			if string(p) != "over TLS" {
				t.Errorf("payload %q", p)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("not delivered")
		}
	})
}

// TestNacked: a queue that refuses messages when full (x-overflow reject-publish) makes the
// broker nack them; exactly those fail with ErrNacked.
func TestNacked(t *testing.T) {
	url := endpoint(t)
	c := openConfig(t, rabbitmq.Config{URL: url})
	topic := topicName(t)
	queue := topic + ".full"
	deleteTopology(t, url, []string{topic}, []string{queue})
	ch := rawChannel(t, url)
	if err := ch.ExchangeDeclare(topic, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-max-length": int64(2), "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "#", topic, false, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs := []*message.Message{{ID: "1"}, {ID: "2"}, {ID: "3"}, {ID: "4"}}
	err := c.Publish(ctx, topic, msgs...)
	var pe *transport.PublishError
	if !errors.Is(err, transport.ErrNacked) || !errors.As(err, &pe) {
		t.Fatalf("err = %v; want ErrNacked", err)
	}
	if got := pe.FailedIndexes(); len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Errorf("failed indexes %v; want [2 3]", got)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, amqp.Table{"x-max-length": int64(2), "x-overflow": "reject-publish"})
	if err != nil || q.Messages != 2 {
		t.Errorf("queue holds %d messages (%v); want the 2 confirmed", q.Messages, err)
	}
}

// TestExchangeDeletedUnderPublisher: an exchange deleted after Courier declared it is
// declared again on the next publish (once), instead of failing with NOT_FOUND forever.
func TestExchangeDeletedUnderPublisher(t *testing.T) {
	url := endpoint(t)
	c := openConfig(t, rabbitmq.Config{URL: url, ReportUnroutable: true})
	topic := topicName(t)
	queue := topic + ".raw"
	deleteTopology(t, url, []string{topic}, []string{queue})
	ch := rawChannel(t, url)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bind := func() {
		t.Helper()
		if err := ch.QueueBind(queue, "#", topic, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Publish(ctx, topic, &message.Message{ID: "declares"}); !errors.Is(err, transport.ErrUnroutable) {
		t.Fatalf("first publish: %v; want ErrUnroutable (declared, nothing bound)", err)
	}
	bind()
	if err := c.Publish(ctx, topic, &message.Message{ID: "routed"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDelete(topic, false, false); err != nil {
		t.Fatal(err)
	}
	// The cached declaration is stale: the broker answers NOT_FOUND, Courier declares the
	// exchange again and publishes; with the binding gone it is unroutable.
	if err := c.Publish(ctx, topic, &message.Message{ID: "after-delete"}); !errors.Is(err, transport.ErrUnroutable) {
		t.Fatalf("publish after the exchange was deleted: %v; want ErrUnroutable", err)
	}
	bind()
	if err := c.Publish(ctx, topic, &message.Message{ID: "rebound"}); err != nil {
		t.Fatalf("publish after binding again: %v", err)
	}
}
