package ordering

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func req(seq int64, owner string) BeginRequest {
	return BeginRequest{Epoch: 1, Seq: seq, Owner: owner, Lease: time.Minute, GapTimeout: 10 * time.Second, Retention: time.Hour, AcceptEpoch: true}
}

// TestStateBegin walks the state machine through its transitions, one step per row; each row
// starts from the state the previous one left.
func TestStateBegin(t *testing.T) {
	type step struct {
		name    string
		at      time.Duration // since t0
		op      string        // begin, commit, abort
		req     BeginRequest
		want    Outcome
		last    int64
		skipped int64
		flight  bool
		err     error
	}
	withEpoch := func(r BeginRequest, e int64) BeginRequest { r.Epoch = e; return r }
	unchecked := func(r BeginRequest) BeginRequest { r.AcceptEpoch = false; return r }
	steps := []step{
		{name: "first message of a new key", op: "begin", req: req(1, "A"), want: Proceed},
		{name: "its duplicate while claimed", op: "begin", req: req(1, "B"), want: Busy},
		{name: "a later one while 1 is claimed", op: "begin", req: req(3, "B"), want: Gap, flight: true},
		{name: "1 handled", op: "commit", req: req(1, "A")},
		{name: "duplicate of 1", op: "begin", req: req(1, "C"), want: Duplicate, last: 1},
		{name: "3 before 2, nobody on 2", op: "begin", req: req(3, "C"), want: Gap, last: 1},
		{name: "2 arrives", at: time.Second, op: "begin", req: req(2, "D"), want: Proceed, last: 1},
		{name: "2 fails", at: 2 * time.Second, op: "abort", req: req(2, "D")},
		{name: "3 still waits: the gap clock restarted when 2 failed", at: 11 * time.Second, op: "begin", req: req(3, "C"), want: Gap, last: 1},
		{name: "2 never comes back: 3 skips ahead", at: 13 * time.Second, op: "begin", req: req(3, "C"), want: Proceed, last: 1, skipped: 1},
		{name: "a late 2 finds the key busy with the skip", at: 13 * time.Second, op: "begin", req: req(2, "E"), want: Busy, last: 1},
		{name: "3 handled", at: 13 * time.Second, op: "commit", req: req(3, "C")},
		{name: "the late 2 is handled late, not taken for a duplicate", at: 14 * time.Second, op: "begin", req: req(2, "E"), want: Late, last: 3},
		{name: "its copy waits meanwhile", at: 14 * time.Second, op: "begin", req: req(2, "F"), want: Busy, last: 3},
		{name: "the late 2 fails once", at: 14 * time.Second, op: "abort", req: req(2, "E")},
		{name: "and is retried late", at: 14 * time.Second, op: "begin", req: req(2, "F"), want: Late, last: 3},
		{name: "the late 2 handled: the key stays at 3", at: 14 * time.Second, op: "commit", req: req(2, "F")},
		{name: "now a copy of 2 is a duplicate", at: 14 * time.Second, op: "begin", req: req(2, "G"), want: Duplicate, last: 3},
		{name: "commit without a claim on a later number", at: 14 * time.Second, op: "commit", req: req(7, "Z"), err: ErrLeaseLost},
		{name: "a newer epoch not vouched for changes nothing", at: 15 * time.Second, op: "begin", req: unchecked(withEpoch(req(1, "X"), 2)), want: NewEpoch, last: 3},
		{name: "and does not hold the key", at: 15 * time.Second, op: "begin", req: req(4, "Y"), want: Proceed, last: 3},
		{name: "the old epoch goes on", at: 15 * time.Second, op: "commit", req: req(4, "Y")},
		{name: "an older epoch after the refused one", at: 15 * time.Second, op: "begin", req: withEpoch(req(9, "F"), 0), want: Stale, last: 4},
		{name: "a newer epoch starts over", at: 15 * time.Second, op: "begin", req: withEpoch(req(1, "G"), 2), want: Proceed},
		{name: "lease of G runs out; H takes over", at: 80 * time.Second, op: "begin", req: withEpoch(req(1, "H"), 2), want: Proceed},
		{name: "G's late commit is refused", at: 80 * time.Second, op: "commit", req: withEpoch(req(1, "G"), 2), err: ErrLeaseLost},
		{name: "H commits", at: 81 * time.Second, op: "commit", req: withEpoch(req(1, "H"), 2)},
		{name: "abort by a non-owner changes nothing", at: 81 * time.Second, op: "abort", req: withEpoch(req(2, "X"), 2)},
	}
	var s State
	for _, st := range steps {
		now := t0.Add(st.at)
		switch st.op {
		case "begin":
			res, _ := s.Begin(now, st.req)
			if res.Outcome != st.want || res.Last != st.last || res.Skipped != st.skipped || res.InFlight != st.flight {
				t.Fatalf("%s: got %+v; want outcome %v last %d skipped %d inflight %v", st.name, res, st.want, st.last, st.skipped, st.flight)
			}
		case "commit":
			if err := s.Commit(now, st.req.Seq, st.req.Owner); !errors.Is(err, st.err) || (st.err == nil && err != nil) {
				t.Fatalf("%s: Commit err = %v; want %v", st.name, err, st.err)
			}
		case "abort":
			s.Abort(now, st.req.Seq, st.req.Owner)
		}
	}
}

func TestStateChangedFlag(t *testing.T) {
	var s State
	if _, changed := s.Begin(t0, req(1, "A")); !changed {
		t.Error("a claim did not report a change")
	}
	if err := s.Commit(t0, 1, "A"); err != nil {
		t.Fatal(err)
	}
	if _, changed := s.Begin(t0, req(1, "B")); changed {
		t.Error("a duplicate reported a change")
	}
	if _, changed := s.Begin(t0, req(3, "B")); !changed {
		t.Error("opening a gap did not report a change (GapSince must be stored)")
	}
	if _, changed := s.Begin(t0.Add(time.Second), req(3, "B")); changed {
		t.Error("a gap already open reported a change")
	}
	if s.Abort(t0, 5, "nobody") {
		t.Error("an abort by a non-owner reported a change")
	}
}

func TestGapTimeoutZeroWaitsForever(t *testing.T) {
	var s State
	r := req(5, "A")
	r.GapTimeout = 0
	s.Begin(t0, r)
	if res, _ := s.Begin(t0.Add(1000*time.Hour), r); res.Outcome != Gap {
		t.Errorf("GapTimeout 0: %v after 1000h; want still a gap", res.Outcome)
	}
}

func TestStamp(t *testing.T) {
	for _, c := range []struct{ epoch, seq int64 }{{0, 1}, {1_763_770_000_123, 42}, {1<<62 - 1, 1<<62 - 1}} {
		s := FormatStamp(c.epoch, c.seq)
		e, q, err := ParseStamp(s)
		if err != nil || e != c.epoch || q != c.seq {
			t.Errorf("ParseStamp(FormatStamp(%d, %d) = %q) = %d, %d, %v", c.epoch, c.seq, s, e, q, err)
		}
	}
	for _, bad := range []string{"", "5", "@1", "5@", "0@1", "-1@1", "1@-1", "x@1", "1@x", "1@2@3", "99999999999999999999@1"} {
		if _, _, err := ParseStamp(bad); !errors.Is(err, ErrBadStamp) {
			t.Errorf("ParseStamp(%q): err = %v; want ErrBadStamp", bad, err)
		}
	}
}

func TestWaitlist(t *testing.T) {
	var w waitlist
	w.init(time.Hour)
	a, chained := w.add("k", 1, 5, 4)
	if chained {
		t.Error("first waiter reported as chained")
	}
	b, chained := w.add("k", 1, 6, 5)
	if !chained {
		t.Error("6 waits behind a waiting 5 but is not chained")
	}
	if a2, _ := w.add("k", 1, 5, 4); a2 != a {
		t.Error("a second waiter on the same number got another channel")
	}
	w.advanced("k", 1, 4) // 4 handled: wakes 5 (its successor), not 6
	select {
	case <-a:
	default:
		t.Error("5 not woken when 4 was handled")
	}
	select {
	case <-b:
		t.Error("6 woken when 4 was handled")
	default:
	}
	w.released("k", 6) // a failed attempt at 6 wakes 6's duplicates
	select {
	case <-b:
	default:
		t.Error("6 not woken when an attempt at 6 failed")
	}
	w.remove("k", 99) // unknown: no-op
	if w.n != 0 || len(w.keys) != 0 {
		t.Errorf("waitlist not empty: n=%d keys=%d", w.n, len(w.keys))
	}
}

func TestWaitlistSweepsOldEntries(t *testing.T) {
	var w waitlist
	w.init(time.Nanosecond)
	w.sweep = 2
	old, _ := w.add("a", 1, 1, 0)
	w.add("b", 1, 1, 0)
	time.Sleep(time.Millisecond)
	w.add("c", 1, 1, 0) // a new key over the sweep size: the old entries go, woken
	select {
	case <-old:
	default:
		t.Error("old entry not woken by the sweep")
	}
	if w.n != 1 {
		t.Errorf("%d entries after the sweep; want 1", w.n)
	}
}

func TestSkippedIsBounded(t *testing.T) {
	var s State
	s.Begin(t0, req(1, "A"))
	if err := s.Commit(t0, 1, "A"); err != nil {
		t.Fatal(err)
	}
	r := req(1000, "B")
	r.GapTimeout = time.Second
	s.Begin(t0, r)
	if res, _ := s.Begin(t0.Add(2*time.Second), r); res.Outcome != Proceed || res.Skipped != 998 {
		t.Fatalf("skip: %+v", res)
	}
	if err := s.Commit(t0.Add(2*time.Second), 1000, "B"); err != nil {
		t.Fatal(err)
	}
	if len(s.Skipped) != MaxSkipped || s.Skipped[0] != 1000-MaxSkipped || s.Skipped[MaxSkipped-1] != 999 {
		t.Fatalf("Skipped has %d numbers %v…; want the %d highest below 1000", len(s.Skipped), s.Skipped[:3], MaxSkipped)
	}
	if res, _ := s.Begin(t0.Add(3*time.Second), req(999, "C")); res.Outcome != Late {
		t.Errorf("999: %v; want late", res.Outcome)
	}
	if res, _ := s.Begin(t0.Add(3*time.Second), req(5, "D")); res.Outcome != Duplicate {
		t.Errorf("5 (beyond the remembered numbers): %v; want duplicate", res.Outcome)
	}
}

// TestWaitlistRemembersAnAdvanceNobodyWaitedFor: a message told to wait just before its
// predecessor is handled, registering just after, is woken at once — and only once.
func TestWaitlistRemembersAnAdvanceNobodyWaitedFor(t *testing.T) {
	var w waitlist
	w.init(time.Hour)
	w.advanced("k", 1, 4) // 4 handled; 5 has not registered yet
	ch, _ := w.add("k", 1, 5, 4)
	select {
	case <-ch:
	default:
		t.Fatal("5 registered after 4 was handled but is not woken")
	}
	ch, _ = w.add("k", 1, 5, 4) // the memory is used up
	select {
	case <-ch:
		t.Fatal("woken twice for one advance")
	default:
	}
	w.advanced("k", 1, 9)
	if ch, _ := w.add("k", 2, 10, 9); isClosed(ch) {
		t.Error("an advance in another epoch woke a waiter")
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestCheckIssued(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	tests := []struct {
		name                      string
		epoch, seq, cEpoch, cLast int64
		ok                        bool
	}{
		{"issued in the counter's epoch", 500, 3, 500, 7, true},
		{"the last number issued", 500, 7, 500, 7, true},
		{"a number not issued yet", 500, 8, 500, 7, false},
		{"an epoch newer than the counter's", 501, 1, 500, 7, false},
		{"an earlier epoch: cannot be checked, passes", 400, 99, 500, 7, true},
		{"no counter, an old epoch (the counter expired)", 400, 99, 0, 0, true},
		{"no counter, an epoch of now", now.UnixMilli(), 1, 0, 0, true},
		{"no counter, an epoch in the future", now.UnixMilli() + 1, 1, 0, 0, false},
		{"no counter, the far future", 1 << 62, 1, 0, 0, false},
	}
	for _, tc := range tests {
		err := CheckIssued(tc.epoch, tc.seq, tc.cEpoch, tc.cLast, now)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrImplausibleStamp)) {
			t.Errorf("%s: CheckIssued(%d, %d, %d, %d) = %v; want ok %v", tc.name, tc.epoch, tc.seq, tc.cEpoch, tc.cLast, err, tc.ok)
		}
	}
}
