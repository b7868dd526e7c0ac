package memory_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	_ "github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/integration/conformance"
	"github.com/courierhq/courier/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, t testing.TB) *transport.Conn {
			c, err := transport.Open(ctx, "memory://?max_message_bytes=65536&max_header_value_bytes=1024")
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Unsupported: map[conformance.Feature]string{
			conformance.Reconnect: "memory:// keeps messages in the process; each Open is a new broker",
			conformance.History:   "memory:// keeps messages only for existing subscriptions",
		},
	})
}
