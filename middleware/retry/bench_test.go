package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/retry"
)

// BenchmarkClassifier: the consume middleware per message, on success (the common case) and on
// a failure that the third rule classifies, with and without a backoff schedule.
func BenchmarkClassifier(b *testing.B) {
	ctx := context.Background()
	rules := []retry.Rule{retry.RetryableIs(context.DeadlineExceeded), retry.PermanentAs[*codeErr](), retry.PermanentIs(errBad)}
	plain, _ := retry.New(retry.Config{Rules: rules})
	sched, _ := retry.New(retry.Config{Rules: rules, BackOff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Second) }})
	m := &message.Message{ID: "x", Payload: make([]byte, 1024), Attempt: 2}
	wrapped := errors.Join(errTransient)
	for _, tc := range []struct {
		name string
		c    *retry.Classifier
		err  error
	}{
		{"success", plain, nil},
		{"permanent-rule", plain, errBad},
		{"unmatched", plain, wrapped},
		{"unmatched-with-backoff", sched, wrapped},
	} {
		h := tc.c.Consume()(func(context.Context, *message.Message) error { return tc.err })
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = h(ctx, m)
			}
		})
	}
}
