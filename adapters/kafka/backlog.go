package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/transport/driver"
)

var _ driver.BacklogReporter = (*Driver)(nil)

// Backlog implements driver.BacklogReporter: the lag of the subscription's consumer group
// (GroupID) on topic, per partition, from the group's committed offsets (OffsetFetch), the
// partitions' offset ranges (ListOffsets, at the isolation level the subscriber reads with)
// and the group's members (DescribeGroups): a handful of requests, bounded by
// Config.RequestTimeout.
//
// A partition's lag is its end offset minus the offset the group resumes from: the committed
// offset, or, where the group has committed nothing on the partition, the offset a
// subscriber would start it at (the oldest record: see partitionLags). Messages is the sum of
// the lags. The subscriber commits only what was acknowledged, so the lag includes records
// delivered and still being handled or retried in place: InFlight is
// driver.BacklogUnknown, and Delayed is 0 (Kafka delays nothing). Consumers is the group's
// member count. A group with no committed offset and no members, or a topic that does not
// exist, is ErrSubscriptionNotFound.
func (d *Driver) Backlog(ctx context.Context, topic, subscription string) (driver.Backlog, error) {
	if d.closed.Load() {
		return driver.Backlog{}, fmt.Errorf("kafka: backlog: %w", driver.ErrClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	parts, err := d.partitions(ctx, topic)
	if errors.Is(err, driver.ErrTopicNotFound) {
		return driver.Backlog{}, fmt.Errorf("%w: %w", driver.ErrSubscriptionNotFound, err)
	}
	if err != nil {
		return driver.Backlog{}, err
	}
	group := d.groupID(ctx, topic, subscription)
	committed, err := d.committedOffsets(ctx, group, topic, parts)
	if err != nil {
		return driver.Backlog{}, err
	}
	members, live, err := d.groupMembers(ctx, group)
	if err != nil {
		return driver.Backlog{}, err
	}
	if !live && len(committed) == 0 {
		return driver.Backlog{}, fmt.Errorf("kafka: %w: consumer group %q has no committed offsets on %q and no members",
			driver.ErrSubscriptionNotFound, group, topic)
	}
	firsts, err := d.offsets(ctx, topic, parts, kafka.FirstOffset)
	if err != nil {
		return driver.Backlog{}, err
	}
	ends, err := d.offsets(ctx, topic, parts, kafka.LastOffset)
	if err != nil {
		return driver.Backlog{}, err
	}
	lags, total := partitionLags(parts, committed, firsts, ends, d.cfg.StartOffset)
	return driver.Backlog{Messages: total, InFlight: driver.BacklogUnknown, Consumers: members, Partitions: lags}, nil
}

// committedOffsets returns group's committed offset per partition of topic, leaving out
// partitions without one; none for a group the broker does not know.
func (d *Driver) committedOffsets(ctx context.Context, group, topic string, parts []int) (map[int]int64, error) {
	res, err := d.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err == nil {
		err = res.Error
	}
	if errors.Is(err, kafka.GroupIdNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap(fmt.Sprintf("backlog: read the offsets of group %q", group), err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, wrap(fmt.Sprintf("backlog: offset of group %q on partition %d", group, p.Partition), p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out, nil
}

// groupMembers returns how many members group has and whether the broker knows the group
// (any state but Dead).
func (d *Driver) groupMembers(ctx context.Context, group string) (int, bool, error) {
	res, err := d.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return 0, false, wrap(fmt.Sprintf("backlog: describe group %q", group), err)
	}
	for _, g := range res.Groups {
		if g.GroupID != group {
			continue
		}
		if errors.Is(g.Error, kafka.GroupIdNotFound) {
			return 0, false, nil
		}
		if g.Error != nil {
			return 0, false, wrap(fmt.Sprintf("backlog: describe group %q", group), g.Error)
		}
		return len(g.Members), len(g.Members) > 0 || (g.GroupState != "" && g.GroupState != "Dead"), nil
	}
	return 0, false, nil
}

// offsets returns the first (which = kafka.FirstOffset) or end (kafka.LastOffset) offset of
// each of topic's partitions, at the subscriber's isolation level.
func (d *Driver) offsets(ctx context.Context, topic string, parts []int, which int64) (map[int]int64, error) {
	reqs := make([]kafka.OffsetRequest, len(parts))
	for i, p := range parts {
		reqs[i] = kafka.OffsetRequest{Partition: p, Timestamp: which}
	}
	isolation := kafka.ReadCommitted
	if d.cfg.ReadUncommitted {
		isolation = kafka.ReadUncommitted
	}
	res, err := d.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}, IsolationLevel: isolation})
	if err != nil {
		return nil, wrap(fmt.Sprintf("backlog: offsets of %q", topic), err)
	}
	out := make(map[int]int64, len(parts))
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, wrap(fmt.Sprintf("backlog: offsets of %q partition %d", topic, p.Partition), p.Error)
		}
		if which == kafka.FirstOffset {
			out[p.Partition] = p.FirstOffset
		} else {
			out[p.Partition] = p.LastOffset
		}
	}
	return out, nil
}

// partitionLags works out each partition's lag the way the subscriber would resume it
// (partition.consume): from the committed offset; from the oldest record where nothing is
// committed (a subscription starting earliest, or a partition added after Subscribe
// committed the others' ends) or where retention deleted records past the commit; and, where
// the commit is past the end (the topic was recreated), from the oldest record or, with
// Config.StartOffset StartLatest, from the end. It returns the partitions in ID order and the
// lags' sum.
func partitionLags(parts []int, committed, firsts, ends map[int]int64, reset StartOffset) ([]driver.PartitionLag, int64) {
	lags := make([]driver.PartitionLag, 0, len(parts))
	var total int64
	for _, p := range slices.Sorted(slices.Values(parts)) {
		first, end := firsts[p], ends[p]
		c, ok := committed[p]
		from := c
		switch {
		case !ok:
			c, from = -1, first
		case c < first:
			from = first
		case c > end && reset == StartLatest:
			from = end
		case c > end:
			from = first
		}
		lag := max(end-from, 0)
		total += lag
		lags = append(lags, driver.PartitionLag{Partition: p, Lag: lag, CommittedOffset: c, EndOffset: end})
	}
	return lags, total
}
