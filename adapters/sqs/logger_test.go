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
	log, rec := logtest.Capture(t)
	logtest.RoundTrip(t, "sqs://?region="+region+"&wait_time=1&endpoint="+url.QueryEscape(ep), fmt.Sprintf("logtest-%d", time.Now().UnixNano()), log)
	if !rec.Contains("courier.broker=sqs") || !rec.Contains("wait_time=1: a bare number is deprecated") {
		t.Errorf("the adapter's lines did not reach the given logger: %q", rec.Lines())
	}
}
