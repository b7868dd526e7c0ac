package ordering_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/storetest"
)

// BenchmarkConsume measures the consume half's cost per message (1 KiB payload), messages of
// one key arriving in order: one look-up that claims, the handler (a no-op), one commit.
func BenchmarkConsume(b *testing.B) {
	for _, name := range storetest.Names {
		b.Run(name, func(b *testing.B) {
			o, err := ordering.New(ordering.Config{Store: storetest.Open(b, name)})
			if err != nil {
				b.Fatal(err)
			}
			h := o.Consume()(func(context.Context, *message.Message) error { return nil })
			ctx := context.Background()
			stamps, keys := storetest.BenchKeys(b, func(i int) string { return ordering.FormatStamp(1, int64(i+1)) })
			m := &message.Message{ID: "m", Topic: "orders", Subscription: "s", Payload: make([]byte, 1024),
				Attempt: 1, Headers: message.Headers{message.HeaderSequence: ""}}
			storetest.Bench(b, 1024, func(n int) error {
				m.Key = keys[n/len(stamps)]
				m.Headers[message.HeaderSequence] = stamps[n%len(stamps)]
				return h(ctx, m)
			})
		})
	}
}

// BenchmarkPublish measures the publish half's cost per message (1 KiB payload): batches of
// one message, and of 100 messages over 10 keys (one reservation per key per batch).
func BenchmarkPublish(b *testing.B) {
	for _, name := range storetest.Names {
		for _, size := range []int{1, 100} {
			b.Run(name+"/batch="+strconv.Itoa(size), func(b *testing.B) {
				o, err := ordering.New(ordering.Config{Store: storetest.Open(b, name)})
				if err != nil {
					b.Fatal(err)
				}
				pub := o.Publish()(func(context.Context, string, []*message.Message) error { return nil })
				ctx := context.Background()
				payload := make([]byte, 1024)
				batch := make([]*message.Message, size)
				run := strconv.FormatInt(time.Now().UnixNano(), 36)
				for i := range batch {
					batch[i] = &message.Message{ID: "m", Key: run + "-" + strconv.Itoa(i%10), Payload: payload,
						Headers: message.Headers{"tenant": "acme"}}
				}
				b.ReportAllocs()
				b.SetBytes(1024)
				b.ResetTimer()
				for n := 0; n < b.N; n += size {
					if err := pub(ctx, "orders", batch); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
