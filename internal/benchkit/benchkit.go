// Package benchkit holds the benchmark loops the adapters' publish benchmarks share, so each
// adapter's benchmark says only what it publishes. Only _test.go files import it.
package benchkit

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
)

// CPUTime is the user and system CPU time the process has used so far (0 where getrusage
// fails).
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Run makes b.N calls of publish from conc goroutines (one op is one call) and reports
// msgs/s and cpu-µs/msg; see RunPer.
func Run(b *testing.B, conc int, publish func(ctx context.Context) error) {
	b.Helper()
	RunPer(b, conc, func() func(ctx context.Context) error { return publish })
}

// RunPer is Run with a publish function made per goroutine (per is called once for each,
// before the timer starts). The timer is reset before the first call and stopped after the
// last; a goroutine whose call fails reports the error and stops.
func RunPer(b *testing.B, conc int, per func() func(ctx context.Context) error) {
	b.Helper()
	fns := make([]func(ctx context.Context) error, conc)
	for i := range fns {
		fns[i] = per()
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	ctx := context.Background()
	b.ResetTimer()
	cpu0 := CPUTime()
	for _, publish := range fns {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := publish(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	Report(b, b.N, cpu0)
}

// Report reports n messages over the benchmark's elapsed time as msgs/s and, when cpu0 (a
// CPUTime reading at the start) is set, the CPU spent per message as cpu-µs/msg.
func Report(b *testing.B, n int, cpu0 time.Duration) {
	b.Helper()
	if n == 0 {
		return
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
	if cpu0 != 0 {
		b.ReportMetric(float64(CPUTime()-cpu0)/float64(time.Microsecond)/float64(n), "cpu-µs/msg")
	}
}

// CountTo returns a handler that counts its calls and a channel closed at the n-th: a
// consume benchmark runs it and waits on the channel.
func CountTo(n int) (message.Handler, <-chan struct{}) {
	var handled atomic.Int64
	done := make(chan struct{})
	return func(context.Context, *message.Message) error {
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	}, done
}

// PublishN publishes n messages of size bytes through publish, in batches of 100 (fresh
// messages each time, as a service would make them).
func PublishN(b *testing.B, n, size int, publish func(msgs ...*message.Message) error) {
	b.Helper()
	payload := make([]byte, size)
	const batch = 100
	msgs := make([]*message.Message, batch)
	for sent := 0; sent < n; sent += batch {
		k := min(batch, n-sent)
		for i := range k {
			msgs[i] = &message.Message{Payload: payload}
		}
		if err := publish(msgs[:k]...); err != nil {
			b.Fatal(err)
		}
	}
}
