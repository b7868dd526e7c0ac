package reqreply

import (
	"context"
	"testing"

	"github.com/courierhq/courier/message"
)

// BenchmarkRequest is one request-reply round trip on memory://, one caller at a time and
// many at once (b.RunParallel): the cost of Request, the responder and the reply matching
// above the in-process broker.
func BenchmarkRequest(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		name := "serial"
		if parallel {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			conn := memConn(b)
			topic := uniqueName("rr-bench")
			serve(b, conn, topic, echo)
			r := newRequester(b, conn)
			payload := []byte("ping")
			one := func() {
				if _, err := r.Request(context.Background(), topic, message.New(payload)); err != nil {
					b.Error(err)
				}
			}
			b.ReportAllocs()
			if !parallel {
				for b.Loop() {
					one()
				}
				return
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					one()
				}
			})
		})
	}
}
