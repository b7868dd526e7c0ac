package memory_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/internal/benchkit"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// BenchmarkEndToEnd measures publish + handle + ack through the engine on the in-process
// broker, 256-byte payloads, published in batches of 100. Report: msgs/s.
func BenchmarkEndToEnd(b *testing.B) {
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			ctx := context.Background()
			conn, err := memory.Open(memory.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(ctx)
			sub, err := conn.Subscribe(ctx, "bench", "s", transport.SubscriberConfig{Concurrency: conc})
			if err != nil {
				b.Fatal(err)
			}
			count, done := benchkit.CountTo(b.N)
			rctx, cancel := context.WithCancel(ctx)
			go func() { _ = sub.Run(rctx, count) }()
			b.ReportAllocs()
			b.SetBytes(256)
			b.ResetTimer()
			benchkit.PublishN(b, b.N, 256, func(msgs ...*message.Message) error { return conn.Publish(ctx, "bench", msgs...) })
			<-done
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			cancel()
		})
	}
}
