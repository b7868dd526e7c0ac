package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/transport/driver"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/adapters/kafka"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// committed returns the group's committed offset for partition 0 of topic (-1: none).
func committed(ctx context.Context, t testing.TB, d *kafka.Driver, group, topic string) int64 {
	t.Helper()
	return committedAt(ctx, t, d, group, topic, 0)
}

// committedAt returns the committed offset of subscription group's consumer group for a
// partition of topic (-1: none). The
// broker's transient group errors (its offsets topic still loading on a fresh broker, a
// coordinator moving) are retried for a few seconds before they fail the test.
func committedAt(ctx context.Context, t testing.TB, d *kafka.Driver, group, topic string, partition int) int64 {
	t.Helper()
	var res *kafkago.OffsetFetchResponse
	var err error
	for wait := 20 * time.Millisecond; ; wait *= 2 {
		res, err = d.Client().OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: kafka.GroupID(topic, group), Topics: map[string][]int{topic: {partition}}})
		if err == nil {
			err = res.Error
		}
		var kerr kafkago.Error
		if err == nil || !errors.As(err, &kerr) || !kerr.Temporary() || wait > 3*time.Second {
			break
		}
		time.Sleep(wait)
	}
	if err != nil {
		t.Errorf("offset fetch: %v", err)
		return -1
	}
	for _, p := range res.Topics[topic] {
		if p.Partition == partition {
			return p.CommittedOffset
		}
	}
	return -1
}

func offsetOf(t testing.TB, m *message.Message) int64 {
	var rec kafkago.Message
	if !m.As(&rec) {
		t.Errorf("message %s: As(*kafka.Message) = false", m.ID)
		return -1
	}
	return rec.Offset
}

// TestCommitRule proves the commit rule end to end: handlers run in parallel and finish out
// of order, some never finish (stuck, or failing and retried in place), and the subscriber
// "crashes" in the middle. Throughout, a sampler checks that the committed offset never
// passes a record whose handler has not returned (so a crash at any instant skips nothing);
// after the crash the committed offset is exactly the first unfinished record, and a new
// subscriber on the group redelivers every unfinished record, starting there.
func TestCommitRule(t *testing.T) {
	c := openConn(t, "partitions=1")
	d := driverOf(t, c)
	topic, group := topicName(t), "commit-rule"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	const n = 300
	stuck := map[int]bool{17: true, 18: true, 120: true, 250: true} // block until the crash
	const failing = 60                                              // fails on every attempt
	unfinished := map[int]bool{failing: true}
	for k := range stuck {
		unfinished[k] = true
	}

	s1, err := c.Subscribe(ctx, topic, group, transport.SubscriberConfig{
		Concurrency:  16,
		DrainTimeout: 200 * time.Millisecond,
		Retry:        transport.RetryPolicy{MaxAttempts: 1 << 20, InitialDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]*message.Message, n)
	for i := range msgs {
		// No keys: any idle handler takes the next record, so they finish out of order.
		msgs[i] = &message.Message{ID: fmt.Sprintf("m-%03d", i), Payload: []byte("x"), Headers: message.Headers{"n": strconv.Itoa(i)}}
	}
	for i := 0; i < n; i += 50 {
		if err := c.Publish(ctx, topic, msgs[i:i+50]...); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	finished := map[int64]bool{} // offsets whose handler returned nil
	offsetOfN := map[int]int64{}
	var violations []string
	doneAll := make(chan struct{})
	var once sync.Once
	rctx, crash := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() {
		runDone <- s1.Run(rctx, func(hctx context.Context, m *message.Message) error {
			i, _ := strconv.Atoi(m.Headers["n"])
			off := offsetOf(t, m)
			mu.Lock()
			offsetOfN[i] = off
			mu.Unlock()
			switch {
			case stuck[i]:
				<-hctx.Done()
				return hctx.Err()
			case i == failing:
				return errors.New("downstream refuses this one")
			}
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			mu.Lock()
			finished[off] = true
			if len(finished) == n-len(unfinished) {
				once.Do(func() { close(doneAll) })
			}
			mu.Unlock()
			return nil
		})
	}()

	// The sampler: read the committed offset C, then the finished set F; every offset below
	// C must be in F (F only grows, so reading it after C is what makes the check sound).
	sampleStop := make(chan struct{})
	sampled := make(chan int)
	go func() {
		samples := 0
		defer func() { sampled <- samples }()
		for {
			select {
			case <-sampleStop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			cOff := committed(ctx, t, d, group, topic)
			mu.Lock()
			for o := int64(0); o < cOff; o++ {
				if !finished[o] {
					violations = append(violations, fmt.Sprintf("committed %d while offset %d was unfinished", cOff, o))
					break
				}
			}
			mu.Unlock()
			samples++
		}
	}()

	select {
	case <-doneAll:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("only %d of %d handlers finished", len(finished), n-len(unfinished))
	}
	// Wait for the commit of the finished prefix: it stops at the first unfinished record.
	mu.Lock()
	firstGap := int64(n)
	for i := range unfinished {
		firstGap = min(firstGap, offsetOfN[i])
	}
	mu.Unlock()
	for {
		got := committed(ctx, t, d, group, topic)
		if got == firstGap {
			break
		}
		if got > firstGap || ctx.Err() != nil {
			t.Fatalf("committed offset %d; want %d (the first unfinished record)", got, firstGap)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Crash in the middle: stuck handlers are cancelled, the failing one is still retrying.
	crash()
	if err := <-runDone; err != nil {
		t.Errorf("run: %v", err)
	}
	close(sampleStop)
	samples := <-sampled
	if got := committed(ctx, t, d, group, topic); got != firstGap {
		t.Fatalf("after the crash the committed offset is %d; want %d, the first unfinished record", got, firstGap)
	}
	mu.Lock()
	for _, v := range violations[:min(len(violations), 5)] {
		t.Error(v)
	}
	mu.Unlock()
	t.Logf("%d samples of the committed offset, %d violations; committed %d after the crash", samples, len(violations), firstGap)

	// The next consumer redelivers every unfinished record and skips none.
	s2, err := c.Subscribe(ctx, topic, group, transport.SubscriberConfig{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	var mu2 sync.Mutex
	redelivered := map[int]bool{}
	var firstOffset int64 = -1
	got := make(chan struct{}, 1)
	r2 := make(chan error, 1)
	r2ctx, stop2 := context.WithCancel(ctx)
	go func() {
		r2 <- s2.Run(r2ctx, func(_ context.Context, m *message.Message) error {
			i, _ := strconv.Atoi(m.Headers["n"])
			off := offsetOf(t, m)
			mu2.Lock()
			if firstOffset < 0 || off < firstOffset {
				firstOffset = off
			}
			redelivered[i] = true
			mu2.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	for {
		mu2.Lock()
		missing := 0
		for i := range unfinished {
			if !redelivered[i] {
				missing++
			}
		}
		mu2.Unlock()
		if missing == 0 {
			break
		}
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatalf("%d unfinished records were not redelivered", missing)
		}
	}
	stop2()
	if err := <-r2; err != nil {
		t.Errorf("run 2: %v", err)
	}
	mu2.Lock()
	defer mu2.Unlock()
	if firstOffset != firstGap {
		t.Errorf("the new consumer started at offset %d; want %d", firstOffset, firstGap)
	}
	dups := 0
	for i := range redelivered {
		if !unfinished[i] {
			dups++
		}
	}
	t.Logf("redelivered all %d unfinished records; %d records finished before the crash were delivered again (they followed the first gap)", len(unfinished), dups)
}

// TestAckCommitsContiguousPrefix drives the receiver directly: acks in a scrambled order
// move the committed offset only over the contiguous prefix, and a new receiver on the group
// resumes at the first record not acked.
func TestAckCommitsContiguousPrefix(t *testing.T) {
	c := openConn(t, "partitions=1")
	d := driverOf(t, c)
	topic, group := topicName(t), "prefix"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	recv, err := d.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Subscription: group, Prefetch: 64})
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := 0; i < n; i++ {
		if err := c.Publish(ctx, topic, &message.Message{ID: strconv.Itoa(i), Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	byOffset := map[int64]*message.Message{}
	buf := make([]*message.Message, n)
	for len(byOffset) < n {
		k, err := recv.Receive(ctx, buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range buf[:k] {
			byOffset[offsetOf(t, m)] = m
		}
	}
	steps := []struct {
		ack  []int64
		want int64 // committed offset afterwards (0: the start Subscribe committed, nothing acked)
	}{
		{[]int64{3, 5}, 0},
		{[]int64{1}, 0},
		{[]int64{0}, 2},
		{[]int64{2}, 4},
		{[]int64{9, 8, 6}, 4},
		{[]int64{4}, 7},
		// 7 is never acked: the crash below leaves it (and 8, 9) to the next consumer.
	}
	for _, s := range steps {
		batch := make([]*message.Message, 0, len(s.ack))
		for _, o := range s.ack {
			batch = append(batch, byOffset[o])
		}
		if err := recv.Ack(ctx, batch); err != nil {
			t.Fatalf("ack %v: %v", s.ack, err)
		}
		if got := committed(ctx, t, d, group, topic); got != s.want {
			t.Fatalf("after acking %v: committed %d; want %d", s.ack, got, s.want)
		}
	}
	if err := recv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := committed(ctx, t, d, group, topic); got != 7 {
		t.Fatalf("after close: committed %d; want 7", got)
	}

	recv2, err := d.Subscribe(ctx, driver.SubscriptionSpec{Topic: topic, Subscription: group, Prefetch: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer recv2.Close(ctx)
	var offs []int64
	for len(offs) < 3 {
		k, err := recv2.Receive(ctx, buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range buf[:k] {
			offs = append(offs, offsetOf(t, m))
		}
	}
	if !slices.Equal(offs, []int64{7, 8, 9}) {
		t.Fatalf("the next receiver got offsets %v; want [7 8 9]", offs)
	}
}
