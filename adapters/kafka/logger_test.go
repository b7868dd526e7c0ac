package kafka_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/courierhq/courier/internal/logtest"
)

// TestLoggerOnlyTheConnections: the adapter, kafka-go's logger included (Debug is on here),
// logs through the logger given in ConnConfig, never through slog.Default().
func TestLoggerOnlyTheConnections(t *testing.T) {
	u := kafkaURL(t, "create_topics=true&partitions=1")
	log, rec := logtest.Capture(t)
	logtest.RoundTrip(t, u, fmt.Sprintf("logtest-%d", time.Now().UnixNano()), log)
	if !rec.Contains("courier.adapter=kafka") || !rec.Contains("create_topics is deprecated") {
		t.Errorf("the adapter's lines did not reach the given logger: %q", rec.Lines())
	}
}
