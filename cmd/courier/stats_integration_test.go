//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// TestIntegrationStats: on every real broker, `courier stats -json` reads the messages
// published to a subscription nobody consumes (Pub/Sub: exit 1, not supported), and the text
// form names the subscription.
func TestIntegrationStats(t *testing.T) {
	const n = 20
	for name, url := range brokerURLs(t) {
		t.Run(name, func(t *testing.T) {
			topic := "courier-stats-" + name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			sub := topic + "-s"
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			conn, err := transport.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			if err := conn.EnsureSubscription(ctx, topic, sub); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.DeleteSubscription(context.Background(), topic, sub) })
			if name == "pubsub" {
				code, _, stderr := runCmd(t, "", "stats", url, topic, sub)
				if code != 1 || !strings.Contains(stderr, "not supported") || !strings.Contains(stderr, "Cloud Monitoring") {
					t.Errorf("stats on Pub/Sub: exit %d, stderr %q; want exit 1, not supported", code, stderr)
				}
				return
			}
			msgs := make([]*message.Message, n)
			for i := range msgs {
				msgs[i] = &message.Message{Payload: []byte(fmt.Sprint(i))}
			}
			if err := conn.Publish(ctx, topic, msgs...); err != nil {
				t.Fatal(err)
			}
			var got statsReport
			for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				code, stdout, stderr := runCmd(t, "", "stats", "-json", url, topic, sub)
				if code != 0 {
					t.Fatalf("stats -json: exit %d, stderr %q", code, stderr)
				}
				if err := json.Unmarshal([]byte(stdout), &got); err != nil {
					t.Fatalf("stats -json printed %q: %v", stdout, err)
				}
				if got.Messages == n || time.Now().After(deadline) {
					break
				}
			}
			if got.Messages != n || got.Broker == "" || got.Topic != topic || got.Subscription != sub {
				t.Errorf("stats -json = %+v; want %d messages of %s/%s", got, n, topic, sub)
			}
			code, stdout, stderr := runCmd(t, "", "stats", "-url", url, topic, sub)
			if code != 0 || !strings.Contains(stdout, topic+"/"+sub+" on ") || !strings.Contains(stdout, strconv.Itoa(n)) {
				t.Errorf("stats: exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
		})
	}
}
