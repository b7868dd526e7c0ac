package closing

import (
	"sync"
	"testing"
)

func TestLatch(t *testing.T) {
	l := New()
	if l.Closed() {
		t.Fatal("a new latch is closed")
	}
	select {
	case <-l.Done():
		t.Fatal("Done of an open latch is closed")
	default:
	}
	if !l.Close() {
		t.Fatal("the first Close reports the latch already closed")
	}
	if !l.Closed() {
		t.Error("not Closed after Close")
	}
	<-l.Done() // closed: does not block
	if l.Close() {
		t.Error("the second Close reports closing the latch")
	}
	var zero Latch
	if ok := zero.Close(); !ok || !zero.Closed() || zero.Done() != nil {
		t.Errorf("zero latch: Close %v, Closed %v, Done %v", ok, zero.Closed(), zero.Done())
	}
}

func TestCloseUnder(t *testing.T) {
	var mu sync.Mutex
	l := New()
	ran := 0
	also := func() {
		if mu.TryLock() {
			t.Error("also ran without the owner's mutex held")
			mu.Unlock()
		}
		ran++
	}
	if !l.CloseUnder(&mu, also) || ran != 1 || !l.Closed() {
		t.Fatalf("first CloseUnder: ran %d, closed %v", ran, l.Closed())
	}
	if l.CloseUnder(&mu, also) || ran != 1 {
		t.Errorf("second CloseUnder reported closing or ran also (%d)", ran)
	}
	if !mu.TryLock() {
		t.Error("the mutex is still held after CloseUnder")
	}
	other := New()
	if !other.CloseUnder(&sync.Mutex{}, nil) {
		t.Error("CloseUnder with nil also")
	}
}
