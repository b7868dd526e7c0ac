package rabbitmq_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/courierhq/courier/internal/logtest"
)

// TestLoggerOnlyTheConnections: the adapter logs through the logger given in ConnConfig
// (here a deprecation warning and whatever a round trip logs), never through slog.Default().
func TestLoggerOnlyTheConnections(t *testing.T) {
	ep := endpoint(t)
	logtest.OnlyTheGiven(t, ep+"?connection_timeout=5000", fmt.Sprintf("logtest-%d", time.Now().UnixNano()),
		"courier.broker=rabbitmq", "connection_timeout is deprecated")
}
