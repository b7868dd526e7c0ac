package closing

import "testing"

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
