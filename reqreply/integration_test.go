//go:build integration

package reqreply

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/transport"
)

// brokerConns opens a connection to every real broker (set -a; . .brokers/env; set +a); a
// missing broker skips the test, or fails it under COURIER_REQUIRE_BROKERS=1.
func brokerConns(t *testing.T) map[string]func(t *testing.T) *transport.Conn {
	// Static credentials for the SQS emulator, and no probing for an EC2 instance role.
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "courier", "AWS_SECRET_ACCESS_KEY": "courier", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		if os.Getenv(k) == "" {
			t.Setenv(k, v)
		}
	}
	conns := map[string]func(t *testing.T) *transport.Conn{}
	for name, url := range brokers.CourierURLs(t, "courier-reqreply-test") {
		conns[name] = func(t *testing.T) *transport.Conn {
			t.Helper()
			conn, err := transport.Open(context.Background(), url)
			if err != nil {
				t.Fatalf("open %s: %v", name, err)
			}
			t.Cleanup(func() { _ = conn.Close(context.Background()) })
			return conn
		}
	}
	return conns
}

func TestIntegrationConcurrentRequests(t *testing.T) {
	for name, open := range brokerConns(t) {
		t.Run(name, func(t *testing.T) { scenarioConcurrent(t, open(t), 1000, 2*time.Minute) })
	}
}

func TestIntegrationTimeoutDropsLateReply(t *testing.T) {
	for name, open := range brokerConns(t) {
		t.Run(name, func(t *testing.T) { scenarioTimeout(t, open(t), time.Minute) })
	}
}

func TestIntegrationResponderError(t *testing.T) {
	for name, open := range brokerConns(t) {
		t.Run(name, func(t *testing.T) { scenarioErrors(t, open(t), time.Minute) })
	}
}

// TestIntegrationResponderRestart stops and starts the responder's subscriber (not the
// broker) while callers wait and retry on timeout with the same correlation ID.
func TestIntegrationResponderRestart(t *testing.T) {
	for name, open := range brokerConns(t) {
		t.Run(name, func(t *testing.T) { scenarioRestart(t, open(t), 500, 3*time.Second, 3*time.Minute) })
	}
}

// TestIntegrationCloseDeletesReplyTopic: Close leaves no reply subscription behind (where the
// broker can list them; on SQS the queue itself is gone).
func TestIntegrationCloseDeletesReplyTopic(t *testing.T) {
	for name, open := range brokerConns(t) {
		t.Run(name, func(t *testing.T) {
			conn := open(t)
			ctx := context.Background()
			r, err := NewRequester(ctx, conn, RequesterConfig{})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			subs, err := conn.Subscriptions(ctx, r.ReplyTopic())
			if errors.Is(err, transport.ErrUnsupported) {
				// RabbitMQ cannot list a topic's subscriptions: ask for the reply
				// subscription's backlog instead, which fails when it is gone.
				_, err := conn.Backlog(ctx, r.ReplyTopic(), replySubscription)
				if !errors.Is(err, transport.ErrSubscriptionNotFound) {
					t.Errorf("after Close: backlog of %s/%s: %v; want ErrSubscriptionNotFound", r.ReplyTopic(), replySubscription, err)
				}
				return
			}
			if err != nil || len(subs) != 0 {
				t.Errorf("after Close: subscriptions of %s: %v, %v", r.ReplyTopic(), subs, err)
			}
		})
	}
}
