package rabbitmq

import (
	"errors"
	"log/slog"
	"testing"
)

// TestSessionRecovering: a receiver reports the consuming session's reconnects (what
// transport.Subscriber.Status shows as reconnecting).
func TestSessionRecovering(t *testing.T) {
	s := newSession(&Config{Logger: slog.Default()}, "consume", &counters{})
	defer s.cancel()
	if err := s.recovering(); err != nil {
		t.Errorf("before start: %v", err)
	}
	s.started = true // no connection yet: being dialled
	if err := s.recovering(); !errors.Is(err, errReconnecting) {
		t.Errorf("started without a connection: %v", err)
	}
	dial := errors.New("connection refused")
	s.lastErr = dial
	if err := s.recovering(); !errors.Is(err, dial) {
		t.Errorf("after a failed dial: %v; want the dial's error", err)
	}
	r := &receiver{d: &Driver{subSession: s}}
	if err := r.Recovering(); !errors.Is(err, dial) {
		t.Errorf("receiver: %v", err)
	}
	s.closed = true
	if err := s.recovering(); err != nil {
		t.Errorf("closed: %v", err)
	}
}
