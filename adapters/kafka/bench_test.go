package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/adapters/kafka"
	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/internal/benchkit"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// The benchmarks compare Courier with kafka-go used directly, side by side in one run, with
// the same settings: acks=all, batches of up to 1000 records or 2ms, murmur2/round-robin
// placement, read_committed fetches of up to 1 MiB with a 500ms wait, 1024 records buffered
// ahead of the handler, explicit commits of the highest finished offset pipelined behind the
// previous commit. Payloads are 256 bytes; topics have one partition. They need a real broker
// (brokers.Endpoint skips without one).

const (
	benchPayload    = 256
	benchBatch      = 10 // records per publish call
	benchPublishers = 16
)

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

func benchBrokers(b *testing.B) []string {
	return strings.Split(brokers.Endpoint(b, brokers.Kafka), ",")
}

func benchConn(b *testing.B, addrs []string) *transport.Conn {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := kafka.Open(ctx, kafka.Config{Brokers: addrs, Partitions: 1, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// rawSettings returns a kafka-go transport and dialer configured as the adapter configures
// its own.
func rawSettings() (*kafkago.Transport, *kafkago.Dialer) {
	nd := &net.Dialer{Timeout: kafka.DefaultDialTimeout, KeepAlive: 30 * time.Second}
	tr := &kafkago.Transport{Dial: nd.DialContext, DialTimeout: kafka.DefaultDialTimeout, ClientID: "raw"}
	d := &kafkago.Dialer{ClientID: "raw", Timeout: kafka.DefaultDialTimeout, DualStack: true, KeepAlive: 30 * time.Second}
	return tr, d
}

func benchTopic(b *testing.B, c *transport.Conn) string {
	b.Helper()
	topic := fmt.Sprintf("courier-bench-%d", time.Now().UnixNano())
	// Publishing once creates the topic (one partition).
	if err := c.Publish(context.Background(), topic, &message.Message{Payload: []byte("create")}); err != nil {
		b.Fatal(err)
	}
	return topic
}

func reportRate(b *testing.B, msgs int, elapsed time.Duration) {
	b.ReportMetric(float64(msgs)/elapsed.Seconds(), "msgs/s")
}

// reportCPU reports CPU time per message: on a shared, loaded machine it is steadier than
// the rate.
func reportCPU(b *testing.B, msgs int, since time.Duration) {
	b.ReportMetric(float64(benchkit.CPUTime()-since)/float64(msgs), "cpu-ns/msg")
}

// BenchmarkPublish: 16 goroutines publish batches of 10 records; one op is one batch.
func BenchmarkPublish(b *testing.B) {
	addrs := benchBrokers(b)
	payload := bytes.Repeat([]byte("p"), benchPayload)

	b.Run("courier", func(b *testing.B) {
		c := benchConn(b, addrs)
		topic := benchTopic(b, c)
		b.SetParallelism(benchPublishers / max(1, runtimeProcs()))
		b.ResetTimer()
		start, cpu0 := time.Now(), benchkit.CPUTime()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			msgs := make([]*message.Message, benchBatch)
			for i := range msgs {
				msgs[i] = &message.Message{Payload: payload}
			}
			for pb.Next() {
				for _, m := range msgs {
					m.ID, m.PublishTime = "", time.Time{} // new messages each time
				}
				if err := c.Publish(ctx, topic, msgs...); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b, b.N*benchBatch, time.Since(start))
		reportCPU(b, b.N*benchBatch, cpu0)
	})

	b.Run("raw", func(b *testing.B) {
		c := benchConn(b, addrs) // only to create the topic the same way
		topic := benchTopic(b, c)
		tr, _ := rawSettings()
		defer tr.CloseIdleConnections()
		w := &kafkago.Writer{
			Addr: kafkago.TCP(addrs...), Topic: topic, Transport: tr,
			Balancer: &kafkago.RoundRobin{}, RequiredAcks: kafkago.RequireAll,
			BatchSize: kafka.DefaultBatchSize, BatchBytes: 1 << 20, BatchTimeout: kafka.DefaultBatchTimeout,
		}
		defer w.Close()
		b.SetParallelism(benchPublishers / max(1, runtimeProcs()))
		b.ResetTimer()
		start, cpu0 := time.Now(), benchkit.CPUTime()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			msgs := make([]kafkago.Message, benchBatch)
			for pb.Next() {
				for i := range msgs {
					msgs[i] = kafkago.Message{Value: payload, Time: time.Now()}
				}
				if err := w.WriteMessages(ctx, msgs...); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b, b.N*benchBatch, time.Since(start))
		reportCPU(b, b.N*benchBatch, cpu0)
	})
}

// fill writes n records as Courier publishes them (with a courier-id header) using a fast
// raw writer, so that both consumers read identical data.
func fill(b *testing.B, addrs []string, topic string, n int) {
	b.Helper()
	tr, _ := rawSettings()
	defer tr.CloseIdleConnections()
	w := &kafkago.Writer{Addr: kafkago.TCP(addrs...), Topic: topic, Transport: tr, RequiredAcks: kafkago.RequireAll,
		BatchSize: 5000, BatchBytes: 1 << 20, BatchTimeout: 10 * time.Millisecond}
	defer w.Close()
	payload := bytes.Repeat([]byte("p"), benchPayload)
	const chunk = 5000
	batch := make([]kafkago.Message, 0, chunk)
	for i := 0; i < n; i++ {
		batch = append(batch, kafkago.Message{Value: payload, Time: time.Now(),
			Headers: []kafkago.Header{{Key: message.HeaderID, Value: []byte(fmt.Sprintf("01890000-0000-7000-8000-%012d", i))}}})
		if len(batch) == chunk || i == n-1 {
			if err := w.WriteMessages(context.Background(), batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// BenchmarkConsume: records already in a topic are handled (no work) and acknowledged; one op
// is one record. Timing starts once the consumer has joined its group and handled the first
// 1000 records.
func BenchmarkConsume(b *testing.B) {
	addrs := benchBrokers(b)
	const warm = 1000

	// One handler at a time, as the raw loop handles records: the equal setting.
	b.Run("courier", func(b *testing.B) { consumeCourier(b, addrs, 1) })
	// The engine's default: eight handlers.
	b.Run("courier-concurrency-8", func(b *testing.B) { consumeCourier(b, addrs, 0) })

	b.Run("raw", func(b *testing.B) {
		c := benchConn(b, addrs)
		topic := benchTopic(b, c)
		fill(b, addrs, topic, b.N+warm-1)
		total := b.N + warm
		_, dialer := rawSettings()
		r := kafkago.NewReader(kafkago.ReaderConfig{
			Brokers: addrs, GroupID: "bench", Topic: topic, Dialer: dialer,
			QueueCapacity: kafka.DefaultQueueCapacity, MinBytes: 1, MaxBytes: kafka.DefaultFetchMaxBytes,
			MaxWait: kafka.DefaultMaxWait, ReadLagInterval: -1, IsolationLevel: kafkago.ReadCommitted,
			HeartbeatInterval: kafka.DefaultHeartbeatInterval, SessionTimeout: kafka.DefaultSessionTimeout,
			RebalanceTimeout: kafka.DefaultRebalanceTimeout, JoinGroupBackoff: kafka.DefaultJoinGroupBackoff,
			StartOffset: kafkago.FirstOffset,
		})
		defer r.Close()
		// Commits are pipelined as Courier's are: one in flight, covering whatever finished
		// meanwhile.
		var latest atomic.Pointer[kafkago.Message]
		wake := make(chan struct{}, 1)
		commitsDone := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			defer close(commitsDone)
			for {
				select {
				case <-wake:
				case <-ctx.Done():
					return
				}
				if m := latest.Swap(nil); m != nil {
					if err := r.CommitMessages(ctx, *m); err != nil && ctx.Err() == nil {
						b.Error(err)
					}
				}
			}
		}()
		var start time.Time
		var cpu0 time.Duration
		for i := 1; i <= total; i++ {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				b.Fatal(err)
			}
			latest.Store(&m)
			select {
			case wake <- struct{}{}:
			default:
			}
			if i == warm {
				b.ResetTimer()
				start, cpu0 = time.Now(), benchkit.CPUTime()
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		reportRate(b, b.N, elapsed)
		reportCPU(b, b.N, cpu0)
		cancel()
		<-commitsDone
	})
}

// BenchmarkPublishLone: one goroutine publishes one message at a time and waits for it; one
// op is one message (its latency: the batch timeout plus a round trip with acks=all).
func BenchmarkPublishLone(b *testing.B) {
	addrs := benchBrokers(b)
	c := benchConn(b, addrs)
	topic := benchTopic(b, c)
	payload := bytes.Repeat([]byte("p"), benchPayload)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Publish(ctx, topic, &message.Message{Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
}

// consumeCourier consumes b.N records (after a warm-up) with a Courier subscriber running
// concurrency handlers (0: the default).
func consumeCourier(b *testing.B, addrs []string, concurrency int) {
	const warm = 1000
	c := benchConn(b, addrs)
	topic := benchTopic(b, c)
	fill(b, addrs, topic, b.N+warm-1) // plus the record benchTopic wrote
	total := int64(b.N + warm)
	var n atomic.Int64
	warmed, done := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.Subscribe(ctx, topic, "bench", transport.SubscriberConfig{Concurrency: concurrency})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = s.Run(ctx, func(context.Context, *message.Message) error {
			switch n.Add(1) {
			case warm:
				close(warmed)
			case total:
				close(done)
			}
			return nil
		})
	}()
	<-warmed
	b.ResetTimer()
	start, cpu0 := time.Now(), benchkit.CPUTime()
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	reportRate(b, b.N, elapsed)
	reportCPU(b, b.N, cpu0)
	cancel()
	wg.Wait()
}
