package outbox_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/courierhq/courier/outbox"
)

// BenchmarkWrite measures a transaction that writes n outbox messages and commits (the
// Writer's cost on top of the caller's own transaction), on the PostgreSQL of the
// environment.
func BenchmarkWrite(b *testing.B) {
	pool := openPool(b, schemaURL(b))
	ctx := context.Background()
	for _, n := range []int{1, 100} {
		for _, keyed := range []bool{false, true} {
			b.Run(fmt.Sprintf("msgs=%d/keyed=%v", n, keyed), func(b *testing.B) {
				ms := msgs("b", n, 0)
				for b.Loop() {
					for _, m := range ms {
						m.ID = ""
						if keyed {
							m.Key = "k"
						}
					}
					tx, err := pool.Begin(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if err := (outbox.Writer{}).Write(ctx, tx, "bench", ms...); err != nil {
						b.Fatal(err)
					}
					if err := tx.Commit(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}
