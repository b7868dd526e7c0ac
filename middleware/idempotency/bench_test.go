package idempotency_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/store/storetest"
)

// BenchmarkConsume measures the middleware's cost per message (1 KiB payload) around a handler
// that does nothing: a new message (claim, handle, complete) and a duplicate (one look-up),
// on each store. Redis and PostgreSQL run when their endpoint is configured.
func BenchmarkConsume(b *testing.B) {
	for _, name := range storetest.Names {
		b.Run(name+"/new", func(b *testing.B) { benchConsume(b, storetest.Open(b, name), false) })
		b.Run(name+"/duplicate", func(b *testing.B) { benchConsume(b, storetest.Open(b, name), true) })
	}
}

func benchConsume(b *testing.B, st idempotency.Store, duplicate bool) {
	i, err := idempotency.New(idempotency.Config{Store: st, Retention: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	h := i.Consume()(func(context.Context, *message.Message) error { return nil })
	ctx := context.Background()
	ids, subs := storetest.BenchKeys(b, func(i int) string { return "id-" + strconv.Itoa(i) })
	m := &message.Message{Topic: "orders", Payload: make([]byte, 1024), Attempt: 1}
	if duplicate {
		m.ID, m.Subscription = "dup", subs[0]
		if err := h(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	storetest.Bench(b, 1024, func(n int) error {
		if !duplicate {
			m.ID, m.Subscription = ids[n%len(ids)], subs[n/len(ids)]
		}
		return h(ctx, m)
	})
}
