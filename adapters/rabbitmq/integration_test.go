//go:build integration

package rabbitmq_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/adapters/rabbitmq"
	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/integration/conformance"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// TestConformanceQuorum runs the suite on quorum queues (delivery counts from the broker).
func TestConformanceQuorum(t *testing.T) {
	url := endpoint(t)
	rec := newRecorder(t, url)
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, t testing.TB) *transport.Conn {
			return rec.open(ctx, t, url+"?queue_type=quorum")
		},
		Unsupported: map[conformance.Feature]string{conformance.History: "RabbitMQ keeps messages only in queues; a new subscription's queue holds nothing published before it existed"},
		Timeout:     30 * time.Second,
	})
}

// TestConformanceSingleActiveConsumer runs the suite with single-active-consumer queues.
func TestConformanceSingleActiveConsumer(t *testing.T) {
	url := endpoint(t)
	rec := newRecorder(t, url)
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, t testing.TB) *transport.Conn {
			return rec.open(ctx, t, url+"?single_active_consumer=true")
		},
		Unsupported: map[conformance.Feature]string{
			conformance.CompetingConsumers: "Config.SingleActiveConsumer: one subscriber of a subscription receives at a time, by design",
			conformance.History:            "RabbitMQ keeps messages only in queues; a new subscription's queue holds nothing published before it existed",
		},
	})
}

// rabbitmqctl runs the node's rabbitmqctl (from .brokers/env); without one the test skips, or
// fails under COURIER_REQUIRE_BROKERS=1.
func rabbitmqctl(t *testing.T, args ...string) {
	t.Helper()
	ctl := os.Getenv("COURIER_RABBITMQCTL")
	if ctl == "" {
		brokers.SkipOrFail(t, "COURIER_RABBITMQCTL is not set (`set -a; . .brokers/env; set +a` after `bash integration/brokers/up.sh rabbitmq`): cannot control the broker")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, ctl, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestBlockedConnection: while a memory alarm blocks publishing, Publish waits, bounded by
// its context, with an error naming the block; once the alarm clears it publishes.
func TestBlockedConnection(t *testing.T) {
	url := endpoint(t)
	c := openConfig(t, rabbitmq.Config{URL: url})
	topic := topicName(t)
	deleteTopology(t, url, []string{topic, topic + ".dlq"}, []string{topic + ".s", topic + ".dlq.s.dlq"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Subscribe(ctx, topic, "s", transport.SubscriberConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, topic, &message.Message{ID: "before"}); err != nil {
		t.Fatal(err)
	}
	rabbitmqctl(t, "set_vm_memory_high_watermark", "absolute", "1MB")
	// Should this test hang and be killed, the alarm must not outlive it: other tests
	// share the broker.
	watchdog := time.AfterFunc(45*time.Second, func() {
		_ = exec.Command(os.Getenv("COURIER_RABBITMQCTL"), "set_vm_memory_high_watermark", "0.4").Run()
	})
	defer watchdog.Stop()
	restored := false
	restore := func() {
		if !restored {
			restored = true
			rabbitmqctl(t, "set_vm_memory_high_watermark", "0.4")
		}
	}
	t.Cleanup(restore)
	// RabbitMQ blocks a connection when it next publishes after the alarm: that publish may
	// still go through; the connection.blocked notification follows.
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	trigger := c.Publish(pctx, topic, &message.Message{ID: "trigger"})
	pcancel()
	t.Logf("first publish after the alarm: %v", trigger)
	time.Sleep(500 * time.Millisecond)

	pctx, pcancel = context.WithTimeout(ctx, 2*time.Second)
	err := c.Publish(pctx, topic, &message.Message{ID: "blocked"})
	pcancel()
	if !errors.Is(err, transport.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "blocks publishing") {
		t.Fatalf("publish while blocked: err = %v; want ErrUnavailable and DeadlineExceeded, saying the broker blocks publishing", err)
	}
	t.Logf("while blocked: %v", err)
	restore()
	pctx, pcancel = context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	if err := c.Publish(pctx, topic, &message.Message{ID: "after"}); err != nil {
		t.Fatalf("publish after the alarm cleared: %v", err)
	}
}

// TestBrokerMessageSizeLimit: a message under Config.MaxMessageBytes but over the broker's
// max_message_size fails with ErrMessageTooLarge naming the broker's limit; the rest of the
// batch is published.
func TestBrokerMessageSizeLimit(t *testing.T) {
	url := endpoint(t)
	rabbitmqctl(t, "eval", "application:set_env(rabbit, max_message_size, 65536).")
	t.Cleanup(func() { rabbitmqctl(t, "eval", "application:set_env(rabbit, max_message_size, 134217728).") })
	c := openConfig(t, rabbitmq.Config{URL: url, MaxMessageBytes: 1 << 20})
	topic := topicName(t)
	deleteTopology(t, url, []string{topic, topic + ".dlq"}, []string{topic + ".s", topic + ".dlq.s.dlq"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub, err := c.Subscribe(ctx, topic, "s", transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ta := newTally()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sub.Run(rctx, ta.handler) }()
	defer func() { stop(); <-done }()
	err = c.Publish(ctx, topic, &message.Message{ID: "small-1"}, &message.Message{ID: "big", Payload: make([]byte, 100<<10)},
		&message.Message{ID: "small-2"})
	var pe *transport.PublishError
	if !errors.Is(err, transport.ErrMessageTooLarge) || !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].ID != "big" {
		t.Fatalf("err = %v; want ErrMessageTooLarge for the big message only", err)
	}
	if !strings.Contains(err.Error(), "65536") {
		t.Errorf("error %q does not name the broker's limit", err)
	}
	t.Logf("error: %v", err)
	if missing := ta.waitAll(map[string]bool{"small-1": true, "small-2": true}, 10*time.Second); missing != nil {
		t.Fatalf("not delivered: %v", missing)
	}
}

// TestVhost: the URL's path selects the vhost (percent-encoded: "a/b" is "a%2Fb"), and
// topics in different vhosts are separate.
func TestVhost(t *testing.T) {
	url := endpoint(t)
	const vhost = "courier/test-vhost"
	rabbitmqctl(t, "add_vhost", vhost)
	t.Cleanup(func() { rabbitmqctl(t, "delete_vhost", vhost) })
	rabbitmqctl(t, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	inVhost := withPath(t, url, "/courier%2Ftest-vhost")
	c := openConfig(t, rabbitmq.Config{URL: inVhost})
	root := openConfig(t, rabbitmq.Config{URL: url, ReportUnroutable: true})
	topic := topicName(t)
	deleteTopology(t, url, []string{topic}, nil)
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
	defer func() { stop(); <-done }()
	if err := c.Publish(ctx, topic, &message.Message{ID: "in-vhost"}); err != nil {
		t.Fatal(err)
	}
	if missing := ta.waitAll(map[string]bool{"in-vhost": true}, 10*time.Second); missing != nil {
		t.Fatal("not delivered in the vhost")
	}
	// The same topic in the default vhost has no subscription.
	if err := root.Publish(ctx, topic, &message.Message{ID: "root"}); !errors.Is(err, transport.ErrUnroutable) {
		t.Errorf("publish to the same topic in vhost /: %v; want ErrUnroutable (separate vhosts)", err)
	}
}
