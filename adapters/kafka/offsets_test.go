package kafka

import (
	"math/rand/v2"
	"testing"
)

func TestOffsetTracker(t *testing.T) {
	type step struct {
		op    string // "add" or "finish"
		off   int64
		ok    bool  // add accepted / commit point moved
		point int64 // commit point after the step (-1: none)
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"nothing finished commits nothing", []step{
			{"add", 5, true, -1}, {"add", 6, true, -1},
		}},
		{"in order", []step{
			{"add", 0, true, -1}, {"add", 1, true, -1}, {"finish", 0, true, 1}, {"finish", 1, true, 2},
		}},
		{"out of order waits for the gap", []step{
			{"add", 10, true, -1}, {"add", 11, true, -1}, {"add", 12, true, -1},
			{"finish", 12, false, -1}, {"finish", 11, false, -1}, {"finish", 10, true, 13},
		}},
		{"gap in the middle holds the point", []step{
			{"add", 0, true, -1}, {"add", 1, true, -1}, {"add", 2, true, -1}, {"add", 3, true, -1},
			{"finish", 0, true, 1}, {"finish", 2, false, 1}, {"finish", 3, false, 1}, {"finish", 1, true, 4},
		}},
		{"holes in the log (compaction, transaction markers)", []step{
			{"add", 3, true, -1}, {"add", 7, true, -1}, {"add", 20, true, -1},
			{"finish", 7, false, -1}, {"finish", 3, true, 8}, {"finish", 20, true, 21},
		}},
		{"finishing twice or an unknown offset changes nothing", []step{
			{"add", 1, true, -1}, {"add", 2, true, -1}, {"finish", 1, true, 2}, {"finish", 1, false, 2},
			{"finish", 99, false, 2}, {"finish", 0, false, 2},
		}},
		{"offsets must increase", []step{
			{"add", 5, true, -1}, {"add", 5, false, -1}, {"add", 4, false, -1},
			{"finish", 5, true, 6}, {"add", 5, false, 6}, {"add", 6, true, 6},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newOffsetTracker()
			for i, s := range tc.steps {
				var ok bool
				switch s.op {
				case "add":
					ok = tr.add(s.off)
				case "finish":
					ok = tr.finish(s.off)
				}
				if ok != s.ok {
					t.Fatalf("step %d %s(%d) = %v; want %v", i, s.op, s.off, ok, s.ok)
				}
				p, has := tr.commitPoint()
				if !has {
					p = -1
				}
				if p != s.point {
					t.Fatalf("step %d %s(%d): commit point %d; want %d", i, s.op, s.off, p, s.point)
				}
			}
		})
	}
}

// TestOffsetTrackerRandom checks the commit rule against a model over many random
// interleavings: the commit point is always one past the longest finished prefix of the
// delivered offsets, never past an unfinished one, and the buffer compaction keeps it so.
func TestOffsetTrackerRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		tr := newOffsetTracker()
		var delivered []int64
		prefix := 0 // delivered[:prefix] are all finished
		finished := map[int64]bool{}
		next := int64(rng.IntN(100))
		n := 1 + rng.IntN(3000)
		for len(delivered) < n || len(finished) < len(delivered) {
			if len(delivered) < n && rng.IntN(3) != 0 {
				next += 1 + int64(rng.IntN(3)) // holes, like compacted logs
				if !tr.add(next) {
					t.Fatalf("add(%d) refused", next)
				}
				delivered = append(delivered, next)
				continue
			}
			if len(delivered) == 0 {
				continue
			}
			// Finish a random unfinished offset, biased toward recent ones (out of order);
			// now and then the oldest one, so that the prefix moves.
			o := delivered[len(delivered)-1-rng.IntN(min(len(delivered), 50))]
			if finished[o] || rng.IntN(8) == 0 {
				for _, d := range delivered[prefix:] {
					if !finished[d] {
						o = d
						break
					}
				}
			}
			if finished[o] {
				continue
			}
			finished[o] = true
			tr.finish(o)
			for prefix < len(delivered) && finished[delivered[prefix]] {
				prefix++
			}
			want := int64(-1)
			if prefix > 0 {
				want = delivered[prefix-1] + 1
			}
			got, ok := tr.commitPoint()
			if !ok {
				got = -1
			}
			if got != want {
				t.Fatalf("round %d: commit point %d; want %d", round, got, want)
			}
			if first, ok := tr.firstUnfinished(); ok && got > first {
				t.Fatalf("round %d: commit point %d passes unfinished offset %d", round, got, first)
			}
		}
		if tr.pending() != 0 {
			t.Fatalf("round %d: %d pending after finishing everything", round, tr.pending())
		}
	}
}

func BenchmarkOffsetTracker(b *testing.B) {
	tr := newOffsetTracker()
	const window = 256
	for i := 0; i < b.N; i++ {
		tr.add(int64(i))
		if i >= window {
			// Finish out of order within a sliding window.
			tr.finish(int64(i - window + (i*7)%window))
		}
	}
}

// TestOffsetTrackerCompaction drives the tracker past its compaction threshold with a gap
// held open, so the buffer is shifted while unfinished offsets remain.
func TestOffsetTrackerCompaction(t *testing.T) {
	tr := newOffsetTracker()
	for o := int64(0); o < 3000; o++ {
		tr.add(o * 2) // holes between offsets
	}
	for o := int64(0); o < 2000; o++ {
		tr.finish(o * 2)
	}
	tr.finish(2500 * 2) // out of order, past the gap at 2000*2
	if p, _ := tr.commitPoint(); p != 2000*2-1 {
		t.Fatalf("commit point %d; want %d", p, 2000*2-1)
	}
	tr.add(6000) // compacts: head (2000) is over half of 3000
	if tr.head != 0 || len(tr.offs) != 1001 {
		t.Fatalf("after compaction head=%d len=%d; want 0 and 1001", tr.head, len(tr.offs))
	}
	if first, _ := tr.firstUnfinished(); first != 4000 {
		t.Fatalf("first unfinished %d; want 4000", first)
	}
	for o := int64(2000); o < 3000; o++ {
		tr.finish(o * 2)
	}
	if p, _ := tr.commitPoint(); p != 2999*2+1 {
		t.Fatalf("commit point %d; want %d (6000 still open)", p, 2999*2+1)
	}
	tr.finish(6000)
	if p, _ := tr.commitPoint(); p != 6001 || tr.pending() != 0 {
		t.Fatalf("commit point %d pending %d; want 6001 and 0", p, tr.pending())
	}
}
