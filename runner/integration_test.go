//go:build integration

package runner_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/runner"
	"github.com/courierhq/courier/transport"
)

// realBrokers are the broker URLs from the environment (set -a; . .brokers/env), by name.
func realBrokers(t *testing.T) map[string]string {
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "courier", "AWS_SECRET_ACCESS_KEY": "courier", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		if os.Getenv(k) == "" {
			t.Setenv(k, v)
		}
	}
	return brokers.CourierURLs(t, "courier-runner-test")
}

// TestIntegrationRunner: on every real broker, two routes run, are ready (states running and
// Ping answering), handle what is published, and stop when the context ends.
func TestIntegrationRunner(t *testing.T) {
	for name, url := range realBrokers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			conn, err := transport.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			base := "courier-runner-" + name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			got := make(chan string, 2)
			r := runner.New(conn, runner.Config{DrainTimeout: 5 * time.Second})
			for i := range 2 {
				topic := base + "-" + strconv.Itoa(i)
				if err := r.Add(runner.Route{Topic: topic, Subscription: topic + "-s",
					// SQS standard queues refuse publish order; these routes need none.
					Config: transport.SubscriberConfig{Order: transport.OrderDelivery}, Handler: func(_ context.Context, m *message.Message) error {
						got <- m.Topic
						return nil
					}}); err != nil {
					t.Fatal(err)
				}
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- r.Run(runCtx) }()
			waitReady(t, r)
			for i := range 2 {
				if err := conn.Publish(ctx, base+"-"+strconv.Itoa(i), &message.Message{Payload: []byte("x")}); err != nil {
					t.Fatal(err)
				}
			}
			seen := map[string]bool{}
			for len(seen) < 2 {
				select {
				case topic := <-got:
					seen[topic] = true
				case <-time.After(60 * time.Second):
					t.Fatalf("handled %v of 2 topics", seen)
				}
			}
			stop()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			for _, s := range r.Liveness().Subscriptions {
				if s.State != "stopped" || s.Error != "" {
					t.Errorf("%s/%s after Run: %+v", s.Topic, s.Subscription, s)
				}
			}
			if err := conn.Ping(ctx); err != nil {
				t.Errorf("Ping after Run: %v", err)
			}
			for i := range 2 {
				topic := base + "-" + strconv.Itoa(i)
				err := conn.DeleteSubscription(ctx, topic, topic+"-s")
				if err != nil && !errors.Is(err, transport.ErrUnsupported) {
					t.Errorf("delete subscription: %v", err)
				}
			}
		})
	}
}
