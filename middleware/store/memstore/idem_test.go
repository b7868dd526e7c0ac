package memstore

import (
	"testing"
	"time"
)

// Keys whose hashes collide share a map slot and chain through idemRec.same; each stays
// reachable, and removing any of them leaves the others.
func TestIdemTableHashCollisions(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, gone := range []string{"a", "b", "c"} {
		tb := newIdemTable(10)
		const h = 42 // the same hash for every key
		for _, k := range []string{"a", "b", "c"} {
			tb.claim(tb.get(k, h, now), k, h, "o-"+k, now.Add(time.Minute))
		}
		for _, k := range []string{"a", "b", "c"} {
			if r := tb.get(k, h, now); r == nil || r.key != k || r.owner != "o-"+k {
				t.Fatalf("key %s: record %+v", k, r)
			}
		}
		tb.remove(tb.get(gone, h, now))
		for _, k := range []string{"a", "b", "c"} {
			r := tb.get(k, h, now)
			if (r == nil) != (k == gone) || r != nil && r.key != k {
				t.Fatalf("after removing %s, key %s: record %+v", gone, k, r)
			}
		}
		tb.markDone(nil, gone, h, now.Add(time.Hour)) // back, as a handled key
		if r := tb.get(gone, h, now); r == nil || !r.done {
			t.Fatalf("key %s not back: %+v", gone, r)
		}
		if tb.claims.n != 2 || tb.done.n != 1 || len(tb.recs) != 1 {
			t.Fatalf("claims %d, done %d, map slots %d; want 2, 1, 1", tb.claims.n, tb.done.n, len(tb.recs))
		}
		// Expiry removes a colliding record on read, and the last one frees the slot.
		later := now.Add(2 * time.Hour)
		for _, k := range []string{"a", "b", "c"} {
			if r := tb.get(k, h, later); r != nil {
				t.Fatalf("key %s outlived its expiry", k)
			}
		}
		if len(tb.recs) != 0 || tb.claims.n != 0 || tb.done.n != 0 {
			t.Fatalf("expired records left: %d slots, %d claims, %d done", len(tb.recs), tb.claims.n, tb.done.n)
		}
	}
}
