//go:build integration

package sqs_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/courierhq/courier/adapters/sqs"
	"github.com/courierhq/courier/integration/faults"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// TestNetworkOutages: while 2,000 messages are published and consumed, the network to SQS
// fails twice for 3 seconds. Publish failures are reported (ErrUnavailable, by index) and
// republished by the test as a user would; the subscriber survives and every message is
// handled at least once; on a FIFO queue each key's messages are handled in order (repeats
// of a redelivered message allowed).
func TestNetworkOutages(t *testing.T) {
	ep := endpoint(t)
	u, err := url.Parse(ep)
	if err != nil {
		t.Fatal(err)
	}
	for _, fifo := range []bool{false, true} {
		t.Run(fmt.Sprintf("fifo=%v", fifo), func(t *testing.T) {
			proxy := faults.NewProxy(t, u.Host)
			cfg := testConfig("http://" + proxy.Addr())
			cfg.VisibilityTimeout = 5 * time.Second // redeliveries of lost deletes come sooner
			cfg.OperationTimeout = 5 * time.Second
			c := open(t, cfg)
			topic := uniqueQueue(t, ep, "")
			if fifo {
				topic += ".fifo"
			}
			const n, keys = 2000, 20

			var mu sync.Mutex
			seen := map[string]int{}
			last := map[string]int{}
			var disorder []string
			runSub(t, c, topic, transport.SubscriberConfig{Concurrency: 8}, func(_ context.Context, m *message.Message) error {
				i, _ := strconv.Atoi(m.Header("n"))
				mu.Lock()
				seen[m.ID]++
				// A redelivery (a deletion lost in the outage) may come after later messages of
				// its key; first deliveries must be in order.
				if fifo && seen[m.ID] == 1 {
					if prev, ok := last[m.Key]; ok && i < prev {
						disorder = append(disorder, fmt.Sprintf("key %s: %d after %d", m.Key, i, prev))
					}
					last[m.Key] = i
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
				return nil
			})

			outages := make(chan struct{})
			go func() {
				defer close(outages)
				for k := 0; k < 2; k++ {
					time.Sleep(1500 * time.Millisecond)
					proxy.Down()
					time.Sleep(3 * time.Second)
					proxy.Up()
				}
			}()

			var unavailable int
			ctx := context.Background()
			for i := 0; i < n; i += 100 {
				time.Sleep(400 * time.Millisecond) // spread the publishing over both outages
				batch := make([]*message.Message, 100)
				for j := range batch {
					k := i + j
					batch[j] = &message.Message{ID: fmt.Sprintf("m-%05d", k), Key: fmt.Sprintf("key-%d", k%keys),
						Payload: []byte("x"), Headers: message.Headers{"n": strconv.Itoa(k)}}
				}
				for len(batch) > 0 {
					err := c.Publish(ctx, topic, batch...)
					if err == nil {
						break
					}
					if !errors.Is(err, transport.ErrUnavailable) {
						t.Fatalf("publish: %v; want ErrUnavailable during an outage", err)
					}
					unavailable++
					var pe *transport.PublishError
					if errors.As(err, &pe) {
						// A lane stops at its first failed request, so each key's failed
						// messages are the tail of its messages: republishing them keeps
						// each key's order.
						retry := make([]*message.Message, 0, len(pe.Failed))
						for _, f := range pe.Failed {
							retry = append(retry, batch[f.Index])
						}
						batch = retry
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
			<-outages
			deadline := time.Now().Add(90 * time.Second)
			for {
				mu.Lock()
				got := len(seen)
				mu.Unlock()
				if got == n {
					break
				}
				if time.Now().After(deadline) {
					mu.Lock()
					missing := map[string]int{} // key → messages not handled
					for k := 0; k < n; k++ {
						if seen[fmt.Sprintf("m-%05d", k)] == 0 {
							missing[fmt.Sprintf("key-%d", k%keys)]++
						}
					}
					mu.Unlock()
					t.Fatalf("%d of %d messages handled; missing by key %v; queue: %s", got, n, missing, queueState(c, topic))
				}
				time.Sleep(100 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			dups := 0
			for _, k := range seen {
				dups += k - 1
			}
			for _, d := range disorder[:min(len(disorder), 10)] {
				t.Error(d)
			}
			t.Logf("%d publish calls failed with ErrUnavailable and were retried; %d redeliveries", unavailable, dups)
			if unavailable == 0 {
				t.Log("no publish call failed: the SDK's retries outlasted the outages")
			}
		})
	}
}

// queueState describes a queue's message counts, for failure messages.
func queueState(c *transport.Conn, name string) string {
	client := c.Driver().(*sqs.Driver).Client()
	ctx := context.Background()
	u, err := client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return err.Error()
	}
	a, err := client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: u.QueueUrl,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("visible %s, in flight %s, delayed %s", a.Attributes["ApproximateNumberOfMessages"],
		a.Attributes["ApproximateNumberOfMessagesNotVisible"], a.Attributes["ApproximateNumberOfMessagesDelayed"])
}
