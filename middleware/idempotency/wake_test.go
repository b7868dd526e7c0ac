package idempotency

import "testing"

func TestWakeList(t *testing.T) {
	var w wakeList
	isClosed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	ch := w.add("a")
	if isClosed(ch) {
		t.Fatal("woken before the claim ended")
	}
	w.wake("a")
	if !isClosed(ch) {
		t.Fatal("not woken when the claim ended")
	}
	// A copy told "busy" just before the end registers just after it: woken at once, once.
	w.wake("b")
	if !isClosed(w.add("b")) {
		t.Error("a copy registering just after the end was not woken")
	}
	if isClosed(w.add("b")) {
		t.Error("one end woke two registrations")
	}
}
