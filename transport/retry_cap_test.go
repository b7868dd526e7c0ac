package transport

import (
	"testing"
	"time"
)

// TestDelayCapHoldsWithJitter: no delay exceeds MaxDelay, however the jitter falls.
func TestDelayCapHoldsWithJitter(t *testing.T) {
	p := RetryPolicy{InitialDelay: time.Second, MaxDelay: time.Minute, Multiplier: 2, Jitter: 0.2}
	for attempt := 1; attempt <= 20; attempt++ {
		for i := 0; i < 200; i++ {
			if d := p.Delay(attempt); d > p.MaxDelay || d <= 0 {
				t.Fatalf("attempt %d: delay %v outside (0, %v]", attempt, d, p.MaxDelay)
			}
		}
	}
}
