package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/transport/driver"
)

// Ping implements driver.Pinger: one metadata request (no topics) to the bootstrap brokers,
// bounded by ctx and Config.RequestTimeout.
func (d *Driver) Ping(ctx context.Context) error {
	endpoint := strings.Join(d.cfg.Brokers, ",")
	if d.closed.Load() {
		return fmt.Errorf("kafka: ping %s: %w", endpoint, driver.ErrClosed)
	}
	cctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	if _, err := d.client.Metadata(cctx, &kafka.MetadataRequest{Addr: d.addr, Topics: []string{}}); err != nil {
		if cctx.Err() != nil && !hasKind(err) {
			return fmt.Errorf("kafka: ping %s: %w: %w", endpoint, driver.ErrUnavailable, err)
		}
		return wrap("ping "+endpoint, err)
	}
	return nil
}

// DeleteSubscription implements driver.SubscriptionDeleter: it deletes the consumer group
// named subscription (with its committed offsets). The group must have no members left: stop
// its subscribers first. A group that does not exist is not an error.
func (d *Driver) DeleteSubscription(ctx context.Context, _, subscription string) error {
	if d.closed.Load() {
		return fmt.Errorf("kafka: delete group %q: %w", subscription, driver.ErrClosed)
	}
	cctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	resp, err := d.client.DeleteGroups(cctx, &kafka.DeleteGroupsRequest{Addr: d.addr, GroupIDs: []string{subscription}})
	if err != nil {
		return wrap(fmt.Sprintf("delete group %q", subscription), err)
	}
	if gerr := resp.Errors[subscription]; gerr != nil && !errors.Is(gerr, kafka.GroupIdNotFound) {
		return wrap(fmt.Sprintf("delete group %q", subscription), gerr)
	}
	return nil
}
