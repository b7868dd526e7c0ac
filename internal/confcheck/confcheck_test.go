package confcheck

import (
	"testing"
	"time"
)

func TestNonNegative(t *testing.T) {
	if err := NonNegative(); err != nil {
		t.Errorf("no fields: %v", err)
	}
	if err := NonNegative(Int("A", 0), Dur("B", time.Second)); err != nil {
		t.Errorf("none negative: %v", err)
	}
	if err := NonNegative(Int("A", 1), Dur("B", -time.Second), Int("C", -1)); err == nil || err.Error() != "B -1s is negative" {
		t.Errorf("B and C negative: %v; want the first, B", err)
	}
	if err := NonNegative(Int("C", -3)); err == nil || err.Error() != "C -3 is negative" {
		t.Errorf("C negative: %v", err)
	}
}
