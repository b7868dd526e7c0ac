package gcppubsub_test

import (
	"testing"

	"github.com/courierhq/courier/internal/logtest"
)

// TestLoggerOnlyTheConnections: the adapter logs (topics and subscriptions created, at
// Debug) through the logger given in ConnConfig, never through slog.Default().
func TestLoggerOnlyTheConnections(t *testing.T) {
	addr := emulator(t)
	logtest.OnlyTheGiven(t, "gcppubsub://"+project+"?endpoint="+addr+"&prefix="+testPrefix(t), "logtest", "courier.adapter=pubsub")
}
