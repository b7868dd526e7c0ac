package rabbitmq_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/adapters/rabbitmq"
	"github.com/courierhq/courier/internal/benchkit"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// Benchmarks against a real broker, Courier next to raw amqp091-go with the same settings:
// persistent 256-byte messages with a UUID message ID and a timestamp, mandatory publishes,
// publisher confirms with up to 1000 in flight (batches of 1000), and, for consuming,
// prefetch 256 with one ack per message (raw) versus the engine's defaults (8 handlers,
// prefetch 256). Courier's messages also carry its publish-time header (nanoseconds). Run:
//
//	go test -run '^$' -bench . -count 3 ./adapters/rabbitmq/
const (
	benchPayload  = 256
	benchBatch    = 1000
	benchPrefetch = 256
)

// benchTopology declares an exchange and a queue bound to it, as Courier would, and
// deletes both when the benchmark ends.
func benchTopology(b *testing.B, ch *amqp.Channel, name string) {
	b.Helper()
	if err := ch.ExchangeDeclare(name, "topic", true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := ch.QueueDeclare(name+".s", true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if err := ch.QueueBind(name+".s", "#", name, false, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_, _ = ch.QueueDelete(name+".s", false, false, false)
		_, _ = ch.QueueDelete(name+".dlq.s.dlq", false, false, false)
		_ = ch.ExchangeDelete(name, false, false)
		_ = ch.ExchangeDelete(name+".dlq", false, false)
	})
}

func benchName(kind string) string {
	return fmt.Sprintf("c-bench-%s-%d", kind, time.Now().UnixNano())
}

// report adds msgs/s and, since throughput on a shared machine depends on the broker's
// share of the CPU, this process's CPU time per message (user + system, from when the
// timer was last reset), which does not.
func report(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
	if cpuStart != 0 {
		b.ReportMetric(float64(benchkit.CPUTime()-cpuStart)/float64(time.Microsecond)/float64(n), "cpu-µs/msg")
	}
}

var cpuStart time.Duration

// resetTimer resets the benchmark timer and the CPU time baseline.
func resetTimer(b *testing.B) {
	b.ResetTimer()
	cpuStart = benchkit.CPUTime()
}

// rawPublish publishes n persistent messages with confirms, keeping window in flight.
func rawPublish(b *testing.B, ch *amqp.Channel, exchange string, n, window int) {
	b.Helper()
	body := make([]byte, benchPayload)
	returns := ch.NotifyReturn(make(chan amqp.Return, 16))
	inflight := make([]*amqp.DeferredConfirmation, 0, window)
	for i := 0; i < n; i++ {
		if len(inflight) == window {
			if !inflight[0].Wait() {
				b.Fatal("nacked")
			}
			inflight = inflight[1:]
		}
		// A message ID of the same form as Courier's (a UUID): the same bytes on the wire.
		dc, err := ch.PublishWithDeferredConfirm(exchange, "", true, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, MessageId: uuid.NewString(), Timestamp: time.Now(), Body: body})
		if err != nil {
			b.Fatal(err)
		}
		inflight = append(inflight, dc)
	}
	for _, dc := range inflight {
		if !dc.Wait() {
			b.Fatal("nacked")
		}
	}
	select {
	case r := <-returns:
		b.Fatalf("returned: %s", r.ReplyText)
	default:
	}
}

func BenchmarkPublish(b *testing.B) {
	url := endpoint(b)
	admin := rawChannel(b, url)

	courier := func(cfg rabbitmq.Config) func(b *testing.B) {
		return func(b *testing.B) {
			ctx := context.Background()
			c := openConfig(b, cfg)
			topic := benchName("pub")
			benchTopology(b, admin, topic)
			payload := make([]byte, benchPayload)
			msgs := make([]*message.Message, benchBatch)
			b.SetBytes(benchPayload)
			resetTimer(b)
			for sent := 0; sent < b.N; sent += benchBatch {
				n := min(benchBatch, b.N-sent)
				for i := 0; i < n; i++ {
					msgs[i] = &message.Message{Payload: payload}
				}
				if err := c.Publish(ctx, topic, msgs[:n]...); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			report(b, b.N)
		}
	}
	b.Run("courier", courier(rabbitmq.Config{URL: url}))
	// With the nanosecond publish-time header (Config.PrecisePublishTime).
	b.Run("courier-precise", courier(rabbitmq.Config{URL: url, PrecisePublishTime: true}))

	b.Run("raw", func(b *testing.B) {
		ch := rawChannel(b, url)
		if err := ch.Confirm(false); err != nil {
			b.Fatal(err)
		}
		topic := benchName("pub-raw")
		benchTopology(b, admin, topic)
		b.SetBytes(benchPayload)
		resetTimer(b)
		for sent := 0; sent < b.N; sent += benchBatch {
			rawPublish(b, ch, topic, min(benchBatch, b.N-sent), benchBatch)
		}
		b.StopTimer()
		report(b, b.N)
	})

	// One confirm at a time: what pipelining is compared with.
	b.Run("raw-serial", func(b *testing.B) {
		ch := rawChannel(b, url)
		if err := ch.Confirm(false); err != nil {
			b.Fatal(err)
		}
		topic := benchName("pub-serial")
		benchTopology(b, admin, topic)
		b.SetBytes(benchPayload)
		resetTimer(b)
		rawPublish(b, ch, topic, b.N, 1)
		b.StopTimer()
		report(b, b.N)
	})
}

// preload fills topic's queue with n Courier messages (outside the timer).
func preload(b *testing.B, c *transport.Conn, topic string, n int) {
	b.Helper()
	payload := make([]byte, benchPayload)
	msgs := make([]*message.Message, benchBatch)
	for sent := 0; sent < n; sent += benchBatch {
		k := min(benchBatch, n-sent)
		for i := 0; i < k; i++ {
			msgs[i] = &message.Message{Payload: payload}
		}
		if err := c.Publish(context.Background(), topic, msgs[:k]...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConsume(b *testing.B) {
	url := endpoint(b)
	admin := rawChannel(b, url)

	b.Run("courier", func(b *testing.B) {
		ctx := context.Background()
		c := openConfig(b, rabbitmq.Config{URL: url})
		topic := benchName("con")
		benchTopology(b, admin, topic)
		preload(b, c, topic, b.N)
		sub, err := c.Subscribe(ctx, topic, "s", transport.SubscriberConfig{Prefetch: benchPrefetch})
		if err != nil {
			b.Fatal(err)
		}
		count, done := benchkit.CountTo(b.N)
		rctx, cancel := context.WithCancel(ctx)
		runDone := make(chan error, 1)
		b.SetBytes(benchPayload)
		resetTimer(b)
		go func() { runDone <- sub.Run(rctx, count) }()
		<-done
		b.StopTimer()
		report(b, b.N)
		cancel()
		if err := <-runDone; err != nil {
			b.Fatal(err)
		}
	})

	b.Run("raw", func(b *testing.B) {
		ctx := context.Background()
		c := openConfig(b, rabbitmq.Config{URL: url})
		topic := benchName("con-raw")
		benchTopology(b, admin, topic)
		preload(b, c, topic, b.N)
		ch := rawChannel(b, url)
		if err := ch.Qos(benchPrefetch, 0, false); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(benchPayload)
		resetTimer(b)
		deliveries, err := ch.ConsumeWithContext(ctx, topic+".s", "", false, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			d := <-deliveries
			if err := d.Ack(false); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		report(b, b.N)
		_ = ch.Close()
	})
}
