package memory_test

import (
	"testing"

	_ "github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/internal/logtest"
)

// TestLoggerOnlyTheConnections: everything logged during a connection's life goes to the
// logger given in ConnConfig, nothing to slog.Default().
func TestLoggerOnlyTheConnections(t *testing.T) {
	log, rec := logtest.Capture(t)
	logtest.RoundTrip(t, "memory://", "logtest", log)
	if len(rec.Lines()) == 0 {
		t.Error("the connection's logger received nothing (the failed first attempt logs)")
	}
}
