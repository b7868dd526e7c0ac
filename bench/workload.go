package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// payloadSize is the size of every message's payload.
const payloadSize = 256

// sender publishes one message and returns once the broker has it durably.
type sender interface {
	Send(ctx context.Context, payload []byte) error
	Close() error
}

// consumer receives the messages of a subscription, calling h for each and then
// acknowledging it, until ctx ends.
type consumer interface {
	Run(ctx context.Context, h func(payload []byte)) error
	Close() error
}

// contender is one library on one broker.
type contender interface {
	Name() string
	// Sender opens a publisher to topic.
	Sender(ctx context.Context, topic string) (sender, error)
	// Subscribe creates the subscription sub on topic, so that what is published from now on
	// is kept for it, and returns its consumer (not yet consuming).
	Subscribe(ctx context.Context, topic, sub string) (consumer, error)
	Close() error
}

// payload returns a 256-byte payload starting with the current time (for end-to-end latency).
func payload() []byte {
	p := make([]byte, payloadSize)
	binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
	for i := 8; i < len(p); i++ {
		p[i] = byte(i)
	}
	return p
}

// sentAt reads the time payload wrote.
func sentAt(p []byte) time.Time {
	if len(p) < 8 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(p)))
}

// publishN publishes n messages from conc goroutines, each waiting for its message's
// acknowledgement before sending the next, and returns the messages per second.
func publishN(ctx context.Context, s sender, n, conc int) (float64, error) {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := s.Send(ctx, payload()); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// latencies are the figures of one latency run, in milliseconds.
type latencies struct{ pubP50, pubP99, e2eP50, e2eP99 float64 }

// publishPaced publishes at rate messages per second for d from conc goroutines (a message
// waits for a free goroutine when all are busy) and returns the publish-call latencies; c,
// when not nil, consumes the subscription meanwhile and the end-to-end latencies are its.
func publishPaced(ctx context.Context, s sender, c consumer, rate int, d time.Duration, conc int) (latencies, error) {
	n := int(float64(rate) * d.Seconds())
	got := make(chan time.Duration, n)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runDone := make(chan error, 1)
	if c != nil {
		go func() {
			runDone <- c.Run(runCtx, func(p []byte) {
				select {
				case got <- time.Since(sentAt(p)):
				default: // more than was sent (a redelivery): not counted
				}
			})
		}()
	}
	pub, err := pace(ctx, s, n, rate, conc)
	if err != nil {
		return latencies{}, err
	}
	l := latencies{pubP50: pct(pub, 50), pubP99: pct(pub, 99)}
	if c == nil {
		return l, nil
	}
	e2e := make([]time.Duration, 0, n)
	deadline := time.After(30 * time.Second)
	for len(e2e) < n {
		select {
		case v := <-got:
			e2e = append(e2e, v)
		case err := <-runDone:
			return l, fmt.Errorf("consumer stopped after %d of %d messages: %v", len(e2e), n, err)
		case <-deadline:
			return l, fmt.Errorf("end to end: %d of %d messages arrived in 30 s", len(e2e), n)
		}
	}
	stop()
	<-runDone
	l.e2eP50, l.e2eP99 = pct(e2e, 50), pct(e2e, 99)
	return l, nil
}

// pace sends n messages at rate per second from conc goroutines and returns each call's duration.
func pace(ctx context.Context, s sender, n, rate, conc int) ([]time.Duration, error) {
	tokens := make(chan struct{}, n)
	res := make([]time.Duration, n)
	var idx atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range tokens {
				t0 := time.Now()
				if err := s.Send(ctx, payload()); err != nil {
					once.Do(func() { firstErr = err })
					continue
				}
				res[idx.Add(1)-1] = time.Since(t0)
			}
		}()
	}
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range n {
		if w := time.Until(start.Add(time.Duration(i) * interval)); w > 0 {
			time.Sleep(w)
		}
		tokens <- struct{}{}
	}
	close(tokens)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return res[:idx.Load()], nil
}

// pct returns the p-th percentile of ds in milliseconds (ds is sorted in place).
func pct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(float64(len(ds)-1) * p / 100)
	return float64(ds[i]) / float64(time.Millisecond)
}

// consumeN runs c until n messages were handled and returns the messages per second, timed
// from the start of Run to the n-th message handled: what draining a backlog takes, joining a
// consumer group or opening a stream included. (Timing from the first message instead would
// leave out the first fetch, which is all of the backlog for clients that fetch big batches.)
func consumeN(ctx context.Context, c consumer, n int) (float64, error) {
	var count atomic.Int64
	done := make(chan struct{})
	runCtx, stop := context.WithTimeout(ctx, 2*time.Minute)
	defer stop()
	var elapsed time.Duration
	runDone := make(chan error, 1)
	start := time.Now()
	go func() {
		runDone <- c.Run(runCtx, func([]byte) {
			if count.Add(1) == int64(n) {
				elapsed = time.Since(start)
				close(done)
			}
		})
	}()
	select {
	case <-done:
		stop()
		<-runDone
		return float64(n) / elapsed.Seconds(), nil
	case err := <-runDone:
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("only %d of %d messages consumed", count.Load(), n)
		}
		return 0, err
	}
}
