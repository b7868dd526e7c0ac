package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/transport/driver"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/message"
)

// collecting runs r.Receive in the background and records what arrives (without acking).
type collecting struct {
	mu     sync.Mutex
	msgs   []*message.Message
	change chan struct{}
	stop   context.CancelFunc
	done   chan struct{}
}

func collect(t *testing.T, r driver.Receiver) *collecting {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collecting{change: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		buf := make([]*message.Message, 64)
		for {
			n, err := r.Receive(ctx, buf)
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, buf[:n]...)
			c.mu.Unlock()
			select {
			case c.change <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { c.stop(); <-c.done })
	return c
}

func (c *collecting) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func (c *collecting) waitFor(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for c.count() < n {
		select {
		case <-c.change:
		case <-deadline:
			t.Fatalf("received %d records; want %d", c.count(), n)
		}
	}
}

func (c *collecting) snapshot() []*message.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*message.Message(nil), c.msgs...)
}

func partitionOf(t testing.TB, m *message.Message) int {
	var rec kafkago.Message
	if !m.As(&rec) {
		t.Fatalf("As(*kafka.Message) = false")
	}
	return rec.Partition
}

// TestRevokedAcksAreNotCommitted: records a subscriber still holds when its partitions are
// revoked (another member joined) are not committed when it acks them afterwards; the new
// owner delivers them again, and its own acks commit.
func TestRevokedAcksAreNotCommitted(t *testing.T) {
	c := openConn(t, "partitions=2&revoke_timeout=500ms")
	d := driverOf(t, c)
	topic, group := topicName(t), "revoked"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	spec := driver.SubscriptionSpec{Topic: topic, Subscription: group, Prefetch: 100}
	ra, err := d.Subscribe(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close(ctx)
	for i := 0; i < 20; i++ {
		if err := c.Publish(ctx, topic, &message.Message{ID: fmt.Sprint(i), Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	a := collect(t, ra)
	a.waitFor(t, 20, 30*time.Second)
	held := a.snapshot()[:20]

	rb, err := d.Subscribe(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close(ctx)
	b := collect(t, rb)
	// B receives only once A gave up its partitions (eager rebalance): A's generation is
	// revoked from then on.
	b.waitFor(t, 1, 30*time.Second)

	if err := ra.Ack(ctx, held); err != nil {
		t.Fatalf("late ack: %v", err)
	}
	for p := 0; p < 2; p++ {
		// Subscribe committed the start (offset 0 of the empty topic); acks would move it on.
		if got := committedAt(ctx, t, d, group, topic, p); got > 0 {
			t.Errorf("partition %d: committed %d after acks of a revoked generation; want only the start (0)", p, got)
		}
	}

	// B owns at least one partition and delivers all of its records again, A's included.
	perPartition := map[int]int{}
	for _, m := range held {
		perPartition[partitionOf(t, m)]++
	}
	time.Sleep(500 * time.Millisecond)
	got := b.snapshot()
	owned := map[int]int{}
	for _, m := range got {
		owned[partitionOf(t, m)]++
	}
	want := 0
	for p := range owned {
		want += perPartition[p]
	}
	b.waitFor(t, want, 30*time.Second)
	got = b.snapshot()
	if err := rb.Ack(ctx, got); err != nil {
		t.Fatal(err)
	}
	for p := range owned {
		if c := committedAt(ctx, t, d, group, topic, p); c != int64(perPartition[p]) {
			t.Errorf("partition %d: B acked all %d records but committed %d", p, perPartition[p], c)
		}
	}
	t.Logf("B owns partitions %v and redelivered %d records A held", keys(owned), len(got))
}

func keys(m map[int]int) []int {
	var k []int
	for p := range m {
		k = append(k, p)
	}
	return k
}

// TestRevokeWaitsForInFlight: a subscriber losing its partitions waits (up to
// RevokeTimeout) for records in flight; acks that arrive meanwhile are committed, so the
// new owner does not deliver them again.
func TestRevokeWaitsForInFlight(t *testing.T) {
	c := openConn(t, "partitions=2&revoke_timeout=4s")
	d := driverOf(t, c)
	topic, group := topicName(t), "drain"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	spec := driver.SubscriptionSpec{Topic: topic, Subscription: group, Prefetch: 100}
	ra, err := d.Subscribe(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close(ctx)
	for i := 0; i < 20; i++ {
		if err := c.Publish(ctx, topic, &message.Message{ID: fmt.Sprint("old-", i), Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	a := collect(t, ra)
	a.waitFor(t, 20, 30*time.Second)
	held := a.snapshot()[:20]

	rb, err := d.Subscribe(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close(ctx)
	b := collect(t, rb)
	// B's join starts a rebalance that A notices within a heartbeat (200ms); A then waits for
	// its handlers, up to 4s. Ack in the middle of that wait.
	time.Sleep(time.Second)
	if b.count() != 0 {
		t.Fatalf("B received %d records while A was still draining", b.count())
	}
	if err := ra.Ack(ctx, held); err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for p := 0; p < 2; p++ {
		if o := committedAt(ctx, t, d, group, topic, p); o > 0 {
			total += o
		}
	}
	if total != 20 {
		t.Fatalf("committed offsets add up to %d; want 20 (every acked record)", total)
	}
	// B takes over and sees only new records.
	for i := 0; i < 10; i++ {
		if err := c.Publish(ctx, topic, &message.Message{ID: fmt.Sprint("new-", i), Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	b.waitFor(t, 1, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	for _, m := range b.snapshot() {
		if len(m.ID) > 4 && m.ID[:4] == "old-" {
			t.Errorf("B got %s, which A acked during the revocation", m.ID)
		}
	}
}
