package kafka

// offsetTracker implements the commit rule for one partition: it remembers the offsets
// delivered from the partition, in delivery order, and which of them are finished (acked,
// which includes dead-lettered). Only the contiguous run of finished offsets at the front
// may be committed: committing an offset tells Kafka that everything below it is done, so
// a tracker never reports a commit point past an unfinished offset, and a crash at any
// moment loses no unhandled message — at worst finished ones after the first gap are
// delivered again.
//
// Offsets are compared as delivered, not by arithmetic: Kafka logs have holes (compacted
// records, transaction markers), so "offset+1 is next" does not hold. Within one partition
// kafka-go delivers offsets in increasing order, which makes finish a binary search.
//
// It is not safe for concurrent use; the partition that owns it holds a lock. The type is
// Kafka-specific (a per-partition cumulative cursor), so it lives here rather than in
// transport.
type offsetTracker struct {
	offs []int64 // delivered offsets from head on, increasing
	done []bool  // done[i] reports whether offs[i] is finished
	head int     // offs[:head] are finished and committed-to; kept for reuse, compacted away
	next int64   // commit point: every delivered offset below it is finished; -1 before any
}

func newOffsetTracker() offsetTracker { return offsetTracker{next: -1} }

// add records a delivered offset. It reports false, and changes nothing, when off is not
// above the last delivered offset: that would break the order finish relies on.
func (t *offsetTracker) add(off int64) bool {
	if n := len(t.offs); n > t.head && off <= t.offs[n-1] || n == t.head && off < t.next {
		return false
	}
	if t.head > 0 && t.head == len(t.offs) {
		t.offs, t.done, t.head = t.offs[:0], t.done[:0], 0
	} else if t.head >= 1024 && t.head*2 >= len(t.offs) {
		n := copy(t.offs, t.offs[t.head:])
		copy(t.done, t.done[t.head:])
		t.offs, t.done, t.head = t.offs[:n], t.done[:n], 0
	}
	t.offs = append(t.offs, off)
	t.done = append(t.done, false)
	return true
}

// finish marks a delivered offset finished and reports whether the commit point moved.
// Finishing an offset that was never added, or twice, changes nothing.
func (t *offsetTracker) finish(off int64) bool {
	pending := t.offs[t.head:]
	lo, hi := 0, len(pending)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if pending[mid] < off {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(pending) || pending[lo] != off || t.done[t.head+lo] {
		return false
	}
	t.done[t.head+lo] = true
	if lo != 0 {
		return false
	}
	for t.head < len(t.offs) && t.done[t.head] {
		t.next = t.offs[t.head] + 1
		t.head++
	}
	return true
}

// commitPoint returns the offset to commit (the next one to consume) and false when nothing
// was finished yet.
func (t *offsetTracker) commitPoint() (int64, bool) { return t.next, t.next >= 0 }

// pending returns how many delivered offsets are not finished or stand behind one that is
// not.
func (t *offsetTracker) pending() int { return len(t.offs) - t.head }

// firstUnfinished returns the lowest delivered offset that is not finished.
func (t *offsetTracker) firstUnfinished() (int64, bool) {
	if t.head == len(t.offs) {
		return 0, false
	}
	return t.offs[t.head], true
}
