package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/transport/driver"
)

var _ driver.SubscriptionLister = (*Driver)(nil)

// Subscriptions implements driver.SubscriptionLister: the consumer groups (of every broker
// of the cluster, ListGroups) that have an offset committed on one of topic's partitions
// (OffsetFetch, one request per group). Courier's groups ("<topic>~<name>", see GroupID) are
// listed by their subscription name, others by their group ID. A Courier subscription
// commits its start position when made, so it is listed from Subscribe on; a group of
// another client that joined but committed nothing is not. A topic that does not exist has
// none.
func (d *Driver) Subscriptions(ctx context.Context, topic string) ([]string, error) {
	if d.closed.Load() {
		return nil, driver.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	parts, err := d.partitions(ctx, topic)
	if errors.Is(err, driver.ErrTopicNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	groups, err := d.client.ListGroups(ctx, &kafka.ListGroupsRequest{})
	if err == nil {
		err = groups.Error
	}
	if err != nil {
		return nil, wrap("list consumer groups", err)
	}
	var names []string
	for _, g := range groups.Groups {
		committed, err := d.hasCommitted(ctx, g.GroupID, topic, parts)
		if err != nil {
			return nil, err
		}
		if committed {
			names = append(names, strings.TrimPrefix(g.GroupID, topic+groupSep))
		}
	}
	return names, nil
}

// hasCommitted reports whether group has an offset committed on one of topic's partitions.
func (d *Driver) hasCommitted(ctx context.Context, group, topic string, parts []int) (bool, error) {
	res, err := d.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err == nil {
		err = res.Error
	}
	if errors.Is(err, kafka.GroupIdNotFound) {
		return false, nil // deleted since ListGroups
	}
	if err != nil {
		return false, wrap(fmt.Sprintf("read the offsets of group %q", group), err)
	}
	for _, p := range res.Topics[topic] {
		if p.Error == nil && p.CommittedOffset >= 0 {
			return true, nil
		}
	}
	return false, nil
}
