package gcppubsub_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/courierhq/courier/adapters/gcppubsub"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// The benchmarks compare Courier with the raw v2 client configured the same way: message
// ordering on, the adapter's batching (1ms, 100 messages), flow control blocking at 1000
// messages, each Publish waiting for every result; on the consuming side the same
// subscription settings, MaxOutstandingMessages and one stream, handle and ack. The raw
// messages carry the same two attributes Courier adds (a 36-byte ID and a publish time), so
// both put the same bytes on the wire. Against pstest the absolute numbers measure pstest (about
// 100 deliveries a second per stream); the courier/raw ratio is the result.

const benchBatch = 100

var benchPayload = make([]byte, 256)

func benchConn(b *testing.B, addr string) *transport.Conn {
	b.Helper()
	return openConn(b, addr, gcppubsub.Config{Prefix: fmt.Sprintf("b%s%d-", runID, time.Now().UnixNano()%1e9)})
}

func BenchmarkPublish(b *testing.B) {
	addr := emulator(b)
	b.Run("courier", func(b *testing.B) {
		c := benchConn(b, addr)
		ctx := context.Background()
		msgs := make([]*message.Message, benchBatch)
		b.SetBytes(int64(len(benchPayload)))
		b.ResetTimer()
		for sent := 0; sent < b.N; sent += benchBatch {
			n := min(benchBatch, b.N-sent)
			for i := range n {
				msgs[i] = &message.Message{Payload: benchPayload}
			}
			if err := c.Publish(ctx, "bench-publish", msgs[:n]...); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("raw", func(b *testing.B) {
		client := rawClient(b, addr)
		ctx := context.Background()
		topic := fmt.Sprintf("raw%s%d-bench-publish", runID, time.Now().UnixNano()%1e9)
		if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topicPath(topic)}); err != nil {
			b.Fatal(err)
		}
		p := rawPublisher(client, topic)
		defer p.Stop()
		results := make([]*pubsub.PublishResult, benchBatch)
		b.SetBytes(int64(len(benchPayload)))
		b.ResetTimer()
		for sent := 0; sent < b.N; sent += benchBatch {
			n := min(benchBatch, b.N-sent)
			now := time.Now().UTC().Format(time.RFC3339Nano)
			for i := range n {
				results[i] = p.Publish(ctx, &pubsub.Message{Data: benchPayload, Attributes: map[string]string{
					message.HeaderID: benchID(sent + i), message.HeaderPublishTime: now}})
			}
			for i := range n {
				if _, err := results[i].Get(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// benchID is a message ID as long as Courier's UUIDs, so both sides send as many bytes.
func benchID(n int) string {
	const pad = "00000000-0000-7000-8000-000000000000"
	d := strconv.Itoa(n)
	return pad[:len(pad)-len(d)] + d
}

// rawPublisher is the client's publisher with the adapter's default settings.
func rawPublisher(c *pubsub.Client, topicID string) *pubsub.Publisher {
	p := c.Publisher(topicPath(topicID))
	p.EnableMessageOrdering = true
	p.PublishSettings.DelayThreshold = gcppubsub.DefaultPublishDelay
	p.PublishSettings.CountThreshold = gcppubsub.DefaultPublishBatch
	p.PublishSettings.FlowControlSettings = pubsub.FlowControlSettings{
		MaxOutstandingMessages: gcppubsub.DefaultPublishMaxOutstanding,
		MaxOutstandingBytes:    gcppubsub.DefaultPublishMaxOutstandingBytes,
		LimitExceededBehavior:  pubsub.FlowControlBlock,
	}
	return p
}

func BenchmarkConsume(b *testing.B) {
	addr := emulator(b)
	const prefetch = 256 // the engine's default for Concurrency 8
	b.Run("courier", func(b *testing.B) {
		c := benchConn(b, addr)
		ctx := context.Background()
		sub, err := c.Subscribe(ctx, "bench-consume", "bench-consume-sub", transport.SubscriberConfig{Concurrency: 8, Prefetch: prefetch})
		if err != nil {
			b.Fatal(err)
		}
		for sent := 0; sent < b.N; sent += benchBatch {
			msgs := make([]*message.Message, min(benchBatch, b.N-sent))
			for i := range msgs {
				msgs[i] = &message.Message{Payload: benchPayload}
			}
			if err := c.Publish(ctx, "bench-consume", msgs...); err != nil {
				b.Fatal(err)
			}
		}
		var handled atomic.Int64
		done := make(chan struct{})
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		b.SetBytes(int64(len(benchPayload)))
		b.ResetTimer()
		go func() {
			_ = sub.Run(rctx, func(context.Context, *message.Message) error {
				if handled.Add(1) == int64(b.N) {
					close(done)
				}
				return nil
			})
		}()
		<-done
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("raw", func(b *testing.B) {
		client := rawClient(b, addr)
		ctx := context.Background()
		id := fmt.Sprintf("raw%s%d-bench-consume", runID, time.Now().UnixNano()%1e9)
		if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topicPath(id)}); err != nil {
			b.Fatal(err)
		}
		if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
			Name: subPath(id), Topic: topicPath(id), EnableMessageOrdering: true,
			AckDeadlineSeconds: int32(gcppubsub.DefaultAckDeadline / time.Second),
		}); err != nil {
			b.Fatal(err)
		}
		p := rawPublisher(client, id)
		for sent := 0; sent < b.N; sent += benchBatch {
			n := min(benchBatch, b.N-sent)
			rs := make([]*pubsub.PublishResult, n)
			for i := range rs {
				rs[i] = p.Publish(ctx, &pubsub.Message{Data: benchPayload, Attributes: map[string]string{message.HeaderID: benchID(sent + i)}})
			}
			for _, r := range rs {
				if _, err := r.Get(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		p.Stop()
		s := client.Subscriber(subPath(id))
		s.ReceiveSettings.MaxOutstandingMessages = prefetch
		s.ReceiveSettings.NumGoroutines = gcppubsub.DefaultReceiveStreams
		s.ReceiveSettings.MaxDurationPerAckExtension = gcppubsub.DefaultAckDeadline
		var handled atomic.Int64
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		b.SetBytes(int64(len(benchPayload)))
		b.ResetTimer()
		err := s.Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			if handled.Add(1) == int64(b.N) {
				cancel()
			}
		})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}
