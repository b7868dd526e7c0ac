package kafka_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/adapters/kafka"
	"github.com/courierhq/courier/internal/benchkit"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// The service's publish pattern: conc goroutines each publish one 256-byte message and wait
// for its acks=all acknowledgement; one op is one message. "courier" runs at the defaults
// (concurrent calls coalesced into one batch); "courier-inflight2" lets two batches of the
// topic be in flight (PublisherConfig.CoalesceInFlight); "courier-uncoalesced" sends every call on its
// own with the former 2ms batch timeout (the figures before coalescing); "raw" is one shared
// kafka-go Writer with the adapter's former settings (2ms batch timeout, batches of 1000).

var concurrencies = []int{1, 16, 64}

func openKafka(b *testing.B, addrs []string, batchTimeout time.Duration) *transport.Conn {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := kafka.Open(ctx, kafka.Config{Brokers: addrs, Partitions: 1, Logger: quiet, BatchTimeout: batchTimeout})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func BenchmarkPublishSingles(b *testing.B) {
	addrs := benchBrokers(b)
	payload := bytes.Repeat([]byte("p"), benchPayload)
	for _, conc := range concurrencies {
		b.Run("conc="+strconv.Itoa(conc), func(b *testing.B) {
			b.Run("courier", func(b *testing.B) {
				c := openKafka(b, addrs, 0)
				topic := benchTopic(b, c)
				benchkit.Run(b, conc, func(ctx context.Context) error {
					return c.Publish(ctx, topic, &message.Message{Payload: payload})
				})
			})
			b.Run("courier-inflight2", func(b *testing.B) {
				c := openKafka(b, addrs, 0)
				topic := benchTopic(b, c)
				p := c.Publisher(transport.PublisherConfig{CoalesceInFlight: 2})
				benchkit.Run(b, conc, func(ctx context.Context) error {
					return p.Publish(ctx, topic, &message.Message{Payload: payload})
				})
			})
			b.Run("courier-uncoalesced", func(b *testing.B) {
				c := openKafka(b, addrs, 2*time.Millisecond)
				topic := benchTopic(b, c)
				p := c.Publisher(transport.PublisherConfig{CoalesceMessages: 1})
				benchkit.Run(b, conc, func(ctx context.Context) error {
					return p.Publish(ctx, topic, &message.Message{Payload: payload})
				})
			})
			b.Run("raw", func(b *testing.B) {
				c := openKafka(b, addrs, 0) // only to create the topic the same way
				topic := benchTopic(b, c)
				tr, _ := rawSettings()
				defer tr.CloseIdleConnections()
				w := &kafkago.Writer{
					Addr: kafkago.TCP(addrs...), Topic: topic, Transport: tr,
					Balancer: &kafkago.RoundRobin{}, RequiredAcks: kafkago.RequireAll,
					BatchSize: kafka.DefaultBatchSize, BatchBytes: 1 << 20, BatchTimeout: 2 * time.Millisecond,
				}
				defer w.Close()
				benchkit.Run(b, conc, func(ctx context.Context) error {
					return w.WriteMessages(ctx, kafkago.Message{Value: payload, Time: time.Now()})
				})
			})
		})
	}
}

// BenchmarkPublishLatency: 64 goroutines publish one message per call at a steady 1,000
// msg/s in total; it reports the publish call's p50 and p99 in milliseconds. One op is one
// message (so -benchtime 3000x runs three seconds).
func BenchmarkPublishLatency(b *testing.B) {
	addrs := benchBrokers(b)
	payload := bytes.Repeat([]byte("p"), benchPayload)
	run := func(b *testing.B, publish func(ctx context.Context) error) {
		const conc, rate = 64, 1000
		ticks := make(chan struct{}, conc)
		lat := make([]time.Duration, 0, b.N)
		var mu sync.Mutex
		var wg sync.WaitGroup
		ctx := context.Background()
		for range conc {
			wg.Go(func() {
				for range ticks {
					t0 := time.Now()
					if err := publish(ctx); err != nil {
						b.Error(err)
					}
					d := time.Since(t0)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			})
		}
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / rate)))
			ticks <- struct{}{}
		}
		close(ticks)
		wg.Wait()
		slices.Sort(lat)
		ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / 1e6 }
		b.ReportMetric(ms(0.50), "p50-ms")
		b.ReportMetric(ms(0.99), "p99-ms")
	}
	b.Run("courier", func(b *testing.B) {
		c := openKafka(b, addrs, 0)
		topic := benchTopic(b, c)
		run(b, func(ctx context.Context) error { return c.Publish(ctx, topic, &message.Message{Payload: payload}) })
	})
	b.Run("courier-uncoalesced", func(b *testing.B) {
		c := openKafka(b, addrs, 2*time.Millisecond)
		topic := benchTopic(b, c)
		p := c.Publisher(transport.PublisherConfig{CoalesceMessages: 1})
		run(b, func(ctx context.Context) error { return p.Publish(ctx, topic, &message.Message{Payload: payload}) })
	})
	b.Run("raw", func(b *testing.B) {
		c := openKafka(b, addrs, 0)
		topic := benchTopic(b, c)
		tr, _ := rawSettings()
		defer tr.CloseIdleConnections()
		w := &kafkago.Writer{
			Addr: kafkago.TCP(addrs...), Topic: topic, Transport: tr,
			Balancer: &kafkago.RoundRobin{}, RequiredAcks: kafkago.RequireAll,
			BatchSize: kafka.DefaultBatchSize, BatchBytes: 1 << 20, BatchTimeout: 2 * time.Millisecond,
		}
		defer w.Close()
		run(b, func(ctx context.Context) error {
			return w.WriteMessages(ctx, kafkago.Message{Value: payload, Time: time.Now()})
		})
	})
}
