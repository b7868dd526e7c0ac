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
	logtest.OnlyTheGiven(t, u, fmt.Sprintf("logtest-%d", time.Now().UnixNano()), "courier.adapter=kafka", "create_topics is deprecated")
}
