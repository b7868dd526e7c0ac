package kafka

import (
	"context"
	"io"
	"log/slog"
	"testing"
)

// TestHandOverOffsetsGoBackwards: when a partition's offsets restart below what was
// fetched (the topic was deleted and created again), the tracker starts afresh instead of
// refusing the records or holding commits back forever.
func TestHandOverOffsetsGoBackwards(t *testing.T) {
	r := &receiver{queue: make(chan []delivery, 4), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	g := &generation{r: r}
	p := &partition{g: g, t: newOffsetTracker(), committed: 5000}
	chunk := func(offs ...int64) []delivery {
		c := make([]delivery, len(offs))
		for i, o := range offs {
			c[i] = delivery{offset: o, p: p}
		}
		return c
	}
	ctx := context.Background()
	if !p.handOver(ctx, chunk(5000, 5001)) {
		t.Fatal("handOver refused")
	}
	p.t.finish(5000)
	if !p.handOver(ctx, chunk(0, 1)) {
		t.Fatal("handOver refused offsets that went backwards")
	}
	if p.epoch != 1 || p.committed != -1 {
		t.Fatalf("epoch %d committed %d; want a reset (1, -1)", p.epoch, p.committed)
	}
	if p.t.finish(5001) {
		t.Error("an old offset finished in the new tracker")
	}
	p.t.finish(0)
	if next, ok := p.t.commitPoint(); !ok || next != 1 {
		t.Fatalf("commit point %d, %v; want 1", next, ok)
	}
	if got := len(r.queue); got != 2 {
		t.Fatalf("%d chunks queued; want 2", got)
	}
}
