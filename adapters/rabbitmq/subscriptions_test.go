//go:build integration

package rabbitmq_test

import (
	"context"
	"errors"
	"testing"

	"github.com/courierhq/courier/transport"
)

// TestSubscriptionsUnsupported: the queues bound to an exchange cannot be listed over AMQP
// (only through the management plugin's HTTP API), so Conn.Subscriptions says it cannot.
func TestSubscriptionsUnsupported(t *testing.T) {
	c := openURL(t, endpoint(t))
	_, err := c.Subscriptions(context.Background(), topicName(t))
	if !errors.Is(err, transport.ErrUnsupported) {
		t.Errorf("Subscriptions: %v; want ErrUnsupported", err)
	}
}
