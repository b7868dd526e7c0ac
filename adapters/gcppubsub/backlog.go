package gcppubsub

import (
	"context"
	"fmt"

	"github.com/courierhq/courier/transport/driver"
)

var _ driver.BacklogReporter = (*Driver)(nil)

// Backlog implements driver.BacklogReporter by declining: Pub/Sub's API has no call that
// counts a subscription's messages. Its backlog (undelivered messages, oldest unacked
// message age) is published to Cloud Monitoring as the metrics
// pubsub.googleapis.com/subscription/num_undelivered_messages and
// …/oldest_unacked_message_age, which the adapter does not read and the emulator does not
// have. Capabilities.Backlog is false; the error wraps ErrUnsupported.
func (d *Driver) Backlog(context.Context, string, string) (driver.Backlog, error) {
	if d.closed.Load() {
		return driver.Backlog{}, fmt.Errorf("pubsub: backlog: %w", driver.ErrClosed)
	}
	return driver.Backlog{}, fmt.Errorf("pubsub: %w: Pub/Sub reports a subscription's backlog only to Cloud Monitoring "+
		"(pubsub.googleapis.com/subscription/num_undelivered_messages), which Courier does not read", driver.ErrUnsupported)
}
