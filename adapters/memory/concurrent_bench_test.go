package memory_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// BenchmarkPublishSingles: conc goroutines each publish one 256-byte message and wait; one op
// is one message. "courier" coalesces concurrent calls (the default), "uncoalesced" sends
// every call on its own.
func BenchmarkPublishSingles(b *testing.B) {
	payload := make([]byte, 256)
	for _, conc := range []int{1, 16, 64} {
		for _, coalesce := range []int{0, 1} {
			name := "courier"
			if coalesce == 1 {
				name = "uncoalesced"
			}
			b.Run("conc="+strconv.Itoa(conc)+"/"+name, func(b *testing.B) {
				ctx := context.Background()
				conn, err := memory.Open(memory.Config{})
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close(ctx)
				p := conn.Publisher(transport.PublisherConfig{CoalesceMessages: coalesce})
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ReportAllocs()
				b.ResetTimer()
				for range conc {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if err := p.Publish(ctx, "bench", &message.Message{Payload: payload}); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}
