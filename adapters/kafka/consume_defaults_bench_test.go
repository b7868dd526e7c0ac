package kafka_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/adapters/kafka"
	"github.com/courierhq/courier/internal/benchkit"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// BenchmarkConsumeDefaults: both sides at their defaults on a fresh one-partition topic
// filled with b.N records, timed from the subscription's start to the last record handled
// (joining the group included, no warm-up): what a service sees. Courier runs with
// kafka.Config{Brokers} and a zero SubscriberConfig; raw is a kafka-go Reader with only
// Brokers, GroupID and Topic set, fetching and committing (one commit in flight, covering
// what finished meanwhile, as Courier commits). One op is one record. The one setting Courier
// changes from its defaults is Start: StartEarliest, because the records are there before the
// group exists (at the default StartLatest a new subscription only receives what is published
// after Subscribe returns, so it would wait for records that never come; kafka-go's Reader
// starts a new group at the first offset).
func BenchmarkConsumeDefaults(b *testing.B) {
	addrs := benchBrokers(b)
	b.Run("courier", func(b *testing.B) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		c, err := kafka.Open(ctx, kafka.Config{Brokers: addrs, Partitions: 1, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = c.Close(context.Background()) }()
		topic := benchTopic(b, c) // a fresh one-partition topic
		fill(b, addrs, topic, b.N-1)
		var n atomic.Int64
		done := make(chan struct{})
		b.ResetTimer()
		start, cpu0 := time.Now(), benchkit.CPUTime()
		s, err := c.Subscribe(ctx, topic, topic+"-g", transport.SubscriberConfig{Start: transport.StartEarliest})
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			_ = s.Run(ctx, func(context.Context, *message.Message) error {
				if n.Add(1) == int64(b.N) {
					close(done)
				}
				return nil
			})
		})
		select {
		case <-done:
		case <-time.After(time.Minute):
			b.Fatalf("courier: %d of %d records handled after a minute", n.Load(), b.N)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		reportRate(b, b.N, elapsed)
		reportCPU(b, b.N, cpu0)
		cancel()
		wg.Wait()
	})
	b.Run("raw", func(b *testing.B) {
		c := benchConn(b, addrs) // only to create the topic the same way
		topic := benchTopic(b, c)
		fill(b, addrs, topic, b.N-1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.ResetTimer()
		start, cpu0 := time.Now(), benchkit.CPUTime()
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: addrs, GroupID: topic + "-g", Topic: topic})
		defer r.Close()
		var latest atomic.Pointer[kafkago.Message]
		wake := make(chan struct{}, 1)
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-wake:
				case <-ctx.Done():
					return
				}
				if m := latest.Swap(nil); m != nil {
					_ = r.CommitMessages(ctx, *m)
				}
			}
		})
		for range b.N {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				b.Fatal(err)
			}
			latest.Store(&m)
			select {
			case wake <- struct{}{}:
			default:
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		reportRate(b, b.N, elapsed)
		reportCPU(b, b.N, cpu0)
		cancel()
		wg.Wait()
	})
}
