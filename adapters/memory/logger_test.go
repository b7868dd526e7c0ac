package memory_test

import (
	"testing"

	_ "github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/internal/logtest"
)

// TestLoggerOnlyTheConnections: everything logged during a connection's life goes to the
// logger given in ConnConfig, nothing to slog.Default().
func TestLoggerOnlyTheConnections(t *testing.T) {
	logtest.OnlyTheGiven(t, "memory://", "logtest")
}
