package rabbitmq_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/adapters/rabbitmq"
	"github.com/courierhq/courier/internal/logtest"
	"github.com/courierhq/courier/message"
)

// TestDeclareWhilePublishing: publishes to new topics (each declares its exchange on a shared
// publish channel) while 16 goroutines publish to another topic on the same channels. A
// declaration sent between a publish's method, header and body frames makes the broker close
// the whole connection (505 UNEXPECTED_FRAME), which the adapter survives by reconnecting and
// sending again: so the test looks for the reconnect in the log, not for a failed call.
func TestDeclareWhilePublishing(t *testing.T) {
	url := endpoint(t)
	logger, logs := logtest.Capture(t)
	c := openConfig(t, rabbitmq.Config{URL: url, Logger: logger})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := fmt.Sprintf("declare-race-%d", time.Now().UnixNano())
	var stop atomic.Bool
	var wg sync.WaitGroup
	var published atomic.Int64
	for range 16 {
		wg.Go(func() {
			for !stop.Load() {
				if err := c.Publish(ctx, base+"-busy", message.New(bytes.Repeat([]byte("x"), 2048))); err != nil {
					t.Error(err)
					return
				}
				published.Add(1)
			}
		})
	}
	for i := range 200 {
		if err := c.Publish(ctx, fmt.Sprintf("%s-new-%d", base, i), message.New([]byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if logs.Contains("connection lost") {
		t.Errorf("the connection was lost while declaring next to publishes (%d published):\n%s", published.Load(), strings.Join(logs.Lines(), "\n"))
	}
}
