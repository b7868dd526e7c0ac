package sqs_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/courierhq/courier/internal/logtest"
)

// TestLoggerOnlyTheConnections: the adapter, the AWS SDK's logger included (Debug is on
// here), logs through the logger given in ConnConfig, never through slog.Default().
func TestLoggerOnlyTheConnections(t *testing.T) {
	ep := endpoint(t)
	logtest.OnlyTheGiven(t, "sqs://?region="+region+"&wait_time=1&endpoint="+url.QueryEscape(ep), fmt.Sprintf("logtest-%d", time.Now().UnixNano()),
		"courier.broker=sqs", "wait_time=1: a bare number is deprecated")
}
