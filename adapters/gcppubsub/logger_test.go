package gcppubsub_test

import (
	"testing"

	"github.com/courierhq/courier/internal/logtest"
)

// TestLoggerOnlyTheConnections: the adapter logs (topics and subscriptions created, at
// Debug) through the logger given in ConnConfig, never through slog.Default().
func TestLoggerOnlyTheConnections(t *testing.T) {
	addr := emulator(t)
	log, rec := logtest.Capture(t)
	logtest.RoundTrip(t, "gcppubsub://"+project+"?endpoint="+addr+"&prefix="+testPrefix(t), "logtest", log)
	if !rec.Contains("courier.adapter=pubsub") {
		t.Errorf("the adapter's lines did not reach the given logger: %q", rec.Lines())
	}
}
